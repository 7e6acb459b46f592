/* SPDX-License-Identifier: MIT */
/*
 * vchan.h - the one public header of vrpc's vchan library.
 *
 * A vchan is a pair of byte rings in memory shared between two Xen domains, wire-compatible
 * byte for byte with Xen's libxenvchan (see shared/spec/vchan-wire.md). The server offers the
 * memory and publishes it in XenStore, the client maps it. The core is non-blocking: every
 * call returns at once, with -EAGAIN when nothing could be done; vchan_fd() is pollable and
 * vchan_dispatch() consumes the events it signals. Blocking helpers with timeouts sit on top.
 *
 * Unlike libxenvchan, the peer is never trusted: its indices are read once per operation and
 * checked, a violation returns -EPROTO and latches the channel broken, the ring geometry is
 * copied once at connect, the live byte is normalised, and data written before a close is
 * always delivered before EOF.
 *
 * Threading: a Vchan is not thread-safe; callers serialise all calls on one Vchan. Distinct
 * Vchan objects are independent.
 *
 * Changelog of this interface:
 *   v1 (vrpc 0.1): initial API.
 *   v1.1: vchan_buffer_space_notify().
 *   v1.2: vchan_data_ready_notify().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VCHAN_EXPORT __attribute__((visibility("default")))
#else
#define VCHAN_EXPORT
#endif

/* Largest ring a vchan can have in either direction (order 20). */
#define VCHAN_RING_SIZE_MAX ((size_t)1 << 20)
/* Domain ids at or above this (Xen's DOMID_FIRST_RESERVED) never name a real domain. */
#define VCHAN_DOMID_FIRST_RESERVED 0x7FF0
/* Default upper bound of the spin phase of the blocking helpers. */
#define VCHAN_SPIN_NS_DEFAULT 50000u

typedef struct Vchan Vchan;

/* The peer's state as seen through its live byte, normalised. */
typedef enum VchanState {
    VCHAN_STATE_CLOSED = 0,  /* peer closed or died; its last data may still be readable */
    VCHAN_STATE_OPEN = 1,    /* connected */
    VCHAN_STATE_WAITING = 2, /* server side: no client has connected yet */
    VCHAN_STATE_BROKEN = 3,  /* the peer violated the protocol; only vchan_free() is useful */
} VchanState;

/* Positive outcome codes (negative values are always -errno). */
enum {
    VCHAN_E_EOF = 1, /* vchan_read_full(): the peer closed before all bytes arrived */
};

/*
 * Tuning of the blocking helpers. Get the defaults from vchan_options_init().
 * spin_ns: longest time one wait polls the ring before arming a notification and sleeping
 *          in poll(2). 0 switches spinning off (always sleep at once).
 * spin_adaptive: learn the spin budget from the observed wait times (between ~1 us and
 *          spin_ns), so that a peer that answers in microseconds is caught by spinning and a
 *          slow peer does not burn CPU.
 */
typedef struct VchanOptions {
    uint32_t spin_ns;
    bool spin_adaptive;
} VchanOptions;

/* Counters, for benchmarks and tests. */
typedef struct VchanStats {
    uint64_t events_sent;     /* event-channel notifications sent to the peer */
    uint64_t events_consumed; /* events consumed by vchan_dispatch() and _ready() */
    uint64_t ready_empty;     /* vchan_dispatch_ready() calls that found no event: a stale
                                 readiness report (on a blocking event fd they would sleep) */
    uint64_t spin_wins;       /* waits satisfied while spinning */
    uint64_t sleeps;          /* waits that went to sleep in poll(2) */
    uint64_t spin_losses;     /* of those, waits that spun first (the spin was wasted) */
    uint64_t spin_ns;         /* time spent spinning, won or lost */
} VchanStats;

/* Log sink: level is a syslog(3) level (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG); msg is
 * one line without a newline. */
typedef void (*VchanLogFn)(int level, const char *msg, void *userdata);

/*
 * Install the process-wide log sink (NULL: silent, the default). Not thread-safe against
 * concurrent logging; call it once at start-up. Messages from the Xen libraries are
 * forwarded at LOG_DEBUG.
 */
VCHAN_EXPORT void vchan_set_log(VchanLogFn fn, void *userdata);

/*
 * Offer a vchan to domain @domid at XenStore directory @path (the server side).
 * @read_min / @write_min: minimum ring sizes in bytes for reading / writing (0..1 MiB); the
 * actual sizes follow libxenvchan's selection and are never smaller.
 * Publishes <path>/ring-ref and <path>/event-channel in one transaction, readable by @domid
 * only. The channel is usable at once (writes are buffered until the client connects).
 * Returns 0 and sets *@cp, or: -EINVAL (bad domid, loopback to our own domain, empty path,
 * size over 1 MiB), -EPROTO (our own "domid" key is malformed), -ENOMEM, or the -errno of
 * the failing Xen call. On failure nothing is left behind.
 */
VCHAN_EXPORT int vchan_server_new(Vchan **cp, int domid, const char *path, size_t read_min,
                                  size_t write_min);

/*
 * Connect to the vchan offered by domain @domid at XenStore directory @path (client side).
 * Returns 0 and sets *@cp, or: -EINVAL (bad domid, loopback, empty path), -ENOENT (no server
 * published there), -EPROTO (malformed XenStore values or control page: bad ring orders),
 * -ENOMEM, or the -errno of the failing Xen call. On failure nothing is left behind.
 */
VCHAN_EXPORT int vchan_client_new(Vchan **cp, int domid, const char *path);

/*
 * vchan_client_new(), but if the server has not published yet, wait for it through a
 * XenStore watch for up to @timeout_ms (-1: forever, 0: no wait). Keys that read as EACCES
 * count as not there yet (xenstored hides missing nodes under another domain's directory that
 * way), and it looks again at least every 100 ms (watch events the caller may not read are
 * dropped). Returns what vchan_client_new() returns, or -ETIMEDOUT.
 */
VCHAN_EXPORT int vchan_client_new_wait(Vchan **cp, int domid, const char *path, int timeout_ms);

/*
 * An in-process connected pair (no Xen): the same ring code over plain memory, with an
 * eventfd standing in for the event channel. For tests and benchmarks. Sizes are the
 * server's, as for vchan_server_new(). Returns 0, -EINVAL (size over 1 MiB) or -ENOMEM/-errno.
 */
VCHAN_EXPORT int vchan_pair_new(Vchan **serverp, Vchan **clientp, size_t read_min,
                                size_t write_min);

/*
 * Close cleanly and free: our live byte goes to 0, the peer is notified, all mappings,
 * grants, ports and handles are released; a server also removes its XenStore directory.
 * Accepts NULL. Always returns NULL.
 */
VCHAN_EXPORT Vchan *vchan_free(Vchan *c);

/* For __attribute__((cleanup)). */
VCHAN_EXPORT void vchan_freep(Vchan **cp);

/*
 * Stream read: copy up to @size bytes that are ready. Returns the number of bytes (> 0),
 * 0 at EOF (the peer closed and everything it wrote has been read), -EAGAIN when nothing is
 * ready (a notification is then armed, so vchan_fd() fires when data arrives), -EINVAL if
 * @size is 0, -EPROTO if the peer violated the protocol (latched).
 */
VCHAN_EXPORT ssize_t vchan_read(Vchan *c, void *buf, size_t size);

/* vchan_read() scattering into @iov. -EINVAL also for iovcnt < 0 or > IOV_MAX, or a total
 * length of 0. */
VCHAN_EXPORT ssize_t vchan_readv(Vchan *c, const struct iovec *iov, int iovcnt);

/*
 * Stream write: copy up to @size bytes into free ring space. Returns the number of bytes
 * (0 only if @size is 0), -EAGAIN when the ring is full (a notification is armed),
 * -EPIPE if the peer has closed, -EPROTO if the peer violated the protocol (latched).
 */
VCHAN_EXPORT ssize_t vchan_write(Vchan *c, const void *buf, size_t size);

/* vchan_write() gathering from @iov. -EINVAL for iovcnt < 0 or > IOV_MAX. */
VCHAN_EXPORT ssize_t vchan_writev(Vchan *c, const struct iovec *iov, int iovcnt);

/*
 * Packet receive: all @size bytes or nothing. Returns @size, 0 at EOF (ring empty and peer
 * closed), -EAGAIN (fewer than @size bytes ready; notification armed), -EMSGSIZE (@size
 * exceeds the read ring, so it could never arrive), -ECONNRESET (the peer closed with a
 * partial packet in the ring; vchan_read() still returns those bytes), -EINVAL (@size 0),
 * -EPROTO.
 */
VCHAN_EXPORT ssize_t vchan_recv(Vchan *c, void *buf, size_t size);

/*
 * Packet send: all @size bytes or nothing. Returns @size (0 for @size 0), -EAGAIN (not
 * enough space; notification armed), -EMSGSIZE (@size exceeds the write ring), -EPIPE,
 * -EPROTO.
 */
VCHAN_EXPORT ssize_t vchan_send(Vchan *c, const void *buf, size_t size);

/* Bytes ready to read now, or -EPROTO. Never arms a notification. */
VCHAN_EXPORT ssize_t vchan_data_ready(Vchan *c);

/*
 * Before sleeping on vchan_fd() for data, without having read the ring empty: if no data is
 * ready, ask the peer for an event on its next write (vchan_read() does so when it finds
 * the ring empty), then look again. Returns the bytes ready (> 0: read them instead of
 * sleeping), 0 (sleep: the peer's next write or its close fires vchan_fd()), or -EPROTO.
 * With it a reader can read with vchan_data_ready() checks that arm nothing, so a peer that
 * writes while the reader is busy anyway is not made to send an event for it.
 */
VCHAN_EXPORT ssize_t vchan_data_ready_notify(Vchan *c);

/* Bytes writable now without blocking, or -EPROTO. Never arms a notification. */
VCHAN_EXPORT ssize_t vchan_buffer_space(Vchan *c);

/* vchan_buffer_space(), but if fewer than @min bytes are free a notification is armed first
 * (vchan_fd() fires when the reader frees space, as after a write that found the ring full),
 * then the space is read again and returned; if that finds @min bytes free after all, the
 * notification is withdrawn (at worst one spurious event still comes). For a non-blocking
 * writer that wants room for a whole record before writing any of it. -EPROTO as there. */
VCHAN_EXPORT ssize_t vchan_buffer_space_notify(Vchan *c, size_t min);

/* Ring sizes in bytes, fixed at connect. */
VCHAN_EXPORT size_t vchan_read_ring_size(const Vchan *c);
VCHAN_EXPORT size_t vchan_write_ring_size(const Vchan *c);

/*
 * The pollable fd: readable when an event is pending. Events carry no payload and may be
 * merged or spurious; after poll(2) says readable call vchan_dispatch(), then retry the
 * operation that returned -EAGAIN.
 */
VCHAN_EXPORT int vchan_fd(const Vchan *c);

/*
 * Consume pending events without blocking and re-enable delivery. Returns the number of
 * events consumed (>= 0) or the -errno of the event-channel driver.
 */
VCHAN_EXPORT int vchan_dispatch(Vchan *c);

/*
 * vchan_dispatch() for a caller whose poll(2) or epoll just reported vchan_fd() readable, and
 * which is the fd's only reader: consumes one event in one system call instead of checking
 * readiness around it (events are merged; a further pending one keeps the fd readable for the
 * next poll). Returns 1, 0 (nothing pending after all) or -errno.
 */
VCHAN_EXPORT int vchan_dispatch_ready(Vchan *c);

/* The peer's state, normalised (a live byte other than 0, 1 or 2 latches BROKEN). */
VCHAN_EXPORT VchanState vchan_is_open(Vchan *c);

/* Name of a state for logs ("closed", "open", "waiting", "broken", "invalid"). */
VCHAN_EXPORT const char *vchan_state_name(VchanState state);

/*
 * Check out of band whether the peer domain still exists. A destroyed domain never runs its
 * unmap-notify, so its live byte stays 1: a daemon watches XenStore's @releaseDomain and calls
 * this for its channels when the watch fires. Asks xenstored (XS_IS_DOMAIN_INTRODUCED);
 * where that is refused to an unprivileged caller, a client falls back to whether the
 * server's <path>/ring-ref is still readable (xenstored answers EACCES for a vanished node
 * under an unreadable parent, so ENOENT and EACCES both mean gone); a server in a guest
 * cannot tell and gets -EACCES. A dead peer turns the channel CLOSED for good: its
 * remaining data can be read, then reads return EOF and writes -EPIPE.
 * Returns 1 (alive), 0 (gone) or -errno (could not tell; -EOPNOTSUPP for vchan_pair_new()).
 */
VCHAN_EXPORT int vchan_check_peer(Vchan *c);

/* Peer domain id and XenStore path as given at creation (path "" for pairs). */
VCHAN_EXPORT int vchan_peer_domid(const Vchan *c);
VCHAN_EXPORT const char *vchan_path(const Vchan *c);

/* Fill @o with the defaults (spin_ns = VCHAN_SPIN_NS_DEFAULT, spin_adaptive = true). */
VCHAN_EXPORT void vchan_options_init(VchanOptions *o);

/* Apply options to one channel. Returns 0 or -EINVAL (spin_ns over one second). */
VCHAN_EXPORT int vchan_set_options(Vchan *c, const VchanOptions *o);

/* Copy the counters. */
VCHAN_EXPORT void vchan_get_stats(const Vchan *c, VchanStats *statsp);

/*
 * Wait until at least @min bytes can be read (or the peer closed, so a read returns what is
 * left and then EOF), spinning then sleeping. @timeout_ms: -1 forever, 0 just check.
 * Returns 0, -ETIMEDOUT, -EMSGSIZE (@min larger than the ring), -EPROTO, or -errno of
 * poll(2)/the event channel (-EINTR included).
 */
VCHAN_EXPORT int vchan_wait_readable(Vchan *c, size_t min, int timeout_ms);

/* Same for @min bytes of write space. Returns 0, -ETIMEDOUT, -EMSGSIZE, -EPIPE (peer
 * closed), -EPROTO, or -errno. */
VCHAN_EXPORT int vchan_wait_writable(Vchan *c, size_t min, int timeout_ms);

/*
 * Blocking read of exactly @size bytes within @timeout_ms in total (-1 forever).
 * *@donep (optional) always receives the count copied, also on failure.
 * Returns 0 (all read), VCHAN_E_EOF (peer closed first), -ETIMEDOUT, -EPROTO, -EINVAL
 * (@size 0) or -errno.
 */
VCHAN_EXPORT int vchan_read_full(Vchan *c, void *buf, size_t size, size_t *donep, int timeout_ms);

/*
 * Blocking write of all @size bytes within @timeout_ms in total (-1 forever); the bytes are
 * in the ring, not necessarily consumed, when it returns 0. *@donep (optional) always
 * receives the count written. Returns 0, -EPIPE, -ETIMEDOUT, -EPROTO or -errno.
 */
VCHAN_EXPORT int vchan_write_full(Vchan *c, const void *buf, size_t size, size_t *donep,
                                  int timeout_ms);

/*
 * Wait until the peer has consumed everything we wrote (our write ring is empty), or the
 * peer closed. Returns 0, -EPIPE (peer closed with data unread), -ETIMEDOUT, -EPROTO, -errno.
 */
VCHAN_EXPORT int vchan_flush(Vchan *c, int timeout_ms);

#ifdef __cplusplus
}
#endif
