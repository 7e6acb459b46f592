/* SPDX-License-Identifier: MIT */
/*
 * conn.c - one vrpc connection over a vchan or a stream socket: the connection state
 * machine (HELLO wait, ready, closed), frame reading and validation, stream multiplexing,
 * per-stream and per-connection credit windows, the round-robin sender, keepalive, quotas,
 * and the deferred callbacks/free discipline. Every byte read from the transport is
 * untrusted: the header is checked against the per-type bounds before the body is awaited,
 * bodies are handed to the codec only as bounded slices of the receive buffer, and a
 * violation closes this connection (never the process) with a logged reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vchan/vchan.h"

#include "cleanup.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"
#include "stream-sm.h"

/* Largest amount read from the transport in one dispatch before yielding to other work. */
#define RX_BUDGET ((size_t)8 << 20)
/* What each frame costs against RX_BUDGET on top of its bytes: at most 16 Ki frames per
 * dispatch. */
#define RX_FRAME_COST ((size_t)512)
/* Smallest data chunk allocation in a stream's send queue (small writes coalesce). */
#define TX_CHUNK_MIN ((size_t)16 << 10)

typedef enum ConnState {
    CONN_HELLO_WAIT = 0,
    CONN_READY,
    CONN_CLOSED,
    CONN__COUNT,
} ConnState;

static const char *const conn_state_names[CONN__COUNT] = {
    [CONN_HELLO_WAIT] = "hello-wait",
    [CONN_READY] = "ready",
    [CONN_CLOSED] = "closed",
};

enum { CHUNK_DATA = 0, CHUNK_EOF, CHUNK_FRAME };
enum { HOLD_DATA = 0, HOLD_EOF, HOLD_EXIT };

typedef struct TxChunk {
    struct TxChunk *next;
    uint8_t kind;
    RpcChannel ch;
    size_t len, off, cap;
    uint8_t data[];
} TxChunk;

typedef struct HoldItem {
    struct HoldItem *next;
    uint8_t kind;
    RpcChannel ch;
    bool refused;
    int32_t code;
    size_t len, off;
    uint8_t data[]; /* DATA bytes, or the EXIT reason (NUL-terminated) */
} HoldItem;

/* Intrusive doubly linked list link. */
typedef struct Link {
    RpcStream *prev, *next;
    bool on;
} Link;

struct RpcStream {
    RpcConn *conn;
    uint32_t id;
    RpcStreamSm sm;
    RpcCallMsg callmsg;
    RpcCall call;
    void *userdata;
    RpcStream *hnext;  /* hash chain */
    Link all;          /* every stream of the connection, orphans included */
    Link ready;        /* has queued output */
    Link blocked;      /* a write came up short: wants on_writable */
    Link work;         /* resume or finish pending */
    /* send side */
    TxChunk *txq_head, *txq_tail;
    size_t txq_data;   /* DATA bytes queued (credit already taken) */
    size_t txq_bytes;  /* all bytes queued */
    int64_t send_credit;
    /* receive side */
    uint32_t recv_remaining;
    uint32_t recv_unreported;
    HoldItem *hold_head, *hold_tail;
    size_t hold_bytes;
    uint8_t eof_delivered;
    bool paused;
    bool resume_pending;
    bool finish_pending;
    bool preopen;       /* CALL waits for the peer's HELLO */
    bool in_table;
    bool freed_cb;      /* on_stream_free was called */
    bool no_reset_cb;   /* we asked for the reset, or it completed */
    bool orphan;        /* freed for the application, draining its queued frames */
    uint64_t notify_round;
};

struct RpcConn {
    RpcConnConfig cfg;
    RpcCallbacks cb;
    void *userdata;
    char name[64];
    /* transport */
    Vchan *vc;
    int fd;
    bool own;
    bool is_socket;
    ConnState state;
    RpcPeerInfo peer;
    /* receive buffer: [rx_pos, rx_fill) not yet parsed */
    uint8_t *rx;
    size_t rx_cap, rx_pos, rx_fill;
    bool more_rx;
    /* output bytes in transport order, [out_head, out_head + out_len) */
    uint8_t *out;
    size_t out_cap, out_head, out_len;
    size_t txq_total; /* bytes in all stream queues */
    int64_t send_credit; /* connection window granted by the peer */
    uint32_t recv_remaining, recv_unreported;
    /* streams */
    RpcStream **buckets;
    size_t nbuckets;
    uint32_t nstreams;       /* in the table */
    uint32_t peer_live, local_live;
    uint32_t last_peer_id;
    uint64_t next_local_id;
    RpcStream *all_head;
    RpcStream *ready_head, *ready_tail;
    RpcStream *blocked_head;
    RpcStream *work_head;
    /* timers */
    int64_t created_ms, last_rx_ms, ping_sent_ms;
    bool ping_outstanding;
    uint64_t ping_seq;
    /* deferred things */
    int busy;
    bool free_pending;
    int pending_err;
    bool writable_check;
    bool reap;          /* orphans may be ready to free */
    uint64_t notify_round;
    /* loop */
    RpcLoop *loop;
    RpcLoopSource *fd_src, *timer_src;
    uint32_t loop_events;
    RpcConnStats stats;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_fail(RpcConn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void stream_finish(RpcConn *c, RpcStream *s);
static int flush_out(RpcConn *c);
static void conn_sync_loop(RpcConn *c);

/* ---- lists ------------------------------------------------------------------------------ */

#define LIST_ADD(headp, s, field)                                                           \
    do {                                                                                    \
        if (!(s)->field.on) {                                                               \
            (s)->field.on = true;                                                           \
            (s)->field.prev = NULL;                                                         \
            (s)->field.next = *(headp);                                                     \
            if (*(headp))                                                                   \
                (*(headp))->field.prev = (s);                                               \
            *(headp) = (s);                                                                 \
        }                                                                                   \
    } while (0)

#define LIST_DEL(headp, s, field)                                                           \
    do {                                                                                    \
        if ((s)->field.on) {                                                                \
            if ((s)->field.prev)                                                            \
                (s)->field.prev->field.next = (s)->field.next;                              \
            else                                                                            \
                *(headp) = (s)->field.next;                                                 \
            if ((s)->field.next)                                                            \
                (s)->field.next->field.prev = (s)->field.prev;                              \
            (s)->field.on = false;                                                          \
            (s)->field.prev = (s)->field.next = NULL;                                       \
        }                                                                                   \
    } while (0)

/* The ready list is a FIFO (round robin): append at the tail. */
static void ready_add(RpcConn *c, RpcStream *s)
{
    if (s->ready.on)
        return;
    s->ready.on = true;
    s->ready.next = NULL;
    s->ready.prev = c->ready_tail;
    if (c->ready_tail)
        c->ready_tail->ready.next = s;
    else
        c->ready_head = s;
    c->ready_tail = s;
}

static void ready_del(RpcConn *c, RpcStream *s)
{
    if (!s->ready.on)
        return;
    if (s->ready.prev)
        s->ready.prev->ready.next = s->ready.next;
    else
        c->ready_head = s->ready.next;
    if (s->ready.next)
        s->ready.next->ready.prev = s->ready.prev;
    else
        c->ready_tail = s->ready.prev;
    s->ready.on = false;
    s->ready.prev = s->ready.next = NULL;
}

/* ---- stream table ----------------------------------------------------------------------- */

static size_t bucket_of(const RpcConn *c, uint32_t id)
{
    return (size_t)((id * 2654435761u) & (uint32_t)(c->nbuckets - 1));
}

static RpcStream *table_find(const RpcConn *c, uint32_t id)
{
    for (RpcStream *s = c->buckets[bucket_of(c, id)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

static int table_add(RpcConn *c, RpcStream *s)
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
    s->in_table = true;
    c->nstreams++;
    return 0;
}

static void table_del(RpcConn *c, RpcStream *s)
{
    if (!s->in_table)
        return;
    for (RpcStream **pp = &c->buckets[bucket_of(c, s->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    s->in_table = false;
    c->nstreams--;
}

/* ---- transport ------------------------------------------------------------------------- */

static ssize_t t_read(RpcConn *c, void *buf, size_t n)
{
    if (c->vc)
        return vchan_read(c->vc, buf, n);
    for (;;) {
        ssize_t r = read(c->fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static ssize_t t_writev(RpcConn *c, const struct iovec *iov, int cnt)
{
    if (c->vc)
        return vchan_writev(c->vc, iov, cnt);
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

/* Bytes the transport takes now without blocking (SIZE_MAX: unknown, a socket). */
static size_t t_space(RpcConn *c)
{
    if (!c->vc)
        return SIZE_MAX;
    ssize_t r = vchan_buffer_space(c->vc);
    return r > 0 ? (size_t)r : 0;
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
static int queue_frame(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream,
                       const void *payload, size_t len)
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
static int queue_reply(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream,
                       const void *payload, size_t len)
{
    if (c->out_len + c->txq_total > c->cfg.max_tx_queue) {
        conn_fail(c, RPC_E_QUOTA, "peer does not read: %zu bytes queued for it",
                  c->out_len + c->txq_total);
        return -ENOBUFS;
    }
    int r = queue_frame(c, type, flags, stream, payload, len);
    if (r < 0)
        conn_fail(c, r, "out of memory queueing a frame");
    return r;
}

static int queue_reason(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, int64_t code,
                        const char *reason)
{
    uint8_t buf[RPC_REASON_MSG_MAX];
    int n = rpc_msg_encode_reason(type, code, reason, buf, sizeof(buf));
    if (n < 0)
        return n;
    return queue_frame(c, type, flags, stream, buf, (size_t)n);
}

/* ---- logging and failure ------------------------------------------------------------- */

const char *rpc_error_name(int error)
{
    switch (error) {
    case 0:
        return "ok";
    case RPC_E_CLOSED:
        return "connection closed";
    case RPC_E_PROTO:
        return "protocol violation";
    case RPC_E_VERSION:
        return "no common protocol version";
    case RPC_E_TIMEOUT:
        return "timeout";
    case RPC_E_EOF:
        return "peer closed the transport";
    case RPC_E_GOAWAY:
        return "peer closed the connection";
    case RPC_E_LOCAL:
        return "closed locally";
    case RPC_E_QUOTA:
        return "quota exceeded";
    default:
        return error < 0 ? strerror(-error) : "unknown error";
    }
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

static void conn_detach_fd(RpcConn *c)
{
    c->fd_src = rpc_loop_source_free(c->fd_src);
}

/* Close the connection: log once, GOAWAY when it is our decision, on_close, then reset
 * every stream. Callbacks may run: callers are inside a dispatch or an API call that is
 * documented to call back (busy > 0). */
static void conn_fail(RpcConn *c, int err, const char *fmt, ...)
{
    char reason[RPC_REASON_MAX + 1];
    va_list ap;

    if (c->state == CONN_CLOSED)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    rpc_log(err == RPC_E_LOCAL || err == RPC_E_EOF || err == RPC_E_GOAWAY ? LOG_INFO : LOG_WARNING,
            "%s: connection closed (%s, state %s): %s", c->name, rpc_error_name(err),
            conn_state_names[c->state], reason);
    c->state = CONN_CLOSED;
    if (err == RPC_E_PROTO || err == RPC_E_VERSION || err == RPC_E_TIMEOUT ||
        err == RPC_E_LOCAL || err == RPC_E_QUOTA) {
        /* Best effort: one try, no waiting. */
        if (queue_reason(c, RPC_FT_GOAWAY, 0, 0, err, reason) == 0)
            flush_out(c);
    }
    conn_detach_fd(c);
    c->busy++;
    if (c->cb.on_close)
        c->cb.on_close(c, err, reason, c->userdata);
    /* Every stream goes: a snapshot walk, since callbacks may reset others. */
    for (RpcStream *s = c->all_head, *next; s; s = next) {
        next = s->all.next;
        if (s->freed_cb)
            continue;
        if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && c->cb.on_reset) {
            s->no_reset_cb = true;
            c->cb.on_reset(s, RPC_RESET_CONN_CLOSED, true, reason, c->userdata);
        }
        s->sm.done = true;
        stream_finish(c, s);
    }
    c->busy--;
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

static void conn_credit(RpcConn *c, size_t n)
{
    c->recv_unreported += (uint32_t)n;
    if (c->state != CONN_CLOSED && c->recv_unreported >= c->cfg.conn_window / 4) {
        uint8_t p[RPC_WINDOW_SIZE];
        rpc_put_le32(p, c->recv_unreported);
        if (queue_reply(c, RPC_FT_WINDOW, 0, 0, p, sizeof(p)) == 0) {
            c->recv_remaining += c->recv_unreported;
            c->recv_unreported = 0;
        }
    }
}

/* The application consumed @n bytes of @s: credit goes back to the peer in batches. */
static void stream_credit(RpcConn *c, RpcStream *s, size_t n)
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
        if (queue_reply(c, RPC_FT_WINDOW, 0, s->id, p, sizeof(p)) == 0) {
            s->recv_remaining += s->recv_unreported;
            s->recv_unreported = 0;
        }
    }
}

/* ---- stream lifetime -------------------------------------------------------------------- */

static void txq_drop(RpcConn *c, RpcStream *s)
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

static void hold_drop(RpcConn *c, RpcStream *s)
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

static void stream_free_mem(RpcConn *c, RpcStream *s)
{
    txq_drop(c, s);
    hold_drop(c, s);
    LIST_DEL(&c->all_head, s, all);
    free(s);
}

/* The stream is over for the application: on_stream_free, out of the table. Its queued
 * frames (data then EXIT, say) still drain unless it was reset; the memory goes when they
 * have. Outside callback context the work is deferred to the next dispatch. */
static void stream_finish(RpcConn *c, RpcStream *s)
{
    if (s->freed_cb)
        return;
    if (c->busy == 0) {
        s->finish_pending = true;
        LIST_ADD(&c->work_head, s, work);
        return;
    }
    s->freed_cb = true;
    s->finish_pending = false;
    LIST_DEL(&c->work_head, s, work);
    LIST_DEL(&c->blocked_head, s, blocked);
    table_del(c, s);
    if (s->sm.caller)
        c->local_live--;
    else
        c->peer_live--;
    c->stats.streams_open--;
    hold_drop(c, s);
    if (s->sm.reset_sent || c->state == CONN_CLOSED)
        txq_drop(c, s);
    if (c->cb.on_stream_free)
        c->cb.on_stream_free(s, c->userdata);
    s->orphan = true;
    c->reap = true;
}

/* Free the memory of finished streams whose queues drained; only outside callbacks, so
 * that no stack frame still holds them. */
static void reap_orphans(RpcConn *c)
{
    if (!c->reap || c->busy > 0)
        return;
    c->reap = false;
    for (RpcStream *s = c->all_head, *next; s; s = next) {
        next = s->all.next;
        if (s->orphan && !s->txq_head)
            stream_free_mem(c, s);
    }
}

static RpcStream *stream_new(RpcConn *c, uint32_t id, bool caller)
{
    RpcStream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->conn = c;
    s->id = id;
    rpc_stream_sm_init(&s->sm, caller);
    s->recv_remaining = c->cfg.stream_window;
    s->send_credit = c->state == CONN_READY ? c->peer.stream_window : 0;
    if (table_add(c, s) < 0) {
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
static void stream_reset_local(RpcConn *c, RpcStream *s, uint32_t code, const char *reason)
{
    if (s->sm.reset_sent || s->sm.done)
        return;
    rpc_log(LOG_WARNING, "%s: stream %u reset (%s): %s", c->name, s->id,
            rpc_reset_code_name(code), reason);
    rpc_stream_sm_tx(&s->sm, RPC_SM_RESET, RPC_CH_STDIN);
    txq_drop(c, s);
    hold_drop(c, s);
    if (queue_reason(c, RPC_FT_RESET, 0, s->id, code, reason) < 0) {
        conn_fail(c, -ENOMEM, "out of memory queueing RESET");
        return;
    }
    c->stats.resets_out++;
    if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && c->cb.on_reset) {
        s->no_reset_cb = true;
        c->cb.on_reset(s, code, true, reason, c->userdata);
    }
    s->no_reset_cb = true;
}

/* ---- sending ----------------------------------------------------------------------------- */

static int tx_append_chunk(RpcConn *c, RpcStream *s, uint8_t kind, RpcChannel ch,
                           const void *p, size_t n)
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
    if (!s->preopen) /* its CALL goes first, after the peer's HELLO */
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

    if (space != SIZE_MAX && space > RPC_FRAME_HEADER_SIZE &&
        space - RPC_FRAME_HEADER_SIZE < n) {
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

/* Push output: first the output buffer, then one frame per ready stream in turn. Returns 0
 * (done or blocked) or -errno of the transport. */
static int flush_out(RpcConn *c)
{
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
        else if (s->orphan)
            c->reap = true;
    }
}

/* Flush from an API call outside callback context: a transport failure is remembered and
 * reported by the next dispatch. */
static void flush_soft(RpcConn *c)
{
    if (c->state == CONN_CLOSED || c->pending_err)
        return;
    int r = flush_out(c);
    if (r < 0)
        c->pending_err = r;
}

/* ---- receiving -------------------------------------------------------------------------- */

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
    if (c->cb.on_eof)
        c->cb.on_eof(s, ch, c->userdata);
}

static void deliver_exit(RpcConn *c, RpcStream *s, int32_t code, bool refused,
                         const char *reason)
{
    if (!refused) {
        deliver_eof(c, s, RPC_CH_STDOUT);
        if (s->freed_cb)
            return;
        deliver_eof(c, s, RPC_CH_STDERR);
        if (s->freed_cb)
            return;
    }
    s->no_reset_cb = true;
    if (c->cb.on_exit)
        c->cb.on_exit(s, code, refused, reason, c->userdata);
    stream_finish(c, s);
}

/* Hand @n bytes to the application; returns how many it consumed. */
static size_t deliver_data_now(RpcConn *c, RpcStream *s, RpcChannel ch, const uint8_t *p,
                               size_t n)
{
    size_t used = n;

    if (c->cb.on_data) {
        used = c->cb.on_data(s, ch, p, n, c->userdata);
        if (used > n)
            used = n;
    }
    if (s->freed_cb || s->sm.reset_sent) {
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
static void hold_run(RpcConn *c, RpcStream *s)
{
    while (s->hold_head && !s->paused && !s->freed_cb && c->state != CONN_CLOSED) {
        HoldItem *h = s->hold_head;
        if (h->kind == HOLD_DATA) {
            size_t left = h->len - h->off;
            size_t used = deliver_data_now(c, s, h->ch, h->data + h->off, left);
            if (s->freed_cb || !s->hold_head)
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
            if (s->freed_cb || s->sm.reset_sent)
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

static void send_hello(RpcConn *c)
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
        queue_frame(c, RPC_FT_HELLO, 0, 0, buf, (size_t)n);
}

static int queue_call(RpcConn *c, RpcStream *s)
{
    uint8_t buf[RPC_CALL_MAX];
    int n = rpc_msg_encode_call(&s->call, buf, sizeof(buf));
    if (n < 0)
        return n;
    return queue_frame(c, RPC_FT_CALL, 0, s->id, buf, (size_t)n);
}

static void handle_hello(RpcConn *c, const uint8_t *untrusted_p, size_t len)
{
    RpcHelloMsg m;
    const char *why;

    if (c->state != CONN_HELLO_WAIT) {
        conn_fail(c, RPC_E_PROTO, "second HELLO");
        return;
    }
    if (rpc_msg_decode_hello(untrusted_p, len, &m, &why) < 0) {
        conn_fail(c, RPC_E_PROTO, "%s", why);
        return;
    }
    uint32_t hi = m.version_max < RPC_PROTO_VERSION_MAX ? m.version_max : RPC_PROTO_VERSION_MAX;
    uint32_t lo = m.version_min > RPC_PROTO_VERSION_MIN ? m.version_min : RPC_PROTO_VERSION_MIN;
    if (hi < lo) {
        conn_fail(c, RPC_E_VERSION,
                  "unsupported protocol version: peer speaks %u..%u, we speak %u..%u",
                  m.version_min, m.version_max, RPC_PROTO_VERSION_MIN, RPC_PROTO_VERSION_MAX);
        return;
    }
    if (m.role == (uint32_t)c->cfg.role) {
        conn_fail(c, RPC_E_PROTO, "both ends claim the %s role",
                  m.role == RPC_ROLE_INITIATOR ? "initiator" : "acceptor");
        return;
    }
    c->peer = (RpcPeerInfo){
        .version = hi,
        .features = m.features & c->cfg.features,
        .role = (RpcRole)m.role,
        .max_frame = m.max_frame,
        .max_streams = m.max_streams,
        .stream_window = m.stream_window,
        .conn_window = m.conn_window,
    };
    c->send_credit = m.conn_window;
    c->state = CONN_READY;
    /* Streams opened before the HELLO: their CALLs go now, within the peer's quota. Ids
     * ascend along the list from its tail (the list is LIFO), so walk it backwards. */
    RpcStream *last = NULL;
    for (RpcStream *s = c->all_head; s; s = s->all.next)
        last = s;
    uint32_t sent = 0;
    for (RpcStream *s = last, *prev; s; s = prev) {
        prev = s->all.prev;
        if (!s->preopen || s->freed_cb)
            continue;
        s->preopen = false;
        s->send_credit = m.stream_window;
        if (s->sm.reset_sent) {
            s->sm.done = true;
            stream_finish(c, s);
            continue;
        }
        if (sent >= m.max_streams) {
            s->sm.reset_sent = true;
            txq_drop(c, s);
            if (!s->no_reset_cb && c->cb.on_reset) {
                s->no_reset_cb = true;
                c->cb.on_reset(s, RPC_RESET_REFUSED_STREAM, true,
                               "over the peer's concurrent-stream quota", c->userdata);
            }
            s->sm.done = true;
            stream_finish(c, s);
            continue;
        }
        sent++;
        if (queue_call(c, s) < 0) {
            conn_fail(c, -ENOMEM, "out of memory queueing CALL");
            return;
        }
        /* The stream's own queue (EOF, say) follows its CALL. */
        if (s->txq_head) {
            ready_del(c, s);
            ready_add(c, s);
        }
        LIST_ADD(&c->blocked_head, s, blocked);
    }
    c->writable_check = true;
    if (c->cb.on_ready)
        c->cb.on_ready(c, &c->peer, c->userdata);
}

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
    conn_fail(c, RPC_E_PROTO, "stream %u: %s frame: %s", h->stream,
              rpc_frame_type_name(h->type), why);
}

static void handle_answer(RpcConn *c, RpcStream *s, const RpcFrameHeader *h,
                          const uint8_t *untrusted_p)
{
    const char *why = NULL;
    RpcReasonMsg m = {0};
    RpcSmEvent ev = h->type == RPC_FT_ACCEPT ? RPC_SM_ACCEPT
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
        if (c->cb.on_accept)
            c->cb.on_accept(s, c->userdata);
        return;
    }
    /* The call is over: stdin is closed for good (the handler frees the stream when our
     * EOF arrives); unsent stdin is dropped. */
    if (!stdin_closed) {
        txq_drop(c, s);
        if (queue_frame(c, RPC_FT_STDIN, RPC_FLAG_EOF, s->id, NULL, 0) < 0) {
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
        if (queue_reply(c, RPC_FT_RESET, RPC_FLAG_ACK, s->id, NULL, 0) < 0)
            return;
        hold_drop(c, s);
        if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && c->cb.on_reset) {
            s->no_reset_cb = true;
            c->cb.on_reset(s, (uint32_t)m.code, false, m.reason, c->userdata);
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
        handle_hello(c, untrusted_p, h->length);
        return;
    case RPC_FT_GOAWAY: {
        RpcReasonMsg m;
        const char *why;
        if (rpc_msg_decode_reason(h->type, untrusted_p, h->length, &m, &why) < 0) {
            conn_fail(c, RPC_E_PROTO, "%s", why);
            return;
        }
        conn_fail(c, m.code == RPC_E_VERSION ? RPC_E_VERSION : RPC_E_GOAWAY, "peer: %s",
                  m.reason);
        return;
    }
    case RPC_FT_PING:
        queue_reply(c, RPC_FT_PONG, 0, 0, untrusted_p, RPC_PING_SIZE);
        return;
    case RPC_FT_PONG:
        c->stats.pongs_in++;
        return;
    case RPC_FT_WINDOW: {
        uint32_t untrusted_inc = rpc_get_le32(untrusted_p);
        if (untrusted_inc == 0 || untrusted_inc > RPC_WINDOW_MAX) {
            conn_fail(c, RPC_E_PROTO, "WINDOW_UPDATE increment %u out of range",
                      untrusted_inc);
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
        RpcStream *s = table_find(c, h->stream);
        if (!s || s->sm.done) {
            handle_dead_stream(c, h);
            return;
        }
        const char *why;
        if (rpc_stream_sm_rx(&s->sm, RPC_SM_WINDOW, RPC_CH_STDIN, &why) != RPC_SM_OK)
            return;
        if (s->send_credit + untrusted_inc > (int64_t)RPC_WINDOW_MAX) {
            conn_fail(c, RPC_E_PROTO, "stream %u: window grows over %u", h->stream,
                      RPC_WINDOW_MAX);
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
    RpcStream *s = table_find(c, h->stream);
    if (!s || s->sm.done) {
        handle_dead_stream(c, h);
        return;
    }
    switch (h->type) {
    case RPC_FT_ACCEPT:
    case RPC_FT_REFUSE:
    case RPC_FT_EXIT:
        if (!s->sm.caller) {
            conn_fail(c, RPC_E_PROTO, "stream %u: %s from the caller (wrong direction)",
                      h->stream, rpc_frame_type_name(h->type));
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

static void rx_pump(RpcConn *c)
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
        ssize_t n = t_read(c, c->rx + c->rx_fill, room < budget ? room : budget);
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
            c->last_rx_ms = now_ms();
            c->ping_outstanding = false;
        }
        c->rx_fill += (size_t)n;
        /* Each frame also costs a fixed amount, so that a peer sending tiny frames (a PING
         * flood) gets a bounded number of frames per dispatch, like a bulk sender gets a
         * bounded number of bytes: the loop's other connections get their turn. */
        size_t cost = (size_t)n + rx_process(c) * RX_FRAME_COST;
        budget = cost >= budget ? 0 : budget - cost;
    }
}

/* ---- timers ------------------------------------------------------------------------------ */

static void run_timers(RpcConn *c)
{
    int64_t now = now_ms();

    if (c->state == CONN_HELLO_WAIT && c->cfg.hello_timeout_ms &&
        now - c->created_ms >= c->cfg.hello_timeout_ms) {
        conn_fail(c, RPC_E_TIMEOUT, "no HELLO from the peer within %u ms",
                  c->cfg.hello_timeout_ms);
        return;
    }
    if (c->state != CONN_READY || !c->cfg.keepalive_ms)
        return;
    if (c->ping_outstanding) {
        if (now - c->ping_sent_ms >= c->cfg.dead_peer_ms)
            conn_fail(c, RPC_E_TIMEOUT, "peer dead: nothing received for %u ms after PING",
                      c->cfg.dead_peer_ms);
        return;
    }
    if (now - c->last_rx_ms >= c->cfg.keepalive_ms) {
        uint8_t p[RPC_PING_SIZE];
        uint64_t seq = ++c->ping_seq;
        for (int i = 0; i < 8; i++)
            p[i] = (uint8_t)(seq >> (8 * i));
        if (queue_reply(c, RPC_FT_PING, 0, 0, p, sizeof(p)) == 0) {
            c->ping_outstanding = true;
            c->ping_sent_ms = now;
            c->stats.pings_out++;
        }
    }
}

int rpc_conn_next_timeout_ms(const RpcConn *c)
{
    if (!c || c->state == CONN_CLOSED)
        return -1;
    if (c->pending_err || c->more_rx || c->work_head)
        return 0;
    int64_t now = now_ms(), when = INT64_MAX;
    if (c->state == CONN_HELLO_WAIT && c->cfg.hello_timeout_ms)
        when = c->created_ms + c->cfg.hello_timeout_ms;
    if (c->state == CONN_READY && c->cfg.keepalive_ms) {
        int64_t t = c->ping_outstanding ? c->ping_sent_ms + c->cfg.dead_peer_ms
                                        : c->last_rx_ms + c->cfg.keepalive_ms;
        if (t < when)
            when = t;
    }
    if (when == INT64_MAX)
        return -1;
    if (when <= now)
        return 0;
    return when - now > INT_MAX ? INT_MAX : (int)(when - now);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void notify_writable(RpcConn *c)
{
    if (!c->writable_check)
        return;
    c->writable_check = false;
    uint64_t round = ++c->notify_round;
    /* Callbacks may block, unblock or finish any stream: after each one, rescan from the
     * head, skipping the streams already told in this round. */
    for (RpcStream *s = c->blocked_head; s && c->state != CONN_CLOSED;) {
        bool any = false;
        if (s->notify_round != round)
            for (int ch = 0; ch < 3 && !any; ch++)
                any = rpc_stream_send_window(s, (RpcChannel)ch) > 0;
        if (!any) {
            s = s->blocked.next;
            continue;
        }
        s->notify_round = round;
        LIST_DEL(&c->blocked_head, s, blocked);
        if (c->cb.on_writable)
            c->cb.on_writable(s, c->userdata);
        s = c->blocked_head;
    }
}

static void run_work(RpcConn *c)
{
    while (c->work_head && c->state != CONN_CLOSED) {
        RpcStream *s = c->work_head;
        LIST_DEL(&c->work_head, s, work);
        if (s->finish_pending) {
            stream_finish(c, s);
            continue;
        }
        if (s->resume_pending) {
            s->resume_pending = false;
            hold_run(c, s);
        }
    }
    while (c->work_head) { /* closed: only finishes remain meaningful */
        RpcStream *s = c->work_head;
        LIST_DEL(&c->work_head, s, work);
        if (s->finish_pending)
            stream_finish(c, s);
    }
}

static void conn_really_free(RpcConn *c);

/* Leave callback context: deferred free happens here. Returns true if @c is gone. */
static bool conn_unbusy(RpcConn *c)
{
    if (--c->busy > 0)
        return false;
    if (c->free_pending) {
        conn_really_free(c);
        return true;
    }
    reap_orphans(c);
    return false;
}

static int dispatch_inner(RpcConn *c)
{
    if (c->state == CONN_CLOSED)
        return RPC_E_CLOSED;
    if (c->pending_err) {
        conn_fail(c, c->pending_err, "transport write failed: %s", strerror(-c->pending_err));
        return RPC_E_CLOSED;
    }
    if (c->vc) {
        vchan_dispatch(c->vc);
        VchanState vs = vchan_is_open(c->vc);
        if (vs == VCHAN_STATE_BROKEN) {
            conn_fail(c, RPC_E_PROTO, "vchan broken by the peer");
            return RPC_E_CLOSED;
        }
    }
    int r = flush_out(c);
    if (r < 0) {
        conn_fail(c, r, "transport write failed: %s", strerror(-r));
        return RPC_E_CLOSED;
    }
    for (int round = 0; round < 4 && c->state != CONN_CLOSED; round++) {
        rx_pump(c);
        run_work(c);
        if (c->state == CONN_CLOSED)
            break;
        run_timers(c);
        if (c->state == CONN_CLOSED)
            break;
        r = flush_out(c);
        if (r < 0) {
            conn_fail(c, r, "transport write failed: %s", strerror(-r));
            break;
        }
        notify_writable(c);
        if (!c->work_head && !c->writable_check)
            break;
    }
    return c->state == CONN_CLOSED ? RPC_E_CLOSED : 0;
}

/* Returns the dispatch result; *@gonep tells whether @c was freed meanwhile. */
static int dispatch_checked(RpcConn *c, bool *gonep)
{
    c->busy++;
    int r = dispatch_inner(c);
    *gonep = conn_unbusy(c);
    return r;
}

int rpc_conn_dispatch(RpcConn *c)
{
    bool gone;
    int r = dispatch_checked(c, &gone);
    if (!gone)
        conn_sync_loop(c);
    return gone ? RPC_E_CLOSED : r;
}

/* ---- loop attachment -------------------------------------------------------------------- */

uint32_t rpc_conn_events(const RpcConn *c)
{
    if (!c || c->state == CONN_CLOSED)
        return 0;
    uint32_t ev = EPOLLIN;
    if (!c->vc && (c->out_len || c->ready_head))
        ev |= EPOLLOUT;
    return ev;
}

static void conn_fd_cb(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    rpc_conn_dispatch(userdata);
}

static void conn_timer_cb(RpcLoopSource *src, void *userdata)
{
    rpc_conn_dispatch(userdata);
}

static void conn_sync_loop(RpcConn *c)
{
    if (!c->loop)
        return;
    if (c->state == CONN_CLOSED) {
        conn_detach_fd(c);
        rpc_loop_timer_set(c->timer_src, -1);
        return;
    }
    uint32_t ev = rpc_conn_events(c);
    if (c->fd_src && ev != c->loop_events) {
        rpc_loop_fd_set_events(c->fd_src, ev);
        c->loop_events = ev;
    }
    rpc_loop_timer_set(c->timer_src, rpc_conn_next_timeout_ms(c));
}

int rpc_conn_attach(RpcConn *c, RpcLoop *loop)
{
    int r;

    if (c->loop)
        return -EBUSY;
    if (c->state != CONN_CLOSED) {
        c->loop_events = rpc_conn_events(c);
        r = rpc_loop_add_fd(loop, rpc_conn_fd(c), c->loop_events, conn_fd_cb, c, &c->fd_src);
        if (r < 0)
            return r;
    }
    r = rpc_loop_add_timer(loop, -1, conn_timer_cb, c, &c->timer_src);
    if (r < 0) {
        conn_detach_fd(c);
        return r;
    }
    c->loop = loop;
    conn_sync_loop(c);
    return 0;
}

void rpc_conn_detach(RpcConn *c)
{
    if (!c)
        return;
    conn_detach_fd(c);
    c->timer_src = rpc_loop_source_free(c->timer_src);
    c->loop = NULL;
}

/* Called at the end of every API entry that may have queued output or work. */
static void api_done(RpcConn *c)
{
    flush_soft(c);
    reap_orphans(c);
    conn_sync_loop(c);
}

/* ---- connection lifetime ----------------------------------------------------------------- */

void rpc_conn_config_init(RpcConnConfig *cfg)
{
    *cfg = (RpcConnConfig){
        .role = RPC_ROLE_INITIATOR,
        .max_streams = 1024,
        .max_frame = RPC_FRAME_MAX_DEFAULT,
        /* 1 MiB: a relayed stream (caller -> agent -> dispatcher -> handler) needs about
         * window / round trip of credit in flight; 256 KiB capped one stream near 1 GB/s on
         * the sim. The connection window (16 MiB) still bounds what a peer can pin. */
        .stream_window = 1u << 20,
        .conn_window = 16u << 20,
        .max_tx_queue = (size_t)32 << 20,
        .keepalive_ms = 10000,
        .dead_peer_ms = 30000,
        .hello_timeout_ms = 10000,
        .features = RPC_FEATURES_V1,
    };
}

static int config_check(const RpcConnConfig *cfg)
{
    if (cfg->role != RPC_ROLE_INITIATOR && cfg->role != RPC_ROLE_ACCEPTOR)
        return -EINVAL;
    if (cfg->max_streams < 1 || cfg->max_streams > RPC_MAX_STREAMS_MAX)
        return -EINVAL;
    if (cfg->max_frame < RPC_FRAME_MAX_MIN || cfg->max_frame > RPC_FRAME_MAX_HARD)
        return -EINVAL;
    if (cfg->stream_window < RPC_STREAM_WINDOW_MIN || cfg->stream_window > RPC_STREAM_WINDOW_MAX)
        return -EINVAL;
    if (cfg->conn_window < cfg->stream_window || cfg->conn_window > RPC_WINDOW_MAX)
        return -EINVAL;
    if (cfg->max_tx_queue < 4096)
        return -EINVAL;
    return 0;
}

static int conn_new(RpcConn **connp, const RpcConnConfig *cfg, const RpcCallbacks *cb,
                    void *userdata)
{
    RpcConnConfig def;
    RpcConn *c;

    if (!cfg) {
        rpc_conn_config_init(&def);
        cfg = &def;
    }
    if (config_check(cfg) < 0)
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    if (cb)
        c->cb = *cb;
    c->userdata = userdata;
    c->fd = -1;
    snprintf(c->name, sizeof(c->name), "rpc");
    /* Room for several frames, so that the partial frame left at the end of a read is
     * moved to the front rarely (only when less than one frame of room is left). */
    c->rx_cap = 4 * ((size_t)cfg->max_frame + RPC_FRAME_HEADER_SIZE);
    if (c->rx_cap < ((size_t)1 << 20))
        c->rx_cap = (size_t)1 << 20;
    c->rx = malloc(c->rx_cap);
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->rx || !c->buckets) {
        free(c->rx);
        free(c->buckets);
        free(c);
        return -ENOMEM;
    }
    c->recv_remaining = cfg->conn_window;
    c->next_local_id = cfg->role == RPC_ROLE_INITIATOR ? 1 : 2;
    c->created_ms = c->last_rx_ms = now_ms();
    send_hello(c);
    *connp = c;
    return 0;
}

int rpc_conn_new_vchan(RpcConn **connp, Vchan *vc, bool own, const RpcConnConfig *cfg,
                       const RpcCallbacks *cb, void *userdata)
{
    RpcConn *c;
    int r;

    if (!vc)
        return -EINVAL;
    r = conn_new(&c, cfg, cb, userdata);
    if (r < 0) {
        if (own)
            vchan_free(vc);
        return r;
    }
    c->vc = vc;
    c->own = own;
    /* The peer may have written (its HELLO) before we mapped the ring, and the event it
     * sent then reached nobody: read the ring once at the first dispatch instead of
     * waiting for an event that will not come. */
    c->more_rx = true;
    flush_soft(c);
    *connp = c;
    return 0;
}

int rpc_conn_new_fd(RpcConn **connp, int fd, bool own, const RpcConnConfig *cfg,
                    const RpcCallbacks *cb, void *userdata)
{
    RpcConn *c;
    int type = 0, r;
    socklen_t tl = sizeof(type);

    if (fd < 0)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
        if (own)
            close(fd);
        return r;
    }
    r = conn_new(&c, cfg, cb, userdata);
    if (r < 0) {
        if (own)
            close(fd);
        return r;
    }
    c->fd = fd;
    c->own = own;
    c->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    flush_soft(c);
    *connp = c;
    return 0;
}

static void conn_really_free(RpcConn *c)
{
    rpc_conn_detach(c);
    c->busy++;
    for (RpcStream *s = c->all_head, *next; s; s = next) {
        next = s->all.next;
        if (!s->freed_cb) {
            if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && c->cb.on_reset &&
                c->state != CONN_CLOSED) {
                s->no_reset_cb = true;
                c->cb.on_reset(s, RPC_RESET_CONN_CLOSED, true, "connection freed",
                               c->userdata);
            }
            s->sm.done = true;
            s->sm.reset_sent = true; /* drop its queue: nothing more is sent */
            stream_finish(c, s);
        }
    }
    /* Orphans still draining. */
    while (c->all_head)
        stream_free_mem(c, c->all_head);
    if (c->vc && c->own)
        vchan_free(c->vc);
    if (c->fd >= 0 && c->own)
        close(c->fd);
    free(c->rx);
    free(c->out);
    free(c->buckets);
    free(c);
}

RpcConn *rpc_conn_free(RpcConn *c)
{
    if (!c)
        return NULL;
    if (c->busy > 0) {
        c->free_pending = true;
        /* Nothing more must reach the application. */
        c->cb = (RpcCallbacks){.on_stream_free = c->cb.on_stream_free};
        return NULL;
    }
    conn_really_free(c);
    return NULL;
}

void rpc_conn_freep(RpcConn **cp)
{
    if (*cp)
        *cp = rpc_conn_free(*cp);
}

int rpc_conn_close(RpcConn *c, const char *reason)
{
    char clean[RPC_REASON_MAX + 1];

    if (c->state == CONN_CLOSED)
        return RPC_E_CLOSED;
    rpc_sanitize_reason(clean, sizeof(clean), reason);
    c->busy++;
    conn_fail(c, RPC_E_LOCAL, "%s", clean);
    if (!conn_unbusy(c))
        conn_sync_loop(c);
    return 0;
}

void rpc_conn_set_name(RpcConn *c, const char *name)
{
    snprintf(c->name, sizeof(c->name), "%s", name ? name : "rpc");
}

const char *rpc_conn_name(const RpcConn *c)
{
    return c->name;
}

void rpc_conn_set_userdata(RpcConn *c, void *userdata)
{
    c->userdata = userdata;
}

void *rpc_conn_get_userdata(const RpcConn *c)
{
    return c->userdata;
}

int rpc_conn_fd(const RpcConn *c)
{
    return c->vc ? vchan_fd(c->vc) : c->fd;
}

bool rpc_conn_is_ready(const RpcConn *c)
{
    return c->state == CONN_READY;
}

bool rpc_conn_is_closed(const RpcConn *c)
{
    return c->state == CONN_CLOSED;
}

int rpc_conn_peer_info(const RpcConn *c, RpcPeerInfo *peerp)
{
    if (c->peer.version == 0)
        return -EAGAIN;
    *peerp = c->peer;
    return 0;
}

void rpc_conn_get_stats(const RpcConn *c, RpcConnStats *statsp)
{
    *statsp = c->stats;
    statsp->tx_queued = c->out_len + c->txq_total;
}

/* ---- stream API --------------------------------------------------------------------------- */

static bool stream_usable(const RpcStream *s)
{
    return s && !s->freed_cb && !s->orphan && s->conn->state != CONN_CLOSED;
}

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
        if (queue_call(c, s) < 0) {
            table_del(c, s);
            LIST_DEL(&c->all_head, s, all);
            c->local_live--;
            c->stats.streams_open--;
            free(s);
            return -ENOMEM;
        }
    } else {
        s->preopen = true;
    }
    api_done(c);
    *sp = s;
    return 0;
}

int rpc_stream_accept(RpcStream *s)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    int r = rpc_stream_sm_tx(&s->sm, RPC_SM_ACCEPT, RPC_CH_STDOUT);
    if (r < 0)
        return r;
    if (queue_frame(s->conn, RPC_FT_ACCEPT, 0, s->id, NULL, 0) < 0)
        return -ENOMEM;
    api_done(s->conn);
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
    if (queue_reason(c, RPC_FT_REFUSE, 0, s->id, exit_code, reason) < 0) {
        s->sm = save;
        return -ENOMEM;
    }
    s->no_reset_cb = true;
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->sm.done)
        stream_finish(c, s);
    api_done(c);
    return 0;
}

ssize_t rpc_stream_send_window(const RpcStream *s, RpcChannel ch)
{
    if (!stream_usable(s))
        return -ENOTCONN;
    RpcStreamSm copy = s->sm;
    int r = rpc_stream_sm_tx(&copy, RPC_SM_DATA, ch);
    if (r < 0)
        return r;
    const RpcConn *c = s->conn;
    if (s->preopen || c->state != CONN_READY)
        return 0;
    int64_t w = s->send_credit < c->send_credit ? s->send_credit : c->send_credit;
    size_t queued = c->out_len + c->txq_total;
    int64_t room = queued >= c->cfg.max_tx_queue ? 0 : (int64_t)(c->cfg.max_tx_queue - queued);
    if (room < w)
        w = room;
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
    bool direct = !c->out_len && !c->ready_head && !s->txq_head && !c->pending_err;

    /* Straight into the transport while nothing else waits: no copy. */
    if (direct) {
        while (done < take) {
            size_t n = frame_payload(c, take - done);
            uint8_t hdr[RPC_FRAME_HEADER_SIZE];
            RpcFrameHeader h = {.type = (uint8_t)rpc_frame_data_type(ch), .stream = s->id,
                                .length = (uint32_t)n};
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
    if (direct && done < take && take - done > c->peer.max_frame)
        take = done + c->peer.max_frame; /* queue at most one frame (see send_window) */
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
    /* A partial write armed no notification: try the rest now, so that -EAGAIN arms one. */
    if (c->out_len)
        flush_soft(c);
    conn_sync_loop(c);
    return (ssize_t)done;
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
    if (s->txq_head || s->preopen)
        r = tx_append_chunk(c, s, CHUNK_EOF, ch, NULL, 0);
    else
        r = queue_frame(c, (uint8_t)rpc_frame_data_type(ch), RPC_FLAG_EOF, s->id, NULL, 0);
    if (r < 0)
        return r;
    api_done(c);
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
    if (s->txq_head) {
        uint8_t frame[RPC_FRAME_HEADER_SIZE + RPC_REASON_MSG_MAX];
        int n = rpc_msg_encode_reason(RPC_FT_EXIT, exit_code, reason,
                                      frame + RPC_FRAME_HEADER_SIZE, RPC_REASON_MSG_MAX);
        RpcFrameHeader h = {.type = RPC_FT_EXIT, .stream = s->id, .length = (uint32_t)n};
        rpc_frame_header_encode(frame, &h);
        r = n < 0 ? n : tx_append_chunk(c, s, CHUNK_FRAME, RPC_CH_STDOUT, frame,
                                        RPC_FRAME_HEADER_SIZE + (size_t)n);
    } else {
        r = queue_reason(c, RPC_FT_EXIT, 0, s->id, exit_code, reason);
    }
    if (r < 0) {
        s->sm = save;
        return r;
    }
    s->no_reset_cb = true;
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->sm.done)
        stream_finish(c, s);
    api_done(c);
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
    LIST_DEL(&c->blocked_head, s, blocked);
    if (s->preopen) {
        /* The peer never heard of it. */
        s->sm.done = true;
        stream_finish(c, s);
        api_done(c);
        return 0;
    }
    s->paused = false;
    if (c->busy > 0)
        hold_drop(c, s);
    else {
        /* Credit for held bytes goes back now; no callbacks run from here. */
        c->busy++;
        hold_drop(c, s);
        c->busy--;
    }
    if (queue_reason(c, RPC_FT_RESET, 0, s->id, code, reason) < 0)
        return -ENOMEM;
    c->stats.resets_out++;
    api_done(c);
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
    hold_run(c, s);
    run_work(c);
    int r = flush_out(c);
    if (r < 0)
        conn_fail(c, r, "transport write failed: %s", strerror(-r));
    notify_writable(c);
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

void *rpc_stream_get_userdata(const RpcStream *s)
{
    return s->userdata;
}
