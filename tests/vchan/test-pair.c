/* SPDX-License-Identifier: MIT */
/*
 * test-pair.c - the public API over an in-process pair (vchan_pair_new: the real ring and
 * blocking code, an eventfd per side in place of the event channel): argument semantics,
 * readv/writev, the pollable fd and spurious events (edge cases 18, 19), blocking helpers
 * with timeouts, EOF after drain, EPIPE, hostile indices failing fast instead of hanging
 * (qubes-issues#10833), lost-wakeup stress with two threads ping-ponging in both directions
 * with spinning on and off (edge case 17), a bulk transfer over 2 GiB (edge case 25), and no
 * events while both sides are busy. Every test also checks that no fd or process leaks.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "vchan/vchan-internal.h"
#include "vchan/vchan.h"
#include "leak.h"

/* Bounds on waits that should end far sooner: they guard against a hang, and are sized
 * for a busy machine, not an idle one. */
#define HANG_GUARD_MS 60000

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

static void no_spin(Vchan *c)
{
    VchanOptions o;

    vchan_options_init(&o);
    o.spin_ns = 0;
    ck_assert_int_eq(vchan_set_options(c, &o), 0);
}

START_TEST(test_sizes_and_states)
{
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 4096, 1024), 0);
    ck_assert_uint_eq(vchan_read_ring_size(s), 4096);
    ck_assert_uint_eq(vchan_write_ring_size(s), 2048); /* (12,11) */
    ck_assert_uint_eq(vchan_read_ring_size(c), 2048);
    ck_assert_uint_eq(vchan_write_ring_size(c), 4096);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_OPEN);
    ck_assert_int_eq(vchan_is_open(c), VCHAN_STATE_OPEN);
    ck_assert_str_eq(vchan_state_name(VCHAN_STATE_WAITING), "waiting");
    ck_assert_str_eq(vchan_state_name((VchanState)42), "invalid");
    ck_assert_int_eq(vchan_check_peer(s), -EOPNOTSUPP);
    vchan_free(c);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_CLOSED);
    vchan_free(s);
    ck_assert_ptr_null(vchan_free(NULL));
    ck_assert_int_eq(vchan_pair_new(&s, &c, (1 << 20) + 1, 0), -EINVAL);
}
END_TEST

START_TEST(test_argument_semantics)
{
    uint8_t buf[4096] = {0};
    struct iovec iov = {buf, 0};
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0); /* 1 KiB left, 2 KiB right */
    ck_assert_int_eq(vchan_read(s, buf, 0), -EINVAL);  /* 0 is reserved for EOF */
    ck_assert_int_eq(vchan_recv(s, buf, 0), -EINVAL);
    ck_assert_int_eq(vchan_readv(s, &iov, 1), -EINVAL);
    ck_assert_int_eq(vchan_readv(s, &iov, -1), -EINVAL);
    ck_assert_int_eq(vchan_write(c, buf, 0), 0);
    ck_assert_int_eq(vchan_send(c, buf, 0), 0);
    ck_assert_int_eq(vchan_send(c, buf, 1025), -EMSGSIZE); /* larger than the ring */
    ck_assert_int_eq(vchan_recv(s, buf, 1025), -EMSGSIZE);
    ck_assert_int_eq(vchan_send(c, buf, 1024), 1024); /* exactly the ring */
    ck_assert_int_eq(vchan_recv(s, buf, 1024), 1024);
    ck_assert_int_eq(vchan_wait_readable(s, 1025, 0), -EMSGSIZE);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), -EAGAIN);
    vchan_free(c);
    vchan_free(s);
}
END_TEST

START_TEST(test_readv_writev)
{
    uint8_t src[3000], dst[3000];
    size_t sent = 0, got = 0;
    Vchan *s, *c;

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = pat(i);
    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    while (got < sizeof(dst)) {
        if (sent < sizeof(src)) {
            size_t rem = sizeof(src) - sent, a = rem < 100 ? rem : 100;
            size_t b = rem - a < 900 ? rem - a : 900;
            struct iovec w[4] = {
                {src + sent, a}, {src, 0}, {src + sent + a, b}, {src + sent + a + b, rem - a - b}};
            ssize_t n = vchan_writev(s, w, 4); /* server writes the 2 KiB right ring */

            ck_assert(n > 0 || n == -EAGAIN);
            if (n > 0)
                sent += (size_t)n;
        }
        {
            size_t rem = sizeof(dst) - got, a = rem < 700 ? rem : 700;
            struct iovec r[2] = {{dst + got, a}, {dst + got + a, rem - a}};
            ssize_t m = vchan_readv(c, r, 2);

            ck_assert(m > 0 || m == -EAGAIN);
            if (m > 0)
                got += (size_t)m;
        }
    }
    ck_assert_mem_eq(src, dst, sizeof(src));
    vchan_free(c);
    vchan_free(s);
}
END_TEST

/* Edge case 19: the fd is readable exactly when an event is pending. */
START_TEST(test_fd_semantics)
{
    struct pollfd pfd;
    uint8_t buf[16];
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    ck_assert_int_ge(vchan_fd(s), 0);
    /* the client's connect event */
    pfd = (struct pollfd){.fd = vchan_fd(s), .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_eq(vchan_dispatch(s), 1);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(vchan_dispatch(s), 0);

    /* nothing ready: read arms the request, the next write fires the fd */
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), -EAGAIN);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(vchan_write(c, "hi", 2), 2);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_ge(vchan_dispatch(s), 1);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    /* after poll(2) said readable, vchan_dispatch_ready() takes the event in one call */
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 2);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), -EAGAIN);
    ck_assert_int_eq(vchan_write(c, "hi", 2), 2);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_eq(vchan_dispatch_ready(s), 1);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    /* readable fd: the wait does not block */
    ck_assert_int_eq(vchan_wait_readable(s, 1, 0), 0);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 2);
    /* a second write without a new request fires nothing */
    ck_assert_int_eq(vchan_write(c, "hi", 2), 2);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);

    /* close is always signalled */
    vchan_free(c);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 2);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 0);
    vchan_free(s);
}
END_TEST

/* vchan_buffer_space_notify(): with room enough nothing is armed (a read fires nothing);
 * short of @min the request is armed, and the reader's next read fires the writer's fd. */
START_TEST(test_space_notify)
{
    struct pollfd pfd;
    uint8_t buf[4096];
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 4096, 4096), 0);
    while (vchan_dispatch(s) > 0 || vchan_dispatch(c) > 0)
        ; /* the connect event */
    size_t ws = vchan_write_ring_size(s);
    pfd = (struct pollfd){.fd = vchan_fd(s), .events = POLLIN};
    ck_assert_int_eq(vchan_buffer_space_notify(s, 1), (ssize_t)ws);
    ck_assert_int_eq(vchan_write(s, buf, 100), 100);
    ck_assert_int_eq(vchan_read(c, buf, 100), 100);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    /* fill the ring: short of room, armed */
    memset(buf, 7, sizeof(buf));
    ck_assert_int_eq(vchan_write(s, buf, ws - 10), (ssize_t)(ws - 10));
    ck_assert_int_eq(vchan_buffer_space_notify(s, 100), 10);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(vchan_read(c, buf, 50), 50);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_ge(vchan_dispatch(s), 1);
    ck_assert_int_eq(vchan_buffer_space(s), 60);
    vchan_free(c);
    vchan_free(s);
}
END_TEST

/* vchan_data_ready_notify(): data ready is reported without arming; an empty ring arms the
 * data event, so the peer's next write (and only then) fires the fd; data_ready() never arms. */
START_TEST(test_data_notify)
{
    struct pollfd pfd;
    uint8_t buf[64] = {0};
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 4096, 4096), 0);
    while (vchan_dispatch(s) > 0 || vchan_dispatch(c) > 0)
        ; /* the connect event */
    pfd = (struct pollfd){.fd = vchan_fd(c), .events = POLLIN};
    /* the bit armed at connect (the protocol's initial state) takes the first write */
    ck_assert_int_eq(vchan_write(s, buf, 1), 1);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_ge(vchan_dispatch(c), 1);
    ck_assert_int_eq(vchan_recv(c, buf, 1), 1);
    /* not armed: a write fires nothing */
    ck_assert_int_eq(vchan_data_ready(c), 0);
    ck_assert_int_eq(vchan_write(s, buf, 10), 10);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    /* data there: reported, nothing armed */
    ck_assert_int_eq(vchan_data_ready_notify(c), 10);
    ck_assert_int_eq(vchan_read(c, buf, 10), 10);
    ck_assert_int_eq(vchan_write(s, buf, 5), 5);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(vchan_recv(c, buf, 5), 5); /* exactly what was there: arms nothing */
    /* empty: armed, the next write fires the fd once */
    ck_assert_int_eq(vchan_data_ready_notify(c), 0);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(vchan_write(s, buf, 7), 7);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_int_ge(vchan_dispatch(c), 1);
    ck_assert_int_eq(vchan_write(s, buf, 7), 7);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(vchan_data_ready_notify(c), 14);
    /* the peer gone: 0, and the close itself fires the fd */
    ck_assert_int_eq(vchan_recv(c, buf, 14), 14);
    vchan_free(s);
    ck_assert_int_eq(vchan_data_ready_notify(c), 0);
    ck_assert_int_eq(vchan_is_open(c), VCHAN_STATE_CLOSED);
    vchan_free(c);
}
END_TEST

/* Edge case 18: spurious events neither corrupt data nor make a wait spin hot. */
START_TEST(test_spurious_events)
{
    struct rusage before, after;
    uint8_t buf[16];
    uint64_t t0, one = 1;
    double cpu_ms;
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    no_spin(s);
    vchan_dispatch(s);
    for (int i = 0; i < 100; i++) /* spurious: nobody wrote */
        ck_assert_int_eq(write(vchan_fd(s), &one, sizeof(one)), (ssize_t)sizeof(one));
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), -EAGAIN);

    getrusage(RUSAGE_SELF, &before);
    t0 = now_ms();
    ck_assert_int_eq(vchan_wait_readable(s, 1, 300), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 290);
    getrusage(RUSAGE_SELF, &after);
    cpu_ms = (double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec) * 1000 +
             (double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1000 +
             (double)(after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1000 +
             (double)(after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1000;
    ck_assert_msg(cpu_ms < 100, "wait burnt %.1f ms of CPU in 300 ms", cpu_ms);

    ck_assert_int_eq(vchan_write(c, "ok", 2), 2);
    ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), 2);
    ck_assert_mem_eq(buf, "ok", 2);
    vchan_free(c);
    vchan_free(s);
}
END_TEST

START_TEST(test_blocking_timeouts_and_counts)
{
    uint8_t buf[64];
    size_t done = 99;
    uint64_t t0;
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    ck_assert_int_eq(vchan_write(c, "abc", 3), 3);
    t0 = now_ms();
    ck_assert_int_eq(vchan_read_full(s, buf, 10, &done, 150), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 140);
    ck_assert_uint_eq(done, 3); /* the partial count is not lost */
    ck_assert_mem_eq(buf, "abc", 3);
    ck_assert_int_eq(vchan_read_full(s, buf, 0, &done, 0), -EINVAL);
    ck_assert_uint_eq(done, 0);

    /* write_full into a full ring times out and reports what went in */
    ck_assert_int_eq(vchan_write_full(s, buf, 64, &done, 0), 0);
    ck_assert_int_eq(vchan_buffer_space(s), 2048 - 64);
    {
        static uint8_t big[4096];

        ck_assert_int_eq(vchan_write_full(s, big, sizeof(big), &done, 100), -ETIMEDOUT);
        ck_assert_uint_eq(done, 2048 - 64);
        ck_assert_int_eq(vchan_wait_writable(s, 1, 50), -ETIMEDOUT);
        ck_assert_int_eq(vchan_flush(s, 50), -ETIMEDOUT);
    }

    /* EOF after the peer closed: all data first, then VCHAN_E_EOF with the count */
    ck_assert_int_eq(vchan_write(c, "xyz", 3), 3);
    vchan_free(c);
    ck_assert_int_eq(vchan_read_full(s, buf, 10, &done, 1000), VCHAN_E_EOF);
    ck_assert_uint_eq(done, 3);
    ck_assert_mem_eq(buf, "xyz", 3);
    ck_assert_int_eq(vchan_write(s, "a", 1), -EPIPE);
    ck_assert_int_eq(vchan_write_full(s, "a", 1, &done, 100), -EPIPE);
    ck_assert_int_eq(vchan_wait_writable(s, 1, 100), -EPIPE);
    ck_assert_int_eq(vchan_flush(s, 100), -EPIPE); /* the client never read it */
    vchan_free(s);
}
END_TEST

typedef struct Closer {
    Vchan *c;
    int delay_ms;
} Closer;

static void *close_later(void *arg)
{
    Closer *cl = arg;

    usleep((useconds_t)cl->delay_ms * 1000);
    vchan_free(cl->c);
    return NULL;
}

/* A reader blocked forever returns when the peer closes (edge case 15, in process). */
START_TEST(test_blocked_reader_sees_close)
{
    uint8_t buf[16];
    size_t done;
    pthread_t th;
    Closer cl;
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    no_spin(s);
    cl = (Closer){c, 100};
    ck_assert_int_eq(pthread_create(&th, NULL, close_later, &cl), 0);
    ck_assert_int_eq(vchan_read_full(s, buf, sizeof(buf), &done, -1), VCHAN_E_EOF);
    ck_assert_uint_eq(done, 0);
    pthread_join(th, NULL);
    vchan_free(s);
}
END_TEST

/* Weakness 2 (qubes-issues#10833): corrupted indices fail fast with EPROTO, never hang. */
START_TEST(test_hostile_index_fails_fast)
{
    uint8_t buf[16];
    size_t done;
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    atomic_store(&s->ring.ctrl->left.prod, 0xFFFFFFF0u); /* the "client" lies */
    /* EPROTO, not a timeout, within a hang guard sized for a busy machine: the lie is
     * detected, not waited out. */
    ck_assert_int_eq(vchan_read_full(s, buf, sizeof(buf), &done, HANG_GUARD_MS), -EPROTO);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_BROKEN);
    ck_assert_int_eq(vchan_data_ready(s), -EPROTO);
    ck_assert_int_eq(vchan_write(s, "x", 1), -EPROTO);
    ck_assert_int_eq(vchan_wait_writable(s, 1, -1), -EPROTO);
    vchan_free(c);
    vchan_free(s);

    /* a live byte of 7 */
    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    atomic_store(&s->ring.ctrl->cli_live, 7);
    ck_assert_int_eq(vchan_read_full(s, buf, sizeof(buf), &done, -1), -EPROTO);
    ck_assert_int_eq(vchan_is_open(s), VCHAN_STATE_BROKEN);
    vchan_free(c);
    vchan_free(s);
}
END_TEST

/* ---- two-thread stress ---- */

typedef struct Peer {
    Vchan *v;
    int rounds;
    size_t msg;
    bool packet;
    int rc;
} Peer;

/* Echo: receive msg bytes, send them back (the "server" of a ping-pong). */
static void *echo_thread(void *arg)
{
    Peer *p = arg;
    uint8_t buf[4096];

    for (int i = 0; i < p->rounds; i++) {
        size_t done;

        p->rc = vchan_read_full(p->v, buf, p->msg, &done, HANG_GUARD_MS);
        if (p->rc)
            return NULL;
        p->rc = vchan_write_full(p->v, buf, p->msg, &done, HANG_GUARD_MS);
        if (p->rc)
            return NULL;
    }
    return NULL;
}

/* Edge case 17: lost wakeups. Every wait has a 5 s timeout: one lost wakeup fails it. */
static void ping_pong(size_t read_min, size_t write_min, size_t msg, int rounds, bool spin,
                      bool client_pings)
{
    Vchan *s, *c, *pinger, *echoer;
    uint8_t out[4096], in[4096];
    VchanStats st;
    pthread_t th;
    Peer p;

    ck_assert_int_eq(vchan_pair_new(&s, &c, read_min, write_min), 0);
    if (!spin) {
        no_spin(s);
        no_spin(c);
    }
    pinger = client_pings ? c : s;
    echoer = client_pings ? s : c;
    p = (Peer){.v = echoer, .rounds = rounds, .msg = msg};
    ck_assert_int_eq(pthread_create(&th, NULL, echo_thread, &p), 0);
    for (int i = 0; i < rounds; i++) {
        size_t done;

        for (size_t j = 0; j < msg; j++)
            out[j] = pat((uint64_t)i * msg + j);
        ck_assert_int_eq(vchan_write_full(pinger, out, msg, &done, HANG_GUARD_MS), 0);
        ck_assert_msg(vchan_read_full(pinger, in, msg, &done, HANG_GUARD_MS) == 0,
                      "round %d: lost wakeup? done %zu", i, done);
        ck_assert_mem_eq(in, out, msg);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(p.rc, 0);
    vchan_get_stats(pinger, &st);
    printf("ping-pong %zu B x %d (spin %s): %llu events sent, %llu spin wins, %llu sleeps\n", msg,
           rounds, spin ? "on" : "off", (unsigned long long)st.events_sent,
           (unsigned long long)st.spin_wins, (unsigned long long)st.sleeps);
    vchan_free(c);
    vchan_free(s);
}

/* The non-blocking core as an event loop uses it: -EAGAIN, poll(fd), dispatch, retry.
 * A read or write that armed its request without re-checking the ring would lose the
 * wakeup for data that arrived in between, and poll would time out. */
static int nb_xfer(Vchan *v, uint8_t *buf, size_t n, bool reading)
{
    size_t done = 0;

    while (done < n) {
        ssize_t k = reading ? vchan_read(v, buf + done, n - done)
                            : vchan_write(v, buf + done, n - done);
        struct pollfd pfd = {.fd = vchan_fd(v), .events = POLLIN};

        if (k > 0) {
            done += (size_t)k;
            continue;
        }
        if (k != -EAGAIN)
            return (int)k;
        if (poll(&pfd, 1, HANG_GUARD_MS) != 1)
            return -ETIMEDOUT;
        vchan_dispatch(v);
    }
    return 0;
}

typedef struct NbPeer {
    Vchan *v;
    int rounds;
    size_t msg;
    int rc;
} NbPeer;

static void *nb_echo(void *arg)
{
    NbPeer *p = arg;
    uint8_t buf[4096];

    for (int i = 0; i < p->rounds && !p->rc; i++) {
        p->rc = nb_xfer(p->v, buf, p->msg, true);
        if (!p->rc)
            p->rc = nb_xfer(p->v, buf, p->msg, false);
    }
    return NULL;
}

static void nb_ping_pong(size_t msg, int rounds)
{
    uint8_t out[4096], in[4096];
    Vchan *s, *c;
    pthread_t th;
    NbPeer p;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    p = (NbPeer){.v = s, .rounds = rounds, .msg = msg};
    ck_assert_int_eq(pthread_create(&th, NULL, nb_echo, &p), 0);
    for (int i = 0; i < rounds; i++) {
        for (size_t j = 0; j < msg; j++)
            out[j] = pat((uint64_t)i * msg + j);
        ck_assert_int_eq(nb_xfer(c, out, msg, false), 0);
        ck_assert_msg(nb_xfer(c, in, msg, true) == 0, "round %d: lost wakeup", i);
        ck_assert_mem_eq(in, out, msg);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(p.rc, 0);
    vchan_free(c);
    vchan_free(s);
}

START_TEST(test_pingpong_nonblocking_poll)
{
    nb_ping_pong(64, 20000);
    nb_ping_pong(3000, 3000);
}
END_TEST

/* A periodic pattern, so that both sides of a stream test copy with memcpy/memcmp and stay
 * as fast as possible: the tighter the race, the likelier a lost wakeup shows. */
#define PERIOD 251u
static uint8_t periodic[PERIOD + 4096];

static void periodic_init(void)
{
    for (size_t i = 0; i < sizeof(periodic); i++)
        periodic[i] = (uint8_t)(i % PERIOD * 89u);
}

typedef struct NbStream {
    Vchan *v;
    uint64_t total;
    int rc;
} NbStream;

static void *nb_stream_writer(void *arg)
{
    NbStream *w = arg;
    uint64_t pos = 0;
    unsigned x = 1;

    while (pos < w->total && !w->rc) {
        size_t n = 1 + (x = x * 1103515245u + 12345u) % 2048;

        if (n > w->total - pos)
            n = (size_t)(w->total - pos);
        w->rc = nb_xfer(w->v, periodic + pos % PERIOD, n, false);
        pos += n;
    }
    return NULL;
}

/* Streaming through a small ring with both sides in the poll model: both hit -EAGAIN
 * constantly while the other is active, so a request armed without a re-check is soon
 * lost with the ring full on one side and empty on the other: a deadlock, caught by the
 * poll timeout. */
static void nb_stream(bool to_server)
{
    const uint64_t total = 32u << 20;
    uint8_t buf[2048];
    uint64_t pos = 0;
    unsigned x = 7;
    pthread_t th;
    NbStream w;
    Vchan *s, *c;

    periodic_init();
    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    w = (NbStream){.v = to_server ? c : s, .total = total};
    ck_assert_int_eq(pthread_create(&th, NULL, nb_stream_writer, &w), 0);
    while (pos < total) {
        size_t n = 1 + (x = x * 1103515245u + 12345u) % sizeof(buf);

        if (n > total - pos)
            n = (size_t)(total - pos);
        ck_assert_msg(nb_xfer(to_server ? s : c, buf, n, true) == 0, "at %llu: lost wakeup",
                      (unsigned long long)pos);
        if (memcmp(buf, periodic + pos % PERIOD, n) != 0)
            ck_abort_msg("corruption near byte %llu", (unsigned long long)pos);
        pos += n;
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, 0);
    vchan_free(c);
    vchan_free(s);
}

START_TEST(test_stream_nonblocking_poll)
{
    nb_stream(true);
    nb_stream(false);
}
END_TEST

typedef struct Hot {
    Vchan *v;
    int rounds;
    size_t burst;
    int rc;
} Hot;

/* Busy-poll a 1-byte token without events (at most the hang guard). */
static int spin_token(Vchan *v)
{
    uint64_t t0 = now_ms();
    uint8_t b;

    while (vchan_data_ready(v) < 1)
        if (now_ms() - t0 > HANG_GUARD_MS)
            return -ETIMEDOUT;
    return vchan_read(v, &b, 1) == 1 ? 0 : -EIO;
}

/* Writes a burst the instant the token arrives: its write lands right while the other
 * side is between finding the ring empty and arming its request. */
static void *hot_writer(void *arg)
{
    Hot *h = arg;
    uint8_t buf[4096] = {0};

    for (int i = 0; i < h->rounds && !h->rc; i++) {
        if (vchan_write(h->v, buf, h->burst) != (ssize_t)h->burst)
            h->rc = -EIO;
        else
            h->rc = spin_token(h->v);
    }
    return NULL;
}

/* Drains the ring the instant it fills: it empties it while the other side is between
 * finding it full and arming its request. */
static void *hot_reader(void *arg)
{
    Hot *h = arg;
    uint8_t buf[4096];

    for (int i = 0; i < h->rounds && !h->rc; i++) {
        uint64_t t0 = now_ms();
        size_t got = 0;

        while (got < h->burst && !h->rc) {
            ssize_t n = vchan_data_ready(h->v) > 0 ? vchan_read(h->v, buf, h->burst - got) : 0;

            if (n > 0)
                got += (size_t)n;
            else if (now_ms() - t0 > HANG_GUARD_MS)
                h->rc = -ETIMEDOUT;
        }
        if (!h->rc && vchan_write(h->v, "t", 1) != 1)
            h->rc = -EIO;
    }
    return NULL;
}

/* Lost wakeups in the non-blocking core itself: a side that armed its request without
 * re-checking the ring would sleep in poll while the hot peer spins: a deadlock. */
START_TEST(test_race_against_hot_peer)
{
    Vchan *s, *c;
    pthread_t th;
    Hot h;
    uint8_t buf[4096] = {0};

    /* poll reader vs hot writer */
    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    h = (Hot){.v = c, .rounds = 100000, .burst = 1};
    ck_assert_int_eq(pthread_create(&th, NULL, hot_writer, &h), 0);
    for (int i = 0; i < h.rounds; i++) {
        ck_assert_msg(nb_xfer(s, buf, 1, true) == 0, "round %d: reader lost a wakeup", i);
        ck_assert_int_eq(vchan_write(s, "t", 1), 1);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(h.rc, 0);
    vchan_free(c);
    vchan_free(s);

    /* poll writer vs hot reader: fill the 2 KiB ring, then one more byte */
    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    h = (Hot){.v = c, .rounds = 50000, .burst = 2049};
    ck_assert_int_eq(pthread_create(&th, NULL, hot_reader, &h), 0);
    for (int i = 0; i < h.rounds; i++) {
        ck_assert_msg(nb_xfer(s, buf, 2049, false) == 0, "round %d: writer lost a wakeup", i);
        ck_assert_msg(nb_xfer(s, buf, 1, true) == 0, "round %d: token", i);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(h.rc, 0);
    vchan_free(c);
    vchan_free(s);
}
END_TEST

START_TEST(test_pingpong_no_spin_client)
{
    ping_pong(0, 0, 64, 20000, false, true);
}
END_TEST

START_TEST(test_pingpong_no_spin_server)
{
    ping_pong(0, 0, 64, 20000, false, false);
}
END_TEST

START_TEST(test_pingpong_spin)
{
    ping_pong(0, 0, 64, 20000, true, true);
    ping_pong(0, 0, 64, 20000, true, false);
}
END_TEST

/* Messages larger than the ring: every round needs several ring-full wakeups. */
START_TEST(test_pingpong_larger_than_ring)
{
    ping_pong(0, 0, 3000, 3000, false, true);
    ping_pong(0, 0, 3000, 3000, true, false);
}
END_TEST

typedef struct Bulk {
    Vchan *v;
    uint64_t total;
    size_t chunk;
    uint64_t sum;
    int rc;
} Bulk;

static uint64_t mix(uint64_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w;

        memcpy(&w, p + i, 8);
        sum = (sum ^ w) * 0x100000001b3ull;
    }
    for (size_t i = n & ~(size_t)7; i < n; i++)
        sum = (sum ^ p[i]) * 0x100000001b3ull;
    return sum;
}

static void *bulk_writer(void *arg)
{
    Bulk *b = arg;
    uint8_t *buf = malloc(b->chunk);
    uint64_t sent = 0, seq = 0;

    while (sent < b->total) {
        size_t n = b->total - sent < b->chunk ? (size_t)(b->total - sent) : b->chunk;
        size_t done;

        for (size_t i = 0; i + 8 <= n; i += 8, seq++)
            memcpy(buf + i, &seq, 8);
        b->sum = mix(b->sum, buf, n);
        b->rc = vchan_write_full(b->v, buf, n, &done, 10000);
        if (b->rc)
            break;
        sent += n;
    }
    free(buf);
    vchan_free(b->v); /* close with data pending: the reader must still get it all */
    return NULL;
}

/* Bulk transfer, then the writer closes at once; the reader gets every byte, then EOF. */
static void bulk(size_t read_min, size_t write_min, uint64_t total, size_t chunk, bool spin)
{
    Vchan *s, *c;
    Bulk w;
    pthread_t th;
    uint8_t *buf = malloc(65536);
    uint64_t got = 0, sum = 0, t0 = now_ms();
    int rc;

    ck_assert_int_eq(vchan_pair_new(&s, &c, read_min, write_min), 0);
    if (!spin) {
        no_spin(s);
        no_spin(c);
    }
    w = (Bulk){.v = c, .total = total, .chunk = chunk};
    ck_assert_int_eq(pthread_create(&th, NULL, bulk_writer, &w), 0);
    for (;;) {
        size_t done;

        rc = vchan_read_full(s, buf, chunk, &done, 10000);
        sum = mix(sum, buf, done);
        got += done;
        if (rc)
            break;
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(rc, VCHAN_E_EOF);
    ck_assert_uint_eq(got, total);
    ck_assert_uint_eq(sum, w.sum);
    printf("bulk %llu MiB, ring %zu, chunk %zu, spin %s: %llu ms\n",
           (unsigned long long)(total >> 20), vchan_read_ring_size(s), chunk, spin ? "on" : "off",
           (unsigned long long)(now_ms() - t0));
    vchan_free(s);
    free(buf);
}

START_TEST(test_bulk_small_rings)
{
    bulk(0, 0, 16u << 20, 4096, false);
    bulk(0, 0, 16u << 20, 4096, true);
}
END_TEST

START_TEST(test_bulk_64k_ring)
{
    bulk(65536, 65536, 256u << 20, 65536, true);
    bulk(65536, 65536, 64u << 20, 4000, false);
}
END_TEST

/* Edge case 25: more than 2 GiB through the stream API (counts never truncated to int). */
START_TEST(test_bulk_over_2gib)
{
    bulk(1 << 20, 1 << 20, (2ull << 30) + (256u << 20) + 12345, 65536, true);
}
END_TEST

/* Busy sides send no events: with the reader spinning in read_full and never sleeping,
 * a streaming writer sends (almost) no notifications. Deterministic version: nobody
 * waits, so nobody is woken. */
START_TEST(test_no_events_while_busy)
{
    uint8_t buf[512];
    VchanStats st0, st1;
    Vchan *s, *c;

    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    ck_assert_int_eq(vchan_write(s, buf, 1), 1); /* consumes the connect-time request */
    ck_assert_int_eq(vchan_read(c, buf, 1), 1);
    ck_assert_int_eq(vchan_write(c, buf, 1), 1);
    ck_assert_int_eq(vchan_read(s, buf, 1), 1);
    vchan_get_stats(s, &st0);
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(vchan_write(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        ck_assert_int_eq(vchan_read(s, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        ck_assert_int_eq(vchan_write(s, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        ck_assert_int_eq(vchan_read(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    }
    vchan_get_stats(s, &st1);
    ck_assert_uint_eq(st1.events_sent, st0.events_sent);
    vchan_get_stats(c, &st1);
    ck_assert_uint_le(st1.events_sent, 2); /* connect event + first-write request */
    vchan_free(c);
    vchan_free(s);
}
END_TEST

START_TEST(test_options)
{
    VchanOptions o;
    Vchan *s, *c;

    vchan_options_init(&o);
    ck_assert_uint_eq(o.spin_ns, VCHAN_SPIN_NS_DEFAULT);
    ck_assert(o.spin_adaptive);
    ck_assert_int_eq(vchan_pair_new(&s, &c, 0, 0), 0);
    o.spin_ns = 2000000000u;
    ck_assert_int_eq(vchan_set_options(s, &o), -EINVAL);
    o.spin_ns = 0;
    ck_assert_int_eq(vchan_set_options(s, &o), 0);
    vchan_free(c);
    vchan_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vchan-pair");
    TCase *tc = tcase_create("api");
    TCase *stress = tcase_create("stress");
    SRunner *sr;
    int failed;

    vt_leak_fixture(tc);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_sizes_and_states);
    tcase_add_test(tc, test_argument_semantics);
    tcase_add_test(tc, test_readv_writev);
    tcase_add_test(tc, test_fd_semantics);
    tcase_add_test(tc, test_space_notify);
    tcase_add_test(tc, test_data_notify);
    tcase_add_test(tc, test_spurious_events);
    tcase_add_test(tc, test_blocking_timeouts_and_counts);
    tcase_add_test(tc, test_blocked_reader_sees_close);
    tcase_add_test(tc, test_hostile_index_fails_fast);
    tcase_add_test(tc, test_no_events_while_busy);
    tcase_add_test(tc, test_options);
    suite_add_tcase(s, tc);

    vt_leak_fixture(stress);
    tcase_set_timeout(stress, 600);
    tcase_add_test(stress, test_pingpong_nonblocking_poll);
    tcase_add_test(stress, test_stream_nonblocking_poll);
    tcase_add_test(stress, test_race_against_hot_peer);
    tcase_add_test(stress, test_pingpong_no_spin_client);
    tcase_add_test(stress, test_pingpong_no_spin_server);
    tcase_add_test(stress, test_pingpong_spin);
    tcase_add_test(stress, test_pingpong_larger_than_ring);
    tcase_add_test(stress, test_bulk_small_rings);
    tcase_add_test(stress, test_bulk_64k_ring);
    tcase_add_test(stress, test_bulk_over_2gib);
    suite_add_tcase(s, stress);

    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
