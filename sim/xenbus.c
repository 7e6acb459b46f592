/* SPDX-License-Identifier: MIT */
/*
 * The per-guest xenbus process: it plays the guest kernel's xenbus driver.
 * It grants the xenstore ring page as GNTTAB_RESERVED_XENSTORE, offers an
 * event channel to dom0, has xenstored introduce the domain (XS_INTRODUCE,
 * as the toolstack does), then serves the guest's processes on a Unix
 * socket (their XENSTORED_PATH), multiplexing them over the one ring like
 * /dev/xen/xenbus does: request ids are rewritten to route replies, watch
 * tokens are prefixed with the client id to route events, and a client's
 * watches and transactions are ended when it disconnects. xenstored sees
 * only domain N, so permissions and relative paths are genuinely N's.
 */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xenstore.h>
#include <xen/io/xs_wire.h>

#define MAX_CLIENTS 1024
#define HDR sizeof(struct xsd_sockmsg)

typedef struct Buf {
    uint8_t *p;
    size_t len, cap;
} Buf;

typedef struct Client {
    int fd;
    uint32_t id;
    Buf in, out;
    uint32_t *txs;
    size_t ntx, captx;
    char **watches; /* "path\0token\0" as the client sent them */
    size_t nwatch, capwatch;
    size_t *watch_len;
} Client;

typedef struct Pending {
    uint32_t our_id, client_id, req_id, type;
} Pending;

static struct {
    struct xenstore_domain_interface *ring;
    xenevtchn_handle *xce;
    uint32_t port;
    int listen_fd;
    Client *clients[MAX_CLIENTS];
    uint32_t next_client, next_req;
    Buf toring, fromring;
    Pending *pend;
    size_t npend, cappend;
} xb;

static int buf_put(Buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_drop(Buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static Client *client_by_id(uint32_t id)
{
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (xb.clients[i] && xb.clients[i]->id == id)
            return xb.clients[i];
    return NULL;
}

/* Queue one message for xenstored; @client_id 0 = internal, reply dropped. */
static void send_to_ring(uint32_t client_id, const struct xsd_sockmsg *h, const void *body)
{
    struct xsd_sockmsg out = *h;
    Pending *p;

    if (xb.npend == xb.cappend) {
        size_t cap = xb.cappend ? xb.cappend * 2 : 64;
        Pending *np = realloc(xb.pend, cap * sizeof(*np));
        if (!np)
            return;
        xb.pend = np;
        xb.cappend = cap;
    }
    p = &xb.pend[xb.npend++];
    p->our_id = ++xb.next_req;
    p->client_id = client_id;
    p->req_id = h->req_id;
    p->type = h->type;
    out.req_id = p->our_id;
    buf_put(&xb.toring, &out, HDR);
    buf_put(&xb.toring, body, h->len);
}

static void client_free(Client *c)
{
    for (size_t i = 0; i < c->ntx; i++) {
        struct xsd_sockmsg h = {.type = XS_TRANSACTION_END, .tx_id = c->txs[i], .len = 2};
        send_to_ring(0, &h, "F");
    }
    for (size_t i = 0; i < c->nwatch; i++) {
        /* re-send the watch's path and our prefixed token as an UNWATCH */
        const char *path = c->watches[i];
        const char *tok = path + strlen(path) + 1;
        char body[XENSTORE_PAYLOAD_MAX + 32];
        int n = snprintf(body, sizeof(body), "%s%c%u/%s", path, 0, c->id, tok);
        if (n > 0 && (size_t)n < sizeof(body)) {
            struct xsd_sockmsg h = {.type = XS_UNWATCH, .len = (uint32_t)n + 1};
            send_to_ring(0, &h, body);
        }
        free(c->watches[i]);
    }
    for (size_t i = 0; i < xb.npend; i++)
        if (xb.pend[i].client_id == c->id)
            xb.pend[i].client_id = 0;
    close(c->fd);
    free(c->watches);
    free(c->watch_len);
    free(c->txs);
    free(c->in.p);
    free(c->out.p);
    free(c);
}

static void reply_error(Client *c, const struct xsd_sockmsg *h, const char *err)
{
    struct xsd_sockmsg r = {
        .type = XS_ERROR, .req_id = h->req_id, .tx_id = h->tx_id, .len = (uint32_t)strlen(err) + 1};
    buf_put(&c->out, &r, HDR);
    buf_put(&c->out, err, r.len);
}

/* Split "path\0token\0"; false if malformed. */
static bool split_watch(const char *body, size_t len, size_t *path_len, size_t *tok_len)
{
    const char *z1 = memchr(body, 0, len), *z2;

    if (!z1)
        return false;
    z2 = memchr(z1 + 1, 0, len - (size_t)(z1 + 1 - body));
    if (!z2 || (size_t)(z2 + 1 - body) != len)
        return false;
    *path_len = (size_t)(z1 - body);
    *tok_len = (size_t)(z2 - z1 - 1);
    return true;
}

static void client_request(Client *c, const struct xsd_sockmsg *h, const char *body)
{
    if (h->type == XS_RESET_WATCHES) {
        /* would drop every other client's watches */
        reply_error(c, h, "EACCES");
        return;
    }
    if (h->type == XS_WATCH || h->type == XS_UNWATCH) {
        char nb[XENSTORE_PAYLOAD_MAX + 32];
        size_t pl, tl;
        int n;

        if (!split_watch(body, h->len, &pl, &tl)) {
            reply_error(c, h, "EINVAL");
            return;
        }
        n = snprintf(nb, sizeof(nb), "%s%c%u/%s", body, 0, c->id, body + pl + 1);
        if (n < 0 || (size_t)n + 1 > XENSTORE_PAYLOAD_MAX) {
            reply_error(c, h, "E2BIG");
            return;
        }
        if (h->type == XS_WATCH) {
            char *copy = malloc(h->len);
            if (copy && c->nwatch == c->capwatch) {
                size_t cap = c->capwatch ? c->capwatch * 2 : 8;
                char **nw = realloc(c->watches, cap * sizeof(*nw));
                size_t *nl = realloc(c->watch_len, cap * sizeof(*nl));
                if (nw)
                    c->watches = nw;
                if (nl)
                    c->watch_len = nl;
                if (nw && nl)
                    c->capwatch = cap;
            }
            if (copy && c->nwatch < c->capwatch) {
                memcpy(copy, body, h->len);
                c->watch_len[c->nwatch] = h->len;
                c->watches[c->nwatch++] = copy;
            } else {
                free(copy);
            }
        } else {
            for (size_t i = 0; i < c->nwatch; i++) {
                if (c->watch_len[i] == h->len && memcmp(c->watches[i], body, h->len) == 0) {
                    free(c->watches[i]);
                    c->watches[i] = c->watches[--c->nwatch];
                    c->watch_len[i] = c->watch_len[c->nwatch];
                    break;
                }
            }
        }
        struct xsd_sockmsg nh = *h;
        nh.len = (uint32_t)n + 1;
        send_to_ring(c->id, &nh, nb);
        return;
    }
    if (h->type == XS_TRANSACTION_END) {
        for (size_t i = 0; i < c->ntx; i++)
            if (c->txs[i] == h->tx_id) {
                c->txs[i] = c->txs[--c->ntx];
                break;
            }
    }
    send_to_ring(c->id, h, body);
}

/* Parse complete messages from a client; false = drop the client. */
static bool client_input(Client *c)
{
    while (c->in.len >= HDR) {
        struct xsd_sockmsg h;
        memcpy(&h, c->in.p, HDR);
        if (h.len > XENSTORE_PAYLOAD_MAX)
            return false;
        if (c->in.len < HDR + h.len)
            break;
        char body[XENSTORE_PAYLOAD_MAX + 1];
        memcpy(body, c->in.p + HDR, h.len);
        body[h.len] = '\0';
        buf_drop(&c->in, HDR + h.len);
        client_request(c, &h, body);
    }
    return true;
}

static void ring_message(const struct xsd_sockmsg *h, const char *body)
{
    if (h->type == XS_WATCH_EVENT) {
        size_t pl, tl;
        char *slash;
        unsigned long cid;
        Client *c;

        if (!split_watch(body, h->len, &pl, &tl))
            return;
        cid = strtoul(body + pl + 1, &slash, 10);
        if (*slash != '/' || !(c = client_by_id((uint32_t)cid)))
            return;
        char nb[XENSTORE_PAYLOAD_MAX + 1];
        int n = snprintf(nb, sizeof(nb), "%s%c%s", body, 0, slash + 1);
        if (n < 0 || (size_t)n >= sizeof(nb))
            return;
        struct xsd_sockmsg nh = *h;
        nh.len = (uint32_t)n + 1;
        buf_put(&c->out, &nh, HDR);
        buf_put(&c->out, nb, nh.len);
        return;
    }
    for (size_t i = 0; i < xb.npend; i++) {
        Pending p = xb.pend[i];
        Client *c;

        if (p.our_id != h->req_id)
            continue;
        xb.pend[i] = xb.pend[--xb.npend];
        if (!p.client_id || !(c = client_by_id(p.client_id)))
            return;
        if (p.type == XS_TRANSACTION_START && h->type == XS_TRANSACTION_START) {
            unsigned long tx = strtoul(body, NULL, 10);
            if (c->ntx == c->captx) {
                size_t cap = c->captx ? c->captx * 2 : 4;
                uint32_t *nt = realloc(c->txs, cap * sizeof(*nt));
                if (nt) {
                    c->txs = nt;
                    c->captx = cap;
                }
            }
            if (c->ntx < c->captx)
                c->txs[c->ntx++] = (uint32_t)tx;
        }
        struct xsd_sockmsg nh = *h;
        nh.req_id = p.req_id;
        buf_put(&c->out, &nh, HDR);
        buf_put(&c->out, body, h->len);
        return;
    }
}

static void ring_io(void)
{
    struct xenstore_domain_interface *r = xb.ring;
    bool notify = false;

    /* requests: toring -> req ring */
    while (xb.toring.len) {
        XENSTORE_RING_IDX cons = __atomic_load_n(&r->req_cons, __ATOMIC_ACQUIRE);
        XENSTORE_RING_IDX prod = r->req_prod;
        uint32_t used = prod - cons, space, off, chunk;

        if (used > XENSTORE_RING_SIZE)
            break; /* xenstored is broken; nothing sane to do */
        space = XENSTORE_RING_SIZE - used;
        if (!space)
            break;
        off = MASK_XENSTORE_IDX(prod);
        chunk = XENSTORE_RING_SIZE - off;
        if (chunk > space)
            chunk = space;
        if (chunk > xb.toring.len)
            chunk = (uint32_t)xb.toring.len;
        memcpy(r->req + off, xb.toring.p, chunk);
        __atomic_store_n(&r->req_prod, prod + chunk, __ATOMIC_RELEASE);
        buf_drop(&xb.toring, chunk);
        notify = true;
    }
    /* responses: rsp ring -> fromring */
    for (;;) {
        XENSTORE_RING_IDX prod = __atomic_load_n(&r->rsp_prod, __ATOMIC_ACQUIRE);
        XENSTORE_RING_IDX cons = r->rsp_cons;
        uint32_t avail = prod - cons, off, chunk;

        if (avail == 0 || avail > XENSTORE_RING_SIZE)
            break;
        off = MASK_XENSTORE_IDX(cons);
        chunk = XENSTORE_RING_SIZE - off;
        if (chunk > avail)
            chunk = avail;
        buf_put(&xb.fromring, r->rsp + off, chunk);
        __atomic_store_n(&r->rsp_cons, cons + chunk, __ATOMIC_RELEASE);
        notify = true;
    }
    if (notify) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        xenevtchn_notify(xb.xce, xb.port);
    }
    while (xb.fromring.len >= HDR) {
        struct xsd_sockmsg h;
        char body[XENSTORE_PAYLOAD_MAX + 1];

        memcpy(&h, xb.fromring.p, HDR);
        if (h.len > XENSTORE_PAYLOAD_MAX) {
            sim_log("xenbus: oversized reply from xenstored");
            xb.fromring.len = 0;
            break;
        }
        if (xb.fromring.len < HDR + h.len)
            break;
        memcpy(body, xb.fromring.p + HDR, h.len);
        body[h.len] = '\0';
        buf_drop(&xb.fromring, HDR + h.len);
        ring_message(&h, body);
    }
}

static int setup(uint32_t domid, char *err, size_t errlen)
{
    char sockpath[PATH_MAX];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct xs_handle *xs;
    int fd, r, port;

    r = sim_grant_create(domid, SIM_XENSTORE_REF, 0, true, &fd);
    if (r < 0) {
        snprintf(err, errlen, "cannot grant the xenstore page: %s", strerror(-r));
        return -1;
    }
    xb.ring = mmap(NULL, SIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (xb.ring == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the xenstore page: %s", strerror(errno));
        return -1;
    }
    xb.xce = xenevtchn_open(NULL, 0);
    if (!xb.xce || (port = xenevtchn_bind_unbound_port(xb.xce, 0)) < 0) {
        snprintf(err, errlen, "cannot offer an event channel to dom0: %s", strerror(errno));
        return -1;
    }
    xb.port = (uint32_t)port;

    if (sim_path(sockpath, sizeof(sockpath), "dom%u/xenbus.sock", domid) < 0 ||
        strlen(sockpath) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "socket path too long");
        return -1;
    }
    strcpy(sun.sun_path, sockpath);
    unlink(sockpath);
    xb.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (xb.listen_fd < 0 || bind(xb.listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(xb.listen_fd, 128) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", sockpath, strerror(errno));
        return -1;
    }

    /* the toolstack's part: introduce the domain to xenstored as dom0 */
    xs = xs_open(XS_OPEN_SOCKETONLY);
    if (!xs) {
        snprintf(err, errlen, "cannot reach xenstored: %s", strerror(errno));
        return -1;
    }
    if (!xs_introduce_domain(xs, domid, 0, xb.port)) {
        snprintf(err, errlen, "XS_INTRODUCE failed: %s", strerror(errno));
        xs_close(xs);
        return -1;
    }
    xs_close(xs);
    return 0;
}

int sim_xenbus_main(uint32_t domid, int ready_fd)
{
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    if (setup(domid, err, sizeof(err)) < 0) {
        dprintf(ready_fd, "%s\n", err);
        return 1;
    }
    (void)!write(ready_fd, "ok\n", 3);
    close(ready_fd);

    for (;;) {
        struct pollfd pfd[MAX_CLIENTS + 2];
        Client *who[MAX_CLIENTS + 2];
        nfds_t n = 0;

        pfd[n] = (struct pollfd){.fd = xb.listen_fd, .events = POLLIN};
        who[n++] = NULL;
        pfd[n] = (struct pollfd){.fd = xenevtchn_fd(xb.xce), .events = POLLIN};
        who[n++] = NULL;
        for (size_t i = 0; i < MAX_CLIENTS; i++) {
            Client *c = xb.clients[i];
            if (!c)
                continue;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = POLLIN | (c->out.len ? POLLOUT : 0)};
            who[n++] = c;
        }
        /* ring space may free up without an event we see: poll briefly */
        if (poll(pfd, n, xb.toring.len ? 1 : 1000) < 0 && errno != EINTR)
            return 1;
        if (pfd[1].revents & POLLIN) {
            int p = xenevtchn_pending(xb.xce);
            if (p >= 0)
                xenevtchn_unmask(xb.xce, (uint32_t)p);
        }
        for (nfds_t i = 2; i < n; i++) {
            Client *c = who[i];
            bool drop = false;

            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                uint8_t tmp[8192];
                ssize_t got = read(c->fd, tmp, sizeof(tmp));
                if (got > 0)
                    drop = buf_put(&c->in, tmp, (size_t)got) < 0 || !client_input(c);
                else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                    drop = true;
            }
            if (!drop && (pfd[i].revents & POLLOUT) && c->out.len) {
                ssize_t w = write(c->fd, c->out.p, c->out.len);
                if (w > 0)
                    buf_drop(&c->out, (size_t)w);
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    drop = true;
            }
            if (drop) {
                for (size_t k = 0; k < MAX_CLIENTS; k++)
                    if (xb.clients[k] == c)
                        xb.clients[k] = NULL;
                client_free(c);
            }
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(xb.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            size_t slot = MAX_CLIENTS;
            for (size_t k = 0; k < MAX_CLIENTS && fd >= 0; k++)
                if (!xb.clients[k]) {
                    slot = k;
                    break;
                }
            if (fd >= 0 && slot == MAX_CLIENTS) {
                close(fd);
            } else if (fd >= 0) {
                Client *c = calloc(1, sizeof(*c));
                if (!c) {
                    close(fd);
                } else {
                    c->fd = fd;
                    c->id = ++xb.next_client;
                    xb.clients[slot] = c;
                }
            }
        }
        ring_io();
        /* flush replies produced by ring_io right away */
        for (size_t i = 0; i < MAX_CLIENTS; i++) {
            Client *c = xb.clients[i];
            if (c && c->out.len) {
                ssize_t w = write(c->fd, c->out.p, c->out.len);
                if (w > 0)
                    buf_drop(&c->out, (size_t)w);
            }
        }
    }
}
