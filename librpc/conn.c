/* SPDX-License-Identifier: MIT */
/*
 * conn.c - one vrpc connection over a vchan or a stream socket: the connection state
 * machine (HELLO wait, ready, closed) with the HELLO exchange and the failure path that
 * closes it, keepalive timers, dispatch (read, deferred work, write, on_writable, within a
 * budget), attachment to an RpcLoop, and the connection's lifetime with its deferred-free
 * discipline (nothing is freed under a callback's stack frame). Sending is in conn-send.c,
 * receiving in conn-recv.c, streams in conn-stream.c; conn-internal.h holds what they share.
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
#include <unistd.h>

#include "conn-internal.h"

static const char *const conn_state_names[CONN__COUNT] = {
    [CONN_HELLO_WAIT] = "hello-wait",
    [CONN_READY] = "ready",
    [CONN_CLOSED] = "closed",
};

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

static void conn_detach_fd(RpcConn *c)
{
    c->fd_src = rpc_loop_source_free(c->fd_src);
    c->prepare_src = rpc_loop_source_free(c->prepare_src);
}

/* Close the connection: log once, GOAWAY when it is our decision, on_close, then reset
 * every stream. Callbacks may run: callers are inside a dispatch or an API call that is
 * documented to call back (busy > 0). */
void conn_fail(RpcConn *c, int err, const char *fmt, ...)
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
    if (err == RPC_E_PROTO || err == RPC_E_VERSION || err == RPC_E_TIMEOUT || err == RPC_E_LOCAL ||
        err == RPC_E_QUOTA) {
        /* Best effort: one try, no waiting. */
        if (tx_queue_reason(c, RPC_FT_GOAWAY, 0, 0, err, reason) == 0)
            tx_flush(c);
    }
    conn_detach_fd(c);
    c->busy++;
    if (c->cb.on_close)
        c->cb.on_close(c, err, reason, c->userdata);
    /* Every stream goes: a snapshot walk, since callbacks may reset others. */
    for (RpcStream *s = c->all_head, *next; s; s = next) {
        next = s->all.next;
        if (s->life == STREAM_ORPHAN)
            continue;
        if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && STREAM_CB(c, s, on_reset)) {
            s->no_reset_cb = true;
            STREAM_CB(c, s, on_reset)(s, RPC_RESET_CONN_CLOSED, true, reason, STREAM_UD(c, s));
        }
        s->sm.done = true;
        stream_finish(c, s);
    }
    c->busy--;
}

/* ---- HELLO: hello-wait -> ready -------------------------------------------------------- */

void conn_handle_hello(RpcConn *c, const uint8_t *untrusted_p, size_t len)
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
        if (s->life == STREAM_FINISHING) {
            /* In HELLO_WAIT every stream was opened PREOPEN: this one the application
             * reset before the HELLO. Its deferred finish happens here, ahead of on_ready,
             * like that of a PREOPEN stream whose RESET is pending (below). */
            stream_finish(c, s);
            continue;
        }
        if (s->life != STREAM_PREOPEN)
            continue;
        s->life = STREAM_OPEN;
        s->send_credit = m.stream_window;
        if (s->sm.reset_sent) {
            s->sm.done = true;
            stream_finish(c, s);
            continue;
        }
        if (sent >= m.max_streams) {
            s->sm.reset_sent = true;
            txq_drop(c, s);
            if (!s->no_reset_cb && STREAM_CB(c, s, on_reset)) {
                s->no_reset_cb = true;
                STREAM_CB(c, s, on_reset)
                (s, RPC_RESET_REFUSED_STREAM, true, "over the peer's concurrent-stream quota",
                 STREAM_UD(c, s));
            }
            s->sm.done = true;
            stream_finish(c, s);
            continue;
        }
        sent++;
        if (tx_queue_call(c, s) < 0) {
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

/* ---- timers ------------------------------------------------------------------------------ */

static void run_timers(RpcConn *c)
{
    /* Every dispatch comes here: read the clock only for a deadline there is. */
    if (!c->accepts_held && !(c->state == CONN_HELLO_WAIT && c->cfg.hello_timeout_ms) &&
        !(c->state == CONN_READY && c->cfg.keepalive_ms))
        return;
    int64_t now = now_ms();

    if (c->accepts_held && now >= c->accept_deadline_ms)
        conn_release_accepts(c, false);

    if (c->state == CONN_HELLO_WAIT && c->cfg.hello_timeout_ms &&
        now - c->created_ms >= c->cfg.hello_timeout_ms) {
        conn_fail(c, RPC_E_TIMEOUT, "no HELLO from the peer within %u ms", c->cfg.hello_timeout_ms);
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
        if (tx_queue_reply(c, RPC_FT_PING, 0, 0, p, sizeof(p)) == 0) {
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
    if (c->tops && c->tops->pending && c->tops->pending(c->tctx) > 0)
        return 0; /* bytes inside the transport that polling the fd cannot see */
    int64_t when = INT64_MAX;
    if (c->state == CONN_HELLO_WAIT && c->cfg.hello_timeout_ms)
        when = c->created_ms + c->cfg.hello_timeout_ms;
    if (c->state == CONN_READY && c->cfg.keepalive_ms) {
        int64_t t = c->ping_outstanding ? c->ping_sent_ms + c->cfg.dead_peer_ms
                                        : c->last_rx_ms + c->cfg.keepalive_ms;
        if (t < when)
            when = t;
    }
    if (c->accepts_held && c->accept_deadline_ms < when)
        when = c->accept_deadline_ms;
    if (when == INT64_MAX)
        return -1;
    int64_t now = now_ms();
    if (when <= now)
        return 0;
    return when - now > INT_MAX ? INT_MAX : (int)(when - now);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void conn_notify_writable(RpcConn *c)
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
        if (STREAM_CB(c, s, on_writable))
            STREAM_CB(c, s, on_writable)(s, STREAM_UD(c, s));
        s = c->blocked_head;
    }
}

void conn_run_work(RpcConn *c)
{
    while (c->work_head && c->state != CONN_CLOSED) {
        RpcStream *s = c->work_head;
        LIST_DEL(&c->work_head, s, work);
        if (s->life == STREAM_FINISHING) {
            stream_finish(c, s);
            continue;
        }
        if (s->resume_pending) {
            s->resume_pending = false;
            rx_hold_run(c, s);
        }
    }
    while (c->work_head) { /* closed: only finishes remain meaningful */
        RpcStream *s = c->work_head;
        LIST_DEL(&c->work_head, s, work);
        if (s->life == STREAM_FINISHING)
            stream_finish(c, s);
    }
}

static void conn_really_free(RpcConn *c);

/* Leave callback context: deferred free happens here. Returns true if @c is gone. */
bool conn_unbusy(RpcConn *c)
{
    if (--c->busy > 0)
        return false;
    if (c->free_pending) {
        conn_really_free(c);
        return true;
    }
    stream_reap_orphans(c);
    return false;
}

/* @timer: the loop's timer runs this dispatch (deferred stream work, timeouts), not a poll of
 * the fd: a socket's input is then left to the fd callback, which a level-triggered poll
 * calls while there is any, instead of a read(2) that would find nothing. */
static int dispatch_inner(RpcConn *c, bool timer)
{
    bool skip_read = timer && !c->vc && !c->tops;

    if (c->state == CONN_CLOSED)
        return RPC_E_CLOSED;
    if (c->pending_err) {
        conn_fail(c, c->pending_err, "transport write failed: %s", strerror(-c->pending_err));
        return RPC_E_CLOSED;
    }
    if (c->vc) {
        if (c->vc_fired || c->vc_event) {
            bool ready = c->vc_fired;
            c->vc_fired = c->vc_event = false;
            if (c->loop)
                c->vc_taken_poll = rpc_loop_poll_count(c->loop);
            if (ready)
                vchan_dispatch_ready(c->vc);
            else
                vchan_dispatch(c->vc);
        }
        VchanState vs = vchan_is_open(c->vc);
        if (vs == VCHAN_STATE_BROKEN) {
            conn_fail(c, RPC_E_PROTO, "vchan broken by the peer");
            return RPC_E_CLOSED;
        }
        tx_room_refresh(c);
    }
    /* Output left over because the transport was full (its space may be why we run). What
     * this loop pass queued waits for the pass's deferred flush instead, to go out in one
     * write with the rest. */
    int r = c->flush_queued ? 0 : tx_flush(c);
    if (r < 0) {
        conn_fail(c, r, "transport write failed: %s", strerror(-r));
        return RPC_E_CLOSED;
    }
    for (int round = 0; round < 4 && c->state != CONN_CLOSED; round++) {
        if (!skip_read || c->more_rx)
            rx_pump(c);
        conn_run_work(c);
        if (c->state == CONN_CLOSED)
            break;
        run_timers(c);
        if (c->state == CONN_CLOSED)
            break;
        if (conn_flush_deferred(c)) {
            if (c->out_len || c->ready_head)
                conn_want_flush(c);
            r = 0;
        } else {
            r = tx_flush(c);
        }
        if (r < 0) {
            conn_fail(c, r, "transport write failed: %s", strerror(-r));
            break;
        }
        tx_room_refresh(c);
        conn_notify_writable(c);
        if (!c->work_head && !c->writable_check)
            break;
    }
    return c->state == CONN_CLOSED ? RPC_E_CLOSED : 0;
}

/* Returns the dispatch result; *@gonep tells whether @c was freed meanwhile. */
static int dispatch_checked(RpcConn *c, bool timer, bool *gonep)
{
    c->busy++;
    int r = dispatch_inner(c, timer);
    *gonep = conn_unbusy(c);
    return r;
}

static int conn_dispatch(RpcConn *c, bool timer)
{
    bool gone;
    int r = dispatch_checked(c, timer, &gone);
    if (!gone)
        conn_sync_loop(c);
    return gone ? RPC_E_CLOSED : r;
}

int rpc_conn_dispatch(RpcConn *c)
{
    return conn_dispatch(c, false);
}

/* ---- loop attachment -------------------------------------------------------------------- */

uint32_t rpc_conn_events(const RpcConn *c)
{
    if (!c || c->state == CONN_CLOSED)
        return 0;
    uint32_t ev = EPOLLIN;
    /* (Output waiting for the deferred flush needs no EPOLLOUT: the flush runs first.) */
    if (!c->vc && !c->flush_queued && (c->out_len || c->ready_head || conn_transport_holds(c)))
        ev |= EPOLLOUT;
    return ev;
}

int rpc_conn_prepare_wait(RpcConn *c)
{
    if (!c || c->state == CONN_CLOSED || !c->vc)
        return 0;
    /* Input that was not read (a dispatch stops at its budget) or that came since. */
    if (c->more_rx)
        return 1;
    if (tx_room_wait(c, true))
        return 1; /* blocked streams have ring space after all */
    c->vc_event = true;
    return vchan_data_ready_notify(c->vc) != 0 ? 1 : 0; /* < 0: broken, dispatch says so */
}

/* Before the loop sleeps, arm; while it is busy (deferred work, other fds), look at the
 * ring without arming: data the peer wrote sends no event, so no fd would report it. */
static int conn_prepare_cb(RpcLoopSource *src, bool will_sleep, void *userdata)
{
    RpcConn *c = userdata;
    int work;

    (void)src;
    if (will_sleep)
        work = rpc_conn_prepare_wait(c);
    else
        work = c->state != CONN_CLOSED &&
               (c->more_rx || vchan_data_ready(c->vc) != 0 || tx_room_wait(c, false));
    if (!work)
        return 0;
    rpc_conn_dispatch(c);
    return 1;
}

static void conn_fd_cb(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    RpcConn *c = userdata;

    c->vc_event = true;
    /* Unless a dispatch since this poll took events: the report may be stale, and taking an
     * event that is not there would block on the event channel. */
    c->vc_fired = c->vc && (events & EPOLLIN) && c->vc_taken_poll != rpc_loop_poll_count(c->loop);
    rpc_conn_dispatch(c);
}

static void conn_timer_cb(RpcLoopSource *src, void *userdata)
{
    conn_dispatch(userdata, true);
}

/* The end of a loop pass (the start of the next iteration): write what the pass queued, in
 * as few transport writes as it takes (tx_flush gathers small frames), then tell the streams
 * that can write again. What their on_writable callbacks write goes out at once. */
static void conn_flush_cb(RpcLoopSource *src, void *userdata)
{
    RpcConn *c = userdata;
    int r;

    (void)src;
    c->flush_queued = false;
    if (c->state == CONN_CLOSED)
        return;
    c->busy++;
    c->flushing = true;
    r = c->pending_err ? c->pending_err : tx_flush(c);
    if (r < 0)
        conn_fail(c, r, "transport write failed: %s", strerror(-r));
    else
        conn_notify_writable(c);
    c->flushing = false;
    if (!conn_unbusy(c))
        conn_sync_loop(c);
}

void conn_sync_loop(RpcConn *c)
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
        if (r == 0 && c->vc)
            r = rpc_loop_add_prepare(loop, conn_prepare_cb, c, &c->prepare_src);
        if (r < 0) {
            conn_detach_fd(c);
            return r;
        }
    }
    r = rpc_loop_add_timer(loop, -1, conn_timer_cb, c, &c->timer_src);
    if (r < 0) {
        conn_detach_fd(c);
        return r;
    }
    r = rpc_loop_add_defer(loop, conn_flush_cb, c, &c->flush_src);
    if (r < 0) {
        conn_detach_fd(c);
        c->timer_src = rpc_loop_source_free(c->timer_src);
        return r;
    }
    c->flush_queued = true; /* add_defer schedules it once: it writes the HELLO */
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
    c->flush_src = rpc_loop_source_free(c->flush_src);
    c->loop = NULL;
    /* Without a loop nothing would write what this pass queued, nor release held ACCEPTs:
     * both go now (best effort: the transport takes what it can). */
    if (c->state != CONN_CLOSED) {
        conn_release_accepts(c, true);
        c->flush_queued = false;
        tx_flush_soft(c);
    }
}

bool conn_flush_deferred(const RpcConn *c)
{
    return c->flush_src && !c->flushing;
}

void conn_want_flush(RpcConn *c)
{
    if (c->corked)
        return; /* rpc_conn_uncork() flushes */
    if (!conn_flush_deferred(c)) {
        tx_flush_soft(c);
        return;
    }
    if (!c->flush_queued && rpc_loop_defer_again(c->flush_src) == 0)
        c->flush_queued = true;
}

void rpc_conn_cork(RpcConn *c)
{
    if (c)
        c->corked++;
}

void rpc_conn_uncork(RpcConn *c)
{
    if (!c || !c->corked || --c->corked)
        return;
    conn_want_flush(c);
    conn_sync_loop(c);
}

/* Called at the end of every API entry that may have queued output or work. */
void conn_api_done(RpcConn *c)
{
    conn_want_flush(c);
    stream_reap_orphans(c);
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
    if (cfg->accept_hold_ms > RPC_ACCEPT_HOLD_MAX_MS)
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
    tx_queue_hello(c);
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
    c->vc_event = true; /* the connect event, or one its previous user asked for */
    c->own = own;
    /* The peer may have written (its HELLO) before we mapped the ring, and the event it
     * sent then reached nobody: read the ring once at the first dispatch instead of
     * waiting for an event that will not come. */
    c->more_rx = true;
    tx_flush_soft(c);
    tx_room_refresh(c);
    *connp = c;
    return 0;
}

/* A Unix stream socket's send buffer (about 208 KiB by default) held less than one stream
 * window, so a streaming peer woke for every ~180 KiB. Enlarged to UNIX_SNDBUF, bytes that
 * the windows let through already wait in the kernel instead of in our send queue, and each
 * side moves about half a MiB per wake-up (issue 13). Best effort: SO_SNDBUFFORCE needs
 * CAP_NET_ADMIN; SO_SNDBUF is capped by net.core.wmem_max (often the default itself). The
 * windows, not this buffer, bound what a peer can make us hold. Other sockets (TCP tunes
 * its own buffers) are left alone. */
#define UNIX_SNDBUF (1 << 20)

/* @type: the socket's SO_TYPE, already asked. */
static void unix_sndbuf_enlarge(int fd, int type)
{
    int domain = 0, size = UNIX_SNDBUF;
    socklen_t dl = sizeof(domain);

    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0 ||
        domain != AF_UNIX)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

int rpc_conn_new_fd(RpcConn **connp, int fd, bool own, const RpcConnConfig *cfg,
                    const RpcCallbacks *cb, void *userdata)
{
    RpcConn *c;
    int type = 0, r;
    socklen_t tl = sizeof(type);

    if (fd < 0)
        return -EINVAL;
    /* (an fd from accept4(SOCK_NONBLOCK) needs no second system call) */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
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
    if (c->is_socket)
        unix_sndbuf_enlarge(fd, type);
    tx_flush_soft(c);
    *connp = c;
    return 0;
}

int rpc_conn_new_stream(RpcConn **connp, int fd, const RpcTransportOps *ops, void *ctx,
                        const RpcConnConfig *cfg, const RpcCallbacks *cb, void *userdata)
{
    RpcConn *c;
    int r;

    if (fd < 0 || !ops || !ops->read || !ops->writev) {
        r = -EINVAL;
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
        goto fail;
    }
    r = conn_new(&c, cfg, cb, userdata);
    if (r < 0)
        goto fail;
    c->fd = fd;
    c->own = false; /* the transport's free releases @fd */
    c->tops = ops;
    c->tctx = ctx;
    /* The transport may hold bytes already (read along with its handshake). */
    c->more_rx = true;
    tx_flush_soft(c);
    *connp = c;
    return 0;
fail:
    if (ops && ops->free)
        ops->free(ctx);
    return r;
}

int rpc_conn_ping(RpcConn *c, RpcPongFn on_pong, void *userdata)
{
    uint8_t p[RPC_PING_SIZE];

    if (c->state != CONN_READY)
        return -ENOTCONN;
    if (c->uping_seq)
        return -EBUSY;
    /* Its own sequence space (top bit set), apart from the keepalive's. */
    uint64_t seq = ((uint64_t)1 << 63) | ++c->ping_seq;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(seq >> (8 * i));
    /* Not tx_queue_reply: that fails the connection, and no callback may run here. */
    int r = tx_queue_frame(c, RPC_FT_PING, 0, 0, p, sizeof(p));
    if (r < 0)
        return r;
    c->uping_seq = seq;
    c->uping_sent_us = now_us();
    c->on_pong = on_pong;
    c->pong_ud = userdata;
    c->stats.pings_out++;
    conn_api_done(c);
    return 0;
}

static void conn_really_free(RpcConn *c)
{
    rpc_conn_detach(c);
    c->busy++;
    for (RpcStream *s = c->all_head, *next; s; s = next) {
        next = s->all.next;
        if (s->life != STREAM_ORPHAN) {
            if (!s->no_reset_cb && !rpc_stream_sm_completed(&s->sm) && STREAM_CB(c, s, on_reset) &&
                c->state != CONN_CLOSED) {
                s->no_reset_cb = true;
                STREAM_CB(c, s, on_reset)
                (s, RPC_RESET_CONN_CLOSED, true, "connection freed", STREAM_UD(c, s));
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
    if (c->tops && c->tops->free)
        c->tops->free(c->tctx);
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
