/* SPDX-License-Identifier: MIT */
/*
 * test-dispatcher - integration tests of vrpc-dispatcher over the sim: each test brings up
 * its own sim instance, starts the real dispatcher in dom0 and fake agents (fake-agent.c)
 * in the guests, and checks calls, refusals, relays, hostile guests, guest and daemon
 * restarts, policy reloads, the audit log and vrpc-ctl. Every test ends by checking that the
 * dispatcher's fd count is back to its value before any guest connected, that no
 * vrpc/vrpc-ready xenstore node is left, that the dispatcher exits 0 on SIGTERM, and (in
 * vt_sim_down) that no process of the instance is left. One ctest entry per test case
 * (CK_RUN_CASE).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dtest.h"

/* ---- tests -------------------------------------------------------------------------------- */

START_TEST(guest_to_dom0)
{
    Env e;
    const char *guests[] = {"work", NULL};
    env_up(&e, "g2d", NULL, guests);

    VtResult r = guest_call(&e, "work", "hello from work\n", "dom0", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "status %d err %s (log %s)", r.status, r.err, e.log);
    ck_assert_str_eq(r.out, "HELLO FROM WORK\n");
    vt_result_free(&r);
    /* @default goes to dom0 only through a rule; ours has none: refused. */
    r = guest_call(&e, "work", "x", "@default", "demo.Echo");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);

    /* The audit line: well-formed, with the right fields and the stage timings. */
    char *line = wait_audit_line(&e, "work", "demo.Uppercase");
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(json_flat_object(line), "not a JSON object: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "\"target\":\"dom0\""));
    ck_assert_ptr_nonnull(strstr(line, "\"resolved_target\":\"dom0\""));
    ck_assert_ptr_nonnull(strstr(line, "\"argument\":\"\""));
    ck_assert_ptr_nonnull(strstr(line, "\"decision\":\"allow\""));
    ck_assert_ptr_nonnull(strstr(line, "50-test.yaml:6\""));
    ck_assert_ptr_nonnull(strstr(line, "\"exit\":0,"));
    ck_assert_ptr_nonnull(strstr(line, "\"duration_ms\":"));
    ck_assert_ptr_nonnull(strstr(line, "\"policy_us\":"));
    ck_assert_ptr_nonnull(strstr(line, "\"spawn_us\":"));
    ck_assert_ptr_nonnull(strstr(line, "\"first_byte_us\":"));
    ck_assert_ptr_nonnull(strstr(line, "\"time\":\"20"));
    free(line);
    line = wait_audit_line(&e, "work", "demo.Echo");
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(json_flat_object(line), "not a JSON object: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "\"target\":\"@default\""));
    ck_assert_ptr_nonnull(strstr(line, "\"decision\":\"deny\""));
    ck_assert_ptr_nonnull(strstr(line, "\"exit\":126,"));
    free(line);
    env_down(&e);
}
END_TEST

START_TEST(refused)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "refused", NULL, guests);

    /* Denied, for a service that exists in dom0 and for one that does not: the same
     * text but for the name. */
    VtResult r = guest_call(&e, "vault", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: vrpc.Ping to dom0 refused\n");
    vt_result_free(&r);
    r = guest_call(&e, "vault", NULL, "dom0", "nosuch.Service+arg");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: nosuch.Service+arg to dom0 refused\n");
    vt_result_free(&r);
    /* Allowed by policy, but the target does not exist / is not connected: the same. */
    r = guest_call(&e, "work", NULL, "ghost", "fake.Echo");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Echo to ghost refused\n");
    vt_result_free(&r);
    r = guest_call(&e, "work", NULL, "vault", "fake.Echo"); /* vault: no agent */
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Echo to vault refused\n");
    vt_result_free(&r);
    /* The same call works from work to dom0: the denial above came from the rule. */
    r = guest_call(&e, "work", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    char *s = ctl_status(&e);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "calls-total 6 refused 4\n"), "status: %s", s);
    free(s);
    env_down(&e);
}
END_TEST

START_TEST(not_found)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "notfound", NULL, guests);
    agent_serve(&e, "vault");
    wait_guests(&e, 1);

    VtResult r = guest_call(&e, "work", NULL, "dom0", "demo.Missing");
    ck_assert_int_eq(r.status, 127);
    /* named like a refusal: which service, in which domain */
    ck_assert_str_eq(r.err, "fake-agent: vrpc: demo.Missing not found in dom0\n");
    vt_result_free(&r);
    /* A bad SERVICE.yaml refuses with 125 and a reason, at once. */
    r = guest_call(&e, "work", NULL, "dom0", "test.BadConfig");
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "test.BadConfig.yaml"));
    vt_result_free(&r);
    /* The target agent's own 127 is relayed. */
    r = guest_call(&e, "work", NULL, "vault", "fake.Nope");
    ck_assert_int_eq(r.status, 127);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: service not found\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

START_TEST(guest_to_guest)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "g2g", NULL, guests);
    agent_serve(&e, "vault");
    wait_guests(&e, 1);

    /* The source the target sees is the caller's domain, set by the dispatcher. */
    VtResult r = guest_call(&e, "work", NULL, "vault", "fake.Who+x1");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "source=work target=vault service=fake.Who arg=x1\n");
    vt_result_free(&r);
    r = guest_call(&e, "work", "line one\nline two\n", "vault", "fake.Echo");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "line one\nline two\n");
    vt_result_free(&r);
    /* Exit codes and stderr cross the relay. */
    r = guest_call(&e, "work", NULL, "vault", "fake.Exit+7");
    ck_assert_int_eq(r.status, 7);
    ck_assert_str_eq(r.err, "bye\n");
    vt_result_free(&r);
    /* dom0 (the local socket) to a guest: source dom0. */
    r = local_call(&e, NULL, "vault", "fake.Who");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "source=dom0 target=vault service=fake.Who arg=\n");
    vt_result_free(&r);
    r = local_call(&e, "from dom0\n", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "FROM DOM0\n");
    vt_result_free(&r);
    char *line = wait_audit_line(&e, "work", "fake.Exit");
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(json_flat_object(line), "not JSON: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "\"resolved_target\":\"vault\""));
    ck_assert_ptr_nonnull(strstr(line, "\"argument\":\"7\""));
    ck_assert_ptr_nonnull(strstr(line, "\"exit\":7,"));
    ck_assert_ptr_nonnull(strstr(line, "\"reason\":\"\""));
    free(line);
    /* An exit with the target's words (its service timed out): they reach the audit line,
     * marked as the target's. */
    r = guest_call(&e, "work", NULL, "vault", "fake.TimedOut");
    ck_assert_int_eq(r.status, 125);
    vt_result_free(&r);
    line = wait_audit_line(&e, "work", "fake.TimedOut");
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(strstr(line, "\"reason\":\"target: vrpc: fake.TimedOut timed out after 0.3 "
                               "s\"") &&
                      strstr(line, "\"end\":\"exit\",\"exit\":125,"),
                  "%s", line);
    free(line);
    env_down(&e);
}
END_TEST

START_TEST(loopback)
{
    Env e;
    const char *guests[] = {"work", NULL};
    env_up(&e, "loop", NULL, guests);

    VtResult r = guest_call(&e, "work", NULL, "work", "fake.Who");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "source=work target=work service=fake.Who arg=\n");
    vt_result_free(&r);
    r = guest_call(&e, "work", "round trip\n", "work", "fake.Echo");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "round trip\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

START_TEST(forged_source)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "forged", NULL, guests);
    agent_serve(&e, "work");
    wait_guests(&e, 1);

    /* vault claims to be work: a protocol violation that drops vault's connection. */
    const char *opts[] = {"--forge-source", "work", NULL};
    VtResult r = guest_call_opts(&e, "vault", opts, "work", "fake.Who");
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_null(strstr(r.out, "source=work"));
    vt_result_free(&r);
    char *log = vt_read_file(e.log);
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_nonnull(strstr(log, "protocol violation: CALL with a source field"));
    free(log);
    assert_alive(&e);
    /* work is untouched and vault can still call honestly. */
    r = guest_call(&e, "vault", NULL, "work", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "source=vault target=work service=fake.Who arg=\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

static void hostile_case(const char *tag, const char *mode, const char *yaml, const char *reason)
{
    Env e;
    const char *guests[] = {"work", "vault", "personal", NULL};
    env_up(&e, tag, yaml, guests);
    agent_serve(&e, "work");
    wait_guests(&e, 1);

    const char *argv[] = {VRPC_SIM_BIN, "exec",     "--ns",    e.ns, "vault",
                          "--",         FAKE_AGENT, "hostile", mode, NULL};
    char hlog[160];
    snprintf(hlog, sizeof(hlog), "%s/hostile.log", e.dir);
    pid_t h = vt_spawn(argv, hlog);
    /* While vault misbehaves, the others' calls go through. */
    for (int i = 0; i < 3; i++) {
        VtResult r = guest_call(&e, "personal", "still here\n", "dom0", "demo.Uppercase");
        ck_assert_msg(r.status == 0, "%d %s (log %s)", r.status, r.err, e.log);
        ck_assert_str_eq(r.out, "STILL HERE\n");
        vt_result_free(&r);
        r = local_call(&e, "abc", "work", "fake.Echo");
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(r.out, "abc");
        vt_result_free(&r);
    }
    /* The dispatcher cut vault off (fake-agent exits 0 once its vchan was closed). */
    ck_assert_msg(vt_wait(h, 60000) == 0, "hostile %s: vault not disconnected (%s)", mode, hlog);
    assert_alive(&e);
    /* ... for the right reason, logged once as a warning naming the guest. */
    char *log = vt_read_file(e.log);
    char want[256];
    snprintf(want, sizeof(want), "warning: guest vault (domid 2) disconnected: %s", reason);
    ck_assert_msg(log && strstr(log, want), "no \"%s\" in %s", want, e.log);
    free(log);
    ck_assert(wait_status(&e, "guest work domid 1", true));
    VtResult r = guest_call(&e, "personal", NULL, "work", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "source=personal target=work service=fake.Who arg=\n");
    vt_result_free(&r);
    env_down(&e);
}

START_TEST(malformed_frame)
{
    hostile_case("garbage", "garbage", NULL, "bad frame header: unknown frame type");
}
END_TEST

START_TEST(ping_flood)
{
    hostile_case("flood", "ping-flood", "max-buffer-per-guest: 262144\n", "peer does not read");
}
END_TEST

START_TEST(wrong_direction)
{
    hostile_case("wrongdir", "wrong-direction", NULL,
                 "stream 2: STDOUT frame: stdout/stderr data from the caller (wrong direction)");
}
END_TEST

START_TEST(call_quota)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "quota", "max-calls-per-guest: 2\n", guests);
    agent_serve(&e, "vault");
    wait_guests(&e, 1);

    /* Three calls at once that never end: two are relayed, the third is refused. */
    const char *opts[] = {"--count", "3", "--wait-ms", "3000", NULL};
    VtResult r = guest_call_opts(&e, "work", opts, "vault", "fake.Sleep");
    ck_assert_int_eq(r.status, 124); /* the two sleeping calls never ended */
    ck_assert_str_eq(r.out, "exit 125 reason vrpc: too many calls\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

START_TEST(guest_destroyed)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    char clog[160];
    env_up(&e, "destroy", NULL, guests);
    agent_serve(&e, "vault");
    wait_guests(&e, 1);

    const char *argv[] = {VRPC_SIM_BIN, "exec",  "--ns", e.ns,    "work",       "--", FAKE_AGENT,
                          "--wait-ms",  "60000", "call", "vault", "fake.Sleep", NULL};
    snprintf(clog, sizeof(clog), "%s/caller.log", e.dir);
    pid_t caller = vt_spawn(argv, clog);
    ck_assert(wait_status(&e, "guest work domid 1 calls-in-flight 1", true));
    const char *destroy[] = {VRPC_SIM_BIN, "destroy", "--ns", e.ns, "vault", NULL};
    VtResult r = vt_run(destroy, 60);
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    agent_gone(&e, e.agent[0]); /* killed with its domain */
    /* The caller's call fails with 125; the dispatcher forgets vault and lives on. */
    ck_assert_int_eq(vt_wait(caller, 60000), 125);
    char *out = vt_read_file(clog);
    ck_assert_ptr_nonnull(strstr(out, "vrpc: call to vault aborted (connection lost)"));
    free(out);
    ck_assert(wait_status(&e, "guest vault", false));
    assert_alive(&e);
    r = guest_call(&e, "work", "ok\n", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "OK\n");
    vt_result_free(&r);
    e.n_guests = 1; /* vault's xenstore folder is gone with it */
    env_down(&e);
}
END_TEST

START_TEST(agent_restart)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "restart", NULL, guests);
    pid_t a = agent_serve(&e, "vault");
    agent_serve(&e, "work");
    wait_guests(&e, 2);

    /* A clean restart, then a crash: each new generation is picked up, work untouched. */
    agent_stop(&e, a, SIGTERM);
    ck_assert(wait_status(&e, "guest vault", false));
    a = agent_serve(&e, "vault");
    wait_guests(&e, 2);
    VtResult r = local_call(&e, NULL, "vault", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    agent_stop(&e, a, SIGKILL);
    ck_assert(wait_status(&e, "guest vault", false));
    /* The killed agent left its xenstore nodes (nobody removed them): clear them as a
     * restarted agent would, by offering again. */
    agent_serve(&e, "vault");
    wait_guests(&e, 2);
    r = local_call(&e, NULL, "vault", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "source=dom0 target=vault service=fake.Who arg=\n");
    vt_result_free(&r);
    r = local_call(&e, NULL, "work", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

START_TEST(dispatcher_restart)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "drestart", NULL, guests);
    agent_serve(&e, "vault");
    agent_serve(&e, "work");
    wait_guests(&e, 2);
    VtResult r = local_call(&e, NULL, "vault", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);

    disp_stop(&e);
    disp_start(&e);
    /* The agents saw the old dispatcher go, re-offered, and the new one found them. */
    wait_guests(&e, 2);
    r = local_call(&e, NULL, "vault", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "source=dom0 target=vault service=fake.Who arg=\n");
    vt_result_free(&r);
    r = local_call(&e, "x\n", "work", "fake.Echo");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "x\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

/* Start `fake-agent call` in @dom with a pipe as its stdin; returns the write end. */
static pid_t spawn_piped_call(Env *e, const char *dom, const char *target, const char *svc,
                              const char *outfile, int *stdin_fdp)
{
    int p[2];
    pid_t pid;

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    pid = fork();
    if (pid == 0) {
        int out = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(p[0], 0);
        dup2(out, 1);
        dup2(out, 2);
        unsetenv("VRPCSIM_INSTANCE");
        execl(VRPC_SIM_BIN, VRPC_SIM_BIN, "exec", "--ns", e->ns, dom, "--", FAKE_AGENT, "--wait-ms",
              "60000", "call", target, svc, (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    *stdin_fdp = p[1];
    return pid;
}

START_TEST(policy_reload)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    char path[256], bad[256], outfile[160];
    int in_fd;
    long long end;
    VtResult r;

    env_up(&e, "reload", NULL, guests);
    snprintf(path, sizeof(path), "%s/policy.d/50-test.yaml", e.etc);
    snprintf(bad, sizeof(bad), "%s/policy.d/60-broken.yaml", e.etc);
    snprintf(outfile, sizeof(outfile), "%s/long-call.out", e.dir);

    /* A call in flight keeps the decision it got. */
    pid_t longcall = spawn_piped_call(&e, "work", "dom0", "demo.Uppercase", outfile, &in_fd);
    ck_assert(wait_status(&e, "guest work domid 1 calls-in-flight 1", true));
    ck_assert_int_eq(write(in_fd, "before\n", 7), 7);

    /* Deny everything (an empty policy), then wait until the dispatcher has reloaded. */
    write_file(path, "rules: []\n");
    end = now_ms() + VT_HANG_MS;
    do {
        r = guest_call(&e, "vault", NULL, "dom0", "vrpc.Ping+x"); /* denied either way */
        vt_result_free(&r);
        r = local_call(&e, "q", "dom0", "demo.Echo");
        if (r.status == 126)
            break;
        vt_result_free(&r);
        sleep_ms(20);
    } while (now_ms() < end);
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);

    ck_assert_int_eq(write(in_fd, "after\n", 6), 6);
    close(in_fd);
    ck_assert_int_eq(vt_wait(longcall, 60000), 0);
    char *out = vt_read_file(outfile);
    ck_assert_str_eq(out, "BEFORE\nAFTER\n");
    free(out);

    /* Allowing rules back, plus a broken file: an invalid policy denies everything. */
    write_file(path, test_policy);
    write_file(bad, "rules:\n  - service: [oops\n");
    end = now_ms() + VT_HANG_MS;
    char *log = NULL;
    while (now_ms() < end) {
        free(log);
        log = vt_read_file(e.log);
        if (log && strstr(log, "INVALID, every call is denied"))
            break;
        sleep_ms(20);
    }
    ck_assert_ptr_nonnull(strstr(log, "INVALID, every call is denied"));
    free(log);
    r = guest_call(&e, "work", "x", "dom0", "demo.Echo");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    r = local_call(&e, "x", "dom0", "demo.Echo");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);

    /* Fixed: allowed again. */
    ck_assert_int_eq(unlink(bad), 0);
    end = now_ms() + VT_HANG_MS;
    do {
        r = local_call(&e, "again", "dom0", "demo.Echo");
        if (r.status == 0)
            break;
        vt_result_free(&r);
        sleep_ms(20);
    } while (now_ms() < end);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "again");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

/* Lines of the dispatcher's log that contain @needle. */
static int log_lines(Env *e, const char *needle)
{
    char *log = vt_read_file(e->log);
    int n = 0;
    for (const char *at = log; at && (at = strstr(at, needle)); at++)
        n++;
    free(log);
    return n;
}

/*
 * Regression (review finding 2): the dispatcher enforced a policy file that was still being
 * written as soon as anything else in policy.d changed. Here the prefix "source: vault" of a
 * rule meant for "vault-admin" parses, and allowed vault a call its rules deny. Now the
 * reload waits until the file is closed, and a touch triggers nothing.
 */
START_TEST(policy_partial_file)
{
    static const char prefix[] = "rules:\n"
                                 "  - service: vrpc.Ping\n"
                                 "    target: \"*\"\n"
                                 "    action: allow\n"
                                 "    source: vault";
    static const char rest[] = "-admin\n";
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    char path[256], other[256];
    VtResult r;

    env_up(&e, "partial", NULL, guests);
    r = guest_call(&e, "vault", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);

    snprintf(path, sizeof(path), "%s/policy.d/10-admin.yaml", e.etc);
    snprintf(other, sizeof(other), "%s/policy.d/60-other.yaml", e.etc);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, prefix, strlen(prefix)), (ssize_t)strlen(prefix));
    /* meanwhile: a touch, and another file installed as it should be */
    ck_assert_int_eq(utimensat(AT_FDCWD, path, NULL, 0), 0);
    write_file(other, "rules: []\n");
    long long end = now_ms() + 20000;
    /* the dispatcher either holds the reload back (and says so) or reloads */
    while (log_lines(&e, "reload waits until 10-admin.yaml is closed") == 0 &&
           log_lines(&e, "policy reloaded") == 0 && now_ms() < end)
        sleep_ms(20);
    r = guest_call(&e, "vault", NULL, "dom0", "vrpc.Ping");
    ck_assert_msg(r.status == 126, "the half-written file was enforced: %d", r.status);
    vt_result_free(&r);
    ck_assert_msg(log_lines(&e, "reload waits until 10-admin.yaml is closed") == 1,
                  "no 'reload waits' line (log %s)", e.log);
    ck_assert_int_eq(log_lines(&e, "policy reloaded"), 0);

    /* Closed: reloaded once, with the complete rule (for vault-admin). */
    ck_assert_int_eq(write(fd, rest, strlen(rest)), (ssize_t)strlen(rest));
    ck_assert_int_eq(close(fd), 0);
    end = now_ms() + 20000;
    while (log_lines(&e, "policy reloaded") == 0 && now_ms() < end)
        sleep_ms(20);
    ck_assert_int_eq(log_lines(&e, "policy reloaded: "), 1);
    r = guest_call(&e, "vault", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    r = guest_call(&e, "work", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

START_TEST(ctl_cmds)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "ctl", NULL, guests);
    agent_serve(&e, "work");
    agent_serve(&e, "vault");
    wait_guests(&e, 2);

    VtResult r = local_call(&e, NULL, "vault", "fake.Who");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    r = local_call(&e, NULL, "vault", "nothing.Allowed");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);

    char *s = ctl_status(&e);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "guest work domid 1 calls-in-flight 0 calls-total 0\n"), "%s", s);
    ck_assert_msg(strstr(s, "guest vault domid 2 calls-in-flight 0 calls-total 0\n"), "%s", s);
    ck_assert_msg(strstr(s, "total guests 2 calls-in-flight 0 calls-total 3 refused 1\n"), "%s", s);
    free(s);

    /* wait-guests: 1 on timeout; usage errors 2. --timeout 0 looks once. */
    r = ctl(&e, "wait-guests", "3", "--timeout", "0.5");
    ck_assert_int_eq(r.status, 1);
    vt_result_free(&r);
    r = ctl(&e, "wait-guests", "2", "--timeout", "0");
    ck_assert_msg(r.status == 0, "wait-guests 2 --timeout 0 with 2 guests: %d %s", r.status, r.err);
    vt_result_free(&r);
    r = ctl(&e, "wait-guests", "3", "--timeout", "0");
    ck_assert_int_eq(r.status, 1);
    vt_result_free(&r);
    r = ctl(&e, "wait-guests", "many", NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    vt_result_free(&r);
    r = ctl(&e, "frobnicate", NULL, NULL, NULL);
    ck_assert_int_eq(r.status, 2);
    vt_result_free(&r);
    {
        const char *argv[] = {VRPC_CTL, "--control", "/nonexistent/ctl.sock", "status", NULL};
        r = vt_run(argv, VT_HANG_S);
        ck_assert_int_eq(r.status, 1);
        vt_result_free(&r);
    }
    /* The control socket is 0600. */
    struct stat st;
    ck_assert_int_eq(stat(e.control, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    env_down(&e);
}
END_TEST

START_TEST(cli)
{
    const char *help[] = {VRPC_DISPATCHER, "--help", NULL};
    const char *version[] = {VRPC_DISPATCHER, "--version", NULL};
    const char *bad[] = {VRPC_DISPATCHER, "--bogus", NULL};
    const char *chelp[] = {VRPC_CTL, "--help", NULL};
    const char *cversion[] = {VRPC_CTL, "--version", NULL};
    VtResult r = vt_run(help, VT_HANG_S);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--control PATH"));
    vt_result_free(&r);
    r = vt_run(version, VT_HANG_S);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "vrpc-dispatcher "));
    vt_result_free(&r);
    r = vt_run(bad, VT_HANG_S);
    ck_assert_int_eq(r.status, 2);
    vt_result_free(&r);
    r = vt_run(chelp, VT_HANG_S);
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    r = vt_run(cversion, VT_HANG_S);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "vrpc-ctl "));
    vt_result_free(&r);

    /* A dispatcher.yaml with an unknown key stops the start (exit 1, file:line:col). */
    char dir[] = "/tmp/vdt-cli-XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/policy.d", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/dispatcher.yaml", dir);
    write_file(path, "max-calls-per-guest: 10\nmax-calls-per-gest: 3\n");
    const char *start[] = {
        VRPC_DISPATCHER,         "--etc", dir, "--socket", "/tmp/vdt-cli.sock", "--control",
        "/tmp/vdt-cli-ctl.sock", NULL};
    r = vt_run(start, VT_HANG_S);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "dispatcher.yaml:2:1: unknown key"), "%s", r.err);
    vt_result_free(&r);
    /* Valid configuration, but no xenstore outside the sim: exit 1, sockets removed. */
    write_file(path, "max-calls-per-guest: 10\n");
    r = vt_run(start, VT_HANG_S);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "xenstore"), "%s", r.err);
    ck_assert_int_ne(access("/tmp/vdt-cli.sock", F_OK), 0);
    ck_assert_int_ne(access("/tmp/vdt-cli-ctl.sock", F_OK), 0);
    vt_result_free(&r);
    write_file(path, "max-calls-per-guest: 0\n");
    r = vt_run(start, VT_HANG_S);
    ck_assert_int_eq(r.status, 1);
    ck_assert_msg(strstr(r.err, "dispatcher.yaml:1:22: invalid value for max-calls-per-guest"),
                  "%s", r.err);
    vt_result_free(&r);
    const char *rm[] = {"rm", "-rf", dir, NULL};
    r = vt_run(rm, VT_HANG_S);
    vt_result_free(&r);
}
END_TEST

/* Run argv with @input (small: it must fit a pipe) on stdin; capture stdout and stderr. */
static VtResult run_stdin(Env *e, const char *const *argv, const char *input)
{
    char out[160], err[160];
    VtResult r = {.status = -1};
    int p[2];
    pid_t pid;

    snprintf(out, sizeof(out), "%s/run.out", e->dir);
    snprintf(err, sizeof(err), "%s/run.err", e->dir);
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    ck_assert_int_eq(write(p[1], input, strlen(input)), (ssize_t)strlen(input));
    close(p[1]);
    pid = fork();
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int x = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(p[0], 0);
        dup2(o, 1);
        dup2(x, 2);
        unsetenv("VRPCSIM_INSTANCE");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[0]);
    r.status = vt_wait(pid, 60000);
    r.out = vt_read_file(out);
    r.err = vt_read_file(err);
    return r;
}

static VtResult real_call(Env *e, const char *dom, const char *input, const char *target,
                          const char *svc)
{
    char sock[160];
    snprintf(sock, sizeof(sock), "%s/run/%s.sock", e->dir, dom);
    const char *argv[] = {VRPC_SIM_BIN, "exec",     "--ns",
                          e->ns,        dom,        "--",
                          VRPC_CALL,    "--socket", strcmp(dom, "dom0") ? sock : e->sock,
                          target,       svc,        NULL};
    return run_stdin(e, argv, input);
}

static pid_t real_agent_start(Env *e, const char *dom)
{
    char sock[160], log[160];
    snprintf(sock, sizeof(sock), "%s/run/%s.sock", e->dir, dom);
    snprintf(log, sizeof(log), "%s/vrpc-agent-%s-%d.log", e->dir, dom, e->n_agents);
    const char *argv[] = {VRPC_SIM_BIN, "exec",  "--ns", e->ns,      dom,  "--",
                          VRPC_AGENT,   "--etc", e->etc, "--socket", sock, NULL};
    ck_assert_int_lt(e->n_agents, MAX_AGENTS);
    e->agent[e->n_agents] = vt_spawn(argv, log);
    snprintf(e->agent_dom[e->n_agents], sizeof(e->agent_dom[0]), "%s", dom);
    return e->agent[e->n_agents++];
}

/* The same paths with the real vrpc-agent and vrpc-call in place of fake-agent. */
START_TEST(real_agent)
{
    Env e;
    const char *guests[] = {"work", "vault", NULL};
    env_up(&e, "real", NULL, guests);
    real_agent_start(&e, "work");
    pid_t vault = real_agent_start(&e, "vault");
    wait_guests(&e, 2);

    VtResult r = real_call(&e, "work", "hello from work\n", "dom0", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "%d %s (log %s)", r.status, r.err, e.log);
    ck_assert_str_eq(r.out, "HELLO FROM WORK\n");
    vt_result_free(&r);
    r = real_call(&e, "work", "to vault\n", "vault", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "TO VAULT\n");
    vt_result_free(&r);
    r = real_call(&e, "work", "loop\n", "work", "demo.Echo");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "loop\n");
    vt_result_free(&r);
    r = real_call(&e, "dom0", "from dom0\n", "vault", "demo.Uppercase");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "FROM DOM0\n");
    vt_result_free(&r);
    r = real_call(&e, "work", "", "dom0", "demo.Missing");
    ck_assert_int_eq(r.status, 127);
    ck_assert_str_eq(r.err, "vrpc-call: demo.Missing not found in dom0\n");
    vt_result_free(&r);
    r = real_call(&e, "work", "", "vault", "nosuch.Service");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "vrpc-call: nosuch.Service to vault refused\n");
    vt_result_free(&r);
    /* vrpc-ctl stats: the vchan to work has carried events both ways (vrpc-bench reads them) */
    VtResult st = ctl(&e, "stats", NULL, NULL, NULL);
    unsigned long long sent = 0, consumed = 0;
    ck_assert_msg(st.status == 0, "stats: %d %s", st.status, st.err);
    const char *line = strstr(st.out, "guest work domid ");
    ck_assert_msg(line && sscanf(line, "guest work domid %*d events-sent %llu events-consumed %llu",
                                 &sent, &consumed) == 2,
                  "stats: %s", st.out);
    ck_assert_msg(sent > 0 && consumed > 0, "stats: %s", st.out);
    vt_result_free(&st);

    /* The agent restarts: the new offer is picked up, work is untouched. */
    agent_stop(&e, vault, SIGTERM);
    ck_assert(wait_status(&e, "guest vault", false));
    real_agent_start(&e, "vault");
    wait_guests(&e, 2);
    r = real_call(&e, "work", "again\n", "vault", "demo.Uppercase");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "AGAIN\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

/* --sched-batch (--sched batch): the daemon runs as SCHED_BATCH and calls work as ever (that
 * a handler starts as SCHED_OTHER nevertheless is services-spawn's sched_reset); --sched other
 * leaves it SCHED_OTHER. */
START_TEST(sched_batch)
{
    Env e;
    const char *guests[] = {"work", NULL};

    dtest_disp_option = "--sched-batch";
    env_up(&e, "batch", NULL, guests);
    dtest_disp_option = NULL;
    ck_assert_int_eq(sched_getscheduler(e.disp), SCHED_BATCH);
    VtResult r = guest_call(&e, "work", "batch\n", "dom0", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "status %d err %s (log %s)", r.status, r.err, e.log);
    ck_assert_str_eq(r.out, "BATCH\n");
    vt_result_free(&r);
    env_down(&e);

    dtest_disp_option = "--sched=other";
    env_up(&e, "other", NULL, guests);
    dtest_disp_option = NULL;
    ck_assert_int_eq(sched_getscheduler(e.disp), SCHED_OTHER);
    r = guest_call(&e, "work", "other\n", "dom0", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "status %d err %s (log %s)", r.status, r.err, e.log);
    ck_assert_str_eq(r.out, "OTHER\n");
    vt_result_free(&r);
    env_down(&e);
}
END_TEST

/* --sched auto, the default: SCHED_BATCH while the daemon serves calls, SCHED_OTHER while a
 * stream moves bulk data through it, SCHED_BATCH again once that stopped. Waits on the
 * daemon's state. */
START_TEST(sched_auto)
{
    Env e;
    const char *guests[] = {"work", NULL};
    char sock[160], cmd[1024], log[160];
    long long deadline;
    int pol;

    env_up(&e, "auto", NULL, guests);
    real_agent_start(&e, "work");
    wait_guests(&e, 1);
    ck_assert_int_eq(sched_getscheduler(e.disp), SCHED_BATCH);

    /* zeros through demo.Echo in dom0 until stopped: DATA both ways on the guest's vchan */
    snprintf(sock, sizeof(sock), "%s/run/work.sock", e.dir);
    snprintf(log, sizeof(log), "%s/flood.log", e.dir);
    snprintf(cmd, sizeof(cmd),
             "exec %s exec --ns %s work -- %s --socket %s dom0 demo.Echo "
             "</dev/zero >/dev/null",
             VRPC_SIM_BIN, e.ns, VRPC_CALL, sock);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t flood = vt_spawn(argv, log);
    deadline = now_ms() + VT_HANG_MS;
    while ((pol = sched_getscheduler(e.disp)) == SCHED_BATCH && now_ms() < deadline) {
        ck_assert_msg(vt_wait(flood, 0) == -1, "the stream ended (log %s)", log);
        sleep_ms(10);
    }
    ck_assert_int_eq(pol, SCHED_OTHER);
    kill(flood, SIGTERM);
    ck_assert_int_ge(vt_wait(flood, VT_HANG_MS), 0);

    /* calls only: back to SCHED_BATCH (looked at in the daemon's passes, hence the calls) */
    deadline = now_ms() + VT_HANG_MS;
    while ((pol = sched_getscheduler(e.disp)) == SCHED_OTHER && now_ms() < deadline) {
        VtResult r = real_call(&e, "work", "", "dom0", "vrpc.Ping");
        ck_assert_msg(r.status == 0, "status %d err %s (log %s)", r.status, r.err, e.log);
        vt_result_free(&r);
        sleep_ms(20);
    }
    ck_assert_int_eq(pol, SCHED_BATCH);
    env_down(&e);
}
END_TEST

int main(void)
{
    const VtCase cases[] = {
        {"guest_to_dom0", guest_to_dom0, 300},
        {"refused", refused, 300},
        {"not_found", not_found, 300},
        {"guest_to_guest", guest_to_guest, 300},
        {"loopback", loopback, 300},
        {"forged_source", forged_source, 300},
        {"malformed_frame", malformed_frame, 300},
        {"ping_flood", ping_flood, 300},
        {"wrong_direction", wrong_direction, 300},
        {"call_quota", call_quota, 300},
        {"guest_destroyed", guest_destroyed, 300},
        {"agent_restart", agent_restart, 300},
        {"dispatcher_restart", dispatcher_restart, 300},
        {"policy_reload", policy_reload, 300},
        {"policy_partial_file", policy_partial_file, 300},
        {"ctl", ctl_cmds, 300},
        {"cli", cli, 300},
        {"real_agent", real_agent, 300},
        {"sched_batch", sched_batch, 300},
        {"sched_auto", sched_auto, 300},
    };
    return vt_main("dispatcher", cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
