/* SPDX-License-Identifier: MIT */
/*
 * test-flow.c - librpc flow control over both transports: a slow stream does not stall a
 * fast one, windows never go negative and held bytes never exceed the window, data arrives
 * intact through pauses and resumes, output is interleaved round robin, and a writer blocked
 * on credit is told when it may go on.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rpctest.h"
#include "leak.h"

static void pattern(uint8_t *b, size_t n, size_t off, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((off + i) * 31u + seed);
}

static void check_pattern(const uint8_t *b, size_t n, uint32_t seed)
{
    size_t i = 0;
    while (i < n && b[i] == (uint8_t)(i * 31u + seed))
        i++;
    /* one assertion for the buffer: each ck_assert costs Check a write to its log */
    ck_assert_msg(i == n, "byte %zu corrupted", i);
}

/* Handler writes @n bytes of stdout on @s as far as credit allows; returns bytes written. */
static size_t push(RpcStream *s, size_t *sent, size_t n, uint32_t seed)
{
    uint8_t buf[20000];
    size_t before = *sent;
    while (*sent < n) {
        size_t k = n - *sent < sizeof(buf) ? n - *sent : sizeof(buf);
        pattern(buf, k, *sent, seed);
        ssize_t w = rpc_stream_write(s, RPC_CH_STDOUT, buf, k);
        if (w == -EAGAIN)
            break;
        ck_assert_int_gt(w, 0);
        *sent += (size_t)w;
    }
    return *sent - before;
}

enum { WIN = 8 << 10, SLOW_TOTAL = 16 * WIN };

START_TEST(slow_stream_does_not_block_fast)
{
    RtPair p;
    RpcConnConfig ca;
    rpc_conn_config_init(&ca);
    /* Small windows and volumes: the behaviour is the same as with the defaults, and the
     * test stays fast on a busy machine (it tests backpressure, not throughput). */
    ca.stream_window = WIN;
    ca.conn_window = 16 * WIN;
    rt_pair_up(&p, (RtTransport)_i, &ca, NULL);
    RpcStream *slow = rt_open(&p, &p.a, "slow"), *fast = rt_open(&p, &p.a, "fast");
    RtStreamLog *ls = rt_log(&p.a, slow), *lf = rt_log(&p.a, fast);
    ls->consume_limit = 0; /* the slow consumer takes nothing */
    rt_pump(&p);
    RtStreamLog *hs = rt_log_by_id(&p.b, ls->id), *hf = rt_log_by_id(&p.b, lf->id);
    size_t sent_s = 0, sent_f = 0;
    const size_t fast_total = 64 * WIN;
    for (int round = 0; round < 10000 && sent_f < fast_total; round++) {
        push(hs->s, &sent_s, SLOW_TOTAL, 1);
        push(hf->s, &sent_f, fast_total, 2);
        rt_pump(&p);
        ck_assert_int_ge(rpc_stream_send_window(hs->s, RPC_CH_STDOUT), 0);
        ck_assert_int_ge(rpc_stream_send_window(hf->s, RPC_CH_STDOUT), 0);
        RpcConnStats st;
        rpc_conn_get_stats(p.a.conn, &st);
        ck_assert_uint_le(st.rx_held, WIN);
    }
    rt_pump(&p);
    /* The fast stream moved 64 windows while the slow one sat on one window. */
    ck_assert_uint_eq(sent_f, fast_total);
    ck_assert_uint_eq(lf->nbytes[RPC_CH_STDOUT], fast_total);
    check_pattern(lf->buf[RPC_CH_STDOUT], fast_total, 2);
    ck_assert_uint_eq(sent_s, WIN);
    ck_assert_uint_eq(ls->nbytes[RPC_CH_STDOUT], 0);
    ck_assert(rpc_stream_is_paused(slow));
    ck_assert_int_eq(rpc_stream_send_window(hs->s, RPC_CH_STDOUT), 0);
    /* The slow consumer wakes up: the held window is delivered, credit flows back, the
     * writer is told, and the rest arrives intact. */
    ls->consume_limit = SIZE_MAX;
    ck_assert_int_eq(rpc_stream_resume(slow), 0);
    ck_assert_uint_eq(ls->nbytes[RPC_CH_STDOUT], WIN);
    rt_pump(&p);
    ck_assert_int_ge(hs->writable, 1);
    for (int round = 0; round < 10000 && sent_s < SLOW_TOTAL; round++) {
        push(hs->s, &sent_s, SLOW_TOTAL, 1);
        rt_pump(&p);
    }
    ck_assert_uint_eq(ls->nbytes[RPC_CH_STDOUT], SLOW_TOTAL);
    check_pattern(ls->buf[RPC_CH_STDOUT], SLOW_TOTAL, 1);
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

/* A pair over @t with one call of @service open: returns the handler's log, *@lcp the
 * caller's. */
static RtStreamLog *one_call(RtPair *p, RtTransport t, const char *service, RtStreamLog **lcp)
{
    rt_pair_up(p, t, NULL, NULL);
    *lcp = rt_log(&p->a, rt_open(p, &p->a, service));
    rt_pump(p);
    return rt_log_by_id(&p->b, (*lcp)->id);
}

/* Write a pattern of @w bytes on @s's stdout (@seed, from offset @total); the window said
 * that many fit, so all are taken. Returns the new total. */
static size_t write_window(RpcStream *s, uint8_t *buf, ssize_t w, size_t total, uint32_t seed)
{
    pattern(buf, (size_t)w, total, seed);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDOUT, buf, (size_t)w), w);
    return total + (size_t)w;
}

/* Pump @p until the caller's log @lc has @total stdout bytes, and check it has. */
static void expect_stdout(RtPair *p, RtStreamLog *lc, size_t total)
{
    for (int i = 0; i < 10000 && lc->nbytes[RPC_CH_STDOUT] < total; i++)
        rt_pump(p);
    ck_assert_uint_eq(lc->nbytes[RPC_CH_STDOUT], total);
}

/* rpc_stream_send_window() is a promise: a write of that many bytes is taken whole, even
 * when the transport fills part way and the rest has to wait in the stream's queue (the
 * handler reads a pipe up to the window and treats less as a failing stream). */
START_TEST(send_window_is_taken_whole)
{
    RtPair p;
    RtStreamLog *lc, *hs = one_call(&p, (RtTransport)_i, "whole", &lc);
    size_t total = 0;
    for (int round = 0; round < 4; round++) {
        ssize_t w = rpc_stream_send_window(hs->s, RPC_CH_STDOUT);
        ck_assert_int_gt(w, 0);
        uint8_t *buf = malloc((size_t)w);
        ck_assert_ptr_nonnull(buf);
        /* nothing pumped in between: the transport fills before the window is used up */
        total = write_window(hs->s, buf, w, total, 3);
        free(buf);
        expect_stdout(&p, lc, total);
    }
    check_pattern(lc->buf[RPC_CH_STDOUT], total, 3);
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

/* Over a vchan the window of an idle connection is the ring's room, as seen at the last
 * dispatch: room the reader frees in between does not open it (handler.c and libvrpc probe
 * a window of 0 with a 1-byte write that must come back -EAGAIN), the next dispatch does,
 * with on_writable; and the bytes arrive whole and in order. */
START_TEST(vchan_window_is_ring_room)
{
    RtPair p;
    RtStreamLog *lc, *hs = one_call(&p, RT_VCHAN, "room", &lc);
    static uint8_t buf[1 << 20];
    size_t total = 0;
    ssize_t w;
    /* fill the ring: the window closes on the ring, not on credit (1 MiB) */
    while ((w = rpc_stream_send_window(hs->s, RPC_CH_STDOUT)) > 0) {
        total = write_window(hs->s, buf, w, total, 5);
        ck_assert_uint_lt(total, 1u << 20);
    }
    ck_assert_int_eq(w, 0);
    ck_assert_int_eq(rpc_stream_write(hs->s, RPC_CH_STDOUT, buf, 1), -EAGAIN);
    int writable = hs->writable;
    /* the reader drains the ring; the writer has not dispatched */
    for (int i = 0; i < 10000 && lc->nbytes[RPC_CH_STDOUT] < total; i++)
        rpc_conn_dispatch(p.a.conn);
    ck_assert_uint_eq(lc->nbytes[RPC_CH_STDOUT], total);
    ck_assert_int_eq(rpc_stream_send_window(hs->s, RPC_CH_STDOUT), 0);
    ck_assert_int_eq(rpc_stream_write(hs->s, RPC_CH_STDOUT, buf, 1), -EAGAIN);
    rpc_conn_dispatch(p.b.conn);
    ck_assert_int_gt(hs->writable, writable);
    w = rpc_stream_send_window(hs->s, RPC_CH_STDOUT);
    ck_assert_int_gt(w, 0);
    total = write_window(hs->s, buf, w, total, 5);
    expect_stdout(&p, lc, total);
    check_pattern(lc->buf[RPC_CH_STDOUT], total, 5);
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

/* Consumers that take odd amounts: windows stay within bounds and bytes stay in order. */
START_TEST(partial_consumption_integrity)
{
    RtPair p;
    RpcConnConfig ca;
    rpc_conn_config_init(&ca);
    ca.stream_window = 4096;
    ca.conn_window = 16384;
    rt_pair_up(&p, (RtTransport)_i, &ca, NULL);
    enum { NS = 4 };
    RpcStream *s[NS];
    RtStreamLog *la[NS], *lb[NS];
    size_t sent[NS] = {0};
    const size_t total = 65536 + 123;
    for (int i = 0; i < NS; i++) {
        s[i] = rt_open(&p, &p.a, "svc");
        la[i] = rt_log(&p.a, s[i]);
        la[i]->consume_limit = (size_t)(7 + 1000 * i);
    }
    rt_pump(&p);
    for (int i = 0; i < NS; i++)
        lb[i] = rt_log_by_id(&p.b, la[i]->id);
    for (int round = 0; round < 200000; round++) {
        bool all = true;
        for (int i = 0; i < NS; i++) {
            push(lb[i]->s, &sent[i], total, (uint32_t)i);
            ssize_t w = rpc_stream_send_window(lb[i]->s, RPC_CH_STDOUT);
            ck_assert_int_ge(w, 0);
            ck_assert_int_le(w, 4096);
            if (la[i]->nbytes[RPC_CH_STDOUT] < total)
                all = false;
        }
        rt_pump(&p);
        RpcConnStats st;
        rpc_conn_get_stats(p.a.conn, &st);
        ck_assert_uint_le(st.rx_held, 16384);
        for (int i = 0; i < NS; i++)
            if (rpc_stream_is_paused(s[i]))
                rpc_stream_resume(s[i]);
        if (all)
            break;
    }
    for (int i = 0; i < NS; i++) {
        ck_assert_uint_eq(la[i]->nbytes[RPC_CH_STDOUT], total);
        check_pattern(la[i]->buf[RPC_CH_STDOUT], total, (uint32_t)i);
    }
    rt_pair_deinit(&p);
}
END_TEST

/* EOF and EXIT wait behind held data, in order. */
START_TEST(exit_after_held_data)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    RtStreamLog *la = rt_log(&p.a, s);
    la->consume_limit = 0;
    rt_pump(&p);
    RtStreamLog *lb = &p.b.log[0];
    ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDOUT, "abcdef", 6), 6);
    ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDERR, "E", 1), 1);
    ck_assert_int_eq(rpc_stream_exit(lb->s, 9, "done"), 0);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    rt_pump(&p);
    ck_assert(!la->exited && !la->eof[RPC_CH_STDOUT]);
    ck_assert(lb->freed);
    la->consume_limit = 2;
    ck_assert_int_eq(rpc_stream_resume(s), 0);
    ck_assert_uint_eq(la->nbytes[RPC_CH_STDOUT], 2);
    ck_assert(!la->exited);
    la->consume_limit = SIZE_MAX;
    ck_assert_int_eq(rpc_stream_resume(s), 0);
    ck_assert_mem_eq(la->buf[RPC_CH_STDOUT], "abcdef", 6);
    ck_assert_mem_eq(la->buf[RPC_CH_STDERR], "E", 1);
    ck_assert(la->eof[RPC_CH_STDOUT] && la->eof[RPC_CH_STDERR]);
    ck_assert(la->exited && la->exit_code == 9 && la->freed);
    rt_pair_deinit(&p);
}
END_TEST

/* Output leaves round robin: no stream waits for another's whole backlog. */
START_TEST(round_robin)
{
    RtPair p;
    RpcConnConfig cfg;
    rpc_conn_config_init(&cfg);
    cfg.stream_window = 1 << 20;
    cfg.conn_window = 16 << 20;
    cfg.max_frame = RPC_FRAME_MAX_MIN; /* many frames per stream from little data */
    rt_pair_up(&p, (RtTransport)_i, &cfg, &cfg);
    if (_i != RT_VCHAN) {
        /* A socket buffer the size of a small ring, so that the transport is busy after a
         * few frames as a vchan is, and the test needs little data. */
        int small = 16 << 10;
        ck_assert_int_eq(
            setsockopt(rpc_conn_fd(p.a.conn), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        ck_assert_int_eq(
            setsockopt(rpc_conn_fd(p.b.conn), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    }
    enum { NS = 4 };
    const size_t each = 256 << 10;
    RpcStream *s[NS];
    RtStreamLog *lb[NS];
    static uint8_t buf[256 << 10];
    for (int i = 0; i < NS; i++)
        s[i] = rt_open(&p, &p.a, "svc");
    rt_pump(&p);
    for (int i = 0; i < NS; i++)
        lb[i] = rt_log_by_id(&p.b, rpc_stream_id(s[i]));
    /* Every stream writes as fast as it is allowed (one queued frame each while the
     * transport is busy); when half of the total has arrived, every stream has a share. */
    size_t sent[NS] = {0};
    bool checked = false;
    for (int round = 0; round < 200000; round++) {
        for (int i = 0; i < NS; i++) {
            if (sent[i] == each)
                continue;
            pattern(buf, each - sent[i], sent[i], (uint32_t)i);
            ssize_t w = rpc_stream_write(s[i], RPC_CH_STDIN, buf, each - sent[i]);
            if (w > 0)
                sent[i] += (size_t)w;
            else
                ck_assert_int_eq(w, -EAGAIN);
        }
        rpc_conn_dispatch(p.b.conn);
        rpc_conn_dispatch(p.a.conn);
        size_t tot = 0, min = SIZE_MAX;
        for (int i = 0; i < NS; i++) {
            tot += lb[i]->nbytes[RPC_CH_STDIN];
            if (lb[i]->nbytes[RPC_CH_STDIN] < min)
                min = lb[i]->nbytes[RPC_CH_STDIN];
        }
        if (!checked && tot >= NS * each / 2) {
            ck_assert_msg(min >= each / 8, "a stream got only %zu of %zu bytes", min, tot);
            checked = true;
        }
        if (tot == NS * each)
            break;
    }
    ck_assert(checked);
    for (int i = 0; i < NS; i++) {
        ck_assert_uint_eq(lb[i]->nbytes[RPC_CH_STDIN], each);
        check_pattern(lb[i]->buf[RPC_CH_STDIN], each, (uint32_t)i);
    }
    rt_pair_deinit(&p);
}
END_TEST

/* Relay: stream X's input is forwarded to stream Y on another connection; when Y has no
 * credit, X pauses and the original sender is throttled, end to end. */
typedef struct Relay {
    RpcStream *in, *out;
    size_t forwarded;
} Relay;

static Relay relay;

static size_t relay_data(RtSide *side, RpcStream *s, const uint8_t *data, size_t len)
{
    ssize_t w = rpc_stream_write(relay.out, RPC_CH_STDIN, data, len);
    if (w < 0)
        return 0;
    relay.forwarded += (size_t)w;
    return (size_t)w;
}

static void relay_writable(RtSide *side, RpcStream *s)
{
    if (s == relay.out)
        rpc_stream_resume(relay.in);
}

START_TEST(relay_backpressure)
{
    RtPair up, down;
    RpcConnConfig small;
    rpc_conn_config_init(&small);
    small.stream_window = 8192;
    small.conn_window = 16384;
    rt_pair_init(&up, (RtTransport)_i, NULL, &small);
    rt_pair_init(&down, (RtTransport)_i, NULL, &small);
    ck_assert(rt_pump_until(&up, rt_both_ready, RT_HANG_MS));
    ck_assert(rt_pump_until(&down, rt_both_ready, RT_HANG_MS));
    memset(&relay, 0, sizeof(relay));
    RpcStream *src = rt_open(&up, &up.a, "svc");
    relay.out = rt_open(&down, &down.a, "svc");
    down.b.default_consume = 0; /* the far end does not read yet */
    up.b.data_hook = relay_data;
    down.a.writable_hook = relay_writable;
    rt_pump(&up);
    rt_pump(&down);
    relay.in = up.b.log[0].s;
    RtStreamLog *sink = &down.b.log[0];
    static uint8_t buf[256 << 10];
    pattern(buf, sizeof(buf), 0, 7);
    size_t sent = 0;
    for (int round = 0; round < 50; round++) {
        ssize_t w = rpc_stream_write(src, RPC_CH_STDIN, buf + sent, sizeof(buf) - sent);
        if (w > 0)
            sent += (size_t)w;
        rt_pump(&up);
        rt_pump(&down);
    }
    /* Stalled sink: the source is held to about the windows along the way. */
    ck_assert_uint_eq(sink->nbytes[RPC_CH_STDIN], 0);
    ck_assert_uint_le(sent, 8192 + 8192 + 65536);
    ck_assert_int_eq(rpc_stream_send_window(src, RPC_CH_STDIN), 0);
    ck_assert(rpc_stream_is_paused(relay.in));
    /* The sink starts reading: everything flows through, intact. */
    sink->consume_limit = SIZE_MAX;
    rpc_stream_resume(sink->s);
    for (int round = 0; round < 100000 && sink->nbytes[RPC_CH_STDIN] < sizeof(buf); round++) {
        ssize_t w = rpc_stream_write(src, RPC_CH_STDIN, buf + sent, sizeof(buf) - sent);
        if (w > 0)
            sent += (size_t)w;
        rt_pump(&up);
        rt_pump(&down);
    }
    ck_assert_uint_eq(sink->nbytes[RPC_CH_STDIN], sizeof(buf));
    check_pattern(sink->buf[RPC_CH_STDIN], sizeof(buf), 7);
    ck_assert_uint_eq(relay.forwarded, sizeof(buf));
    rt_pair_deinit(&up);
    rt_pair_deinit(&down);
}
END_TEST

START_TEST(window_update_batching)
{
    RtPair p;
    RpcConnConfig ca;
    rpc_conn_config_init(&ca);
    ca.stream_window = 65536;
    rt_pair_up(&p, (RtTransport)_i, &ca, NULL);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    rt_pump(&p);
    RtStreamLog *lb = &p.b.log[0];
    static uint8_t buf[1 << 20];
    size_t sent = 0;
    while (sent < sizeof(buf)) {
        ssize_t w = rpc_stream_write(lb->s, RPC_CH_STDOUT, buf + sent, sizeof(buf) - sent);
        if (w > 0)
            sent += (size_t)w;
        rt_pump(&p);
    }
    RpcConnStats st;
    rpc_conn_get_stats(p.a.conn, &st);
    ck_assert_uint_eq(rt_log(&p.a, s)->nbytes[RPC_CH_STDOUT], sizeof(buf));
    /* One update per quarter window at most, not one per frame. */
    ck_assert_uint_le(st.frames_out, 2 + 2 * (sizeof(buf) / (65536 / 4)));
    rt_pair_deinit(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("librpc-flow");
    TCase *tc = tcase_create("flow");
    vt_leak_fixture(tc);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, slow_stream_does_not_block_fast, 0, RT__COUNT);
    tcase_add_loop_test(tc, partial_consumption_integrity, 0, RT__COUNT);
    tcase_add_loop_test(tc, exit_after_held_data, 0, RT__COUNT);
    tcase_add_loop_test(tc, round_robin, 0, RT__COUNT);
    tcase_add_loop_test(tc, relay_backpressure, 0, RT__COUNT);
    tcase_add_loop_test(tc, window_update_batching, 0, RT__COUNT);
    tcase_add_loop_test(tc, send_window_is_taken_whole, 0, RT__COUNT);
    tcase_add_test(tc, vchan_window_is_ring_room);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
