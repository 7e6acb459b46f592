/* SPDX-License-Identifier: MIT */
/*
 * test-leak: the leak checker itself. Sub-suites run under vt_leak_fixture() with a test
 * that leaks an fd, loses an fd, leaves a child, or gives everything back late from another
 * thread; the outer tests check which of them fail and that the failure message names what
 * leaked. A sim instance checks the xenstore-node and grant snapshots.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "leak.h"
#include "vtest.h"

static int kept_fd = -1;

START_TEST(inner_leaks_fd)
{
    ck_assert_int_ge(open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
}
END_TEST

START_TEST(inner_closes_foreign_fd)
{
    ck_assert_int_eq(close(kept_fd), 0);
}
END_TEST

START_TEST(inner_leaves_zombie)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    ck_assert_int_gt(pid, 0);
}
END_TEST

/* Reopens a pipe: new inodes, the same kinds of fds: not a leak. */
START_TEST(inner_reopens)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    close(p[1]);
}
END_TEST

static void *close_later(void *arg)
{
    usleep(300000);
    close((int)(long)arg);
    return NULL;
}

/* Another thread still holds an fd when the test ends: the check waits for it. */
START_TEST(inner_closes_late)
{
    pthread_t th;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pthread_create(&th, NULL, close_later, (void *)(long)fd), 0);
    ck_assert_int_eq(pthread_detach(th), 0);
}
END_TEST

/* Run @test alone under the leak fixture; its failure message, or NULL if it passed. */
static char *run_inner(const TTest *test)
{
    Suite *s = suite_create("inner");
    TCase *tc = tcase_create("inner");
    SRunner *sr;
    char *msg = NULL;

    vt_leak_fixture(tc);
    tcase_add_test(tc, test);
    tcase_set_timeout(tc, 600);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_SILENT);
    if (srunner_ntests_failed(sr) > 0) {
        TestResult **tr = srunner_failures(sr);
        msg = strdup(tr_msg(tr[0]));
        free(tr);
    }
    srunner_free(sr);
    return msg;
}

/* @test fails under the fixture, and its message has @needle1 and @needle2. */
static void expect_failure(const TTest *test, const char *needle1, const char *needle2)
{
    char *msg = run_inner(test);

    ck_assert_msg(msg != NULL, "%s passed", test->name);
    ck_assert_msg(strstr(msg, needle1) && strstr(msg, needle2), "%s: %s", test->name, msg);
    free(msg);
}

START_TEST(leaked_fd_fails_with_diff)
{
    expect_failure(inner_leaks_fd, "fds of the test process", "+ /dev/null (fd ");
}
END_TEST

START_TEST(lost_fd_fails_with_diff)
{
    kept_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(kept_fd, 0);
    expect_failure(inner_closes_foreign_fd, "fds of the test process", "- /dev/zero (fd ");
    close(kept_fd);
}
END_TEST

START_TEST(zombie_child_fails)
{
    expect_failure(inner_leaves_zombie, "children of the test process", "state Z");
}
END_TEST

START_TEST(reopen_and_late_close_pass)
{
    char *msg = run_inner(inner_reopens);

    ck_assert_msg(msg == NULL, "reopened pipe: %s", msg);
    msg = run_inner(inner_closes_late);
    ck_assert_msg(msg == NULL, "late close: %s", msg);
}
END_TEST

static void xs(const char *ns, const char *tool, const char *path, const char *value)
{
    const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", ns, "dom0", "--", tool, path, value, NULL};
    VtResult r = vt_run(argv, VT_HANG_S);
    ck_assert_msg(r.status == 0, "%s %s: %d %s", tool, path, r.status, r.err);
    vt_result_free(&r);
}

/* A node written after the snapshot shows as "+", one removed as "-"; values do not count;
 * the instance's grants and processes agree with themselves. */
START_TEST(instance_items)
{
    const char *ns = vt_ns("leak");
    const char *guests[] = {"work", NULL};
    VtLeak *l = vt_leak_new();
    char *d = NULL;

    vt_sim_up(ns, guests);
    xs(ns, "xenstore-write", "/local/domain/1/data/old", "1");
    vt_leak_xs_nodes(l, "xenstore", ns, NULL);
    vt_leak_instance_grants(l, "grants", ns);
    vt_leak_instance_procs(l, "processes", ns);
    ck_assert_ptr_nonnull(strstr(vt_leak_text(l, "xenstore"), "/local/domain/1/data/old\n"));
    ck_assert_ptr_nonnull(strstr(vt_leak_text(l, "processes"), "xenstored"));
    ck_assert_msg(vt_leak_same(l, &d), "%s", d);
    xs(ns, "xenstore-write", "/local/domain/1/data/old", "2");
    ck_assert_msg(vt_leak_same(l, &d), "a changed value counted: %s", d);
    xs(ns, "xenstore-write", "/local/domain/1/data/new", "1");
    xs(ns, "xenstore-rm", "/local/domain/1/data/old", NULL);
    ck_assert(!vt_leak_same(l, &d));
    ck_assert_msg(strstr(d, "+ /local/domain/1/data/new\n") &&
                      strstr(d, "- /local/domain/1/data/old\n") && !strstr(d, "grants"),
                  "diff: %s", d);
    free(d);
    vt_leak_drop(l, "xenstore");
    ck_assert(vt_leak_same(l, NULL));
    vt_leak_check(l);
    vt_leak_free(l);
    vt_sim_down(ns);
}
END_TEST

/* A destroyed domain takes its processes, grants and nodes along: a diff until the snapshot
 * forgets that domain, and only that domain. */
START_TEST(forget_destroyed_domain)
{
    const char *ns = vt_ns("leakd");
    const char *guests[] = {"work", "vault", NULL};
    const char *destroy[] = {VRPC_SIM_BIN, "destroy", "--ns", ns, "vault", NULL};
    VtLeak *l = vt_leak_new();
    VtResult r;
    char *d = NULL;

    vt_sim_up(ns, guests);
    vt_leak_xs_nodes(l, "xenstore", ns, NULL);
    vt_leak_instance_grants(l, "grants", ns);
    vt_leak_instance_procs(l, "processes", ns);
    r = vt_run(destroy, VT_HANG_S);
    ck_assert_msg(r.status == 0, "destroy: %s", r.err);
    vt_result_free(&r);
    ck_assert(!vt_leak_same(l, &d));
    ck_assert_msg(strstr(d, "- /local/domain/2/name\n") && strstr(d, " in domain 2 (pid ") &&
                      !strstr(d, "/local/domain/1") && !strstr(d, "in domain 1"),
                  "diff: %s", d);
    free(d);
    vt_leak_forget_domain(l, 2);
    ck_assert_msg(vt_leak_same(l, &d), "after forgetting domain 2: %s", d);
    vt_leak_forget_domain(l, 1); /* a domain still there now shows as "+" */
    ck_assert(!vt_leak_same(l, &d));
    ck_assert_msg(strstr(d, "+ /local/domain/1/name\n"), "diff: %s", d);
    free(d);
    vt_leak_free(l);
    vt_sim_down(ns);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("leak");
    TCase *tc = tcase_create("leak");
    SRunner *sr;
    int failed;

    vt_init();
    vt_leak_fixture(tc);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, leaked_fd_fails_with_diff);
    tcase_add_test(tc, lost_fd_fails_with_diff);
    tcase_add_test(tc, zombie_child_fails);
    tcase_add_test(tc, reopen_and_late_close_pass);
    tcase_add_test(tc, instance_items);
    tcase_add_test(tc, forget_destroyed_domain);
    tcase_add_unchecked_fixture(tc, NULL, vt_cleanup_instances);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
