/* SPDX-License-Identifier: MIT */
/*
 * conn-internal.h - private to the conn-*.c files: the connection and stream structures,
 * their intrusive lists, and the functions the four parts of the connection call in one
 * another. Nothing here is part of the library's interface (rpc.h is).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "vchan/vchan.h"

#include "frame.h"
#include "log.h"
#include "loop.h"
#include "loop-internal.h"
#include "rpc.h"
#include "stream-sm.h"

/* Largest amount read from the transport in one dispatch before yielding to other work. */
#define RX_BUDGET ((size_t)8 << 20)
/* What each frame costs against RX_BUDGET on top of its bytes: at most 16 Ki frames per
 * dispatch. */
#define RX_FRAME_COST ((size_t)512)
/* Smallest data chunk allocation in a stream's send queue (small writes coalesce). */
#define TX_CHUNK_MIN ((size_t)16 << 10)
/* A stream frame up to this size is copied behind the output buffer at a flush (tx_gather),
 * and a write up to this size on a loop-attached connection waits for the pass's flush. */
#define TX_GATHER_FRAME_MAX ((size_t)16 << 10)
/* tx_gather stops once the output buffer holds this much. */
#define TX_GATHER_MAX ((size_t)64 << 10)

typedef enum ConnState {
    CONN_HELLO_WAIT = 0,
    CONN_READY,
    CONN_CLOSED,
    CONN__COUNT,
} ConnState;

/* Where a stream is in its life, as the connection keeps it (what the protocol allows on it
 * is stream-sm.c's business). It only moves forward:
 *
 *   PREOPEN -> OPEN                the peer's HELLO came: the CALL is queued
 *   PREOPEN, OPEN -> FINISHING     stream_finish() outside callback context (an API call)
 *   any but ORPHAN -> ORPHAN       stream_finish() in callback context: a dispatch (for a
 *                                  FINISHING stream, the next one), closing or freeing the
 *                                  connection; on_stream_free is called
 *   ORPHAN -> freed                its send queue drained, or the connection is freed
 *
 * PREOPEN, OPEN and FINISHING streams are in the id table and usable by the application;
 * an ORPHAN is neither: it only drains the frames it queued (data then EXIT, say). */
typedef enum StreamLife {
    STREAM_PREOPEN = 0, /* opened before the peer's HELLO: its CALL waits for it */
    STREAM_OPEN,
    STREAM_FINISHING, /* on the work list: stream_finish deferred to the next dispatch */
    STREAM_ORPHAN,
    STREAM__COUNT,
} StreamLife;

const char *stream_life_name(StreamLife life);

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
    const RpcStreamOps *ops; /* rpc_stream_set_ops(); NULL: the connection's callbacks */
    void *userdata;
    RpcStream *hnext; /* hash chain */
    Link all;         /* every stream of the connection, orphans included */
    Link ready;       /* has queued output */
    Link blocked;     /* a write came up short: wants on_writable */
    Link work;        /* resume_pending, or FINISHING */
    /* send side */
    TxChunk *txq_head, *txq_tail;
    size_t txq_data;  /* DATA bytes queued (credit already taken) */
    size_t txq_bytes; /* all bytes queued */
    int64_t send_credit;
    /* receive side */
    uint32_t recv_remaining;
    uint32_t recv_unreported;
    HoldItem *hold_head, *hold_tail;
    size_t hold_bytes;
    StreamLife life;
    /* The flags below are not lifetime: each is a latch or a request that any live state
     * may carry, and none of them decides what the stream may still do. */
    uint8_t eof_delivered; /* bit per channel: on_eof was called (deliver it once) */
    /* The application consumed less than it was given: hold what arrives until
     * rpc_stream_resume. Flow control chosen by the application, set and cleared in OPEN
     * any number of times. */
    bool paused;
    /* rpc_stream_resume was called inside a callback: run the hold queue at the next
     * dispatch (a reason to be on the work list, as FINISHING is another). */
    bool resume_pending;
    /* on_reset must not be called (any more): the application chose the stream's end
     * (refuse, exit, reset), or was told of it (on_exit, on_reset). A handler that sent
     * EXIT is still OPEN, draining stdin, with this set; it is a notification latch like
     * eof_delivered, not a step of the stream's life. */
    bool no_reset_cb;
    uint64_t notify_round;
    /* rpc_stream_accept() under accept_hold_ms: the ACCEPT frame is not queued yet; it goes
     * out before the stream's first other frame, or at accept_deadline_ms. */
    bool accept_held;
    int64_t accept_deadline_ms;
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
    const RpcTransportOps *tops; /* rpc_conn_new_stream(): the application's transport */
    void *tctx;
    ConnState state;
    RpcPeerInfo peer;
    /* receive buffer: [rx_pos, rx_fill) not yet parsed */
    uint8_t *rx;
    size_t rx_cap, rx_pos, rx_fill;
    bool more_rx;
    /* output bytes in transport order, [out_head, out_head + out_len) */
    uint8_t *out;
    size_t out_cap, out_head, out_len;
    size_t txq_total;    /* bytes in all stream queues */
    /* vchan: the ring's free space when last looked (tx_room_refresh, at a dispatch), less
     * what we wrote since. An idle connection's send window is bounded by it. It is not
     * re-read between two API calls, so that a window rpc_stream_send_window() reported
     * (0 included) holds for the rpc_stream_write() that follows. */
    size_t tx_room;
    int64_t send_credit; /* connection window granted by the peer */
    uint32_t recv_remaining, recv_unreported;
    /* streams */
    RpcStream **buckets;
    size_t nbuckets;
    uint32_t nstreams; /* in the table */
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
    /* rpc_conn_ping(): the PING it sent, when (us), and whom to tell of its PONG */
    uint64_t uping_seq;
    int64_t uping_sent_us;
    RpcPongFn on_pong;
    void *pong_ud;
    /* deferred things */
    int busy;
    bool free_pending;
    int pending_err;
    bool writable_check;
    bool reap; /* orphans may be ready to free */
    uint64_t notify_round;
    /* loop */
    RpcLoop *loop;
    RpcLoopSource *fd_src, *timer_src;
    /* vchan only: before the loop sleeps, ask for the peer's next write to fire the fd
     * (reads find data with checks that arm nothing: rpc_conn_prepare_wait) */
    RpcLoopSource *prepare_src;
    /* vchan only: an event may be pending on its fd (we asked the peer for one since the
     * last vchan_dispatch(), or the loop saw the fd fire). Without it a dispatch skips
     * vchan_dispatch(), a system call that would find nothing. */
    bool vc_event;
    /* vchan only: the loop reported the fd readable, and no dispatch took an event since the
     * poll that said so, so taking one cannot block: vchan_dispatch_ready(), one system call
     * instead of vchan_dispatch()'s poll-guarded ones */
    bool vc_fired;
    /* vchan only: rpc_loop_poll_count() when a dispatch last took events (0: never). A fd
     * callback of the same poll may carry a report that this dispatch made stale. */
    uint64_t vc_taken_poll;
    /* Attached to a loop, output is written once per loop pass: what the application and the
     * dispatches of one pass queue goes out together from this deferred source, at the start
     * of the next iteration (conn_want_flush). */
    RpcLoopSource *flush_src;
    bool flushing;     /* inside the deferred flush: conn_want_flush writes at once */
    bool flush_queued; /* the deferred flush is scheduled */
    unsigned corked;   /* rpc_conn_cork() depth: API calls queue output without writing it */
    bool gathering;    /* tx_gather: "transport writes" append to the output buffer */
    uint32_t loop_events;
    /* streams with a held ACCEPT, and a deadline no later than the earliest of theirs */
    uint32_t accepts_held;
    int64_t accept_deadline_ms;
    RpcConnStats stats;
};

/* The callback @name for an event of stream @s, and the userdata it gets: the stream's own
 * ops (rpc_stream_set_ops) with the stream's userdata, else the connection's callbacks with
 * the connection's userdata. May be NULL (the event's default). Once rpc_conn_free() is
 * pending only on_stream_free (STREAM_FREE_CB) reaches the application, as rpc_conn_free()
 * does for the connection's callbacks. */
#define STREAM_CB(c, s, name) \
    ((s)->ops ? ((c)->free_pending ? NULL : (s)->ops->name) : (c)->cb.name)
#define STREAM_FREE_CB(c, s) ((s)->ops ? (s)->ops->on_stream_free : (c)->cb.on_stream_free)
#define STREAM_UD(c, s) ((s)->ops ? (s)->userdata : (c)->userdata)

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- lists ------------------------------------------------------------------------------ */

#define LIST_ADD(headp, s, field)             \
    do {                                      \
        if (!(s)->field.on) {                 \
            (s)->field.on = true;             \
            (s)->field.prev = NULL;           \
            (s)->field.next = *(headp);       \
            if (*(headp))                     \
                (*(headp))->field.prev = (s); \
            *(headp) = (s);                   \
        }                                     \
    } while (0)

#define LIST_DEL(headp, s, field)                              \
    do {                                                       \
        if ((s)->field.on) {                                   \
            if ((s)->field.prev)                               \
                (s)->field.prev->field.next = (s)->field.next; \
            else                                               \
                *(headp) = (s)->field.next;                    \
            if ((s)->field.next)                               \
                (s)->field.next->field.prev = (s)->field.prev; \
            (s)->field.on = false;                             \
            (s)->field.prev = (s)->field.next = NULL;          \
        }                                                      \
    } while (0)

/* The ready list is a FIFO (round robin): append at the tail. */
static inline void ready_add(RpcConn *c, RpcStream *s)
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

static inline void ready_del(RpcConn *c, RpcStream *s)
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

static inline size_t bucket_of(const RpcConn *c, uint32_t id)
{
    return (size_t)((id * 2654435761u) & (uint32_t)(c->nbuckets - 1));
}

static inline RpcStream *stream_table_find(const RpcConn *c, uint32_t id)
{
    for (RpcStream *s = c->buckets[bucket_of(c, id)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

/* The application may still act on @s (not finished for it, connection not closed). */
static inline bool stream_usable(const RpcStream *s)
{
    return s && s->life != STREAM_ORPHAN && s->conn->state != CONN_CLOSED;
}

/* ---- conn.c: connection state machine, dispatch, loop, lifetime ---- */

/* Close the connection: log once, GOAWAY if it is our decision, on_close, then every stream
 * goes. Callbacks run: callers are in callback context (busy > 0). */
void conn_fail(RpcConn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The peer's HELLO (untrusted, @len bytes): hello-wait -> ready, or conn_fail. */
void conn_handle_hello(RpcConn *c, const uint8_t *untrusted_p, size_t len);
/* Deferred per-stream work: FINISHING streams finish, resume_pending ones run their hold. */
void conn_run_work(RpcConn *c);
/* on_writable for blocked streams that have send window again. */
void conn_notify_writable(RpcConn *c);
/* Leave callback context (busy--); runs a deferred free. Returns true if @c is gone. */
bool conn_unbusy(RpcConn *c);
/* Tell the attached loop which events and timeout the connection now needs. */
void conn_sync_loop(RpcConn *c);
/* End of an API entry that may have queued output: flush, reap orphans, sync the loop. */
void conn_api_done(RpcConn *c);
/* Output was queued: attached to a loop, write it at the end of this loop pass (together
 * with whatever else the pass queues); otherwise write it now (tx_flush_soft). */
void conn_want_flush(RpcConn *c);
/* Whether the output should wait for the end of the loop pass (see conn_want_flush). */
bool conn_flush_deferred(const RpcConn *c);

/* ---- conn-send.c: output buffer, stream send queues, credit, write path ---- */

/* Queue a whole frame in the output buffer, behind what is there. 0 or -ENOMEM. */
int tx_queue_frame(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                   size_t len);
/* The same for a frame the peer provoked, bounded by max_tx_queue: over it, or out of
 * memory, the connection fails (-ENOBUFS, -ENOMEM). */
int tx_queue_reply(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                   size_t len);
/* Queue a GOAWAY, RESET, REFUSE or EXIT with its code and reason. 0 or -errno. */
int tx_queue_reason(RpcConn *c, uint8_t type, uint8_t flags, uint32_t stream, int64_t code,
                    const char *reason);
void tx_queue_hello(RpcConn *c);
int tx_queue_call(RpcConn *c, RpcStream *s);
/* The application consumed @n received bytes (of @s): WINDOW_UPDATEs go out in batches. */
void conn_credit(RpcConn *c, size_t n);
void stream_credit(RpcConn *c, RpcStream *s, size_t n);
void txq_drop(RpcConn *c, RpcStream *s);
/* Append to @s's send queue (CHUNK_DATA coalesces) and make it ready. 0 or -ENOMEM. */
int tx_append_chunk(RpcConn *c, RpcStream *s, uint8_t kind, RpcChannel ch, const void *p, size_t n);
/* Write the output buffer, then one frame per ready stream in turn. 0 (done or the
 * transport is full) or the transport's -errno. */
int tx_flush(RpcConn *c);
/* The application's transport still holds bytes writev took (RpcTransportOps.wpending). */
bool conn_transport_holds(const RpcConn *c);
/* tx_flush from an API call: a failure is kept in pending_err for the next dispatch. */
void tx_flush_soft(RpcConn *c);
/* Re-read the vchan's free space (tx_room); sets writable_check if blocked streams may now
 * have a window. Only where the application is not between send_window and write. */
void tx_room_refresh(RpcConn *c);
/* Streams blocked on ring space (idle output, little tx_room): has the reader freed room
 * for them since the last refresh (true: dispatch)? With @arm, right before a sleep, the
 * vchan notification is armed first, so that the reader's next read wakes us. Never armed on
 * the busy path: each arming is a locked write to the ring's shared page, and it makes the
 * reader send an event (a system call on each side) while we are awake anyway. */
bool tx_room_wait(RpcConn *c, bool arm);

/* ---- conn-recv.c: reading, frame validation and handling, delivery ---- */

/* Drop what @s holds for the application; its bytes are credited back to the peer. */
void rx_hold_drop(RpcConn *c, RpcStream *s);
/* Deliver what @s holds until the application pauses again or nothing is left. */
void rx_hold_run(RpcConn *c, RpcStream *s);
/* Read and handle frames within the per-dispatch budget (more_rx if it ran out). */
void rx_pump(RpcConn *c);

/* ---- conn-stream.c: stream table, stream lifetime, stream API ---- */

/* A new OPEN stream in the table, or NULL (out of memory). */
RpcStream *stream_new(RpcConn *c, uint32_t id, bool caller);
/* The stream is over for the application: -> FINISHING, or -> ORPHAN in callback context. */
void stream_finish(RpcConn *c, RpcStream *s);
/* Reset @s ourselves (a peer's window overrun, or our failure): on_reset, RESET out. */
void stream_reset_local(RpcConn *c, RpcStream *s, uint32_t code, const char *reason);
/* Free the ORPHANs whose queues drained (outside callback context only). */
void stream_reap_orphans(RpcConn *c);
void stream_free_mem(RpcConn *c, RpcStream *s);
/* A held ACCEPT of @s goes into the output buffer now (before the frame the caller is about
 * to queue). No-op if none is held. 0 or -ENOMEM. */
int stream_accept_release(RpcConn *c, RpcStream *s);
/* The stream ends without its held ACCEPT (reset, finished, freed). */
void stream_accept_drop(RpcConn *c, RpcStream *s);
/* Release the held ACCEPTs whose deadline has passed (all of them if @all). */
void conn_release_accepts(RpcConn *c, bool all);
