/* SPDX-License-Identifier: MIT */
/*
 * sched-mode.c - the dispatcher's scheduling policy (--sched). As SCHED_BATCH the daemon does not
 * preempt the task that woke it: woken by a handler's output or exit, it waits for the handler
 * to sleep or exit and then does everything in one pass (shorter calls, fewer vchan events);
 * but woken by a ring or a pipe while a stream moves bulk data on a busy host, it waits for a
 * co-runner's slice to end (slower streams). Auto takes both: SCHED_OTHER while the
 * connections carry bulk data, SCHED_BATCH otherwise (docs/performance.md, "The dispatcher's
 * policy chosen by what it carries"). Measured in windows of the loop's own passes: no timer,
 * nothing runs while the daemon sleeps. Handlers always start as SCHED_OTHER (services/spawn.c).
 */
#include "sched-mode.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "librpc/loop.h"
#include "librpc/rpc.h"
#include "log.h"
#include "peer.h"

/* A window: the bytes of this long are summed (the first pass after it ends looks). */
#define WINDOW_MS 20
/* Bulk: DATA bytes in and out of all connections at this rate or more over a window (a window
 * ends at the first pass after WINDOW_MS, which may come much later when the daemon slept); a
 * stream moves 0.3-1.5 GB/s on the machines measured, calls a few bytes each. */
#define BULK_BYTES_PER_S (50ull * 1000 * 1000)
/* SCHED_BATCH again only this long after the last window of bulk. */
#define QUIET_MS 100

struct SchedAuto {
    Dispatcher *d;
    RpcLoopSource *src;
    bool batch;
    int64_t window_start, last_bulk; /* rpc_loop_now_ms() */
    uint64_t window_bytes; /* the sum when the window started */
};

int sched_mode_parse(const char *name)
{
    if (strcmp(name, "other") == 0)
        return SCHED_MODE_OTHER;
    if (strcmp(name, "batch") == 0)
        return SCHED_MODE_BATCH;
    if (strcmp(name, "auto") == 0)
        return SCHED_MODE_AUTO;
    return -1;
}

static int set_policy(bool batch)
{
    if (sched_setscheduler(0, batch ? SCHED_BATCH : SCHED_OTHER, &(struct sched_param){0}) < 0)
        return -errno;
    return 0;
}

/* DATA bytes all connections have carried, both ways. */
static uint64_t carried(const Dispatcher *d)
{
    uint64_t sum = 0;

    for (const Peer *p = d->peers; p; p = p->next) {
        RpcConnStats st;

        if (!p->conn)
            continue;
        rpc_conn_get_stats(p->conn, &st);
        sum += st.data_in + st.data_out;
    }
    return sum;
}

static int on_prepare(RpcLoopSource *src, bool will_sleep, void *userdata)
{
    SchedAuto *s = userdata;
    int64_t now = rpc_loop_now_ms();
    uint64_t bytes;
    bool batch;

    (void)src;
    (void)will_sleep;
    if (now - s->window_start < WINDOW_MS)
        return 0;
    /* A peer that left takes its count along: a sum lower than before is a new start. */
    bytes = carried(s->d);
    if (bytes >= s->window_bytes &&
        (bytes - s->window_bytes) * 1000 >= BULK_BYTES_PER_S * (uint64_t)(now - s->window_start))
        s->last_bulk = now;
    s->window_start = now;
    s->window_bytes = bytes;
    batch = now - s->last_bulk >= QUIET_MS;
    if (batch != s->batch) {
        int r = set_policy(batch);

        if (r < 0) {
            dlog(LOG_WARNING, "--sched auto: cannot switch to %s: %s",
                 batch ? "SCHED_BATCH" : "SCHED_OTHER", strerror(-r));
            s->last_bulk = now; /* try again in QUIET_MS at the earliest */
            return 0;
        }
        s->batch = batch;
        dlog(LOG_DEBUG, "--sched auto: %s", batch ? "SCHED_BATCH (calls)" : "SCHED_OTHER (bulk)");
    }
    return 0;
}

int sched_start(Dispatcher *d, SchedMode mode, SchedAuto **sp)
{
    SchedAuto *s;
    int r;

    *sp = NULL;
    if (mode == SCHED_MODE_OTHER)
        return 0;
    r = set_policy(true);
    if (mode == SCHED_MODE_BATCH)
        return r;
    if (r < 0) {
        /* the default: a daemon that may not change its policy runs as it is */
        dlog(LOG_WARNING, "--sched auto: cannot run as SCHED_BATCH (%s): staying as it is",
             strerror(-r));
        return 0;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->d = d;
    s->batch = true;
    s->window_start = rpc_loop_now_ms();
    s->last_bulk = s->window_start - QUIET_MS;
    r = rpc_loop_add_prepare(d->loop, on_prepare, s, &s->src);
    if (r < 0) {
        free(s);
        return r;
    }
    *sp = s;
    return 0;
}

SchedAuto *sched_free(SchedAuto *s)
{
    if (!s)
        return NULL;
    s->src = rpc_loop_source_free(s->src);
    free(s);
    return NULL;
}
