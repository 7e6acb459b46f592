/* SPDX-License-Identifier: MIT */
/*
 * ring.c - the pure ring logic of one vchan endpoint on a libxenvchan control page: stream
 * and packet copies with wrap-around, the notify-bit protocol and the peer's live byte. It
 * makes no Xen calls; callers send the event when told to (kickp). The peer's indices and
 * live byte are untrusted: each is loaded once into an untrusted_* variable, checked, and
 * only then used; our own indices live in private shadows that are stored, never re-read.
 * Memory ordering follows the spec: peer index load-acquire, copy, own index store-release,
 * seq_cst fence, then the notify byte.
 */
#include "ring.h"

#include <string.h>

void vchan_ring_init(VchanRing *r, VchanCtrl *ctrl, bool is_server, void *left, uint32_t left_size,
                     void *right, uint32_t right_size, uint32_t rcons, uint32_t wprod)
{
    *r = (VchanRing){.ctrl = ctrl, .is_server = is_server, .rcons = rcons, .wprod = wprod};
    if (is_server) {
        /* server reads left, writes right */
        r->rbuf = left;
        r->rsize = left_size;
        r->r_prod = &ctrl->left.prod;
        r->r_cons = &ctrl->left.cons;
        r->wbuf = right;
        r->wsize = right_size;
        r->w_prod = &ctrl->right.prod;
        r->w_cons = &ctrl->right.cons;
        r->own_notify = &ctrl->srv_notify;
        r->peer_notify = &ctrl->cli_notify;
        r->own_live = &ctrl->srv_live;
        r->peer_live = &ctrl->cli_live;
    } else {
        r->rbuf = right;
        r->rsize = right_size;
        r->r_prod = &ctrl->right.prod;
        r->r_cons = &ctrl->right.cons;
        r->wbuf = left;
        r->wsize = left_size;
        r->w_prod = &ctrl->left.prod;
        r->w_cons = &ctrl->left.cons;
        r->own_notify = &ctrl->cli_notify;
        r->peer_notify = &ctrl->srv_notify;
        r->own_live = &ctrl->cli_live;
        r->peer_live = &ctrl->srv_live;
    }
}

void vchan_ctrl_server_init(VchanCtrl *ctrl, unsigned left_order, unsigned right_order)
{
    atomic_store_explicit(&ctrl->left.cons, 0, memory_order_relaxed);
    atomic_store_explicit(&ctrl->left.prod, 0, memory_order_relaxed);
    atomic_store_explicit(&ctrl->right.cons, 0, memory_order_relaxed);
    atomic_store_explicit(&ctrl->right.prod, 0, memory_order_relaxed);
    atomic_store_explicit(&ctrl->left_order, (uint16_t)left_order, memory_order_relaxed);
    atomic_store_explicit(&ctrl->right_order, (uint16_t)right_order, memory_order_relaxed);
    atomic_store_explicit(&ctrl->cli_notify, VCHAN_NOTIFY_WRITE_BIT, memory_order_relaxed);
    atomic_store_explicit(&ctrl->srv_notify, 0, memory_order_relaxed);
    atomic_store_explicit(&ctrl->cli_live, VCHAN_LIVE_WAITING, memory_order_relaxed);
    atomic_store_explicit(&ctrl->srv_live, VCHAN_LIVE_OPEN, memory_order_seq_cst);
}

void vchan_ctrl_client_connect(VchanCtrl *ctrl)
{
    atomic_store_explicit(&ctrl->srv_notify, VCHAN_NOTIFY_WRITE_BIT, memory_order_seq_cst);
    atomic_store_explicit(&ctrl->cli_live, VCHAN_LIVE_OPEN, memory_order_seq_cst);
}

void vchan_ring_close(VchanRing *r)
{
    if (r->own_live)
        atomic_store_explicit(r->own_live, VCHAN_LIVE_CLOSED, memory_order_seq_cst);
}

int vchan_ring_violation(VchanRing *r, const char *why)
{
    if (!r->error) {
        r->error = -EPROTO;
        r->violation = why;
    }
    return r->error;
}

VchanPeer vchan_ring_peer_state(VchanRing *r)
{
    uint8_t untrusted_live;

    if (r->error)
        return VCHAN_PEER_BROKEN;
    if (r->peer_gone)
        return VCHAN_PEER_CLOSED;

    untrusted_live = atomic_load_explicit(r->peer_live, memory_order_acquire);
    switch (untrusted_live) {
    case VCHAN_LIVE_CLOSED:
        /* A server never reopens its page, so the client latches the close. A server
         * keeps looking: a new client may map the same page again (cli_live 0 -> 1). */
        if (!r->is_server)
            r->peer_gone = true;
        return VCHAN_PEER_CLOSED;
    case VCHAN_LIVE_OPEN:
        return VCHAN_PEER_OPEN;
    case VCHAN_LIVE_WAITING:
        return VCHAN_PEER_WAITING;
    default:
        vchan_ring_violation(r, "peer live byte is not 0, 1 or 2");
        return VCHAN_PEER_BROKEN;
    }
}

/* Load the peer's producer index once and derive the bytes ready. */
static int read_ready(VchanRing *r, uint32_t *readyp)
{
    uint32_t untrusted_prod = atomic_load_explicit(r->r_prod, memory_order_acquire);
    uint32_t ready = untrusted_prod - r->rcons;

    if (ready > r->rsize)
        return vchan_ring_violation(r, "peer producer index out of range (ready > ring size)");
    *readyp = ready;
    return 0;
}

/* Load the peer's consumer index once and derive the free space. */
static int write_free(VchanRing *r, uint32_t *freep)
{
    uint32_t untrusted_cons = atomic_load_explicit(r->w_cons, memory_order_acquire);
    uint32_t used = r->wprod - untrusted_cons;

    if (used > r->wsize)
        return vchan_ring_violation(r, "peer consumer index out of range (used > ring size)");
    *freep = r->wsize - used;
    return 0;
}

void vchan_ring_request_notify(VchanRing *r, uint8_t bit)
{
    atomic_fetch_or_explicit(r->peer_notify, bit, memory_order_seq_cst);
    /* the request must be visible before the caller re-reads the indices */
    atomic_thread_fence(memory_order_seq_cst);
}

void vchan_ring_cancel_notify(VchanRing *r, uint8_t bit)
{
    /* only our own request in the peer's byte; racing with the peer's test-and-clear at
     * worst yields one spurious event */
    if (atomic_load_explicit(r->peer_notify, memory_order_relaxed) & bit)
        atomic_fetch_and_explicit(r->peer_notify, (uint8_t)~bit, memory_order_relaxed);
}

/*
 * After publishing our index: did the peer ask to hear about it? The fence orders our
 * index store before the notify-byte load (the peer does the mirror image in
 * request_notify), so either it sees our index or we see its bit. The plain load first
 * keeps the busy path free of locked operations when no one is waiting.
 */
static bool take_notify(VchanRing *r, uint8_t bit)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!(atomic_load_explicit(r->own_notify, memory_order_relaxed) & bit))
        return false;
    return atomic_fetch_and_explicit(r->own_notify, (uint8_t)~bit, memory_order_seq_cst) & bit;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return SIZE_MAX;
        total += iov[i].iov_len;
    }
    return total;
}

/* Copy @n bytes out of the ring starting at index @pos; n <= size was checked. */
static void ring_to_iov(const uint8_t *ring, uint32_t size, uint32_t pos, const struct iovec *iov,
                        int iovcnt, size_t n)
{
    size_t off = pos & (size - 1);

    for (int i = 0; n > 0 && i < iovcnt; i++) {
        uint8_t *dst = iov[i].iov_base;
        size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;

        while (len > 0) {
            size_t chunk = size - off; /* room to the ring's end */

            if (chunk > len)
                chunk = len;
            memcpy(dst, ring + off, chunk);
            dst += chunk;
            len -= chunk;
            n -= chunk;
            off += chunk;
            if (off == size)
                off = 0;
        }
    }
}

static void iov_to_ring(uint8_t *ring, uint32_t size, uint32_t pos, const struct iovec *iov,
                        int iovcnt, size_t n)
{
    size_t off = pos & (size - 1);

    for (int i = 0; n > 0 && i < iovcnt; i++) {
        const uint8_t *src = iov[i].iov_base;
        size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;

        while (len > 0) {
            size_t chunk = size - off;

            if (chunk > len)
                chunk = len;
            memcpy(ring + off, src, chunk);
            src += chunk;
            len -= chunk;
            n -= chunk;
            off += chunk;
            if (off == size)
                off = 0;
        }
    }
}

ssize_t vchan_ring_readv(VchanRing *r, const struct iovec *iov, int iovcnt, size_t min, bool *kickp)
{
    size_t want = iov_total(iov, iovcnt);
    uint32_t ready = 0;
    size_t n;
    int rc;

    *kickp = false;
    if (r->error)
        return r->error;
    if (min == 0 || min > want)
        return -EINVAL;

    rc = read_ready(r, &ready);
    if (rc < 0)
        return rc;

    if (ready < min) {
        switch (vchan_ring_peer_state(r)) {
        case VCHAN_PEER_BROKEN:
            return r->error;
        case VCHAN_PEER_CLOSED:
            /* The peer stored its last index before its live byte, and we loaded the
             * live byte with acquire: one more look now sees everything it wrote. */
            rc = read_ready(r, &ready);
            if (rc < 0)
                return rc;
            if (ready < min)
                return ready == 0 ? 0 : -ECONNRESET;
            break;
        case VCHAN_PEER_OPEN:
        case VCHAN_PEER_WAITING:
            vchan_ring_request_notify(r, VCHAN_NOTIFY_WRITE_BIT);
            rc = read_ready(r, &ready);
            if (rc < 0)
                return rc;
            if (ready < min)
                return -EAGAIN;
            break;
        }
    }

    n = ready < want ? ready : want;
    ring_to_iov(r->rbuf, r->rsize, r->rcons, iov, iovcnt, n);
    r->rcons += (uint32_t)n;
    atomic_store_explicit(r->r_cons, r->rcons, memory_order_release);
    *kickp = take_notify(r, VCHAN_NOTIFY_READ_BIT);
    return (ssize_t)n;
}

ssize_t vchan_ring_writev(VchanRing *r, const struct iovec *iov, int iovcnt, size_t min,
                          bool *kickp)
{
    size_t want = iov_total(iov, iovcnt);
    uint32_t space = 0;
    size_t n;
    int rc;

    *kickp = false;
    if (r->error)
        return r->error;
    if (min == 0 || min > want)
        return -EINVAL;

    switch (vchan_ring_peer_state(r)) {
    case VCHAN_PEER_BROKEN:
        return r->error;
    case VCHAN_PEER_CLOSED:
        return -EPIPE;
    case VCHAN_PEER_OPEN:
    case VCHAN_PEER_WAITING: /* a server may fill the ring before the client comes */
        break;
    }

    rc = write_free(r, &space);
    if (rc < 0)
        return rc;
    if (space < min) {
        vchan_ring_request_notify(r, VCHAN_NOTIFY_READ_BIT);
        rc = write_free(r, &space);
        if (rc < 0)
            return rc;
        if (space < min)
            return -EAGAIN;
    }

    n = space < want ? space : want;
    iov_to_ring(r->wbuf, r->wsize, r->wprod, iov, iovcnt, n);
    r->wprod += (uint32_t)n;
    atomic_store_explicit(r->w_prod, r->wprod, memory_order_release);
    *kickp = take_notify(r, VCHAN_NOTIFY_WRITE_BIT);
    return (ssize_t)n;
}

ssize_t vchan_ring_data_ready(VchanRing *r)
{
    uint32_t ready = 0;
    int rc;

    if (r->error)
        return r->error;
    rc = read_ready(r, &ready);
    return rc < 0 ? rc : (ssize_t)ready;
}

ssize_t vchan_ring_buffer_space(VchanRing *r)
{
    uint32_t space = 0;
    int rc;

    if (r->error)
        return r->error;
    rc = write_free(r, &space);
    return rc < 0 ? rc : (ssize_t)space;
}

ssize_t vchan_ring_data_ready_notify(VchanRing *r)
{
    ssize_t ready = vchan_ring_data_ready(r);

    if (ready != 0)
        return ready;
    switch (vchan_ring_peer_state(r)) {
    case VCHAN_PEER_BROKEN:
        return r->error;
    case VCHAN_PEER_CLOSED:
        return 0; /* nothing more will come: no event to ask for */
    case VCHAN_PEER_OPEN:
    case VCHAN_PEER_WAITING:
        break;
    }
    vchan_ring_request_notify(r, VCHAN_NOTIFY_WRITE_BIT);
    return vchan_ring_data_ready(r);
}

ssize_t vchan_ring_buffer_space_notify(VchanRing *r, size_t min)
{
    ssize_t space = vchan_ring_buffer_space(r);

    if (space < 0 || (size_t)space >= min)
        return space;
    vchan_ring_request_notify(r, VCHAN_NOTIFY_READ_BIT);
    space = vchan_ring_buffer_space(r);
    /* The reader freed enough meanwhile: withdraw the request, or its next read would send an
     * event that nobody waits for (a system call on each side). */
    if (space > 0 && (size_t)space >= min)
        vchan_ring_cancel_notify(r, VCHAN_NOTIFY_READ_BIT);
    return space;
}
