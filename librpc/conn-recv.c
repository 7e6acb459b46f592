/* SPDX-License-Identifier: MIT */
/*
 * conn-recv.c - the receiving half of a vrpc connection: reading the transport within a
 * per-dispatch budget, validating each frame header against the per-type bounds before its
 * body is awaited, handing bodies to the codec only as bounded slices of the receive
 * buffer, the per-frame-type handlers, and delivery to the application with its hold queue
 * (what a paused stream has received but not yet consumed). Every byte read here is
 * untrusted; a violation closes this connection (never the process) with a logged reason.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn-internal.h"

/* ---- transport ------------------------------------------------------------------------- */

static ssize_t t_read(RpcConn *c, void *buf, size_t n)
{
    if (c->vc) {
        /* An empty ring is left without arming its notification (vchan_read() would arm
         * it): the peer's writes cost it no event while we are awake anyway. Before a
         * sleep, rpc_conn_prepare_wait() arms it. */
        if (vchan_data_ready(c->vc) == 0) {
            VchanState vs = vchan_is_open(c->vc);
            if (vs == VCHAN_STATE_OPEN || vs == VCHAN_STATE_WAITING)
                return -EAGAIN;
        }
        return vchan_read(c->vc, buf, n);
    }
    if (c->tops)
        return c->tops->read(c->tctx, buf, n);
    for (;;) {
        ssize_t r = read(c->fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* ---- hold queue and delivery -------------------------------------------------------------- */

void rx_hold_drop(RpcConn *c, RpcStream *s)
{
    size_t data = 0;
    while (s->hold_head) {
        HoldItem *h = s->hold_head;
        s->hold_head = h->next;
        if (h->kind == HOLD_DATA)
            data += h->len - h->off;
        free(h);
    }
    s->hold_tail = NULL;
    c->stats.rx_held -= s->hold_bytes;
    s->hold_bytes = 0;
    s->paused = false;
    if (data)
        conn_credit(c, data);
}

static int hold_append(RpcConn *c, RpcStream *s, uint8_t kind, RpcChannel ch, const void *p,
                       size_t n)
{
    HoldItem *h = malloc(sizeof(*h) + n + 1);
    if (!h)
        return -ENOMEM;
    *h = (HoldItem){.kind = kind, .ch = ch, .len = n};
    if (n)
        memcpy(h->data, p, n);
    h->data[n] = 0;
    if (s->hold_tail)
        s->hold_tail->next = h;
    else
        s->hold_head = h;
    s->hold_tail = h;
    if (kind == HOLD_DATA) {
        s->hold_bytes += n;
        c->stats.rx_held += n;
    }
    return 0;
}

static void deliver_eof(RpcConn *c, RpcStream *s, RpcChannel ch)
{
    uint8_t bit = (uint8_t)(1u << ch);
    if (s->eof_delivered & bit)
        return;
    s->eof_delivered |= bit;
    if (STREAM_CB(c, s, on_eof))
        STREAM_CB(c, s, on_eof)(s, ch, STREAM_UD(c, s));
}

static void deliver_exit(RpcConn *c, RpcStream *s, int32_t code, bool refused, const char *reason)
{
    if (!refused) {
        deliver_eof(c, s, RPC_CH_STDOUT);
        if (s->life == STREAM_ORPHAN)
            return;
        deliver_eof(c, s, RPC_CH_STDERR);
        if (s->life == STREAM_ORPHAN)
            return;
    }
    s->no_reset_cb = true;
    if (STREAM_CB(c, s, on_exit))
        STREAM_CB(c, s, on_exit)(s, code, refused, reason, STREAM_UD(c, s));
    stream_finish(c, s);
}

/* Hand @n bytes to the application; returns how many it consumed. */
static size_t deliver_data_now(RpcConn *c, RpcStream *s, RpcChannel ch, const uint8_t *p, size_t n)
{
    size_t used = n;

    if (STREAM_CB(c, s, on_data)) {
        used = STREAM_CB(c, s, on_data)(s, ch, p, n, STREAM_UD(c, s));
        if (used > n)
            used = n;
    }
    if (s->life == STREAM_ORPHAN || s->sm.reset_sent) {
        /* The application dropped the stream from its callback: the rest is moot. */
        conn_credit(c, used);
        if (used < n)
            conn_credit(c, n - used);
        return n;
    }
    stream_credit(c, s, used);
    return used;
}

/* Deliver held events until the application pauses again or the queue is empty. */
void rx_hold_run(RpcConn *c, RpcStream *s)
{
    while (s->hold_head && !s->paused && s->life != STREAM_ORPHAN && c->state != CONN_CLOSED) {
        HoldItem *h = s->hold_head;
        if (h->kind == HOLD_DATA) {
            size_t left = h->len - h->off;
            size_t used = deliver_data_now(c, s, h->ch, h->data + h->off, left);
            if (s->life == STREAM_ORPHAN || !s->hold_head)
                return;
            h->off += used;
            s->hold_bytes -= used;
            c->stats.rx_held -= used;
            if (used < left) {
                s->paused = true;
                return;
            }
        }
        s->hold_head = h->next;
        if (!s->hold_head)
            s->hold_tail = NULL;
        if (h->kind == HOLD_EOF) {
            deliver_eof(c, s, h->ch);
        } else if (h->kind == HOLD_EXIT) {
            deliver_exit(c, s, h->code, h->refused, (const char *)h->data);
        }
        free(h);
    }
}

static void deliver_data(RpcConn *c, RpcStream *s, RpcChannel ch, const uint8_t *p, size_t n,
                         bool eof)
{
    if (n) {
        if (s->paused || s->hold_head) {
            if (hold_append(c, s, HOLD_DATA, ch, p, n) < 0) {
                stream_reset_local(c, s, RPC_RESET_INTERNAL, "out of memory");
                return;
            }
        } else {
            size_t used = deliver_data_now(c, s, ch, p, n);
            if (s->life == STREAM_ORPHAN || s->sm.reset_sent)
                return;
            if (used < n) {
                s->paused = true;
                if (hold_append(c, s, HOLD_DATA, ch, p + used, n - used) < 0) {
                    stream_reset_local(c, s, RPC_RESET_INTERNAL, "out of memory");
                    return;
                }
            }
        }
    }
    if (eof) {
        if (s->paused || s->hold_head) {
            if (hold_append(c, s, HOLD_EOF, ch, NULL, 0) < 0)
                stream_reset_local(c, s, RPC_RESET_INTERNAL, "out of memory");
        } else {
            deliver_eof(c, s, ch);
        }
    }
}

/* ---- frame handlers ----------------------------------------------------------------------- */

static bool is_peer_id(const RpcConn *c, uint32_t id)
{
    bool odd = id & 1u;
    return c->cfg.role == RPC_ROLE_INITIATOR ? !odd : odd;
}

/* Frames for an id with no live stream: fine for RESET and WINDOW_UPDATE of a stream that
 * existed (they may cross our own close), a violation otherwise. */
static void handle_dead_stream(RpcConn *c, const RpcFrameHeader *h)
{
    bool used = is_peer_id(c, h->stream) ? h->stream <= c->last_peer_id
                                         : (uint64_t)h->stream < c->next_local_id;
    if (!used) {
        conn_fail(c, RPC_E_PROTO, "%s frame for stream %u, which was never opened",
                  rpc_frame_type_name(h->type), h->stream);
        return;
    }
    if (h->type == RPC_FT_RESET || h->type == RPC_FT_WINDOW)
        return;
    conn_fail(c, RPC_E_PROTO, "%s frame on finished stream %u", rpc_frame_type_name(h->type),
              h->stream);
}

static void handle_call(RpcConn *c, const RpcFrameHeader *h, const uint8_t *untrusted_p)
{
    const char *why;
    RpcCallMsg m;

    if (!is_peer_id(c, h->stream)) {
        conn_fail(c, RPC_E_PROTO, "CALL with a stream id of our parity (%u)", h->stream);
        return;
    }
    if (h->stream <= c->last_peer_id) {
        conn_fail(c, RPC_E_PROTO, "CALL reuses stream id %u (last was %u)", h->stream,
                  c->last_peer_id);
        return;
    }
    if (rpc_msg_decode_call(untrusted_p, h->length, &m, &why) < 0) {
        conn_fail(c, RPC_E_PROTO, "stream %u: %s", h->stream, why);
        return;
    }
    c->last_peer_id = h->stream;
    if (c->peer_live >= c->cfg.max_streams) {
        conn_fail(c, RPC_E_QUOTA, "peer opened more than %u concurrent streams",
                  c->cfg.max_streams);
        return;
    }
    RpcStream *s = stream_new(c, h->stream, false);
    if (!s) {
        conn_fail(c, -ENOMEM, "out of memory for stream %u", h->stream);
        return;
    }
    s->callmsg = m;
    rpc_call_from_msg(&s->call, &s->callmsg);
    if (c->cb.on_call) {
        c->cb.on_call(c, s, &s->call, c->userdata);
    } else {
        rpc_stream_refuse(s, 125, "no handler for calls on this connection");
    }
}

static void handle_data(RpcConn *c, RpcStream *s, const RpcFrameHeader *h,
                        const uint8_t *untrusted_p)
{
    RpcChannel ch = rpc_frame_data_channel(h->type);
    bool eof = h->flags & RPC_FLAG_EOF;
    const char *why = NULL;
    RpcSmResult res = RPC_SM_OK;

    if (h->length) {
        res = rpc_stream_sm_rx(&s->sm, RPC_SM_DATA, ch, &why);
        if (res == RPC_SM_VIOLATION)
            goto violation;
    }
    if (eof) {
        RpcSmResult r2 = rpc_stream_sm_rx(&s->sm, RPC_SM_EOF, ch, &why);
        if (r2 == RPC_SM_VIOLATION)
            goto violation;
        if (r2 == RPC_SM_DISCARD)
            res = RPC_SM_DISCARD;
    }
    if (res == RPC_SM_DISCARD) {
        if (h->length)
            conn_credit(c, h->length);
        if (s->sm.done)
            stream_finish(c, s);
        return;
    }
    if (h->length > s->recv_remaining) {
        conn_credit(c, h->length);
        stream_reset_local(c, s, RPC_RESET_FLOW, "peer overran the stream window");
        return;
    }
    s->recv_remaining -= h->length;
    c->stats.data_in += h->length;
    deliver_data(c, s, ch, untrusted_p, h->length, eof);
    return;
violation:
    conn_fail(c, RPC_E_PROTO, "stream %u: %s frame: %s", h->stream, rpc_frame_type_name(h->type),
              why);
}

static void handle_answer(RpcConn *c, RpcStream *s, const RpcFrameHeader *h,
                          const uint8_t *untrusted_p)
{
    const char *why = NULL;
    RpcReasonMsg m = {0};
    RpcSmEvent ev = h->type == RPC_FT_ACCEPT   ? RPC_SM_ACCEPT
                    : h->type == RPC_FT_REFUSE ? RPC_SM_REFUSE
                                               : RPC_SM_EXIT;
    bool stdin_closed = s->sm.out_eof & 1u;

    if (h->type != RPC_FT_ACCEPT &&
        rpc_msg_decode_reason(h->type, untrusted_p, h->length, &m, &why) < 0) {
        conn_fail(c, RPC_E_PROTO, "stream %u: %s", h->stream, why);
        return;
    }
    RpcSmResult res = rpc_stream_sm_rx(&s->sm, ev, RPC_CH_STDIN, &why);
    if (res == RPC_SM_VIOLATION) {
        conn_fail(c, RPC_E_PROTO, "stream %u: %s frame: %s", h->stream,
                  rpc_frame_type_name(h->type), why);
        return;
    }
    if (res == RPC_SM_DISCARD) {
        if (s->sm.done)
            stream_finish(c, s);
        return;
    }
    if (ev == RPC_SM_ACCEPT) {
        if (STREAM_CB(c, s, on_accept))
            STREAM_CB(c, s, on_accept)(s, STREAM_UD(c, s));
        return;
    }
    /* The call is over: stdin is closed for good (the handler frees the stream when our
     * EOF arrives); unsent stdin is dropped. */
    if (!stdin_closed) {
        txq_drop(c, s);
        if (tx_queue_frame(c, RPC_FT_STDIN, RPC_FLAG_EOF, s->id, NULL, 0) < 0) {
            conn_fail(c, -ENOMEM, "out of memory queueing EOF");
            return;
        }
    }
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->paused || s->hold_head) {
        size_t rl = strlen(m.reason);
        if (hold_append(c, s, HOLD_EXIT, RPC_CH_STDOUT, m.reason, rl) < 0) {
            conn_fail(c, -ENOMEM, "out of memory holding EXIT");
            return;
        }
        s->hold_tail->code = (int32_t)m.code;
        s->hold_tail->refused = ev == RPC_SM_REFUSE;
        s->hold_tail->len = 0; /* not data */
        return;
    }
    deliver_exit(c, s, (int32_t)m.code, ev == RPC_SM_REFUSE, m.reason);
}

static void handle_reset(RpcConn *c, RpcStream *s, const RpcFrameHeader *h,
                         const uint8_t *untrusted_p)
{
    const char *why = NULL;
    RpcReasonMsg m;
    bool ack = h->flags & RPC_FLAG_ACK;
    bool crossing = s->sm.reset_sent;

    if (rpc_msg_decode_reason(RPC_FT_RESET, untrusted_p, h->length, &m, &why) < 0) {
        conn_fail(c, RPC_E_PROTO, "stream %u: %s", h->stream, why);
        return;
    }
    if (rpc_stream_sm_rx(&s->sm, ack ? RPC_SM_RESET_ACK : RPC_SM_RESET, RPC_CH_STDIN, &why) ==
        RPC_SM_VIOLATION) {
        conn_fail(c, RPC_E_PROTO, "stream %u: RESET: %s", h->stream, why);
        return;
    }
    c->stats.resets_in++;
    if (!ack && !crossing) {
        txq_drop(c, s);
        if (tx_queue_reply(c, RPC_FT_RESET, RPC_FLAG_ACK, s->id, NULL, 0) < 0)
            return;
        rx_hold_drop(c, s);
        if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && STREAM_CB(c, s, on_reset)) {
            s->no_reset_cb = true;
            STREAM_CB(c, s, on_reset)(s, (uint32_t)m.code, false, m.reason, STREAM_UD(c, s));
        }
    }
    stream_finish(c, s);
}

static void handle_frame(RpcConn *c, const RpcFrameHeader *h, const uint8_t *untrusted_p)
{
    c->stats.frames_in++;
    if (c->state == CONN_HELLO_WAIT && h->type != RPC_FT_HELLO && h->type != RPC_FT_GOAWAY) {
        conn_fail(c, RPC_E_PROTO, "%s frame before HELLO", rpc_frame_type_name(h->type));
        return;
    }
    switch (h->type) {
    case RPC_FT_HELLO:
        conn_handle_hello(c, untrusted_p, h->length);
        return;
    case RPC_FT_GOAWAY: {
        RpcReasonMsg m;
        const char *why;
        if (rpc_msg_decode_reason(h->type, untrusted_p, h->length, &m, &why) < 0) {
            conn_fail(c, RPC_E_PROTO, "%s", why);
            return;
        }
        conn_fail(c, m.code == RPC_E_VERSION ? RPC_E_VERSION : RPC_E_GOAWAY, "peer: %s", m.reason);
        return;
    }
    case RPC_FT_PING:
        tx_queue_reply(c, RPC_FT_PONG, 0, 0, untrusted_p, RPC_PING_SIZE);
        return;
    case RPC_FT_PONG: {
        c->stats.pongs_in++;
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++)
            seq |= (uint64_t)untrusted_p[i] << (8 * i);
        if (c->on_pong && c->uping_seq && seq == c->uping_seq) {
            RpcPongFn fn = c->on_pong;
            int64_t rtt = now_us() - c->uping_sent_us;
            c->uping_seq = 0;
            fn(c, rtt > 0 ? (uint64_t)rtt : 0, c->pong_ud);
        }
        return;
    }
    case RPC_FT_WINDOW: {
        uint32_t untrusted_inc = rpc_get_le32(untrusted_p);
        if (untrusted_inc == 0 || untrusted_inc > RPC_WINDOW_MAX) {
            conn_fail(c, RPC_E_PROTO, "WINDOW_UPDATE increment %u out of range", untrusted_inc);
            return;
        }
        if (h->stream == 0) {
            if (c->send_credit + untrusted_inc > (int64_t)RPC_WINDOW_MAX) {
                conn_fail(c, RPC_E_PROTO, "connection window grows over %u", RPC_WINDOW_MAX);
                return;
            }
            c->send_credit += untrusted_inc;
            c->writable_check = true;
            return;
        }
        RpcStream *s = stream_table_find(c, h->stream);
        if (!s || s->sm.done) {
            handle_dead_stream(c, h);
            return;
        }
        const char *why;
        if (rpc_stream_sm_rx(&s->sm, RPC_SM_WINDOW, RPC_CH_STDIN, &why) != RPC_SM_OK)
            return;
        if (s->send_credit + untrusted_inc > (int64_t)RPC_WINDOW_MAX) {
            conn_fail(c, RPC_E_PROTO, "stream %u: window grows over %u", h->stream, RPC_WINDOW_MAX);
            return;
        }
        s->send_credit += untrusted_inc;
        c->writable_check = true;
        return;
    }
    case RPC_FT_CALL:
        handle_call(c, h, untrusted_p);
        return;
    default:
        break;
    }
    if (rpc_frame_is_data(h->type)) {
        /* The connection window is checked first: it bounds our memory whatever the
         * stream's state. */
        if (h->length > c->recv_remaining) {
            conn_fail(c, RPC_E_QUOTA, "peer overran the connection window");
            return;
        }
        c->recv_remaining -= h->length;
    }
    RpcStream *s = stream_table_find(c, h->stream);
    if (!s || s->sm.done) {
        handle_dead_stream(c, h);
        return;
    }
    switch (h->type) {
    case RPC_FT_ACCEPT:
    case RPC_FT_REFUSE:
    case RPC_FT_EXIT:
        if (!s->sm.caller) {
            conn_fail(c, RPC_E_PROTO, "stream %u: %s from the caller (wrong direction)", h->stream,
                      rpc_frame_type_name(h->type));
            return;
        }
        handle_answer(c, s, h, untrusted_p);
        return;
    case RPC_FT_RESET:
        handle_reset(c, s, h, untrusted_p);
        return;
    default:
        handle_data(c, s, h, untrusted_p);
        return;
    }
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Parse and handle every complete frame in the receive buffer; returns how many. */
static size_t rx_process(RpcConn *c)
{
    size_t frames = 0;

    while (c->state != CONN_CLOSED && c->rx_fill - c->rx_pos >= RPC_FRAME_HEADER_SIZE) {
        RpcFrameHeader h;
        const char *why;
        uint32_t max = c->state == CONN_HELLO_WAIT ? RPC_FRAME_MAX_MIN : c->cfg.max_frame;

        if (rpc_frame_header_decode(c->rx + c->rx_pos, max, &h, &why) < 0) {
            conn_fail(c, RPC_E_PROTO, "bad frame header: %s", why);
            return frames;
        }
        if (c->rx_fill - c->rx_pos - RPC_FRAME_HEADER_SIZE < h.length)
            break;
        const uint8_t *untrusted_p = c->rx + c->rx_pos + RPC_FRAME_HEADER_SIZE;
        c->rx_pos += RPC_FRAME_HEADER_SIZE + h.length;
        handle_frame(c, &h, untrusted_p);
        frames++;
    }
    if (c->rx_pos == c->rx_fill) {
        c->rx_pos = c->rx_fill = 0;
    } else if (c->rx_pos > 0 &&
               c->rx_cap - c->rx_fill < (size_t)c->cfg.max_frame + RPC_FRAME_HEADER_SIZE) {
        memmove(c->rx, c->rx + c->rx_pos, c->rx_fill - c->rx_pos);
        c->rx_fill -= c->rx_pos;
        c->rx_pos = 0;
    }
    return frames;
}

void rx_pump(RpcConn *c)
{
    size_t budget = RX_BUDGET;

    c->more_rx = false;
    while (c->state != CONN_CLOSED) {
        if (budget == 0) {
            c->more_rx = true;
            return;
        }
        if (c->rx_fill == c->rx_cap) {
            /* Only a partial frame can be left, and a frame fits in half the buffer. */
            memmove(c->rx, c->rx + c->rx_pos, c->rx_fill - c->rx_pos);
            c->rx_fill -= c->rx_pos;
            c->rx_pos = 0;
        }
        size_t room = c->rx_cap - c->rx_fill;
        /* Reads of about two frames keep the buffer's hot front in use. */
        size_t cap = 2 * ((size_t)c->cfg.max_frame + RPC_FRAME_HEADER_SIZE);
        if (room > cap)
            room = cap;
        if (room == 0) {
            conn_fail(c, RPC_E_PROTO, "receive buffer full without a complete frame");
            return;
        }
        size_t want = room < budget ? room : budget;
        ssize_t n = t_read(c, c->rx + c->rx_fill, want);
        if (n == -EAGAIN)
            return;
        if (n == 0) {
            conn_fail(c, RPC_E_EOF, "transport closed by the peer");
            return;
        }
        if (n < 0) {
            conn_fail(c, (int)n, "transport read failed: %s", strerror((int)-n));
            return;
        }
        c->stats.bytes_in += (uint64_t)n;
        if (budget == RX_BUDGET) {
            /* for keepalive only: without it, no clock read (a clock_gettime() costs about
             * a tenth of a librpc round trip over a vchan) */
            if (c->cfg.keepalive_ms)
                c->last_rx_ms = now_ms();
            c->ping_outstanding = false;
        }
        c->rx_fill += (size_t)n;
        /* Each frame also costs a fixed amount, so that a peer sending tiny frames (a PING
         * flood) gets a bounded number of frames per dispatch, like a bulk sender gets a
         * bounded number of bytes: the loop's other connections get their turn. */
        size_t cost = (size_t)n + rx_process(c) * RX_FRAME_COST;
        budget = cost >= budget ? 0 : budget - cost;
        /* A read that got less than it asked for emptied the ring or the socket: what comes
         * later is for the next dispatch, not worth another look (or a read(2) that would
         * say EAGAIN) now. A vchan's rpc_conn_prepare_wait() looks before any sleep; a
         * socket stays readable for a level-triggered poll. Not a transport of tops: it may
         * hold decrypted bytes that no poll reports. */
        if (!c->tops && (size_t)n < want)
            return;
    }
}
