/* SPDX-License-Identifier: MIT */
/*
 * Name validation: "SERVICE+ARG" splitting and the service, argument and
 * domain name rules, including the 64/65 character limits. These run before
 * any policy is consulted, so they are the first line against injection.
 */

#include <string.h>

#include "test-util.h"

#define S64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define S65 S64 "m"

typedef struct SplitCase {
    const char *call;
    int rc;
    const char *service;
    const char *argument;
} SplitCase;

static const SplitCase split_cases[] = {
    {"a", 0, "a", ""},
    {"demo.Echo", 0, "demo.Echo", ""},
    {"demo.Echo+", 0, "demo.Echo", ""},
    {"demo.Echo+x", 0, "demo.Echo", "x"},
    {"demo.Echo+a+b", 0, "demo.Echo", "a+b"}, /* split at the FIRST '+' */
    {"a.b-c_D9", 0, "a.b-c_D9", ""},
    {S64, 0, S64, ""},
    {S65, VRPC_POLICY_E_SERVICE, "", ""},
    {"svc+" S64, 0, "svc", S64},
    {"svc+" S65, VRPC_POLICY_E_ARGUMENT, "", ""},
    {S64 "+" S64, 0, S64, S64},
    {"", VRPC_POLICY_E_SERVICE, "", ""},
    {"+x", VRPC_POLICY_E_SERVICE, "", ""},
    {"a b", VRPC_POLICY_E_SERVICE, "", ""},
    {"a/b", VRPC_POLICY_E_SERVICE, "", ""},
    {"a$b", VRPC_POLICY_E_SERVICE, "", ""},
    {"a;b", VRPC_POLICY_E_SERVICE, "", ""},
    {"a*", VRPC_POLICY_E_SERVICE, "", ""},
    {"a\n", VRPC_POLICY_E_SERVICE, "", ""},
    {"\xc3\xa9t\xc3\xa9", VRPC_POLICY_E_SERVICE, "", ""},
    {"svc+a b", VRPC_POLICY_E_ARGUMENT, "", ""},
    {"svc+a/b", VRPC_POLICY_E_ARGUMENT, "", ""},
    {"svc+$(reboot)", VRPC_POLICY_E_ARGUMENT, "", ""},
    {"svc+*", VRPC_POLICY_E_ARGUMENT, "", ""},
    {S64 S64 S64 S64, VRPC_POLICY_E_SERVICE, "", ""},
    {NULL, VRPC_POLICY_E_SERVICE, "", ""},
};

START_TEST(test_split)
{
    const SplitCase *c = &split_cases[_i];
    char service[VRPC_POLICY_NAME_MAX + 1], argument[VRPC_POLICY_NAME_MAX + 1];
    int rc = vrpc_policy_split_call(c->call, service, argument);

    ck_assert_msg(rc == c->rc, "row %d (%s): rc %d, want %d", _i, c->call ? c->call : "NULL", rc,
                  c->rc);
    ck_assert_str_eq(service, c->service);
    ck_assert_str_eq(argument, c->argument);
}
END_TEST

typedef struct DomainCase {
    const char *name;
    bool valid;
} DomainCase;

static const DomainCase domain_cases[] = {
    {"work", true},    {"dom0", true}, {"sys-net", true}, {"a.b_c", true}, {"9lives", true},
    {S64, true},       {S65, false},   {"", false},       {"-x", false},   {".x", false},
    {"@anyvm", false}, {"a b", false}, {"a+b", false},    {NULL, false},
};

START_TEST(test_domain_names)
{
    const DomainCase *c = &domain_cases[_i];

    ck_assert_msg(vrpc_policy_domain_is_valid(c->name) == c->valid, "row %d (%s)", _i,
                  c->name ? c->name : "NULL");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy-names");
    TCase *tc = tcase_create("names");
    vt_leak_fixture(tc);

    tcase_add_loop_test(tc, test_split, 0, sizeof(split_cases) / sizeof(split_cases[0]));
    tcase_add_loop_test(tc, test_domain_names, 0, sizeof(domain_cases) / sizeof(domain_cases[0]));
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
