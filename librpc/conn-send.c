/* SPDX-License-Identifier: MIT */
/*
 * conn-send.c - the sending half of a vrpc connection: the transport write side, the
 * connection's output buffer (control frames, in transport order), each stream's send
 * queue and the round-robin sender that drains them, the credit windows in both directions
 * (ours granted to the peer by WINDOW_UPDATE, the peer's consumed by our DATA), and the
 * application's write path (rpc_stream_send_window, rpc_stream_write).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn-internal.h"

/* ---- transport ------------------------------------------------------------------------- */

static int out_append(RpcConn *c, const void *p, size_t n);

static ssize_t t_writev(RpcConn *c, const struct iovec *iov, int cnt)
{
    if (c->gathering) {
        /* tx_gather: the "transport" is the end of the output buffer */
        size_t total = 0;
        for (int i = 0; i < cnt; i++) {
            int r = out_append(c, iov[i].iov_base, iov[i].iov_len);
            if (r < 0)
                return total ? (ssize_t)total : r;
            total += iov[i].iov_len;
        }
        return (ssize_t)total;
    }
    if (c->vc) {
        ssize_t w = vchan_writev(c->vc, iov, cnt);
        if (w == -EAGAIN)
            c->vc_event = true; /* the full ring armed the space notification */
        if (w > 0)
            c->tx_room = (size_t)w < c->tx_room ? c->tx_room - (size_t)w : 0;
        return w;
    }
    if (c->tops)
        return c->tops->writev(c->tctx, iov, cnt);
    for (;;) {
        ssize_t r;
        if (c->is_socket) {
            struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
            r = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            r = writev(c->fd, iov, cnt);
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

bool conn_transport_holds(const RpcConn *c)
{
    return c->tops && c->tops->wpending && c->tops->wpending(c->tctx) > 0;
}

/* Bytes the transport takes now without blocking (SIZE_MAX: unknown, a socket). */
static size_t t_space(RpcConn *c)
{
    if (!c->vc || c->gathering)
        return SIZE_MAX;
    ssize_t r = vchan_buffer_space(c->vc);
    return r > 0 ? (size_t)r : 0;
}

/* Payload that fits in @room bytes of ring as frames of at most the peer's max_frame. */
static size_t room_fit(const RpcConn *c, size_t room)
{
    size_t per = (size_t)c->peer.max_frame + RPC_FRAME_HEADER_SIZE;
    size_t rem = room % per;

    return room / per * c->peer.max_frame +
           (rem > RPC_FRAME_HEADER_SIZE ? rem - RPC_FRAME_HEADER_SIZE : 0);
}

/* Over a vchan with nothing queued, the send window opens only once the ring has room for
 * one whole frame (a quarter of a small ring; or all the credit, if less): the write then
 * goes from the writer's buffer into the ring, and a writer is woken for a useful amount. */
static size_t room_min(const RpcConn *c)
{
    size_t m = c->peer.max_frame, q = vchan_write_ring_size(c->vc) / 4;
    if (q < m)
        m = q;
    return m ? m : 1;
}

void tx_room_refresh(RpcConn *c)
{
    if (!c->vc)
        return;
    size_t before = c->tx_room;
    c->tx_room = t_space(c);
    if (c->blocked_head && c->tx_room > before)
        c->writable_check = true;
}

bool tx_room_wait(RpcConn *c, bool arm)
{
    if (!c->vc || !c->blocked_head || c->out_len || c->ready_head || c->state != CONN_READY)
        return false; /* queued output: the transport write that found the ring full armed it */
    size_t min = room_min(c);
    if (room_fit(c, c->tx_room) >= min)
        return false; /* the streams wait for credit, not for the ring */
    ssize_t r;
    if (arm) {
        c->vc_event = true;
        r = vchan_buffer_space_notify(c->vc, min + RPC_FRAME_HEADER_SIZE);
    } else {
        r = vchan_buffer_space(c->vc);
    }
    return r > 0 && room_fit(c, (size_t)r) >= min;
}

/* ---- output buffer ---------------------------------------------------------------------- */

static int out_reserve(RpcConn *c, size_t add)
{
    if (c->out_head + c->out_len + add <= c->out_cap)
        return 0;
    if (c->out_head > 0) {
        memmove(c->out, c->out + c->out_head, c->out_len);
        c->out_head = 0;
        if (c->out_len + add <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + add)
        cap *= 2;
    uint8_t *n = realloc(c->out, cap);
    if (!n)
        return -ENOMEM;
    c->out = n;
    c->out_cap = cap;
    return 0;
}

static int out_append(RpcConn *c, const void *p, size_t n)
{
    int r = out_reserve(c, n);
    if (r < 0)
        return r;
    memcpy(c->out + c->out_head + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Queue a whole frame behind everything already in the output buffer. */
int tx_queue_frame(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                   size_t len)
{
    uint8_t hdr[RPC_FRAME_HEADER_SIZE];
    RpcFrameHeader h = {.type = type, .flags = flags, .stream = stream, .length = (uint32_t)len};
    int r;

    rpc_frame_header_encode(hdr, &h);
    r = out_reserve(c, sizeof(hdr) + len);
    if (r < 0)
        return r;
    out_append(c, hdr, sizeof(hdr));
    if (len)
        out_append(c, payload, len);
    c->stats.frames_out++;
    return 0;
}

/* A frame the peer provoked (PONG, WINDOW_UPDATE, RESET ack): bounded by max_tx_queue, so a
 * peer that never reads cannot make us buffer without limit. */
int tx_queue_reply(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                   size_t len)
{
    if (c->out_len + c->txq_total > c->cfg.max_tx_queue) {
        conn_fail(c, RPC_E_QUOTA, "peer does not read: %zu bytes queued for it",
                  c->out_len + c->txq_total);
        return -ENOBUFS;
    }
    int r = tx_queue_frame(c, type, flags, stream, payload, len);
    if (r < 0)
        conn_fail(c, r, "out of memory queueing a frame");
    return r;
}

int tx_queue_reason(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, int64_t code,
                    const char *reason)
{
    uint8_t buf[RPC_REASON_MSG_MAX];
    int n = rpc_msg_encode_reason(type, code, reason, buf, sizeof(buf));
    if (n < 0)
        return n;
    return tx_queue_frame(c, type, flags, stream, buf, (size_t)n);
}

/* ---- credit ----------------------------------------------------------------------------- */

static bool peer_may_send(const RpcStream *s)
{
    if (s->sm.done || s->sm.reset_sent)
        return false;
    if (s->sm.caller)
        return (s->sm.in_eof & 6u) != 6u && !s->sm.exit_done;
    return !(s->sm.in_eof & 1u) && !s->sm.exit_done;
}

void conn_credit(RpcConn *c, size_t n)
{
    c->recv_unreported += (uint32_t)n;
    if (c->state != CONN_CLOSED && c->recv_unreported >= c->cfg.conn_window / 4) {
        uint8_t p[RPC_WINDOW_SIZE];
        rpc_put_le32(p, c->recv_unreported);
        if (tx_queue_reply(c, RPC_FT_WINDOW, 0, 0, p, sizeof(p)) == 0) {
            c->recv_remaining += c->recv_unreported;
            c->recv_unreported = 0;
        }
    }
}

/* The application consumed @n bytes of @s: credit goes back to the peer in batches. */
void stream_credit(RpcConn *c, RpcStream *s, size_t n)
{
    if (n == 0)
        return;
    conn_credit(c, n);
    if (c->state == CONN_CLOSED)
        return;
    s->recv_unreported += (uint32_t)n;
    if (peer_may_send(s) && s->recv_unreported >= c->cfg.stream_window / 4) {
        uint8_t p[RPC_WINDOW_SIZE];
        rpc_put_le32(p, s->recv_unreported);
        if (tx_queue_reply(c, RPC_FT_WINDOW, 0, s->id, p, sizeof(p)) == 0) {
            s->recv_remaining += s->recv_unreported;
            s->recv_unreported = 0;
        }
    }
}

/* Drop @s's unsent queue (reset, closed connection, or stdin cut short by the answer). */
void txq_drop(RpcConn *c, RpcStream *s)
{
    while (s->txq_head) {
        TxChunk *k = s->txq_head;
        s->txq_head = k->next;
        free(k);
    }
    s->txq_tail = NULL;
    /* Credit taken for bytes never sent goes back to the connection window. */
    c->send_credit += (int64_t)s->txq_data;
    c->txq_total -= s->txq_bytes;
    s->txq_data = s->txq_bytes = 0;
    ready_del(c, s);
}

/* ---- sending ----------------------------------------------------------------------------- */

int tx_append_chunk(RpcConn *c, RpcStream *s, uint8_t kind, RpcChannel ch, const void *p, size_t n)
{
    TxChunk *t = s->txq_tail;

    if (kind == CHUNK_DATA && t && t->kind == CHUNK_DATA && t->ch == ch && t->off == 0 &&
        t->cap - t->len >= n) {
        memcpy(t->data + t->len, p, n);
        t->len += n;
    } else {
        size_t cap = n;
        if (kind == CHUNK_DATA && cap < TX_CHUNK_MIN)
            cap = TX_CHUNK_MIN;
        t = malloc(sizeof(*t) + cap);
        if (!t)
            return -ENOMEM;
        t->next = NULL;
        t->kind = kind;
        t->ch = ch;
        t->len = n;
        t->off = 0;
        t->cap = cap;
        if (n)
            memcpy(t->data, p, n);
        if (s->txq_tail)
            s->txq_tail->next = t;
        else
            s->txq_head = t;
        s->txq_tail = t;
    }
    s->txq_bytes += n;
    c->txq_total += n;
    if (kind == CHUNK_DATA)
        s->txq_data += n;
    if (s->life != STREAM_PREOPEN) /* its CALL goes first, after the peer's HELLO */
        ready_add(c, s);
    return 0;
}

/* Write one frame (header + @p) straight to the transport; whatever does not fit goes to the
 * output buffer. Returns 1 if written or buffered, 0 if the transport took nothing (nothing
 * buffered either), or -errno. */
static int write_frame_direct(RpcConn *c, const uint8_t *hdr, const uint8_t *p, size_t n)
{
    struct iovec iov[2] = {{(void *)hdr, RPC_FRAME_HEADER_SIZE}, {(void *)p, n}};
    size_t total = RPC_FRAME_HEADER_SIZE + n;
    ssize_t w = t_writev(c, iov, n ? 2 : 1);

    if (w == -EAGAIN)
        return 0;
    if (w < 0)
        return (int)w;
    c->stats.bytes_out += (uint64_t)w;
    c->stats.frames_out++;
    if ((size_t)w < total) {
        size_t done = (size_t)w;
        int r = out_reserve(c, total - done);
        if (r < 0)
            return r;
        if (done < RPC_FRAME_HEADER_SIZE) {
            out_append(c, hdr + done, RPC_FRAME_HEADER_SIZE - done);
            done = RPC_FRAME_HEADER_SIZE;
        }
        out_append(c, p + (done - RPC_FRAME_HEADER_SIZE), total - done);
    }
    return 1;
}

/* Payload size for the next DATA frame given the transport space: fit the frame into the
 * ring when that does not make it tiny, so that the bytes go in without a copy. */
static size_t frame_payload(RpcConn *c, size_t want)
{
    size_t n = want < c->peer.max_frame ? want : c->peer.max_frame;
    size_t space = t_space(c);

    if (space != SIZE_MAX && space > RPC_FRAME_HEADER_SIZE && space - RPC_FRAME_HEADER_SIZE < n) {
        size_t fit = space - RPC_FRAME_HEADER_SIZE;
        if (fit >= 4096)
            n = fit;
    }
    return n;
}

/* Send one frame from the head of @s's queue. Returns 1 if progress, 0 if blocked. */
static int send_from_stream(RpcConn *c, RpcStream *s)
{
    TxChunk *k = s->txq_head;
    uint8_t hdr[RPC_FRAME_HEADER_SIZE];
    RpcFrameHeader h = {.stream = s->id};
    size_t n = 0;
    int r;

    if (k->kind == CHUNK_FRAME) {
        struct iovec iov = {k->data + k->off, k->len - k->off};
        ssize_t w = t_writev(c, &iov, 1);
        if (w == -EAGAIN)
            return 0;
        if (w < 0)
            return (int)w;
        c->stats.bytes_out += (uint64_t)w;
        k->off += (size_t)w;
        s->txq_bytes -= (size_t)w;
        c->txq_total -= (size_t)w;
        if (k->off < k->len)
            return 0;
        c->stats.frames_out++;
    } else {
        h.type = (uint8_t)rpc_frame_data_type(k->ch);
        if (k->kind == CHUNK_DATA) {
            n = frame_payload(c, k->len - k->off);
            /* Fold a following EOF into the last data frame. */
            if (k->off + n == k->len && k->next && k->next->kind == CHUNK_EOF &&
                k->next->ch == k->ch)
                h.flags = RPC_FLAG_EOF;
        } else {
            h.flags = RPC_FLAG_EOF;
        }
        h.length = (uint32_t)n;
        rpc_frame_header_encode(hdr, &h);
        r = write_frame_direct(c, hdr, k->data + k->off, n);
        if (r <= 0)
            return r;
        k->off += n;
        s->txq_bytes -= n;
        s->txq_data -= n;
        c->txq_total -= n;
        c->stats.data_out += n;
        if (k->off < k->len)
            return 1;
        if (h.flags & RPC_FLAG_EOF && k->kind == CHUNK_DATA) {
            TxChunk *eof = k->next;
            k->next = eof->next;
            if (s->txq_tail == eof)
                s->txq_tail = k;
            free(eof);
        }
    }
    s->txq_head = k->next;
    if (!s->txq_head)
        s->txq_tail = NULL;
    free(k);
    return 1;
}

/* Whether the next frame of @s is small enough to be copied into the output buffer. */
static bool head_is_small(const RpcStream *s)
{
    const TxChunk *k = s->txq_head;

    if (!k)
        return false;
    return k->kind == CHUNK_EOF || k->len - k->off <= TX_GATHER_FRAME_MAX;
}

/* Move the small frames at the heads of the ready streams (round robin, as the sender would
 * take them) behind the output buffer, so that they and the control frames go out in one
 * transport write: one wake-up of the peer instead of one per frame. Large DATA frames stay
 * where they are and go out from the writers' chunks, without this copy. */
static void tx_gather(RpcConn *c)
{
    size_t before = c->out_len;

    while (c->out_len < TX_GATHER_MAX && c->ready_head && head_is_small(c->ready_head)) {
        RpcStream *s = c->ready_head;
        int r;

        c->gathering = true;
        r = send_from_stream(c, s);
        c->gathering = false;
        if (r <= 0)
            break;
        ready_del(c, s);
        if (s->txq_head)
            ready_add(c, s);
        else if (s->life == STREAM_ORPHAN)
            c->reap = true;
        c->writable_check = true;
    }
    /* counted as transport bytes when the output buffer is written, not twice */
    c->stats.bytes_out -= (uint64_t)(c->out_len - before);
}

/* Write the output buffer (with the small stream frames gathered behind it), then one
 * frame per ready stream in turn. Returns 0 (done or blocked) or -errno of the transport. */
static int tx_flush_queued(RpcConn *c)
{
    tx_gather(c);
    for (;;) {
        if (c->out_len) {
            struct iovec iov = {c->out + c->out_head, c->out_len};
            ssize_t w = t_writev(c, &iov, 1);
            if (w == -EAGAIN)
                return 0;
            if (w < 0)
                return (int)w;
            c->stats.bytes_out += (uint64_t)w;
            c->out_head += (size_t)w;
            c->out_len -= (size_t)w;
            if (c->out_len == 0)
                c->out_head = 0;
            c->writable_check = true;
            continue;
        }
        RpcStream *s = c->ready_head;
        if (!s)
            return 0;
        int r = send_from_stream(c, s);
        if (r < 0)
            return r;
        if (r == 0)
            return 0;
        c->writable_check = true;
        ready_del(c, s);
        if (s->txq_head)
            ready_add(c, s);
        else if (s->life == STREAM_ORPHAN)
            c->reap = true;
    }
}

/* Push output: tx_flush_queued(), then what a batching transport still holds of it
 * (RpcTransportOps.wpending: writev may keep small frames back to put several in one
 * record; this is the end of the batch). Returns 0 (done or blocked) or -errno. */
int tx_flush(RpcConn *c)
{
    int r = tx_flush_queued(c);

    if (r < 0)
        return r;
    if (conn_transport_holds(c)) {
        ssize_t w = c->tops->writev(c->tctx, NULL, 0);
        if (w < 0 && w != -EAGAIN)
            return (int)w;
    }
    return 0;
}

/* Flush from an API call outside callback context: a transport failure is remembered and
 * reported by the next dispatch. */
void tx_flush_soft(RpcConn *c)
{
    if (c->state == CONN_CLOSED || c->pending_err || c->corked)
        return;
    int r = tx_flush(c);
    if (r < 0)
        c->pending_err = r;
}

/* Our HELLO: the first frame on the connection, queued when it is created. */
void tx_queue_hello(RpcConn *c)
{
    RpcHelloMsg m = {
        .version_min = RPC_PROTO_VERSION_MIN,
        .version_max = RPC_PROTO_VERSION_MAX,
        .features = c->cfg.features,
        .role = c->cfg.role,
        .max_frame = c->cfg.max_frame,
        .max_streams = c->cfg.max_streams,
        .stream_window = c->cfg.stream_window,
        .conn_window = c->cfg.conn_window,
    };
    uint8_t buf[RPC_HELLO_MAX];
    int n = rpc_msg_encode_hello(&m, buf, sizeof(buf));
    if (n > 0)
        tx_queue_frame(c, RPC_FT_HELLO, 0, 0, buf, (size_t)n);
}

int tx_queue_call(RpcConn *c, RpcStream *s)
{
    uint8_t buf[RPC_CALL_MAX];
    int n = rpc_msg_encode_call(&s->call, buf, sizeof(buf));
    if (n < 0)
        return n;
    return tx_queue_frame(c, RPC_FT_CALL, 0, s->id, buf, (size_t)n);
}

/* ---- write API ---------------------------------------------------------------------------- */

ssize_t rpc_stream_send_window(const RpcStream *s, RpcChannel ch)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcStreamSm copy = s->sm;
    int r = rpc_stream_sm_tx(&copy, RPC_SM_DATA, ch);
    if (r < 0)
        return r;
    const RpcConn *c = s->conn;
    if (s->life == STREAM_PREOPEN || c->state != CONN_READY)
        return 0;
    int64_t w = s->send_credit < c->send_credit ? s->send_credit : c->send_credit;
    size_t queued = c->out_len + c->txq_total;
    int64_t room = queued >= c->cfg.max_tx_queue ? 0 : (int64_t)(c->cfg.max_tx_queue - queued);
    if (room < w)
        w = room;
    /* Idle vchan: what the ring takes now, so that the write goes straight in (no copy into
     * the stream queue); below room_min(), wait for the reader (tx_room_wait). */
    if (c->vc && !c->out_len && !c->ready_head) {
        size_t fit = room_fit(c, c->tx_room);
        if ((int64_t)fit < w)
            w = fit < room_min(c) ? 0 : (int64_t)fit;
        /* With other streams, one frame per write: the first writer of each turn must not
         * fill the ring every time (round robin, as the stream queues do). */
        if (c->nstreams > 1 && w > (int64_t)c->peer.max_frame)
            w = c->peer.max_frame;
    }
    /* While the transport is busy, a stream may queue one frame's worth: enough for round
     * robin, and the rest of the backpressure reaches the writer instead of our memory. */
    if (c->out_len || c->ready_head) {
        int64_t allow = s->txq_bytes >= c->peer.max_frame
                            ? 0
                            : (int64_t)(c->peer.max_frame - s->txq_bytes);
        if (allow < w)
            w = allow;
    }
    return w > 0 ? (ssize_t)(w > SSIZE_MAX ? SSIZE_MAX : w) : 0;
}

ssize_t rpc_stream_write(RpcStream *s, RpcChannel ch, const void *buf, size_t len)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcConn *c = s->conn;
    ssize_t win = rpc_stream_send_window(s, ch);
    if (win < 0)
        return win;
    if (len == 0)
        return 0;
    if (win == 0) {
        LIST_ADD(&c->blocked_head, s, blocked);
        return -EAGAIN;
    }
    size_t take = len < (size_t)win ? len : (size_t)win;
    const uint8_t *p = buf;
    size_t done = 0;
    /* Attached to a loop, a small write waits in the queue for the pass's one flush; a large
     * one goes straight in, after what the pass queued before it. */
    bool deferred = conn_flush_deferred(c);
    bool small = deferred && take <= TX_GATHER_FRAME_MAX;

    if (s->accept_held && stream_accept_release(c, s) < 0)
        return -ENOMEM;
    if (deferred && !small && !s->txq_head && (c->out_len || c->ready_head))
        tx_flush_soft(c);
    bool direct = !small && !c->corked && !c->out_len && !c->ready_head && !s->txq_head &&
                  !c->pending_err;

    /* Straight into the transport while nothing else waits: no copy. */
    if (direct) {
        while (done < take) {
            size_t n = frame_payload(c, take - done);
            uint8_t hdr[RPC_FRAME_HEADER_SIZE];
            RpcFrameHeader h = {
                .type = (uint8_t)rpc_frame_data_type(ch), .stream = s->id, .length = (uint32_t)n};
            rpc_frame_header_encode(hdr, &h);
            int r = write_frame_direct(c, hdr, p + done, n);
            if (r < 0) {
                c->pending_err = r;
                done = take; /* the connection is failing; report the bytes as taken */
                break;
            }
            if (r == 0)
                break;
            done += n;
            c->stats.data_out += n;
            if (c->out_len)
                break;
        }
    }
    /* What the transport did not take is queued, all of it: the window this write was
     * measured against is a promise (rpc_stream_send_window), and a writer that read that
     * much from a pipe has nowhere to keep the rest. The queue stays bounded by the window
     * (credit and max_tx_queue). */
    if (done < take) {
        int r = tx_append_chunk(c, s, CHUNK_DATA, ch, p + done, take - done);
        if (r < 0 && done == 0)
            return r;
        if (r == 0)
            done = take;
    }
    s->send_credit -= (int64_t)done;
    c->send_credit -= (int64_t)done;
    if (done < len)
        LIST_ADD(&c->blocked_head, s, blocked);
    /* A partial write armed no notification: try the rest now, so that -EAGAIN arms one.
     * Queued output of a loop-attached connection goes at the end of the pass. */
    if (deferred && (c->out_len || c->ready_head))
        conn_want_flush(c);
    else if (c->out_len)
        tx_flush_soft(c);
    conn_sync_loop(c);
    return (ssize_t)done;
}
