/* SPDX-License-Identifier: MIT */
/*
 * Reload: the holder swaps whole snapshots (old references keep deciding the
 * old way), fails closed when an edit breaks the policy and recovers when it
 * is fixed; the inotify watch reloads on policy.d and domains.yaml changes,
 * ignores hidden files, survives policy.d being removed and recreated, and
 * leaks no descriptors; readers on other threads never see a torn policy.
 */

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "test-util.h"

static const char allow_t[] = "rules:\n  - {service: t, source: '*', target: '*', action: allow}\n";
static const char deny_t[] = "rules:\n  # a comment moves the rule to line 3\n"
                             "  - {service: t, source: '*', target: '*', action: deny}\n";
static const char broken[] = "rules:\n  - {service: t, source: '*', target: '*', action: maybe}\n";

static VrpcPolicyDecision decide_with(VrpcPolicy *policy)
{
    VrpcPolicyDecision d;

    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = "work",
                                                               .untrusted_target = "dom0",
                                                               .untrusted_service = "t"},
                                          &d),
                     0);
    return d;
}

static VrpcPolicyAction decide(VrpcPolicyHolder *holder)
{
    VrpcPolicy *policy = vrpc_policy_holder_get(holder);
    VrpcPolicyDecision d = decide_with(policy);

    vrpc_policy_unref(policy);
    return d.action;
}

static unsigned decide_line(VrpcPolicyHolder *holder)
{
    VrpcPolicy *policy = vrpc_policy_holder_get(holder);
    unsigned line = decide_with(policy).rule_line;

    vrpc_policy_unref(policy);
    return line;
}

static const char *decide_reason(VrpcPolicyHolder *holder)
{
    VrpcPolicy *policy = vrpc_policy_holder_get(holder);
    const char *reason = decide_with(policy).reason; /* static text */

    vrpc_policy_unref(policy);
    return reason;
}

/* Wait up to 100 ms for the watch fd, then dispatch; returns its result. */
static int poll_dispatch(VrpcPolicyWatch *watch)
{
    struct pollfd p = {.fd = vrpc_policy_watch_get_fd(watch), .events = POLLIN};
    int r;

    ck_assert_int_ge(poll(&p, 1, 100), 0);
    r = vrpc_policy_watch_dispatch(watch);
    ck_assert_int_ge(r, 0);
    return r;
}

/* Poll the watch fd and dispatch until a reload finished: the debounce and
 * the worker thread take a few wake-ups. A hang guard of a minute only. */
static int wait_and_dispatch(VrpcPolicyWatch *watch)
{
    for (int i = 0; i < 600; i++) {
        int r = poll_dispatch(watch);

        if (r != 0)
            return r;
    }
    ck_abort_msg("the watch never finished a reload");
    return -1;
}

/* A holder and its watch on a new folder whose policy.d/NAME holds TEXT. */
static char *watch_open(const char *name, const char *text, VrpcPolicyHolder **holderp,
                        VrpcPolicyWatch **watchp)
{
    char *etc = tu_mkdtemp(), *rel = NULL;

    ck_assert_int_ge(asprintf(&rel, "policy.d/%s", name), 0);
    tu_write(etc, rel, text);
    free(rel);
    ck_assert_int_eq(vrpc_policy_holder_new(holderp, etc), 0);
    ck_assert_int_eq(vrpc_policy_watch_new(watchp, *holderp), 0);
    return etc;
}

static void watch_close(char *etc, VrpcPolicyHolder *holder, VrpcPolicyWatch *watch)
{
    vrpc_policy_watch_free(watch);
    vrpc_policy_holder_free(holder);
    tu_rmrf(etc);
    free(etc);
}

/* Handle the events already queued (the kernel queues them during the
 * syscall that causes them, so after a write returns they are readable).
 * Returns the number of reloads that finished meanwhile. */
static int dispatch_queued(VrpcPolicyWatch *watch)
{
    struct pollfd p = {.fd = vrpc_policy_watch_get_fd(watch), .events = POLLIN};
    int reloads = 0, r;

    while (poll(&p, 1, 0) == 1) {
        r = vrpc_policy_watch_dispatch(watch);
        ck_assert_int_ge(r, 0);
        reloads += r;
    }
    return reloads;
}

START_TEST(test_holder_swaps_snapshots)
{
    char *etc = tu_mkdtemp();
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicy *old, *fresh;

    tu_write(etc, "policy.d/50.yaml", allow_t);
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, etc), 0);
    ck_assert_str_eq(vrpc_policy_holder_get_etc_dir(holder), etc);
    old = vrpc_policy_holder_get(holder);
    ck_assert_int_eq(decide_with(old).action, VRPC_POLICY_ALLOW);

    tu_write(etc, "policy.d/50.yaml", deny_t);
    ck_assert_int_eq(vrpc_policy_holder_reload(holder), 0);
    fresh = vrpc_policy_holder_get(holder);
    ck_assert_ptr_ne(fresh, old);
    ck_assert_int_eq(decide_with(fresh).action, VRPC_POLICY_DENY);
    ck_assert_uint_eq(decide_with(fresh).rule_line, 3);
    /* a call that took the old snapshot finishes against it */
    ck_assert_int_eq(decide_with(old).action, VRPC_POLICY_ALLOW);
    ck_assert_uint_eq(decide_with(old).rule_line, 2);

    vrpc_policy_unref(old);
    vrpc_policy_holder_free(holder);
    /* a snapshot outlives its holder */
    ck_assert_int_eq(decide_with(fresh).action, VRPC_POLICY_DENY);
    vrpc_policy_unref(fresh);
    tu_rmrf(etc);
    free(etc);
}
END_TEST

START_TEST(test_holder_fails_closed_and_recovers)
{
    char *etc = tu_mkdtemp();
    VrpcPolicyHolder *holder = NULL;

    tu_write(etc, "policy.d/10.yaml", allow_t);
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, etc), 0);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_ALLOW);

    tu_write(etc, "policy.d/90-broken.yaml", broken);
    ck_assert_int_eq(vrpc_policy_holder_reload(holder), VRPC_POLICY_E_INVALID);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    ck_assert_str_eq(decide_reason(holder), "invalid policy");

    tu_write(etc, "policy.d/90-broken.yaml", "rules: []\n");
    ck_assert_int_eq(vrpc_policy_holder_reload(holder), 0);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_ALLOW);
    vrpc_policy_holder_free(holder);
    tu_rmrf(etc);
    free(etc);
}
END_TEST

START_TEST(test_holder_invalid_at_start)
{
    VrpcPolicyHolder *holder = NULL;

    ck_assert_int_eq(vrpc_policy_holder_new(&holder, "/nonexistent/vrpc-policy-test"),
                     VRPC_POLICY_E_INVALID);
    ck_assert_ptr_nonnull(holder);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    ck_assert_str_eq(decide_reason(holder), "invalid policy");
    ck_assert_ptr_null(vrpc_policy_holder_free(holder));
    ck_assert_ptr_null(vrpc_policy_holder_free(NULL));
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, NULL), -EINVAL);
    ck_assert_int_eq(vrpc_policy_holder_new(NULL, "/"), -EINVAL);
}
END_TEST

START_TEST(test_watch_reloads_on_change)
{
    char *etc = tu_mkdtemp();
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    VtLeak *fds = vt_leak_new();

    vt_leak_fds(fds, "fds", 0, 0);
    tu_write(etc, "policy.d/50.yaml", allow_t);
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, etc), 0);
    ck_assert_int_eq(vrpc_policy_watch_new(&watch, holder), 0);
    ck_assert_int_ge(vrpc_policy_watch_get_fd(watch), 0);
    ck_assert_int_eq(vrpc_policy_watch_dispatch(watch), 0); /* nothing yet, never blocks */

    tu_write(etc, "policy.d/50.yaml", deny_t);
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);

    /* a new file that breaks the policy: fail closed */
    tu_write(etc, "policy.d/60.yaml", broken);
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    ck_assert_str_eq(decide_reason(holder), "invalid policy");

    vrpc_policy_watch_free(watch);
    vrpc_policy_holder_free(holder);
    vt_leak_check(fds);
    vt_leak_free(fds);
    tu_rmrf(etc);
    free(etc);
}
END_TEST

/* Temporaries of editors and installers never trigger a reload. */
START_TEST(test_watch_ignores_hidden_files)
{
    static const char *const temps[] = {"policy.d/.50.yaml.swp", "policy.d/50.yaml~",
                                        "policy.d/50.yaml.swp",  "policy.d/50.yaml.tmp",
                                        "policy.d/.hidden.yaml", "policy.d/README"};
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    char *etc = watch_open("50.yaml", allow_t, &holder, &watch);
    const char *writing;

    for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++) {
        /* written in place, not renamed in: a write in progress would count */
        tu_write_in_place(etc, temps[i], broken);
        ck_assert_int_eq(dispatch_queued(watch), 0);
        ck_assert_msg(!vrpc_policy_watch_get_pending(watch, &writing), "%s counted", temps[i]);
        ck_assert_ptr_null(writing);
    }
    ck_assert_int_eq(decide(holder), VRPC_POLICY_ALLOW);
    watch_close(etc, holder, watch);
}
END_TEST

/*
 * Regression (review finding 2): a file still being written was enforced as
 * soon as anything else changed. The prefix "source: work" of a rule meant
 * for "work-admin" parses and allowed work's calls. Now the reload waits for
 * the file to be closed, and a creation or a touch triggers nothing.
 */
START_TEST(test_watch_waits_for_files_being_written)
{
    static const char prefix[] =
        "rules:\n  - service: t\n    target: '*'\n    action: allow\n    source: work";
    static const char rest[] = "-admin\n";
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    char *etc = watch_open("90.yaml", deny_t, &holder, &watch), *path = NULL;
    const char *writing = NULL;
    int fd, tries = 0;

    ck_assert_int_ge(asprintf(&path, "%s/policy.d/40-admin.yaml", etc), 0);

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, prefix, strlen(prefix)), (ssize_t)strlen(prefix));
    /* another file completed meanwhile, and a touch of the one being written */
    tu_write(etc, "policy.d/60.yaml", "rules: []\n");
    ck_assert_int_eq(utimensat(AT_FDCWD, path, NULL, 0), 0);
    while (!(vrpc_policy_watch_get_pending(watch, &writing) && writing) && tries++ < 600)
        ck_assert_int_eq(poll_dispatch(watch), 0);
    ck_assert_ptr_nonnull(writing);
    ck_assert_str_eq(writing, "40-admin.yaml");
    /* the change is held back: nothing wakes the loop until the file is closed */
    struct pollfd p = {.fd = vrpc_policy_watch_get_fd(watch), .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 300), 0);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    ck_assert_uint_eq(decide_line(holder), 3);

    ck_assert_int_eq(write(fd, rest, strlen(rest)), (ssize_t)strlen(rest));
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    /* the complete rule is for work-admin: work is still denied */
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    ck_assert(!vrpc_policy_watch_get_pending(watch, &writing));
    ck_assert_ptr_null(writing);

    /* creating a file or touching one triggers nothing */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(utimensat(AT_FDCWD, path, NULL, 0), 0);
    tu_mkdir(etc, "policy.d/sub.yaml");
    ck_assert_int_eq(dispatch_queued(watch), 0);
    ck_assert(!vrpc_policy_watch_get_pending(watch, NULL));
    free(path);
    watch_close(etc, holder, watch);
}
END_TEST

/* The safe install: write elsewhere, rename in. The rename is picked up. */
START_TEST(test_watch_rename_in)
{
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    char *etc = watch_open("90.yaml", deny_t, &holder, &watch), *from = NULL, *to = NULL;

    tu_write_in_place(etc, "staging/10.yaml", allow_t);
    ck_assert_int_eq(dispatch_queued(watch), 0);
    ck_assert(!vrpc_policy_watch_get_pending(watch, NULL));
    ck_assert_int_ge(asprintf(&from, "%s/staging/10.yaml", etc), 0);
    ck_assert_int_ge(asprintf(&to, "%s/policy.d/10.yaml", etc), 0);
    ck_assert_int_eq(rename(from, to), 0);
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_ALLOW);
    /* and renaming it away again */
    ck_assert_int_eq(rename(to, from), 0);
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    free(from);
    free(to);
    watch_close(etc, holder, watch);
}
END_TEST

/* A burst of changes makes one reload, not one per change. */
START_TEST(test_watch_debounces)
{
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    char *etc = watch_open("50.yaml", allow_t, &holder, &watch);
    int reloads = 0, tries = 0;

    for (int i = 0; i < 21; i++)
        tu_write(etc, "policy.d/50.yaml", i % 2 ? allow_t : deny_t);
    /* all 21 renames are queued before the first dispatch sees any */
    while (vrpc_policy_watch_get_pending(watch, NULL) || tries == 0) {
        ck_assert_int_lt(tries++, 600);
        reloads += poll_dispatch(watch);
    }
    ck_assert_int_eq(reloads, 1);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    watch_close(etc, holder, watch);
}
END_TEST

START_TEST(test_watch_domains_yaml)
{
    char *etc = tu_mkdtemp();
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;

    tu_write(etc, "policy.d/50.yaml",
             "rules:\n  - {service: t, source: '@tag:ok', target: '*', action: allow}\n");
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, etc), 0);
    ck_assert_int_eq(vrpc_policy_watch_new(&watch, holder), 0);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_DENY);
    tu_write(etc, "domains.yaml", "domains:\n  work: {tags: [ok]}\n");
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_ALLOW);
    vrpc_policy_watch_free(watch);
    vrpc_policy_holder_free(holder);
    tu_rmrf(etc);
    free(etc);
}
END_TEST

START_TEST(test_watch_policy_dir_recreated)
{
    char *etc = tu_mkdtemp();
    char *policy_dir = NULL;
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    int tries = 0;

    ck_assert_int_ge(asprintf(&policy_dir, "%s/policy.d", etc), 0);
    tu_write(etc, "policy.d/50.yaml", deny_t);
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, etc), 0);
    ck_assert_int_eq(vrpc_policy_watch_new(&watch, holder), 0);

    tu_rmrf(policy_dir);
    ck_assert_int_eq(wait_and_dispatch(watch), 1);
    ck_assert_str_eq(decide_reason(holder), "invalid policy");

    /* the new folder is watched again: later edits inside it are seen */
    tu_write(etc, "policy.d/50.yaml", deny_t);
    while (decide_line(holder) != 3 && tries++ < 10)
        ck_assert_int_ge(wait_and_dispatch(watch), 0);
    ck_assert_uint_eq(decide_line(holder), 3);
    /* drain whatever the creation left queued */
    while (vrpc_policy_watch_dispatch(watch) > 0)
        ;
    tu_write(etc, "policy.d/50.yaml", allow_t);
    tries = 0;
    while (decide(holder) != VRPC_POLICY_ALLOW && tries++ < 10)
        ck_assert_int_ge(wait_and_dispatch(watch), 0);
    ck_assert_int_eq(decide(holder), VRPC_POLICY_ALLOW);

    vrpc_policy_watch_free(watch);
    vrpc_policy_holder_free(holder);
    tu_rmrf(etc);
    free(policy_dir);
    free(etc);
}
END_TEST

START_TEST(test_watch_bad_arguments)
{
    VrpcPolicyWatch *watch = NULL;

    ck_assert_int_eq(vrpc_policy_watch_new(&watch, NULL), -EINVAL);
    ck_assert_int_eq(vrpc_policy_watch_get_fd(NULL), -EINVAL);
    ck_assert_int_eq(vrpc_policy_watch_dispatch(NULL), -EINVAL);
    ck_assert_ptr_null(vrpc_policy_watch_free(NULL));
}
END_TEST

/* ---- concurrency: readers never see a torn or freed snapshot ---- */

typedef struct Reader {
    VrpcPolicyHolder *holder;
    atomic_bool *stop;
    unsigned long calls;
    unsigned long torn;
} Reader;

static void *reader_main(void *arg)
{
    Reader *r = arg;

    while (!atomic_load(r->stop)) {
        VrpcPolicy *policy = vrpc_policy_holder_get(r->holder);
        VrpcPolicyDecision d = decide_with(policy);

        /* each snapshot is one whole file: allow at line 2 or deny at line 3 */
        if (!((d.action == VRPC_POLICY_ALLOW && d.rule_line == 2) ||
              (d.action == VRPC_POLICY_DENY && d.rule_line == 3)))
            r->torn++;
        vrpc_policy_unref(policy);
        r->calls++;
    }
    return NULL;
}

START_TEST(test_concurrent_reload)
{
    char *etc = tu_mkdtemp();
    VrpcPolicyHolder *holder = NULL;
    atomic_bool stop = false;
    Reader readers[2];
    pthread_t threads[2];

    tu_write(etc, "policy.d/50.yaml", allow_t);
    ck_assert_int_eq(vrpc_policy_holder_new(&holder, etc), 0);
    for (int i = 0; i < 2; i++) {
        readers[i] = (Reader){.holder = holder, .stop = &stop};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, reader_main, &readers[i]), 0);
    }
    for (int i = 0; i < 200; i++) {
        tu_write(etc, "policy.d/50.yaml", i % 2 ? allow_t : deny_t);
        ck_assert_int_eq(vrpc_policy_holder_reload(holder), 0);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
        ck_assert_uint_gt(readers[i].calls, 0);
        ck_assert_uint_eq(readers[i].torn, 0);
    }
    vrpc_policy_holder_free(holder);
    tu_rmrf(etc);
    free(etc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy-reload");
    TCase *tc = tcase_create("reload");
    vt_leak_fixture(tc);

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_holder_swaps_snapshots);
    tcase_add_test(tc, test_holder_fails_closed_and_recovers);
    tcase_add_test(tc, test_holder_invalid_at_start);
    tcase_add_test(tc, test_watch_reloads_on_change);
    tcase_add_test(tc, test_watch_ignores_hidden_files);
    tcase_add_test(tc, test_watch_waits_for_files_being_written);
    tcase_add_test(tc, test_watch_rename_in);
    tcase_add_test(tc, test_watch_debounces);
    tcase_add_test(tc, test_watch_domains_yaml);
    tcase_add_test(tc, test_watch_policy_dir_recreated);
    tcase_add_test(tc, test_watch_bad_arguments);
    tcase_add_test(tc, test_concurrent_reload);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
