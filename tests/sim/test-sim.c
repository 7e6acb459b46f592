/* SPDX-License-Identifier: MIT */
/*
 * Tests of the emulated Xen host. Each test brings up its own vrpc-sim
 * instance (a namespace unique to the test process) and tears it down,
 * checking that nothing is left behind. Grant and event-channel semantics
 * are exercised in process through the drop-in libraries (the test binary
 * links them, and switches identity by VRPCSIM_DOMID before opening a
 * handle); xenstore through the real libxenstore; real Xen userspace
 * (Debian's libxenvchan via xvchan-peer, vchan-socket-proxy, xenstore-utils)
 * through `vrpc-sim exec`.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include "leak.h"
#include "vtest.h"

#define GiB (1024ull * 1024 * 1024)

static const char *const two_guests[] = {"work", "vault", NULL};
static const char *const three_guests[] = {"work", "vault", "spare", NULL};

/* Become @domid of instance @ns for handles opened from now on. */
static void as_dom(const char *ns, unsigned int domid)
{
    char buf[600];

    setenv("VRPCSIM_INSTANCE", vt_instance_dir(ns), 1);
    snprintf(buf, sizeof(buf), "%u", domid);
    setenv("VRPCSIM_DOMID", buf, 1);
    if (domid == 0)
        snprintf(buf, sizeof(buf), "%s/xenstored/socket", vt_instance_dir(ns));
    else
        snprintf(buf, sizeof(buf), "%s/dom%u/xenbus.sock", vt_instance_dir(ns), domid);
    setenv("XENSTORED_PATH", buf, 1);
}

static VtResult sim(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4,
                    const char *a5, const char *a6)
{
    const char *argv[] = {VRPC_SIM_BIN, a0, a1, a2, a3, a4, a5, a6, NULL};
    return vt_run(argv, 120);
}

/* ---- vrpc-sim command line ---------------------------------------------- */

START_TEST(cli_up_status_down)
{
    const char *ns = vt_ns("cli");
    VtResult r;

    vt_sim_up(ns, two_guests);
    r = sim("status", "--ns", ns, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "work"));
    ck_assert_ptr_nonnull(strstr(r.out, "vault"));
    ck_assert_ptr_nonnull(strstr(r.out, "running"));
    vt_result_free(&r);
    vt_sim_down(ns);
    /* after down, status and down report that nothing runs */
    r = sim("status", "--ns", ns, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "not running"));
    vt_result_free(&r);
    r = sim("down", "--ns", ns, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "not running"));
    vt_result_free(&r);
}
END_TEST

START_TEST(cli_errors)
{
    const char *ns = vt_ns("err");
    VtResult r;

    /* usage errors: exit 2 and one line */
    r = sim("up", "--ns", ns, "work", "work", NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "duplicate domain name 'work'"));
    vt_result_free(&r);
    r = sim("up", "--ns", ns, "dom0", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    vt_result_free(&r);
    r = sim("up", "--ns", ns, "bad/name", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "invalid domain name"));
    vt_result_free(&r);
    r = sim("up", "--ns", "no/slash", "work", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "invalid instance name"));
    vt_result_free(&r);
    r = sim("up", "--ns", ns, "--etc", "/tmp", "work", NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--etc needs --vrpc"));
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "--vrpc", "work", "true", NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "only valid for 'up'"));
    vt_result_free(&r);
    r = sim("up", "--ns", ns, "--vrpc", "--etc", "/nonexistent/etc", "work");
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "up --vrpc failed"));
    vt_result_free(&r);
    ck_assert_int_ne(access(vt_instance_dir(ns), F_OK), 0); /* a failed up leaves nothing */
    r = sim("frobnicate", NULL, NULL, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown command"));
    vt_result_free(&r);
    r = sim("--help", NULL, NULL, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "Usage: vrpc-sim"));
    vt_result_free(&r);
    r = sim("exec", "--help", NULL, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);

    /* no instance running */
    r = sim("exec", "--ns", ns, "work", "--", "true", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "not running"));
    vt_result_free(&r);
    r = sim("destroy", "--ns", ns, "work", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "not running"));
    vt_result_free(&r);

    vt_sim_up(ns, two_guests);
    r = sim("up", "--ns", ns, "other", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "already up"));
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "nosuch", "--", "true", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown domain 'nosuch'"));
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "work", "--", NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "missing command"));
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "work", "--", "/nonexistent/program", NULL);
    ck_assert_int_eq(r.status, 127);
    ck_assert_ptr_nonnull(strstr(r.err, "cannot run"));
    vt_result_free(&r);
    r = sim("destroy", "--ns", ns, "dom0", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    vt_result_free(&r);
    r = sim("destroy", "--ns", ns, "nosuch", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown domain"));
    vt_result_free(&r);
    vt_sim_down(ns);
}
END_TEST

START_TEST(cli_exec_xenstore_tools)
{
    const char *ns = vt_ns("exec");
    VtResult r;

    vt_sim_up(ns, two_guests);
    r = sim("exec", "--ns", ns, "work", "--", "xenstore-read", "domid");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "1\n");
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "vault", "--", "xenstore-read", "name");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "vault\n");
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "dom0", "--", "xenstore-read", "/local/domain/2/name");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "vault\n");
    vt_result_free(&r);
    /* a guest cannot read another guest's subtree */
    r = sim("exec", "--ns", ns, "work", "--", "xenstore-read", "/local/domain/2/name");
    ck_assert_int_ne(r.status, 0);
    vt_result_free(&r);
    /* each domain's local vrpc socket is named in its environment */
    {
        const char *argv[] = {
            VRPC_SIM_BIN, "exec", "--ns", ns, "vault", "--", "sh", "-c", "echo \"$VRPC_SOCKET\"",
            NULL};
        char want[700];

        r = vt_run(argv, 60);
        snprintf(want, sizeof(want), "%s/dom2/vrpc.sock\n", vt_instance_dir(ns));
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(r.out, want);
        vt_result_free(&r);
    }
    /* the command's exit status comes back */
    {
        const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", ns,       "work",
                              "--",         "sh",   "-c",   "exit 7", NULL};
        r = vt_run(argv, 60);
    }
    ck_assert_int_eq(r.status, 7);
    vt_result_free(&r);
    /* vrpc's programs run by name from the build tree (docs/cross-host.md, docs/sim.md) */
    {
        const char *tools[] = {"vrpc-call", "vrpc-ctl", "vrpc-policy", "vchan-cat"};
        for (int i = 0; i < 4; i++) {
            r = sim("exec", "--ns", ns, "dom0", "--", tools[i], "--help");
            ck_assert_msg(r.status == 0 && strstr(r.out, tools[i]), "%s --help: %d '%s' '%s'",
                          tools[i], r.status, r.out, r.err);
            vt_result_free(&r);
        }
    }
    vt_sim_down(ns);
}
END_TEST

START_TEST(cli_destroy)
{
    const char *ns = vt_ns("destroy");
    struct xs_handle *xs;
    char **ev;
    unsigned int n;
    VtResult r;

    vt_sim_up(ns, two_guests);
    as_dom(ns, 0);
    xs = xs_open(XS_OPEN_SOCKETONLY);
    ck_assert_ptr_nonnull(xs);
    ck_assert(xs_watch(xs, "@releaseDomain", "rel"));
    ev = xs_read_watch(xs, &n); /* fires once at registration */
    ck_assert_ptr_nonnull(ev);
    free(ev);
    ck_assert(xs_is_domain_introduced(xs, 2));

    /* a process of vault's keeps running until the domain dies */
    const char *sleeper[] = {VRPC_SIM_BIN, "exec", "--ns", ns, "vault", "--", "sleep", "60", NULL};
    pid_t pid = vt_spawn(sleeper, NULL);
    usleep(200000);

    r = sim("destroy", "--ns", ns, "vault", NULL, NULL, NULL);
    ck_assert_msg(r.status == 0, "destroy: %s", r.err);
    vt_result_free(&r);
    ck_assert_int_eq(vt_wait(pid, VT_HANG_MS), 128 + SIGKILL);

    ev = xs_read_watch(xs, &n);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(ev[XS_WATCH_PATH], "@releaseDomain");
    free(ev);
    ck_assert(!xs_is_domain_introduced(xs, 2));
    ck_assert_ptr_null(xs_read(xs, XBT_NULL, "/local/domain/2/name", &n));

    /* the other guest is untouched */
    r = sim("exec", "--ns", ns, "work", "--", "xenstore-read", "domid");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "1\n");
    vt_result_free(&r);
    r = sim("exec", "--ns", ns, "vault", "--", "true", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "destroyed"));
    vt_result_free(&r);
    r = sim("destroy", "--ns", ns, "vault", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 1);
    vt_result_free(&r);
    r = sim("status", "--ns", ns, NULL, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(r.out, "destroyed"));
    vt_result_free(&r);
    xs_close(xs);
    vt_sim_down(ns);
}
END_TEST

START_TEST(cli_parallel_instances)
{
    char a[64], b[64];
    VtResult r;

    snprintf(a, sizeof(a), "%s", vt_ns("pa"));
    snprintf(b, sizeof(b), "%s", vt_ns("pb"));
    vt_sim_up(a, two_guests);
    vt_sim_up(b, three_guests);
    r = sim("exec", "--ns", b, "spare", "--", "xenstore-read", "domid");
    ck_assert_str_eq(r.out, "3\n");
    vt_result_free(&r);
    r = sim("exec", "--ns", a, "spare", "--", "true", NULL);
    ck_assert_int_eq(r.status, 1);
    vt_result_free(&r);
    vt_sim_down(a);
    r = sim("exec", "--ns", b, "work", "--", "xenstore-read", "name");
    ck_assert_str_eq(r.out, "work\n");
    vt_result_free(&r);
    vt_sim_down(b);
}
END_TEST

/* An instance killed with SIGKILL (daemon and all) leaves its folder; the next `up` of any
 * other instance under the same root removes it, and leaves alone a live instance, a folder
 * that never had a daemon (an `up` in progress) and a plain file. */
static void kill_one(pid_t pid, const char *comm, int domid, void *arg)
{
    (void)comm;
    (void)domid;
    (void)arg;
    kill(pid, SIGKILL);
}

START_TEST(cli_up_sweeps_dead_instances)
{
    char root[64], dead[64], live[64], fresh[64], path[600], keep_dir[600], keep_file[600];
    VtResult r;

    /* a root of its own, inside the usual one under this run's prefix: if the test fails,
     * vt_cleanup_instances() downs it as an instance's remains */
    snprintf(root, sizeof(root), "/dev/shm/vrpc-sim/%s", vt_ns("sweep"));
    ck_assert(mkdir("/dev/shm/vrpc-sim", 0755) == 0 || errno == EEXIST);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    setenv("VRPCSIM_ROOT", root, 1);
    snprintf(dead, sizeof(dead), "%s", vt_ns("dead"));
    snprintf(live, sizeof(live), "%s", vt_ns("live"));
    snprintf(fresh, sizeof(fresh), "%s", vt_ns("fresh"));

    vt_sim_up(dead, two_guests);
    vt_sim_up(live, two_guests);
    snprintf(path, sizeof(path), "%s/daemon.pid", vt_instance_dir(dead));
    ck_assert_int_eq(access(path, F_OK), 0);
    /* kill -9 of the whole tree: nothing runs `down` */
    for (long long n = 0; vt_instance_each(dead, kill_one, NULL) > 0; n++) {
        ck_assert_msg(n < VT_HANG_MS / 10, "the instance's processes do not die");
        usleep(10000);
    }
    ck_assert_int_eq(access(vt_instance_dir(dead), F_OK), 0); /* left behind */
    snprintf(keep_dir, sizeof(keep_dir), "%s/starting", root);
    ck_assert_int_eq(mkdir(keep_dir, 0755), 0);
    snprintf(keep_file, sizeof(keep_file), "%s/a-file", root);
    FILE *f = fopen(keep_file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);

    const char *up[] = {VRPC_SIM_BIN, "up", "--ns", fresh, "work", NULL};
    r = vt_run(up, VT_HANG_S);
    ck_assert_msg(r.status == 0, "up: %s", r.err);
    ck_assert_msg(strstr(r.err, "removed instance") && strstr(r.err, dead),
                  "up said: %s", r.err);
    ck_assert_ptr_null(strstr(r.err, live));
    vt_result_free(&r);
    ck_assert_int_ne(access(vt_instance_dir(dead), F_OK), 0);
    ck_assert_int_eq(access(keep_dir, F_OK), 0);
    ck_assert_int_eq(access(keep_file, F_OK), 0);

    /* the live instance still works */
    r = sim("exec", "--ns", live, "vault", "--", "xenstore-read", "name");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "vault\n");
    vt_result_free(&r);
    vt_sim_down(live);
    vt_sim_down(fresh);
    ck_assert_int_eq(rmdir(keep_dir), 0);
    ck_assert_int_eq(unlink(keep_file), 0);
    ck_assert_int_eq(rmdir(root), 0);
}
END_TEST

/* VRPCSIM_KEEP=1 keeps a failed instance's folder, and no other value does (the daemon kept
 * it for any value, 0 included); `down` removes every file, whatever VRPCSIM_KEEP says. */
START_TEST(cli_keep_only_when_1)
{
    const char *ns = vt_ns("keep");
    const char *up[] = {VRPC_SIM_BIN, "up", "--ns", ns, "work", NULL};
    const char *down[] = {VRPC_SIM_BIN, "down", "--ns", ns, NULL};
    char log[600];
    VtResult r;

    snprintf(log, sizeof(log), "%s/daemon.log", vt_instance_dir(ns));
    setenv("VRPCSIM_XENSTORED", "/nonexistent/xenstored", 1); /* the start fails */
    setenv("VRPCSIM_KEEP", "0", 1);
    r = vt_run(up, VT_HANG_S);
    ck_assert_int_ne(r.status, 0);
    vt_result_free(&r);
    ck_assert_int_ne(access(vt_instance_dir(ns), F_OK), 0); /* nothing left */
    setenv("VRPCSIM_KEEP", "1", 1);
    r = vt_run(up, VT_HANG_S);
    ck_assert_int_ne(r.status, 0);
    vt_result_free(&r);
    ck_assert_int_eq(access(log, F_OK), 0); /* kept for inspection */
    unsetenv("VRPCSIM_XENSTORED");
    r = vt_run(down, VT_HANG_S);
    ck_assert_msg(r.status == 0 && strstr(r.out, "removed the remains"), "down: %s %s", r.out,
                  r.err);
    vt_result_free(&r);
    ck_assert_int_ne(access(vt_instance_dir(ns), F_OK), 0);
    /* a running instance downed with VRPCSIM_KEEP=1 */
    vt_sim_up(ns, two_guests);
    vt_sim_down(ns); /* asserts that the folder is gone */
    unsetenv("VRPCSIM_KEEP");
}
END_TEST

/* ---- xenstore as dom0 and as a guest -------------------------------------- */

START_TEST(xs_guest_identity)
{
    const char *ns = vt_ns("xs");
    struct xs_handle *g, *d0;
    struct xs_permissions *perms;
    unsigned int n;
    char *v;

    vt_sim_up(ns, two_guests);
    as_dom(ns, 1);
    g = xs_open(XS_OPEN_SOCKETONLY);
    ck_assert_ptr_nonnull(g);
    /* relative paths resolve under /local/domain/1 */
    v = xs_read(g, XBT_NULL, "domid", &n);
    ck_assert_str_eq(v, "1");
    free(v);
    ck_assert(xs_write(g, XBT_NULL, "data/hello", "world", 5));
    /* permissions enforced */
    errno = 0;
    ck_assert_ptr_null(xs_read(g, XBT_NULL, "/local/domain/2/name", &n));
    ck_assert_int_eq(errno, EACCES);
    ck_assert(!xs_write(g, XBT_NULL, "/local/domain/0/x", "1", 1));
    ck_assert_int_eq(errno, EACCES);
    ck_assert(!xs_write(g, XBT_NULL, "name", "evil", 4)); /* toolstack-owned */
    ck_assert_int_eq(errno, EACCES);

    as_dom(ns, 0);
    d0 = xs_open(XS_OPEN_SOCKETONLY);
    ck_assert_ptr_nonnull(d0);
    v = xs_read(d0, XBT_NULL, "/local/domain/1/data/hello", &n);
    ck_assert_str_eq(v, "world");
    free(v);
    perms = xs_get_permissions(d0, XBT_NULL, "/local/domain/1/data/hello", &n);
    ck_assert_ptr_nonnull(perms);
    ck_assert_uint_eq(perms[0].id, 1); /* the guest owns what it created */
    free(perms);
    v = xs_read(d0, XBT_NULL, "domid", &n); /* dom0's relative base */
    ck_assert_str_eq(v, "0");
    free(v);

    /* a transaction from the guest */
    xs_transaction_t t = xs_transaction_start(g);
    ck_assert(t != XBT_NULL);
    ck_assert(xs_write(g, t, "data/tx", "1", 1));
    ck_assert(xs_transaction_end(g, t, false));
    v = xs_read(d0, XBT_NULL, "/local/domain/1/data/tx", &n);
    ck_assert_str_eq(v, "1");
    free(v);
    xs_close(g);
    xs_close(d0);
    vt_sim_down(ns);
}
END_TEST

START_TEST(xs_watches)
{
    const char *ns = vt_ns("watch");
    struct xs_handle *g, *g2, *d0;
    unsigned int n;
    char **ev;

    vt_sim_up(ns, two_guests);
    as_dom(ns, 1);
    g = xs_open(XS_OPEN_SOCKETONLY);
    g2 = xs_open(XS_OPEN_SOCKETONLY); /* a second process-like client on the same ring */
    ck_assert(g && g2);
    ck_assert(xs_watch(g, "data/w", "tokA"));
    ck_assert(xs_watch(g2, "data/w", "tokB"));
    ev = xs_read_watch(g, &n);
    ck_assert_str_eq(ev[XS_WATCH_TOKEN], "tokA");
    free(ev);
    ev = xs_read_watch(g2, &n);
    ck_assert_str_eq(ev[XS_WATCH_TOKEN], "tokB");
    free(ev);

    as_dom(ns, 0);
    d0 = xs_open(XS_OPEN_SOCKETONLY);
    ck_assert(xs_write(d0, XBT_NULL, "/local/domain/1/data/w", "x", 1));
    ev = xs_read_watch(g, &n);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(ev[XS_WATCH_PATH], "data/w"); /* relative, as registered */
    ck_assert_str_eq(ev[XS_WATCH_TOKEN], "tokA");
    free(ev);
    ev = xs_read_watch(g2, &n);
    ck_assert_str_eq(ev[XS_WATCH_TOKEN], "tokB");
    free(ev);
    /* a client that goes away takes its watches with it; the other keeps its own */
    xs_close(g2);
    ck_assert(xs_write(d0, XBT_NULL, "/local/domain/1/data/w", "y", 1));
    ev = xs_read_watch(g, &n);
    ck_assert_str_eq(ev[XS_WATCH_TOKEN], "tokA");
    free(ev);
    ck_assert(xs_unwatch(g, "data/w", "tokA"));

    /* @introduceDomain fires for dom0 at registration */
    ck_assert(xs_watch(d0, "@introduceDomain", "intro"));
    ev = xs_read_watch(d0, &n);
    ck_assert_str_eq(ev[XS_WATCH_PATH], "@introduceDomain");
    free(ev);
    xs_close(g);
    xs_close(d0);
    vt_sim_down(ns);
}
END_TEST

/* ---- grants and event channels ------------------------------------------- */

START_TEST(grant_semantics)
{
    const char *ns = vt_ns("gnt");
    xengntshr_handle *shr;
    xengnttab_handle *tab2, *tab3;
    uint32_t refs[4], dom1[4] = {1, 1, 1, 1};
    uint8_t *s, *m;

    vt_sim_up(ns, three_guests);
    as_dom(ns, 1);
    shr = xengntshr_open(NULL, 0);
    ck_assert_ptr_nonnull(shr);
    s = xengntshr_share_pages(shr, 2, 4, refs, 1);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_ge(refs[i], 8); /* 0-7 are reserved */
        s[i * 4096] = (uint8_t)(0xA0 + i);
    }
    as_dom(ns, 2);
    tab2 = xengnttab_open(NULL, 0);
    ck_assert_ptr_nonnull(tab2);
    /* multi-page map: one contiguous range */
    m = xengnttab_map_grant_refs(tab2, 4, dom1, refs, PROT_READ | PROT_WRITE);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(m[i * 4096], 0xA0 + i);
    m[5] = 0x55; /* shared both ways */
    ck_assert_uint_eq(s[5], 0x55);
    ck_assert_int_eq(xengnttab_unmap(tab2, m, 4), 0);
    /* a missing ref */
    errno = 0;
    ck_assert_ptr_null(xengnttab_map_grant_ref(tab2, 1, 60000, PROT_READ));
    ck_assert_int_eq(errno, ENOENT);

    /* the wrong domain may not map it */
    as_dom(ns, 3);
    tab3 = xengnttab_open(NULL, 0);
    errno = 0;
    ck_assert_ptr_null(xengnttab_map_grant_ref(tab3, 1, refs[0], PROT_READ));
    ck_assert_int_eq(errno, EPERM);

    /* read-only grants refuse writable maps */
    uint32_t ro;
    as_dom(ns, 1);
    uint8_t *rs = xengntshr_share_pages(shr, 3, 1, &ro, 0);
    ck_assert_ptr_nonnull(rs);
    errno = 0;
    ck_assert_ptr_null(xengnttab_map_grant_ref(tab3, 1, ro, PROT_READ | PROT_WRITE));
    ck_assert_int_eq(errno, EPERM);
    m = xengnttab_map_grant_ref(tab3, 1, ro, PROT_READ);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(xengnttab_unmap(tab3, m, 1), 0);

    /* after unshare the ref is gone */
    ck_assert_int_eq(xengntshr_unshare(shr, s, 4), 0);
    errno = 0;
    ck_assert_ptr_null(xengnttab_map_grant_ref(tab2, 1, refs[0], PROT_READ));
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(xengntshr_unshare(shr, rs, 1), 0);
    xengnttab_close(tab2);
    xengnttab_close(tab3);
    xengntshr_close(shr);
    vt_sim_down(ns);
}
END_TEST

static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

START_TEST(evtchn_semantics)
{
    const char *ns = vt_ns("evt");
    xenevtchn_handle *e1, *e2, *e3;
    int p1, p2, fd2;

    vt_sim_up(ns, three_guests);
    as_dom(ns, 1);
    e1 = xenevtchn_open(NULL, 0);
    ck_assert_ptr_nonnull(e1);
    p1 = xenevtchn_bind_unbound_port(e1, 2);
    ck_assert_int_gt(p1, 0);
    /* the lowest free port */
    int q = xenevtchn_bind_unbound_port(e1, 2);
    ck_assert_int_eq(q, p1 + 1);
    ck_assert_int_eq(xenevtchn_unbind(e1, (evtchn_port_t)q), 0);

    /* only the named remote domain may bind */
    as_dom(ns, 3);
    e3 = xenevtchn_open(NULL, 0);
    errno = 0;
    ck_assert_int_lt(xenevtchn_bind_interdomain(e3, 1, (evtchn_port_t)p1), 0);
    ck_assert_int_eq(errno, EINVAL);

    as_dom(ns, 2);
    e2 = xenevtchn_open(NULL, 0);
    p2 = xenevtchn_bind_interdomain(e2, 1, (evtchn_port_t)p1);
    ck_assert_int_gt(p2, 0);
    /* a second binder fails */
    ck_assert_int_lt(xenevtchn_bind_interdomain(e2, 1, (evtchn_port_t)p1), 0);
    fd2 = xenevtchn_fd(e2);
    ck_assert(!readable(fd2, 0));

    /* delivery: fd readable, pending() returns the port and masks it */
    ck_assert_int_eq(xenevtchn_notify(e1, (evtchn_port_t)p1), 0);
    ck_assert(readable(fd2, 2000));
    ck_assert_int_eq(xenevtchn_pending(e2), p2);
    ck_assert_int_eq(xenevtchn_notify(e1, (evtchn_port_t)p1), 0);
    ck_assert_int_eq(xenevtchn_notify(e1, (evtchn_port_t)p1), 0);
    ck_assert(!readable(fd2, 100)); /* masked: held back */
    ck_assert_int_eq(xenevtchn_unmask(e2, (evtchn_port_t)p2), 0);
    ck_assert(readable(fd2, 2000)); /* ...and delivered once on unmask */
    ck_assert_int_eq(xenevtchn_pending(e2), p2);
    ck_assert_int_eq(xenevtchn_unmask(e2, (evtchn_port_t)p2), 0);
    ck_assert(!readable(fd2, 100));

    /* non-blocking fd: pending() fails with EAGAIN instead of blocking */
    fcntl(fd2, F_SETFL, O_NONBLOCK);
    errno = 0;
    ck_assert_int_lt(xenevtchn_pending(e2), 0);
    ck_assert_int_eq(errno, EAGAIN);

    /* the other direction */
    ck_assert_int_eq(xenevtchn_notify(e2, (evtchn_port_t)p2), 0);
    ck_assert(readable(xenevtchn_fd(e1), 2000));
    ck_assert_int_eq(xenevtchn_pending(e1), p1);

    /* notify on a port the handle does not own is refused */
    ck_assert_int_lt(xenevtchn_notify(e3, (evtchn_port_t)p1), 0);

    /* closing one end leaves the other unbound: a notify goes nowhere */
    ck_assert_int_eq(xenevtchn_unbind(e2, (evtchn_port_t)p2), 0);
    ck_assert_int_eq(xenevtchn_unmask(e1, (evtchn_port_t)p1), 0);
    ck_assert_int_eq(xenevtchn_notify(e1, (evtchn_port_t)p1), 0);
    xenevtchn_close(e1);
    xenevtchn_close(e2);
    xenevtchn_close(e3);
    vt_sim_down(ns);
}
END_TEST

/*
 * unmap-notify on SIGKILL: a child (domain 1) shares a page with notify on
 * byte 21 and an event channel; the parent (domain 2) maps it; the child is
 * killed; the byte must read 0 and the event must arrive.
 */
static void notify_on_kill(bool killer_is_sharer)
{
    const char *ns = vt_ns(killer_is_sharer ? "killshr" : "killmap");
    int sync[2], back[2];
    uint32_t ref = 0;
    int port = 0;
    pid_t pid;

    vt_sim_up(ns, two_guests);
    ck_assert_int_eq(pipe(sync), 0);
    ck_assert_int_eq(pipe(back), 0);
    pid = fork();
    if (pid == 0) {
        /* the victim */
        if (killer_is_sharer) {
            as_dom(ns, 1);
            xenevtchn_handle *e = xenevtchn_open(NULL, 0);
            xengntshr_handle *s = xengntshr_open(NULL, 0);
            port = xenevtchn_bind_unbound_port(e, 2);
            uint8_t *page = xengntshr_share_page_notify(s, 2, &ref, 1, 21, (evtchn_port_t)port);
            page[21] = 1;
            (void)!write(sync[1], &ref, sizeof(ref));
            (void)!write(sync[1], &port, sizeof(port));
        } else {
            uint32_t args[2];
            (void)!read(back[0], args, sizeof(args));
            as_dom(ns, 2);
            xenevtchn_handle *e = xenevtchn_open(NULL, 0);
            xengnttab_handle *t = xengnttab_open(NULL, 0);
            int p = xenevtchn_bind_interdomain(e, 1, args[1]);
            uint8_t *page = xengnttab_map_grant_ref_notify(t, 1, args[0], PROT_READ | PROT_WRITE,
                                                           20, (evtchn_port_t)p);
            page[20] = 1;
            (void)!write(sync[1], &p, sizeof(p));
        }
        pause();
        _exit(0);
    }
    if (killer_is_sharer) {
        /* parent maps as domain 2 */
        ck_assert_int_eq(read(sync[0], &ref, sizeof(ref)), sizeof(ref));
        ck_assert_int_eq(read(sync[0], &port, sizeof(port)), sizeof(port));
        as_dom(ns, 2);
        xenevtchn_handle *e = xenevtchn_open(NULL, 0);
        xengnttab_handle *t = xengnttab_open(NULL, 0);
        int lp = xenevtchn_bind_interdomain(e, 1, (evtchn_port_t)port);
        ck_assert_int_gt(lp, 0);
        volatile uint8_t *page = (volatile uint8_t *)xengnttab_map_grant_ref(
            t, 1, ref, PROT_READ | PROT_WRITE);
        ck_assert(page != NULL);
        ck_assert_uint_eq(page[21], 1);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ck_assert_msg(readable(xenevtchn_fd(e), 5000), "no event after the sharer died");
        ck_assert_int_eq(xenevtchn_pending(e), lp);
        ck_assert_uint_eq(page[21], 0);
        xengnttab_unmap(t, (void *)(uintptr_t)page, 1);
        xengnttab_close(t);
        xenevtchn_close(e);
    } else {
        /* parent shares as domain 1; the child maps and is killed */
        as_dom(ns, 1);
        xenevtchn_handle *e = xenevtchn_open(NULL, 0);
        xengntshr_handle *s = xengntshr_open(NULL, 0);
        port = xenevtchn_bind_unbound_port(e, 2);
        volatile uint8_t *page = (volatile uint8_t *)xengntshr_share_pages(s, 2, 1, &ref, 1);
        ck_assert(page != NULL);
        uint32_t args[2] = {ref, (uint32_t)port};
        ck_assert_int_eq(write(back[1], args, sizeof(args)), sizeof(args));
        int cp;
        ck_assert_int_eq(read(sync[0], &cp, sizeof(cp)), sizeof(cp));
        ck_assert_uint_eq(page[20], 1);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ck_assert_msg(readable(xenevtchn_fd(e), 5000), "no event after the mapper died");
        ck_assert_int_eq(xenevtchn_pending(e), port);
        ck_assert_uint_eq(page[20], 0);
        xengntshr_unshare(s, (void *)(uintptr_t)page, 1);
        xengntshr_close(s);
        xenevtchn_close(e);
    }
    for (int i = 0; i < 2; i++) {
        close(sync[i]);
        close(back[i]);
    }
    vt_sim_down(ns);
}

START_TEST(unmap_notify_on_sigkill_sharer)
{
    notify_on_kill(true);
}
END_TEST

START_TEST(unmap_notify_on_sigkill_mapper)
{
    notify_on_kill(false);
}
END_TEST

/* ---- real Xen userspace: Debian's libxenvchan and vchan-socket-proxy ------- */

/* Wait until a vchan server has published @path/event-channel (as dom0). */
static void peer_transfer(const char *ns, const char *srv_dom, const char *cli_dom,
                          const char *srv_for, const char *cli_for, const char *path,
                          const char *cli_path, const char *ring)
{
    char logf[256], bytes[32];
    const char *srv[] = {VRPC_SIM_BIN, "exec", "--ns", ns,    srv_dom,  "--", XVCHAN_PEER, "server",
                         srv_for,      path,   "send", bytes, "--ring", ring, NULL};
    const char *cli[] = {VRPC_SIM_BIN, "exec",  "--ns",   ns,     cli_dom, "--", XVCHAN_PEER,
                         "client",     cli_for, cli_path, "recv", bytes,   NULL};
    char *so, *expect;
    VtResult r;
    pid_t pid;

    snprintf(bytes, sizeof(bytes), "%llu", GiB);
    snprintf(logf, sizeof(logf), "/tmp/vrpc-test-%d-srv.log", (int)getpid());
    pid = vt_spawn(srv, logf);
    vt_wait_vchan_server(ns, cli_path);
    r = vt_run(cli, 300);
    ck_assert_msg(r.status == 0, "client failed: %s", r.err);
    ck_assert_int_eq(vt_wait(pid, 60000), 0);
    so = vt_read_file(logf);
    unlink(logf);
    ck_assert_ptr_nonnull(so);
    /* "sent N fnv=X" must match "received N fnv=X" */
    ck_assert_ptr_nonnull(strstr(so, "sent 1073741824 fnv="));
    expect = strstr(so, "fnv=");
    ck_assert_ptr_nonnull(strstr(r.out, "received 1073741824 "));
    ck_assert_msg(strncmp(strstr(r.out, "fnv="), expect, 20) == 0, "checksum mismatch: %s vs %s",
                  r.out, so);
    free(so);
    vt_result_free(&r);
}

START_TEST(libxenvchan_guest_server_dom0_client_1gib)
{
    const char *ns = vt_ns("xv0");
    vt_sim_up(ns, two_guests);
    peer_transfer(ns, "work", "dom0", "0", "1", "data/vchan/0/t", "/local/domain/1/data/vchan/0/t",
                  "1048576");
    vt_sim_down(ns);
}
END_TEST

START_TEST(libxenvchan_guest_to_guest_1gib)
{
    const char *ns = vt_ns("xvg");
    vt_sim_up(ns, two_guests);
    peer_transfer(ns, "vault", "work", "1", "2", "data/vchan/1/g", "/local/domain/2/data/vchan/1/g",
                  "65536");
    vt_sim_down(ns);
}
END_TEST

static void kill_end(bool kill_server)
{
    const char *ns = vt_ns(kill_server ? "ks" : "kc");
    char slog[256], clog[256];
    const char *srv[] = {VRPC_SIM_BIN, "exec", "--ns",           ns,     "work", "--", XVCHAN_PEER,
                         "server",     "2",    "data/vchan/2/k", "hold", NULL};
    const char *cli[] = {VRPC_SIM_BIN, "exec",      "--ns",   ns,  "vault",
                         "--",         XVCHAN_PEER, "client", "1", "/local/domain/1/data/vchan/2/k",
                         "hold",       NULL};
    pid_t sp, cp;
    char *out;

    vt_sim_up(ns, two_guests);
    snprintf(slog, sizeof(slog), "/tmp/vrpc-test-%d-s.log", (int)getpid());
    snprintf(clog, sizeof(clog), "/tmp/vrpc-test-%d-c.log", (int)getpid());
    sp = vt_spawn(srv, slog);
    for (int i = 0; i < 200; i++) {
        char ready[600];
        snprintf(ready, sizeof(ready), "%s", slog);
        out = vt_read_file(ready);
        bool ok = out && strstr(out, "ready");
        free(out);
        if (ok)
            break;
        usleep(10000);
    }
    cp = vt_spawn(cli, clog);
    for (int i = 0; i < 200; i++) {
        out = vt_read_file(clog);
        bool ok = out && strstr(out, "ready");
        free(out);
        if (ok)
            break;
        usleep(10000);
    }
    kill(kill_server ? sp : cp, SIGKILL);
    ck_assert_int_eq(vt_wait(kill_server ? sp : cp, VT_HANG_MS), 128 + SIGKILL);
    /* the survivor sees the channel closed and exits 0 */
    ck_assert_int_eq(vt_wait(kill_server ? cp : sp, VT_HANG_MS), 0);
    out = vt_read_file(kill_server ? clog : slog);
    ck_assert_ptr_nonnull(strstr(out, "closed"));
    free(out);
    unlink(slog);
    unlink(clog);
    vt_sim_down(ns);
}

START_TEST(libxenvchan_kill_server_seen_closed)
{
    kill_end(true);
}
END_TEST

START_TEST(libxenvchan_kill_client_seen_closed)
{
    kill_end(false);
}
END_TEST

START_TEST(vchan_socket_proxy_server_mode)
{
    const char *ns = vt_ns("vspS");
    char sock[256];
    pid_t echo, proxy;
    VtResult r;

    vt_sim_up(ns, two_guests);
    snprintf(sock, sizeof(sock), "/tmp/vrpc-test-%d-echo.sock", (int)getpid());
    echo = vt_unix_echo_server(sock);
    /* guest work: a vchan server for dom0 whose connections go to the echo socket */
    const char *pargv[] = {
        VRPC_SIM_BIN, "exec", "--ns",           ns,   "work", "--", VCHAN_SOCKET_PROXY, "-m",
        "server",     "0",    "data/vchan/0/p", sock, NULL};
    proxy = vt_spawn(pargv, NULL);
    /*
     * vchan-socket-proxy (4.17) strands data that a client sends before the
     * proxy has connected its socket: the event is consumed while it waits
     * for the client and its select() loop never looks at the ring. So the
     * client sends only once the echo server has accepted the proxy.
     */
    char accepted[300];
    snprintf(accepted, sizeof(accepted), "%s.accepted", sock);
    unlink(accepted);
    const char *cargv[] = {
        VRPC_SIM_BIN, "exec",      "--ns",    ns,       "dom0",
        "--",         XVCHAN_PEER, "client",  "1",      "/local/domain/1/data/vchan/0/p",
        "ping",       "1048576",   "--after", accepted, NULL};
    vt_wait_vchan_server(ns, "/local/domain/1/data/vchan/0/p");
    r = vt_run(cargv, 60);
    ck_assert_msg(r.status == 0, "ping through vchan-socket-proxy failed (%d): %s %s", r.status,
                  r.out, r.err);
    ck_assert_str_eq(r.out, "echoed 1048576\n");
    vt_result_free(&r);
    kill(proxy, SIGKILL);
    vt_wait(proxy, VT_HANG_MS);
    kill(echo, SIGKILL);
    vt_wait(echo, VT_HANG_MS);
    unlink(sock);
    unlink(accepted);
    vt_sim_down(ns);
}
END_TEST

START_TEST(vchan_socket_proxy_client_mode)
{
    const char *ns = vt_ns("vspC");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char sock[100], buf[4096], back[4096];
    pid_t server, proxy;
    int fd = -1;

    vt_sim_up(ns, two_guests);
    /* guest vault: a libxenvchan echo server for dom0 */
    const char *sargv[] = {VRPC_SIM_BIN, "exec",      "--ns",   ns,  "vault",
                           "--",         XVCHAN_PEER, "server", "0", "data/vchan/0/e",
                           "echo",       NULL};
    server = vt_spawn(sargv, NULL);
    vt_wait_vchan_server(ns, "/local/domain/2/data/vchan/0/e");
    /* dom0: the proxy's client mode listens on a Unix socket */
    snprintf(sock, sizeof(sock), "/tmp/vrpc-test-%d-proxy.sock", (int)getpid());
    unlink(sock);
    const char *pargv[] = {VRPC_SIM_BIN,
                           "exec",
                           "--ns",
                           ns,
                           "dom0",
                           "--",
                           VCHAN_SOCKET_PROXY,
                           "-m",
                           "client",
                           "2",
                           "/local/domain/2/data/vchan/0/e",
                           sock,
                           NULL};
    proxy = vt_spawn(pargv, NULL);
    ck_assert(vt_wait_path(sock, VT_HANG_MS));
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
    for (int i = 0; i < 100; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            break;
        close(fd);
        fd = -1;
        usleep(20000);
    }
    ck_assert_int_ge(fd, 0);
    for (int round = 0; round < 16; round++) {
        size_t got = 0;
        memset(buf, 'a' + round, sizeof(buf));
        ck_assert_int_eq(write(fd, buf, sizeof(buf)), sizeof(buf));
        while (got < sizeof(back)) {
            ssize_t n = read(fd, back + got, sizeof(back) - got);
            ck_assert_int_gt(n, 0);
            got += (size_t)n;
        }
        ck_assert_int_eq(memcmp(buf, back, sizeof(buf)), 0);
    }
    close(fd);
    kill(proxy, SIGKILL);
    vt_wait(proxy, VT_HANG_MS);
    kill(server, SIGKILL);
    vt_wait(server, VT_HANG_MS);
    unlink(sock);
    vt_sim_down(ns);
}
END_TEST

static Suite *sim_suite(void)
{
    Suite *s = suite_create("sim");
    TCase *cli = tcase_create("cli"), *xs = tcase_create("xenstore"),
          *hv = tcase_create("hypervisor"), *real = tcase_create("libxenvchan"),
          *proxy = tcase_create("vchan-socket-proxy");

    tcase_set_timeout(cli, 600);
    tcase_set_timeout(xs, 600);
    tcase_set_timeout(hv, 600);
    tcase_set_timeout(real, 600);
    tcase_set_timeout(proxy, 600);
    tcase_add_test(cli, cli_up_status_down);
    tcase_add_test(cli, cli_errors);
    tcase_add_test(cli, cli_exec_xenstore_tools);
    tcase_add_test(cli, cli_destroy);
    tcase_add_test(cli, cli_parallel_instances);
    tcase_add_test(cli, cli_up_sweeps_dead_instances);
    tcase_add_test(cli, cli_keep_only_when_1);
    tcase_add_test(xs, xs_guest_identity);
    tcase_add_test(xs, xs_watches);
    tcase_add_test(hv, grant_semantics);
    tcase_add_test(hv, evtchn_semantics);
    tcase_add_test(hv, unmap_notify_on_sigkill_sharer);
    tcase_add_test(hv, unmap_notify_on_sigkill_mapper);
    tcase_add_test(real, libxenvchan_guest_server_dom0_client_1gib);
    tcase_add_test(real, libxenvchan_guest_to_guest_1gib);
    tcase_add_test(real, libxenvchan_kill_server_seen_closed);
    tcase_add_test(real, libxenvchan_kill_client_seen_closed);
    tcase_add_test(proxy, vchan_socket_proxy_server_mode);
    tcase_add_test(proxy, vchan_socket_proxy_client_mode);
    /* this process links the sim's libraries: their event senders are not leaks */
    for (TCase **tc = (TCase *[]){cli, xs, hv, real, proxy, NULL}; *tc; tc++)
        vt_leak_fixture_flags(*tc, VT_LEAK_SIM_SENDERS);
    tcase_add_unchecked_fixture(cli, NULL, vt_cleanup_instances);
    suite_add_tcase(s, cli);
    tcase_add_unchecked_fixture(xs, NULL, vt_cleanup_instances);
    suite_add_tcase(s, xs);
    tcase_add_unchecked_fixture(hv, NULL, vt_cleanup_instances);
    suite_add_tcase(s, hv);
    tcase_add_unchecked_fixture(real, NULL, vt_cleanup_instances);
    suite_add_tcase(s, real);
    tcase_add_unchecked_fixture(proxy, NULL, vt_cleanup_instances);
    suite_add_tcase(s, proxy);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    vt_init();
    sr = srunner_create(sim_suite());
    signal(SIGPIPE, SIG_IGN);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
