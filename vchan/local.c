/* SPDX-License-Identifier: MIT */
/*
 * local.c - an in-process vchan pair: a control page and rings in plain memory, laid out
 * exactly as a Xen server lays them out, connected through the same handshake (the client
 * reads and checks the orders once), with one eventfd per side standing in for the event
 * channel. Tests and benchmarks use it to run the real ring and blocking code without Xen.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "select.h"
#include "vchan-internal.h"

/* Memory and eventfds shared by both ends; freed when the second end goes. */
typedef struct LocalShared {
    atomic_int refs;
    VchanCtrl *ctrl;
    uint8_t *left_ext; /* external rings, or NULL when in the control page */
    uint8_t *right_ext;
    int efd[2]; /* [0] wakes the server, [1] wakes the client */
} LocalShared;

typedef struct LocalEnd {
    LocalShared *sh;
    int self; /* 0 server, 1 client */
} LocalEnd;

static void shared_unref(LocalShared *sh)
{
    if (!sh || atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    for (int i = 0; i < 2; i++)
        if (sh->efd[i] >= 0)
            close(sh->efd[i]);
    free(sh->left_ext);
    free(sh->right_ext);
    free(sh->ctrl);
    free(sh);
}

static int local_notify(Vchan *c)
{
    LocalEnd *e = c->priv;
    uint64_t one = 1;

    if (write(e->sh->efd[!e->self], &one, sizeof(one)) != (ssize_t)sizeof(one))
        return errno == EAGAIN ? 0 : -errno; /* counter saturated: an event is pending */
    return 0;
}

static int local_consume(Vchan *c)
{
    LocalEnd *e = c->priv;
    uint64_t n;

    if (read(e->sh->efd[e->self], &n, sizeof(n)) != (ssize_t)sizeof(n))
        return errno == EAGAIN ? 0 : -errno;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

static int local_check_peer(Vchan *c)
{
    (void)c;
    return -EOPNOTSUPP;
}

static void local_destroy(Vchan *c)
{
    LocalEnd *e = c->priv;

    if (!e)
        return;
    if (c->ring_ready) {
        vchan_ring_close(&c->ring);
        local_notify(c); /* the peer must see the close even if it asked for nothing */
    }
    shared_unref(e->sh);
    free(e);
    c->priv = NULL;
}

static const VchanBackend local_backend = {
    .name = "local",
    .notify = local_notify,
    .consume = local_consume,
    .consume_ready = local_consume,
    .check_peer = local_check_peer,
    .destroy = local_destroy,
};

static uint8_t *ring_alloc(unsigned order)
{
    uint8_t *p;

    if (order < VCHAN_ORDER_EXT_MIN)
        return NULL;
    p = aligned_alloc(VCHAN_PAGE_SIZE, (size_t)1 << order);
    if (p)
        memset(p, 0, (size_t)1 << order);
    return p;
}

static int end_new(LocalShared *sh, int self, Vchan **cp)
{
    Vchan *c = vchan_alloc(&local_backend, 0, "");
    LocalEnd *e;

    if (!c)
        return -ENOMEM;
    e = calloc(1, sizeof(*e));
    if (!e) {
        vchan_free(c);
        return -ENOMEM;
    }
    e->sh = sh;
    e->self = self;
    atomic_fetch_add(&sh->refs, 1);
    c->priv = e;
    c->fd = sh->efd[self];
    *cp = c;
    return 0;
}

int vchan_pair_new(Vchan **serverp, Vchan **clientp, size_t read_min, size_t write_min)
{
    Vchan *srv = NULL, *cli = NULL;
    LocalShared *sh;
    VchanGeom geom;
    unsigned untrusted_lo, untrusted_ro;
    uint8_t *lbuf, *rbuf;
    int rc;

    rc = vchan_geom_select(read_min, write_min, &geom);
    if (rc < 0)
        return rc;

    sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    atomic_init(&sh->refs, 1); /* ours until both ends hold it */
    sh->efd[0] = sh->efd[1] = -1;
    rc = -ENOMEM;
    sh->ctrl = aligned_alloc(VCHAN_PAGE_SIZE, VCHAN_PAGE_SIZE);
    if (!sh->ctrl)
        goto fail;
    memset(sh->ctrl, 0, VCHAN_PAGE_SIZE);
    sh->left_ext = ring_alloc(geom.left_order);
    sh->right_ext = ring_alloc(geom.right_order);
    if ((geom.left_order >= VCHAN_ORDER_EXT_MIN && !sh->left_ext) ||
        (geom.right_order >= VCHAN_ORDER_EXT_MIN && !sh->right_ext))
        goto fail;
    for (int i = 0; i < 2; i++) {
        sh->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (sh->efd[i] < 0) {
            rc = -errno;
            goto fail;
        }
    }

    /* server: lay out the page as vchan_server_new() does */
    rc = end_new(sh, 0, &srv);
    if (rc < 0)
        goto fail;
    vchan_ctrl_server_init(sh->ctrl, geom.left_order, geom.right_order);
    lbuf = sh->left_ext ? sh->left_ext
                        : (uint8_t *)sh->ctrl + vchan_order_page_offset(geom.left_order);
    rbuf = sh->right_ext ? sh->right_ext
                         : (uint8_t *)sh->ctrl + vchan_order_page_offset(geom.right_order);
    vchan_ring_init(&srv->ring, sh->ctrl, true, lbuf, 1u << geom.left_order, rbuf,
                    1u << geom.right_order, 0, 0);
    srv->ring_ready = true;

    /* client: read the geometry once, check it, connect as vchan_client_new() does */
    untrusted_lo = atomic_load_explicit(&sh->ctrl->left_order, memory_order_relaxed);
    untrusted_ro = atomic_load_explicit(&sh->ctrl->right_order, memory_order_relaxed);
    rc = vchan_geom_check(untrusted_lo, untrusted_ro);
    if (rc < 0)
        goto fail;
    rc = end_new(sh, 1, &cli);
    if (rc < 0)
        goto fail;
    vchan_ring_init(&cli->ring, sh->ctrl, false, lbuf, 1u << untrusted_lo, rbuf, 1u << untrusted_ro,
                    atomic_load_explicit(&sh->ctrl->right.cons, memory_order_relaxed),
                    atomic_load_explicit(&sh->ctrl->left.prod, memory_order_relaxed));
    cli->ring_ready = true;
    vchan_ctrl_client_connect(sh->ctrl);
    vchan_kick(cli); /* the one unconditional connect event */

    shared_unref(sh);
    *serverp = srv;
    *clientp = cli;
    return 0;

fail:
    vchan_free(cli);
    vchan_free(srv);
    shared_unref(sh);
    return rc;
}
