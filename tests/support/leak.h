/* SPDX-License-Identifier: MIT */
/*
 * leak: the one leak checker of vrpc's tests. A VtLeak is a snapshot of things a test must
 * give back: the open fds of a process, this process's child processes, the processes of a
 * sim instance, the grant files of a sim instance and the xenstore nodes of an instance.
 * vt_leak_check() waits until every item is back to its snapshot, then asserts it, with a
 * readable diff ("+" what is there now and was not, "-" what went) in the failure message.
 *
 * Items are compared as multisets of keys, never as bare counts: fds by what they point to
 * (socket, pipe, anon_inode:[eventfd], a path; inode numbers dropped, so a reconnect that
 * reopened the same kinds of fds is not a leak), processes by command name (and domain),
 * grants by granting domain, xenstore nodes by path. Equal multisets imply equal counts, so the
 * check is at least as strict as a counter.
 *
 * Waiting is bounded by state: the check waits only while something outside this thread
 * can still change (another process is part of the snapshot, this process has other
 * threads, or a child is still running), with VT_HANG_MS as the hang guard. A
 * single-threaded test whose snapshot is only its own fds and dead children fails at once.
 */
#ifndef VRPC_TESTS_LEAK_H
#define VRPC_TESTS_LEAK_H

#include <check.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct VtLeak VtLeak;

/* Flag of vt_leak_fds(): do not count unbound, unnamed AF_UNIX datagram sockets. The sim's
 * Xen libraries open one per library copy and process, lazily, to send event notifications,
 * and keep it for good: the emulator's, not a per-connection resource. */
#define VT_LEAK_SIM_SENDERS 1u

/* An empty snapshot; aborts the test when out of memory. */
VtLeak *vt_leak_new(void);
/* Frees @l; accepts NULL. */
void vt_leak_free(VtLeak *l);

/* Each adder takes the item's snapshot now. An item whose @label is already in @l is
 * replaced (a retake, e.g. for a restarted daemon). */
/* Open fds of @pid (0: this process). */
void vt_leak_fds(VtLeak *l, const char *label, pid_t pid, unsigned flags);
/* Child processes of this process (running or not yet reaped), by command name. */
void vt_leak_children(VtLeak *l, const char *label);
/* Running processes of the sim instance of @ns (vt_instance_procs()), by command name. */
void vt_leak_instance_procs(VtLeak *l, const char *label, const char *ns);
/* The grant files of the sim instance of @ns (<instance>/gnt/<domid>/<ref>), by domid:
 * the shared-memory pages every live vchan holds. */
void vt_leak_instance_grants(VtLeak *l, const char *label, const char *ns);
/* The xenstore node paths under @root (NULL: /local/domain) of instance @ns, as dom0 lists
 * them with xenstore-ls -f (values are not compared: generations and ports change). */
void vt_leak_xs_nodes(VtLeak *l, const char *label, const char *ns, const char *root);
/* An instance's share: the fds of its dispatcher @disp (if > 0; "dispatcher fds", its sim
 * event senders not counted), its processes, grants and xenstore nodes under /local/domain. */
void vt_leak_instance(VtLeak *l, const char *ns, pid_t disp);
/* The process of fd item @label was replaced by @pid (a restarted daemon): compare @pid's
 * fds with the same snapshot. */
void vt_leak_follow(VtLeak *l, const char *label, pid_t pid);
/* Domain @domid was destroyed: its processes, grants and xenstore nodes are expected gone,
 * so they leave the snapshots (everything else of theirs is still compared). */
void vt_leak_forget_domain(VtLeak *l, int domid);
/* Stop checking the item @label (e.g. a daemon the test killed on purpose). */
void vt_leak_drop(VtLeak *l, const char *label);

/* Retake every item's snapshot until the cheap items (fds and processes) read the same
 * five times in a row (50 ms apart), then the others once: for a baseline taken while
 * connections of a warm-up close asynchronously. Not steady after VT_HANG_MS: it goes on
 * with the last snapshot, and vt_leak_check() will show what moved. */
void vt_leak_settle(VtLeak *l);
/* The current snapshot of item @label as text, one key per line, or "" (static buffer). */
const char *vt_leak_text(VtLeak *l, const char *label);

/* Compare once, without waiting: true if every item equals its snapshot; else false and,
 * if @diffp, the diff in *@diffp (caller frees). */
bool vt_leak_same(VtLeak *l, char **diffp);
/* Wait (see above) until every item equals its snapshot; ck_abort_msg with the diff of each
 * item that does not. */
void vt_leak_check(VtLeak *l);

/* The fixture every suite's test cases use: a snapshot of this process's fds and children
 * before each test, checked after it. In Check's fork mode each test runs in its own
 * process, so one global snapshot is enough. */
void vt_leak_setup(void);
void vt_leak_teardown(void);
/* Check against vt_leak_setup()'s snapshot in the middle of a test (it stays). */
void vt_leak_fixture_check(void);
/* Adds vt_leak_setup/vt_leak_teardown as a checked fixture of @tc. A test case with a
 * fixture of its own calls them first and last in it instead (its setup may open what its
 * teardown closes, and Check's order of several fixtures' teardowns is not ours to rely on). */
void vt_leak_fixture(TCase *tc);
/* The same, the fixture's fds read with vt_leak_fds() @fd_flags (for every fixture of the
 * program: VT_LEAK_SIM_SENDERS where the test process itself links the sim's libraries). */
void vt_leak_fixture_flags(TCase *tc, unsigned fd_flags);

#endif
