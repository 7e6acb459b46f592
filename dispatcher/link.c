/* SPDX-License-Identifier: MIT */
/*
 * link.c - links to the other hosts of dispatcher.yaml's host: section.
 *
 * Each configured peer has a dialer: resolve its address without blocking the loop
 * (getaddrinfo_a, polled), connect (non-blocking) to each address of the answer in turn until
 * one takes the TCP connection, TLS handshake (tls.c), then check that the verified
 * certificate names that peer. Failures back off from 100 ms doubling to 5 s. The
 * listener accepts any peer whose verified certificate names one of the configured peers
 * (the name comes from the certificate only). Exactly one link per pair of hosts: when both
 * ends dialled, the link dialled by the lexically smaller host name is kept and the other
 * closed (both ends apply the same rule; the larger host also dials a little later, so that
 * usually only one is made). An up link is a Peer (PEER_HOST); its loss (peer_drop) comes
 * back here through d->host_lost and restarts the dialer. Every refusal is logged with its
 * reason.
 */
#include "link.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "peer.h"
#include "tls.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define RESOLVE_POLL_MS 10
#define PING_INTERVAL_MS 1000
/* Handshakes in progress on the listener at once (a flood of half-open peers). */
#define ACCEPT_PENDING_MAX 64
#define HANDSHAKE_TIMEOUT_MS 10000

typedef enum LinkState {
    LINK_DOWN = 0,
    LINK_RESOLVING,
    LINK_CONNECTING,
    LINK_HANDSHAKE,
    LINK_UP,
} LinkState;

static const char *const state_names[] = {"down", "resolving", "connecting", "handshake", "up"};

typedef struct HostLink HostLink;

/* A TCP connection on its way to being a link: dialled (link set) or accepted. */
typedef struct Pending {
    Links *ls;
    struct Pending *prev, *next;
    HostLink *link;  /* dialled for this peer; NULL: accepted */
    bool connecting; /* dialled: TCP connect not finished */
    Tls *tls;
    int fd; /* until tls takes it */
    RpcLoopSource *src, *timeout;
} Pending;

struct HostLink {
    Links *ls;
    const HostPeerConfig *cfg;
    LinkState state;
    Peer *peer;    /* up */
    bool dialled;  /* the up link is the one we dialled */
    Pending *dial; /* our dial in progress */
    struct gaicb gcb;
    struct addrinfo hints;
    struct gaicb *gcbp;
    bool resolving;
    struct addrinfo *addrs;     /* the last resolution's answer, tried in turn */
    struct addrinfo *next_addr; /* the next one to try after a failed connect */
    RpcLoopSource *timer; /* backoff, resolve poll */
    RpcLoopSource *ping;
    int64_t backoff_ms;
    uint64_t rtt_us;
    bool rtt_known;
    char last_error[DISPATCHER_ADDR_MAX + 96];
};

struct Links {
    Dispatcher *d;
    TlsCtx *tls;
    int listen_fd;
    RpcLoopSource *listen_src;
    HostLink links[DISPATCHER_PEERS_MAX];
    size_t n;
    const char *names[DISPATCHER_PEERS_MAX];
    Pending *pending;
    unsigned n_accepting;
};

static void dial_start(HostLink *l);
static void dial_next(HostLink *l, const char *why);

static void addrs_free(HostLink *l)
{
    if (l->addrs)
        freeaddrinfo(l->addrs);
    l->addrs = l->next_addr = NULL;
}

/* ---- helpers -------------------------------------------------------------------------- */

static HostLink *link_by_name(Links *ls, const char *name)
{
    for (size_t i = 0; i < ls->n; i++)
        if (strcmp(ls->links[i].cfg->name, name) == 0)
            return &ls->links[i];
    return NULL;
}

static void pending_free(Pending *p)
{
    if (!p)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        p->ls->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (!p->link)
        p->ls->n_accepting--;
    else if (p->link->dial == p)
        p->link->dial = NULL;
    rpc_loop_source_free(p->src);
    rpc_loop_source_free(p->timeout);
    if (p->tls)
        tls_free(p->tls);
    else if (p->fd >= 0)
        close(p->fd);
    free(p);
}

static void schedule_retry(HostLink *l, const char *why)
{
    snprintf(l->last_error, sizeof(l->last_error), "%s", why);
    addrs_free(l);
    l->state = LINK_DOWN;
    rpc_loop_timer_set(l->timer, l->backoff_ms);
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void on_pong(RpcConn *conn, uint64_t rtt_us, void *userdata)
{
    HostLink *l = userdata;
    l->rtt_us = rtt_us;
    l->rtt_known = true;
}

static void ping_tick(RpcLoopSource *src, void *userdata)
{
    HostLink *l = userdata;
    if (l->state == LINK_UP && l->peer && l->peer->conn)
        rpc_conn_ping(l->peer->conn, on_pong, l);
    rpc_loop_timer_set(l->ping, PING_INTERVAL_MS);
}

/* The link's peer was dropped (peer.c): dial again. */
static void host_lost(Peer *p)
{
    HostLink *l = p->link;
    if (!l || l->peer != p)
        return;
    l->peer = NULL;
    p->link = NULL;
    rpc_loop_timer_set(l->ping, -1);
    l->rtt_known = false;
    l->backoff_ms = BACKOFF_MIN_MS;
    dlog(LOG_WARNING, "link to host %s lost; reconnecting", l->cfg->name);
    schedule_retry(l, "link lost");
}

/* @p finished its handshake and its certificate names link @l's host: make it the link, or
 * close it when the one kept by the rule is another. */
static void link_install(Pending *pd, HostLink *l)
{
    Links *ls = pd->ls;
    Dispatcher *d = ls->d;
    bool dialled = pd->link != NULL;
    const char *me = d->config.host.name, *peer = l->cfg->name;
    /* The link both ends keep: the one dialled by the smaller name. */
    bool keep_dialled_by_me = strcmp(me, peer) < 0;

    if (l->state == LINK_UP && l->peer) {
        if (l->dialled == keep_dialled_by_me || dialled != keep_dialled_by_me) {
            dlog(LOG_INFO, "host %s: second link closed (one per pair of hosts)", peer);
            pending_free(pd);
            return;
        }
        dlog(LOG_INFO, "host %s: replacing the link (one per pair of hosts: %s's is kept)", peer,
             keep_dialled_by_me ? me : peer);
        Peer *old = l->peer;
        host_lost(old);
        peer_drop(old, "duplicate link between two hosts");
    }
    /* An accepted link is up before our own dial finished: drop the dial, so that the peer
     * (whose dial this is) never sees a second link of ours complete. A dial that did
     * complete on both ends meanwhile is resolved by the rule above, the same on both. */
    if (!dialled && l->dial)
        pending_free(l->dial);
    Tls *t = pd->tls;
    pd->tls = NULL;
    if (pd == l->dial)
        l->dial = NULL;
    pending_free(pd);
    Peer *p;
    int r = peer_new_host(d, t, dialled ? RPC_ROLE_INITIATOR : RPC_ROLE_ACCEPTOR, peer, &p);
    if (r < 0) {
        dlog(LOG_ERR, "host %s: cannot make the link: %s", peer, strerror(-r));
        schedule_retry(l, "out of memory");
        return;
    }
    rpc_loop_timer_set(l->timer, -1);
    p->link = l;
    l->peer = p;
    l->dialled = dialled;
    l->state = LINK_UP;
    l->backoff_ms = BACKOFF_MIN_MS;
    l->last_error[0] = '\0';
    addrs_free(l);
    rpc_loop_timer_set(l->ping, 0);
    dlog(LOG_INFO, "link to host %s up (%s)", peer, dialled ? "dialled" : "accepted");
}

static void pending_fail(Pending *pd, const char *why)
{
    HostLink *l = pd->link;
    if (l) {
        /* A TCP connect that failed moves on to the next address of the name, if any. */
        bool next = pd->connecting && l->next_addr && l->state != LINK_UP;
        dlog(next ? LOG_INFO : LOG_WARNING, "host %s (%s:%s): no link%s: %s", l->cfg->name,
             l->cfg->addr.host, l->cfg->addr.port, next ? " on this address" : "", why);
        pending_free(pd);
        if (next)
            dial_next(l, why);
        else if (l->state != LINK_UP)
            schedule_retry(l, why);
    } else {
        dlog(LOG_WARNING, "incoming host link refused: %s", why);
        pending_free(pd);
    }
}

static void handshake_step(Pending *pd)
{
    char err[256];
    int r = tls_handshake(pd->tls, err, sizeof(err));
    if (r < 0) {
        pending_fail(pd, err);
        return;
    }
    if (r == 0) {
        rpc_loop_fd_set_events(pd->src, tls_want_events(pd->tls));
        return;
    }
    Links *ls = pd->ls;
    int idx;
    if (pd->link) {
        const char *name = pd->link->cfg->name;
        idx = tls_peer_name(pd->tls, &name, 1, err, sizeof(err));
        if (idx == 0)
            idx = (int)(pd->link - ls->links);
    } else {
        idx = tls_peer_name(pd->tls, ls->names, ls->n, err, sizeof(err));
    }
    if (idx < 0) {
        pending_fail(pd, err);
        return;
    }
    rpc_loop_source_free(pd->src);
    pd->src = NULL;
    link_install(pd, &ls->links[idx]);
}

static void pending_io(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Pending *pd = userdata;
    if (pd->connecting) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            char why[160];
            snprintf(why, sizeof(why), "connect: %s", strerror(soerr));
            pending_fail(pd, why);
            return;
        }
        pd->connecting = false;
        pd->link->state = LINK_HANDSHAKE;
        int r = tls_new(&pd->tls, pd->ls->tls, pd->fd, false);
        pd->fd = -1;
        if (r < 0) {
            pending_fail(pd, "out of memory");
            return;
        }
    }
    handshake_step(pd);
}

static void pending_timeout(RpcLoopSource *src, void *userdata)
{
    pending_fail(userdata, "handshake timed out");
}

static int pending_new(Links *ls, HostLink *l, int fd, bool connecting, Pending **pp)
{
    Pending *pd = calloc(1, sizeof(*pd));
    int r;
    if (!pd) {
        close(fd);
        return -ENOMEM;
    }
    pd->ls = ls;
    pd->link = l;
    pd->fd = fd;
    pd->connecting = connecting;
    pd->next = ls->pending;
    if (ls->pending)
        ls->pending->prev = pd;
    ls->pending = pd;
    if (!l)
        ls->n_accepting++;
    if (!connecting) {
        r = tls_new(&pd->tls, ls->tls, fd, l == NULL);
        pd->fd = -1;
        if (r < 0) {
            pending_free(pd);
            return r;
        }
    }
    r = rpc_loop_add_fd(ls->d->loop, fd, EPOLLIN | EPOLLOUT, pending_io, pd, &pd->src);
    if (r == 0)
        r = rpc_loop_add_timer(ls->d->loop, HANDSHAKE_TIMEOUT_MS, pending_timeout, pd,
                               &pd->timeout);
    if (r < 0) {
        pending_free(pd);
        return r;
    }
    *pp = pd;
    return 0;
}

/* ---- dialling ------------------------------------------------------------------------------ */

/* Connect to the next address of l->addrs that takes a connect (non-blocking); when none is
 * left, back off with the last failure (@why: the one that brought us here, if any). */
static void dial_next(HostLink *l, const char *why)
{
    char buf[160];

    while (l->next_addr) {
        const struct addrinfo *ai = l->next_addr;
        l->next_addr = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(buf, sizeof(buf), "socket: %s", strerror(errno));
            why = buf;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            snprintf(buf, sizeof(buf), "connect: %s", strerror(errno));
            why = buf;
            close(fd);
            dlog(LOG_DEBUG, "host %s: %s", l->cfg->name, why);
            continue;
        }
        l->state = LINK_CONNECTING;
        if (pending_new(l->ls, l, fd, true, &l->dial) < 0)
            schedule_retry(l, "out of memory");
        return;
    }
    schedule_retry(l, why ? why : "no address");
}

static void link_timer(RpcLoopSource *src, void *userdata)
{
    HostLink *l = userdata;

    if (l->state == LINK_UP)
        return;
    if (l->resolving) {
        int e = gai_error(&l->gcb);
        if (e == EAI_INPROGRESS) {
            rpc_loop_timer_set(l->timer, RESOLVE_POLL_MS);
            return;
        }
        l->resolving = false;
        if (e != 0) {
            char why[DISPATCHER_ADDR_MAX + 96];
            snprintf(why, sizeof(why), "cannot resolve %s: %s", l->cfg->addr.host, gai_strerror(e));
            dlog(LOG_WARNING, "host %s: %s", l->cfg->name, why);
            schedule_retry(l, why);
            return;
        }
        addrs_free(l);
        l->addrs = l->next_addr = l->gcb.ar_result;
        l->gcb.ar_result = NULL;
        dial_next(l, NULL);
        return;
    }
    if (!l->dial)
        dial_start(l);
}

static void dial_start(HostLink *l)
{
    memset(&l->gcb, 0, sizeof(l->gcb));
    memset(&l->hints, 0, sizeof(l->hints));
    l->hints.ai_socktype = SOCK_STREAM;
    l->hints.ai_flags = AI_ADDRCONFIG;
    l->gcb.ar_name = l->cfg->addr.host;
    l->gcb.ar_service = l->cfg->addr.port;
    l->gcb.ar_request = &l->hints;
    l->gcbp = &l->gcb;
    /* Asynchronous: a slow DNS never blocks the loop; the timer polls for the answer. */
    int e = getaddrinfo_a(GAI_NOWAIT, &l->gcbp, 1, NULL);
    if (e != 0) {
        schedule_retry(l, gai_strerror(e));
        return;
    }
    l->resolving = true;
    l->state = LINK_RESOLVING;
    rpc_loop_timer_set(l->timer, 0);
}

/* ---- listening ------------------------------------------------------------------------------ */

static void on_accept(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Links *ls = userdata;
    for (int i = 0; i < 16; i++) {
        int c = accept4(ls->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        if (ls->n_accepting >= ACCEPT_PENDING_MAX) {
            dlog(LOG_WARNING, "incoming host link refused: %u handshakes in progress",
                 ls->n_accepting);
            close(c);
            continue;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        Pending *pd;
        if (pending_new(ls, NULL, c, false, &pd) < 0)
            dlog(LOG_ERR, "incoming host link: out of memory");
    }
}

static int listen_on(Links *ls, const HostAddr *a, char *err, size_t errsize)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int e = getaddrinfo(a->host, a->port, &hints, &res);
    if (e != 0) {
        snprintf(err, errsize, "host.listen %s:%s: %s", a->host, a->port, gai_strerror(e));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        int r = -errno;
        snprintf(err, errsize, "host.listen %s:%s: %s", a->host, a->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return r;
    }
    freeaddrinfo(res);
    ls->listen_fd = fd;
    return 0;
}

/* ---- lifetime ------------------------------------------------------------------------------- */

int links_load_tls(const HostConfig *h, TlsCtx **tlsp, char *err, size_t errsize)
{
    static const char *const what[3] = {"ca", "cert", "key"};
    char why[400] = "out of memory";
    struct stat st;
    int which, r;

    *tlsp = NULL;
    if (!h->enabled)
        return 0;
    r = tls_ctx_new(tlsp, h->ca, h->cert, h->key, &which, why, sizeof(why));
    if (r < 0) {
        if (which < 0)
            snprintf(err, errsize, "%s", why);
        else
            snprintf(err, errsize, "%s:%u:%u: host.tls.%s: %s", h->file, h->tls_line[which],
                     h->tls_col[which], what[which], why);
        return r;
    }
    if (!tls_ctx_cert_has_name(*tlsp, h->name)) {
        snprintf(err, errsize,
                 "%s:%u:%u: host.tls.cert: %s does not name host %s (a subjectAltName DNS "
                 "entry)",
                 h->file, h->tls_line[1], h->tls_col[1], h->cert, h->name);
        *tlsp = tls_ctx_free(*tlsp);
        return -EINVAL;
    }
    if (stat(h->key, &st) == 0 && (st.st_mode & 077))
        dlog(LOG_WARNING,
             "%s:%u:%u: host.tls.key: %s may be read by others (mode %04o): "
             "make it 0600",
             h->file, h->tls_line[2], h->tls_col[2], h->key, (unsigned)(st.st_mode & 07777));
    return 0;
}

int links_new(Links **lsp, Dispatcher *d, TlsCtx *tls, char *err, size_t errsize)
{
    const HostConfig *h = &d->config.host;
    Links *ls;
    int r;

    *lsp = NULL;
    if (!h->enabled)
        return 0;
    ls = calloc(1, sizeof(*ls));
    if (!ls) {
        tls_ctx_free(tls);
        return -ENOMEM;
    }
    ls->d = d;
    ls->listen_fd = -1;
    ls->tls = tls;
    r = listen_on(ls, &h->listen, err, errsize);
    if (r < 0)
        goto fail;
    r = rpc_loop_add_fd(d->loop, ls->listen_fd, EPOLLIN, on_accept, ls, &ls->listen_src);
    if (r < 0)
        goto fail;
    d->host_lost = host_lost;
    for (size_t i = 0; i < h->n_peers; i++) {
        HostLink *l = &ls->links[i];
        l->ls = ls;
        l->cfg = &h->peers[i];
        l->backoff_ms = BACKOFF_MIN_MS;
        ls->names[i] = l->cfg->name;
        ls->n++;
        /* The larger name dials a little later: usually the smaller one's link is made
         * first and is the one both ends keep. */
        int64_t first = strcmp(h->name, l->cfg->name) < 0 ? 0 : 300;
        r = rpc_loop_add_timer(d->loop, first, link_timer, l, &l->timer);
        if (r == 0)
            r = rpc_loop_add_timer(d->loop, -1, ping_tick, l, &l->ping);
        if (r < 0) {
            snprintf(err, errsize, "out of memory");
            goto fail;
        }
    }
    dlog(LOG_INFO, "host %s listening on %s:%s for %zu peer(s)", h->name, h->listen.host,
         h->listen.port, h->n_peers);
    *lsp = ls;
    return 0;
fail:
    links_free(ls);
    return r;
}

Links *links_free(Links *ls)
{
    if (!ls)
        return NULL;
    while (ls->pending)
        pending_free(ls->pending);
    for (size_t i = 0; i < ls->n; i++) {
        HostLink *l = &ls->links[i];
        if (l->resolving) {
            if (gai_cancel(&l->gcb) == EAI_NOTCANCELED) {
                const struct gaicb *w[1] = {&l->gcb};
                while (gai_error(&l->gcb) == EAI_INPROGRESS)
                    gai_suspend(w, 1, NULL);
            }
            if (gai_error(&l->gcb) == 0 && l->gcb.ar_result)
                freeaddrinfo(l->gcb.ar_result);
        }
        if (l->peer) {
            l->peer->link = NULL;
            peer_free(l->peer);
        }
        addrs_free(l);
        rpc_loop_source_free(l->timer);
        rpc_loop_source_free(l->ping);
    }
    ls->d->host_lost = NULL;
    rpc_loop_source_free(ls->listen_src);
    if (ls->listen_fd >= 0)
        close(ls->listen_fd);
    tls_ctx_free(ls->tls);
    free(ls);
    return NULL;
}

Peer *links_find(Links *ls, const char *name)
{
    HostLink *l = ls ? link_by_name(ls, name) : NULL;
    return l && l->state == LINK_UP && l->peer && l->peer->ready ? l->peer : NULL;
}

bool links_is_peer(const Links *ls, const char *name)
{
    return ls && link_by_name((Links *)ls, name) != NULL;
}

void links_status(const Links *ls, FILE *f)
{
    if (!ls)
        return;
    unsigned up = 0, handshakes = 0;
    for (const Pending *pd = ls->pending; pd; pd = pd->next)
        handshakes++;
    for (size_t i = 0; i < ls->n; i++)
        up += ls->links[i].state == LINK_UP;
    fprintf(f, "hosts %zu up %u handshakes %u\n", ls->n, up, handshakes);
    for (size_t i = 0; i < ls->n; i++) {
        const HostLink *l = &ls->links[i];
        unsigned inflight = l->peer ? l->peer->calls_in_flight + l->peer->calls_out : 0;
        if (l->rtt_known)
            fprintf(f, "host %s state %s rtt-us %llu calls-in-flight %u\n", l->cfg->name,
                    state_names[l->state], (unsigned long long)l->rtt_us, inflight);
        else
            fprintf(f, "host %s state %s rtt-us - calls-in-flight %u\n", l->cfg->name,
                    state_names[l->state], inflight);
    }
}
