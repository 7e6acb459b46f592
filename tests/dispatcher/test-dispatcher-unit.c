/* SPDX-License-Identifier: MIT */
/*
 * test-dispatcher-unit - unit tests of the dispatcher's dispatcher.yaml parser (strict keys,
 * ranges, positions in errors), of the audit line formatter (escaping, fields, timings,
 * null for what did not happen) and of the ask answers (parsing the program's line, and
 * checking "allow NAME" against the deciding rule), and of --sched (modes, and what happens
 * where the policy cannot be changed: sched_setscheduler() is wrapped at link time).
 */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ask.h"
#include "audit.h"
#include "config.h"
#include "librpc/loop.h"
#include "sched-mode.h"
#include "vrpc-policy.h"
#include "leak.h"

static int parse(DispatcherConfig *cfg, const char *text, char *err)
{
    return dispatcher_config_parse(cfg, "d.yaml", text, strlen(text), err);
}

START_TEST(config_defaults_and_values)
{
    DispatcherConfig cfg;
    char err[DISPATCHER_CONFIG_ERROR_MAX] = "";

    dispatcher_config_init(&cfg);
    ck_assert_int_eq(parse(&cfg, "", err), 0);
    ck_assert_uint_eq(cfg.max_calls_per_guest, 1024);
    ck_assert_int_eq(cfg.keepalive_ms, -1);
    ck_assert_ptr_null(cfg.audit_log);
    ck_assert_ptr_null(cfg.ask_program);
    ck_assert_ptr_null(cfg.notify_program);
    ck_assert_int_eq(cfg.ask_timeout_ms, 60000);
    ck_assert_int_eq(cfg.direct_idle_ms, 30000);
    ck_assert_int_eq(cfg.direct_report_ms, 5000);
    ck_assert_int_eq(parse(&cfg,
                           "ask-program: /usr/lib/vrpc/ask\nask-timeout: 2.5\n"
                           "notify-program: /usr/lib/vrpc/notify\n",
                           err),
                     0);
    ck_assert_str_eq(cfg.ask_program, "/usr/lib/vrpc/ask");
    ck_assert_str_eq(cfg.notify_program, "/usr/lib/vrpc/notify");
    ck_assert_int_eq(cfg.ask_timeout_ms, 2500);
    ck_assert_int_eq(parse(&cfg, "# only a comment\n", err), 0);
    ck_assert_ptr_null(cfg.ask_program);
    ck_assert_int_eq(parse(&cfg,
                           "max-calls-per-guest: 7\nmax-buffer-per-guest: 1048576\n"
                           "keepalive-interval: 2.5\naudit-log: /var/log/vrpc.json\n"
                           "log-level: debug\ndirect-idle-timeout: 0.5\n"
                           "direct-report-timeout: 0.25\n",
                           err),
                     0);
    ck_assert_int_eq(cfg.direct_idle_ms, 500);
    ck_assert_int_eq(cfg.direct_report_ms, 250);
    ck_assert_uint_eq(cfg.max_calls_per_guest, 7);
    ck_assert_uint_eq(cfg.max_buffer_per_guest, 1048576);
    ck_assert_int_eq(cfg.keepalive_ms, 2500);
    ck_assert_str_eq(cfg.audit_log, "/var/log/vrpc.json");
    ck_assert_int_eq(cfg.log_level, 7);
    dispatcher_config_deinit(&cfg);
}
END_TEST

START_TEST(config_errors)
{
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"max-calls: 3\n", "d.yaml:1:1: unknown key"},
        {"max-calls-per-guest: 1\nmax-calls-per-guest: 2\n", "d.yaml:2:1: duplicate key"},
        {"max-calls-per-guest: 0\n", "d.yaml:1:22: invalid value for max-calls-per-guest"},
        {"max-calls-per-guest: \"5\"\n", "invalid value for max-calls-per-guest"},
        {"max-calls-per-guest: -5\n", "invalid value"},
        {"max-buffer-per-guest: 1000\n", "invalid value for max-buffer-per-guest"},
        {"keepalive-interval: forever\n", "invalid value for keepalive-interval"},
        {"audit-log: relative.json\n", "invalid value for audit-log"},
        {"direct-idle-timeout: never\n", "invalid value for direct-idle-timeout (expected seconds"},
        {"direct-idle-timeout: -1\n", "invalid value for direct-idle-timeout"},
        {"direct-report-timeout: 0\n",
         "invalid value for direct-report-timeout (expected seconds 0.1..86400)"},
        {"direct-report-timeout: later\n", "invalid value for direct-report-timeout"},
        {"log-level: loud\n", "invalid value for log-level"},
        {"ask-program: ask.sh\n", "d.yaml:1:14: invalid value for ask-program (expected an "
                                  "absolute path)"},
        {"ask-program: [/bin/x]\n", "invalid value for ask-program"},
        {"ask-timeout: 0\n", "invalid value for ask-timeout (expected seconds 0.1..86400)"},
        {"ask-timeout: 90000\n", "invalid value for ask-timeout"},
        {"ask-timeout: soon\n", "invalid value for ask-timeout"},
        {"notify-program: \"\"\n", "invalid value for notify-program"},
        {"ask_program: /bin/x\n", "unknown key (expected max-calls-per-guest, "},
        {"- a list\n", "expected a mapping"},
        {"a: [unclosed\n", "d.yaml:"},
        {"max-calls-per-guest: 3\n---\nmax-calls-per-guest: 4\n", "only one YAML document"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        DispatcherConfig cfg;
        char err[DISPATCHER_CONFIG_ERROR_MAX] = "";
        dispatcher_config_init(&cfg);
        ck_assert_int_eq(parse(&cfg, bad[i].text, err), -22);
        ck_assert_msg(strstr(err, bad[i].err), "case %zu: %s", i, err);
        /* Failure leaves the defaults. */
        ck_assert_uint_eq(cfg.max_calls_per_guest, 1024);
        dispatcher_config_deinit(&cfg);
    }
}
END_TEST

/* dispatcher_config_load(): the file is read by common/'s bounded reader, which opens it
 * non-blocking: a FIFO planted as dispatcher.yaml used to block the dispatcher's start in
 * open() until a writer came; now it is refused at once. */
START_TEST(config_load_files)
{
    char dir[] = "/tmp/vrpc-dunit-XXXXXX", path[256], err[DISPATCHER_CONFIG_ERROR_MAX] = "";
    DispatcherConfig cfg;
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, DISPATCHER_CONFIG_FILE);

    ck_assert_int_eq(dispatcher_config_load(&cfg, dir, err), 0); /* absent: the defaults */
    ck_assert_uint_eq(cfg.max_calls_per_guest, 1024);
    dispatcher_config_deinit(&cfg);

    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("max-calls-per-guest: 9\n", f);
    fclose(f);
    ck_assert_int_eq(dispatcher_config_load(&cfg, dir, err), 0);
    ck_assert_uint_eq(cfg.max_calls_per_guest, 9);
    dispatcher_config_deinit(&cfg);

    /* One byte over the cap, made of comments: refused by size, not by parsing. */
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < DISPATCHER_CONFIG_SIZE_MAX; i++)
        fputc(i % 64 == 63 ? '\n' : '#', f);
    fputc('\n', f);
    fclose(f);
    ck_assert_int_eq(dispatcher_config_load(&cfg, dir, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "larger than"));
    dispatcher_config_deinit(&cfg);

    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(dispatcher_config_load(&cfg, dir, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    dispatcher_config_deinit(&cfg);

    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(audit_format_fields)
{
    char buf[1024];
    AuditRecord rec = {
        .time_us = 1700000000123456LL,
        .source = "work",
        .target = "@default",
        .resolved_target = "dom0",
        .service = "demo.Echo",
        .argument = "a\"b\\c\n\x01\xff",
        .policy = "ask",
        .answer = "allow dom0",
        .decision = "allow",
        .reason = "",
        .rule = "/etc/vrpc/policy.d/50-demo.yaml:12",
        .end = AUDIT_END_EXIT,
        .exit_code = 3,
        .duration_us = 1500,
        .policy_us = 4,
        .ask_us = 700,
        .spawn_us = 900,
        .first_byte_us = -1,
    };
    int n = audit_format(&rec, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf,
                     "{\"time\":\"2023-11-14T22:13:20.123456Z\",\"source\":\"work\","
                     "\"target\":\"@default\",\"resolved_target\":\"dom0\","
                     "\"service\":\"demo.Echo\",\"argument\":\"a\\\"b\\\\c\\u000a\\u0001\\u00ff\","
                     "\"policy\":\"ask\",\"answer\":\"allow dom0\",\"decision\":\"allow\","
                     "\"reason\":\"\",\"rule\":\"/etc/vrpc/policy.d/50-demo.yaml:12\","
                     "\"end\":\"exit\",\"exit\":3,\"duration_ms\":1.500,\"policy_us\":4,"
                     "\"ask_us\":700,\"spawn_us\":900,\"first_byte_us\":null}\n");
    /* A caller that went away: no exit status; stages not reached are null, not absent. */
    rec.end = AUDIT_END_CANCELLED;
    rec.exit_code = -1;
    rec.argument = NULL;
    rec.policy_us = rec.ask_us = rec.spawn_us = -1;
    n = audit_format(&rec, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(buf, "\"end\":\"cancelled\",\"exit\":null,"));
    ck_assert_ptr_nonnull(strstr(buf, "\"policy_us\":null,\"ask_us\":null,\"spawn_us\":null"));
    ck_assert_ptr_nonnull(strstr(buf, "\"argument\":\"\""));
    /* calls to guests say which path they took, and why not direct */
    rec.path = "relay";
    rec.fallback = "target-no-direct";
    ck_assert_int_gt(audit_format(&rec, buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(
        strstr(buf, "\"first_byte_us\":null,\"path\":\"relay\",\"fallback\":\"target-no-direct\"}"));
    /* a direct call says whose end report the line rests on */
    rec.path = "direct";
    rec.fallback = NULL;
    rec.reported_by = "source";
    rec.end = AUDIT_END_UNCONFIRMED;
    rec.exit_code = 3;
    ck_assert_int_gt(audit_format(&rec, buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "\"end\":\"unconfirmed\",\"exit\":3,"));
    ck_assert_ptr_nonnull(strstr(buf, "\"path\":\"direct\",\"reported_by\":\"source\"}"));
    rec.path = rec.reported_by = NULL;
    ck_assert_int_eq(audit_format(&rec, buf, 40), -105 /* -ENOBUFS */);
    ck_assert_str_eq(audit_end_name(AUDIT_END_MISMATCH), "mismatch");
    ck_assert_str_eq(audit_end_name(AUDIT_END_REFUSED), "refused");
    ck_assert_str_eq(audit_end_name(AUDIT_END_TIMEOUT), "timeout");
    ck_assert_str_eq(audit_end_name(AUDIT_END_ABORTED), "aborted");
}
END_TEST

static void parse_line(const char *line, AskAnswer *a)
{
    ask_parse_line(line, strlen(line), a);
}

START_TEST(ask_answers)
{
    AskAnswer a;

    parse_line("allow", &a);
    ck_assert_int_eq(a.verdict, ASK_VERDICT_ALLOW);
    ck_assert_str_eq(a.text, "allow");
    parse_line("allow vault", &a);
    ck_assert_int_eq(a.verdict, ASK_VERDICT_ALLOW_NAME);
    ck_assert_str_eq(a.name, "vault");
    parse_line("allow @adminvm", &a);
    ck_assert_int_eq(a.verdict, ASK_VERDICT_ALLOW_NAME);
    parse_line("allow vault@hostb", &a);
    ck_assert_int_eq(a.verdict, ASK_VERDICT_ALLOW_NAME);
    ck_assert_str_eq(a.name, "vault@hostb");
    parse_line("deny", &a);
    ck_assert_int_eq(a.verdict, ASK_VERDICT_DENY);
    ck_assert_str_eq(a.reason, "ask: answered deny");
    /* Anything else denies: case, spacing, bad names, tokens, trailing bytes. */
    static const char *const junk[] = {
        "",
        "Allow",
        "allow ",
        "allow  vault",
        " allow",
        "allow\r",
        "allow vault extra",
        "allow @anyvm",
        "allow @default",
        "allow -x",
        "allow a/b",
        "allow vault@Hostb",
        "allow vault@",
        "allow a@b@c",
        "allow @adminvm@hostb",
        "allow *@*",
        "yes",
        "allow\tvault",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        parse_line(junk[i], &a);
        ck_assert_msg(a.verdict == ASK_VERDICT_DENY, "\"%s\" allowed", junk[i]);
        ck_assert_str_eq(a.reason, "ask: unrecognised answer");
    }
    ask_parse_line("allow\0vault", 11, &a);
    ck_assert_int_eq(a.verdict, ASK_VERDICT_DENY);
}
END_TEST

static const char *const ask_policy = "rules:\n"
                                      "  - service: ask.Any\n"
                                      "    source: work\n"
                                      "    target: \"@anyvm\"\n"
                                      "    action: ask\n"
                                      "    default_target: vault\n"
                                      "  - service: ask.Tag\n"
                                      "    source: work\n"
                                      "    target: \"@tag:safe\"\n"
                                      "    action: ask\n"
                                      "  - service: ask.Redirect\n"
                                      "    source: work\n"
                                      "    target: \"@default\"\n"
                                      "    action: ask\n"
                                      "    redirect: vault\n"
                                      "  - service: ask.Remote\n"
                                      "    source: work\n"
                                      "    target: \"*@hostb\"\n"
                                      "    action: ask\n"
                                      "    default_target: vault@hostc\n"
                                      "  - service: ask.Dom0\n"
                                      "    source: work\n"
                                      "    target: \"@adminvm\"\n"
                                      "    action: ask\n";

/* Evaluate SERVICE from work to TARGET and decide the answer LINE; returns the target the
 * call goes to, or "deny: REASON". Static buffer. */
static const char *decide(VrpcPolicy *p, const char *target, const char *service, const char *line)
{
    static char out[160];
    VrpcPolicyDecision d;
    AskAnswer a;
    char t[VRPC_POLICY_NAME_MAX + 1];
    const char *why = NULL;

    ck_assert_int_eq(vrpc_policy_evaluate(p,
                                          &(VrpcPolicyRequest){.source = "work",
                                                               .untrusted_target = target,
                                                               .untrusted_service = service},
                                          &d),
                     0);
    ck_assert_int_eq(d.action, VRPC_POLICY_ASK);
    parse_line(line, &a);
    if (ask_decide(&a, p, &d, t, &why))
        snprintf(out, sizeof(out), "%s", t);
    else
        snprintf(out, sizeof(out), "deny: %s", why);
    return out;
}

START_TEST(ask_decisions)
{
    VrpcPolicyText f = {"50-ask.yaml", ask_policy, strlen(ask_policy)};
    const char *domains = "domains:\n  personal: {tags: [safe]}\n";
    VrpcPolicyText dm = {"domains.yaml", domains, strlen(domains)};
    VrpcPolicy *p = NULL;

    ck_assert_int_eq(vrpc_policy_load_texts(&f, 1, &dm, &p), 0);
    /* allow: the named target; with none named, there is nowhere to go. */
    ck_assert_str_eq(decide(p, "personal", "ask.Any", "allow"), "personal");
    ck_assert_str_eq(decide(p, "@default", "ask.Any", "allow"),
                     "deny: ask: answered allow, but the call names no target");
    /* allow NAME: in the target column, or the default_target; never outside them. */
    ck_assert_str_eq(decide(p, "@default", "ask.Any", "allow personal"), "personal");
    ck_assert_str_eq(decide(p, "@default", "ask.Any", "allow vault"), "vault");
    ck_assert_str_eq(decide(p, "@default", "ask.Any", "allow dom0"),
                     "deny: ask: answered a target outside the rule");
    ck_assert_str_eq(decide(p, "@default", "ask.Any", "allow @adminvm"),
                     "deny: ask: answered a target outside the rule");
    ck_assert_str_eq(decide(p, "personal", "ask.Tag", "allow personal"), "personal");
    ck_assert_str_eq(decide(p, "personal", "ask.Tag", "allow vault"),
                     "deny: ask: answered a target outside the rule");
    /* A redirect is the target of a plain allow; the @default column matches no name. */
    ck_assert_str_eq(decide(p, "@default", "ask.Redirect", "allow"), "vault");
    ck_assert_str_eq(decide(p, "@default", "ask.Redirect", "allow vault"),
                     "deny: ask: answered a target outside the rule");
    /* Remote names: allowed where the target column or default_target allows them; a
     * local column ("@anyvm") never lets an answer send the call to another host. */
    ck_assert_str_eq(decide(p, "vault@hostb", "ask.Remote", "allow x@hostb"), "x@hostb");
    ck_assert_str_eq(decide(p, "vault@hostb", "ask.Remote", "allow vault@hostc"), "vault@hostc");
    ck_assert_str_eq(decide(p, "vault@hostb", "ask.Remote", "allow x@hostc"),
                     "deny: ask: answered a target outside the rule");
    ck_assert_str_eq(decide(p, "vault@hostb", "ask.Remote", "allow vault"),
                     "deny: ask: answered a target outside the rule");
    ck_assert_str_eq(decide(p, "personal", "ask.Any", "allow vault@hostb"),
                     "deny: ask: answered a target outside the rule");
    ck_assert_str_eq(decide(p, "dom0", "ask.Dom0", "allow dom0@hostb"),
                     "deny: ask: answered a target outside the rule");
    ck_assert_str_eq(decide(p, "dom0", "ask.Dom0", "allow"), "dom0");
    ck_assert_str_eq(decide(p, "dom0", "ask.Dom0", "allow @adminvm"), "dom0");
    ck_assert_str_eq(decide(p, "@adminvm", "ask.Dom0", "deny"), "deny: ask: answered deny");
    ck_assert_str_eq(decide(p, "dom0", "ask.Dom0", "maybe"), "deny: ask: unrecognised answer");

    /* The policy API refuses a decision that is not an ask of this policy. */
    VrpcPolicyDecision d = {.action = VRPC_POLICY_ALLOW};
    char t[VRPC_POLICY_NAME_MAX + 1];
    ck_assert_int_eq(vrpc_policy_decision_check_target(p, &d, "vault", t), -22);
    d.action = VRPC_POLICY_ASK;
    d.rule_index = 99;
    ck_assert_int_eq(vrpc_policy_decision_check_target(p, &d, "vault", t), -22);
    vrpc_policy_unref(p);
}
END_TEST

/* sched_setscheduler() as the daemon sees it (-Wl,--wrap): EPERM while refuse_sched. */
static bool refuse_sched;
int __real_sched_setscheduler(pid_t pid, int policy, const struct sched_param *param);
int __wrap_sched_setscheduler(pid_t pid, int policy, const struct sched_param *param);
int __wrap_sched_setscheduler(pid_t pid, int policy, const struct sched_param *param)
{
    if (refuse_sched) {
        errno = EPERM;
        return -1;
    }
    return __real_sched_setscheduler(pid, policy, param);
}

START_TEST(sched_modes)
{
    Dispatcher d = {0};
    SchedAuto *s = NULL;

    ck_assert_int_eq(sched_mode_parse("other"), SCHED_MODE_OTHER);
    ck_assert_int_eq(sched_mode_parse("batch"), SCHED_MODE_BATCH);
    ck_assert_int_eq(sched_mode_parse("auto"), SCHED_MODE_AUTO);
    ck_assert_int_eq(sched_mode_parse("Auto"), -1);
    ck_assert_int_eq(sched_mode_parse(""), -1);
    ck_assert_int_eq(rpc_loop_new(&d.loop), 0);

    /* other: nothing changes, nothing watches */
    ck_assert_int_eq(sched_start(&d, SCHED_MODE_OTHER, &s), 0);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(sched_getscheduler(0), SCHED_OTHER);
    /* auto: SCHED_BATCH and a watcher; with nothing carried it stays so through passes */
    ck_assert_int_eq(sched_start(&d, SCHED_MODE_AUTO, &s), 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sched_getscheduler(0), SCHED_BATCH);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(rpc_loop_run_once(d.loop, 30), 0);
    ck_assert_int_eq(sched_getscheduler(0), SCHED_BATCH);
    s = sched_free(s);
    ck_assert_int_eq(sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0}), 0);

    /* where the policy cannot be changed: batch fails, auto (the default) goes on as is */
    refuse_sched = true;
    ck_assert_int_eq(sched_start(&d, SCHED_MODE_BATCH, &s), -EPERM);
    ck_assert_int_eq(sched_start(&d, SCHED_MODE_AUTO, &s), 0);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(sched_getscheduler(0), SCHED_OTHER);
    refuse_sched = false;
    d.loop = rpc_loop_free(d.loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dispatcher-unit");
    TCase *tc = tcase_create("unit");
    SRunner *sr;
    int failed;

    vt_leak_fixture(tc);
    tcase_add_test(tc, config_defaults_and_values);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, config_load_files);
    tcase_add_test(tc, audit_format_fields);
    tcase_add_test(tc, ask_answers);
    tcase_add_test(tc, ask_decisions);
    tcase_add_test(tc, sched_modes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
