/* SPDX-License-Identifier: MIT */
/*
 * Drop-in libxenevtchn.so.1 for the emulated Xen host. Ports live in the
 * per-domain shared table (simcore); a handle receives its events as
 * datagrams on an abstract Unix socket, which is also the pollable fd.
 * Delivery masks a port until xenevtchn_unmask(), as the Linux driver does,
 * and the fd is readable exactly when xenevtchn_pending() has a port to
 * return.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenevtchn.h>

#include "simcore.h"

struct xenevtchn_handle {
    int sock;
    int hv;
    uint32_t dom;
    uint32_t pid; /* the pid in the socket's name (not getpid() after a fork) */
    uint32_t serial;
    pthread_mutex_t lock;
    uint32_t *ports; /* ports bound through this handle */
    size_t nports, cap;
};

static bool own_port(xenevtchn_handle *xce, uint32_t port)
{
    bool found = false;

    pthread_mutex_lock(&xce->lock);
    for (size_t i = 0; i < xce->nports && !found; i++)
        found = xce->ports[i] == port;
    pthread_mutex_unlock(&xce->lock);
    return found;
}

static int add_port(xenevtchn_handle *xce, uint32_t port)
{
    int r = 0;

    pthread_mutex_lock(&xce->lock);
    if (xce->nports == xce->cap) {
        size_t cap = xce->cap ? xce->cap * 2 : 8;
        uint32_t *p = realloc(xce->ports, cap * sizeof(*p));
        if (!p) {
            r = -ENOMEM;
            goto out;
        }
        xce->ports = p;
        xce->cap = cap;
    }
    xce->ports[xce->nports++] = port;
out:
    pthread_mutex_unlock(&xce->lock);
    return r;
}

static void del_port(xenevtchn_handle *xce, uint32_t port)
{
    pthread_mutex_lock(&xce->lock);
    for (size_t i = 0; i < xce->nports; i++) {
        if (xce->ports[i] == port) {
            xce->ports[i] = xce->ports[--xce->nports];
            break;
        }
    }
    pthread_mutex_unlock(&xce->lock);
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned int flags)
{
    struct sockaddr_un sun;
    xenevtchn_handle *xce;
    socklen_t len;
    int r;

    if (sim_self_domid() == SIM_DOMID_INVALID) {
        errno = EINVAL;
        return NULL;
    }
    xce = calloc(1, sizeof(*xce));
    if (!xce)
        return NULL;
    pthread_mutex_init(&xce->lock, NULL);
    xce->sock = xce->hv = -1;
    xce->dom = sim_self_domid();
    xce->serial = sim_next_serial();
    xce->pid = (uint32_t)getpid();
    r = sim_hv_connect(SIM_KIND_EVTCHN, xce->serial);
    if (r < 0)
        goto fail;
    xce->hv = r;
    xce->sock = socket(AF_UNIX, SOCK_DGRAM | ((flags & XENEVTCHN_NO_CLOEXEC) ? 0 : SOCK_CLOEXEC),
                       0);
    if (xce->sock < 0) {
        r = -errno;
        goto fail;
    }
    if ((r = sim_evtchn_addr(xce->pid, xce->serial, &sun, &len)) < 0)
        goto fail;
    if (bind(xce->sock, (struct sockaddr *)&sun, len) < 0) {
        r = -errno;
        goto fail;
    }
    if (!sim_domfile(xce->dom)) {
        r = -ESRCH;
        goto fail;
    }
    return xce;
fail:
    if (xce->sock >= 0)
        close(xce->sock);
    if (xce->hv >= 0)
        close(xce->hv);
    pthread_mutex_destroy(&xce->lock);
    free(xce);
    errno = -r;
    return NULL;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd, unsigned int flags)
{
    /* only used by xenstored's live update, which the sim does not offer */
    errno = EOPNOTSUPP;
    return NULL;
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    if (!xce)
        return 0;
    for (size_t i = 0; i < xce->nports; i++)
        sim_evtchn_close_port(xce->dom, xce->ports[i]);
    close(xce->sock);
    close(xce->hv);
    free(xce->ports);
    pthread_mutex_destroy(&xce->lock);
    free(xce);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->sock;
}

int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
    errno = EOPNOTSUPP;
    return -1;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    int r;

    if (!own_port(xce, port)) {
        errno = ENOTCONN;
        return -1;
    }
    r = sim_evtchn_send(xce->dom, port);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}

static void claim(xenevtchn_handle *xce, SimPort *p)
{
    atomic_store(&p->owner_pid, xce->pid);
    atomic_store(&p->owner_serial, xce->serial);
    atomic_store(&p->flags, 0);
}

static int finish_bind(xenevtchn_handle *xce, SimDomFile *df, int port)
{
    if (add_port(xce, (uint32_t)port) < 0) {
        sim_evtchn_close_port(xce->dom, (uint32_t)port);
        errno = ENOMEM;
        return -1;
    }
    return port;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
    SimDomFile *df = sim_domfile(xce->dom);
    SimPort *p;
    int port;

    if (!df || domid >= SIM_MAX_DOMAINS || !sim_domfile(domid)) {
        errno = ESRCH;
        return -1;
    }
    if ((port = sim_evtchn_alloc(df)) < 0) {
        errno = -port;
        return -1;
    }
    p = &df->ports[port];
    claim(xce, p);
    atomic_store(&p->remote_dom, domid);
    atomic_store(&p->remote_port, 0);
    atomic_store_explicit(&p->state, SIM_PORT_UNBOUND, memory_order_release);
    return finish_bind(xce, df, port);
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    SimDomFile *df = sim_domfile(xce->dom), *rdf;
    uint32_t expect = SIM_PORT_UNBOUND;
    SimPort *r, *p;
    int port;

    if (!df || domid >= SIM_MAX_DOMAINS || !(rdf = sim_domfile(domid))) {
        errno = ESRCH;
        return -1;
    }
    if (remote_port == 0 || remote_port >= SIM_MAX_PORTS) {
        errno = EINVAL;
        return -1;
    }
    r = &rdf->ports[remote_port];
    if (atomic_load_explicit(&r->state, memory_order_acquire) != SIM_PORT_UNBOUND ||
        atomic_load(&r->remote_dom) != xce->dom) {
        errno = EINVAL; /* not offered to us, or already bound */
        return -1;
    }
    if ((port = sim_evtchn_alloc(df)) < 0) {
        errno = -port;
        return -1;
    }
    if (!atomic_compare_exchange_strong(&r->state, &expect, SIM_PORT_BINDING)) {
        atomic_store(&df->ports[port].state, SIM_PORT_FREE);
        errno = EINVAL;
        return -1;
    }
    p = &df->ports[port];
    claim(xce, p);
    atomic_store(&p->remote_dom, domid);
    atomic_store(&p->remote_port, remote_port);
    atomic_store_explicit(&p->state, SIM_PORT_INTERDOMAIN, memory_order_release);
    atomic_store(&r->remote_port, (uint32_t)port);
    atomic_store_explicit(&r->state, SIM_PORT_INTERDOMAIN, memory_order_release);
    return finish_bind(xce, df, port);
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    SimDomFile *df = sim_domfile(xce->dom);
    SimPort *p;
    int port;

    if (!df) {
        errno = ESRCH;
        return -1;
    }
    if ((port = sim_evtchn_alloc(df)) < 0) {
        errno = -port;
        return -1;
    }
    p = &df->ports[port];
    claim(xce, p);
    atomic_store(&p->virq, virq);
    atomic_store(&p->remote_dom, xce->dom);
    atomic_store_explicit(&p->state, SIM_PORT_VIRQ, memory_order_release);
    return finish_bind(xce, df, port);
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    if (!own_port(xce, port)) {
        errno = EINVAL;
        return -1;
    }
    del_port(xce, port);
    sim_evtchn_close_port(xce->dom, port);
    return 0;
}

/* Re-raise events whose datagram was dropped on a full queue. */
static void reraise_lost(xenevtchn_handle *xce, SimDomFile *df)
{
    pthread_mutex_lock(&xce->lock);
    for (size_t i = 0; i < xce->nports; i++) {
        SimPort *p = &df->ports[xce->ports[i]];
        if (atomic_load(&p->flags) & SIM_PORT_LOST) {
            atomic_fetch_and(&p->flags, ~(SIM_PORT_LOST | SIM_PORT_PENDING));
            pthread_mutex_unlock(&xce->lock);
            sim_evtchn_deliver(xce->dom, xce->ports[i]);
            pthread_mutex_lock(&xce->lock);
        }
    }
    pthread_mutex_unlock(&xce->lock);
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    SimDomFile *df = sim_domfile(xce->dom);
    uint32_t port;
    ssize_t n;

    if (!df) {
        errno = ESRCH;
        return -1;
    }
    for (;;) {
        n = recv(xce->sock, &port, sizeof(port), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1; /* EAGAIN when the caller made the fd non-blocking */
        if (n != sizeof(port) || port == 0 || port >= SIM_MAX_PORTS)
            continue;
        break;
    }
    /* delivery masks the port; clear PENDING so the next event is sent */
    atomic_fetch_or(&df->ports[port].flags, SIM_PORT_MASKED);
    atomic_fetch_and(&df->ports[port].flags, ~SIM_PORT_PENDING);
    reraise_lost(xce, df);
    return (int)port;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    SimDomFile *df = sim_domfile(xce->dom);
    uint32_t old;

    if (!df || port == 0 || port >= SIM_MAX_PORTS) {
        errno = EINVAL;
        return -1;
    }
    old = atomic_fetch_and(&df->ports[port].flags, ~SIM_PORT_MASKED);
    if ((old & SIM_PORT_MASKED) && (old & SIM_PORT_PENDING)) {
        /* an event arrived while masked: deliver it now */
        atomic_fetch_and(&df->ports[port].flags, ~SIM_PORT_PENDING);
        sim_evtchn_deliver(xce->dom, port);
    }
    return 0;
}
