/* SPDX-License-Identifier: MIT */
/*
 * Drop-in libxengnttab.so.1 (xengnttab_* map side and xengntshr_* share
 * side) for the emulated Xen host. A granted page is a file in the
 * instance folder; mapping checks that the mapper is the grantee (EPERM)
 * and that the ref exists (ENOENT). Multi-page maps are one contiguous
 * range. Unmap-notify registrations are executed here on unmap/unshare and
 * by the daemon when the process closes the handle or dies.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xengnttab.h>

#include "simcore.h"

typedef struct SimMapping {
    struct SimMapping *next;
    uint8_t *addr;
    uint32_t count;
    uint32_t owner; /* first page's owner and ref: the notify page */
    uint32_t ref;
    uint32_t notify; /* offset | flags << 16, 0 = none */
    uint32_t notify_port;
    uint32_t refs[]; /* share side: every ref, to unshare */
} SimMapping;

typedef struct SimGnt {
    int hv;
    uint32_t dom;
    pthread_mutex_t lock;
    SimMapping *maps;
} SimGnt;

/* Debian's headers name both handle types struct xengntdev_handle. */
struct xengntdev_handle {
    SimGnt g;
};

static int gnt_init(SimGnt *g, enum SimHandleKind kind)
{
    int r;

    g->dom = sim_self_domid();
    if (g->dom == SIM_DOMID_INVALID)
        return -EINVAL;
    r = sim_hv_connect(kind, sim_next_serial());
    if (r < 0)
        return r;
    g->hv = r;
    if (!sim_domfile(g->dom)) {
        close(g->hv);
        return -ESRCH;
    }
    pthread_mutex_init(&g->lock, NULL);
    return 0;
}

static void gnt_deinit(SimGnt *g)
{
    SimMapping *m = g->maps, *next;

    /* Mappings stay valid after close, as with gntdev; only forget them. */
    for (; m; m = next) {
        next = m->next;
        free(m);
    }
    close(g->hv);
    pthread_mutex_destroy(&g->lock);
}

/* Open and close either kind of handle: both are a struct xengntdev_handle. */
static struct xengntdev_handle *gnt_open(enum SimHandleKind kind)
{
    struct xengntdev_handle *h = calloc(1, sizeof(*h));
    int r;

    if (!h)
        return NULL;
    if ((r = gnt_init(&h->g, kind)) < 0) {
        free(h);
        errno = -r;
        return NULL;
    }
    return h;
}

static int gnt_close(struct xengntdev_handle *h)
{
    if (!h)
        return 0;
    gnt_deinit(&h->g);
    free(h);
    return 0;
}

static void gnt_add(SimGnt *g, SimMapping *m)
{
    pthread_mutex_lock(&g->lock);
    m->next = g->maps;
    g->maps = m;
    pthread_mutex_unlock(&g->lock);
}

static SimMapping *gnt_take(SimGnt *g, void *addr, uint32_t count)
{
    SimMapping **pp, *m = NULL;

    pthread_mutex_lock(&g->lock);
    for (pp = &g->maps; *pp; pp = &(*pp)->next) {
        if ((*pp)->addr == addr && (*pp)->count == count) {
            m = *pp;
            *pp = m->next;
            break;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return m;
}

static void *reserve(uint32_t count)
{
    void *p = mmap(NULL, (size_t)count * SIM_PAGE_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uint32_t notify_word(int offset, evtchn_port_t port)
{
    uint32_t flags = 0, off = 0;

    if (offset >= 0 && offset < (int)SIM_PAGE_SIZE) {
        flags |= SIM_NOTIFY_CLEAR_BYTE;
        off = (uint32_t)offset;
    }
    if (port != (evtchn_port_t)-1)
        flags |= SIM_NOTIFY_SEND_EVENT;
    return flags ? (off | flags << 16) : 0;
}

/* ---- map side -------------------------------------------------------- */

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    return gnt_open(SIM_KIND_GNTTAB);
}

int xengnttab_close(xengnttab_handle *xgt)
{
    return gnt_close(xgt);
}

int xengnttab_fd(xengnttab_handle *xgt)
{
    return xgt->g.hv;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    return 0;
}

static void *map_refs(xengnttab_handle *xgt, uint32_t count, const uint32_t *domids,
                      uint32_t domid_stride, const uint32_t *refs, int prot, int notify_offset,
                      evtchn_port_t notify_port)
{
    SimMapping *m;
    uint8_t *base;
    int err = 0;

    if (count == 0 || count > 1u << 20 || (prot & ~(PROT_READ | PROT_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    m = calloc(1, sizeof(*m));
    if (!m || !(base = reserve(count))) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    for (uint32_t i = 0; i < count; i++) {
        int fd = sim_grant_open(domids[i * domid_stride], refs[i], xgt->g.dom,
                                (prot & PROT_WRITE) != 0);
        if (fd < 0) {
            err = -fd;
            break;
        }
        if (mmap(base + (size_t)i * SIM_PAGE_SIZE, SIM_PAGE_SIZE, prot, MAP_SHARED | MAP_FIXED, fd,
                 0) == MAP_FAILED)
            err = errno;
        close(fd);
        if (err)
            break;
    }
    if (err) {
        munmap(base, (size_t)count * SIM_PAGE_SIZE);
        free(m);
        errno = err;
        return NULL;
    }
    m->addr = base;
    m->count = count;
    m->owner = domids[0];
    m->ref = refs[0];
    if ((prot & PROT_WRITE) == 0)
        notify_offset = -1; /* gntdev clears the byte only in a writable map */
    m->notify = notify_word(notify_offset, notify_port);
    m->notify_port = notify_port;
    if (m->notify)
        sim_hv_send(xgt->g.hv, SIM_MSG_NOTIFY_SET, m->owner, m->ref, m->notify, notify_port);
    gnt_add(&xgt->g, m);
    return base;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    return map_refs(xgt, 1, &domid, 0, &ref, prot, -1, (evtchn_port_t)-1);
}

void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t *domids,
                               uint32_t *refs, int prot)
{
    return map_refs(xgt, count, domids, 1, refs, prot, -1, (evtchn_port_t)-1);
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
                                      uint32_t *refs, int prot)
{
    return map_refs(xgt, count, &domid, 0, refs, prot, -1, (evtchn_port_t)-1);
}

void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot,
                                     uint32_t notify_offset, evtchn_port_t notify_port)
{
    return map_refs(xgt, 1, &domid, 0, &ref, prot, (int)notify_offset, notify_port);
}

static void run_notify(SimGnt *g, SimMapping *m)
{
    uint32_t flags = m->notify >> 16;

    if (flags & SIM_NOTIFY_CLEAR_BYTE)
        m->addr[m->notify & 0xFFFFu] = 0;
    if (flags & SIM_NOTIFY_SEND_EVENT)
        (void)sim_evtchn_send(g->dom, m->notify_port);
    sim_hv_send(g->hv, SIM_MSG_NOTIFY_CLEAR, m->owner, m->ref, 0, 0);
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    SimMapping *m = gnt_take(&xgt->g, start_address, count);
    uint32_t flags;

    if (!m) {
        errno = EINVAL;
        return -1;
    }
    flags = m->notify >> 16;
    if (flags & SIM_NOTIFY_CLEAR_BYTE)
        m->addr[m->notify & 0xFFFFu] = 0;
    munmap(m->addr, (size_t)m->count * SIM_PAGE_SIZE);
    if (flags & SIM_NOTIFY_SEND_EVENT)
        (void)sim_evtchn_send(xgt->g.dom, m->notify_port);
    if (m->notify)
        sim_hv_send(xgt->g.hv, SIM_MSG_NOTIFY_CLEAR, m->owner, m->ref, 0, 0);
    free(m);
    return 0;
}

int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
                         xengnttab_grant_copy_segment_t *segs)
{
    errno = ENOSYS;
    return -1;
}

int xengnttab_dmabuf_exp_from_refs(xengnttab_handle *xgt, uint32_t domid, uint32_t flags,
                                   uint32_t count, const uint32_t *refs, uint32_t *fd)
{
    errno = ENOSYS;
    return -1;
}

int xengnttab_dmabuf_exp_wait_released(xengnttab_handle *xgt, uint32_t fd, uint32_t wait_to_ms)
{
    errno = ENOSYS;
    return -1;
}

int xengnttab_dmabuf_imp_to_refs(xengnttab_handle *xgt, uint32_t domid, uint32_t fd, uint32_t count,
                                 uint32_t *refs)
{
    errno = ENOSYS;
    return -1;
}

int xengnttab_dmabuf_imp_release(xengnttab_handle *xgt, uint32_t fd)
{
    errno = ENOSYS;
    return -1;
}

/* ---- share side ------------------------------------------------------ */

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    return gnt_open(SIM_KIND_GNTSHR);
}

int xengntshr_close(xengntshr_handle *xgs)
{
    return gnt_close(xgs); /* the daemon removes what is still shared */
}

int xengntshr_fd(xengntshr_handle *xgs)
{
    return xgs->g.hv;
}

static void unshare_refs(SimGnt *g, const uint32_t *refs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        sim_grant_remove(g->dom, refs[i]);
        sim_hv_send(g->hv, SIM_MSG_UNSHARE, refs[i], 0, 0, 0);
    }
}

static void *share(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs, int writable,
                   int notify_offset, evtchn_port_t notify_port)
{
    SimMapping *m;
    uint8_t *base;
    uint32_t done = 0;
    int err = 0;

    if (count <= 0 || count > 1 << 20 || domid >= SIM_MAX_DOMAINS) {
        errno = EINVAL;
        return NULL;
    }
    m = calloc(1, sizeof(*m) + (size_t)count * sizeof(uint32_t));
    if (!m || !(base = reserve((uint32_t)count))) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    for (; done < (uint32_t)count; done++) {
        int fd, ref = sim_grant_alloc(xgs->g.dom, domid, writable != 0, &fd);
        if (ref < 0) {
            err = -ref;
            break;
        }
        m->refs[done] = (uint32_t)ref;
        sim_hv_send(xgs->g.hv, SIM_MSG_SHARE, (uint32_t)ref, 0, 0, 0);
        if (mmap(base + (size_t)done * SIM_PAGE_SIZE, SIM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
            err = errno;
        close(fd);
        if (err) {
            done++;
            break;
        }
    }
    if (err) {
        unshare_refs(&xgs->g, m->refs, done);
        munmap(base, (size_t)count * SIM_PAGE_SIZE);
        free(m);
        errno = err;
        return NULL;
    }
    memcpy(refs, m->refs, (size_t)count * sizeof(uint32_t));
    m->addr = base;
    m->count = (uint32_t)count;
    m->owner = xgs->g.dom;
    m->ref = m->refs[0];
    m->notify = notify_word(notify_offset, notify_port);
    m->notify_port = notify_port;
    if (m->notify)
        sim_hv_send(xgs->g.hv, SIM_MSG_NOTIFY_SET, m->owner, m->ref, m->notify, notify_port);
    gnt_add(&xgs->g, m);
    return base;
}

void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs,
                            int writable)
{
    return share(xgs, domid, count, refs, writable, -1, (evtchn_port_t)-1);
}

void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid, uint32_t *ref,
                                  int writable, uint32_t notify_offset, evtchn_port_t notify_port)
{
    return share(xgs, domid, 1, ref, writable, (int)notify_offset, notify_port);
}

int xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count)
{
    SimMapping *m = gnt_take(&xgs->g, start_address, count);

    if (!m) {
        errno = EINVAL;
        return -1;
    }
    if (m->notify)
        run_notify(&xgs->g, m);
    unshare_refs(&xgs->g, m->refs, m->count);
    munmap(m->addr, (size_t)m->count * SIM_PAGE_SIZE);
    free(m);
    return 0;
}
