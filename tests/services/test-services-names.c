/* SPDX-License-Identifier: MIT */
/*
 * Name validation before any name reaches the filesystem (service and
 * argument come from another domain: every row is a hostile input), the
 * descriptor format, and the exit-code helpers.
 */

#include <errno.h>
#include <string.h>
#include <sys/wait.h>

#include "svc-test-util.h"

#define S64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"

typedef struct NameCase {
    const char *service;
    size_t service_len;
    const char *argument;
    size_t argument_len;
    int rc;
} NameCase;

#define N(s) s, sizeof(s) - 1

static const NameCase name_cases[] = {
    {N("demo.Echo"), N(""), 0},
    {N("a"), NULL, 0, 0},
    {N("a.b-c_D9"), N("x"), 0},
    {N("svc"), N("a+b"), 0}, /* '+' inside an argument: the policy's rule */
    {N("svc"), N(".x"), 0},  /* never a path of its own: always after "svc+" */
    {N("svc"), N(".."), 0},
    {N(S64), N(S64), 0},
    {N(S64 "m"), N(""), VRPC_SERVICES_E_NAME},
    {N("svc"), N(S64 "m"), VRPC_SERVICES_E_NAME},
    {N(""), N(""), VRPC_SERVICES_E_NAME},
    {N("+"), N(""), VRPC_SERVICES_E_NAME},
    {N("a+b"), N(""), VRPC_SERVICES_E_NAME},
    {N("../x"), N(""), VRPC_SERVICES_E_NAME},
    {N(".."), N(""), VRPC_SERVICES_E_NAME},
    {N("."), N(""), VRPC_SERVICES_E_NAME},
    {N(".hidden"), N(""), VRPC_SERVICES_E_NAME},
    {N("a/b"), N(""), VRPC_SERVICES_E_NAME},
    {N("/etc/passwd"), N(""), VRPC_SERVICES_E_NAME},
    {N("svc"), N("a/b"), VRPC_SERVICES_E_NAME},
    {N("svc"), N("../../x"), VRPC_SERVICES_E_NAME},
    {N("a b"), N(""), VRPC_SERVICES_E_NAME},
    {N("a\n"), N(""), VRPC_SERVICES_E_NAME},
    {N("$(reboot)"), N(""), VRPC_SERVICES_E_NAME},
    {N("svc"), N("$x"), VRPC_SERVICES_E_NAME},
    {N("svc"), N("a b"), VRPC_SERVICES_E_NAME},
    {N("svc"), N("*"), VRPC_SERVICES_E_NAME},
    {N("\xc3\xa9t\xc3\xa9"), N(""), VRPC_SERVICES_E_NAME},
    {N("svc"), N("\xff"), VRPC_SERVICES_E_NAME},
    {N("svc\0evil"), N(""), VRPC_SERVICES_E_NAME}, /* NUL inside the length */
    {N("svc"), N("a\0b"), VRPC_SERVICES_E_NAME},
    {"svc", 2, NULL, 0, 0},                        /* explicit length: "sv" */
    {N("demo.yaml"), N(""), VRPC_SERVICES_E_NAME}, /* would name a config file */
    {N("svc"), N("x.yaml"), VRPC_SERVICES_E_NAME},
    {N("svc.yamlx"), N(""), 0},
    {NULL, 0, NULL, 0, VRPC_SERVICES_E_NAME},
    {N("svc"), NULL, 3, VRPC_SERVICES_E_NAME}, /* length without bytes */
};

START_TEST(test_validate)
{
    const NameCase *c = &name_cases[_i];
    char err[VRPC_SERVICES_ERROR_MAX] = "";
    int r = vrpc_services_validate(c->service, c->service_len, c->argument, c->argument_len, err);

    ck_assert_msg(r == c->rc, "row %d: %d, want %d (%s)", _i, r, c->rc, err);
    if (r != 0) {
        /* The reason is one printable line, whatever the caller sent. */
        ck_assert_ptr_null(strchr(err, '\n'));
        for (const char *p = err; *p; p++)
            ck_assert_msg(*p >= 0x20 && *p < 0x7f, "row %d: unprintable reason", _i);
        ck_assert_int_eq(vrpc_services_error_exit_code(r), 127);
    }
}
END_TEST

START_TEST(test_validate_resolve_agree)
{
    /* Resolve validates the same way, before touching the folder (which
     * does not even exist here). */
    const NameCase *c = &name_cases[_i];
    char err[VRPC_SERVICES_ERROR_MAX] = "";
    VrpcService *s = NULL;
    int r = vrpc_service_resolve("/nonexistent-vrpc-folder", c->service, c->service_len,
                                 c->argument, c->argument_len, &s, err);

    ck_assert_ptr_null(s);
    ck_assert_int_eq(r, c->rc == 0 ? VRPC_SERVICES_E_NOT_FOUND : c->rc);
}
END_TEST

START_TEST(test_descriptor)
{
    char buf[VRPC_SERVICES_DESCRIPTOR_MAX + 1];

    ck_assert_int_eq(vrpc_service_descriptor_format("demo.Echo", "arg", "work", buf, sizeof(buf)),
                     19);
    ck_assert_str_eq(buf, "demo.Echo+arg work\n");
    ck_assert_int_eq(vrpc_service_descriptor_format("demo.Echo", "", "dom0", buf, sizeof(buf)), 16);
    ck_assert_str_eq(buf, "demo.Echo+ dom0\n");
    ck_assert_int_eq(vrpc_service_descriptor_format("demo.Echo", NULL, "dom0", buf, sizeof(buf)),
                     16);
    ck_assert_str_eq(buf, "demo.Echo+ dom0\n");
    /* The longest line fits the documented maximum exactly. */
    ck_assert_int_eq(vrpc_service_descriptor_format(S64, S64, S64, buf, sizeof(buf)),
                     VRPC_SERVICES_DESCRIPTOR_MAX);
    ck_assert_int_eq(vrpc_service_descriptor_format("svc", "a", "work", buf, 5), -ENOBUFS);
    /* A caller on another host: DOMAIN@HOST, passed on unchanged. */
    ck_assert_int_eq(vrpc_service_descriptor_format("svc", "a", "work@hosta", buf, sizeof(buf)),
                     17);
    ck_assert_str_eq(buf, "svc+a work@hosta\n");
    ck_assert_int_eq(vrpc_service_descriptor_format("svc", "a", "work@Hosta", buf, sizeof(buf)),
                     -EINVAL);
    ck_assert_int_eq(vrpc_service_descriptor_format("svc", "a", "bad source", buf, sizeof(buf)),
                     -EINVAL);
    ck_assert_int_eq(vrpc_service_descriptor_format("svc", "a", "x\nevil", buf, sizeof(buf)),
                     -EINVAL);
    ck_assert_int_eq(vrpc_service_descriptor_format("a/b", "", "work", buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(vrpc_service_descriptor_format("svc", "a b", "work", buf, sizeof(buf)),
                     -EINVAL);
}
END_TEST

START_TEST(test_exit_codes)
{
    ck_assert_int_eq(vrpc_service_exit_code(W_EXITCODE(0, 0)), 0);
    ck_assert_int_eq(vrpc_service_exit_code(W_EXITCODE(3, 0)), 3);
    ck_assert_int_eq(vrpc_service_exit_code(W_EXITCODE(255, 0)), 255);
    ck_assert_int_eq(vrpc_service_exit_code(W_EXITCODE(0, 9)), 137);
    ck_assert_int_eq(vrpc_service_exit_code(W_EXITCODE(0, 15)), 143);
    ck_assert_int_eq(vrpc_services_error_exit_code(0), 0);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_NOT_FOUND), 127);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_NAME), 127);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_KIND), 125);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_CONFIG), 125);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_USER), 125);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_EXEC), 125);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_CONNECT), 125);
    ck_assert_int_eq(vrpc_services_error_exit_code(-ENOMEM), 125);
    for (int r = -1; r <= VRPC_SERVICES_E_CONNECT + 1; r++)
        ck_assert_ptr_nonnull(vrpc_services_strerror(r));
    ck_assert_str_eq(vrpc_services_strerror(VRPC_SERVICES_E_NOT_FOUND), "service not found");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("services-names");
    TCase *tc = tcase_create("names");
    vt_leak_fixture(tc);

    tcase_add_loop_test(tc, test_validate, 0, (int)(sizeof(name_cases) / sizeof(name_cases[0])));
    tcase_add_loop_test(tc, test_validate_resolve_agree, 0,
                        (int)(sizeof(name_cases) / sizeof(name_cases[0])));
    tcase_add_test(tc, test_descriptor);
    tcase_add_test(tc, test_exit_codes);
    suite_add_tcase(s, tc);
    return svc_run_suite(s);
}
