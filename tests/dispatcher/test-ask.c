/* SPDX-License-Identifier: MIT */
/*
 * test-ask - integration tests over the sim of the dispatcher's ask program (dispatcher.yaml
 * ask-program / ask-timeout: allow, allow NAME, a name outside the rule, junk, a failing
 * program, a hang past the timeout while other calls, guests and a policy reload go on, no
 * program configured, the caller going away), of the notify program (notify: true, the
 * rate limit) and of the audit line telling the truth (routing refusals, default denies,
 * quota, cancelled and timed-out calls). The programs are shell scripts in a folder of the
 * test, driven by files there: they record their argv, environment and pid, and answer what
 * the test put in "answer" according to "mode". Every test ends with env_down()'s leak
 * checks (the dispatcher's fds, calls in flight), and checks itself that every program the
 * dispatcher started was reaped. One ctest entry per test case (CK_RUN_CASE).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dtest.h"

/* The ask program. mode: answer (print the file "answer", exit 0), fail (print allow, exit
 * 3), kill (print allow, die of SIGKILL), hang (sleep for good), junk-hang (print "maybe",
 * then sleep), wait (wait for the file "release", then answer). It appends its pid to
 * "pids" and "N|SOURCE|CALL|TARGET|DEFAULT" to "args", and its environment to "env", its
 * scheduling policy (/proc/PID/stat field 41) to "sched". */
static const char ask_script[] =
    "#!/bin/sh\n"
    "d=${0%/*}\n"
    "echo $$ >> \"$d/pids\"\n"
    "printf '%s|%s|%s|%s|%s\\n' \"$#\" \"$1\" \"$2\" \"$3\" \"$4\" >> \"$d/args\"\n"
    "env > \"$d/env\"\n"
    "cut -d' ' -f41 /proc/$$/stat > \"$d/sched\"\n"
    "read mode < \"$d/mode\"\n"
    "case $mode in\n"
    "answer) cat \"$d/answer\"; exit 0 ;;\n"
    "fail) echo allow; exit 3 ;;\n"
    "kill) echo allow; kill -9 $$ ;;\n"
    "hang) exec sleep 1000 ;;\n"
    "junk-hang) echo maybe; exec sleep 1000 ;;\n"
    "wait) while [ ! -e \"$d/release\" ]; do sleep 0.02; done; cat \"$d/answer\" ;;\n"
    "esac\n";

/* The notify program: records its argv (6 fields), then waits for "notify-release" when
 * that mode is set. */
static const char notify_script[] =
    "#!/bin/sh\n"
    "d=${0%/*}\n"
    "echo $$ >> \"$d/pids\"\n"
    "printf '%s|%s|%s|%s|%s|%s\\n' \"$#\" \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" >> \"$d/notified\"\n"
    "if [ -e \"$d/notify-wait\" ]; then\n"
    "  while [ ! -e \"$d/notify-release\" ]; do sleep 0.02; done\n"
    "fi\n";

/* Ask rules, read before the test policy (40 < 50). */
static const char ask_policy[] = "rules:\n"
                                 "  - service: demo.Uppercase\n"
                                 "    source: work\n"
                                 "    target: \"@adminvm\"\n"
                                 "    action: ask\n"
                                 "  - service: demo.Echo\n"
                                 "    source: work\n"
                                 "    target: \"@adminvm\"\n"
                                 "    action: ask\n"
                                 "  - service: demo.Echo\n"
                                 "    source: dom0\n"
                                 "    target: \"@adminvm\"\n"
                                 "    action: ask\n"
                                 "  - service: fake.Echo\n"
                                 "    source: work\n"
                                 "    target: vault\n"
                                 "    action: ask\n"
                                 "  - service: fake.Who\n"
                                 "    source: work\n"
                                 "    target: \"@anyvm\"\n"
                                 "    action: ask\n"
                                 "    default_target: vault\n"
                                 "  - service: fake.Exit\n"
                                 "    source: work\n"
                                 "    target: personal\n"
                                 "    action: ask\n"
                                 "    default_target: vault\n"
                                 "    notify: true\n"
                                 "  - service: vrpc.Ping\n"
                                 "    source: personal\n"
                                 "    target: \"@adminvm\"\n"
                                 "    action: allow\n"
                                 "    notify: true\n";

typedef struct Ask {
    Env e;
    char dir[64]; /* the programs and their files */
    char path[160];
} Ask;

static const char *apath(Ask *a, const char *name)
{
    snprintf(a->path, sizeof(a->path), "%s/%s", a->dir, name);
    return a->path;
}

static void put(Ask *a, const char *name, const char *text)
{
    write_file(apath(a, name), text);
}

static char *get(Ask *a, const char *name)
{
    return vt_read_file(apath(a, name));
}

/* The folder of programs (before the environment: dispatcher.yaml names them). */
static void progs_init(Ask *a)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->dir, sizeof(a->dir), "/tmp/vdt-askprog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(a->dir));
    ck_assert_int_eq(chmod(a->dir, 0755), 0);
    put(a, "ask", ask_script);
    ck_assert_int_eq(chmod(apath(a, "ask"), 0755), 0);
    put(a, "notify", notify_script);
    ck_assert_int_eq(chmod(apath(a, "notify"), 0755), 0);
    put(a, "noexec", ask_script);
    put(a, "mode", "answer\n");
    put(a, "answer", "allow\n");
}

/* Start the environment with dispatcher.yaml @yaml_in, where "@DIR@" stands for the
 * programs' folder (NULL: no dispatcher.yaml). */
static void ask_up(Ask *a, const char *tag, const char *yaml_in, const char *const *guests)
{
    char yaml[512], path[256];
    size_t n = 0;

    for (const char *p = yaml_in; p && *p && n + sizeof(a->dir) < sizeof(yaml);) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "%s", a->dir);
            p += 5;
        } else {
            yaml[n++] = *p++;
        }
    }
    yaml[n] = '\0';
    env_up(&a->e, tag, yaml_in ? yaml : NULL, guests);
    snprintf(path, sizeof(path), "%s/policy.d/40-ask.yaml", a->e.etc);
    write_file(path, ask_policy);
    /* The reload is seen when the ask rule decides a call (no program ran before it). */
    long long end = now_ms() + VT_HANG_MS;
    char *log = NULL;
    do {
        free(log);
        sleep_ms(20);
        log = vt_read_file(a->e.log);
    } while (now_ms() < end && !(log && strstr(log, "policy reloaded")));
    ck_assert_msg(log && strstr(log, "policy reloaded"), "no reload (log %s)", a->e.log);
    free(log);
}

/* Every program the dispatcher started has been reaped: no pid of "pids" is left, not even
 * as a zombie. Polled: the dispatcher reaps when it sees the exit. */
static void assert_reaped(Ask *a)
{
    char *pids = get(a, "pids"), *save = NULL;
    long long end = now_ms() + VT_HANG_MS;

    for (char *p = pids ? strtok_r(pids, "\n", &save) : NULL; p; p = strtok_r(NULL, "\n", &save)) {
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/%s", p);
        while (access(proc, F_OK) == 0 && now_ms() < end)
            sleep_ms(20);
        ck_assert_msg(access(proc, F_OK) != 0, "program %s still exists (not reaped)", p);
    }
    free(pids);
}

static void ask_down(Ask *a)
{
    assert_reaped(a);
    env_down(&a->e);
    const char *rm[] = {"rm", "-rf", a->dir, NULL};
    VtResult r = vt_run(rm, 30);
    vt_result_free(&r);
}

static const char *const yaml_ask = "ask-program: @DIR@/ask\nask-timeout: 600\n";

/* The audit line of the last @service call from @source has every @needle (NULL-ended). */
static void assert_audit(Env *e, const char *source, const char *service,
                         const char *const *needles)
{
    char *line = wait_audit_line(e, source, service);
    ck_assert_msg(line, "no audit line for %s %s", source, service);
    ck_assert_msg(json_flat_object(line), "not JSON: %s", line);
    for (; *needles; needles++)
        ck_assert_msg(strstr(line, *needles), "no %s in %s", *needles, line);
    free(line);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- ask ---------------------------------------------------------------------------------- */

START_TEST(ask_allow)
{
    Ask a;
    const char *guests[] = {"work", "vault", NULL};
    progs_init(&a);
    ask_up(&a, "askallow", yaml_ask, guests);
    agent_serve(&a.e, "vault");
    wait_guests(&a.e, 1);

    /* To dom0, with stdin the caller sent while the prompt was pending. */
    VtResult r = guest_call(&a.e, "work", "held while asking\n", "dom0", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "%d %s (log %s)", r.status, r.err, a.e.log);
    ck_assert_str_eq(r.out, "HELD WHILE ASKING\n");
    vt_result_free(&r);
    /* An empty stdin: its EOF arrived during the prompt and still reaches the handler. */
    r = guest_call(&a.e, "work", "", "dom0", "demo.Echo");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "");
    vt_result_free(&r);
    /* To a guest (relay), with data, and with only the EOF. */
    r = guest_call(&a.e, "work", "relayed\n", "vault", "fake.Echo");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "relayed\n");
    vt_result_free(&r);
    r = guest_call(&a.e, "work", NULL, "vault", "fake.Who+x");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "source=work target=vault service=fake.Who arg=x\n");
    vt_result_free(&r);

    /* argv: SOURCE SERVICE[+ARG] TARGET DEFAULT_TARGET; a clean environment. */
    char *args = get(&a, "args");
    ck_assert_ptr_nonnull(args);
    ck_assert_msg(strstr(args, "4|work|demo.Uppercase|dom0|\n"), "%s", args);
    ck_assert_msg(strstr(args, "4|work|fake.Echo|vault|\n"), "%s", args);
    ck_assert_msg(strstr(args, "4|work|fake.Who+x|vault|vault\n"), "%s", args);
    free(args);
    char *env = get(&a, "env");
    ck_assert_ptr_nonnull(env);
    ck_assert_msg(strstr(env, "PATH=") && !strstr(env, "VRPCSIM") && !strstr(env, "HOME="),
                  "environment: %s", env);
    free(env);
    /* SCHED_OTHER (0), as handlers: not the dispatcher's SCHED_BATCH of --sched auto */
    char *sched = get(&a, "sched");
    ck_assert_ptr_nonnull(sched);
    ck_assert_str_eq(sched, "0\n");
    free(sched);
    assert_audit(&a.e, "work", "demo.Uppercase",
                 NEEDLES("\"resolved_target\":\"dom0\"", "\"policy\":\"ask\"",
                         "\"answer\":\"allow\"", "\"decision\":\"allow\"", "\"reason\":\"\"",
                         "40-ask.yaml:2\"", "\"end\":\"exit\",\"exit\":0,"));
    char *line = audit_line(&a.e, "work", "demo.Uppercase");
    ck_assert_ptr_null(strstr(line, "\"ask_us\":null"));
    ck_assert_ptr_null(strstr(line, "\"spawn_us\":null"));
    free(line);
    ask_down(&a);
}
END_TEST

START_TEST(ask_allow_name)
{
    Ask a;
    const char *guests[] = {"work", "vault", "personal", NULL};
    progs_init(&a);
    ask_up(&a, "askname", yaml_ask, guests);
    agent_serve(&a.e, "vault");
    agent_serve(&a.e, "personal");
    wait_guests(&a.e, 2);

    /* The rule's target column is @anyvm: any guest named in the answer. */
    put(&a, "answer", "allow personal\n");
    VtResult r = guest_call(&a.e, "work", NULL, "@default", "fake.Who");
    ck_assert_msg(r.status == 0, "%d %s (log %s)", r.status, r.err, a.e.log);
    ck_assert_str_eq(r.out, "source=work target=@default service=fake.Who arg=\n");
    vt_result_free(&r);
    assert_audit(&a.e, "work", "fake.Who",
                 NEEDLES("\"target\":\"@default\"", "\"resolved_target\":\"personal\"",
                         "\"answer\":\"allow personal\"", "\"decision\":\"allow\""));
    /* The default_target, outside the target column (personal): allowed too. */
    put(&a, "answer", "allow vault\n");
    r = guest_call(&a.e, "work", NULL, "personal", "fake.Exit+5");
    ck_assert_msg(r.status == 5, "%d %s", r.status, r.err);
    vt_result_free(&r);
    assert_audit(
        &a.e, "work", "fake.Exit",
        NEEDLES("\"resolved_target\":\"vault\"", "\"answer\":\"allow vault\"", "\"exit\":5,"));
    /* A plain allow for a call naming no target has nowhere to go. */
    put(&a, "answer", "allow\n");
    r = guest_call(&a.e, "work", NULL, "@default", "fake.Who");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Who to @default refused\n");
    vt_result_free(&r);
    assert_audit(&a.e, "work", "fake.Who",
                 NEEDLES("\"answer\":\"allow\"", "\"decision\":\"deny\"",
                         "\"reason\":\"ask: answered allow, but the call names no target\"",
                         "\"end\":\"refused\",\"exit\":126,"));
    ask_down(&a);
}
END_TEST

START_TEST(ask_outside_rule)
{
    Ask a;
    const char *guests[] = {"work", "vault", "personal", NULL};
    progs_init(&a);
    ask_up(&a, "askout", yaml_ask, guests);
    agent_serve(&a.e, "vault");
    agent_serve(&a.e, "personal");
    wait_guests(&a.e, 2);

    /* fake.Echo: target column vault, no default_target. */
    static const char *const outside[] = {"allow personal\n", "allow dom0\n", "allow work\n"};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        put(&a, "answer", outside[i]);
        VtResult r = guest_call(&a.e, "work", "x", "vault", "fake.Echo");
        ck_assert_msg(r.status == 126, "%s: %d %s", outside[i], r.status, r.out);
        ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Echo to vault refused\n");
        vt_result_free(&r);
    }
    /* @anyvm never covers dom0. */
    put(&a, "answer", "allow @adminvm\n");
    VtResult r = guest_call(&a.e, "work", NULL, "vault", "fake.Who");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "fake.Who",
                 NEEDLES("\"answer\":\"allow @adminvm\"", "\"decision\":\"deny\"",
                         "\"resolved_target\":\"\"",
                         "\"reason\":\"ask: answered a target outside the rule\""));
    ask_down(&a);
}
END_TEST

START_TEST(ask_junk)
{
    Ask a;
    const char *guests[] = {"work", NULL};
    progs_init(&a);
    ask_up(&a, "askjunk", yaml_ask, guests);

    char longline[400];
    memset(longline, 'a', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    const char *const junk[] = {"deny\n", "yes\n",     "allow dom0 please\n", "ALLOW\n",
                                "\n",     "allow\r\n", "\x1b]0;pwned\a\n",    longline};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        put(&a, "answer", junk[i]);
        VtResult r = guest_call(&a.e, "work", "x", "dom0", "demo.Uppercase");
        ck_assert_msg(r.status == 126, "answer %zu: %d %s", i, r.status, r.out);
        ck_assert_str_eq(r.err, "fake-agent: vrpc: demo.Uppercase to dom0 refused\n");
        vt_result_free(&r);
        char *line = wait_audit_line(&a.e, "work", "demo.Uppercase");
        ck_assert_msg(json_flat_object(line), "not JSON: %s", line);
        ck_assert_msg(strstr(line, i == 0 ? "\"reason\":\"ask: answered deny\""
                                          : "\"reason\":\"ask: unrecognised answer\""),
                      "%zu: %s", i, line);
        free(line);
    }
    /* Escapes from the program reach the audit escaped, and the dispatcher's log too, where
     * every answer is shown (a deny as much as junk) */
    char *text = vt_read_file(a.e.audit);
    ck_assert_ptr_nonnull(strstr(text, "\"answer\":\"\\u001b]0;pwned\\u0007\""));
    free(text);
    text = vt_read_file(a.e.log);
    ck_assert_msg(text && strstr(text, "answer \"deny\": ask: answered deny") &&
                      strstr(text, "answer \"\\x1b]0;pwned\\x07\": ask: unrecognised answer") &&
                      !strstr(text, "\x1b"),
                  "dispatcher log: %s", text ? text : "(none)");
    free(text);
    /* A line that can never allow denies at once; the program is killed, not waited for. */
    put(&a, "mode", "junk-hang\n");
    VtResult r = guest_call(&a.e, "work", "x", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "demo.Uppercase",
                 NEEDLES("\"answer\":\"maybe\"", "\"reason\":\"ask: unrecognised answer\""));
    ask_down(&a); /* the sleeping program is gone */
}
END_TEST

START_TEST(ask_failing)
{
    Ask a;
    const char *guests[] = {"work", NULL};
    progs_init(&a);
    ask_up(&a, "askfail", yaml_ask, guests);

    /* "allow", but a non-zero exit: deny. */
    put(&a, "mode", "fail\n");
    VtResult r = guest_call(&a.e, "work", "x", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "demo.Uppercase",
                 NEEDLES("\"answer\":\"allow\"", "\"decision\":\"deny\"",
                         "\"reason\":\"ask: the ask program exited with status 3\""));
    put(&a, "mode", "kill\n");
    r = guest_call(&a.e, "work", "x", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "demo.Uppercase",
                 NEEDLES("\"reason\":\"ask: the ask program was killed by signal 9\""));
    /* A program that cannot be started. */
    char yaml[256], path[256];
    snprintf(yaml, sizeof(yaml), "ask-program: %s/noexec\n", a.dir);
    snprintf(path, sizeof(path), "%s/dispatcher.yaml", a.e.etc);
    disp_stop(&a.e);
    write_file(path, yaml);
    disp_start(&a.e);
    r = guest_call(&a.e, "work", "x", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "demo.Uppercase",
                 NEEDLES("\"reason\":\"ask: cannot run the ask program: Permission denied\""));
    char *log = vt_read_file(a.e.log);
    ck_assert_ptr_nonnull(strstr(log, "noexec: Permission denied (every ask will be denied)"));
    free(log);
    ask_down(&a);
}
END_TEST

/* The prompt hangs: while it is pending other calls (from the same source too), other
 * guests and a policy reload go on; past ask-timeout the call is denied and the program
 * killed and reaped. The asker is a dom0 caller: every fake-agent in a guest is that guest's
 * agent, so a second one in the same guest would replace the first's connection. */
START_TEST(ask_hang)
{
    Ask a;
    const char *guests[] = {"work", "vault", "personal", NULL};
    char clog[160], path[256];
    progs_init(&a);
    ask_up(&a, "askhang", "ask-program: @DIR@/ask\nask-timeout: 15\n", guests);
    agent_serve(&a.e, "vault");
    wait_guests(&a.e, 1);
    put(&a, "mode", "hang\n");

    snprintf(clog, sizeof(clog), "%s/asker.log", a.e.dir);
    const char *argv[] = {VRPC_SIM_BIN, "exec",     "--ns",   a.e.ns,      "dom0",   "--",
                          FAKE_AGENT,   "--socket", a.e.sock, "--wait-ms", "120000", "--input",
                          "x",          "call",     "dom0",   "demo.Echo", NULL};
    long long t0 = now_ms();
    pid_t asker = vt_spawn(argv, clog);
    long long end = now_ms() + VT_HANG_MS;
    char *pids = NULL;
    while (!(pids = get(&a, "pids")) && now_ms() < end)
        sleep_ms(20);
    ck_assert_msg(pids, "the ask program did not start (log %s)", a.e.log);
    pid_t prog = atoi(pids);
    free(pids);

    /* Meanwhile: other guests, a relay, the same source (dom0)... */
    VtResult r = guest_call(&a.e, "personal", "other guest\n", "dom0", "demo.Uppercase");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "OTHER GUEST\n");
    vt_result_free(&r);
    r = guest_call(&a.e, "personal", "relayed\n", "vault", "fake.Echo");
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    vt_result_free(&r);
    r = local_call(&a.e, "same source\n", "vault", "fake.Echo");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "same source\n");
    vt_result_free(&r);
    /* ... and a policy reload that takes effect. */
    snprintf(path, sizeof(path), "%s/policy.d/30-reload.yaml", a.e.etc);
    write_file(path, "rules:\n  - service: vrpc.Ping\n    source: personal\n"
                     "    target: \"@adminvm\"\n    action: deny\n");
    end = now_ms() + VT_HANG_MS;
    do {
        r = guest_call(&a.e, "personal", NULL, "dom0", "vrpc.Ping");
        if (r.status == 126)
            break;
        vt_result_free(&r);
        sleep_ms(20);
    } while (now_ms() < end);
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    /* All that while, the prompt was still pending. */
    ck_assert_msg(now_ms() - t0 < 15000, "machine too slow for this test's 15 s window");
    ck_assert_int_eq(waitpid(asker, NULL, WNOHANG), 0);
    ck_assert_int_eq(kill(prog, 0), 0);
    char *line = audit_line(&a.e, "dom0", "demo.Echo");
    ck_assert_ptr_null(line);
    char *s = ctl_status(&a.e);
    ck_assert_msg(s && strstr(s, "calls-in-flight 1 "), "%s", s);
    /* vrpc-ctl status lists the pending prompt: who asks for what, since when, its pid */
    char want[64];
    snprintf(want, sizeof(want), " pid %d\n", (int)prog);
    const char *ask = strstr(s, "\nask dom0 demo.Echo dom0 pending-ms ");
    ck_assert_msg(ask && strstr(ask, want), "%s", s);
    free(s);

    /* Past the timeout: denied, the program killed and reaped. */
    ck_assert_int_eq(vt_wait(asker, 120000), 126);
    s = ctl_status(&a.e);
    ck_assert_msg(s && !strstr(s, "\nask "), "%s", s);
    free(s);
    ck_assert_msg(now_ms() - t0 >= 14000, "denied before the timeout");
    assert_audit(&a.e, "dom0", "demo.Echo",
                 NEEDLES("\"policy\":\"ask\"", "\"answer\":\"\"", "\"decision\":\"deny\"",
                         "\"reason\":\"ask: no answer within 15 s\"", "\"exit\":126,"));
    ask_down(&a);
}
END_TEST

START_TEST(ask_no_program)
{
    Ask a;
    const char *guests[] = {"work", NULL};
    progs_init(&a);
    ask_up(&a, "asknone", "log-level: info\n", guests);

    VtResult r = guest_call(&a.e, "work", "x", "dom0", "demo.Uppercase");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: demo.Uppercase to dom0 refused\n");
    vt_result_free(&r);
    assert_audit(&a.e, "work", "demo.Uppercase",
                 NEEDLES("\"policy\":\"ask\"", "\"decision\":\"deny\"",
                         "\"reason\":\"ask: no ask program configured\"", "\"ask_us\":null"));
    char *args = get(&a, "args");
    ck_assert_ptr_null(args);
    ask_down(&a);
}
END_TEST

/* The caller goes away while its prompt is pending: the program is killed and reaped, the
 * call is logged as cancelled, and the quota is released. */
START_TEST(ask_caller_gone)
{
    Ask a;
    const char *guests[] = {"work", NULL};
    progs_init(&a);
    ask_up(&a, "askgone", yaml_ask, guests);
    put(&a, "mode", "wait\n");

    const char *argv[] = {VRPC_SIM_BIN, "exec",     "--ns",     a.e.ns,      "dom0",
                          "--",         FAKE_AGENT, "--socket", a.e.sock,    "--wait-ms",
                          "120000",     "call",     "dom0",     "demo.Echo", NULL};
    pid_t caller = vt_spawn(argv, NULL);
    long long end = now_ms() + VT_HANG_MS;
    char *pids = NULL;
    while (!(pids = get(&a, "pids")) && now_ms() < end)
        sleep_ms(20);
    ck_assert_ptr_nonnull(pids);
    free(pids);
    ck_assert_int_eq(kill(caller, SIGKILL), 0);
    ck_assert_int_eq(vt_wait(caller, VT_HANG_MS), 128 + SIGKILL);
    assert_audit(&a.e, "dom0", "demo.Echo",
                 NEEDLES("\"policy\":\"ask\"", "\"end\":\"cancelled\",\"exit\":null,",
                         "\"reason\":\"the caller went away\""));
    assert_reaped(&a);
    put(&a, "release", "");
    ask_down(&a);
}
END_TEST

/* Pending prompts count against the caller's calls quota. */
START_TEST(ask_quota)
{
    Ask a;
    const char *guests[] = {"work", NULL};
    progs_init(&a);
    ask_up(&a, "askquota", "ask-program: @DIR@/ask\nmax-calls-per-guest: 2\n", guests);
    put(&a, "mode", "wait\n");

    /* Three calls at once: two prompts pending, the third over the quota. */
    const char *opts[] = {"--count", "3", "--wait-ms", "60000", NULL};
    char clog[160];
    snprintf(clog, sizeof(clog), "%s/count.log", a.e.dir);
    const char *argv[] = {VRPC_SIM_BIN, "exec",     "--ns",  a.e.ns,      "work",
                          "--",         FAKE_AGENT, opts[0], opts[1],     opts[2],
                          opts[3],      "call",     "dom0",  "demo.Echo", NULL};
    pid_t caller = vt_spawn(argv, clog);
    ck_assert(wait_status(&a.e, "guest work domid 1 calls-in-flight 2", true));
    char *text = NULL;
    long long end = now_ms() + VT_HANG_MS;
    while (!((text = vt_read_file(a.e.audit)) && strstr(text, "too many calls")) &&
           now_ms() < end) {
        free(text);
        sleep_ms(20);
    }
    ck_assert_msg(text && strstr(text, "\"service\":\"demo.Echo\",\"argument\":\"\",\"policy\":"
                                       "\"none\",\"answer\":\"\",\"decision\":\"deny\","
                                       "\"reason\":\"too many calls\""),
                  "%s", text);
    free(text);
    put(&a, "release", "");
    ck_assert_int_eq(vt_wait(caller, 60000), 0);
    char *out = vt_read_file(clog);
    ck_assert_msg(strstr(out, "exit 125 reason vrpc: too many calls\n"), "%s", out);
    ck_assert_msg(strstr(out, "exit 0 reason \n"), "%s", out);
    free(out);
    ask_down(&a);
}
END_TEST

/* notify: true runs the notify program with the ask argv plus the decision; a flood of
 * notifications is cut at the rate limit. */
START_TEST(ask_notify)
{
    Ask a;
    const char *guests[] = {"work", "vault", "personal", NULL};
    progs_init(&a);
    ask_up(&a, "asknotify", "ask-program: @DIR@/ask\nnotify-program: @DIR@/notify\n", guests);
    agent_serve(&a.e, "vault");
    wait_guests(&a.e, 1);

    VtResult r = guest_call(&a.e, "personal", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    put(&a, "answer", "allow vault\n");
    r = guest_call(&a.e, "work", NULL, "personal", "fake.Exit+0");
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    put(&a, "answer", "deny\n");
    r = guest_call(&a.e, "work", NULL, "personal", "fake.Exit+0");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    /* Denials notify by default; allows without notify: true do not. */
    r = guest_call(&a.e, "personal", NULL, "vault", "nothing.Allowed");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    r = guest_call(&a.e, "work", "x", "vault", "fake.Echo+quiet");
    vt_result_free(&r);
    const char *const want[] = {
        "5|personal|vrpc.Ping|dom0||allow\n",
        "5|work|fake.Exit+0|vault|vault|allow\n",
        "5|work|fake.Exit+0|personal|vault|deny\n",
        "5|personal|nothing.Allowed|vault||deny\n",
    };
    long long end = now_ms() + VT_HANG_MS;
    char *got = NULL;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        while (!((got = get(&a, "notified")) && strstr(got, want[i])) && now_ms() < end) {
            free(got);
            sleep_ms(20);
        }
        ck_assert_msg(got && strstr(got, want[i]), "no %s in %s", want[i], got);
        free(got);
    }
    got = get(&a, "notified");
    ck_assert_ptr_null(strstr(got, "fake.Echo+quiet"));
    free(got);

    /* A flood of denials while every notify program is still running: at most
     * ASK_NOTIFY_RUNNING_MAX (16) are started, the rest dropped and logged. */
    assert_reaped(&a);
    ck_assert_int_eq(unlink(apath(&a, "notified")), 0);
    put(&a, "notify-wait", "");
    const char *opts[] = {"--count", "40", NULL};
    r = guest_call_opts(&a.e, "personal", opts, "vault", "nothing.Allowed");
    vt_result_free(&r);
    char *log = NULL;
    end = now_ms() + VT_HANG_MS;
    do {
        free(log);
        sleep_ms(20);
        log = vt_read_file(a.e.log);
    } while (now_ms() < end && !(log && strstr(log, "notify: rate limit")));
    ck_assert_msg(log && strstr(log, "notify: rate limit"), "no rate limit (log %s)", a.e.log);
    free(log);
    put(&a, "notify-release", "");
    assert_reaped(&a);
    got = get(&a, "notified");
    int n = 0;
    for (char *p = got; p && (p = strchr(p, '\n')); p++)
        n++;
    free(got);
    ck_assert_msg(n >= 1 && n <= 16, "%d notify programs ran", n);
    ask_down(&a);
}
END_TEST

/* ---- the audit line tells what happened --------------------------------------------------- */

START_TEST(audit_routing)
{
    Ask a;
    const char *guests[] = {"work", "vault", "personal", NULL};
    progs_init(&a);
    ask_up(&a, "auditroute", "max-calls-per-guest: 2\n", guests);

    /* Allowed by policy, refused at routing: the caller sees one text, the audit why. */
    VtResult r = guest_call(&a.e, "work", NULL, "ghost", "fake.Nope");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Nope to ghost refused\n");
    vt_result_free(&r);
    assert_audit(&a.e, "work", "fake.Nope",
                 NEEDLES("\"policy\":\"allow\"", "\"decision\":\"deny\"",
                         "\"reason\":\"unknown target\"", "\"resolved_target\":\"\"",
                         "\"end\":\"refused\",\"exit\":126,"));
    pid_t vault = agent_serve(&a.e, "vault");
    wait_guests(&a.e, 1);
    agent_stop(&a.e, vault, SIGTERM);
    ck_assert(wait_status(&a.e, "guest vault", false));
    r = guest_call(&a.e, "work", NULL, "vault", "fake.Nope");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Nope to vault refused\n");
    vt_result_free(&r);
    assert_audit(&a.e, "work", "fake.Nope", NEEDLES("\"reason\":\"target not connected\""));
    agent_serve(&a.e, "personal");
    wait_guests(&a.e, 1);
    const char *destroy[] = {VRPC_SIM_BIN, "destroy", "--ns", a.e.ns, "personal", NULL};
    r = vt_run(destroy, 60);
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    agent_gone(&a.e, a.e.agent[a.e.n_agents - 1]); /* killed with its domain */
    ck_assert(wait_status(&a.e, "guest personal", false));
    r = guest_call(&a.e, "work", NULL, "personal", "fake.Nope");
    ck_assert_int_eq(r.status, 126);
    ck_assert_str_eq(r.err, "fake-agent: vrpc: fake.Nope to personal refused\n");
    vt_result_free(&r);
    assert_audit(&a.e, "work", "fake.Nope", NEEDLES("\"reason\":\"target domain gone\""));

    /* Default deny: the same word as vrpc-policy explain, and the reason. */
    r = guest_call(&a.e, "work", NULL, "dom0", "nothing.Allowed");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "nothing.Allowed",
                 NEEDLES("\"policy\":\"deny\"", "\"rule\":\"default\"",
                         "\"reason\":\"no matching rule\"", "\"spawn_us\":null"));
    char *line = audit_line(&a.e, "work", "nothing.Allowed");
    ck_assert_ptr_null(strstr(line, "\"policy_us\":null"));
    free(line);
    r = guest_call(&a.e, "vault", NULL, "dom0", "vrpc.Ping");
    ck_assert_int_eq(r.status, 126);
    vt_result_free(&r);
    assert_audit(&a.e, "vault", "vrpc.Ping",
                 NEEDLES("\"rule\":\"/", "50-test.yaml:2\"", "\"reason\":\"denied by rule\""));
    /* Over the quota: the policy was not consulted. */
    const char *opts[] = {"--count", "3", "--wait-ms", "3000", NULL};
    agent_serve(&a.e, "vault");
    wait_guests(&a.e, 1);
    r = guest_call_opts(&a.e, "work", opts, "vault", "fake.Sleep");
    ck_assert_int_eq(r.status, 124);
    vt_result_free(&r);
    /* The two sleeping calls end when their caller goes away. */
    long long end = now_ms() + VT_HANG_MS;
    char *text = NULL;
    for (;;) {
        text = vt_read_file(a.e.audit);
        char *second = text ? strstr(text, "\"end\":\"cancelled\"") : NULL;
        if ((second && strstr(second + 1, "\"end\":\"cancelled\"")) || now_ms() > end)
            break;
        free(text);
        sleep_ms(20);
    }
    ck_assert_msg(strstr(text, "\"policy\":\"none\",\"answer\":\"\",\"decision\":\"deny\","
                               "\"reason\":\"too many calls\",\"rule\":\"none\",\"end\":"
                               "\"refused\",\"exit\":125,"),
                  "%s", text);
    ck_assert_msg(strstr(text, "\"service\":\"fake.Sleep\",\"argument\":\"\",\"policy\":"
                               "\"allow\",\"answer\":\"\",\"decision\":\"allow\",\"reason\":"
                               "\"the caller went away\""),
                  "%s", text);
    ck_assert_msg(strstr(text, "\"end\":\"cancelled\",\"exit\":null,"), "%s", text);
    ck_assert_ptr_null(strstr(text, "\"exit\":-1"));
    free(text);
    a.e.n_guests = 2; /* personal's xenstore folder is gone with it */
    ask_down(&a);
}
END_TEST

/* A dom0 service killed by its SERVICE.yaml timeout: "end":"timeout", not -1. */
START_TEST(audit_cancelled)
{
    Ask a;
    const char *guests[] = {"work", NULL};
    char path[256];
    progs_init(&a);
    ask_up(&a, "auditcancel", NULL, guests);
    snprintf(path, sizeof(path), "%s/services/test.Slow", a.e.etc);
    ck_assert_int_eq(symlink("/bin/sleep", path), 0);
    snprintf(path, sizeof(path), "%s/services/test.Slow.yaml", a.e.etc);
    write_file(path, "timeout: 0.3\n");

    VtResult r = guest_call(&a.e, "work", NULL, "dom0", "test.Slow+100");
    ck_assert_int_eq(r.status, 125);
    vt_result_free(&r);
    assert_audit(&a.e, "work", "test.Slow",
                 NEEDLES("\"decision\":\"allow\"", "\"end\":\"timeout\",\"exit\":125,",
                         "\"reason\":\"the service timed out\""));
    ask_down(&a);
}
END_TEST

int main(void)
{
    const VtCase cases[] = {
        {"ask_allow", ask_allow, 300},
        {"ask_allow_name", ask_allow_name, 300},
        {"ask_outside_rule", ask_outside_rule, 300},
        {"ask_junk", ask_junk, 300},
        {"ask_failing", ask_failing, 300},
        {"ask_hang", ask_hang, 300},
        {"ask_no_program", ask_no_program, 300},
        {"ask_notify", ask_notify, 300},
        {"ask_caller_gone", ask_caller_gone, 300},
        {"ask_quota", ask_quota, 300},
        {"audit_routing", audit_routing, 300},
        {"audit_cancelled", audit_cancelled, 300},
    };
    return vt_main("dispatcher-ask", cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
