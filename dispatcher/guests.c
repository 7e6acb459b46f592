// SPDX-License-Identifier: MIT
/*
 * guests.c - guest discovery. The dispatcher watches @introduceDomain, @releaseDomain and,
 * recursively, /local/domain; an agent announces itself by writing a fresh generation to
 * /local/domain/N/data/vrpc-ready after offering its vchan at /local/domain/N/data/vrpc.
 * For a domain whose announced generation is neither the connected one nor one already
 * tried, the dispatcher connects as vchan client (a new generation replaces the old
 * connection: the agent restarted). @releaseDomain runs vchan_check_peer() on every guest
 * connection and drops the dead ones: a destroyed domain never closes its side. Only the
 * guest concerned is touched. The generation is written by the guest and therefore
 * untrusted (checked: short, [A-Za-z0-9._-]); the domain name comes from
 * /local/domain/N/name, which only the toolstack can write. The watch fd is read without
 * blocking (xs_check_watch) from the loop.
 */
#include "guests.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#include "librpc/loop.h"
#include "log.h"
#include "peer.h"
#include "vchan/vchan.h"
#include "vrpc-policy.h"

#define GENERATION_MAX 63

typedef struct Known {
    int domid;
    char generation[GENERATION_MAX + 1]; /* last generation we connected to (or tried) */
} Known;

struct Guests {
    Dispatcher *d;
    struct xs_handle *xs;
    RpcLoopSource *src;
    Known *known;
    size_t n_known, cap_known;
};

static Known *known_get(Guests *g, int domid, bool create)
{
    for (size_t i = 0; i < g->n_known; i++)
        if (g->known[i].domid == domid)
            return &g->known[i];
    if (!create)
        return NULL;
    if (g->n_known == g->cap_known) {
        size_t cap = g->cap_known ? 2 * g->cap_known : 16;
        Known *k = realloc(g->known, cap * sizeof(*k));
        if (!k)
            return NULL;
        g->known = k;
        g->cap_known = cap;
    }
    g->known[g->n_known] = (Known){.domid = domid};
    return &g->known[g->n_known++];
}

static char *xs_read_str(Guests *g, const char *path, unsigned *lenp)
{
    unsigned len = 0;
    char *v = xs_read(g->xs, XBT_NULL, path, &len);
    if (lenp)
        *lenp = len;
    return v;
}

static bool valid_generation(const char *untrusted, unsigned len)
{
    if (len == 0 || len > GENERATION_MAX || strlen(untrusted) != len)
        return false;
    for (unsigned i = 0; i < len; i++) {
        char ch = untrusted[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Connect to (or reconnect to) the agent of @domid if it announced a new generation. */
static void check_domain(Guests *g, int domid)
{
    char path[64], generation[GENERATION_MAX + 1];
    char *untrusted_gen, *name;
    unsigned len;
    Peer *peer;
    Known *k;
    int r;

    if (domid <= 0 || domid >= VCHAN_DOMID_FIRST_RESERVED)
        return;
    snprintf(path, sizeof(path), "/local/domain/%d/data/vrpc-ready", domid);
    untrusted_gen = xs_read_str(g, path, &len);
    if (!untrusted_gen)
        return; /* not announced (or gone): an existing connection ends by itself */
    if (!valid_generation(untrusted_gen, len)) {
        dlog(LOG_DEBUG, "domid %d: ignoring a malformed vrpc-ready", domid);
        free(untrusted_gen);
        return;
    }
    memcpy(generation, untrusted_gen, len + 1);
    free(untrusted_gen);

    peer = peer_find_domid(g->d, domid);
    if (peer && strcmp(peer->generation, generation) == 0)
        return;
    k = known_get(g, domid, true);
    if (!k)
        return;
    if (!peer && strcmp(k->generation, generation) == 0)
        return; /* tried (or dropped) already: wait for a new offer */
    snprintf(k->generation, sizeof(k->generation), "%s", generation);
    if (peer) {
        dlog(LOG_INFO, "guest %s (domid %d): agent restarted (generation %s)", peer->name,
             domid, generation);
        peer_drop(peer, "agent offered a new connection");
    }

    snprintf(path, sizeof(path), "/local/domain/%d/name", domid);
    name = xs_read_str(g, path, &len);
    if (!name || strlen(name) != len || !rpc_valid_domain(name) ||
        !vrpc_policy_domain_is_valid(name) || strcmp(name, "dom0") == 0) {
        dlog(LOG_WARNING, "domid %d: no valid name in xenstore; not connecting", domid);
        free(name);
        return;
    }
    r = peer_new_guest(g->d, domid, name, generation, NULL);
    if (r < 0)
        dlog(LOG_WARNING, "guest %s (domid %d): cannot connect to the agent: %s", name, domid,
             strerror(-r));
    else
        dlog(LOG_DEBUG, "guest %s (domid %d): connecting (generation %s)", name, domid,
             generation);
    free(name);
}

static void scan_all(Guests *g)
{
    unsigned num = 0;
    char **dirs = xs_directory(g->xs, XBT_NULL, "/local/domain", &num);

    /* Forget the generations of domains that no longer exist. */
    for (size_t i = 0; i < g->n_known;) {
        bool present = false;
        for (unsigned j = 0; dirs && j < num; j++)
            if (atoi(dirs[j]) == g->known[i].domid)
                present = true;
        if (!present)
            g->known[i] = g->known[--g->n_known];
        else
            i++;
    }
    for (unsigned j = 0; dirs && j < num; j++) {
        char *end;
        long domid = strtol(dirs[j], &end, 10);
        if (*end || end == dirs[j] || domid <= 0)
            continue;
        check_domain(g, (int)domid);
    }
    free(dirs);
}

/* Some domain died: find which of ours it was. */
static void check_released(Guests *g)
{
    Peer *next;

    for (Peer *p = g->d->peers; p; p = next) {
        next = p->next;
        if (p->kind != PEER_GUEST || !p->vchan)
            continue;
        int r = vchan_check_peer(p->vchan);
        if (r == 0) {
            dlog(LOG_INFO, "guest %s (domid %d) was destroyed", p->name, p->domid);
            p->destroyed = true; /* for the audit reason of later calls to it */
            peer_drop(p, "domain destroyed");
            /* peer_drop() may have ended calls whose relay partner was next: restart. */
            next = g->d->peers;
        }
    }
}

static void on_watch(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Guests *g = userdata;
    char **vec;
    int budget = 4096; /* watch events per loop iteration: others get their turn too */

    while (budget-- > 0 && (vec = xs_check_watch(g->xs))) {
        const char *path = vec[XS_WATCH_PATH];
        int domid, n = 0;

        if (strcmp(path, "@releaseDomain") == 0) {
            check_released(g);
            scan_all(g);
        } else if (strcmp(path, "@introduceDomain") == 0 || strcmp(path, "/local/domain") == 0) {
            scan_all(g);
        } else if (sscanf(path, "/local/domain/%d/data/vrpc-ready%n", &domid, &n) == 1 &&
                   n > 0 && path[n] == '\0') {
            check_domain(g, domid);
        }
        free(vec);
    }
}

int guests_new(Guests **gp, Dispatcher *d)
{
    Guests *g = calloc(1, sizeof(*g));
    int r;

    if (!g)
        return -ENOMEM;
    g->d = d;
    g->xs = xs_open(0);
    if (!g->xs) {
        r = errno ? -errno : -EIO;
        free(g);
        return r;
    }
    if (!xs_watch(g->xs, "@introduceDomain", "vrpc") ||
        !xs_watch(g->xs, "@releaseDomain", "vrpc") ||
        !xs_watch(g->xs, "/local/domain", "vrpc")) {
        r = errno ? -errno : -EIO;
        guests_free(g);
        return r;
    }
    r = rpc_loop_add_fd(d->loop, xs_fileno(g->xs), EPOLLIN, on_watch, g, &g->src);
    if (r < 0) {
        guests_free(g);
        return r;
    }
    scan_all(g);
    *gp = g;
    return 0;
}

Guests *guests_free(Guests *g)
{
    if (!g)
        return NULL;
    g->src = rpc_loop_source_free(g->src);
    if (g->xs)
        xs_close(g->xs);
    free(g->known);
    free(g);
    return NULL;
}
