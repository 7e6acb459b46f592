/* SPDX-License-Identifier: MIT */
/*
 * test-xen.c - vchan's Xen code paths (xen.c) against an in-process fake of the Xen
 * libraries (fakexen.c), no hypervisor and no sim: connect and transfer at in-page and
 * multi-page sizes, XenStore keys in one transaction with the right permissions and EAGAIN
 * retry, long paths, strict parsing of hostile values, loopback and invalid domids, a
 * failure injected at every init step with no leaked handle, port, grant, mapping, node or
 * fd, bad orders and stale pages, second client and reconnect, unmap-notify, domain death,
 * waiting for the server through a watch, grant ordering, read-only read ring, and a
 * ping-pong through the event-channel path (spec edge cases 4, 13, 15, 16, 20-23, as far as
 * they can be shown without real Xen; phase 2 repeats them over the sim).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fakexen.h"
#include "vchan/vchan-internal.h"
#include "vchan/vchan.h"
#include "leak.h"

#define SRV 0
#define CLI 5
#define PATH "/local/domain/0/data/vchan/5/512"

static void setup(void)
{
    fake_xen_reset();
    fake_xen_add_domain(SRV);
    fake_xen_add_domain(CLI);
    fake_xen_add_domain(3);
    vt_leak_setup(); /* after the fake has its domains */
}

static void assert_no_leaks(void)
{
    FakeXenCounts n;

    fake_xen_counts(&n);
    ck_assert_int_eq(n.xs_handles, 0);
    ck_assert_int_eq(n.evtchn_handles, 0);
    ck_assert_int_eq(n.gnt_handles, 0);
    ck_assert_int_eq(n.ports, 0);
    ck_assert_int_eq(n.grants, 0);
    ck_assert_int_eq(n.maps, 0);
    vt_leak_fixture_check();
}

static void teardown(void)
{
    assert_no_leaks();
    ck_assert_int_eq(fake_xs_count_under("/local/domain/0/data"), 0);
    vt_leak_teardown();
}

static uint8_t pat(uint64_t pos)
{
    return (uint8_t)((pos * 2654435761u) >> 13);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static Vchan *server(size_t rmin, size_t wmin)
{
    Vchan *s = NULL;

    fake_xen_as(SRV);
    ck_assert_int_eq(vchan_server_new(&s, CLI, PATH, rmin, wmin), 0);
    return s;
}

static Vchan *client(void)
{
    Vchan *c = NULL;

    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_client_new(&c, SRV, PATH), 0);
    return c;
}

static void free_as(int domid, Vchan *v)
{
    fake_xen_as(domid);
    vchan_free(v);
}

/* Move @total bytes from @w to @r with non-blocking calls and poll on @r's fd. */
static void transfer(Vchan *w, Vchan *r, size_t total)
{
    static uint8_t buf[70000];
    size_t sent = 0, got = 0;

    while (got < total) {
        if (sent < total) {
            size_t n = total - sent < 5000 ? total - sent : 5000;
            ssize_t k;

            for (size_t i = 0; i < n; i++)
                buf[i] = pat(sent + i);
            k = vchan_write(w, buf, n);
            ck_assert(k > 0 || k == -EAGAIN);
            if (k > 0)
                sent += (size_t)k;
        }
        {
            ssize_t k = vchan_read(r, buf, sizeof(buf));

            ck_assert(k > 0 || k == -EAGAIN);
            /* One assertion per read, not per byte: every ck_assert costs Check a write
             * to its log, which made this loop take minutes on a busy machine. */
            ssize_t bad = -1;
            for (ssize_t i = 0; i < k && bad < 0; i++)
                if (buf[i] != pat(got + (size_t)i))
                    bad = i;
            ck_assert_msg(bad < 0, "byte %zu corrupted", got + (size_t)bad);
            if (k > 0)
                got += (size_t)k;
        }
    }
}

START_TEST(test_connect_and_transfer)
{
    static const size_t sizes[][4] = {
        /* read_min, write_min, expected left, right */
        {0, 0, 1024, 2048},           {2048, 1024, 2048, 1024},
        {4096, 1024, 4096, 2048}, /* external left + in-page right */
        {1024, 4096, 2048, 4096}, /* in-page left + external right */
        {65536, 65536, 65536, 65536}, {1 << 20, 1 << 20, 1 << 20, 1 << 20},
    };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        Vchan *s = server(sizes[i][0], sizes[i][1]), *c;

        ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_WAITING);
        c = client();
        ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_OPEN);
        ck_assert_int_eq(vchan_is_open(c), VCHAN_STATE_OPEN);
        ck_assert_uint_eq(vchan_read_ring_size(s), sizes[i][2]);
        ck_assert_uint_eq(vchan_write_ring_size(s), sizes[i][3]);
        ck_assert_uint_eq(vchan_write_ring_size(c), sizes[i][2]);
        ck_assert_uint_eq(vchan_read_ring_size(c), sizes[i][3]);
        /* the connect event arrived: poll(2) sees it, one system call takes it */
        struct pollfd pfd = {.fd = vchan_fd(s), .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 0), 1);
        ck_assert_int_eq(vchan_dispatch_ready(s), 1);
        ck_assert_int_ge(vchan_dispatch(s), 0);
        transfer(c, s, 3 * sizes[i][2] + 77);
        transfer(s, c, 3 * sizes[i][3] + 77);
        free_as(CLI, c);
        ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_CLOSED);
        free_as(SRV, s);
        assert_no_leaks();
    }
}
END_TEST

/* The client maps its write ring RW and its read ring read-only. */
START_TEST(test_client_mapping_protections)
{
    Vchan *s = server(65536, 65536), *c = client();

    ck_assert_int_eq(fake_map_prot(c->ring.wbuf), PROT_READ | PROT_WRITE);
    ck_assert_int_eq(fake_map_prot(c->ring.rbuf), PROT_READ);
    ck_assert_int_eq(fake_map_prot(c->ring.rbuf + 65535), PROT_READ);
    ck_assert_int_eq(fake_map_prot(c->ring.ctrl), PROT_READ | PROT_WRITE);
    free_as(CLI, c);
    free_as(SRV, s);
}
END_TEST

START_TEST(test_xenstore_keys_and_perms)
{
    Vchan *s = server(0, 0);
    struct xs_permissions perms[4];
    unsigned n = 4, len;
    char *ref = fake_xs_get(PATH "/ring-ref", &len);
    char *port = fake_xs_get(PATH "/event-channel", NULL);

    ck_assert_ptr_nonnull(ref);
    ck_assert_ptr_nonnull(port);
    ck_assert_uint_eq(strspn(ref, "0123456789"), len); /* plain decimal */
    ck_assert(ref[0] != '0');
    /* one transaction for both */
    ck_assert_uint_ne(fake_xs_txn_of(PATH "/ring-ref"), 0);
    ck_assert_uint_eq(fake_xs_txn_of(PATH "/ring-ref"), fake_xs_txn_of(PATH "/event-channel"));
    /* {own: NONE}, {client: READ} on each leaf */
    ck_assert(fake_xs_perms(PATH "/ring-ref", perms, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(perms[0].id, SRV);
    ck_assert_uint_eq(perms[0].perms, XS_PERM_NONE);
    ck_assert_uint_eq(perms[1].id, CLI);
    ck_assert_uint_eq(perms[1].perms, XS_PERM_READ);
    n = 4;
    ck_assert(fake_xs_perms(PATH "/event-channel", perms, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(perms[1].id, CLI);
    free(ref);
    free(port);
    free_as(SRV, s);
    /* the server removes its directory */
    ck_assert_int_eq(fake_xs_count_under(PATH), 0);
}
END_TEST

START_TEST(test_transaction_retry)
{
    Vchan *s = NULL, *c;

    fake_xen_commit_eagain(3);
    s = server(0, 0);
    c = client();
    transfer(c, s, 5000);
    free_as(CLI, c);
    free_as(SRV, s);

    fake_xen_commit_eagain(1000000); /* never commits: bounded retries, nothing left */
    fake_xen_as(SRV);
    ck_assert_int_eq(vchan_server_new(&s, CLI, PATH, 0, 0), -EAGAIN);
    assert_no_leaks();
    fake_xen_commit_eagain(0);
}
END_TEST

/* No truncation (libxenvchan cuts "<path>/ring-ref" at 64 bytes). */
START_TEST(test_long_path)
{
    char path[400], key[420];
    Vchan *s = NULL, *c = NULL;
    char *v;

    memset(path, 0, sizeof(path));
    strcpy(path, "/local/domain/0/data/vchan/5/");
    while (strlen(path) < 300)
        strcat(path, "long-component/");
    strcat(path, "end");
    fake_xen_as(SRV);
    ck_assert_int_eq(vchan_server_new(&s, CLI, path, 0, 0), 0);
    snprintf(key, sizeof(key), "%s/ring-ref", path);
    v = fake_xs_get(key, NULL);
    ck_assert_ptr_nonnull(v);
    free(v);
    ck_assert_str_eq(vchan_path(s), path);
    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_client_new(&c, SRV, path), 0);
    transfer(s, c, 100);
    free_as(CLI, c);
    free_as(SRV, s);
    ck_assert_int_eq(fake_xs_count_under(path), 0);
}
END_TEST

/* Edge case 20: hostile or stale XenStore values are refused without leaks. */
START_TEST(test_client_rejects_bad_values)
{
    static const char *const bad[] = {"",    "0",   "-1",  "12abc", "4294967296", "99999999999999",
                                      " 12", "+12", "012", "0x1f"};
    Vchan *s = server(0, 0), *c = NULL;
    unsigned len;
    char *good_ref = fake_xs_get(PATH "/ring-ref", &len);
    char *good_port = fake_xs_get(PATH "/event-channel", NULL);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fake_xs_set(PATH "/ring-ref", bad[i], strlen(bad[i]), SRV, CLI);
        fake_xen_as(CLI);
        ck_assert_msg(vchan_client_new(&c, SRV, PATH) == -EPROTO, "ring-ref '%s'", bad[i]);
        fake_xs_set(PATH "/ring-ref", good_ref, len, SRV, CLI);
        fake_xs_set(PATH "/event-channel", bad[i], strlen(bad[i]), SRV, CLI);
        ck_assert_msg(vchan_client_new(&c, SRV, PATH) == -EPROTO, "event-channel '%s'", bad[i]);
        fake_xs_set(PATH "/event-channel", good_port, strlen(good_port), SRV, CLI);
    }
    /* an embedded NUL is junk too */
    fake_xs_set(PATH "/ring-ref",
                "8\0"
                "9",
                3, SRV, CLI);
    ck_assert_int_eq(vchan_client_new(&c, SRV, PATH), -EPROTO);
    fake_xs_set(PATH "/ring-ref", good_ref, len, SRV, CLI);
    /* a ref that is a number but not a grant of the server's: mapping fails cleanly */
    fake_xs_set(PATH "/ring-ref", "4000", 4, SRV, CLI);
    ck_assert_int_lt(vchan_client_new(&c, SRV, PATH), 0);
    fake_xs_set(PATH "/ring-ref", good_ref, len, SRV, CLI);
    /* missing */
    ck_assert_int_eq(vchan_client_new(&c, SRV, "/local/domain/0/data/vchan/5/999"), -ENOENT);
    /* still a working server afterwards */
    c = client();
    transfer(c, s, 3000);
    free_as(CLI, c);
    free_as(SRV, s);
    free(good_ref);
    free(good_port);
}
END_TEST

/* Edge case 21 / Qubes #951: loopback and invalid domids. */
START_TEST(test_loopback_and_invalid_domids)
{
    static const int bad[] = {-1, 0x7FF0, 0x7FF1, 0x7FFF, 0xFFFF, 1 << 20};
    Vchan *v = NULL;

    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_server_new(&v, CLI, PATH, 0, 0), -EINVAL);
    ck_assert_int_eq(vchan_client_new(&v, CLI, PATH), -EINVAL);
    fake_xen_as(SRV);
    ck_assert_int_eq(vchan_server_new(&v, SRV, PATH, 0, 0), -EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(vchan_server_new(&v, bad[i], PATH, 0, 0), -EINVAL);
        ck_assert_int_eq(vchan_client_new(&v, bad[i], PATH), -EINVAL);
        ck_assert_int_eq(vchan_client_new_wait(&v, bad[i], PATH, 100), -EINVAL);
    }
    ck_assert_int_eq(vchan_server_new(&v, CLI, "", 0, 0), -EINVAL);
    ck_assert_int_eq(vchan_server_new(&v, CLI, NULL, 0, 0), -EINVAL);
    ck_assert_int_eq(vchan_client_new(&v, CLI, ""), -EINVAL);
    ck_assert_int_eq(vchan_server_new(&v, CLI, PATH, (1 << 20) + 1, 0), -EINVAL);
    /* our own "domid" key must parse strictly too */
    fake_xs_set("/local/domain/0/domid", "0x", 2, SRV, SRV);
    ck_assert_int_eq(vchan_server_new(&v, CLI, PATH, 0, 0), -EPROTO);
    fake_xs_set("/local/domain/0/domid", "0", 1, SRV, SRV);
    ck_assert_int_eq(fake_xs_count_under("/local/domain/0/data"), 0);
}
END_TEST

/* Edge case 23: a failure at every init step leaves nothing behind. */
START_TEST(test_server_failure_at_every_step)
{
    int n;

    for (n = 1; n < 100; n++) {
        Vchan *s = NULL;
        int rc;

        fake_xen_as(SRV);
        fake_xen_fail_at(n, n % 2 ? ENOMEM : EIO);
        rc = vchan_server_new(&s, CLI, PATH, 65536, 8192);
        fake_xen_fail_at(0, 0);
        if (rc == 0) {
            Vchan *c = client();

            transfer(s, c, 10000);
            free_as(CLI, c);
            free_as(SRV, s);
            break;
        }
        ck_assert_msg(rc == -ENOMEM || rc == -EIO, "step %d: rc %d", n, rc);
        assert_no_leaks();
        ck_assert_int_eq(fake_xs_count_under(PATH), 0);
    }
    printf("server init: %d fallible steps, each failure cleaned up\n", n - 1);
    ck_assert_int_gt(n, 8);
}
END_TEST

START_TEST(test_client_failure_at_every_step)
{
    Vchan *s = server(65536, 8192);
    FakeXenCounts base;
    int n;

    fake_xen_counts(&base);
    for (n = 1; n < 100; n++) {
        FakeXenCounts now;
        Vchan *c = NULL;
        int rc;

        fake_xen_as(CLI);
        fake_xen_fail_at(n, EIO);
        rc = vchan_client_new(&c, SRV, PATH);
        fake_xen_fail_at(0, 0);
        if (rc == 0) {
            transfer(s, c, 10000);
            transfer(c, s, 10000);
            free_as(CLI, c);
            break;
        }
        ck_assert_msg(rc == -EIO, "step %d: rc %d", n, rc);
        fake_xen_counts(&now);
        ck_assert(memcmp(&now, &base, sizeof(now)) == 0);
        /* nothing announced to the server */
        ck_assert_uint_eq(atomic_load(&s->ring.ctrl->cli_live), 2);
    }
    printf("client init: %d fallible steps, each failure cleaned up\n", n - 1);
    ck_assert_int_gt(n, 6);
    free_as(SRV, s);
}
END_TEST

/* Client order checks on a real page, and stale pages (a crashed server). */
START_TEST(test_client_rejects_bad_pages)
{
    static const uint16_t orders[][2] = {{9, 11},  {21, 11}, {10, 10},
                                         {11, 11}, {0, 0},   {11, 65535}};
    Vchan *s = server(0, 0), *c = NULL;
    VchanCtrl *ctrl = s->ring.ctrl;

    fake_xen_as(CLI);
    for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
        atomic_store(&ctrl->left_order, orders[i][0]);
        atomic_store(&ctrl->right_order, orders[i][1]);
        ck_assert_int_eq(vchan_client_new(&c, SRV, PATH), -EPROTO);
    }
    atomic_store(&ctrl->left_order, 10);
    atomic_store(&ctrl->right_order, 11);

    atomic_store(&ctrl->srv_live, 0); /* server gone */
    ck_assert_int_eq(vchan_client_new(&c, SRV, PATH), -ECONNREFUSED);
    atomic_store(&ctrl->srv_live, 1);
    atomic_store(&ctrl->cli_live, 9);
    ck_assert_int_eq(vchan_client_new(&c, SRV, PATH), -EPROTO);
    atomic_store(&ctrl->cli_live, 2);
    ck_assert_uint_eq(atomic_load(&ctrl->srv_notify), 0); /* nothing touched */

    /* a stale entry: the server is gone, its grants with it */
    {
        unsigned len;
        char *ref = fake_xs_get(PATH "/ring-ref", &len);
        char *port = fake_xs_get(PATH "/event-channel", NULL);

        free_as(SRV, s);
        fake_xs_set(PATH "/ring-ref", ref, len, SRV, CLI);
        fake_xs_set(PATH "/event-channel", port, strlen(port), SRV, CLI);
        fake_xen_as(CLI);
        ck_assert_int_lt(vchan_client_new(&c, SRV, PATH), 0);
        fake_xen_as(SRV);
        free(ref);
        free(port);
        fake_xs_rm(PATH);
    }
}
END_TEST

/* Edge cases 13 and 22: a second client is refused; after a close a new one reconnects. */
START_TEST(test_second_client_and_reconnect)
{
    Vchan *s = server(0, 0), *c1 = client(), *c2 = NULL, *c3;
    uint8_t buf[64];

    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_client_new(&c2, SRV, PATH), -EBUSY);
    transfer(c1, s, 5000);
    ck_assert_int_eq(vchan_write(c1, "bye", 3), 3);
    free_as(CLI, c1);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_CLOSED);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 3);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 0);

    c3 = client(); /* same page, indices carry on */
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_OPEN);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), -EAGAIN);
    transfer(c3, s, 5000);
    transfer(s, c3, 5000);
    free_as(CLI, c3);
    free_as(SRV, s);
}
END_TEST

/* Edge case 14 over the Xen path: the server writes and closes at once (its ring pages are
 * unshared while the client still maps them); the client reads everything, then EOF. */
START_TEST(test_server_close_with_pending_data)
{
    Vchan *s = server(0, 65536), *c = client();
    static uint8_t buf[70000];
    size_t done;

    for (size_t i = 0; i < 60000; i++)
        buf[i] = pat(i);
    ck_assert_int_eq(vchan_write(s, buf, 60000), 60000);
    free_as(SRV, s);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(vchan_read_full(c, buf, sizeof(buf), &done, 1000), VCHAN_E_EOF);
    ck_assert_uint_eq(done, 60000);
    for (size_t i = 0; i < done; i++)
        if (buf[i] != pat(i))
            ck_abort_msg("byte %zu", i);
    ck_assert_int_eq(vchan_write(c, "x", 1), -EPIPE);
    free_as(CLI, c);
}
END_TEST

/* Edge case 15 (in process): the kernel's unmap-notify when the client dies. */
START_TEST(test_unmap_notify_on_client_death)
{
    Vchan *s = server(0, 0), *c = client();
    struct pollfd pfd = {.fd = vchan_fd(s), .events = POLLIN};
    uint8_t buf[64];

    vchan_dispatch(s);
    ck_assert_int_eq(vchan_write(c, "last words", 10), 10);
    vchan_dispatch(s);
    fake_xen_fire_unmap_notify(CLI); /* zeroes cli_live, signals the port */
    ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_CLOSED);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 10);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 0);
    free_as(CLI, c);
    free_as(SRV, s);
}
END_TEST

/* Edge case 16: a destroyed domain never runs its unmap-notify; vchan_check_peer finds out. */
START_TEST(test_domain_death)
{
    Vchan *s = server(0, 0), *c = client();
    uint8_t buf[64];

    fake_xen_as(SRV);
    ck_assert_int_eq(vchan_check_peer(s), 1);
    ck_assert_int_eq(vchan_write(c, "pending", 7), 7);
    fake_xen_kill_domain(CLI);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_OPEN); /* the live byte cannot tell */
    ck_assert_int_eq(vchan_check_peer(s), 0);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_CLOSED);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 7);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 0);
    ck_assert_int_eq(vchan_write(s, "x", 1), -EPIPE);
    ck_assert_int_eq(vchan_wait_readable(s, 1, -1), 0); /* returns, EOF next */
    free_as(CLI, c);
    free_as(SRV, s);
}
END_TEST

/* Unprivileged: XS_IS_DOMAIN_INTRODUCED refused; a client falls back to the server's keys. */
START_TEST(test_domain_death_unprivileged)
{
    Vchan *s = NULL, *c = NULL;
    const char *path = "/local/domain/3/data/vchan/5/1";

    fake_xen_as(3);
    ck_assert_int_eq(vchan_server_new(&s, CLI, path, 0, 0), 0);
    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_client_new(&c, 3, path), 0);
    fake_xen_set_unprivileged(true);
    ck_assert_int_eq(vchan_check_peer(c), 1);
    fake_xen_as(3);
    ck_assert_int_eq(vchan_check_peer(s), -EACCES);
    fake_xen_kill_domain(3);
    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_check_peer(c), 0);
    ck_assert_int_eq(vchan_is_open(c), VCHAN_STATE_CLOSED);
    fake_xen_set_unprivileged(false);
    free_as(CLI, c);
    free_as(3, s);
}
END_TEST

/*
 * Found on the sim: after the server's domain is destroyed its subtree is gone, and real
 * xenstored answers a guest's read of the vanished ring-ref with EACCES (the nearest existing
 * parent, /local/domain, is unreadable to it), not ENOENT. The client fallback must still
 * say "gone". Modelled here by the key turning unreadable to the client.
 */
START_TEST(test_domain_death_unprivileged_eacces)
{
    Vchan *s = NULL, *c = NULL;
    const char *path = "/local/domain/3/data/vchan/5/2";
    char key[128];
    unsigned len = 0;
    char *val;

    fake_xen_as(3);
    ck_assert_int_eq(vchan_server_new(&s, CLI, path, 0, 0), 0);
    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_client_new(&c, 3, path), 0);
    fake_xen_set_unprivileged(true);
    ck_assert_int_eq(vchan_check_peer(c), 1);
    snprintf(key, sizeof(key), "%s/ring-ref", path);
    val = fake_xs_get(key, &len);
    ck_assert_ptr_nonnull(val);
    fake_xs_set(key, val, len, 3, 3); /* readable by its owner only: EACCES for us */
    free(val);
    ck_assert_int_eq(vchan_check_peer(c), 0);
    ck_assert_int_eq(vchan_is_open(c), VCHAN_STATE_CLOSED);
    fake_xen_set_unprivileged(false);
    free_as(CLI, c);
    free_as(3, s);
}
END_TEST

typedef struct Later {
    int delay_ms;
    Vchan *s;
} Later;

static void *serve_later(void *arg)
{
    Later *l = arg;

    usleep((useconds_t)l->delay_ms * 1000);
    fake_xen_as(SRV);
    ck_assert_int_eq(vchan_server_new(&l->s, CLI, PATH, 0, 0), 0);
    return NULL;
}

START_TEST(test_client_waits_for_server)
{
    Later l = {.delay_ms = 150};
    Vchan *c = NULL;
    pthread_t th;
    uint64_t t0 = now_ms();

    fake_xen_as(CLI);
    ck_assert_int_eq(vchan_client_new_wait(&c, SRV, PATH, 200), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 190);
    ck_assert_int_eq(vchan_client_new_wait(&c, SRV, PATH, 0), -ENOENT);
    assert_no_leaks();

    ck_assert_int_eq(pthread_create(&th, NULL, serve_later, &l), 0);
    fake_xen_as(CLI);
    /* Success, not -ETIMEDOUT, shows that the wait ended when the server appeared; the
     * bound only guards against a hang and is sized for a busy machine. */
    ck_assert_int_eq(vchan_client_new_wait(&c, SRV, PATH, 60000), 0);
    pthread_join(th, NULL);
    transfer(c, l.s, 5000);
    free_as(CLI, c);
    free_as(SRV, l.s);
}
END_TEST

/* Edge case 4: left ring's refs first, then right's, each ring's pages in order. */
START_TEST(test_grant_ordering_in_page)
{
    static const size_t cases[][4] = {
        /* read_min, write_min, left pages, right pages */
        {4096, 65536, 1, 16},
        {2048, 4096, 0, 1}, /* in-page left + external right: right starts at grants[0] */
        {65536, 2048, 16, 0},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        Vchan *s = server(cases[k][0], cases[k][1]);
        VchanCtrl *ctrl = s->ring.ctrl;
        unsigned nl = (unsigned)cases[k][2], nr = (unsigned)cases[k][3];
        int left_share = -1, right_share = -1;

        for (unsigned i = 0; i < nl + nr; i++) {
            int share, page;

            ck_assert(fake_grant_origin(atomic_load(&ctrl->grants[i]), &share, &page));
            if (i < nl) {
                if (left_share < 0)
                    left_share = share;
                ck_assert_int_eq(share, left_share);
                ck_assert_int_eq(page, (int)i);
            } else {
                if (right_share < 0)
                    right_share = share;
                ck_assert_int_eq(share, right_share);
                ck_assert_int_eq(page, (int)(i - nl));
            }
        }
        if (nl && nr)
            ck_assert_int_lt(left_share, right_share);
        free_as(SRV, s);
    }
}
END_TEST

typedef struct Echo {
    Vchan *v;
    int rounds;
    int rc;
} Echo;

static void *echo(void *arg)
{
    Echo *e = arg;
    uint8_t buf[256];

    for (int i = 0; i < e->rounds && !e->rc; i++) {
        size_t done;

        e->rc = vchan_read_full(e->v, buf, 100, &done, 5000);
        if (!e->rc)
            e->rc = vchan_write_full(e->v, buf, 100, &done, 5000);
    }
    return NULL;
}

/* Lost wakeups through the event-channel path (poll, pending, unmask). */
START_TEST(test_pingpong_event_channel)
{
    Vchan *s = server(0, 0), *c = client();
    VchanOptions o;
    uint8_t out[100], in[100];
    pthread_t th;
    Echo e = {.v = s, .rounds = 5000};

    vchan_options_init(&o);
    o.spin_ns = 0;
    vchan_set_options(s, &o);
    vchan_set_options(c, &o);
    ck_assert_int_eq(pthread_create(&th, NULL, echo, &e), 0);
    for (int i = 0; i < e.rounds; i++) {
        size_t done;

        for (int j = 0; j < 100; j++)
            out[j] = pat((uint64_t)i * 100 + (uint64_t)j);
        ck_assert_int_eq(vchan_write_full(c, out, 100, &done, 5000), 0);
        ck_assert_msg(vchan_read_full(c, in, 100, &done, 5000) == 0, "round %d", i);
        ck_assert_mem_eq(in, out, 100);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(e.rc, 0);
    free_as(CLI, c);
    free_as(SRV, s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vchan-xen");
    TCase *tc = tcase_create("xen");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_connect_and_transfer);
    tcase_add_test(tc, test_client_mapping_protections);
    tcase_add_test(tc, test_xenstore_keys_and_perms);
    tcase_add_test(tc, test_transaction_retry);
    tcase_add_test(tc, test_long_path);
    tcase_add_test(tc, test_client_rejects_bad_values);
    tcase_add_test(tc, test_loopback_and_invalid_domids);
    tcase_add_test(tc, test_server_failure_at_every_step);
    tcase_add_test(tc, test_client_failure_at_every_step);
    tcase_add_test(tc, test_client_rejects_bad_pages);
    tcase_add_test(tc, test_second_client_and_reconnect);
    tcase_add_test(tc, test_server_close_with_pending_data);
    tcase_add_test(tc, test_unmap_notify_on_client_death);
    tcase_add_test(tc, test_domain_death);
    tcase_add_test(tc, test_domain_death_unprivileged);
    tcase_add_test(tc, test_domain_death_unprivileged_eacces);
    tcase_add_test(tc, test_client_waits_for_server);
    tcase_add_test(tc, test_grant_ordering_in_page);
    tcase_add_test(tc, test_pingpong_event_channel);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
