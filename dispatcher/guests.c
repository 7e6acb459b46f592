/* SPDX-License-Identifier: MIT */
/*
 * guests.c - guest discovery. The dispatcher watches @introduceDomain, @releaseDomain and,
 * recursively, /local/domain; an agent announces itself by writing a fresh generation to
 * /local/domain/N/data/vrpc-ready after offering its vchan at /local/domain/N/data/vrpc.
 * For a domain whose announced generation is neither the connected one nor one already
 * tried, the dispatcher connects as vchan client; a new generation replaces a connection that
 * is not ready yet, while a ready one stays until it ends (an agent that restarted closed
 * it), and then the announcement is read again. A failed attempt, or a connection that closes before it
 * is ready, is retried with backoff for as long as the domain exists, and attempts in quick
 * succession back off too, so that a guest that rewrites its data/vrpc-ready in a loop cannot
 * make the dispatcher spin, nor strand itself once it stops (its agent then re-offers, and
 * the next attempt reads the newest generation). The log lines of attempts are rate-limited
 * per guest. @releaseDomain runs vchan_check_peer() on every guest
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
/* Connection attempts to one guest: after a failure, retry after RETRY_MIN_MS, doubling up to
 * RETRY_MAX_MS; attempts closer than CALM_MS to the one before also wait that long, so a
 * guest that rewrites its data/vrpc-ready in a loop costs at most one attempt per backoff. */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define CALM_MS 10000
/* At most one "cannot connect" (and one "agent restarted") line per guest per interval. */
#define LOG_INTERVAL_MS 10000

typedef struct RateLog {
    int64_t next_ms;
    unsigned suppressed;
} RateLog;

typedef struct Known {
    Guests *g;
    struct Known *next;
    int domid;
    char generation[GENERATION_MAX + 1]; /* last generation we connected to (or tried) */
    int64_t last_attempt_ms;             /* 0: never */
    int64_t backoff_ms;                  /* wait after last_attempt_ms before the next one */
    RpcLoopSource *retry;                /* armed: an attempt is due then, whatever we read */
    bool retry_armed;
    RateLog fail_log, restart_log;
} Known;

struct Guests {
    Dispatcher *d;
    struct xs_handle *xs;
    RpcLoopSource *src;
    Known *known;
};

static void check_domain(Guests *g, int domid, bool retry);

/* True when a line may be logged now; *suppressedp: lines dropped since the last one. */
static bool ratelog_allow(RateLog *rl, int64_t now, unsigned *suppressedp)
{
    if (now < rl->next_ms) {
        rl->suppressed++;
        return false;
    }
    *suppressedp = rl->suppressed;
    rl->suppressed = 0;
    rl->next_ms = now + LOG_INTERVAL_MS;
    return true;
}

static void on_retry(RpcLoopSource *src, void *userdata)
{
    Known *k = userdata;

    k->retry_armed = false;
    check_domain(k->g, k->domid, true);
}

static void known_arm_retry(Known *k, int64_t delay_ms)
{
    if (rpc_loop_timer_set(k->retry, delay_ms) == 0)
        k->retry_armed = true;
}

static void known_free(Known *k)
{
    rpc_loop_source_free(k->retry);
    free(k);
}

static Known *known_get(Guests *g, int domid, bool create)
{
    Known *k;

    for (k = g->known; k; k = k->next)
        if (k->domid == domid)
            return k;
    if (!create)
        return NULL;
    k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->g = g;
    k->domid = domid;
    if (rpc_loop_add_timer(g->d->loop, -1, on_retry, k, &k->retry) < 0) {
        free(k);
        return NULL;
    }
    k->next = g->known;
    g->known = k;
    return k;
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

/* Connect to the agent of @domid for @generation, replacing @peer (an older connection). */
static void attempt(Guests *g, Known *k, Peer *peer, const char *generation)
{
    char path[64];
    char *name;
    unsigned len, suppressed;
    int64_t now = rpc_loop_now_ms();
    int r;

    /* Attempts in quick succession back off; a calm spell resets the backoff. */
    if (k->last_attempt_ms && now - k->last_attempt_ms < CALM_MS)
        k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : RETRY_MIN_MS;
    else
        k->backoff_ms = 0;
    if (k->backoff_ms > RETRY_MAX_MS)
        k->backoff_ms = RETRY_MAX_MS;
    k->last_attempt_ms = now;
    snprintf(k->generation, sizeof(k->generation), "%s", generation);
    if (peer) {
        if (ratelog_allow(&k->restart_log, now, &suppressed))
            dlog(LOG_INFO,
                 "guest %s (domid %d): agent offered a new connection (generation %s; "
                 "%u more since the last report)",
                 peer->name, k->domid, generation, suppressed);
        peer_drop(peer, "agent offered a new connection");
    }

    snprintf(path, sizeof(path), "/local/domain/%d/name", k->domid);
    name = xs_read_str(g, path, &len);
    if (!name || strlen(name) != len || !vrpc_policy_domain_is_valid(name) ||
        strcmp(name, "dom0") == 0) {
        dlog(LOG_WARNING, "domid %d: no valid name in xenstore; not connecting", k->domid);
        free(name);
        return;
    }
    /* The vchan library's own line for each failure would defeat the rate limit below. */
    dlog_library_quiet(true);
    r = peer_new_guest(g->d, k->domid, name, generation, NULL);
    dlog_library_quiet(false);
    if (r < 0) {
        int64_t delay = k->backoff_ms > RETRY_MIN_MS ? k->backoff_ms : RETRY_MIN_MS;

        if (ratelog_allow(&k->fail_log, now, &suppressed))
            dlog(LOG_WARNING,
                 "guest %s (domid %d): cannot connect to the agent: %s (retrying "
                 "in %lld ms; %u more failures since the last report)",
                 name, k->domid, strerror(-r), (long long)delay, suppressed);
        known_arm_retry(k, delay);
    } else {
        dlog(LOG_DEBUG, "guest %s (domid %d): connecting (generation %s)", name, k->domid,
             generation);
    }
    free(name);
}

/*
 * Connect to (or reconnect to) the agent of @domid if it announced a generation we are not
 * connected to: a new one, or (@retry: the retry timer fired) the one whose attempt failed.
 * An attempt that comes too soon after the last one is left to the retry timer, which reads
 * the announcement again when it fires.
 */
static void check_domain(Guests *g, int domid, bool retry)
{
    char path[64], generation[GENERATION_MAX + 1];
    char *untrusted_gen;
    unsigned len;
    Peer *peer;
    Known *k;
    int64_t due;

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
    /* A healthy connection stays, whatever the guest writes: data/vrpc-ready belongs to the
     * guest, so any process there can change it, and acting on it later (after a backoff)
     * would cut calls in flight. An agent that really restarted closed its old vchan, which
     * ends this connection; peer_drop() then has us look at the announcement again. */
    if (peer && peer->ready) {
        dlog(LOG_DEBUG, "guest %s (domid %d): vrpc-ready changed while connected; kept", peer->name,
             domid);
        return;
    }
    k = known_get(g, domid, true);
    if (!k)
        return;
    if (!retry) {
        if (!peer && strcmp(k->generation, generation) == 0)
            return; /* tried already: a new offer or the retry timer comes next */
        if (k->retry_armed)
            return; /* an attempt is due soon and reads the newest generation */
        due = k->last_attempt_ms + k->backoff_ms;
        if (k->last_attempt_ms && rpc_loop_now_ms() < due) {
            known_arm_retry(k, due - rpc_loop_now_ms());
            return;
        }
    }
    attempt(g, k, peer, generation);
}

void guests_connection_lost(Guests *g, int domid)
{
    Known *k = g ? known_get(g, domid, false) : NULL;

    /* A connection ended: one that never got ready may have its offer still there, an agent
     * that restarted has made a new one; either way, look again after the backoff. */
    if (k && !k->retry_armed)
        known_arm_retry(k, k->backoff_ms > RETRY_MIN_MS ? k->backoff_ms : RETRY_MIN_MS);
}

static void scan_all(Guests *g)
{
    unsigned num = 0;
    char **dirs = xs_directory(g->xs, XBT_NULL, "/local/domain", &num);

    /* Forget the domains that no longer exist (their retries with them). */
    for (Known **kp = &g->known; *kp;) {
        Known *k = *kp;
        bool present = false;
        for (unsigned j = 0; dirs && j < num; j++)
            if (atoi(dirs[j]) == k->domid)
                present = true;
        if (!present) {
            *kp = k->next;
            known_free(k);
        } else {
            kp = &k->next;
        }
    }
    for (unsigned j = 0; dirs && j < num; j++) {
        char *end;
        long domid = strtol(dirs[j], &end, 10);
        if (*end || end == dirs[j] || domid <= 0)
            continue;
        check_domain(g, (int)domid, false);
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
        } else if (sscanf(path, "/local/domain/%d/data/vrpc-ready%n", &domid, &n) == 1 && n > 0 &&
                   path[n] == '\0') {
            check_domain(g, domid, false);
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
        !xs_watch(g->xs, "@releaseDomain", "vrpc") || !xs_watch(g->xs, "/local/domain", "vrpc")) {
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
    while (g->known) {
        Known *k = g->known;
        g->known = k->next;
        known_free(k);
    }
    free(g);
    return NULL;
}
