/* SPDX-License-Identifier: MIT */
/*
 * test-ring.c - the ring logic on a control page and ring buffers in plain memory, both
 * endpoints in one process (spec edge cases 5-14 as far as they are ring logic): wrap at the
 * ring end, 32-bit index wrap, full ring, packet vs stream, random sizes with a logged seed,
 * hostile indices (no out-of-bounds access: ring buffers are exact-size heap blocks so ASan
 * sees any overrun), a thread scribbling over the control page, orders rewritten after
 * connect, live bytes, reconnect, close with pending data, and the notify-bit protocol.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vchan/ring.h"
#include "leak.h"

typedef struct Fix {
    uint8_t *page;
    VchanCtrl *ctrl;
    uint8_t *lbuf, *rbuf;
    uint32_t lsize, rsize;
    VchanRing srv, cli;
} Fix;

/* A connected pair over a fresh page; the rings are separate exact-size allocations even
 * for in-page orders, so that ASan catches any access outside a ring. */
static void fix_init(Fix *f, unsigned lo, unsigned ro)
{
    f->page = aligned_alloc(4096, 4096);
    ck_assert_ptr_nonnull(f->page);
    memset(f->page, 0, 4096);
    f->ctrl = (VchanCtrl *)f->page;
    f->lsize = 1u << lo;
    f->rsize = 1u << ro;
    f->lbuf = calloc(1, f->lsize);
    f->rbuf = calloc(1, f->rsize);
    ck_assert(f->lbuf && f->rbuf);
    vchan_ctrl_server_init(f->ctrl, lo, ro);
    vchan_ring_init(&f->srv, f->ctrl, true, f->lbuf, f->lsize, f->rbuf, f->rsize, 0, 0);
    vchan_ring_init(&f->cli, f->ctrl, false, f->lbuf, f->lsize, f->rbuf, f->rsize, 0, 0);
    vchan_ctrl_client_connect(f->ctrl);
}

static void fix_free(Fix *f)
{
    free(f->lbuf);
    free(f->rbuf);
    free(f->page);
}

static bool last_kick;

static ssize_t wr(VchanRing *r, const void *p, size_t n, bool packet)
{
    struct iovec iov = {(void *)p, n};

    return vchan_ring_writev(r, &iov, 1, packet ? n : 1, &last_kick);
}

static ssize_t rd(VchanRing *r, void *p, size_t n, bool packet)
{
    struct iovec iov = {p, n};

    return vchan_ring_readv(r, &iov, 1, packet ? n : 1, &last_kick);
}

/* Byte number @pos of every test stream. */
static uint8_t pat(uint64_t pos)
{
    return (uint8_t)((pos * 2654435761u) >> 13);
}

static void fill(uint8_t *p, size_t n, uint64_t pos)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(pos + i);
}

static void check_pat(const uint8_t *p, size_t n, uint64_t pos)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(pos + i))
            ck_abort_msg("byte %llu: got %u, want %u", (unsigned long long)(pos + i), p[i],
                         pat(pos + i));
}

/* Edge case 5: size-2, then 1, then 5 bytes: the last write wraps. */
START_TEST(test_wrap_at_ring_end)
{
    static const size_t steps[] = {1022, 1, 5};
    uint8_t buf[2048];
    uint64_t pos = 0;
    Fix f;

    fix_init(&f, 10, 11); /* client writes the 1 KiB left ring */
    for (size_t i = 0; i < 3; i++) {
        fill(buf, steps[i], pos);
        ck_assert_int_eq(wr(&f.cli, buf, steps[i], false), (ssize_t)steps[i]);
        memset(buf, 0, sizeof(buf));
        ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), (ssize_t)steps[i]);
        check_pat(buf, steps[i], pos);
        pos += steps[i];
    }
    /* the 5 bytes sit at ring[1023] and ring[0..3] */
    ck_assert_uint_eq(f.lbuf[1023], pat(1023));
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(f.lbuf[i], pat(1024 + (uint64_t)i));
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.prod), 1028);
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.cons), 1028);
    fix_free(&f);
}
END_TEST

/* Edge case 6: indices start at 0xFFFFFF00 and wrap through 2^32. */
START_TEST(test_index_wraparound_32bit)
{
    const uint32_t start = 0xFFFFFF00u;
    uint8_t buf[300];
    uint64_t wpos = 0, rpos = 0;
    Fix f;

    fix_init(&f, 10, 11);
    atomic_store(&f.ctrl->left.prod, start);
    atomic_store(&f.ctrl->left.cons, start);
    vchan_ring_init(&f.srv, f.ctrl, true, f.lbuf, f.lsize, f.rbuf, f.rsize, start, 0);
    vchan_ring_init(&f.cli, f.ctrl, false, f.lbuf, f.lsize, f.rbuf, f.rsize, 0, start);

    while (rpos < 4096) {
        ssize_t n;

        fill(buf, sizeof(buf), wpos);
        n = wr(&f.cli, buf, sizeof(buf), false);
        ck_assert(n > 0 || n == -EAGAIN);
        if (n > 0)
            wpos += (uint64_t)n;
        n = rd(&f.srv, buf, 200, false);
        ck_assert_int_gt(n, 0);
        check_pat(buf, (size_t)n, rpos);
        rpos += (uint64_t)n;
        ck_assert_int_eq(vchan_ring_data_ready(&f.srv), (ssize_t)(wpos - rpos));
    }
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.cons), (uint32_t)(start + rpos));
    ck_assert_uint_lt(atomic_load(&f.ctrl->left.cons), start); /* it did wrap */
    fix_free(&f);
}
END_TEST

/* Edge case 7: the whole ring is usable and never more. */
START_TEST(test_full_ring)
{
    uint8_t buf[1200];
    Fix f;

    fix_init(&f, 10, 11);
    fill(buf, sizeof(buf), 0);
    ck_assert_int_eq(wr(&f.cli, buf, sizeof(buf), false), 1024);
    ck_assert_int_eq(vchan_ring_buffer_space(&f.cli), 0);
    ck_assert_int_eq(vchan_ring_data_ready(&f.srv), 1024);
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.prod) - atomic_load(&f.ctrl->left.cons), 1024);
    ck_assert_int_eq(wr(&f.cli, buf, 1, false), -EAGAIN);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 1024);
    check_pat(buf, 1024, 0);
    ck_assert_int_eq(vchan_ring_buffer_space(&f.cli), 1024);
    fix_free(&f);
}
END_TEST

/* Edge case 8 (ring level): all-or-nothing packets vs partial streams. */
START_TEST(test_packet_vs_stream)
{
    uint8_t buf[1100];
    Fix f;

    fix_init(&f, 10, 11);
    fill(buf, sizeof(buf), 0);
    ck_assert_int_eq(wr(&f.cli, buf, 1000, false), 1000);
    ck_assert_int_eq(wr(&f.cli, buf, 100, true), -EAGAIN); /* 24 free: nothing */
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.prod), 1000);
    ck_assert_int_eq(wr(&f.cli, buf + 1000, 100, false), 24); /* stream takes what fits */
    ck_assert_int_eq(wr(&f.cli, buf, 24, true), -EAGAIN);

    ck_assert_int_eq(rd(&f.srv, buf, 1025, true), -EAGAIN); /* more than ready */
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.cons), 0);  /* nothing consumed */
    ck_assert_int_eq(rd(&f.srv, buf, 1024, true), 1024);
    check_pat(buf, 1024, 0);
    ck_assert_int_eq(rd(&f.srv, buf, 10, true), -EAGAIN);
    ck_assert_int_eq(wr(&f.cli, buf, 5, false), 5);
    ck_assert_int_eq(rd(&f.srv, buf, 10, true), -EAGAIN);
    ck_assert_int_eq(vchan_ring_data_ready(&f.srv), 5);
    ck_assert_int_eq(rd(&f.srv, buf, 5, true), 5);
    /* zero-length requests are refused at this level (the API maps them) */
    ck_assert_int_eq(rd(&f.srv, buf, 0, false), -EINVAL);
    ck_assert_int_eq(wr(&f.cli, buf, 0, false), -EINVAL);
    fix_free(&f);
}
END_TEST

/* Scatter/gather across the wrap point, with empty iovecs in between. */
START_TEST(test_iov_across_wrap)
{
    uint8_t src[60], a[7], b[13], c[40], junk[1000];
    struct iovec wiov[3] = {{src, 10}, {src + 10, 0}, {src + 10, 50}};
    struct iovec riov[4] = {{a, 7}, {b, 13}, {junk, 0}, {c, 40}};
    Fix f;

    fix_init(&f, 10, 11);
    fill(junk, 1000, 0);
    ck_assert_int_eq(wr(&f.cli, junk, 1000, false), 1000);
    ck_assert_int_eq(rd(&f.srv, junk, 1000, false), 1000);
    fill(src, sizeof(src), 5000);
    ck_assert_int_eq(vchan_ring_writev(&f.cli, wiov, 3, 60, &last_kick), 60);
    ck_assert_int_eq(vchan_ring_readv(&f.srv, riov, 4, 60, &last_kick), 60);
    check_pat(a, 7, 5000);
    check_pat(b, 13, 5007);
    check_pat(c, 40, 5020);
    fix_free(&f);
}
END_TEST

/* Edge case 9: random-size stream ops both ways, checked byte by byte. */
START_TEST(test_random_sizes)
{
    const char *env = getenv("VCHAN_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
    static const unsigned orders[][2] = {{10, 11}, {11, 10}, {12, 11}, {13, 14}};
    static uint8_t buf[5000];

    printf("test_random_sizes: seed %u (set VCHAN_TEST_SEED to repeat)\n", seed);
    fflush(stdout);
    srand(seed);
    for (size_t g = 0; g < sizeof(orders) / sizeof(orders[0]); g++) {
        uint64_t wpos[2] = {0}, rpos[2] = {0};
        Fix f;

        fix_init(&f, orders[g][0], orders[g][1]);
        for (int op = 0; op < 20000; op++) {
            int dir = rand() & 1; /* 0: client -> server, 1: server -> client */
            VchanRing *w = dir ? &f.srv : &f.cli, *r = dir ? &f.cli : &f.srv;
            size_t n = 1 + (size_t)rand() % (rand() & 1 ? 100 : sizeof(buf) - 1);
            bool packet = (rand() & 3) == 0;
            ssize_t got;

            if (rand() & 1) {
                fill(buf, n, wpos[dir]);
                got = wr(w, buf, n, packet);
                ck_assert_msg(got == -EAGAIN || (got > 0 && (size_t)got <= n),
                              "seed %u op %d: write %zd", seed, op, got);
                ck_assert(!packet || got == -EAGAIN || (size_t)got == n);
                if (got > 0)
                    wpos[dir] += (uint64_t)got;
            } else {
                got = rd(r, buf, n, packet);
                ck_assert_msg(got == -EAGAIN || (got > 0 && (size_t)got <= n),
                              "seed %u op %d: read %zd", seed, op, got);
                if (got > 0) {
                    check_pat(buf, (size_t)got, rpos[dir]);
                    rpos[dir] += (uint64_t)got;
                }
            }
            ck_assert_int_eq(vchan_ring_data_ready(r), (ssize_t)(wpos[dir] - rpos[dir]));
        }
        /* drain: no loss */
        for (int dir = 0; dir < 2; dir++) {
            VchanRing *r = dir ? &f.cli : &f.srv;
            ssize_t got;

            while ((got = rd(r, buf, sizeof(buf), false)) > 0) {
                check_pat(buf, (size_t)got, rpos[dir]);
                rpos[dir] += (uint64_t)got;
            }
            ck_assert_uint_eq(rpos[dir], wpos[dir]);
        }
        fix_free(&f);
    }
}
END_TEST

/* Edge case 10 + XSA-86: producer indices making ready > size. */
START_TEST(test_hostile_producer_index)
{
    const uint32_t cons = 0x1000;
    const uint32_t bad[] = {cons + 1024 + 1, cons - 1, 0xFFFFFFFFu, cons + 0x80000000u,
                            cons + 2048};
    uint8_t buf[4096];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Fix f;

        fix_init(&f, 10, 11);
        vchan_ring_init(&f.srv, f.ctrl, true, f.lbuf, f.lsize, f.rbuf, f.rsize, cons, 0);
        atomic_store(&f.ctrl->left.prod, bad[i]);
        memset(buf, 0x5A, sizeof(buf));
        ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), -EPROTO);
        ck_assert_uint_eq(buf[0], 0x5A);                       /* nothing copied */
        ck_assert_uint_eq(atomic_load(&f.ctrl->left.cons), 0); /* nothing consumed */
        /* latched: a repaired index does not help, every op fails */
        atomic_store(&f.ctrl->left.prod, cons + 10);
        ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), -EPROTO);
        ck_assert_int_eq(vchan_ring_data_ready(&f.srv), -EPROTO);
        ck_assert_int_eq(wr(&f.srv, buf, 10, false), -EPROTO);
        ck_assert_int_eq(vchan_ring_peer_state(&f.srv), VCHAN_PEER_BROKEN);
        ck_assert_ptr_nonnull(f.srv.violation);
        fix_free(&f);
    }

    /* the boundary itself is legal: exactly a full ring */
    {
        Fix f;

        fix_init(&f, 10, 11);
        atomic_store(&f.ctrl->left.prod, 1024);
        ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 1024);
        fix_free(&f);
    }
}
END_TEST

/* Consumer indices making used > size: the writer must not overrun the ring. */
START_TEST(test_hostile_consumer_index)
{
    const uint32_t prod = 0x2000;
    const uint32_t bad[] = {prod + 1, prod - 1024 - 1, 0xFFFFFFFFu, prod + 0x80000000u};
    uint8_t buf[4096];

    memset(buf, 0x33, sizeof(buf));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Fix f;

        fix_init(&f, 10, 11);
        vchan_ring_init(&f.cli, f.ctrl, false, f.lbuf, f.lsize, f.rbuf, f.rsize, 0, prod);
        atomic_store(&f.ctrl->left.prod, prod);
        atomic_store(&f.ctrl->left.cons, bad[i]);
        ck_assert_int_eq(wr(&f.cli, buf, sizeof(buf), false), -EPROTO);
        ck_assert_int_eq(f.lbuf[0], 0);                           /* nothing written */
        ck_assert_uint_eq(atomic_load(&f.ctrl->left.prod), prod); /* nor published */
        ck_assert_int_eq(vchan_ring_buffer_space(&f.cli), -EPROTO);
        fix_free(&f);
    }
}
END_TEST

/* Weakness 1: our own index is a private shadow; a peer rewriting it in shared memory
 * cannot move our stream position. */
START_TEST(test_own_index_is_shadowed)
{
    uint8_t buf[100];
    Fix f;

    fix_init(&f, 10, 11);
    fill(buf, 100, 0);
    ck_assert_int_eq(wr(&f.cli, buf, 60, false), 60);
    ck_assert_int_eq(rd(&f.srv, buf, 20, false), 20);
    /* the "client" scribbles on the server's consumer index and its own producer */
    atomic_store(&f.ctrl->left.cons, 55);
    ck_assert_int_eq(rd(&f.srv, buf, 100, false), 40); /* continues at 20, not 55 */
    check_pat(buf, 40, 20);
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.cons), 60); /* and restores it */
    fix_free(&f);
}
END_TEST

typedef struct Toggler {
    Fix *f;
    atomic_bool stop;
} Toggler;

static void *toggle_prod(void *arg)
{
    Toggler *t = arg;

    while (!atomic_load_explicit(&t->stop, memory_order_relaxed)) {
        atomic_store_explicit(&t->f->ctrl->left.prod, 1, memory_order_relaxed);
        atomic_store_explicit(&t->f->ctrl->left.prod, 0x40000000u, memory_order_relaxed);
    }
    return NULL;
}

/* Edge case 10 "toggling" + XSA-155: an index flipping between valid and huge. A reader
 * that checked one fetch and used another would copy ~1 GiB (ASan would stop it). */
START_TEST(test_toggling_index_single_fetch)
{
    static uint8_t buf[65536];
    Toggler t = {0};
    pthread_t th;
    Fix f;
    int ok = 0, proto = 0;

    fix_init(&f, 10, 11);
    f.lbuf[0] = 0xC3;
    t.f = &f;
    ck_assert_int_eq(pthread_create(&th, NULL, toggle_prod, &t), 0);
    for (int i = 0; i < 100000; i++) {
        ssize_t n;

        vchan_ring_init(&f.srv, f.ctrl, true, f.lbuf, f.lsize, f.rbuf, f.rsize, 0, 0);
        n = rd(&f.srv, buf, sizeof(buf), false);
        ck_assert_msg(n == 1 || n == -EPROTO || n == -EAGAIN, "read returned %zd", n);
        if (n == 1) {
            ck_assert_uint_eq(buf[0], 0xC3);
            ok++;
        } else if (n == -EPROTO) {
            proto++;
        }
    }
    atomic_store(&t.stop, true);
    pthread_join(th, NULL);
    printf("toggling: %d good reads, %d violations\n", ok, proto);
    ck_assert_int_gt(ok + proto, 0);
    fix_free(&f);
}
END_TEST

typedef struct Scribbler {
    uint8_t *page;
    atomic_bool stop;
    atomic_ulong hits; /* stores done so far */
    unsigned seed;
} Scribbler;

static void *scribble(void *arg)
{
    Scribbler *s = arg;
    unsigned x = s->seed;

    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        x = x * 1103515245u + 12345u;
        /* hit the 24-byte header most of the time, the rest of the page sometimes */
        size_t off = (x >> 8) % ((x & 0x10) ? 4096 : 24);
        __atomic_store_n(&s->page[off], (uint8_t)(x >> 24), __ATOMIC_RELAXED);
        atomic_fetch_add_explicit(&s->hits, 1, memory_order_relaxed);
        /* pause now and then, so that some I/O gets through between hits */
        for (volatile unsigned i = 0; i < (x >> 20) % 4096; i++)
            ;
    }
    return NULL;
}

/* Edge case 11: a thread rewrites every byte of the control page while both ends do I/O.
 * Every result must stay within its bounds; ASan reports any out-of-bounds copy.
 * On a loaded machine the scribbler may get no CPU for a while (it used to run during only
 * part of a fixed 200000 operations, or none: a flaky "no violation seen"). So the I/O
 * starts once the scribbler has, and goes on, bounded, until both a violation and a
 * transfer were seen alongside it. */
START_TEST(test_scribbler_thread)
{
    static uint8_t buf[8192];
    Scribbler s = {.seed = 42};
    pthread_t th;
    int violations = 0, moved = 0;
    Fix f;

    fix_init(&f, 12, 11);
    s.page = f.page;
    ck_assert_int_eq(pthread_create(&th, NULL, scribble, &s), 0);
    while (atomic_load(&s.hits) == 0)
        sched_yield();
    for (int i = 0; i < 200000 || ((violations == 0 || moved == 0) && i < 100000000); i++) {
        VchanRing *r = (i & 1) ? &f.srv : &f.cli;
        size_t n = 1 + ((size_t)i * 7919u) % sizeof(buf);
        ssize_t got;

        if (i & 2) {
            got = wr(r, buf, n, i & 4);
            ck_assert_msg((got > 0 && (size_t)got <= n) || got == -EAGAIN || got == -EPROTO ||
                              got == -EPIPE,
                          "write returned %zd", got);
        } else {
            got = rd(r, buf, n, i & 4);
            ck_assert_msg((got >= 0 && (size_t)got <= n) || got == -EAGAIN || got == -EPROTO ||
                              got == -ECONNRESET,
                          "read returned %zd", got);
        }
        if (got > 0)
            moved++;
        if (got == -EPROTO) {
            violations++;
            /* new endpoints on the same hostile page, its header reset (else garbage
             * indices left by the scribbler make every later operation a violation) */
            vchan_ctrl_server_init(f.ctrl, 12, 11);
            vchan_ring_init(&f.srv, f.ctrl, true, f.lbuf, f.lsize, f.rbuf, f.rsize, 0, 0);
            vchan_ring_init(&f.cli, f.ctrl, false, f.lbuf, f.lsize, f.rbuf, f.rsize, 0, 0);
            vchan_ctrl_client_connect(f.ctrl);
        }
    }
    atomic_store(&s.stop, true);
    pthread_join(th, NULL);
    printf("scribbler: %d violations detected, %d transfers\n", violations, moved);
    ck_assert_int_gt(violations, 0); /* the scribbler did get noticed */
    ck_assert_int_gt(moved, 0);      /* and I/O went on around it */
    fix_free(&f);
}
END_TEST

/* Edge case 12: orders rewritten after connect are ignored; the sizes copied at connect
 * keep being used. */
START_TEST(test_orders_rewritten_after_connect)
{
    static const uint16_t hostile[] = {20, 0, 65535, 10};
    uint8_t buf[10000];
    uint64_t wpos = 0, rpos = 0;
    Fix f;

    fix_init(&f, 12, 12); /* 4 KiB each way */
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        atomic_store(&f.ctrl->left_order, hostile[i]);
        atomic_store(&f.ctrl->right_order, hostile[i]);
        fill(buf, sizeof(buf), wpos);
        ck_assert_int_eq(wr(&f.cli, buf, sizeof(buf), false), 4096 - (ssize_t)(wpos - rpos));
        wpos = rpos + 4096;
        ck_assert_int_eq(vchan_ring_buffer_space(&f.cli), 0);
        ck_assert_int_eq(wr(&f.cli, buf, 1, false), -EAGAIN);
        ck_assert_int_eq(rd(&f.srv, buf, 3000, false), 3000);
        check_pat(buf, 3000, rpos);
        rpos += 3000;
    }
    fix_free(&f);
}
END_TEST

/* Edge case 13: live bytes other than 0, 1, 2 are violations. */
START_TEST(test_live_byte_out_of_range)
{
    uint8_t buf[16] = {0};

    for (unsigned v = 3; v <= 255; v++) {
        Fix f;

        fix_init(&f, 10, 11);
        atomic_store(&f.ctrl->cli_live, (uint8_t)v);
        ck_assert_int_eq(vchan_ring_peer_state(&f.srv), VCHAN_PEER_BROKEN);
        ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), -EPROTO);
        fix_free(&f);

        fix_init(&f, 10, 11);
        atomic_store(&f.ctrl->srv_live, (uint8_t)v);
        ck_assert_int_eq(wr(&f.cli, buf, sizeof(buf), false), -EPROTO); /* writes check too */
        ck_assert_int_eq(vchan_ring_peer_state(&f.cli), VCHAN_PEER_BROKEN);
        fix_free(&f);
    }
}
END_TEST

/* Edge case 13: a client seeing 2 treats the server as not ready, not as a violation. */
START_TEST(test_client_sees_waiting)
{
    uint8_t buf[16] = {0};
    Fix f;

    fix_init(&f, 10, 11);
    atomic_store(&f.ctrl->srv_live, 2);
    ck_assert_int_eq(vchan_ring_peer_state(&f.cli), VCHAN_PEER_WAITING);
    ck_assert_int_eq(rd(&f.cli, buf, sizeof(buf), false), -EAGAIN);
    ck_assert_int_eq(wr(&f.cli, buf, sizeof(buf), false), 16);
    fix_free(&f);
}
END_TEST

/* Edge case 13: 2 -> 1 -> 0 -> 1 as the server sees it, and a reconnecting client
 * continuing at the indices in the page. */
START_TEST(test_reconnect_sequence)
{
    uint8_t buf[64];
    Fix f;

    fix_init(&f, 10, 11);
    atomic_store(&f.ctrl->cli_live, 2); /* undo the fixture's connect */
    ck_assert_int_eq(vchan_ring_peer_state(&f.srv), VCHAN_PEER_WAITING);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), -EAGAIN);
    ck_assert_int_eq(wr(&f.srv, "early", 5, false), 5); /* buffered for the client */

    vchan_ctrl_client_connect(f.ctrl);
    ck_assert_int_eq(vchan_ring_peer_state(&f.srv), VCHAN_PEER_OPEN);
    ck_assert_int_eq(rd(&f.cli, buf, sizeof(buf), false), 5);
    ck_assert_mem_eq(buf, "early", 5);
    ck_assert_int_eq(wr(&f.cli, "0123456789", 10, false), 10);
    vchan_ring_close(&f.cli);
    ck_assert_int_eq(vchan_ring_peer_state(&f.srv), VCHAN_PEER_CLOSED);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 10);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 0);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 0);
    ck_assert_int_eq(wr(&f.srv, "x", 1, false), -EPIPE);

    /* a new client maps the same page: indices are not reset */
    vchan_ring_init(&f.cli, f.ctrl, false, f.lbuf, f.lsize, f.rbuf, f.rsize,
                    atomic_load(&f.ctrl->right.cons), atomic_load(&f.ctrl->left.prod));
    vchan_ctrl_client_connect(f.ctrl);
    ck_assert_int_eq(vchan_ring_peer_state(&f.srv), VCHAN_PEER_OPEN);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), -EAGAIN); /* not EOF any more */
    ck_assert_int_eq(wr(&f.cli, "again", 5, false), 5);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 5);
    ck_assert_mem_eq(buf, "again", 5);
    ck_assert_uint_eq(atomic_load(&f.ctrl->left.cons), 15);

    /* the client latches a server close: a server never reopens its page */
    vchan_ring_close(&f.srv);
    ck_assert_int_eq(rd(&f.cli, buf, sizeof(buf), false), 0);
    atomic_store(&f.ctrl->srv_live, 1);
    ck_assert_int_eq(vchan_ring_peer_state(&f.cli), VCHAN_PEER_CLOSED);
    ck_assert_int_eq(rd(&f.cli, buf, sizeof(buf), false), 0);
    fix_free(&f);
}
END_TEST

/* Edge case 14 / weakness 4: everything written before the close is delivered, then EOF. */
START_TEST(test_close_with_pending_data)
{
    uint8_t buf[2048];
    Fix f;

    fix_init(&f, 10, 11);
    fill(buf, 1000, 0);
    ck_assert_int_eq(wr(&f.cli, buf, 1000, false), 1000);
    vchan_ring_close(&f.cli);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(rd(&f.srv, buf, 300, false), 300);
    ck_assert_int_eq(rd(&f.srv, buf + 300, sizeof(buf), false), 700);
    check_pat(buf, 1000, 0);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 0);
    fix_free(&f);

    /* a packet cut short by the close: recv says so, read still gets the bytes */
    fix_init(&f, 10, 11);
    ck_assert_int_eq(wr(&f.cli, "0123456789", 10, false), 10);
    vchan_ring_close(&f.cli);
    ck_assert_int_eq(rd(&f.srv, buf, 20, true), -ECONNRESET);
    ck_assert_int_eq(rd(&f.srv, buf, 20, false), 10);
    ck_assert_int_eq(rd(&f.srv, buf, 20, true), 0);
    fix_free(&f);
}
END_TEST

/* The notify-bit protocol: events only when the peer asked, bits in the right bytes. */
START_TEST(test_notify_protocol)
{
    uint8_t buf[2048] = {0};
    Fix f;

    fix_init(&f, 10, 11);
    /* connect requests: each side asked to hear about the other's first write */
    ck_assert_uint_eq(atomic_load(&f.ctrl->cli_notify), VCHAN_NOTIFY_WRITE_BIT);
    ck_assert_uint_eq(atomic_load(&f.ctrl->srv_notify), VCHAN_NOTIFY_WRITE_BIT);
    ck_assert_int_eq(wr(&f.srv, buf, 1, false), 1);
    ck_assert(last_kick);
    ck_assert_uint_eq(atomic_load(&f.ctrl->srv_notify), 0);
    ck_assert_int_eq(wr(&f.srv, buf, 1, false), 1);
    ck_assert(!last_kick);
    ck_assert_int_eq(wr(&f.cli, buf, 1, false), 1);
    ck_assert(last_kick);
    ck_assert_int_eq(wr(&f.cli, buf, 1, false), 1);
    ck_assert(!last_kick);
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 2);
    ck_assert(!last_kick); /* the client never asked about consumption */
    ck_assert_int_eq(rd(&f.cli, buf, sizeof(buf), false), 2);

    /* a reader short of data asks the writer (bit in the writer's own byte) */
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), -EAGAIN);
    ck_assert_uint_eq(atomic_load(&f.ctrl->cli_notify), VCHAN_NOTIFY_WRITE_BIT);
    ck_assert_int_eq(wr(&f.cli, buf, 3, false), 3);
    ck_assert(last_kick);
    ck_assert_uint_eq(atomic_load(&f.ctrl->cli_notify), 0);

    /* a writer short of space asks the reader */
    ck_assert_int_eq(wr(&f.cli, buf, 2048, false), 1021);
    ck_assert(!last_kick);
    ck_assert_int_eq(wr(&f.cli, buf, 1, false), -EAGAIN);
    ck_assert_uint_eq(atomic_load(&f.ctrl->srv_notify), VCHAN_NOTIFY_READ_BIT);
    ck_assert_int_eq(rd(&f.srv, buf, 10, false), 10);
    ck_assert(last_kick);
    ck_assert_uint_eq(atomic_load(&f.ctrl->srv_notify), 0);
    ck_assert_int_eq(rd(&f.srv, buf, 10, false), 10);
    ck_assert(!last_kick);

    /* both busy, nobody waiting: no events at all */
    ck_assert_int_eq(rd(&f.srv, buf, sizeof(buf), false), 1004);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(wr(&f.cli, buf, 100, false), 100);
        ck_assert(!last_kick);
        ck_assert_int_eq(rd(&f.srv, buf, 100, false), 100);
        ck_assert(!last_kick);
    }
    /* a bit arriving while busy is honoured exactly once */
    atomic_fetch_or(&f.ctrl->cli_notify, VCHAN_NOTIFY_WRITE_BIT | VCHAN_NOTIFY_READ_BIT);
    ck_assert_int_eq(wr(&f.cli, buf, 1, false), 1);
    ck_assert(last_kick);
    ck_assert_uint_eq(atomic_load(&f.ctrl->cli_notify), VCHAN_NOTIFY_READ_BIT); /* not ours */
    fix_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vchan-ring");
    TCase *tc = tcase_create("ring");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 600);
    vt_leak_fixture(tc);
    tcase_add_test(tc, test_wrap_at_ring_end);
    tcase_add_test(tc, test_index_wraparound_32bit);
    tcase_add_test(tc, test_full_ring);
    tcase_add_test(tc, test_packet_vs_stream);
    tcase_add_test(tc, test_iov_across_wrap);
    tcase_add_test(tc, test_random_sizes);
    tcase_add_test(tc, test_hostile_producer_index);
    tcase_add_test(tc, test_hostile_consumer_index);
    tcase_add_test(tc, test_own_index_is_shadowed);
    tcase_add_test(tc, test_toggling_index_single_fetch);
    tcase_add_test(tc, test_scribbler_thread);
    tcase_add_test(tc, test_orders_rewritten_after_connect);
    tcase_add_test(tc, test_live_byte_out_of_range);
    tcase_add_test(tc, test_client_sees_waiting);
    tcase_add_test(tc, test_reconnect_sequence);
    tcase_add_test(tc, test_close_with_pending_data);
    tcase_add_test(tc, test_notify_protocol);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
