/* SPDX-License-Identifier: MIT */
/*
 * ring.h - private: the libxenvchan control-page layout and the pure ring logic of one
 * endpoint (no Xen calls, so it runs on plain memory in unit tests and the fuzzer).
 */
#pragma once

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define VCHAN_PAGE_SIZE 4096u
#define VCHAN_NOTIFY_WRITE_BIT 0x1u /* "tell me when you write" */
#define VCHAN_NOTIFY_READ_BIT 0x2u  /* "tell me when you consume" */

enum {
    VCHAN_LIVE_CLOSED = 0,
    VCHAN_LIVE_OPEN = 1,
    VCHAN_LIVE_WAITING = 2,
};

/* One direction's indices. Free-running u32 counters, masked only on use. */
typedef struct VchanIdx {
    _Atomic uint32_t cons;
    _Atomic uint32_t prod;
} VchanIdx;

/*
 * struct vchan_interface of <xen/io/libxenvchan.h>, 24 bytes plus grants[]. "left" is the
 * client-to-server ring, "right" the server-to-client ring. Every field may be rewritten by
 * the peer at any time, so it is only ever accessed atomically.
 */
typedef struct VchanCtrl {
    VchanIdx left;
    VchanIdx right;
    _Atomic uint16_t left_order;
    _Atomic uint16_t right_order;
    _Atomic uint8_t cli_live;
    _Atomic uint8_t srv_live;
    _Atomic uint8_t cli_notify; /* requests for the client to act on; server ORs in */
    _Atomic uint8_t srv_notify; /* requests for the server to act on; client ORs in */
    _Atomic uint32_t grants[];
} VchanCtrl;

_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint16_t) == 2 &&
                   sizeof(_Atomic uint8_t) == 1,
               "atomics must not change the wire layout");
_Static_assert(offsetof(VchanCtrl, left.cons) == 0, "layout");
_Static_assert(offsetof(VchanCtrl, left.prod) == 4, "layout");
_Static_assert(offsetof(VchanCtrl, right.cons) == 8, "layout");
_Static_assert(offsetof(VchanCtrl, right.prod) == 12, "layout");
_Static_assert(offsetof(VchanCtrl, left_order) == 16, "layout");
_Static_assert(offsetof(VchanCtrl, right_order) == 18, "layout");
_Static_assert(offsetof(VchanCtrl, cli_live) == 20, "layout");
_Static_assert(offsetof(VchanCtrl, srv_live) == 21, "layout");
_Static_assert(offsetof(VchanCtrl, cli_notify) == 22, "layout");
_Static_assert(offsetof(VchanCtrl, srv_notify) == 23, "layout");
_Static_assert(offsetof(VchanCtrl, grants) == 24, "layout");
_Static_assert(sizeof(VchanCtrl) == 24, "layout");

#define VCHAN_OFF_CLI_LIVE 20u /* unmap-notify byte of the client's mapping */
#define VCHAN_OFF_SRV_LIVE 21u /* unmap-notify byte of the server's share */

/* The peer's state as the ring layer sees it. */
typedef enum VchanPeer {
    VCHAN_PEER_CLOSED,
    VCHAN_PEER_OPEN,
    VCHAN_PEER_WAITING,
    VCHAN_PEER_BROKEN,
} VchanPeer;

/*
 * One endpoint. Geometry (buffers, sizes) is private and fixed at init; our own index is
 * kept in a private shadow that is only ever stored to shared memory, never read back.
 */
typedef struct VchanRing {
    VchanCtrl *ctrl;
    bool is_server;

    /* the ring we read: the peer produces, we consume */
    const uint8_t *rbuf;
    uint32_t rsize;
    _Atomic uint32_t *r_prod; /* peer-written: untrusted */
    _Atomic uint32_t *r_cons; /* ours: store only */
    uint32_t rcons;           /* shadow */

    /* the ring we write: we produce, the peer consumes */
    uint8_t *wbuf;
    uint32_t wsize;
    _Atomic uint32_t *w_prod; /* ours: store only */
    _Atomic uint32_t *w_cons; /* peer-written: untrusted */
    uint32_t wprod;           /* shadow */

    _Atomic uint8_t *own_notify;  /* bits the peer sets for us; we test-and-clear */
    _Atomic uint8_t *peer_notify; /* bits we set for the peer */
    _Atomic uint8_t *own_live;
    _Atomic uint8_t *peer_live;

    bool peer_gone;        /* latched: peer closed for good (client) or domain died */
    int error;             /* latched: 0 or -EPROTO */
    const char *violation; /* why error was latched, for the log */
} VchanRing;

/*
 * Set up an endpoint over @ctrl and the two ring buffers. @left/@right are the buffers of
 * the client-to-server and server-to-client rings with their sizes (powers of two).
 * @rcons/@wprod are the starting values of our own read-consumer and write-producer indices
 * (0 for a fresh server; what the page held at connect for a client).
 * Writes nothing to shared memory.
 */
void vchan_ring_init(VchanRing *r, VchanCtrl *ctrl, bool is_server, void *left, uint32_t left_size,
                     void *right, uint32_t right_size, uint32_t rcons, uint32_t wprod);

/*
 * Initialise a fresh control page as a server does before publishing it: zero indices,
 * the orders, srv_live = 1, cli_live = 2, cli_notify = NOTIFY_WRITE, srv_notify = 0.
 * Grants are filled in by the caller.
 */
void vchan_ctrl_server_init(VchanCtrl *ctrl, unsigned left_order, unsigned right_order);

/* Client side of the connect handshake: srv_notify = NOTIFY_WRITE, then cli_live = 1.
 * The caller then sends one unconditional event. */
void vchan_ctrl_client_connect(VchanCtrl *ctrl);

/* Mark our side closed (own live byte 0). */
void vchan_ring_close(VchanRing *r);

/*
 * Stream or packet read into @iov. At least @min bytes (1 for a stream, the total for a
 * packet) must be ready, else -EAGAIN after arming NOTIFY_WRITE in the peer's byte (and
 * re-checking). @max caps the copy. Returns bytes copied, 0 for EOF, -EAGAIN, -ECONNRESET
 * (peer closed with fewer than @min but more than 0 bytes), or -EPROTO (latched).
 * *@kickp is set when the peer asked to be told about consumption: the caller must send an
 * event.
 */
ssize_t vchan_ring_readv(VchanRing *r, const struct iovec *iov, int iovcnt, size_t min,
                         bool *kickp);

/*
 * Stream or packet write from @iov, at least @min bytes (packet: the total) or -EAGAIN after
 * arming NOTIFY_READ. Returns bytes copied, -EAGAIN, -EPIPE (peer closed) or -EPROTO.
 * *@kickp as for reads (the peer asked about writes).
 */
ssize_t vchan_ring_writev(VchanRing *r, const struct iovec *iov, int iovcnt, size_t min,
                          bool *kickp);

/* Bytes ready / space free, validated; -EPROTO on a violation. No notification armed. */
ssize_t vchan_ring_data_ready(VchanRing *r);
ssize_t vchan_ring_buffer_space(VchanRing *r);
/* Space free; if under @min, NOTIFY_READ is armed first and the space read again. */
ssize_t vchan_ring_buffer_space_notify(VchanRing *r, size_t min);
ssize_t vchan_ring_data_ready_notify(VchanRing *r);

/*
 * Arm a notification request (NOTIFY_WRITE when waiting to read, NOTIFY_READ when waiting
 * to write) with the full fence that must precede the caller's re-check of the indices.
 */
void vchan_ring_request_notify(VchanRing *r, uint8_t bit);

/*
 * Withdraw a request armed by vchan_ring_request_notify() once the re-check found the
 * condition already met: left set, it would make the peer send an event for nothing (a
 * system call for it, a spurious wake-up for us).
 */
void vchan_ring_cancel_notify(VchanRing *r, uint8_t bit);

/* The peer's state, normalised; an invalid live byte latches -EPROTO. */
VchanPeer vchan_ring_peer_state(VchanRing *r);

/* Latch a protocol violation (used by callers that detect one outside the ring ops). */
int vchan_ring_violation(VchanRing *r, const char *why);
