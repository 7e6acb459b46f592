/* SPDX-License-Identifier: MIT */
/*
 * test-select.c - ring geometry (spec edge cases 2-4): libxenvchan's ring-size selection
 * as a hand-derived table plus properties over all size pairs, the client's order checks,
 * and ring/grant placement.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "vchan/select.h"
#include "leak.h"

#define K 1024u
#define M (1024u * 1024u)

static const struct {
    size_t read_min, write_min;
    int rc;
    unsigned left, right;
} table[] = {
    /* the spec's examples */
    {0, 0, 0, 10, 11},
    {2048, 1024, 0, 11, 10},
    {2048, 2048, 0, 11, 12},
    {4096, 1024, 0, 12, 11},
    {65536, 65536, 0, 16, 16},
    {M, M, 0, 20, 20},
    /* one side varies, the other 0 */
    {1024, 0, 0, 10, 11},
    {1025, 0, 0, 11, 10},
    {2048, 0, 0, 11, 10},
    {2049, 0, 0, 12, 11},
    {4096, 0, 0, 12, 11},
    {4097, 0, 0, 13, 11},
    {65536, 0, 0, 16, 11},
    {M, 0, 0, 20, 11},
    {M + 1, 0, -EINVAL, 0, 0},
    {0, 1024, 0, 10, 11},
    {0, 1025, 0, 10, 11},
    {0, 2048, 0, 10, 11},
    {0, 2049, 0, 11, 12},
    {0, 4096, 0, 11, 12},
    {0, 4097, 0, 11, 13},
    {0, 65536, 0, 11, 16},
    {0, M, 0, 11, 20},
    {0, M + 1, -EINVAL, 0, 0},
    /* both vary */
    {1024, 1024, 0, 10, 11},
    {1025, 1025, 0, 11, 12},
    {1024, 2048, 0, 10, 11},
    {2049, 2049, 0, 12, 12},
    {4096, 4096, 0, 12, 12},
    {4097, 4097, 0, 13, 13},
    {1025, 2049, 0, 11, 12},
    {2049, 1025, 0, 12, 11},
    {65536, 1024, 0, 16, 11},
    {1024, 65536, 0, 11, 16},
    {M, M + 1, -EINVAL, 0, 0},
    {M + 1, M + 1, -EINVAL, 0, 0},
    {SIZE_MAX, 0, -EINVAL, 0, 0},
};

START_TEST(test_selection_table)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        VchanGeom g = {99, 99};
        int rc = vchan_geom_select(table[i].read_min, table[i].write_min, &g);

        ck_assert_msg(rc == table[i].rc, "(%zu,%zu): rc %d, expected %d", table[i].read_min,
                      table[i].write_min, rc, table[i].rc);
        if (rc == 0)
            ck_assert_msg(g.left_order == table[i].left && g.right_order == table[i].right,
                          "(%zu,%zu): got (%u,%u), expected (%u,%u)", table[i].read_min,
                          table[i].write_min, g.left_order, g.right_order, table[i].left,
                          table[i].right);
        else
            ck_assert_uint_eq(g.left_order, 99); /* untouched on error */
    }
}
END_TEST

/* Properties over every pair of the interesting sizes. */
START_TEST(test_selection_properties)
{
    static const size_t sizes[] = {0,    1,    1023, 1024,  1025,  2047,  2048,  2049,
                                   4095, 4096, 4097, 65535, 65536, 65537, M - 1, M};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            VchanGeom g;
            size_t l = sizes[i], r = sizes[j];

            ck_assert_int_eq(vchan_geom_select(l, r, &g), 0);
            /* big enough, and the smallest power of two that is, except in-page rounding */
            ck_assert((size_t)1 << g.left_order >= l);
            ck_assert((size_t)1 << g.right_order >= r);
            if (g.left_order > 12)
                ck_assert((size_t)1 << (g.left_order - 1) < l);
            if (g.right_order > 12)
                ck_assert((size_t)1 << (g.right_order - 1) < r);
            /* never a 1 KiB ring next to an external one; never two at one offset */
            if (g.left_order == 10)
                ck_assert_uint_eq(g.right_order, 11);
            if (g.right_order == 10)
                ck_assert_uint_eq(g.left_order, 11);
            /* what a server picks, a client accepts */
            ck_assert_int_eq(vchan_geom_check(g.left_order, g.right_order), 0);
        }
    }
}
END_TEST

START_TEST(test_client_order_validation)
{
    static const unsigned reject[][2] = {
        {9, 11},  {11, 9},     {21, 11},    {11, 21}, {0, 0},   {10, 10},
        {11, 11}, {65535, 11}, {12, 65535}, {9, 9},   {21, 21},
    };
    static const unsigned accept[][2] = {
        {10, 11}, {11, 10}, {11, 12}, {20, 20}, {10, 12},
        {10, 20}, {12, 10}, {12, 12}, {20, 10}, {12, 11},
    };

    for (size_t i = 0; i < sizeof(reject) / sizeof(reject[0]); i++)
        ck_assert_msg(vchan_geom_check(reject[i][0], reject[i][1]) == -EPROTO, "(%u,%u) accepted",
                      reject[i][0], reject[i][1]);
    for (size_t i = 0; i < sizeof(accept) / sizeof(accept[0]); i++)
        ck_assert_msg(vchan_geom_check(accept[i][0], accept[i][1]) == 0, "(%u,%u) rejected",
                      accept[i][0], accept[i][1]);
}
END_TEST

START_TEST(test_ring_placement)
{
    ck_assert_uint_eq(vchan_order_page_offset(10), 1024);
    ck_assert_uint_eq(vchan_order_page_offset(11), 2048);
    ck_assert_uint_eq(vchan_order_pages(10), 0);
    ck_assert_uint_eq(vchan_order_pages(11), 0);
    ck_assert_uint_eq(vchan_order_pages(12), 1);
    ck_assert_uint_eq(vchan_order_pages(16), 16);
    ck_assert_uint_eq(vchan_order_pages(20), 256);
    for (unsigned o = 12; o <= 20; o++)
        ck_assert_uint_eq(vchan_order_page_offset(o), 0);
}
END_TEST

/* Left ring's refs first, then right's; an in-page ring takes no slots. */
START_TEST(test_grant_ordering)
{
    VchanGeom g;

    g = (VchanGeom){11, 12}; /* in-page left + external right */
    ck_assert_uint_eq(vchan_geom_right_grant0(&g), 0);
    ck_assert_uint_eq(vchan_geom_grants(&g), 1);
    g = (VchanGeom){12, 11};
    ck_assert_uint_eq(vchan_geom_left_grant0(&g), 0);
    ck_assert_uint_eq(vchan_geom_grants(&g), 1);
    g = (VchanGeom){16, 13};
    ck_assert_uint_eq(vchan_geom_right_grant0(&g), 16);
    ck_assert_uint_eq(vchan_geom_grants(&g), 18);
    g = (VchanGeom){20, 20};
    ck_assert_uint_eq(vchan_geom_right_grant0(&g), 256);
    ck_assert_uint_eq(vchan_geom_grants(&g), VCHAN_GRANTS_MAX);
    /* the largest grant array ends below the end of the page */
    ck_assert(24 + 4 * VCHAN_GRANTS_MAX <= 4096);
    g = (VchanGeom){10, 11};
    ck_assert_uint_eq(vchan_geom_grants(&g), 0);
    /* an ocaml-vchan layout: right's 256 refs overlap the in-page left ring at 1024 */
    g = (VchanGeom){10, 20};
    ck_assert_uint_eq(vchan_geom_right_grant0(&g), 0);
    ck_assert(24 + 4 * vchan_geom_grants(&g) > vchan_order_page_offset(10));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vchan-select");
    TCase *tc = tcase_create("select");
    SRunner *sr;
    int failed;

    vt_leak_fixture(tc);
    tcase_add_test(tc, test_selection_table);
    tcase_add_test(tc, test_selection_properties);
    tcase_add_test(tc, test_client_order_validation);
    tcase_add_test(tc, test_ring_placement);
    tcase_add_test(tc, test_grant_ordering);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
