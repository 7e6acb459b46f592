/* SPDX-License-Identifier: MIT */
/*
 * test-layout.c - golden wire layout (spec edge case 1): our control-page struct must match
 * Debian's <xen/io/libxenvchan.h> field by field, and a page initialised by our server code
 * must read back through the Debian struct with libxenvchan's meaning.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/libxenvchan.h>

#include "vchan/ring.h"
#include "leak.h"

#define SAME_OFFSET(ours, theirs) \
    ck_assert_uint_eq(offsetof(VchanCtrl, ours), offsetof(struct vchan_interface, theirs))

START_TEST(test_offsets_match_debian_header)
{
    SAME_OFFSET(left.cons, left.cons);
    SAME_OFFSET(left.prod, left.prod);
    SAME_OFFSET(right.cons, right.cons);
    SAME_OFFSET(right.prod, right.prod);
    SAME_OFFSET(left_order, left_order);
    SAME_OFFSET(right_order, right_order);
    SAME_OFFSET(cli_live, cli_live);
    SAME_OFFSET(srv_live, srv_live);
    SAME_OFFSET(cli_notify, cli_notify);
    SAME_OFFSET(srv_notify, srv_notify);
    SAME_OFFSET(grants, grants);
    ck_assert_uint_eq(sizeof(struct vchan_interface), 24);
    ck_assert_uint_eq(sizeof(VchanCtrl), sizeof(struct vchan_interface));
    ck_assert_uint_eq(sizeof(struct ring_shared), sizeof(VchanIdx));
    ck_assert_uint_eq(offsetof(struct vchan_interface, grants), 24);
    /* unmap-notify offsets used with the Xen calls */
    ck_assert_uint_eq(VCHAN_OFF_CLI_LIVE, offsetof(struct vchan_interface, cli_live));
    ck_assert_uint_eq(VCHAN_OFF_SRV_LIVE, offsetof(struct vchan_interface, srv_live));
}
END_TEST

START_TEST(test_notify_bits_match_debian_header)
{
    ck_assert_uint_eq(VCHAN_NOTIFY_WRITE_BIT, VCHAN_NOTIFY_WRITE);
    ck_assert_uint_eq(VCHAN_NOTIFY_READ_BIT, VCHAN_NOTIFY_READ);
}
END_TEST

/* A fresh server page, read through libxenvchan's own struct. */
START_TEST(test_server_init_reads_back_through_debian_struct)
{
    uint8_t *page = aligned_alloc(4096, 4096);
    struct vchan_interface *theirs = (struct vchan_interface *)page;
    static const uint8_t golden[24] = {
        0,  0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* indices */
        12, 0, 11, 0,                                     /* orders, little-endian */
        2,  1,                                            /* cli_live waiting, srv_live open */
        1,  0,                                            /* cli_notify WRITE, srv_notify 0 */
    };

    memset(page, 0xAA, 4096);
    vchan_ctrl_server_init((VchanCtrl *)page, 12, 11);
    ck_assert_uint_eq(theirs->left_order, 12);
    ck_assert_uint_eq(theirs->right_order, 11);
    ck_assert_uint_eq(theirs->cli_live, 2);
    ck_assert_uint_eq(theirs->srv_live, 1);
    ck_assert_uint_eq(theirs->cli_notify, VCHAN_NOTIFY_WRITE);
    ck_assert_uint_eq(theirs->srv_notify, 0);
    ck_assert_mem_eq(page, golden, sizeof(golden));
    ck_assert_uint_eq(page[24], 0xAA); /* grants are the caller's business */

    /* client connect: srv_notify WRITE, cli_live 1 */
    vchan_ctrl_client_connect((VchanCtrl *)page);
    ck_assert_uint_eq(theirs->srv_notify, VCHAN_NOTIFY_WRITE);
    ck_assert_uint_eq(theirs->cli_live, 1);
    free(page);
}
END_TEST

/* Indices written through our ring code land where libxenvchan reads them. */
START_TEST(test_indices_land_in_debian_fields)
{
    uint8_t *page = aligned_alloc(4096, 4096);
    struct vchan_interface *theirs = (struct vchan_interface *)page;
    VchanRing srv, cli;
    uint8_t buf[100] = {0};
    struct iovec iov = {buf, 37};
    bool kick;

    memset(page, 0, 4096);
    vchan_ctrl_server_init((VchanCtrl *)page, 10, 11);
    vchan_ring_init(&srv, (VchanCtrl *)page, true, page + 1024, 1024, page + 2048, 2048, 0, 0);
    vchan_ring_init(&cli, (VchanCtrl *)page, false, page + 1024, 1024, page + 2048, 2048, 0, 0);
    vchan_ctrl_client_connect((VchanCtrl *)page);

    ck_assert_int_eq(vchan_ring_writev(&cli, &iov, 1, 1, &kick), 37); /* client -> left */
    ck_assert_uint_eq(theirs->left.prod, 37);
    iov.iov_len = 20;
    ck_assert_int_eq(vchan_ring_readv(&srv, &iov, 1, 1, &kick), 20);
    ck_assert_uint_eq(theirs->left.cons, 20);
    iov.iov_len = 5;
    ck_assert_int_eq(vchan_ring_writev(&srv, &iov, 1, 1, &kick), 5); /* server -> right */
    ck_assert_uint_eq(theirs->right.prod, 5);
    ck_assert_int_eq(vchan_ring_readv(&cli, &iov, 1, 1, &kick), 5);
    ck_assert_uint_eq(theirs->right.cons, 5);
    free(page);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vchan-layout");
    TCase *tc = tcase_create("layout");
    SRunner *sr;
    int failed;

    vt_leak_fixture(tc);
    tcase_add_test(tc, test_offsets_match_debian_header);
    tcase_add_test(tc, test_notify_bits_match_debian_header);
    tcase_add_test(tc, test_server_init_reads_back_through_debian_struct);
    tcase_add_test(tc, test_indices_land_in_debian_fields);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
