/* SPDX-License-Identifier: MIT */
/*
 * fakexen.c - in-process fake of libxenstore, libxenevtchn and libxengnttab/gntshr for the
 * vchan unit tests: enough of their behaviour (transactions applied at commit, permissions,
 * watches that fire at registration, interdomain ports that unbind like Xen's, memfd-backed
 * grants with real page protections and unmap-notify) to drive vchan's Xen code paths
 * without a hypervisor, with failure injection and leak counters. All state sits under one
 * mutex; handles remember the domain that opened them.
 */
#include "fakexen.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vchan/xenops.h"

#define PAGE 4096
#define MAX_PORTS 256
#define MAX_GRANTS 4096
#define MAX_MAPS 256
#define MAX_DOMS 0x8000

/* ---- world ---- */

typedef struct Node {
    char *path;
    char *val;
    unsigned len;
    struct xs_permissions perms[4];
    unsigned nperms;
    unsigned txn;
} Node;

typedef struct TxnOp {
    bool is_perms;
    char *path;
    char *val;
    unsigned len;
    struct xs_permissions perms[4];
    unsigned nperms;
} TxnOp;

typedef struct WatchEv {
    char *path;
    char *token;
} WatchEv;

struct xs_handle {
    int domid;
    int pipe[2];
    char *watch_path[8];
    char *watch_token[8];
    int nwatch;
    WatchEv *queue;
    int nqueue;
    unsigned txn;
    TxnOp *ops;
    int nops;
    bool open;
};

struct xenevtchn_handle {
    int domid;
    int pipe[2];
    bool dead;
};

struct xengntdev_handle {
    int domid;
    bool shr;
};

typedef struct Port {
    bool used;
    int domid;
    struct xenevtchn_handle *h;
    int remote_domid;
    int remote_port;
    bool connected;
    bool pending;
} Port;

typedef struct Grant {
    bool used;
    int owner;
    int grantee;
    int fd;
    off_t off;
    bool writable;
    int share;
    int page;
} Grant;

typedef struct Map {
    bool used;
    struct xengntdev_handle *h;
    bool shr;
    uint8_t *addr;
    uint32_t count;
    int prot;
    int fd;         /* share: the memfd, closed at unshare */
    int notify_off; /* -1 none */
    int notify_port;
    uint32_t refs[1]; /* share: first ref (grants of one share are consecutive) */
} Map;

static struct {
    pthread_mutex_t lock;
    Node *nodes;
    int nnodes;
    struct xs_handle *xs[64];
    int nxs;
    Port ports[MAX_PORTS];
    Grant grants[MAX_GRANTS];
    Map maps[MAX_MAPS];
    int evtchn_handles, gnt_handles;
    bool dead[MAX_DOMS];
    bool unprivileged;
    int fail_at, fail_errno, calls;
    int commit_eagain;
    unsigned next_txn;
    int next_share;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int cur_domid;

static const VchanXenOps fake_ops;

void fake_xen_as(int domid)
{
    cur_domid = domid;
}

static void lock(void)
{
    pthread_mutex_lock(&W.lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&W.lock);
}

/* Count a fallible call; true if this one must fail (errno set). Lock held. */
static bool fault(void)
{
    W.calls++;
    if (W.fail_at && W.calls == W.fail_at) {
        errno = W.fail_errno;
        return true;
    }
    return false;
}

void fake_xen_fail_at(int n, int err)
{
    lock();
    W.fail_at = n;
    W.fail_errno = err;
    W.calls = 0;
    unlock();
}

int fake_xen_calls(void)
{
    int n;

    lock();
    n = W.calls;
    unlock();
    return n;
}

void fake_xen_commit_eagain(int n)
{
    lock();
    W.commit_eagain = n;
    unlock();
}

void fake_xen_set_unprivileged(bool on)
{
    lock();
    W.unprivileged = on;
    unlock();
}

/* ---- XenStore ---- */

static Node *node_find(const char *path)
{
    for (int i = 0; i < W.nnodes; i++)
        if (strcmp(W.nodes[i].path, path) == 0)
            return &W.nodes[i];
    return NULL;
}

static bool is_under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void fire_watches(const char *path)
{
    for (int i = 0; i < W.nxs; i++) {
        struct xs_handle *h = W.xs[i];

        for (int j = 0; h->open && j < h->nwatch; j++) {
            if (!is_under(path, h->watch_path[j]))
                continue;
            h->queue = realloc(h->queue, sizeof(*h->queue) * (size_t)(h->nqueue + 1));
            h->queue[h->nqueue++] = (WatchEv){strdup(path), strdup(h->watch_token[j])};
            if (write(h->pipe[1], "w", 1) != 1)
                abort();
        }
    }
}

static Node *node_write(const char *path, const char *val, unsigned len, unsigned txn)
{
    Node *n = node_find(path);

    if (!n) {
        W.nodes = realloc(W.nodes, sizeof(*W.nodes) * (size_t)(W.nnodes + 1));
        n = &W.nodes[W.nnodes++];
        *n = (Node){.path = strdup(path)};
    }
    free(n->val);
    n->val = malloc(len + 1);
    memcpy(n->val, val, len);
    n->val[len] = '\0';
    n->len = len;
    n->txn = txn;
    fire_watches(path);
    return n;
}

static int node_rm(const char *prefix)
{
    int removed = 0;

    for (int i = 0; i < W.nnodes;) {
        if (is_under(W.nodes[i].path, prefix)) {
            char *p = W.nodes[i].path;

            free(W.nodes[i].val);
            W.nodes[i] = W.nodes[--W.nnodes];
            fire_watches(p);
            free(p);
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

static char *abspath(struct xs_handle *h, const char *p)
{
    char *out;

    if (p[0] == '/')
        return strdup(p);
    if (asprintf(&out, "/local/domain/%d/%s", h->domid, p) < 0)
        abort();
    return out;
}

static bool can_read(int domid, const Node *n)
{
    if (domid == 0 || n->nperms == 0 || (int)n->perms[0].id == domid)
        return true;
    for (unsigned i = 1; i < n->nperms; i++)
        if ((int)n->perms[i].id == domid)
            return n->perms[i].perms & XS_PERM_READ;
    return n->perms[0].perms & XS_PERM_READ;
}

static struct xs_handle *f_xs_open(unsigned long flags)
{
    struct xs_handle *h;

    (void)flags;
    lock();
    if (fault()) {
        unlock();
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    h->domid = cur_domid;
    h->open = true;
    if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        abort();
    W.xs[W.nxs++] = h;
    unlock();
    return h;
}

static void f_xs_close(struct xs_handle *h)
{
    if (!h)
        return;
    lock();
    for (int i = 0; i < W.nxs; i++)
        if (W.xs[i] == h)
            W.xs[i] = W.xs[--W.nxs];
    unlock();
    close(h->pipe[0]);
    close(h->pipe[1]);
    for (int i = 0; i < h->nwatch; i++) {
        free(h->watch_path[i]);
        free(h->watch_token[i]);
    }
    for (int i = 0; i < h->nqueue; i++) {
        free(h->queue[i].path);
        free(h->queue[i].token);
    }
    free(h->queue);
    for (int i = 0; i < h->nops; i++) {
        free(h->ops[i].path);
        free(h->ops[i].val);
    }
    free(h->ops);
    free(h);
}

static void *f_xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    char *p, *out = NULL;
    Node *n;

    (void)t;
    lock();
    if (fault()) {
        unlock();
        return NULL;
    }
    p = abspath(h, path);
    n = node_find(p);
    if (!n) {
        errno = ENOENT;
    } else if (!can_read(h->domid, n)) {
        errno = EACCES;
    } else {
        out = malloc(n->len + 1);
        memcpy(out, n->val, n->len + 1);
        if (len)
            *len = n->len;
    }
    free(p);
    unlock();
    return out;
}

static void txn_add(struct xs_handle *h, TxnOp op)
{
    h->ops = realloc(h->ops, sizeof(*h->ops) * (size_t)(h->nops + 1));
    h->ops[h->nops++] = op;
}

static bool f_xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
                       unsigned int len)
{
    char *p;

    lock();
    if (fault()) {
        unlock();
        return false;
    }
    p = abspath(h, path);
    if (t != XBT_NULL) {
        char *v = malloc(len + 1);

        memcpy(v, data, len);
        txn_add(h, (TxnOp){.path = p, .val = v, .len = len});
    } else {
        Node *n = node_write(p, data, len, 0);

        if (n->nperms == 0) {
            n->perms[0] = (struct xs_permissions){.id = (unsigned)h->domid, .perms = 0};
            n->nperms = 1;
        }
        free(p);
    }
    unlock();
    return true;
}

static bool f_xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    char *p;

    (void)t;
    lock();
    if (fault()) {
        unlock();
        return false;
    }
    p = abspath(h, path);
    node_rm(p);
    free(p);
    unlock();
    return true;
}

static bool f_xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
                                 struct xs_permissions *perms, unsigned int num)
{
    TxnOp op = {.is_perms = true, .nperms = num};

    lock();
    if (fault()) {
        unlock();
        return false;
    }
    if (num > 4) {
        unlock();
        errno = EINVAL;
        return false;
    }
    op.path = abspath(h, path);
    memcpy(op.perms, perms, sizeof(*perms) * num);
    if (t != XBT_NULL) {
        txn_add(h, op);
    } else {
        Node *n = node_find(op.path);

        if (n) {
            memcpy(n->perms, op.perms, sizeof(op.perms));
            n->nperms = num;
        }
        free(op.path);
    }
    unlock();
    return true;
}

static xs_transaction_t f_xs_transaction_start(struct xs_handle *h)
{
    xs_transaction_t t;

    lock();
    if (fault()) {
        unlock();
        return XBT_NULL;
    }
    t = h->txn = ++W.next_txn;
    h->nops = 0;
    unlock();
    return t;
}

static bool f_xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort_it)
{
    bool ok = true;

    lock();
    if (!abort_it && fault()) {
        ok = false;
    } else if (!abort_it && W.commit_eagain > 0) {
        W.commit_eagain--;
        errno = EAGAIN;
        ok = false;
    } else if (!abort_it) {
        for (int i = 0; i < h->nops; i++) {
            TxnOp *op = &h->ops[i];
            Node *n = op->is_perms ? node_find(op->path)
                                   : node_write(op->path, op->val, op->len, t);

            if (n && op->is_perms) {
                memcpy(n->perms, op->perms, sizeof(op->perms));
                n->nperms = op->nperms;
            } else if (n && n->nperms == 0) {
                n->perms[0] = (struct xs_permissions){.id = (unsigned)h->domid};
                n->nperms = 1;
            }
        }
    }
    for (int i = 0; i < h->nops; i++) {
        free(h->ops[i].path);
        free(h->ops[i].val);
    }
    h->nops = 0;
    h->txn = 0;
    unlock();
    return ok;
}

static bool f_xs_watch(struct xs_handle *h, const char *path, const char *token)
{
    lock();
    if (fault() || h->nwatch == 8) {
        unlock();
        return false;
    }
    h->watch_path[h->nwatch] = strdup(path);
    h->watch_token[h->nwatch] = strdup(token);
    h->nwatch++;
    /* a watch fires once when registered */
    h->queue = realloc(h->queue, sizeof(*h->queue) * (size_t)(h->nqueue + 1));
    h->queue[h->nqueue++] = (WatchEv){strdup(path), strdup(token)};
    if (write(h->pipe[1], "w", 1) != 1)
        abort();
    unlock();
    return true;
}

static int f_xs_fileno(struct xs_handle *h)
{
    return h->pipe[0];
}

static char **f_xs_check_watch(struct xs_handle *h)
{
    char **vec;
    char c;
    WatchEv ev;
    size_t pl, tl;

    lock();
    if (h->nqueue == 0) {
        unlock();
        errno = EAGAIN;
        return NULL;
    }
    ev = h->queue[0];
    memmove(h->queue, h->queue + 1, sizeof(*h->queue) * (size_t)(h->nqueue - 1));
    h->nqueue--;
    if (read(h->pipe[0], &c, 1) != 1)
        abort();
    unlock();
    pl = strlen(ev.path) + 1;
    tl = strlen(ev.token) + 1;
    vec = malloc(2 * sizeof(char *) + pl + tl);
    vec[0] = (char *)(vec + 2);
    vec[1] = vec[0] + pl;
    memcpy(vec[0], ev.path, pl);
    memcpy(vec[1], ev.token, tl);
    free(ev.path);
    free(ev.token);
    return vec;
}

static bool f_xs_is_domain_introduced(struct xs_handle *h, unsigned int domid)
{
    bool alive;

    (void)h;
    lock();
    if (W.unprivileged) {
        unlock();
        errno = EACCES;
        return false;
    }
    alive = domid < MAX_DOMS && !W.dead[domid];
    unlock();
    return alive;
}

/* ---- event channels ---- */

static void deliver(int port)
{
    Port *p = &W.ports[port];

    if (!p->used || p->pending || p->h->dead)
        return;
    p->pending = true;
    if (write(p->h->pipe[1], &port, sizeof(port)) != (ssize_t)sizeof(port))
        abort();
}

static void send_from(int port)
{
    if (port > 0 && port < MAX_PORTS && W.ports[port].used && W.ports[port].connected)
        deliver(W.ports[port].remote_port);
}

static xenevtchn_handle *f_evtchn_open(struct xentoollog_logger *l, unsigned int flags)
{
    struct xenevtchn_handle *h;

    (void)l;
    (void)flags;
    lock();
    if (fault()) {
        unlock();
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    h->domid = cur_domid;
    if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        abort();
    W.evtchn_handles++;
    unlock();
    return h;
}

static void port_unbind(int port)
{
    Port *p = &W.ports[port];

    if (p->connected) {
        Port *r = &W.ports[p->remote_port];

        /* like Xen: the other end goes back to unbound, ready for a new peer */
        r->connected = false;
        r->remote_port = 0;
    }
    *p = (Port){0};
}

static int f_evtchn_close(xenevtchn_handle *h)
{
    lock();
    for (int i = 1; i < MAX_PORTS; i++)
        if (W.ports[i].used && W.ports[i].h == h)
            port_unbind(i);
    W.evtchn_handles--;
    unlock();
    close(h->pipe[0]);
    close(h->pipe[1]);
    free(h);
    return 0;
}

static int f_evtchn_fd(xenevtchn_handle *h)
{
    return h->pipe[0];
}

static int f_evtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
    lock();
    if (port == 0 || port >= MAX_PORTS || W.ports[port].h != h) {
        unlock();
        errno = EINVAL;
        return -1;
    }
    send_from((int)port);
    unlock();
    return 0;
}

static int port_alloc(struct xenevtchn_handle *h, int remote_domid)
{
    for (int i = 1; i < MAX_PORTS; i++) {
        if (!W.ports[i].used) {
            W.ports[i] = (Port){
                .used = true, .domid = h->domid, .h = h, .remote_domid = remote_domid};
            return i;
        }
    }
    errno = ENOSPC;
    return -1;
}

static xenevtchn_port_or_error_t f_evtchn_bind_unbound_port(xenevtchn_handle *h, uint32_t domid)
{
    int port;

    lock();
    port = fault() ? -1 : port_alloc(h, (int)domid);
    unlock();
    return port;
}

static xenevtchn_port_or_error_t f_evtchn_bind_interdomain(xenevtchn_handle *h, uint32_t domid,
                                                           evtchn_port_t rp)
{
    int port;

    lock();
    if (fault()) {
        unlock();
        return -1;
    }
    if (rp == 0 || rp >= MAX_PORTS || !W.ports[rp].used || W.ports[rp].domid != (int)domid ||
        W.ports[rp].connected || W.ports[rp].remote_domid != h->domid) {
        unlock();
        errno = EINVAL;
        return -1;
    }
    port = port_alloc(h, (int)domid);
    if (port > 0) {
        W.ports[port].connected = true;
        W.ports[port].remote_port = (int)rp;
        W.ports[rp].connected = true;
        W.ports[rp].remote_port = port;
    }
    unlock();
    return port;
}

static int f_evtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
    lock();
    if (port == 0 || port >= MAX_PORTS || W.ports[port].h != h) {
        unlock();
        errno = EINVAL;
        return -1;
    }
    port_unbind((int)port);
    unlock();
    return 0;
}

static xenevtchn_port_or_error_t f_evtchn_pending(xenevtchn_handle *h)
{
    int port;

    if (read(h->pipe[0], &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        errno = EAGAIN;
        return -1;
    }
    lock();
    if (port > 0 && port < MAX_PORTS)
        W.ports[port].pending = false;
    unlock();
    return port;
}

static int f_evtchn_unmask(xenevtchn_handle *h, evtchn_port_t port)
{
    (void)h;
    (void)port;
    return 0;
}

/* ---- grants ---- */

static struct xengntdev_handle *gnt_open(bool shr)
{
    struct xengntdev_handle *h;

    lock();
    if (fault()) {
        unlock();
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    h->domid = cur_domid;
    h->shr = shr;
    W.gnt_handles++;
    unlock();
    return h;
}

static xengntshr_handle *f_gntshr_open(struct xentoollog_logger *l, unsigned flags)
{
    (void)l;
    (void)flags;
    return gnt_open(true);
}

static xengnttab_handle *f_gnttab_open(struct xentoollog_logger *l, unsigned flags)
{
    (void)l;
    (void)flags;
    return gnt_open(false);
}

static Map *map_slot(void)
{
    for (int i = 0; i < MAX_MAPS; i++)
        if (!W.maps[i].used)
            return &W.maps[i];
    abort();
}

static Map *map_find(struct xengntdev_handle *h, const void *addr)
{
    for (int i = 0; i < MAX_MAPS; i++)
        if (W.maps[i].used && W.maps[i].h == h && W.maps[i].addr == addr)
            return &W.maps[i];
    return NULL;
}

static void map_notify(Map *m)
{
    if (m->notify_off >= 0) {
        m->addr[m->notify_off] = 0;
        send_from(m->notify_port);
        m->notify_off = -1; /* once */
    }
}

static void *share(struct xengntdev_handle *h, uint32_t domid, int count, uint32_t *refs,
                   int writable, int notify_off, int notify_port)
{
    int fd, first = -1, share_no;
    uint8_t *addr;
    Map *m;

    lock();
    if (fault()) {
        unlock();
        return NULL;
    }
    fd = memfd_create("fakegnt", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)count * PAGE) < 0)
        abort();
    addr = mmap(NULL, (size_t)count * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED)
        abort();
    share_no = ++W.next_share;
    /* consecutive refs, from 8 up like a real grant table */
    for (int i = 8; i + count <= MAX_GRANTS && first < 0; i++) {
        int j;

        for (j = 0; j < count && !W.grants[i + j].used; j++)
            ;
        if (j == count)
            first = i;
    }
    if (first < 0)
        abort();
    for (int i = 0; i < count; i++) {
        W.grants[first + i] = (Grant){.used = true,
                                      .owner = h->domid,
                                      .grantee = (int)domid,
                                      .fd = fd,
                                      .off = (off_t)i * PAGE,
                                      .writable = writable,
                                      .share = share_no,
                                      .page = i};
        refs[i] = (uint32_t)(first + i);
    }
    m = map_slot();
    *m = (Map){.used = true,
               .h = h,
               .shr = true,
               .addr = addr,
               .count = (uint32_t)count,
               .prot = PROT_READ | PROT_WRITE,
               .fd = fd,
               .notify_off = notify_off,
               .notify_port = notify_port};
    m->refs[0] = (uint32_t)first;
    unlock();
    return addr;
}

static void *f_gntshr_share_pages(xengntshr_handle *h, uint32_t domid, int count, uint32_t *refs,
                                  int writable)
{
    return share(h, domid, count, refs, writable, -1, -1);
}

static void *f_gntshr_share_page_notify(xengntshr_handle *h, uint32_t domid, uint32_t *ref,
                                        int writable, uint32_t off, evtchn_port_t port)
{
    return share(h, domid, 1, ref, writable, (int)off, (int)port);
}

static void unshare_locked(Map *m)
{
    map_notify(m);
    for (uint32_t i = 0; i < m->count; i++)
        W.grants[m->refs[0] + i] = (Grant){0};
    munmap(m->addr, (size_t)m->count * PAGE);
    close(m->fd); /* mappings held by the peer keep the pages alive */
    *m = (Map){0};
}

static int f_gntshr_unshare(xengntshr_handle *h, void *addr, uint32_t count)
{
    Map *m;

    (void)count;
    lock();
    m = map_find(h, addr);
    if (!m) {
        unlock();
        errno = EINVAL;
        return -1;
    }
    unshare_locked(m);
    unlock();
    return 0;
}

static int gnt_close(struct xengntdev_handle *h)
{
    lock();
    for (int i = 0; i < MAX_MAPS; i++) {
        Map *m = &W.maps[i];

        if (!m->used || m->h != h)
            continue;
        if (m->shr) {
            unshare_locked(m);
        } else {
            map_notify(m);
            munmap(m->addr, (size_t)m->count * PAGE);
            *m = (Map){0};
        }
    }
    W.gnt_handles--;
    unlock();
    free(h);
    return 0;
}

static int f_gntshr_close(xengntshr_handle *h)
{
    return gnt_close(h);
}

static int f_gnttab_close(xengnttab_handle *h)
{
    return gnt_close(h);
}

static void *map_refs(struct xengntdev_handle *h, uint32_t count, uint32_t domid,
                      const uint32_t *refs, int prot, int notify_off, int notify_port)
{
    uint8_t *addr;
    Map *m;

    lock();
    if (fault()) {
        unlock();
        return NULL;
    }
    for (uint32_t i = 0; i < count; i++) {
        Grant *g = refs[i] < MAX_GRANTS ? &W.grants[refs[i]] : NULL;

        if (!g || !g->used || g->owner != (int)domid || g->grantee != h->domid) {
            unlock();
            errno = EINVAL;
            return NULL;
        }
        if ((prot & PROT_WRITE) && !g->writable) {
            unlock();
            errno = EACCES;
            return NULL;
        }
    }
    addr = mmap(NULL, (size_t)count * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED)
        abort();
    for (uint32_t i = 0; i < count; i++) {
        Grant *g = &W.grants[refs[i]];

        if (mmap(addr + (size_t)i * PAGE, PAGE, prot, MAP_SHARED | MAP_FIXED, g->fd, g->off) ==
            MAP_FAILED)
            abort();
    }
    m = map_slot();
    *m = (Map){.used = true,
               .h = h,
               .addr = addr,
               .count = count,
               .prot = prot,
               .fd = -1,
               .notify_off = notify_off,
               .notify_port = notify_port};
    unlock();
    return addr;
}

static void *f_gnttab_map_grant_ref_notify(xengnttab_handle *h, uint32_t domid, uint32_t ref,
                                           int prot, uint32_t off, evtchn_port_t port)
{
    return map_refs(h, 1, domid, &ref, prot, (int)off, (int)port);
}

static void *f_gnttab_map_domain_grant_refs(xengnttab_handle *h, uint32_t count, uint32_t domid,
                                            uint32_t *refs, int prot)
{
    return map_refs(h, count, domid, refs, prot, -1, -1);
}

static int f_gnttab_unmap(xengnttab_handle *h, void *addr, uint32_t count)
{
    Map *m;

    lock();
    m = map_find(h, addr);
    if (!m || m->count != count) {
        unlock();
        errno = EINVAL;
        return -1;
    }
    map_notify(m);
    munmap(m->addr, (size_t)m->count * PAGE);
    *m = (Map){0};
    unlock();
    return 0;
}

static const VchanXenOps fake_ops = {
    .xs_open = f_xs_open,
    .xs_close = f_xs_close,
    .xs_read = f_xs_read,
    .xs_write = f_xs_write,
    .xs_rm = f_xs_rm,
    .xs_set_permissions = f_xs_set_permissions,
    .xs_transaction_start = f_xs_transaction_start,
    .xs_transaction_end = f_xs_transaction_end,
    .xs_watch = f_xs_watch,
    .xs_fileno = f_xs_fileno,
    .xs_check_watch = f_xs_check_watch,
    .xs_is_domain_introduced = f_xs_is_domain_introduced,
    .evtchn_open = f_evtchn_open,
    .evtchn_close = f_evtchn_close,
    .evtchn_fd = f_evtchn_fd,
    .evtchn_notify = f_evtchn_notify,
    .evtchn_bind_unbound_port = f_evtchn_bind_unbound_port,
    .evtchn_bind_interdomain = f_evtchn_bind_interdomain,
    .evtchn_unbind = f_evtchn_unbind,
    .evtchn_pending = f_evtchn_pending,
    .evtchn_unmask = f_evtchn_unmask,
    .gntshr_open = f_gntshr_open,
    .gntshr_close = f_gntshr_close,
    .gntshr_share_pages = f_gntshr_share_pages,
    .gntshr_share_page_notify = f_gntshr_share_page_notify,
    .gntshr_unshare = f_gntshr_unshare,
    .gnttab_open = f_gnttab_open,
    .gnttab_close = f_gnttab_close,
    .gnttab_map_grant_ref_notify = f_gnttab_map_grant_ref_notify,
    .gnttab_map_domain_grant_refs = f_gnttab_map_domain_grant_refs,
    .gnttab_unmap = f_gnttab_unmap,
};

/* ---- test helpers ---- */

void fake_xen_reset(void)
{
    lock();
    for (int i = 0; i < W.nnodes; i++) {
        free(W.nodes[i].path);
        free(W.nodes[i].val);
    }
    free(W.nodes);
    W.nodes = NULL;
    W.nnodes = 0;
    memset(W.ports, 0, sizeof(W.ports));
    memset(W.dead, 0, sizeof(W.dead));
    W.unprivileged = false;
    W.fail_at = W.calls = W.commit_eagain = 0;
    unlock();
    cur_domid = 0;
    vchan_xen_set_ops(&fake_ops);
}

void fake_xen_add_domain(int domid)
{
    char path[64], val[16];
    Node *n;

    snprintf(path, sizeof(path), "/local/domain/%d/domid", domid);
    snprintf(val, sizeof(val), "%d", domid);
    lock();
    n = node_write(path, val, (unsigned)strlen(val), 0);
    n->perms[0] = (struct xs_permissions){.id = (unsigned)domid, .perms = XS_PERM_NONE};
    n->nperms = 1;
    W.dead[domid] = false;
    unlock();
}

void fake_xen_kill_domain(int domid)
{
    char path[64];

    snprintf(path, sizeof(path), "/local/domain/%d", domid);
    lock();
    W.dead[domid] = true;
    node_rm(path);
    unlock();
}

void fake_xen_fire_unmap_notify(int domid)
{
    lock();
    for (int i = 0; i < MAX_MAPS; i++)
        if (W.maps[i].used && W.maps[i].h->domid == domid)
            map_notify(&W.maps[i]);
    unlock();
}

void fake_xen_counts(FakeXenCounts *c)
{
    lock();
    *c = (FakeXenCounts){
        .xs_handles = W.nxs, .evtchn_handles = W.evtchn_handles, .gnt_handles = W.gnt_handles};
    for (int i = 1; i < MAX_PORTS; i++)
        c->ports += W.ports[i].used;
    for (int i = 0; i < MAX_GRANTS; i++)
        c->grants += W.grants[i].used;
    for (int i = 0; i < MAX_MAPS; i++)
        c->maps += W.maps[i].used;
    unlock();
}

char *fake_xs_get(const char *path, unsigned *lenp)
{
    char *out = NULL;
    Node *n;

    lock();
    n = node_find(path);
    if (n) {
        out = malloc(n->len + 1);
        memcpy(out, n->val, n->len + 1);
        if (lenp)
            *lenp = n->len;
    }
    unlock();
    return out;
}

void fake_xs_set(const char *path, const char *val, size_t len, int owner, int reader)
{
    Node *n;

    lock();
    n = node_write(path, val, (unsigned)len, 0);
    n->perms[0] = (struct xs_permissions){.id = (unsigned)owner, .perms = XS_PERM_NONE};
    n->perms[1] = (struct xs_permissions){.id = (unsigned)reader, .perms = XS_PERM_READ};
    n->nperms = 2;
    unlock();
}

void fake_xs_rm(const char *prefix)
{
    lock();
    node_rm(prefix);
    unlock();
}

int fake_xs_count_under(const char *prefix)
{
    int n = 0;

    lock();
    for (int i = 0; i < W.nnodes; i++)
        n += is_under(W.nodes[i].path, prefix);
    unlock();
    return n;
}

bool fake_xs_perms(const char *path, struct xs_permissions *perms, unsigned *nump)
{
    Node *n;
    bool ok = false;

    lock();
    n = node_find(path);
    if (n && n->nperms <= *nump) {
        memcpy(perms, n->perms, sizeof(*perms) * n->nperms);
        *nump = n->nperms;
        ok = true;
    }
    unlock();
    return ok;
}

unsigned fake_xs_txn_of(const char *path)
{
    unsigned t = 0;
    Node *n;

    lock();
    n = node_find(path);
    if (n)
        t = n->txn;
    unlock();
    return t;
}

int fake_map_prot(const void *addr)
{
    const uint8_t *a = addr;
    int prot = -1;

    lock();
    for (int i = 0; i < MAX_MAPS; i++) {
        Map *m = &W.maps[i];

        if (m->used && !m->shr && a >= m->addr && a < m->addr + (size_t)m->count * PAGE)
            prot = m->prot;
    }
    unlock();
    return prot;
}

bool fake_grant_origin(uint32_t ref, int *sharep, int *pagep)
{
    bool ok = false;

    lock();
    if (ref < MAX_GRANTS && W.grants[ref].used) {
        *sharep = W.grants[ref].share;
        *pagep = W.grants[ref].page;
        ok = true;
    }
    unlock();
    return ok;
}
