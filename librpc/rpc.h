/* SPDX-License-Identifier: MIT */
/*
 * rpc.h - the one public header of librpc: vrpc's framed, multiplexed message layer.
 *
 * An RpcConn speaks the vrpc wire protocol (docs/protocol.md) over one byte-stream transport:
 * a vchan (vchan/vchan.h) or a connected Unix stream socket. Each end has a role (INITIATOR or
 * ACCEPTOR) that only decides stream-id parity, so both ends may open streams at once. One
 * stream is one call: the end that opens it (with a CALL) is the CALLER and may send only
 * stdin; the other end is the HANDLER and may send only stdout, stderr and exactly one exit
 * status (QSB-087: direction is checked on every frame). Every direction half-closes on its
 * own. Flow control is per stream and per connection with credit windows; the application
 * returns credit by consuming delivered bytes, so backpressure reaches its fds and crosses
 * relays. Quotas, lengths, names and states are validated; a violation by the peer closes
 * only that connection (or resets only that stream), with a logged reason.
 *
 * Everything is non-blocking. Either drive a connection yourself (call
 * rpc_conn_prepare_wait() before each sleep, poll rpc_conn_fd() for rpc_conn_events(), call
 * rpc_conn_dispatch() when it fires or when rpc_conn_next_timeout_ms() expires) or attach it
 * to an RpcLoop (librpc/loop.h) with rpc_conn_attach(), which does that.
 *
 * Callbacks run only from rpc_conn_dispatch(), rpc_stream_resume() called outside a dispatch,
 * rpc_conn_close() and rpc_conn_free(); never from the other calls (a transport failure met
 * while writing is reported by the next dispatch), with one exception: on_stream_free may
 * run from inside rpc_stream_exit(), rpc_stream_refuse() and rpc_stream_reset() when that
 * call completes the stream (the caller's stdin EOF had already arrived), so mark the call
 * finished BEFORE calling them. Inside a callback every API call is
 * allowed, including rpc_conn_free() of that very connection (the free is deferred until the
 * dispatch unwinds) and calls on other connections.
 *
 * Threading: an RpcConn and its streams are not thread-safe; serialise all calls on one
 * connection. Distinct connections are independent.
 *
 * Return conventions: negative values are -errno (local/system failures or API misuse);
 * positive RPC_E_* codes are protocol outcomes the caller must handle.
 *
 * Changelog of this interface:
 *   v1 (vrpc 0.1): initial API (wire protocol version 1).
 *   v1.1: rpc_conn_prepare_wait() (required before sleeping on a vchan connection's fd).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/names.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RPC_EXPORT __attribute__((visibility("default")))
#else
#define RPC_EXPORT
#endif

/* ---- wire constants (see docs/protocol.md) ---------------------------------------------- */

/* Protocol versions this library speaks (negotiated: highest common one). */
#define RPC_PROTO_VERSION_MIN 1u
#define RPC_PROTO_VERSION_MAX 1u

/* Frame header size in bytes (little-endian: u8 type, u8 flags, u16 reserved, u32 stream id,
 * u32 payload length). */
#define RPC_FRAME_HEADER_SIZE 12u
/* Hard upper bound on any frame payload, whatever is negotiated; checked before any
 * allocation. */
#define RPC_FRAME_MAX_HARD ((uint32_t)1 << 20)
/* Smallest max-frame an end may announce (every control message fits in it). */
#define RPC_FRAME_MAX_MIN 4096u
/* Default max-frame announced in HELLO. */
#define RPC_FRAME_MAX_DEFAULT ((uint32_t)64 << 10)
/* The max-frame that the ends of a local Unix socket (a caller and its agent or the
 * dispatcher) announce: one sendmsg and one read per 256 KiB of a stream instead of per
 * 64 KiB (issue 13), with the receive buffer still 1 MiB. Not over a vchan: 256 KiB frames
 * in a 1 MiB ring cut librpc's vchan throughput (vrpc-bench rpc-mux) to a third. */
#define RPC_FRAME_MAX_LOCAL ((uint32_t)256 << 10)

/* Field limits, in bytes (all checked on send and on receive). */
/* The name limits are the ones of common/names.h (VRPC_NAME_MAX, VRPC_USER_MAX). */
#define RPC_SERVICE_MAX ((unsigned)VRPC_NAME_MAX) /* service name */
#define RPC_ARG_MAX ((unsigned)VRPC_NAME_MAX)     /* argument */
#define RPC_DOMAIN_MAX ((unsigned)VRPC_NAME_MAX)  /* target and source */
#define RPC_USER_MAX ((unsigned)VRPC_USER_MAX)    /* user */
#define RPC_REASON_MAX 256u                       /* reasons: printable ASCII 0x20..0x7e, {0,256} */

/* Feature bits for HELLO. Version 1 started with none (RPC_FEATURES_V1); unknown bits are
 * ignored and the negotiated set is the AND of both ends' bits. */
#define RPC_FEATURES_V1 0u
/* The end can use direct guest<->guest channels (docs/protocol.md, "Direct channels"): an
 * agent announces it unless started with --no-direct, the dispatcher when direct channels
 * are enabled; librpc itself only carries the bit. */
#define RPC_FEATURE_DIRECT 0x1u

/* ---- outcome codes ----------------------------------------------------------------------- */

enum {
    RPC_E_CLOSED = 1,  /* the connection is closed (on_close has been called) */
    RPC_E_PROTO = 2,   /* the peer violated the protocol */
    RPC_E_VERSION = 3, /* no protocol version in common, or the peer refused ours */
    RPC_E_TIMEOUT = 4, /* HELLO never came, or the keepalive found the peer dead */
    RPC_E_EOF = 5,     /* the transport was closed by the peer without GOAWAY */
    RPC_E_GOAWAY = 6,  /* the peer closed with GOAWAY (its reason is passed on) */
    RPC_E_LOCAL = 7,   /* closed locally with rpc_conn_close() */
    RPC_E_QUOTA = 8,   /* the peer exceeded a connection quota (windows, queue bounds) */
};

/* Reset codes carried by RESET frames (on_reset's code). Unknown codes from the peer are
 * passed through unchanged. */
typedef enum RpcResetCode {
    RPC_RESET_CANCEL = 1,         /* the application aborted the call */
    RPC_RESET_PROTOCOL = 2,       /* a stream-level protocol violation */
    RPC_RESET_REFUSED_STREAM = 3, /* over the receiver's concurrent-stream quota */
    RPC_RESET_FLOW = 4,           /* the sender overran the stream window */
    RPC_RESET_INTERNAL = 5,       /* a local failure (e.g. out of memory) */
    RPC_RESET_CONN_CLOSED = 6,    /* local only: the connection went away */
} RpcResetCode;

/* Which end of the connection we are; decides stream-id parity (INITIATOR: odd ids,
 * ACCEPTOR: even ids). The two ends must have different roles (checked in HELLO). By
 * convention the end that connected (vchan client, socket connect()) is the INITIATOR. */
typedef enum RpcRole {
    RPC_ROLE_INITIATOR = 1,
    RPC_ROLE_ACCEPTOR = 2,
} RpcRole;

/* The byte channels of a stream. STDIN flows caller -> handler; STDOUT and STDERR flow
 * handler -> caller. */
typedef enum RpcChannel {
    RPC_CH_STDIN = 0,
    RPC_CH_STDOUT = 1,
    RPC_CH_STDERR = 2,
} RpcChannel;

typedef struct RpcConn RpcConn;
typedef struct RpcStream RpcStream;
typedef struct RpcLoop RpcLoop; /* librpc/loop.h */
typedef struct Vchan Vchan;     /* vchan/vchan.h */

/*
 * A call, as sent in CALL. Strings are NUL-terminated; NULL means "" for the optional ones.
 * service:  required, [A-Za-z0-9._-]{1,RPC_SERVICE_MAX}.
 * argument: [A-Za-z0-9._+-]{0,RPC_ARG_MAX} ("" = no argument; the text after '+').
 * target:   requested target, at most RPC_DOMAIN_MAX bytes (common/names.h,
 *           vrpc_name_valid_target; "" = none named, i.e. @default); e.g. "dom0", "@adminvm",
 *           "@dispvm:work", or a domain on another host "vault@hostb".
 * source:   "" or a qualified domain name (common/names.h, vrpc_name_valid_qualified: a domain
 *           name [A-Za-z0-9._-] starting with a letter or digit, or DOMAIN@HOST for a domain
 *           of another host, e.g. "work@hosta"; at most RPC_DOMAIN_MAX bytes); only
 *           meaningful from the dispatcher to an agent (the calling domain). A dispatcher must take the source from the connection a
 *           call arrived on, NEVER from this field.
 * user:     "" or [A-Za-z0-9._-]{1,RPC_USER_MAX} not starting with '-'; user to run the
 *           service as ("" = default).
 * call_id:  opaque to the library (e.g. the dispatcher's id for logs).
 * flags:    opaque to the library (application-defined bits).
 */
typedef struct RpcCall {
    const char *service;
    const char *argument;
    const char *target;
    const char *source;
    const char *user;
    uint64_t call_id;
    uint32_t flags;
} RpcCall;

/* What the peer announced in HELLO, and what was negotiated. */
typedef struct RpcPeerInfo {
    uint32_t version;       /* negotiated protocol version */
    uint32_t features;      /* negotiated feature bits (AND of both ends) */
    RpcRole role;           /* the peer's role */
    uint32_t max_frame;     /* largest payload the peer accepts (we split DATA to fit) */
    uint32_t max_streams;   /* concurrent streams the peer lets us open */
    uint32_t stream_window; /* the peer's initial per-stream receive window */
    uint32_t conn_window;   /* the peer's initial connection receive window */
} RpcPeerInfo;

/*
 * Connection configuration; get the defaults from rpc_conn_config_init().
 * role:           RPC_ROLE_INITIATOR or RPC_ROLE_ACCEPTOR (default INITIATOR).
 * max_streams:    concurrent streams the PEER may open on this connection (default 1024,
 *                 1..1<<20). One more closes the connection (RPC_E_QUOTA).
 * max_frame:      largest frame payload we accept (default RPC_FRAME_MAX_DEFAULT,
 *                 RPC_FRAME_MAX_MIN..RPC_FRAME_MAX_HARD).
 * stream_window:  per-stream, per-direction receive window = the most bytes the peer may have
 *                 unconsumed on one stream (default 1 MiB, 1 KiB..64 MiB). Overrun: RESET of
 *                 that stream (RPC_RESET_FLOW).
 * conn_window:    connection receive window = the most DATA bytes unconsumed on the whole
 *                 connection (default 16 MiB, >= stream_window, <= 1 GiB). Overrun: the
 *                 connection is closed (RPC_E_QUOTA).
 * max_tx_queue:   bound on bytes we queue for sending (our DATA plus control frames, default
 *                 32 MiB); rpc_stream_write() accepts no more beyond it (-EAGAIN), and control
 *                 frames that a peer provokes (PONG, WINDOW_UPDATE, RESET) beyond it close the
 *                 connection (RPC_E_QUOTA): a peer that never reads cannot grow our memory.
 * keepalive_ms:   send PING after this long without receiving anything (default 10000;
 *                 0 = no keepalive).
 * dead_peer_ms:   close with RPC_E_TIMEOUT if nothing is received for this long after a PING
 *                 (default 30000; ignored without keepalive).
 * hello_timeout_ms: close with RPC_E_TIMEOUT if the peer's HELLO has not arrived by then
 *                 (default 10000; 0 = wait forever).
 * features:       feature bits we offer (default RPC_FEATURES_V1).
 * accept_hold_ms: on a connection attached to a loop, rpc_stream_accept() holds the ACCEPT
 *                 frame until the stream's next frame (output, EOF, EXIT) or this many ms,
 *                 whichever comes first, so that a short call's ACCEPT, output and EXIT reach
 *                 the peer in one write (one wake-up). The stream is accepted for the
 *                 application at once either way. Default 0: ACCEPT goes out at once.
 *
 * Whatever the configuration, a connection attached to a loop (rpc_conn_attach) writes its
 * output once per loop pass: frames queued by API calls and by dispatches during one pass go
 * out together, small frames gathered into one transport write, at the start of the next
 * iteration (a deferred source). Large DATA writes still go straight to the transport.
 */
#define RPC_ACCEPT_HOLD_MAX_MS 60000u
/* What vrpc-agent and vrpc-dispatcher use: long enough for a short call (spawn, output,
 * exit) on a busy machine, short enough that nobody waits on it. */
#define RPC_ACCEPT_HOLD_DAEMON_MS 50u

typedef struct RpcConnConfig {
    RpcRole role;
    uint32_t max_streams;
    uint32_t max_frame;
    uint32_t stream_window;
    uint32_t conn_window;
    size_t max_tx_queue;
    uint32_t keepalive_ms;
    uint32_t dead_peer_ms;
    uint32_t hello_timeout_ms;
    uint32_t features;
    uint32_t accept_hold_ms;
} RpcConnConfig;

/*
 * Callbacks. Any may be NULL (then: calls are refused with exit 125 "no handler", data is
 * consumed and dropped). userdata is the connection's (rpc_conn_new_*, rpc_conn_set_userdata);
 * per-stream state goes in rpc_stream_set_userdata(). A stream given its own callbacks with
 * rpc_stream_set_ops() gets its events there instead (on_call and the connection's events
 * stay here). Strings and data pointers are valid only during the callback.
 */
typedef struct RpcCallbacks {
    /* HELLO exchanged; streams may now carry data. */
    void (*on_ready)(RpcConn *conn, const RpcPeerInfo *peer, void *userdata);

    /* The peer opened stream @s (we are its HANDLER). The call's fields are validated. Answer
     * now or later with rpc_stream_accept() or rpc_stream_refuse() (or reset it); until then
     * stdin data may already arrive (the caller may pipeline it). */
    void (*on_call)(RpcConn *conn, RpcStream *s, const RpcCall *call, void *userdata);

    /* CALLER side: the handler accepted our call. */
    void (*on_accept)(RpcStream *s, void *userdata);

    /* Bytes on @ch (STDIN on the handler side, STDOUT/STDERR on the caller side). Return how
     * many bytes (0..@len) were consumed: their credit goes back to the peer. If fewer than
     * @len, the rest is kept by the library and delivery on this stream pauses (frames that
     * follow queue up behind it, within the window) until rpc_stream_resume(s). */
    size_t (*on_data)(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *userdata);

    /* The peer half-closed @ch (after all of its data was delivered). */
    void (*on_eof)(RpcStream *s, RpcChannel ch, void *userdata);

    /* CALLER side: the call ended. refused: the handler answered REFUSE instead of ACCEPT
     * (then code is its exit code, e.g. 126, and @reason its one-line reason); otherwise
     * EXIT with the handler's status. Delivered after all stdout/stderr data and EOFs. The
     * stream is freed right after this callback (on_stream_free follows). */
    void (*on_exit)(RpcStream *s, int32_t code, bool refused, const char *reason, void *userdata);

    /* The stream was aborted before completing: by the peer's RESET, by the library
     * (local == true: e.g. the peer overran the window, over quota) or because the
     * connection closed (code RPC_RESET_CONN_CLOSED). Not called for streams that completed
     * (caller: exit delivered; handler: exit/refuse sent). */
    void (*on_reset)(RpcStream *s, uint32_t code, bool local, const char *reason, void *userdata);

    /* rpc_stream_write() returned -EAGAIN or a short count on @s earlier, and credit (or
     * queue space, or vchan ring room) is available again. */
    void (*on_writable)(RpcStream *s, void *userdata);

    /* The stream handle is about to be freed: drop every reference to it. Called exactly
     * once for every stream, also from rpc_conn_free(). */
    void (*on_stream_free)(RpcStream *s, void *userdata);

    /* The connection closed. error: RPC_E_* (positive) or -errno of the transport; @reason a
     * one-line description for logs (for RPC_E_GOAWAY the peer's sanitised reason). Called
     * once; every stream is then reset (on_reset + on_stream_free). Free the connection now
     * or later with rpc_conn_free(). */
    void (*on_close)(RpcConn *conn, int error, const char *reason, void *userdata);
} RpcCallbacks;

/* Counters, for tests and benchmarks. */
typedef struct RpcConnStats {
    uint64_t frames_in, frames_out;
    uint64_t bytes_in, bytes_out; /* transport bytes, headers included */
    uint64_t data_in, data_out;   /* DATA payload bytes */
    uint32_t streams_open;        /* live streams now */
    uint64_t streams_total;       /* streams ever opened (both ends) */
    uint64_t resets_in, resets_out;
    uint64_t pings_out, pongs_in;
    size_t tx_queued; /* bytes queued for the transport now */
    size_t rx_held;   /* bytes held for paused streams now */
} RpcConnStats;

/* Log sink: level is a syslog(3) level; msg is one line without a newline. */
typedef void (*RpcLogFn)(int level, const char *msg, void *userdata);

/* Install the process-wide log sink (NULL: silent, the default). Call once at start-up.
 * Every connection close is logged at LOG_WARNING (violations) or LOG_INFO, naming the
 * connection (rpc_conn_set_name()) and the reason. */
RPC_EXPORT void rpc_set_log(RpcLogFn fn, void *userdata);

/* ---- connections --------------------------------------------------------------------------- */

/* Fill @cfg with the defaults documented at RpcConnConfig. */
RPC_EXPORT void rpc_conn_config_init(RpcConnConfig *cfg);

/*
 * Create a connection over vchan @vc and queue our HELLO. If @own, the connection frees @vc
 * in rpc_conn_free() (also on failure of this call); otherwise the caller frees it after
 * rpc_conn_free(). The connection calls vchan_dispatch() itself; do not read or write @vc
 * behind its back. @cfg NULL = defaults; @cb is copied (NULL = all callbacks NULL).
 * Returns 0 and sets *@connp, or -EINVAL (bad config), -ENOMEM.
 */
RPC_EXPORT int rpc_conn_new_vchan(RpcConn **connp, Vchan *vc, bool own, const RpcConnConfig *cfg,
                                  const RpcCallbacks *cb, void *userdata);

/*
 * Create a connection over a connected stream socket (AF_UNIX SOCK_STREAM, or any
 * stream fd such as one end of a socketpair). @fd is made non-blocking; an AF_UNIX stream
 * socket's send buffer is enlarged to 1 MiB where the system allows it. If @own, it is
 * closed by rpc_conn_free() (also on failure of this call). Returns 0 and sets *@connp, or
 * -EINVAL (fd < 0, bad config), -ENOMEM, -errno of fcntl(2).
 */
RPC_EXPORT int rpc_conn_new_fd(RpcConn **connp, int fd, bool own, const RpcConnConfig *cfg,
                               const RpcCallbacks *cb, void *userdata);

/*
 * A byte-stream transport of the application's (e.g. TLS over TCP, in the dispatcher): the
 * connection reads and writes through these callbacks instead of read(2)/writev(2), and
 * polls @fd (rpc_conn_fd()) for readiness. Each callback gets the @ctx given to
 * rpc_conn_new_stream().
 * read:    up to @n bytes into @buf: the count, 0 at the peer's orderly end, -EAGAIN when
 *          nothing is available now, or another -errno (the connection fails).
 * writev:  as writev(2): the count written (may be short), -EAGAIN, or -errno.
 * pending: bytes already buffered inside the transport (decrypted, say) that polling @fd
 *          cannot see; the connection dispatches again at once while it is non-zero. NULL:
 *          never any.
 * wpending: bytes writev already took (counted as written) but still holds, e.g. frames
 *          batched into one TLS record, or records the socket did not take yet. The
 *          connection calls writev with @cnt 0 (push what you hold: 0, -EAGAIN or -errno)
 *          at the end of every flush, and polls @fd for writing while this is non-zero.
 *          NULL: writev never holds bytes back.
 * free:    called once from rpc_conn_free() (also on failure of rpc_conn_new_stream()):
 *          release @ctx and @fd. NULL: nothing to release.
 */
typedef struct RpcTransportOps {
    ssize_t (*read)(void *ctx, void *buf, size_t n);
    ssize_t (*writev)(void *ctx, const struct iovec *iov, int cnt);
    size_t (*pending)(void *ctx);
    void (*free)(void *ctx);
    size_t (*wpending)(void *ctx);
} RpcTransportOps;

/*
 * Create a connection over the application's transport @ops (kept by reference) on @fd (made
 * non-blocking; polled, never read or written directly). Returns 0 and sets *@connp, or
 * -EINVAL (fd < 0, no read or writev, bad config), -ENOMEM, -errno of fcntl(2).
 */
RPC_EXPORT int rpc_conn_new_stream(RpcConn **connp, int fd, const RpcTransportOps *ops, void *ctx,
                                   const RpcConnConfig *cfg, const RpcCallbacks *cb,
                                   void *userdata);

/*
 * Send a PING now (whatever the keepalive timer says) and call @on_pong with the round trip
 * in microseconds when its PONG comes (a PONG answering an older PING is ignored). One PING
 * at a time: -EBUSY while one is outstanding, -ENOTCONN before HELLO or after close, -ENOMEM
 * or -ENOBUFS if it cannot be queued.
 */
typedef void (*RpcPongFn)(RpcConn *conn, uint64_t rtt_us, void *userdata);
RPC_EXPORT int rpc_conn_ping(RpcConn *conn, RpcPongFn on_pong, void *userdata);

/* Free the connection: every live stream gets on_reset (RPC_RESET_CONN_CLOSED, unless it
 * completed) and on_stream_free; on_close is NOT called if it had not been; nothing more is
 * sent (use rpc_conn_close() first for a GOAWAY). Detaches from its loop. Accepts NULL.
 * Allowed inside callbacks (deferred until the dispatch unwinds). Always returns NULL. */
RPC_EXPORT RpcConn *rpc_conn_free(RpcConn *conn);
RPC_EXPORT void rpc_conn_freep(RpcConn **connp);

/* A name for log lines (e.g. "guest work"), copied; default "rpc". */
RPC_EXPORT void rpc_conn_set_name(RpcConn *conn, const char *name);
RPC_EXPORT const char *rpc_conn_name(const RpcConn *conn);

RPC_EXPORT void rpc_conn_set_userdata(RpcConn *conn, void *userdata);
RPC_EXPORT void *rpc_conn_get_userdata(const RpcConn *conn);

/* The fd to poll: vchan_fd() or the socket. */
RPC_EXPORT int rpc_conn_fd(const RpcConn *conn);

/* The epoll events to wait for on rpc_conn_fd(): EPOLLIN always; EPOLLOUT too for a socket
 * with output queued (a vchan signals write space on its one fd). Re-read after every
 * dispatch and every API call that may queue output (writes, accept, exit, reset, open). */
RPC_EXPORT uint32_t rpc_conn_events(const RpcConn *conn);

/*
 * Call right before sleeping on rpc_conn_fd() (a loop attached with rpc_conn_attach() does).
 * A dispatch reads a vchan, and a write finds its ring full, without asking the peer for
 * events (so that a peer reading or writing while we are awake anyway wakes no one); this
 * asks for the events the sleep needs: input, and ring space for streams that wait for it.
 * Returns 1 if the connection has work now (input, or space for a blocked stream: dispatch
 * instead of sleeping), else 0. A no-op returning 0 for sockets; a caller that waits in
 * vchan_wait_readable() or vchan_wait_writable() instead is armed by them.
 */
RPC_EXPORT int rpc_conn_prepare_wait(RpcConn *conn);

/* Milliseconds until the connection needs rpc_conn_dispatch() for a timer (keepalive,
 * dead-peer and HELLO timeouts, or deferred work: 0), or -1 if none. */
RPC_EXPORT int rpc_conn_next_timeout_ms(const RpcConn *conn);

/*
 * Do everything that can be done now without blocking: consume transport events, read and
 * validate frames, deliver callbacks, run due timers, flush queued output in round-robin
 * over the ready streams. Returns 0 while the connection is open, RPC_E_CLOSED once it is
 * closed (on_close was called in this or an earlier call). Never returns -errno: transport
 * failures close the connection.
 */
RPC_EXPORT int rpc_conn_dispatch(RpcConn *conn);

/*
 * Close gracefully from our side: reset every live stream (on_reset local,
 * RPC_RESET_CONN_CLOSED), queue GOAWAY with @reason (sanitised, truncated to
 * RPC_REASON_MAX; NULL = ""), try once to flush without blocking, and call on_close with
 * RPC_E_LOCAL. Returns 0 or RPC_E_CLOSED (already closed).
 */
RPC_EXPORT int rpc_conn_close(RpcConn *conn, const char *reason);

/* True once the HELLOs were exchanged and until the connection closes. */
RPC_EXPORT bool rpc_conn_is_ready(const RpcConn *conn);
/* True once closed. */
RPC_EXPORT bool rpc_conn_is_closed(const RpcConn *conn);

/* Copy what the peer announced; -EAGAIN before HELLO arrived, 0 otherwise. */
RPC_EXPORT int rpc_conn_peer_info(const RpcConn *conn, RpcPeerInfo *peerp);

RPC_EXPORT void rpc_conn_get_stats(const RpcConn *conn, RpcConnStats *statsp);

/*
 * Hold the output of API calls: between rpc_conn_cork() and rpc_conn_uncork() (they nest),
 * what rpc_stream_open(), rpc_stream_write(), rpc_stream_close_write() ... queue is not
 * written; rpc_conn_uncork() writes it all at once (attached to a loop: in the pass's one
 * flush). A caller that opens a call and closes its stdin at once sends the CALL and the EOF
 * in one transport write, so the peer wakes once. Output the connection makes while
 * dispatching (window updates, replies) still goes out and carries what is held with it.
 */
RPC_EXPORT void rpc_conn_cork(RpcConn *conn);
RPC_EXPORT void rpc_conn_uncork(RpcConn *conn);

/*
 * Register the connection with @loop: its fd (events kept in sync automatically), and a
 * timer for rpc_conn_next_timeout_ms(). The loop then calls rpc_conn_dispatch(). A
 * connection is attached to at most one loop; rpc_conn_free() detaches.
 * Returns 0, -EBUSY (already attached), or -errno of the loop.
 */
RPC_EXPORT int rpc_conn_attach(RpcConn *conn, RpcLoop *loop);
RPC_EXPORT void rpc_conn_detach(RpcConn *conn);

/* ---- streams ------------------------------------------------------------------------------- */

/*
 * Open a stream (we are its CALLER) by queueing a CALL. Allowed before the HELLO exchange
 * (the CALL follows our HELLO; stdin credit arrives with the peer's HELLO).
 * Returns 0 and sets *@sp, or -EINVAL (a field fails its charset/length rule; nothing sent),
 * -EBUSY (as many streams open as the peer allows), -ENOTCONN (connection closed),
 * -ERANGE (stream ids exhausted on this connection), -ENOMEM.
 */
RPC_EXPORT int rpc_stream_open(RpcConn *conn, const RpcCall *call, RpcStream **sp);

/* HANDLER side: accept the call (once, before any stdout/stderr). Returns 0, -EALREADY
 * (already answered), -EPERM (we are the caller), -ENOTCONN (stream or connection gone). */
RPC_EXPORT int rpc_stream_accept(RpcStream *s);

/* HANDLER side: refuse instead of accepting; @exit_code is passed to the caller (e.g. 126)
 * and @reason (sanitised, truncated to RPC_REASON_MAX) is its one-line reason. The stream
 * ends (freed once the caller's stdin EOF arrives). Returns 0, -EALREADY, -EPERM,
 * -ENOTCONN. */
RPC_EXPORT int rpc_stream_refuse(RpcStream *s, int32_t exit_code, const char *reason);

/*
 * Send bytes on @ch: STDIN from the caller, STDOUT/STDERR from the handler after accepting.
 * Accepts at most the credit the peer granted (stream and connection windows) and what our
 * send queue bound allows; written straight to the transport when possible, else copied
 * into the stream's queue (sent in frames of at most the peer's max_frame, round-robin with
 * the other streams). While the transport is busy a stream queues at most one max_frame of
 * bytes, and over a vchan with nothing queued it takes what the ring has room for (as of the
 * last dispatch; once a whole frame fits), so a short count or -EAGAIN can come with credit
 * left: wait for on_writable. Returns the bytes accepted (1..@len; 0 only for @len 0), -EAGAIN if
 * none could be (on_writable fires when some can), -EBADF (@ch is not ours to send on this
 * side), -EPROTO (handler has not accepted yet), -EPIPE (@ch already half-closed, or the
 * exit was sent), -ENOTCONN (stream reset or connection closed), -EINVAL (bad @ch).
 */
RPC_EXPORT ssize_t rpc_stream_write(RpcStream *s, RpcChannel ch, const void *buf, size_t len);

/* Bytes rpc_stream_write() on @ch would accept now (0 when blocked), or -errno as there. A
 * write right after it (no dispatch between) takes that many whole, or gets -EAGAIN for 0. */
RPC_EXPORT ssize_t rpc_stream_send_window(const RpcStream *s, RpcChannel ch);

/* Half-close @ch (EOF after everything written on it). Idempotent: 0 if already closed.
 * Returns 0, -EBADF, -EINVAL, -ENOTCONN. */
RPC_EXPORT int rpc_stream_close_write(RpcStream *s, RpcChannel ch);

/*
 * HANDLER side: send the exit status (exactly once; implies EOF on stdout and stderr, after
 * their queued bytes). @reason may be NULL. The stream completes; it is freed once the
 * caller's stdin EOF arrives (stdin arriving meanwhile is discarded).
 * Returns 0, -EALREADY (exit or refusal already sent), -EPROTO (not accepted yet: use
 * rpc_stream_refuse()), -EPERM (we are the caller), -ENOTCONN.
 */
RPC_EXPORT int rpc_stream_exit(RpcStream *s, int32_t exit_code, const char *reason);

/* Abort the stream (either side): queue RESET with @code and @reason, drop queued data;
 * the other streams are untouched. on_reset is NOT called for a reset we asked for;
 * on_stream_free follows (now or when the peer acknowledges). Returns 0 or -ENOTCONN
 * (already reset/closed). */
RPC_EXPORT int rpc_stream_reset(RpcStream *s, uint32_t code, const char *reason);

/* Resume delivery after on_data consumed less than it was given: held bytes are
 * re-delivered (outside a dispatch: right now, from this call; inside a dispatch of the
 * same connection: before that dispatch returns). Returns 0, or -ENOTCONN. */
RPC_EXPORT int rpc_stream_resume(RpcStream *s);

/* True while delivery on @s is paused (on_data consumed less than it was given). */
RPC_EXPORT bool rpc_stream_is_paused(const RpcStream *s);

RPC_EXPORT uint32_t rpc_stream_id(const RpcStream *s);
RPC_EXPORT RpcConn *rpc_stream_conn(const RpcStream *s);
/* True if we opened the stream (we are its CALLER). */
RPC_EXPORT bool rpc_stream_is_caller(const RpcStream *s);
/* The call as sent/received (strings live as long as the stream). */
RPC_EXPORT const RpcCall *rpc_stream_call(const RpcStream *s);
RPC_EXPORT void rpc_stream_set_userdata(RpcStream *s, void *userdata);
RPC_EXPORT void *rpc_stream_get_userdata(const RpcStream *s);

/*
 * Per-stream callbacks: the events of one stream, for the code that owns it (a service's
 * handler, a relay) instead of the connection's fan-out. The members mean what the
 * RpcCallbacks members of the same name mean; userdata is the stream's.
 */
typedef struct RpcStreamOps {
    void (*on_accept)(RpcStream *s, void *userdata);
    size_t (*on_data)(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *userdata);
    void (*on_eof)(RpcStream *s, RpcChannel ch, void *userdata);
    void (*on_exit)(RpcStream *s, int32_t code, bool refused, const char *reason, void *userdata);
    void (*on_reset)(RpcStream *s, uint32_t code, bool local, const char *reason, void *userdata);
    void (*on_writable)(RpcStream *s, void *userdata);
    void (*on_stream_free)(RpcStream *s, void *userdata);
} RpcStreamOps;

/* From now on deliver @s's events to @ops (kept by reference: static tables) with @userdata
 * (also rpc_stream_get_userdata()'s) instead of the connection's callbacks; a NULL member
 * means that event's default (data is consumed and dropped, the rest ignored). @ops NULL:
 * back to the connection's callbacks (the userdata stays). Held data is delivered to the
 * new owner at the next rpc_stream_resume(). */
RPC_EXPORT void rpc_stream_set_ops(RpcStream *s, const RpcStreamOps *ops, void *userdata);
/* The ops of @s (NULL: it uses the connection's callbacks). */
RPC_EXPORT const RpcStreamOps *rpc_stream_get_ops(const RpcStream *s);

/* ---- helpers ------------------------------------------------------------------------------- */

/*
 * Listen on a Unix stream socket at @path with permissions @mode (set through the umask at
 * bind time, so a more permissive socket never exists) and a queue of @backlog connections;
 * the folders above it are created (0755) if missing. A stale socket file (nobody accepting)
 * is replaced; a live one is an error. Returns the non-blocking, close-on-exec fd for
 * rpc_conn_new_fd() after accept4(), or -ENAMETOOLONG (empty or too long @path),
 * -EADDRINUSE (another process accepts there), or the -errno of socket/bind/listen.
 */
RPC_EXPORT int rpc_unix_listen(const char *path, mode_t mode, int backlog);

/* Connect to the Unix stream socket at @path (blocking connect; the fd is close-on-exec and
 * ready for rpc_conn_new_fd()). Returns the fd, -ENAMETOOLONG (empty or too long @path) or the
 * -errno of socket/connect (e.g. -ENOENT, -ECONNREFUSED). */
RPC_EXPORT int rpc_unix_connect(const char *path);

/* Name checks used by the codec, for applications that validate early. Each returns true if
 * @s (NUL-terminated) satisfies the rule documented at RpcCall. */
RPC_EXPORT bool rpc_valid_service(const char *s);
RPC_EXPORT bool rpc_valid_argument(const char *s);
RPC_EXPORT bool rpc_valid_target(const char *s);
RPC_EXPORT bool rpc_valid_domain(const char *s); /* source */
RPC_EXPORT bool rpc_valid_user(const char *s);

/* Names for logs. */
RPC_EXPORT const char *rpc_error_name(int error); /* RPC_E_* or -errno */
RPC_EXPORT const char *rpc_reset_code_name(uint32_t code);
RPC_EXPORT const char *rpc_channel_name(RpcChannel ch); /* "stdin", "stdout", "stderr" */

#ifdef __cplusplus
}
#endif
