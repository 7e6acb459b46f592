/* SPDX-License-Identifier: MIT */
/*
 * test-relay.c - per-stream callbacks (rpc_stream_set_ops) and RpcRelay, over both
 * transports. A stream with its own ops gets its events there, with its userdata, and the
 * connection's callbacks see none of them until the ops are removed. A relay joins a call
 * received on one connection ("front": a is the client, b the relay's HANDLER side) to a
 * call it opened on another ("back": a is the relay's CALLER side, b the service): bytes,
 * EOFs, the exit status and refusals cross it; a failure of the service side reaches the
 * client with the owner's abort text, the client going away resets the service side with
 * the cancel reason, and a stalled service throttles the client through the relay.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"
#include "rpctest.h"

static bool both_ready(RtPair *p)
{
    return p->a.ready && p->b.ready;
}

/* ---- rpc_stream_set_ops -------------------------------------------------------------------- */

typedef struct OpsRec {
    size_t nbytes;
    char buf[64];
    bool eof;
    bool reset;
    uint32_t reset_code;
    bool freed;
    void *seen_userdata;
} OpsRec;

static size_t ops_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *ud)
{
    OpsRec *r = ud;
    size_t take = len < sizeof(r->buf) - r->nbytes ? len : sizeof(r->buf) - r->nbytes;

    memcpy(r->buf + r->nbytes, data, take);
    r->nbytes += take;
    r->seen_userdata = ud;
    return len;
}

static void ops_eof(RpcStream *s, RpcChannel ch, void *ud)
{
    ((OpsRec *)ud)->eof = true;
}

static void ops_reset(RpcStream *s, uint32_t code, bool local, const char *reason, void *ud)
{
    ((OpsRec *)ud)->reset = true;
    ((OpsRec *)ud)->reset_code = code;
}

static void ops_free(RpcStream *s, void *ud)
{
    ((OpsRec *)ud)->freed = true;
}

static const RpcStreamOps rec_ops = {
    .on_data = ops_data,
    .on_eof = ops_eof,
    .on_reset = ops_reset,
    .on_stream_free = ops_free,
};

START_TEST(stream_ops)
{
    RtPair p;
    OpsRec rec = {0}, rec2 = {0};

    rt_pair_init(&p, (RtTransport)_i, NULL, NULL);
    ck_assert(rt_pump_until(&p, both_ready, RT_HANG_MS));
    RpcStream *s = rt_open(&p, &p.a, "svc");
    rt_pump(&p);
    RtStreamLog *lb = &p.b.log[0];
    ck_assert_ptr_null(rpc_stream_get_ops(lb->s));
    rpc_stream_set_ops(lb->s, &rec_ops, &rec);
    ck_assert_ptr_eq(rpc_stream_get_ops(lb->s), &rec_ops);
    ck_assert_ptr_eq(rpc_stream_get_userdata(lb->s), &rec);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "hi", 2), 2);
    rt_pump(&p);
    /* The stream's ops got the bytes with its userdata; the connection's callbacks none. */
    ck_assert_uint_eq(rec.nbytes, 2);
    ck_assert_mem_eq(rec.buf, "hi", 2);
    ck_assert_ptr_eq(rec.seen_userdata, &rec);
    ck_assert_uint_eq(lb->nbytes[RPC_CH_STDIN], 0);
    /* Back to the connection's callbacks (with the test's log as userdata again). */
    rpc_stream_set_ops(lb->s, NULL, lb);
    ck_assert_ptr_null(rpc_stream_get_ops(lb->s));
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "yo", 2), 2);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    rt_pump(&p);
    ck_assert_uint_eq(rec.nbytes, 2);
    ck_assert(!rec.eof);
    ck_assert_uint_eq(lb->nbytes[RPC_CH_STDIN], 2);
    ck_assert(lb->eof[RPC_CH_STDIN]);
    ck_assert_int_eq(rpc_stream_exit(lb->s, 0, NULL), 0);
    rt_pump(&p);
    ck_assert(lb->freed);
    ck_assert(!rec.freed);

    /* A reset by the peer and the free that follows reach the ops only. */
    RpcStream *s2 = rt_open(&p, &p.a, "svc");
    rt_pump(&p);
    RtStreamLog *lb2 = &p.b.log[1];
    rpc_stream_set_ops(lb2->s, &rec_ops, &rec2);
    ck_assert_int_eq(rpc_stream_reset(s2, RPC_RESET_CANCEL, "bye"), 0);
    rt_pump(&p);
    ck_assert(rec2.reset);
    ck_assert_uint_eq(rec2.reset_code, RPC_RESET_CANCEL);
    ck_assert(rec2.freed);
    ck_assert(!lb2->reset && !lb2->freed);
    rt_pair_deinit(&p);
}
END_TEST

/* ---- RpcRelay ------------------------------------------------------------------------------ */

typedef struct RelayRec {
    int accepted, first_byte, ends, frees;
    RpcRelayEnd end;
    int32_t code;
    char reason[RPC_REASON_MAX + 1];
} RelayRec;

static void rec_accept(RpcRelay *r, void *ud)
{
    ((RelayRec *)ud)->accepted++;
}

static void rec_first_byte(RpcRelay *r, void *ud)
{
    ((RelayRec *)ud)->first_byte++;
}

static void rec_abort_reason(RpcRelay *r, bool reset, uint32_t code, const char *reason, char *buf,
                             size_t size, void *ud)
{
    snprintf(buf, size, "vrpc: aborted (%s %s)", reset ? rpc_reset_code_name(code) : "freed",
             reason ? reason : "");
}

static void rec_end(RpcRelay *r, RpcRelayEnd end, int32_t code, const char *reason, void *ud)
{
    RelayRec *rec = ud;

    rec->ends++;
    rec->end = end;
    rec->code = code;
    snprintf(rec->reason, sizeof(rec->reason), "%s", reason ? reason : "");
}

static void rec_free(RpcRelay *r, void *ud)
{
    ((RelayRec *)ud)->frees++;
}

static const RpcRelayOps test_relay_ops = {
    .abort_code = 125,
    .cancel_reason = "the caller went away",
    .on_accept = rec_accept,
    .on_first_byte = rec_first_byte,
    .abort_reason = rec_abort_reason,
    .on_end = rec_end,
    .on_free = rec_free,
};

/* The ops rig_up() joins its relay with (test_relay_ops unless a test says otherwise). */
static const RpcRelayOps *g_rig_ops = &test_relay_ops;

typedef struct Rig {
    RtPair front, back;
    RpcStream *src;    /* the client's stream (front.a) */
    RtStreamLog *cli;  /* its log */
    RtStreamLog *sink; /* the service's stream (back.b) */
    RelayRec rec;
} Rig;

static void rig_pump(Rig *g)
{
    for (int i = 0; i < 4; i++) {
        rt_pump(&g->front);
        rt_pump(&g->back);
    }
}

/* Client calls; the relay forwards the call; the service side sees it (accepts it when
 * @accept). @cfg: the connections' config (NULL: defaults). */
static void rig_up(Rig *g, int transport, bool accept, const RpcConnConfig *cfg)
{
    memset(g, 0, sizeof(*g));
    rt_pair_init(&g->front, (RtTransport)transport, NULL, cfg);
    rt_pair_init(&g->back, (RtTransport)transport, NULL, cfg);
    ck_assert(rt_pump_until(&g->front, both_ready, RT_HANG_MS));
    ck_assert(rt_pump_until(&g->back, both_ready, RT_HANG_MS));
    g->front.b.auto_accept = false;
    g->back.b.auto_accept = accept;
    g->src = rt_open(&g->front, &g->front.a, "svc");
    g->cli = rt_log(&g->front.a, g->src);
    rt_pump(&g->front);
    ck_assert_int_eq(g->front.b.calls, 1);
    RpcStream *down = g->front.b.log[0].s, *up = NULL;
    RpcCall call = {.service = "svc"};
    ck_assert_int_eq(rpc_stream_open(g->back.a.conn, &call, &up), 0);
    RpcRelay *r = NULL;
    /* A stream that is not a fresh HANDLER/CALLER pair is refused: the wrong way round, or
     * with userdata of its own (the test's log). */
    ck_assert_int_eq(rpc_relay_new(&r, down, up, g_rig_ops, &g->rec), -EINVAL);
    rpc_stream_set_userdata(down, NULL);
    ck_assert_int_eq(rpc_relay_new(&r, up, down, g_rig_ops, &g->rec), -EINVAL);
    ck_assert_int_eq(rpc_relay_new(&r, down, up, g_rig_ops, &g->rec), 0);
    ck_assert_ptr_eq(rpc_relay_down(r), down);
    ck_assert_ptr_eq(rpc_relay_up(r), up);
    rig_pump(g);
    ck_assert_int_eq(g->back.b.calls, 1);
    g->sink = &g->back.b.log[0];
}

static void rig_down(Rig *g)
{
    rt_pair_deinit(&g->front);
    rt_pair_deinit(&g->back);
}

START_TEST(relay_call)
{
    Rig g;

    rig_up(&g, _i, true, NULL);
    ck_assert(g.cli->accepted);
    ck_assert_int_eq(g.rec.accepted, 1);
    ck_assert_int_eq(rpc_stream_write(g.src, RPC_CH_STDIN, "ping", 4), 4);
    ck_assert_int_eq(rpc_stream_close_write(g.src, RPC_CH_STDIN), 0);
    rig_pump(&g);
    ck_assert_uint_eq(g.sink->nbytes[RPC_CH_STDIN], 4);
    ck_assert_mem_eq(g.sink->buf[RPC_CH_STDIN], "ping", 4);
    ck_assert(g.sink->eof[RPC_CH_STDIN]);
    ck_assert_int_eq(g.rec.first_byte, 0);
    ck_assert_int_eq(rpc_stream_write(g.sink->s, RPC_CH_STDOUT, "pong", 4), 4);
    ck_assert_int_eq(rpc_stream_write(g.sink->s, RPC_CH_STDERR, "err", 3), 3);
    ck_assert_int_eq(rpc_stream_close_write(g.sink->s, RPC_CH_STDOUT), 0);
    ck_assert_int_eq(rpc_stream_exit(g.sink->s, 3, "bye"), 0);
    rig_pump(&g);
    ck_assert_mem_eq(g.cli->buf[RPC_CH_STDOUT], "pong", 4);
    ck_assert_mem_eq(g.cli->buf[RPC_CH_STDERR], "err", 3);
    ck_assert(g.cli->eof[RPC_CH_STDOUT] && g.cli->eof[RPC_CH_STDERR]);
    ck_assert(g.cli->exited && !g.cli->refused);
    ck_assert_int_eq(g.cli->exit_code, 3);
    ck_assert_str_eq(g.cli->exit_reason, "bye");
    ck_assert(g.cli->freed && g.sink->freed);
    ck_assert_int_eq(g.rec.first_byte, 1);
    ck_assert_int_eq(g.rec.ends, 1);
    ck_assert_int_eq(g.rec.end, RPC_RELAY_END_EXIT);
    ck_assert_int_eq(g.rec.code, 3);
    ck_assert_int_eq(g.rec.frees, 1);
    /* The relayed streams' events never reached the connections' callbacks (which would
     * have logged them in a new slot). */
    ck_assert_int_eq(g.front.b.nstreams, 1);
    ck_assert_int_eq(g.back.a.nstreams, 0);
    rig_down(&g);
}
END_TEST

START_TEST(relay_refused)
{
    Rig g;

    rig_up(&g, _i, false, NULL);
    ck_assert(!g.cli->accepted);
    ck_assert_int_eq(rpc_stream_refuse(g.sink->s, 126, "nope"), 0);
    rig_pump(&g);
    ck_assert(g.cli->exited && g.cli->refused && !g.cli->accepted);
    ck_assert_int_eq(g.cli->exit_code, 126);
    ck_assert_str_eq(g.cli->exit_reason, "nope");
    ck_assert_int_eq(g.rec.end, RPC_RELAY_END_REFUSED);
    ck_assert_int_eq(g.rec.code, 126);
    ck_assert_str_eq(g.rec.reason, "nope");
    ck_assert_int_eq(g.rec.accepted, 0);
    /* Both streams are complete: the relay is gone. */
    ck_assert(g.cli->freed);
    ck_assert_int_eq(g.rec.ends, 1);
    ck_assert_int_eq(g.rec.frees, 1);
    rig_down(&g);
}
END_TEST

/* The service side fails: reset by its handler (_i / 2 == 0) or its connection lost. */
START_TEST(relay_up_fails)
{
    Rig g;
    bool conn_lost = _i >= RT__COUNT;

    rig_up(&g, _i % RT__COUNT, true, NULL);
    if (conn_lost)
        g.back.b.conn = rpc_conn_free(g.back.b.conn);
    else
        ck_assert_int_eq(rpc_stream_reset(g.sink->s, RPC_RESET_CANCEL, "boom"), 0);
    for (int i = 0; i < 100 && !g.cli->exited; i++)
        rig_pump(&g);
    ck_assert(g.cli->exited && !g.cli->refused);
    ck_assert_int_eq(g.cli->exit_code, 125);
    ck_assert_int_eq(g.rec.end, RPC_RELAY_END_ABORTED);
    ck_assert_int_eq(g.rec.code, 125);
    ck_assert_str_eq(g.cli->exit_reason, g.rec.reason);
    if (conn_lost)
        ck_assert_ptr_nonnull(strstr(g.rec.reason, rpc_reset_code_name(RPC_RESET_CONN_CLOSED)));
    else
        ck_assert_str_eq(g.rec.reason, "vrpc: aborted ("
                                       "cancel"
                                       " boom)"); /* the reset code's name */
    ck_assert(g.cli->freed);
    ck_assert_int_eq(g.rec.ends, 1);
    ck_assert_int_eq(g.rec.frees, 1);
    rig_down(&g);
}
END_TEST

START_TEST(relay_caller_gone)
{
    Rig g;

    rig_up(&g, _i, true, NULL);
    ck_assert_int_eq(rpc_stream_reset(g.src, RPC_RESET_CANCEL, "bye"), 0);
    rig_pump(&g);
    ck_assert(g.sink->reset);
    ck_assert_uint_eq(g.sink->reset_code, RPC_RESET_CANCEL);
    ck_assert_str_eq(g.sink->reset_reason, "the caller went away");
    ck_assert(g.sink->freed);
    ck_assert_int_eq(g.rec.ends, 1);
    ck_assert_int_eq(g.rec.end, RPC_RELAY_END_CANCELLED);
    ck_assert_int_eq(g.rec.code, -1);
    ck_assert_int_eq(g.rec.frees, 1);
    rig_down(&g);
}
END_TEST

/* A stalled service holds the client to about the windows along the way; once it reads,
 * everything crosses intact. */
/* hold_until_accept and the redirect (the agent's move of a call to a direct channel): the
 * caller's stdin reaches nobody until an up accepts; a refusal with redirect_code hands down
 * over unanswered, and a second relay delivers all of it; the caller sees one call. */
static Rig *g_redirect_rig;
static int g_redirects;
static RelayRec g_rec2;

static const RpcRelayOps hold_ops = {
    .abort_code = 125,
    .cancel_reason = "the caller went away",
    .on_end = rec_end,
    .on_free = rec_free,
    .hold_until_accept = true,
};

static void on_redirect(RpcRelay *r, RpcStream *down, bool down_eof, const char *reason,
                        void *ud)
{
    Rig *g = g_redirect_rig;
    RpcStream *up = NULL;
    RpcRelay *r2 = NULL;
    RpcCall call = {.service = "svc2"};

    g_redirects++;
    ck_assert_str_eq(reason, "go elsewhere");
    ck_assert_ptr_null(rpc_stream_get_ops(down));
    ck_assert_int_eq(rpc_stream_open(g->back.a.conn, &call, &up), 0);
    ck_assert_int_eq(rpc_relay_new(&r2, down, up, &hold_ops, &g_rec2), 0);
    if (down_eof)
        rpc_relay_note_down_eof(r2);
    if (rpc_stream_is_paused(down))
        rpc_stream_resume(down);
}

static const RpcRelayOps redirect_ops = {
    .abort_code = 125,
    .cancel_reason = "the caller went away",
    .on_end = rec_end,
    .on_free = rec_free,
    .hold_until_accept = true,
    .redirect_code = 1024,
    .on_redirect = on_redirect,
};

START_TEST(relay_redirect)
{
    Rig g;
    bool with_data = _i >= RT__COUNT;

    g_rig_ops = &redirect_ops;
    g_redirect_rig = &g;
    g_redirects = 0;
    memset(&g_rec2, 0, sizeof(g_rec2));
    rig_up(&g, _i % RT__COUNT, false, NULL);
    g_rig_ops = &test_relay_ops;
    if (with_data)
        ck_assert_int_eq(rpc_stream_write(g.src, RPC_CH_STDIN, "held", 4), 4);
    ck_assert_int_eq(rpc_stream_close_write(g.src, RPC_CH_STDIN), 0);
    rig_pump(&g);
    /* held: the first target saw neither the bytes nor the EOF */
    ck_assert_uint_eq(g.sink->nbytes[RPC_CH_STDIN], 0);
    ck_assert(!g.sink->eof[RPC_CH_STDIN]);
    ck_assert_int_eq(rpc_stream_refuse(g.sink->s, 1024, "go elsewhere"), 0);
    rig_pump(&g);
    ck_assert_int_eq(g_redirects, 1);
    ck_assert(!g.cli->exited);
    ck_assert_int_eq(g.rec.ends, 0); /* a redirected call has no end of its own */
    ck_assert_int_eq(g.back.b.calls, 2);
    RtStreamLog *sink2 = &g.back.b.log[1];
    ck_assert_uint_eq(sink2->nbytes[RPC_CH_STDIN], 0); /* held again until accepted */
    ck_assert_int_eq(rpc_stream_accept(sink2->s), 0);
    rig_pump(&g);
    ck_assert_uint_eq(sink2->nbytes[RPC_CH_STDIN], with_data ? 4 : 0);
    if (with_data)
        ck_assert_mem_eq(sink2->buf[RPC_CH_STDIN], "held", 4);
    ck_assert(sink2->eof[RPC_CH_STDIN]);
    ck_assert_int_eq(rpc_stream_exit(sink2->s, 0, NULL), 0);
    rig_pump(&g);
    ck_assert(g.cli->accepted && g.cli->exited && !g.cli->refused);
    ck_assert_int_eq(g.cli->exit_code, 0);
    ck_assert_int_eq(g_rec2.ends, 1);
    ck_assert_int_eq(g_rec2.end, RPC_RELAY_END_EXIT);
    ck_assert_int_eq(g.rec.frees, 1);
    ck_assert_int_eq(g_rec2.frees, 1);
    rig_down(&g);
}
END_TEST

START_TEST(relay_backpressure)
{
    Rig g;
    RpcConnConfig small;
    static uint8_t buf[256 << 10];
    size_t sent = 0;

    rpc_conn_config_init(&small);
    small.stream_window = 8192;
    small.conn_window = 16384;
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + (i >> 9));
    rig_up(&g, _i, true, &small);
    g.sink->consume_limit = 0; /* the service does not read yet */
    for (int round = 0; round < 50; round++) {
        ssize_t w = rpc_stream_write(g.src, RPC_CH_STDIN, buf + sent, sizeof(buf) - sent);
        if (w > 0)
            sent += (size_t)w;
        rig_pump(&g);
    }
    ck_assert_uint_eq(g.sink->nbytes[RPC_CH_STDIN], 0);
    ck_assert_uint_le(sent, 8192 + 8192 + 65536);
    ck_assert_int_eq(rpc_stream_send_window(g.src, RPC_CH_STDIN), 0);
    ck_assert(rpc_stream_is_paused(g.front.b.log[0].s)); /* the relay stopped taking */
    g.sink->consume_limit = SIZE_MAX;
    rpc_stream_resume(g.sink->s);
    for (int round = 0; round < 100000 && g.sink->nbytes[RPC_CH_STDIN] < sizeof(buf); round++) {
        ssize_t w = rpc_stream_write(g.src, RPC_CH_STDIN, buf + sent, sizeof(buf) - sent);
        if (w > 0)
            sent += (size_t)w;
        rig_pump(&g);
    }
    ck_assert_uint_eq(g.sink->nbytes[RPC_CH_STDIN], sizeof(buf));
    ck_assert_mem_eq(g.sink->buf[RPC_CH_STDIN], buf, sizeof(buf));
    rig_down(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("librpc-relay");
    TCase *tc = tcase_create("relay");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, stream_ops, 0, RT__COUNT);
    tcase_add_loop_test(tc, relay_call, 0, RT__COUNT);
    tcase_add_loop_test(tc, relay_refused, 0, RT__COUNT);
    tcase_add_loop_test(tc, relay_up_fails, 0, 2 * RT__COUNT);
    tcase_add_loop_test(tc, relay_caller_gone, 0, RT__COUNT);
    tcase_add_loop_test(tc, relay_backpressure, 0, RT__COUNT);
    tcase_add_loop_test(tc, relay_redirect, 0, 2 * RT__COUNT);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
