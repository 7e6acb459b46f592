/* SPDX-License-Identifier: MIT */
/*
 * test-parse.c - strict parsing of XenStore values (spec edge case 20, the parsing part):
 * missing/empty/"0"/"-1"/"12abc"/"4294967296"/overlong and friends must all be refused.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vchan/parse.h"
#include "leak.h"

static int ref_of(const char *s, uint32_t *v)
{
    return vchan_parse_grant_ref(s, s ? strlen(s) : 0, v);
}

START_TEST(test_grant_ref_rejects)
{
    static const char *const bad[] = {
        "",
        "0",
        "-1",
        "+1",
        "12abc",
        "abc",
        " 12",
        "12 ",
        "12\n",
        "4294967296",
        "99999999999",
        "0012",
        "00",
        "0x10",
        "1e3",
        "1.5",
        "１２",
        "18446744073709551617",
        "4294967295000",
    };
    uint32_t v = 7;

    ck_assert_int_eq(ref_of(NULL, &v), -EPROTO);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ref_of(bad[i], &v) == -EPROTO, "'%s' accepted", bad[i]);
    ck_assert_uint_eq(v, 7); /* untouched */
}
END_TEST

START_TEST(test_grant_ref_accepts)
{
    uint32_t v;

    ck_assert_int_eq(ref_of("1", &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(ref_of("8", &v), 0);
    ck_assert_uint_eq(v, 8);
    ck_assert_int_eq(ref_of("4294967295", &v), 0);
    ck_assert_uint_eq(v, 4294967295u);
    ck_assert_int_eq(ref_of("1234567890", &v), 0);
    ck_assert_uint_eq(v, 1234567890u);
}
END_TEST

START_TEST(test_embedded_nul_and_length)
{
    uint32_t v;

    /* xs_read returns a length: a NUL inside it is junk */
    ck_assert_int_eq(vchan_parse_grant_ref("12\0"
                                           "3",
                                           4, &v),
                     -EPROTO);
    /* only len bytes count */
    ck_assert_int_eq(vchan_parse_grant_ref("123", 2, &v), 0);
    ck_assert_uint_eq(v, 12);
    ck_assert_int_eq(vchan_parse_grant_ref("5", 0, &v), -EPROTO);
}
END_TEST

START_TEST(test_port)
{
    uint32_t v;

    ck_assert_int_eq(vchan_parse_port("0", 1, &v), -EPROTO);
    ck_assert_int_eq(vchan_parse_port("1", 1, &v), 0);
    ck_assert_int_eq(vchan_parse_port("2147483647", 10, &v), 0);
    ck_assert_uint_eq(v, 2147483647u);
    ck_assert_int_eq(vchan_parse_port("2147483648", 10, &v), -EPROTO);
    ck_assert_int_eq(vchan_parse_port("-5", 2, &v), -EPROTO);
}
END_TEST

START_TEST(test_domid)
{
    uint32_t v;

    ck_assert_int_eq(vchan_parse_domid("0", 1, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(vchan_parse_domid("32751", 5, &v), 0);       /* 0x7FEF */
    ck_assert_int_eq(vchan_parse_domid("32752", 5, &v), -EPROTO); /* DOMID_FIRST_RESERVED */
    ck_assert_int_eq(vchan_parse_domid("32753", 5, &v), -EPROTO); /* DOMID_SELF + 1 ... */
    ck_assert_int_eq(vchan_parse_domid("65535", 5, &v), -EPROTO);
    ck_assert_int_eq(vchan_parse_domid("-1", 2, &v), -EPROTO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vchan-parse");
    TCase *tc = tcase_create("parse");
    SRunner *sr;
    int failed;

    vt_leak_fixture(tc);
    tcase_add_test(tc, test_grant_ref_rejects);
    tcase_add_test(tc, test_grant_ref_accepts);
    tcase_add_test(tc, test_embedded_nul_and_length);
    tcase_add_test(tc, test_port);
    tcase_add_test(tc, test_domid);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
