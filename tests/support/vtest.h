/* SPDX-License-Identifier: MIT */
/*
 * vtest: helpers shared by vrpc's integration tests: run a program and
 * capture its output, bring a private vrpc-sim instance up and down, and
 * check that nothing of an instance is left behind.
 */
#ifndef VRPC_TESTS_VTEST_H
#define VRPC_TESTS_VTEST_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Bounds of waits for a state or an exit that normally comes within a second: they only
 * guard against a hang, so they are sized for a busy machine (load 10+ on 2 cores), never
 * for an idle one. A test that needs a wait to END (something must not happen) uses its own
 * short bound and asserts the timeout. */
#define VT_HANG_MS 120000
#define VT_HANG_S 120

typedef struct VtResult {
    int status; /* exit code, 128+signal, or -1 if it could not run */
    char *out;  /* NUL-terminated captured stdout */
    char *err;  /* NUL-terminated captured stderr */
} VtResult;

/* Run argv (NULL-terminated) with a timeout; captures output. */
VtResult vt_run(const char *const *argv, int timeout_s);
void vt_result_free(VtResult *r);
/* Start argv in the background with stdout/stderr to @logfile (or NULL). */
pid_t vt_spawn(const char *const *argv, const char *logfile);
/* Wait for @pid up to @timeout_ms; returns exit code / 128+sig, -1 timeout. */
int vt_wait(pid_t pid, int timeout_ms);

/* Call first in main(): names this test run (instances are t<run>-<tag>). */
void vt_init(void);
/* Down every instance this test run left behind (a failed or timed-out test). */
void vt_cleanup_instances(void);
/* A namespace unique to this test run and @tag. Static buffer. */
const char *vt_ns(const char *tag);
/* vrpc-sim up --ns NS GUESTS... ; aborts the test on failure. */
void vt_sim_up(const char *ns, const char *const *guests);
/* vrpc-sim up --ns NS --vrpc [--etc ETC] GUESTS...: also the dispatcher and an agent per
 * guest, connected when it returns; aborts the test on failure. @etc NULL: the example. */
void vt_sim_up_vrpc(const char *ns, const char *etc, const char *const *guests);
/* vrpc-sim down --ns NS, then checks that nothing is left; aborts on failure. */
void vt_sim_down(const char *ns);
/* Instance folder of @ns. Static buffer. */
const char *vt_instance_dir(const char *ns);
/* Running processes whose environment names the instance of @ns (zombies and this process
 * not counted). */
int vt_instance_procs(const char *ns);
/* The same, calling @fn (may be NULL) with each one's pid, command name and VRPCSIM_DOMID
 * (-1: none); returns how many. */
int vt_instance_each(const char *ns, void (*fn)(pid_t pid, const char *comm, int domid, void *arg),
                     void *arg);
/* The pid of the instance's running process whose argv[0] ends in @prog and, for
 * @domid >= 0, whose VRPCSIM_DOMID is @domid; 0 if there is none. */
pid_t vt_instance_pid(const char *ns, const char *prog, int domid);
/* Poll until @path exists (true) or @timeout_ms passes (false). */
bool vt_wait_path(const char *path, int timeout_ms);
/* Poll (as dom0) until a vchan server has published PATH/event-channel in instance @ns;
 * aborts the test after VT_HANG_MS. */
void vt_wait_vchan_server(const char *ns, const char *path);
/* Fork a Unix-socket echo server on @path (replacing any file there); it creates
 * PATH.accepted once it has accepted a connection. Returns its pid; kill it when done. */
pid_t vt_unix_echo_server(const char *path);
/* A file to write: NAME and its text. */
typedef struct VtFile {
    const char *name, *text;
} VtFile;
/* A configuration folder for a test: a new folder from the template @dir (mkdtemp, e.g.
 * "/tmp/vrpc-e2e-NS-XXXXXX", rewritten in place) holding a copy of @example_etc (the
 * example configuration, symlinks followed), plus @services[0..@n) in services/ (mode
 * 0755, or 0644 for NAME.yaml) and @policy as policy.d/40-test.yaml (if not NULL).
 * Aborts the test on failure. */
void vt_make_etc(char *dir, const char *example_etc, const VtFile *services, size_t n,
                 const char *policy);

/* One Check test case: its name (CK_RUN_CASE selects it), function and timeout (s). */
typedef struct VtCase {
    const char *name;
    const TTest *test;
    int timeout;
} VtCase;
/* main() of an integration test: vt_init(), SIGPIPE ignored, run suite @suite of @n
 * @cases (each its own TCase), then down every instance left behind and remove
 * /tmp/<@tmp_prefix><run>* (a failed case's temporary folders; NULL: none).
 * Returns the exit status (0: all passed). */
int vt_main(const char *suite, const VtCase *cases, size_t n, const char *tmp_prefix);

/* Number of fds this process has open now (for leak checks). */
int vt_count_fds(void);

/* Read a whole file; NULL on error. Caller frees. */
char *vt_read_file(const char *path);

#endif
