/* SPDX-License-Identifier: MIT */
/*
 * test-e2e-ask: the ask program end to end, with the real daemons: `vrpc-sim up --vrpc` with
 * a dispatcher.yaml naming an ask program (a test script answering what the file "answer"
 * next to it says, or hanging), real vrpc-agents and vrpc-call. Covers allow, allow NAME,
 * a name outside the rule, junk, and a prompt hanging past ask-timeout while other calls
 * from the same guest (multiplexed by its agent) and from other guests go on. Split into
 * ctest entries e2e.NAME with CK_RUN_CASE.
 */

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "leak.h"
#include "vtest.h"

static char g_ns[64];
static char g_etc[256];
static char g_path[512];
/* The daemons' fds, the instance's processes, grants and xenstore nodes after setup. */
static VtLeak *g_leak;

static const char ask_script[] = "#!/bin/sh\n"
                                 "d=${0%/*}\n"
                                 "echo $$ >> \"$d/ask.pids\"\n"
                                 "read mode < \"$d/ask.mode\"\n"
                                 "case $mode in\n"
                                 "hang) exec sleep 1000 ;;\n"
                                 "*) cat \"$d/ask.answer\" ;;\n"
                                 "esac\n";

static const char ask_policy[] =
    "rules:\n"
    "  - service: demo.Uppercase\n    source: work\n    target: \"@adminvm\"\n"
    "    action: ask\n"
    "  - service: demo.Echo\n    source: work\n    target: \"@anyvm\"\n    action: ask\n"
    "    default_target: vault\n";

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *etc_path(const char *name)
{
    snprintf(g_path, sizeof g_path, "%s/%s", g_etc, name);
    return g_path;
}

static void put(const char *name, const char *text, mode_t mode)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", etc_path(name));
    FILE *f = fopen(tmp, "w");
    ck_assert_msg(f, "cannot write %s", tmp);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(tmp, mode), 0);
    ck_assert_int_eq(rename(tmp, etc_path(name)), 0);
}

static void setup(const char *tag, const char *timeout)
{
    char yaml[600];
    snprintf(g_ns, sizeof g_ns, "%s", vt_ns(tag));
    snprintf(g_etc, sizeof g_etc, "/tmp/vrpc-e2e-%s-XXXXXX", g_ns);
    ck_assert_ptr_nonnull(mkdtemp(g_etc));
    ck_assert_int_eq(chmod(g_etc, 0755), 0);
    const char *cp[] = {"cp", "-rL", VRPC_EXAMPLE_ETC_DIR "/.", g_etc, NULL};
    VtResult r = vt_run(cp, 60);
    ck_assert_msg(r.status == 0, "cp: %s", r.err);
    vt_result_free(&r);
    put("ask", ask_script, 0755);
    put("ask.mode", "answer\n", 0644);
    put("ask.answer", "allow\n", 0644);
    put("policy.d/40-ask.yaml", ask_policy, 0644);
    snprintf(yaml, sizeof yaml, "ask-program: %s/ask\nask-timeout: %s\n", g_etc, timeout);
    put("dispatcher.yaml", yaml, 0644);
    vt_sim_up_vrpc(g_ns, g_etc, (const char *const[]){"work", "vault", NULL});
    /* One call first: the daemons finish setting up their links (lazily opened fds). */
    const char *ping[] = {VRPC_SIM_BIN, "exec",        "--ns", g_ns,        "work",
                          "--",         VRPC_CALL_BIN, "dom0", "vrpc.Ping", NULL};
    r = vt_run(ping, 120);
    ck_assert_msg(r.status == 0, "warm-up call: %d %s", r.status, r.err);
    vt_result_free(&r);
    g_leak = vt_leak_new();
    vt_leak_instance(g_leak, g_ns, vt_instance_pid(g_ns, "vrpc-dispatcher", -1));
    for (int domid = 1; domid <= 2; domid++) {
        char label[64];
        pid_t agent = vt_instance_pid(g_ns, "vrpc-agent", domid);
        ck_assert_msg(agent > 0, "no agent in domain %d", domid);
        snprintf(label, sizeof label, "agent fds (domain %d)", domid);
        vt_leak_fds(g_leak, label, agent, VT_LEAK_SIM_SENDERS);
    }
    vt_leak_settle(g_leak);
}

static void teardown(void)
{
    /* no ask program, handler or connection left while the daemons run */
    vt_leak_check(g_leak);
    vt_leak_free(g_leak);
    g_leak = NULL;
    vt_sim_down(g_ns);
    /* Every ask program was reaped by the dispatcher (or killed with it): none is left. */
    char *pids = vt_read_file(etc_path("ask.pids"));
    for (char *p = pids, *nl; p && *p; p = nl + 1) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%d", atoi(p));
        ck_assert_msg(access(proc, F_OK) != 0, "ask program %d left", atoi(p));
        if (!(nl = strchr(p, '\n')))
            break;
    }
    free(pids);
    const char *rm[] = {"rm", "-rf", g_etc, NULL};
    VtResult r = vt_run(rm, 60);
    vt_result_free(&r);
}

/* vrpc-call in @dom, stdin /dev/null. */
static VtResult call(const char *dom, const char *target, const char *service)
{
    const char *argv[] = {VRPC_SIM_BIN, "exec",        "--ns", g_ns,    dom,
                          "--",         VRPC_CALL_BIN, target, service, NULL};
    return vt_run(argv, 120);
}

static void expect(const char *dom, const char *target, const char *service, int status,
                   const char *out)
{
    VtResult r = call(dom, target, service);
    ck_assert_msg(r.status == status, "%s %s %s: %d (want %d) %s", dom, target, service, r.status,
                  status, r.err);
    if (out)
        ck_assert_str_eq(r.out, out);
    if (status == 126) {
        char want[200];
        snprintf(want, sizeof want, "vrpc-call: %s to %s refused\n", service, target);
        ck_assert_str_eq(r.err, want);
    }
    vt_result_free(&r);
}

START_TEST(ask_answers)
{
    setup("askans", "600");
    expect("work", "dom0", "demo.Uppercase", 0, "");
    put("ask.answer", "allow vault\n", 0644);
    expect("work", "@default", "demo.Echo", 0, ""); /* default_target */
    put("ask.answer", "allow work\n", 0644);
    expect("work", "@default", "demo.Echo", 0, ""); /* @anyvm: loopback */
    put("ask.answer", "allow dom0\n", 0644);
    expect("work", "@default", "demo.Echo", 126, NULL); /* outside the rule */
    put("ask.answer", "allow\n", 0644);
    expect("work", "@default", "demo.Echo", 126, NULL); /* no target to go to */
    put("ask.answer", "deny\n", 0644);
    expect("work", "dom0", "demo.Uppercase", 126, NULL);
    put("ask.answer", "sure, why not\n", 0644);
    expect("work", "dom0", "demo.Uppercase", 126, NULL);
    char audit[600];
    snprintf(audit, sizeof audit, "%s/audit.log", vt_instance_dir(g_ns));
    static const char want_allow[] = "\"resolved_target\":\"vault\",\"service\":\"demo.Echo\""
                                     ",\"argument\":\"\",\"policy\":\"ask\",\"answer\":"
                                     "\"allow vault\",\"decision\":\"allow\"";
    static const char want_junk[] = "\"answer\":\"sure, why not\",\"decision\":\"deny\","
                                    "\"reason\":\"ask: unrecognised answer\"";
    /* The caller may have its answer a moment before the dispatcher writes the audit line:
     * wait for the line (the bound is only a hang guard). */
    char *text = NULL;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end; usleep(20000)) {
        free(text);
        text = vt_read_file(audit);
        if (text && strstr(text, want_allow) && strstr(text, want_junk))
            break;
    }
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, want_allow), "no audit line for 'allow vault': %s", text);
    ck_assert_msg(strstr(text, want_junk), "no audit line for the junk answer: %s", text);
    free(text);
    teardown();
}
END_TEST

/* A prompt hangs past ask-timeout; meanwhile the same guest's other calls (through the same
 * agent and vchan) and another guest's calls complete. */
START_TEST(ask_hang)
{
    setup("askhang", "15");
    put("ask.mode", "hang\n", 0644);
    const char *argv[] = {VRPC_SIM_BIN,  "exec", "--ns",           g_ns, "work", "--",
                          VRPC_CALL_BIN, "dom0", "demo.Uppercase", NULL};
    long long t0 = now_ms();
    pid_t asker = vt_spawn(argv, NULL);
    long long end = now_ms() + VT_HANG_MS;
    char *pids = NULL;
    while (!(pids = vt_read_file(etc_path("ask.pids"))) && now_ms() < end)
        usleep(20000);
    ck_assert_msg(pids, "the ask program did not start");
    free(pids);
    expect("work", "dom0", "vrpc.Ping", 0, NULL);
    expect("work", "vault", "vrpc.Ping", 0, NULL);
    expect("vault", "dom0", "demo.Uppercase", 0, "");
    expect("vault", "work", "vrpc.Ping", 0, NULL);
    ck_assert_msg(now_ms() - t0 < 15000, "machine too slow for this test's 15 s window");
    ck_assert_int_eq(waitpid(asker, NULL, WNOHANG), 0); /* still pending */
    ck_assert_int_eq(vt_wait(asker, 120000), 126);
    ck_assert_msg(now_ms() - t0 >= 14000, "denied before ask-timeout");
    teardown();
}
END_TEST

int main(void)
{
    const VtCase cases[] = {{"ask_answers", ask_answers, 300}, {"ask_hang", ask_hang, 300}};
    return vt_main("e2e-ask", cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
