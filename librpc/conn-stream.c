/* SPDX-License-Identifier: MIT */
/*
 * conn-stream.c - the streams of a vrpc connection: the id table, each stream's lifetime
 * (open, finish with its deferred on_stream_free, the orphan that drains its queued frames,
 * the memory freed last) and the stream API of rpc.h other than the write path. What each
 * frame and action means for the protocol is decided by stream-sm.c; this file keeps the
 * bookkeeping around it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn-internal.h"

static const char *const stream_life_names[STREAM__COUNT] = {
    [STREAM_PREOPEN] = "preopen",
    [STREAM_OPEN] = "open",
    [STREAM_FINISHING] = "finishing",
    [STREAM_ORPHAN] = "orphan",
};

const char *stream_life_name(StreamLife life)
{
    return (unsigned)life < STREAM__COUNT ? stream_life_names[life] : "invalid";
}

const char *rpc_reset_code_name(uint32_t code)
{
    switch (code) {
    case RPC_RESET_CANCEL:
        return "cancel";
    case RPC_RESET_PROTOCOL:
        return "protocol";
    case RPC_RESET_REFUSED_STREAM:
        return "refused-stream";
    case RPC_RESET_FLOW:
        return "flow-control";
    case RPC_RESET_INTERNAL:
        return "internal";
    case RPC_RESET_CONN_CLOSED:
        return "connection-closed";
    default:
        return "unknown";
    }
}

const char *rpc_channel_name(RpcChannel ch)
{
    switch (ch) {
    case RPC_CH_STDIN:
        return "stdin";
    case RPC_CH_STDOUT:
        return "stdout";
    case RPC_CH_STDERR:
        return "stderr";
    default:
        return "invalid";
    }
}

/* ---- stream table ----------------------------------------------------------------------- */

static int stream_table_add(RpcConn *c, RpcStream *s)
{
    if (c->nstreams + 1 > c->nbuckets) {
        size_t n = c->nbuckets * 2;
        RpcStream **nb = calloc(n, sizeof(*nb));
        if (!nb)
            return -ENOMEM;
        RpcStream **old = c->buckets;
        size_t oldn = c->nbuckets;
        c->buckets = nb;
        c->nbuckets = n;
        for (size_t i = 0; i < oldn; i++) {
            for (RpcStream *t = old[i], *next; t; t = next) {
                next = t->hnext;
                size_t b = bucket_of(c, t->id);
                t->hnext = nb[b];
                nb[b] = t;
            }
        }
        free(old);
    }
    size_t b = bucket_of(c, s->id);
    s->hnext = c->buckets[b];
    c->buckets[b] = s;
    c->nstreams++;
    return 0;
}

static void stream_table_del(RpcConn *c, RpcStream *s)
{
    for (RpcStream **pp = &c->buckets[bucket_of(c, s->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            s->hnext = NULL;
            c->nstreams--;
            return;
        }
    }
}

/* ---- stream lifetime -------------------------------------------------------------------- */

void stream_free_mem(RpcConn *c, RpcStream *s)
{
    stream_accept_drop(c, s);
    txq_drop(c, s);
    rx_hold_drop(c, s);
    LIST_DEL(&c->all_head, s, all);
    free(s);
}

/* The stream is over for the application: on_stream_free, out of the table. Its queued
 * frames (data then EXIT, say) still drain unless it was reset; the memory goes when they
 * have. Outside callback context the work is deferred to the next dispatch. */
void stream_finish(RpcConn *c, RpcStream *s)
{
    if (s->life == STREAM_ORPHAN)
        return;
    if (c->busy == 0) {
        s->life = STREAM_FINISHING;
        LIST_ADD(&c->work_head, s, work);
        return;
    }
    /* An orphan from here on: not usable by the application, even from on_stream_free. */
    s->life = STREAM_ORPHAN;
    LIST_DEL(&c->work_head, s, work);
    LIST_DEL(&c->blocked_head, s, blocked);
    stream_table_del(c, s);
    if (s->sm.caller)
        c->local_live--;
    else
        c->peer_live--;
    c->stats.streams_open--;
    rx_hold_drop(c, s);
    stream_accept_drop(c, s); /* ended without output or EXIT: reset, or the connection */
    if (s->sm.reset_sent || c->state == CONN_CLOSED)
        txq_drop(c, s);
    if (STREAM_FREE_CB(c, s))
        STREAM_FREE_CB(c, s)(s, STREAM_UD(c, s));
    c->reap = true;
}

/* Free the memory of finished streams whose queues drained; only outside callbacks, so
 * that no stack frame still holds them. */
void stream_reap_orphans(RpcConn *c)
{
    if (!c->reap || c->busy > 0)
        return;
    c->reap = false;
    for (RpcStream *s = c->all_head, *next; s; s = next) {
        next = s->all.next;
        if (s->life == STREAM_ORPHAN && !s->txq_head)
            stream_free_mem(c, s);
    }
}

RpcStream *stream_new(RpcConn *c, uint32_t id, bool caller)
{
    RpcStream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->conn = c;
    s->id = id;
    s->life = STREAM_OPEN; /* rpc_stream_open makes it PREOPEN before the peer's HELLO */
    rpc_stream_sm_init(&s->sm, caller);
    s->recv_remaining = c->cfg.stream_window;
    s->send_credit = c->state == CONN_READY ? c->peer.stream_window : 0;
    if (stream_table_add(c, s) < 0) {
        free(s);
        return NULL;
    }
    LIST_ADD(&c->all_head, s, all);
    if (caller)
        c->local_live++;
    else
        c->peer_live++;
    c->stats.streams_open++;
    c->stats.streams_total++;
    return s;
}

/* Reset @s ourselves because of the peer (window overrun) or a local failure: tell the
 * application (local), send RESET, wait for the acknowledgement. */
void stream_reset_local(RpcConn *c, RpcStream *s, uint32_t code, const char *reason)
{
    if (s->sm.reset_sent || s->sm.done)
        return;
    rpc_log(LOG_WARNING, "%s: stream %u reset (%s, stream %s): %s", c->name, s->id,
            rpc_reset_code_name(code), stream_life_name(s->life), reason);
    rpc_stream_sm_tx(&s->sm, RPC_SM_RESET, RPC_CH_STDIN);
    txq_drop(c, s);
    rx_hold_drop(c, s);
    if (tx_queue_reason(c, RPC_FT_RESET, 0, s->id, code, reason) < 0) {
        conn_fail(c, -ENOMEM, "out of memory queueing RESET");
        return;
    }
    c->stats.resets_out++;
    if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && STREAM_CB(c, s, on_reset)) {
        s->no_reset_cb = true;
        STREAM_CB(c, s, on_reset)(s, code, true, reason, STREAM_UD(c, s));
    }
    s->no_reset_cb = true;
}

/* ---- stream API --------------------------------------------------------------------------- */

int rpc_stream_open(RpcConn *c, const RpcCall *call, RpcStream **sp)
{
    uint8_t buf[RPC_CALL_MAX];
    RpcCallMsg m = {0};

    if (!call || rpc_msg_encode_call(call, buf, sizeof(buf)) < 0)
        return -EINVAL;
    if (c->state == CONN_CLOSED || c->pending_err)
        return -ENOTCONN;
    if (c->state == CONN_READY && c->local_live >= c->peer.max_streams)
        return -EBUSY;
    if (c->next_local_id > UINT32_MAX)
        return -ERANGE;
    /* Lengths were checked by the encoder. */
    snprintf(m.service, sizeof(m.service), "%s", call->service);
    snprintf(m.argument, sizeof(m.argument), "%s", call->argument ? call->argument : "");
    snprintf(m.target, sizeof(m.target), "%s", call->target ? call->target : "");
    snprintf(m.source, sizeof(m.source), "%s", call->source ? call->source : "");
    snprintf(m.user, sizeof(m.user), "%s", call->user ? call->user : "");
    m.call_id = call->call_id;
    m.flags = call->flags;
    RpcStream *s = stream_new(c, (uint32_t)c->next_local_id, true);
    if (!s)
        return -ENOMEM;
    c->next_local_id += 2;
    s->callmsg = m;
    rpc_call_from_msg(&s->call, &s->callmsg);
    if (c->state == CONN_READY) {
        if (tx_queue_call(c, s) < 0) {
            stream_table_del(c, s);
            LIST_DEL(&c->all_head, s, all);
            c->local_live--;
            c->stats.streams_open--;
            free(s);
            return -ENOMEM;
        }
    } else {
        s->life = STREAM_PREOPEN;
    }
    conn_api_done(c);
    *sp = s;
    return 0;
}

int stream_accept_release(RpcConn *c, RpcStream *s)
{
    if (!s->accept_held)
        return 0;
    if (tx_queue_frame(c, RPC_FT_ACCEPT, 0, s->id, NULL, 0) < 0)
        return -ENOMEM;
    stream_accept_drop(c, s);
    return 0;
}

void stream_accept_drop(RpcConn *c, RpcStream *s)
{
    if (!s->accept_held)
        return;
    s->accept_held = false;
    c->accepts_held--;
}

void conn_release_accepts(RpcConn *c, bool all)
{
    int64_t now = now_ms(), next = INT64_MAX;

    for (RpcStream *s = c->all_head; s && c->accepts_held; s = s->all.next) {
        if (!s->accept_held)
            continue;
        if ((all || s->accept_deadline_ms <= now) && stream_accept_release(c, s) == 0)
            continue;
        if (s->accept_deadline_ms < next)
            next = s->accept_deadline_ms;
    }
    c->accept_deadline_ms = next;
    if (c->out_len)
        conn_want_flush(c);
}

int rpc_stream_accept(RpcStream *s)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    int r = rpc_stream_sm_tx(&s->sm, RPC_SM_ACCEPT, RPC_CH_STDOUT);
    if (r < 0)
        return r;
    if (c->cfg.accept_hold_ms && c->flush_src) {
        /* Held: it leaves with the stream's next frame, or at the deadline. */
        s->accept_held = true;
        s->accept_deadline_ms = now_ms() + c->cfg.accept_hold_ms;
        if (c->accepts_held++ == 0 || s->accept_deadline_ms < c->accept_deadline_ms)
            c->accept_deadline_ms = s->accept_deadline_ms;
        conn_sync_loop(c);
        return 0;
    }
    if (tx_queue_frame(c, RPC_FT_ACCEPT, 0, s->id, NULL, 0) < 0) {
        s->sm.answer = RPC_ANSWER_NONE;
        return -ENOMEM;
    }
    conn_api_done(c);
    return 0;
}

int rpc_stream_refuse(RpcStream *s, int32_t exit_code, const char *reason)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    RpcStreamSm save = s->sm;
    int r = rpc_stream_sm_tx(&s->sm, RPC_SM_REFUSE, RPC_CH_STDOUT);
    if (r < 0)
        return r;
    if (tx_queue_reason(c, RPC_FT_REFUSE, 0, s->id, exit_code, reason) < 0) {
        s->sm = save;
        return -ENOMEM;
    }
    s->no_reset_cb = true;
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->sm.done)
        stream_finish(c, s);
    conn_api_done(c);
    return 0;
}

int rpc_stream_close_write(RpcStream *s, RpcChannel ch)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    int r = rpc_stream_sm_tx(&s->sm, RPC_SM_EOF, ch);
    if (r == -EALREADY)
        return 0;
    if (r < 0)
        return r;
    if (stream_accept_release(c, s) < 0)
        return -ENOMEM;
    if (s->txq_head || s->life == STREAM_PREOPEN)
        r = tx_append_chunk(c, s, CHUNK_EOF, ch, NULL, 0);
    else
        r = tx_queue_frame(c, (uint8_t)rpc_frame_data_type(ch), RPC_FLAG_EOF, s->id, NULL, 0);
    if (r < 0)
        return r;
    conn_api_done(c);
    return 0;
}

int rpc_stream_exit(RpcStream *s, int32_t exit_code, const char *reason)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    RpcStreamSm save = s->sm;
    int r = rpc_stream_sm_tx(&s->sm, RPC_SM_EXIT, RPC_CH_STDOUT);
    if (r < 0)
        return r;
    if (stream_accept_release(c, s) < 0) {
        s->sm = save;
        return -ENOMEM;
    }
    if (s->txq_head) {
        uint8_t frame[RPC_FRAME_HEADER_SIZE + RPC_REASON_MSG_MAX];
        int n = rpc_msg_encode_reason(RPC_FT_EXIT, exit_code, reason, frame + RPC_FRAME_HEADER_SIZE,
                                      RPC_REASON_MSG_MAX);
        RpcFrameHeader h = {.type = RPC_FT_EXIT, .stream = s->id, .length = (uint32_t)n};
        rpc_frame_header_encode(frame, &h);
        r = n < 0 ? n
                  : tx_append_chunk(c, s, CHUNK_FRAME, RPC_CH_STDOUT, frame,
                                    RPC_FRAME_HEADER_SIZE + (size_t)n);
    } else {
        r = tx_queue_reason(c, RPC_FT_EXIT, 0, s->id, exit_code, reason);
    }
    if (r < 0) {
        s->sm = save;
        return r;
    }
    s->no_reset_cb = true;
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->sm.done)
        stream_finish(c, s);
    conn_api_done(c);
    return 0;
}

int rpc_stream_reset(RpcStream *s, uint32_t code, const char *reason)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    s->no_reset_cb = true;
    /* A handler that has already sent its exit has nothing to abort: the caller frees the
     * stream on that exit, and we free ours on its stdin EOF. */
    if (!s->sm.caller && s->sm.exit_done)
        return 0;
    int r = rpc_stream_sm_tx(&s->sm, RPC_SM_RESET, RPC_CH_STDIN);
    if (r < 0)
        return r;
    txq_drop(c, s);
    stream_accept_drop(c, s); /* a RESET needs no answer before it */
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->life == STREAM_PREOPEN) {
        /* The peer never heard of it. */
        s->sm.done = true;
        stream_finish(c, s);
        conn_api_done(c);
        return 0;
    }
    s->paused = false;
    if (c->busy > 0)
        rx_hold_drop(c, s);
    else {
        /* Credit for held bytes goes back now; no callbacks run from here. */
        c->busy++;
        rx_hold_drop(c, s);
        c->busy--;
    }
    if (tx_queue_reason(c, RPC_FT_RESET, 0, s->id, code, reason) < 0)
        return -ENOMEM;
    c->stats.resets_out++;
    conn_api_done(c);
    return 0;
}

int rpc_stream_resume(RpcStream *s)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    if (!s->paused && !s->hold_head)
        return 0;
    s->paused = false;
    if (c->busy > 0) {
        s->resume_pending = true;
        LIST_ADD(&c->work_head, s, work);
        return 0;
    }
    bool gone;
    c->busy++;
    rx_hold_run(c, s);
    conn_run_work(c);
    int r = tx_flush(c);
    if (r < 0)
        conn_fail(c, r, "transport write failed: %s", strerror(-r));
    conn_notify_writable(c);
    gone = conn_unbusy(c);
    if (!gone)
        conn_sync_loop(c);
    return 0;
}

bool rpc_stream_is_paused(const RpcStream *s)
{
    return s->paused;
}

uint32_t rpc_stream_id(const RpcStream *s)
{
    return s->id;
}

RpcConn *rpc_stream_conn(const RpcStream *s)
{
    return s->conn;
}

bool rpc_stream_is_caller(const RpcStream *s)
{
    return s->sm.caller;
}

const RpcCall *rpc_stream_call(const RpcStream *s)
{
    return &s->call;
}

void rpc_stream_set_userdata(RpcStream *s, void *userdata)
{
    s->userdata = userdata;
}

void rpc_stream_set_ops(RpcStream *s, const RpcStreamOps *ops, void *userdata)
{
    s->ops = ops;
    s->userdata = userdata;
}

const RpcStreamOps *rpc_stream_get_ops(const RpcStream *s)
{
    return s->ops;
}

void *rpc_stream_get_userdata(const RpcStream *s)
{
    return s->userdata;
}
