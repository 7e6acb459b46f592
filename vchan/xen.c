/* SPDX-License-Identifier: MIT */
/*
 * xen.c - the Xen transport: server offer (event channel, control page shared with
 * unmap-notify on srv_live, ring pages, XenStore keys in one transaction), client connect
 * (strict XenStore parsing, control page mapped with unmap-notify on cli_live, geometry read
 * once and checked, write ring RW / read ring read-only, one unconditional event), optional
 * wait for the server through a XenStore watch, event consumption, peer-domain checks and
 * the clean close. Every init step is recorded in XenPriv so that a failure at any step
 * undoes exactly what was done (vchan_free() on the half-built object).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <syslog.h>
#include <time.h>
#include <xentoollog.h>

#include "common/cleanup.h"
#include "parse.h"
#include "select.h"
#include "vchan-internal.h"
#include "xenops.h"

#define PUBLISH_ATTEMPTS 64  /* transaction retries on EAGAIN */
#define CONSUME_MAX 64       /* events consumed per dispatch call */
#define WATCH_RECHECK_MS 100 /* client wait: longest time between two looks */

const VchanXenOps vchan_xen_real_ops = {
    .xs_open = xs_open,
    .xs_close = xs_close,
    .xs_read = xs_read,
    .xs_write = xs_write,
    .xs_rm = xs_rm,
    .xs_set_permissions = xs_set_permissions,
    .xs_transaction_start = xs_transaction_start,
    .xs_transaction_end = xs_transaction_end,
    .xs_watch = xs_watch,
    .xs_fileno = xs_fileno,
    .xs_check_watch = xs_check_watch,
    .xs_is_domain_introduced = xs_is_domain_introduced,
    .evtchn_open = xenevtchn_open,
    .evtchn_close = xenevtchn_close,
    .evtchn_fd = xenevtchn_fd,
    .evtchn_notify = xenevtchn_notify,
    .evtchn_bind_unbound_port = xenevtchn_bind_unbound_port,
    .evtchn_bind_interdomain = xenevtchn_bind_interdomain,
    .evtchn_unbind = xenevtchn_unbind,
    .evtchn_pending = xenevtchn_pending,
    .evtchn_unmask = xenevtchn_unmask,
    .gntshr_open = xengntshr_open,
    .gntshr_close = xengntshr_close,
    .gntshr_share_pages = xengntshr_share_pages,
    .gntshr_share_page_notify = xengntshr_share_page_notify,
    .gntshr_unshare = xengntshr_unshare,
    .gnttab_open = xengnttab_open,
    .gnttab_close = xengnttab_close,
    .gnttab_map_grant_ref_notify = xengnttab_map_grant_ref_notify,
    .gnttab_map_domain_grant_refs = xengnttab_map_domain_grant_refs,
    .gnttab_unmap = xengnttab_unmap,
};

static const VchanXenOps *xo = &vchan_xen_real_ops;

void vchan_xen_set_ops(const VchanXenOps *ops)
{
    xo = ops ? ops : &vchan_xen_real_ops;
}

/* The Xen libraries log through xentoollog; forward to our sink at debug level (our own
 * error return and message describe the failure to the caller). */
__attribute__((format(printf, 5, 0))) static void xtl_vmessage(struct xentoollog_logger *logger,
                                                               xentoollog_level level, int errnoval,
                                                               const char *context,
                                                               const char *format, va_list al)
{
    char msg[384];

    (void)logger;
    (void)level;
    vsnprintf(msg, sizeof(msg), format, al);
    vchan_log(LOG_DEBUG, "xen %s: %s%s%s", context ? context : "", msg, errnoval >= 0 ? ": " : "",
              errnoval >= 0 ? strerror(errnoval) : "");
}

static void xtl_destroy(struct xentoollog_logger *logger)
{
    (void)logger;
}

static xentoollog_logger xtl = {
    .vmessage = xtl_vmessage,
    .progress = NULL,
    .destroy = xtl_destroy,
};

typedef struct XenPriv {
    bool is_server;
    xenevtchn_handle *evt;
    evtchn_port_t port; /* local port */
    bool port_bound;
    xengntshr_handle *gs; /* server */
    xengnttab_handle *gt; /* client */
    VchanCtrl *probe;     /* client: mapping without unmap-notify, used during connect */
    VchanCtrl *ctrl;
    void *left_map;
    unsigned left_pages;
    void *right_map;
    unsigned right_pages;
    bool published; /* server: XenStore keys written, remove on close */
    bool fd_blocks; /* the event fd is blocking: xenevtchn_pending() sleeps for an event */
} XenPriv;

static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

static void xs_closep(struct xs_handle **xsp)
{
    if (*xsp)
        xo->xs_close(*xsp);
}

static int xen_notify(Vchan *c)
{
    XenPriv *x = c->priv;

    if (xo->evtchn_notify(x->evt, x->port) < 0)
        return neg_errno();
    return 0;
}

static bool fd_blocks(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl >= 0 && !(fl & O_NONBLOCK);
}

/*
 * Take one pending event and unmask its port: 1, 0 (none after all) or -errno. Alone it is
 * the blocking helpers' wake-up path (consume_ready): poll(2) just said the fd is readable
 * and this thread is its only reader, so the pending call cannot block; one event is enough
 * (events are merged, the caller re-checks the ring, and a further event keeps the fd
 * readable). Two system calls fewer per wake-up than xen_consume().
 */
static int xen_consume_one(Vchan *c)
{
    XenPriv *x = c->priv;
    xenevtchn_port_or_error_t port = xo->evtchn_pending(x->evt);

    if (port < 0)
        return errno == EAGAIN ? 0 : neg_errno();
    if (xo->evtchn_unmask(x->evt, (evtchn_port_t)port) < 0)
        return neg_errno();
    return 1;
}

/*
 * Sleep until an event comes and consume it, in one system call where the event fd blocks
 * (Xen's /dev/xen/evtchn and the sim's; libxenvchan waits the same way): the blocking
 * helpers' sleep when they have no deadline. -EOPNOTSUPP where the fd does not block.
 */
static int xen_wait_event(Vchan *c)
{
    XenPriv *x = c->priv;

    if (!x->fd_blocks)
        return -EOPNOTSUPP;
    return xen_consume_one(c);
}

static int xen_consume(Vchan *c)
{
    int count = 0;

    /* xenevtchn_pending() may block even on a non-blocking fd: poll before each call */
    for (int i = 0; i < CONSUME_MAX; i++) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&pfd, 1, 0);

        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (rc == 0)
            break;
        rc = xen_consume_one(c);
        if (rc <= 0)
            return rc < 0 ? rc : count;
        count++;
    }
    return count;
}

static char *key_path(const char *dir, const char *leaf)
{
    char *p;

    if (asprintf(&p, "%s/%s", dir, leaf) < 0)
        return NULL;
    return p;
}

static int xen_check_peer(Vchan *c)
{
    _cleanup_(xs_closep) struct xs_handle *xs = NULL;
    XenPriv *x = c->priv;
    int err = 0;

    xs = xo->xs_open(0);
    if (!xs)
        return neg_errno();

    /* xs_is_domain_introduced() returns false both for "F" and on failure: tell them
     * apart by errno, and ask twice before declaring a domain dead. */
    for (int i = 0; i < 2; i++) {
        errno = 0;
        if (xo->xs_is_domain_introduced(xs, (unsigned)c->domid))
            return 1;
        if (errno != 0) {
            err = -errno;
            break;
        }
    }
    if (err == 0)
        return 0;

    /* refused (unprivileged): a client can still look at the server's keys, which the
     * toolstack removes with the dead domain's subtree */
    if (!x->is_server) {
        _cleanup_free_ char *key = key_path(c->path, "ring-ref");
        _cleanup_free_ char *val = NULL;
        unsigned len = 0;

        if (!key)
            return -ENOMEM;
        val = xo->xs_read(xs, XBT_NULL, key, &len);
        if (val)
            return 1;
        /* We read this key to connect, so it was readable to us. xenstored hides whether
         * a node exists: when the toolstack removes the dead domain's whole subtree, the
         * nearest existing parent (/local/domain) is unreadable to a guest and the answer
         * is EACCES, not ENOENT. A live server never takes our read permission away. */
        if (errno == ENOENT || errno == EACCES)
            return 0;
        return neg_errno();
    }
    return err;
}

static void xen_destroy(Vchan *c)
{
    XenPriv *x = c->priv;

    if (!x)
        return;

    if (x->left_map) {
        if (x->is_server)
            xo->gntshr_unshare(x->gs, x->left_map, x->left_pages);
        else
            xo->gnttab_unmap(x->gt, x->left_map, x->left_pages);
    }
    if (x->right_map) {
        if (x->is_server)
            xo->gntshr_unshare(x->gs, x->right_map, x->right_pages);
        else
            xo->gnttab_unmap(x->gt, x->right_map, x->right_pages);
    }
    if (x->probe)
        xo->gnttab_unmap(x->gt, x->probe, 1);
    if (c->ring_ready)
        vchan_ring_close(&c->ring);
    if (x->ctrl) {
        if (x->is_server)
            xo->gntshr_unshare(x->gs, x->ctrl, 1);
        else
            xo->gnttab_unmap(x->gt, x->ctrl, 1);
    }
    if (x->port_bound) {
        if (c->ring_ready)
            xo->evtchn_notify(x->evt, x->port);
        xo->evtchn_unbind(x->evt, x->port);
    }
    if (x->evt)
        xo->evtchn_close(x->evt);
    if (x->gs)
        xo->gntshr_close(x->gs);
    if (x->gt)
        xo->gnttab_close(x->gt);

    if (x->published) {
        _cleanup_(xs_closep) struct xs_handle *xs = xo->xs_open(0);

        if (!xs || !xo->xs_rm(xs, XBT_NULL, c->path))
            vchan_log(LOG_WARNING, "vchan dom%d %s: cannot remove XenStore directory: %s", c->domid,
                      c->path, strerror(errno));
    }
    free(x);
    c->priv = NULL;
}

static const VchanBackend xen_backend = {
    .name = "xen",
    .notify = xen_notify,
    .consume = xen_consume,
    .consume_ready = xen_consume_one,
    .wait_event = xen_wait_event,
    .check_peer = xen_check_peer,
    .destroy = xen_destroy,
};

static int check_args(int domid, const char *path, const char *role)
{
    if (domid < 0 || domid >= VCHAN_DOMID_FIRST_RESERVED) {
        vchan_log(LOG_ERR, "vchan %s: invalid domain id %d", role, domid);
        return -EINVAL;
    }
    if (!path || !*path) {
        vchan_log(LOG_ERR, "vchan %s: empty XenStore path", role);
        return -EINVAL;
    }
    return 0;
}

/* Our own domain id from the relative key "domid"; refuse a vchan to ourselves
 * (a loopback vchan once crashed the kernel: Qubes #951). */
static int check_not_loopback(struct xs_handle *xs, int domid, const char *path, uint32_t *ownp)
{
    _cleanup_free_ char *untrusted = NULL;
    unsigned len = 0;
    uint32_t own;
    int rc;

    untrusted = xo->xs_read(xs, XBT_NULL, "domid", &len);
    if (!untrusted) {
        rc = neg_errno();
        vchan_log(LOG_ERR, "vchan dom%d %s: cannot read our own domain id: %s", domid, path,
                  strerror(-rc));
        return rc;
    }
    rc = vchan_parse_domid(untrusted, len, &own);
    if (rc < 0) {
        vchan_log(LOG_ERR, "vchan dom%d %s: our own \"domid\" key is malformed", domid, path);
        return rc;
    }
    if (own == (uint32_t)domid) {
        vchan_log(LOG_ERR, "vchan dom%d %s: refusing a vchan to our own domain", domid, path);
        return -EINVAL;
    }
    *ownp = own;
    return 0;
}

static int publish(struct xs_handle *xs, const char *path, uint32_t own, uint32_t peer,
                   uint32_t ref, uint32_t port)
{
    _cleanup_free_ char *ref_key = key_path(path, "ring-ref");
    _cleanup_free_ char *port_key = key_path(path, "event-channel");
    struct xs_permissions perms[2] = {
        {.id = own, .perms = XS_PERM_NONE},
        {.id = peer, .perms = XS_PERM_READ},
    };
    char ref_val[16], port_val[16];

    if (!ref_key || !port_key)
        return -ENOMEM;
    snprintf(ref_val, sizeof(ref_val), "%u", ref);
    snprintf(port_val, sizeof(port_val), "%u", port);

    for (int attempt = 0; attempt < PUBLISH_ATTEMPTS; attempt++) {
        xs_transaction_t t = xo->xs_transaction_start(xs);
        int rc;

        if (t == XBT_NULL)
            return neg_errno();
        if (!xo->xs_write(xs, t, ref_key, ref_val, (unsigned)strlen(ref_val)) ||
            !xo->xs_set_permissions(xs, t, ref_key, perms, 2) ||
            !xo->xs_write(xs, t, port_key, port_val, (unsigned)strlen(port_val)) ||
            !xo->xs_set_permissions(xs, t, port_key, perms, 2)) {
            rc = neg_errno();
            xo->xs_transaction_end(xs, t, true);
            return rc;
        }
        if (xo->xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return neg_errno();
    }
    return -EAGAIN;
}

static XenPriv *priv_new(Vchan *c, bool is_server)
{
    XenPriv *x = calloc(1, sizeof(*x));

    if (x) {
        x->is_server = is_server;
        c->priv = x;
    }
    return x;
}

int vchan_server_new(Vchan **cp, int domid, const char *path, size_t read_min, size_t write_min)
{
    _cleanup_(vchan_freep) Vchan *c = NULL;
    _cleanup_(xs_closep) struct xs_handle *xs = NULL;
    uint32_t grants[VCHAN_GRANTS_MAX];
    uint32_t own, ctrl_ref = 0;
    unsigned nl, nr;
    xenevtchn_port_or_error_t port;
    VchanGeom geom;
    uint8_t *lbuf, *rbuf;
    XenPriv *x;
    const char *step;
    int rc;

    rc = check_args(domid, path, "server");
    if (rc < 0)
        return rc;
    rc = vchan_geom_select(read_min, write_min, &geom);
    if (rc < 0) {
        vchan_log(LOG_ERR, "vchan dom%d %s: ring size over %zu bytes requested", domid, path,
                  (size_t)VCHAN_RING_SIZE_MAX);
        return rc;
    }
    nl = vchan_order_pages(geom.left_order);
    nr = vchan_order_pages(geom.right_order);

    c = vchan_alloc(&xen_backend, domid, path);
    if (!c || !(x = priv_new(c, true)))
        return -ENOMEM;

    step = "open XenStore";
    xs = xo->xs_open(0);
    if (!xs)
        goto fail_errno;
    rc = check_not_loopback(xs, domid, path, &own);
    if (rc < 0)
        return rc;

    step = "open event channel";
    x->evt = xo->evtchn_open(&xtl, 0);
    if (!x->evt)
        goto fail_errno;
    step = "allocate event channel";
    port = xo->evtchn_bind_unbound_port(x->evt, (uint32_t)domid);
    if (port < 0)
        goto fail_errno;
    x->port = (evtchn_port_t)port;
    x->port_bound = true;

    step = "open grant sharing";
    x->gs = xo->gntshr_open(&xtl, 0);
    if (!x->gs)
        goto fail_errno;
    step = "share control page";
    x->ctrl = xo->gntshr_share_page_notify(x->gs, (uint32_t)domid, &ctrl_ref, 1, VCHAN_OFF_SRV_LIVE,
                                           x->port);
    if (!x->ctrl)
        goto fail_errno;
    step = "share ring pages";
    if (nl) {
        x->left_map = xo->gntshr_share_pages(x->gs, (uint32_t)domid, (int)nl, grants, 1);
        if (!x->left_map)
            goto fail_errno;
        x->left_pages = nl;
    }
    if (nr) {
        x->right_map = xo->gntshr_share_pages(x->gs, (uint32_t)domid, (int)nr, grants + nl, 1);
        if (!x->right_map)
            goto fail_errno;
        x->right_pages = nr;
    }

    vchan_ctrl_server_init(x->ctrl, geom.left_order, geom.right_order);
    for (unsigned i = 0; i < nl + nr; i++)
        atomic_store_explicit(&x->ctrl->grants[i], grants[i], memory_order_relaxed);
    lbuf = nl ? x->left_map : (uint8_t *)x->ctrl + vchan_order_page_offset(geom.left_order);
    rbuf = nr ? x->right_map : (uint8_t *)x->ctrl + vchan_order_page_offset(geom.right_order);
    vchan_ring_init(&c->ring, x->ctrl, true, lbuf, 1u << geom.left_order, rbuf,
                    1u << geom.right_order, 0, 0);

    rc = publish(xs, path, own, (uint32_t)domid, ctrl_ref, x->port);
    if (rc < 0) {
        vchan_log(LOG_ERR, "vchan dom%d %s: cannot publish in XenStore: %s", domid, path,
                  strerror(-rc));
        return rc;
    }
    x->published = true;
    c->ring_ready = true;
    c->fd = xo->evtchn_fd(x->evt);
    x->fd_blocks = fd_blocks(c->fd);

    vchan_log(LOG_DEBUG, "vchan dom%d %s: server ready, rings %u/%u bytes, port %u", domid, path,
              1u << geom.left_order, 1u << geom.right_order, x->port);
    *cp = c;
    c = NULL;
    return 0;

fail_errno:
    rc = neg_errno();
    vchan_log(LOG_ERR, "vchan dom%d %s: cannot %s: %s", domid, path, step, strerror(-rc));
    return rc;
}

/* Read <dir>/<leaf>: the untrusted string and its length, or NULL with errno set. */
static char *read_key(struct xs_handle *xs, const char *dir, const char *leaf, unsigned *lenp)
{
    _cleanup_free_ char *key = key_path(dir, leaf);

    if (!key) {
        errno = ENOMEM;
        return NULL;
    }
    return xo->xs_read(xs, XBT_NULL, key, lenp);
}

/* Read and parse the server's two keys. *missingp: they are not there (yet). */
static int read_server_keys(struct xs_handle *xs, int domid, const char *path, uint32_t *refp,
                            uint32_t *portp, bool *missingp)
{
    _cleanup_free_ char *untrusted_ref = NULL;
    _cleanup_free_ char *untrusted_port = NULL;
    unsigned ref_len = 0, port_len = 0;
    int rc;

    untrusted_ref = read_key(xs, path, "ring-ref", &ref_len);
    if (untrusted_ref)
        untrusted_port = read_key(xs, path, "event-channel", &port_len);
    if (!untrusted_ref || !untrusted_port) {
        rc = neg_errno();
        /* xenstored hides whether a node exists: a guest asking for keys not written yet
         * under another domain's unreadable directory gets EACCES, not ENOENT */
        *missingp = rc == -ENOENT || rc == -EACCES;
        vchan_log(*missingp ? LOG_DEBUG : LOG_ERR, "vchan dom%d %s: cannot read server keys: %s",
                  domid, path, strerror(-rc));
        return rc;
    }
    if (vchan_parse_grant_ref(untrusted_ref, ref_len, refp) < 0 ||
        vchan_parse_port(untrusted_port, port_len, portp) < 0) {
        vchan_log(LOG_ERR, "vchan dom%d %s: malformed ring-ref or event-channel in XenStore", domid,
                  path);
        return -EPROTO;
    }
    return 0;
}

static int client_connect(struct xs_handle *xs, int domid, const char *path, Vchan **cp,
                          bool *missingp)
{
    _cleanup_(vchan_freep) Vchan *c = NULL;
    uint32_t grants[VCHAN_GRANTS_MAX];
    uint32_t own, ref, remote_port;
    unsigned untrusted_lo, untrusted_ro, lo, ro, nl, nr;
    uint8_t untrusted_cli_live, untrusted_srv_live;
    uint32_t untrusted_rcons, untrusted_wprod;
    xenevtchn_port_or_error_t port;
    uint8_t *lbuf, *rbuf;
    XenPriv *x;
    const char *step;
    int rc;

    *missingp = false;
    rc = check_not_loopback(xs, domid, path, &own);
    if (rc < 0)
        return rc;
    rc = read_server_keys(xs, domid, path, &ref, &remote_port, missingp);
    if (rc < 0)
        return rc;

    c = vchan_alloc(&xen_backend, domid, path);
    if (!c || !(x = priv_new(c, false)))
        return -ENOMEM;

    /*
     * Look at the page through a mapping without unmap-notify first: if anything below
     * fails, unmapping it must not zero cli_live, which would tell the server that a client
     * came and went. The notifying mapping is made last, when nothing can fail any more.
     */
    step = "open grant table";
    x->gt = xo->gnttab_open(&xtl, 0);
    if (!x->gt)
        goto fail_errno;
    step = "map control page";
    x->probe = xo->gnttab_map_grant_ref_notify(x->gt, (uint32_t)domid, ref, PROT_READ | PROT_WRITE,
                                               (uint32_t)-1, (evtchn_port_t)-1);
    if (!x->probe)
        goto fail_errno;

    /* The page is the server's: read each field once, check, then trust the copy. */
    untrusted_lo = atomic_load_explicit(&x->probe->left_order, memory_order_acquire);
    untrusted_ro = atomic_load_explicit(&x->probe->right_order, memory_order_acquire);
    untrusted_srv_live = atomic_load_explicit(&x->probe->srv_live, memory_order_acquire);
    untrusted_cli_live = atomic_load_explicit(&x->probe->cli_live, memory_order_acquire);
    if (vchan_geom_check(untrusted_lo, untrusted_ro) < 0) {
        vchan_log(LOG_ERR, "vchan dom%d %s: invalid ring orders %u/%u in control page", domid, path,
                  untrusted_lo, untrusted_ro);
        return -EPROTO;
    }
    lo = untrusted_lo;
    ro = untrusted_ro;
    if (untrusted_srv_live != VCHAN_LIVE_OPEN) {
        vchan_log(LOG_ERR, "vchan dom%d %s: server is not live (srv_live %u)", domid, path,
                  untrusted_srv_live);
        return untrusted_srv_live == VCHAN_LIVE_CLOSED ? -ECONNREFUSED : -EPROTO;
    }
    if (untrusted_cli_live == VCHAN_LIVE_OPEN) {
        vchan_log(LOG_ERR, "vchan dom%d %s: another client is connected", domid, path);
        return -EBUSY;
    }
    if (untrusted_cli_live != VCHAN_LIVE_WAITING && untrusted_cli_live != VCHAN_LIVE_CLOSED) {
        vchan_log(LOG_ERR, "vchan dom%d %s: invalid cli_live %u", domid, path, untrusted_cli_live);
        return -EPROTO;
    }

    /* grants may overlap an in-page ring (ocaml-vchan layouts): copy them once, now */
    nl = vchan_order_pages(lo);
    nr = vchan_order_pages(ro);
    for (unsigned i = 0; i < nl + nr; i++)
        grants[i] = atomic_load_explicit(&x->probe->grants[i], memory_order_relaxed);

    step = "map ring pages";
    if (nl) {
        /* we write the left ring */
        x->left_map = xo->gnttab_map_domain_grant_refs(x->gt, nl, (uint32_t)domid, grants,
                                                       PROT_READ | PROT_WRITE);
        if (!x->left_map)
            goto fail_errno;
        x->left_pages = nl;
    }
    if (nr) {
        /* we only read the right ring: map it read-only */
        x->right_map = xo->gnttab_map_domain_grant_refs(x->gt, nr, (uint32_t)domid, grants + nl,
                                                        PROT_READ);
        if (!x->right_map)
            goto fail_errno;
        x->right_pages = nr;
    }

    step = "open event channel";
    x->evt = xo->evtchn_open(&xtl, 0);
    if (!x->evt)
        goto fail_errno;
    step = "bind event channel";
    port = xo->evtchn_bind_interdomain(x->evt, (uint32_t)domid, remote_port);
    if (port < 0)
        goto fail_errno;
    x->port = (evtchn_port_t)port;
    x->port_bound = true;

    step = "map control page with unmap-notify";
    x->ctrl = xo->gnttab_map_grant_ref_notify(x->gt, (uint32_t)domid, ref, PROT_READ | PROT_WRITE,
                                              VCHAN_OFF_CLI_LIVE, x->port);
    if (!x->ctrl)
        goto fail_errno;
    xo->gnttab_unmap(x->gt, x->probe, 1);
    x->probe = NULL;

    lbuf = nl ? x->left_map : (uint8_t *)x->ctrl + vchan_order_page_offset(lo);
    rbuf = nr ? x->right_map : (uint8_t *)x->ctrl + vchan_order_page_offset(ro);

    /* A reconnecting client continues at the indices in the page (they are never reset).
     * Any value is safe as a starting shadow: each operation checks it against the server's
     * index and a mismatch is a violation, never an out-of-bounds copy. */
    untrusted_rcons = atomic_load_explicit(&x->ctrl->right.cons, memory_order_acquire);
    untrusted_wprod = atomic_load_explicit(&x->ctrl->left.prod, memory_order_acquire);
    vchan_ring_init(&c->ring, x->ctrl, false, lbuf, 1u << lo, rbuf, 1u << ro, untrusted_rcons,
                    untrusted_wprod);
    vchan_ctrl_client_connect(x->ctrl);
    c->ring_ready = true;
    c->fd = xo->evtchn_fd(x->evt);
    x->fd_blocks = fd_blocks(c->fd);
    vchan_kick(c); /* the one unconditional connect event */

    vchan_log(LOG_DEBUG, "vchan dom%d %s: connected, rings %u/%u bytes", domid, path, 1u << lo,
              1u << ro);
    *cp = c;
    c = NULL;
    return 0;

fail_errno:
    rc = neg_errno();
    vchan_log(LOG_ERR, "vchan dom%d %s: cannot %s: %s", domid, path, step, strerror(-rc));
    return rc;
}

int vchan_client_new(Vchan **cp, int domid, const char *path)
{
    _cleanup_(xs_closep) struct xs_handle *xs = NULL;
    bool missing;
    int rc;

    rc = check_args(domid, path, "client");
    if (rc < 0)
        return rc;
    xs = xo->xs_open(0);
    if (!xs) {
        rc = neg_errno();
        vchan_log(LOG_ERR, "vchan dom%d %s: cannot open XenStore: %s", domid, path, strerror(-rc));
        return rc;
    }
    rc = client_connect(xs, domid, path, cp, &missing);
    if (missing)
        vchan_log(LOG_ERR, "vchan dom%d %s: no server there", domid, path);
    return rc;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int vchan_client_new_wait(Vchan **cp, int domid, const char *path, int timeout_ms)
{
    _cleanup_(xs_closep) struct xs_handle *xs = NULL;
    uint64_t deadline;
    bool missing;
    int rc;

    if (timeout_ms == 0)
        return vchan_client_new(cp, domid, path);
    rc = check_args(domid, path, "client");
    if (rc < 0)
        return rc;
    deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    xs = xo->xs_open(0);
    if (!xs) {
        rc = neg_errno();
        vchan_log(LOG_ERR, "vchan dom%d %s: cannot open XenStore: %s", domid, path, strerror(-rc));
        return rc;
    }
    /* Watch before the first look, so a server publishing in between is not missed. */
    if (!xo->xs_watch(xs, path, "vchan")) {
        rc = neg_errno();
        vchan_log(LOG_ERR, "vchan dom%d %s: cannot watch XenStore: %s", domid, path, strerror(-rc));
        return rc;
    }

    for (;;) {
        struct pollfd pfd = {.fd = xo->xs_fileno(xs), .events = POLLIN};
        uint64_t now;
        int wait_ms;
        char **ev;

        rc = client_connect(xs, domid, path, cp, &missing);
        if (!missing)
            return rc;
        now = now_ms();
        if (now >= deadline) {
            vchan_log(LOG_ERR, "vchan dom%d %s: no server appeared in time", domid, path);
            return -ETIMEDOUT;
        }
        /* xenstored drops watch events for nodes the watcher may not read (the server's
         * directory is not ours), so look again at least every WATCH_RECHECK_MS */
        wait_ms = deadline - now > WATCH_RECHECK_MS ? WATCH_RECHECK_MS : (int)(deadline - now);
        if (pfd.fd < 0)
            return neg_errno();
        rc = poll(&pfd, 1, wait_ms);
        if (rc < 0 && errno != EINTR)
            return -errno;
        while ((ev = xo->xs_check_watch(xs)))
            free(ev);
    }
}
