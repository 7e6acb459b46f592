// SPDX-License-Identifier: MIT
/*
 * test-dispatcher-unit - unit tests of the dispatcher's dispatcher.yaml parser (strict keys,
 * ranges, positions in errors) and of the audit line formatter (escaping, fields, timings).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "config.h"

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
    ck_assert_int_eq(parse(&cfg, "# only a comment\n", err), 0);
    ck_assert_int_eq(parse(&cfg,
                           "max-calls-per-guest: 7\nmax-buffer-per-guest: 1048576\n"
                           "keepalive-interval: 2.5\naudit-log: /var/log/vrpc.json\n"
                           "log-level: debug\n",
                           err),
                     0);
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
        {"log-level: loud\n", "invalid value for log-level"},
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
        .decision = "allow",
        .rule = "/etc/vrpc/policy.d/50-demo.yaml:12",
        .exit_code = 3,
        .duration_ms = 1.5,
        .timings = true,
        .policy_us = 4,
        .spawn_us = 100,
        .first_byte_us = -1,
    };
    int n = audit_format(&rec, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf,
                     "{\"time\":\"2023-11-14T22:13:20.123456Z\",\"source\":\"work\","
                     "\"target\":\"@default\",\"resolved_target\":\"dom0\","
                     "\"service\":\"demo.Echo\",\"argument\":\"a\\\"b\\\\c\\u000a\\u0001\\u00ff\","
                     "\"decision\":\"allow\",\"rule\":\"/etc/vrpc/policy.d/50-demo.yaml:12\","
                     "\"exit\":3,\"duration_ms\":1.500,\"policy_us\":4,\"spawn_us\":100}\n");
    rec.timings = false;
    rec.argument = NULL;
    n = audit_format(&rec, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_null(strstr(buf, "policy_us"));
    ck_assert_ptr_nonnull(strstr(buf, "\"argument\":\"\""));
    ck_assert_int_eq(audit_format(&rec, buf, 40), -105 /* -ENOBUFS */);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dispatcher-unit");
    TCase *tc = tcase_create("unit");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, config_defaults_and_values);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, audit_format_fields);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
