/* SPDX-License-Identifier: MIT */
/*
 * core.c - the public vchan API over the ring logic and a transport: non-blocking stream and
 * packet I/O that sends an event only when the peer asked for one, event consumption,
 * normalised state, and the blocking helpers. Those wait in two phases: a bounded spin that
 * polls the indices without arming any notification (so a busy peer is not made to send
 * events), then, if that fails, arm the notify bit, re-check and sleep in poll(2). The spin
 * budget adapts to the observed wait times.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "vchan-internal.h"

#define SPIN_FLOOR_NS 500u        /* the adaptive budget never drops below this */
#define SPIN_NS_LIMIT 1000000000u /* options sanity bound: one second */
#define SPIN_MISS_RUN 4           /* useless spins in a row before the budget shrinks */
#define SPIN_PROBE_MIN 32u        /* a full-budget probe spin at least this many waits apart */
#define BATCH_NS 50000u           /* a blocking writer lets the reader drain this long at most */
#define SPIN_PROBE_MAX 1024u      /* ... and at most this many, after lost probes */

static VchanLogFn log_fn;
static void *log_userdata;

void vchan_set_log(VchanLogFn fn, void *userdata)
{
    log_fn = fn;
    log_userdata = userdata;
}

void vchan_log(int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* a long line is cut, never overflowed */
    va_end(ap);
    log_fn(level, msg, log_userdata);
}

void vchan_options_init(VchanOptions *o)
{
    *o = (VchanOptions){.spin_ns = VCHAN_SPIN_NS_DEFAULT, .spin_adaptive = true};
}

Vchan *vchan_alloc(const VchanBackend *backend, int domid, const char *path)
{
    Vchan *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->path = strdup(path ? path : "");
    if (!c->path) {
        free(c);
        return NULL;
    }
    c->backend = backend;
    c->fd = -1;
    c->domid = domid;
    vchan_options_init(&c->opts);
    c->spin_budget_ns = c->opts.spin_ns;
    c->probe_gap = SPIN_PROBE_MIN;
    return c;
}

Vchan *vchan_free(Vchan *c)
{
    if (!c)
        return NULL;
    if (c->backend)
        c->backend->destroy(c);
    free(c->path);
    free(c);
    return NULL;
}

void vchan_freep(Vchan **cp)
{
    *cp = vchan_free(*cp);
}

int vchan_set_options(Vchan *c, const VchanOptions *o)
{
    if (o->spin_ns > SPIN_NS_LIMIT)
        return -EINVAL;
    c->opts = *o;
    c->spin_budget_ns = o->spin_ns;
    c->probe_gap = SPIN_PROBE_MIN;
    return 0;
}

void vchan_get_stats(const Vchan *c, VchanStats *statsp)
{
    *statsp = c->stats;
}

int vchan_kick(Vchan *c)
{
    int rc = c->backend->notify(c);

    if (rc < 0)
        vchan_log(LOG_WARNING, "vchan dom%d %s: cannot send event: %s", c->domid, c->path,
                  strerror(-rc));
    else
        c->stats.events_sent++;
    return rc;
}

/* Log a latched violation once, with the peer and the reason. */
static ssize_t check_error(Vchan *c, ssize_t rc)
{
    if (rc == -EPROTO && c->ring.error && !c->violation_logged) {
        c->violation_logged = true;
        vchan_log(LOG_WARNING, "vchan dom%d %s: protocol violation by peer: %s; channel broken",
                  c->domid, c->path, c->ring.violation ? c->ring.violation : "?");
    }
    return rc;
}

/* The byte count of @iov; -EINVAL for a bad count or a total that overflows size_t. */
static inline int iov_checked_total(const struct iovec *iov, int iovcnt, size_t *totalp)
{
    size_t total = 0;

    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    *totalp = total;
    return 0;
}

static ssize_t do_readv(Vchan *c, const struct iovec *iov, int iovcnt, bool packet)
{
    size_t total = 0;
    bool kick;
    ssize_t n;

    if (iov_checked_total(iov, iovcnt, &total) < 0)
        return -EINVAL;
    if (total == 0)
        return -EINVAL; /* 0 is reserved for EOF */
    if (packet && total > c->ring.rsize)
        return -EMSGSIZE;

    n = vchan_ring_readv(&c->ring, iov, iovcnt, packet ? total : 1, &kick);
    if (kick) {
        vchan_kick(c);
        c->peer_asleep = true;
    }
    return check_error(c, n);
}

static ssize_t do_writev(Vchan *c, const struct iovec *iov, int iovcnt, bool packet)
{
    size_t total = 0;
    bool kick;
    ssize_t n;

    if (iov_checked_total(iov, iovcnt, &total) < 0)
        return -EINVAL;
    if (c->ring.error)
        return c->ring.error;
    if (total == 0)
        return 0;
    if (packet && total > c->ring.wsize)
        return -EMSGSIZE;

    n = vchan_ring_writev(&c->ring, iov, iovcnt, packet ? total : 1, &kick);
    if (kick) {
        vchan_kick(c);
        c->peer_asleep = true;
    }
    return check_error(c, n);
}

ssize_t vchan_read(Vchan *c, void *buf, size_t size)
{
    struct iovec iov = {.iov_base = buf, .iov_len = size};

    return do_readv(c, &iov, 1, false);
}

ssize_t vchan_readv(Vchan *c, const struct iovec *iov, int iovcnt)
{
    return do_readv(c, iov, iovcnt, false);
}

ssize_t vchan_recv(Vchan *c, void *buf, size_t size)
{
    struct iovec iov = {.iov_base = buf, .iov_len = size};

    return do_readv(c, &iov, 1, true);
}

ssize_t vchan_write(Vchan *c, const void *buf, size_t size)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = size};

    return do_writev(c, &iov, 1, false);
}

ssize_t vchan_writev(Vchan *c, const struct iovec *iov, int iovcnt)
{
    return do_writev(c, iov, iovcnt, false);
}

ssize_t vchan_send(Vchan *c, const void *buf, size_t size)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = size};

    return do_writev(c, &iov, 1, true);
}

ssize_t vchan_data_ready(Vchan *c)
{
    return check_error(c, vchan_ring_data_ready(&c->ring));
}

ssize_t vchan_buffer_space(Vchan *c)
{
    return check_error(c, vchan_ring_buffer_space(&c->ring));
}

ssize_t vchan_buffer_space_notify(Vchan *c, size_t min)
{
    return check_error(c, vchan_ring_buffer_space_notify(&c->ring, min));
}

ssize_t vchan_data_ready_notify(Vchan *c)
{
    return check_error(c, vchan_ring_data_ready_notify(&c->ring));
}

size_t vchan_read_ring_size(const Vchan *c)
{
    return c->ring.rsize;
}

size_t vchan_write_ring_size(const Vchan *c)
{
    return c->ring.wsize;
}

int vchan_fd(const Vchan *c)
{
    return c->fd;
}

int vchan_dispatch(Vchan *c)
{
    int n = c->backend->consume(c);

    if (n > 0)
        c->stats.events_consumed += (uint64_t)n;
    return n;
}

int vchan_dispatch_ready(Vchan *c)
{
    int n = c->backend->consume_ready(c);

    if (n > 0)
        c->stats.events_consumed += (uint64_t)n;
    else if (n == 0)
        c->stats.ready_empty++;
    return n;
}

VchanState vchan_is_open(Vchan *c)
{
    switch (vchan_ring_peer_state(&c->ring)) {
    case VCHAN_PEER_OPEN:
        return VCHAN_STATE_OPEN;
    case VCHAN_PEER_WAITING:
        return VCHAN_STATE_WAITING;
    case VCHAN_PEER_CLOSED:
        return VCHAN_STATE_CLOSED;
    case VCHAN_PEER_BROKEN:
        break;
    }
    check_error(c, -EPROTO);
    return VCHAN_STATE_BROKEN;
}

const char *vchan_state_name(VchanState state)
{
    static const char *const names[] = {
        [VCHAN_STATE_CLOSED] = "closed",
        [VCHAN_STATE_OPEN] = "open",
        [VCHAN_STATE_WAITING] = "waiting",
        [VCHAN_STATE_BROKEN] = "broken",
    };

    if ((unsigned)state < sizeof(names) / sizeof(names[0]))
        return names[state];
    return "invalid";
}

int vchan_check_peer(Vchan *c)
{
    int rc = c->backend->check_peer(c);

    if (rc == 0 && !c->ring.peer_gone) {
        c->ring.peer_gone = true;
        vchan_log(LOG_INFO, "vchan dom%d %s: peer domain is gone", c->domid, c->path);
    }
    return rc;
}

int vchan_peer_domid(const Vchan *c)
{
    return c->domid;
}

const char *vchan_path(const Vchan *c)
{
    return c->path;
}

/* ---- blocking helpers ---- */

typedef enum WaitKind {
    WAIT_READ,  /* >= min bytes ready, or peer closed */
    WAIT_WRITE, /* >= min bytes free */
    WAIT_FLUSH, /* write ring empty */
} WaitKind;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t deadline_of(int timeout_ms)
{
    if (timeout_ms < 0)
        return UINT64_MAX;
    return now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Remaining time in ms for poll(2), rounded up; -1 for no deadline. */
static int remaining_ms(uint64_t deadline)
{
    uint64_t now, left;

    if (deadline == UINT64_MAX)
        return -1;
    now = now_ns();
    if (now >= deadline)
        return 0;
    left = (deadline - now + 999999u) / 1000000u;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* 1: condition met, 0: not yet, < 0: error. Never arms a notification. */
static int wait_check(Vchan *c, WaitKind kind, size_t min)
{
    ssize_t n;

    switch (kind) {
    case WAIT_READ:
        n = vchan_ring_data_ready(&c->ring);
        if (n < 0)
            return (int)check_error(c, n);
        if ((size_t)n >= min)
            return 1;
        switch (vchan_ring_peer_state(&c->ring)) {
        case VCHAN_PEER_BROKEN:
            return (int)check_error(c, -EPROTO);
        case VCHAN_PEER_CLOSED:
            return 1; /* the read drains what is left, then reports EOF */
        default:
            return 0;
        }
    case WAIT_WRITE:
    case WAIT_FLUSH:
        n = vchan_ring_buffer_space(&c->ring);
        if (n < 0)
            return (int)check_error(c, n);
        if (kind == WAIT_FLUSH ? (size_t)n == c->ring.wsize : (size_t)n >= min)
            return 1;
        switch (vchan_ring_peer_state(&c->ring)) {
        case VCHAN_PEER_BROKEN:
            return (int)check_error(c, -EPROTO);
        case VCHAN_PEER_CLOSED:
            return -EPIPE;
        default:
            return 0;
        }
    }
    return -EINVAL;
}

/*
 * Adapt the spin budget after a wait that spun @budget_ns and took @waited_ns. Only a genuine
 * win counts for spinning: the condition came true within the budget (a "win" after the
 * spinner was descheduled for longer is a loss). A win makes sure the budget covers twice
 * that wait. SPIN_MISS_RUN losses in a row halve it, down to a floor. (Dropping to no spin
 * at all was tried: it saves the floor per sleep when the peer shares our CPU, but a reader
 * then sleeps between every two small writes of a peer on another CPU, and each of those
 * writes pays an event: 4 KiB writes ran 2-5x slower.)
 * Probes (full spin_ns, see spin_budget()) let two peers that both fell back to sleeping
 * find each other hot again once CPUs are free: a probe outlasting the peer's wake-up wins
 * and re-grows the budget. A lost probe doubles the gap to the next one (up to
 * SPIN_PROBE_MAX waits), so that on a machine where the peer shares our CPU, where every
 * spin is lost, probing costs next to nothing; a won probe resets the gap.
 * Growing on a short *sleep* would be wrong: when the peer shares our CPU it only runs
 * once we sleep, so every sleep looks short.
 */
static void spin_adapt(Vchan *c, uint64_t waited_ns, uint64_t budget_ns, bool won)
{
    uint64_t max = c->opts.spin_ns;
    uint64_t floor = max < SPIN_FLOOR_NS ? max : SPIN_FLOOR_NS;
    uint64_t b = c->spin_budget_ns;

    if (!c->opts.spin_adaptive || max == 0 || budget_ns == 0)
        return;
    won = won && waited_ns <= budget_ns + floor;
    if (c->probing) {
        c->probing = false;
        c->probe_gap = won ? SPIN_PROBE_MIN
                           : (c->probe_gap * 2 > SPIN_PROBE_MAX ? SPIN_PROBE_MAX
                                                                : c->probe_gap * 2);
    }
    if (won) {
        if (b < 2 * waited_ns + floor)
            b = 2 * waited_ns + floor;
        c->spin_misses = 0;
    } else if (++c->spin_misses >= SPIN_MISS_RUN) {
        b /= 2;
        c->spin_misses = 0;
    }
    if (b > max)
        b = max;
    if (b < floor)
        b = floor;
    c->spin_budget_ns = b;
}

/*
 * The spin budget of one wait. If our last read or write had to wake the peer (it had asked
 * for an event, so it was asleep or about to sleep), the peer is not running: spinning would
 * wait at least for its wake-up, and if it is woken on our CPU (likely when few CPUs are
 * free, and the best place for it: the ring data is in our cache) it cannot run before we
 * sleep, so the spin is pure loss. Such a wait sleeps at once, unless it is a probe. A probe
 * that wins means the peer answered without being woken, so its next publish finds no
 * request bit and it spins too.
 */
static uint64_t spin_budget(Vchan *c)
{
    bool asleep = c->peer_asleep;

    c->peer_asleep = false;
    if (c->opts.spin_ns == 0)
        return 0;
    if (!c->opts.spin_adaptive)
        return c->opts.spin_ns;
    if (++c->waits_since_probe >= c->probe_gap) {
        c->waits_since_probe = 0;
        c->probing = true;
        return c->opts.spin_ns;
    }
    return asleep ? 0 : c->spin_budget_ns;
}

static int wait_for(Vchan *c, WaitKind kind, size_t min, uint64_t deadline)
{
    uint64_t start, budget;
    uint8_t bit = kind == WAIT_READ ? VCHAN_NOTIFY_WRITE_BIT : VCHAN_NOTIFY_READ_BIT;
    int rc;

    if (kind == WAIT_READ ? min > c->ring.rsize : min > c->ring.wsize)
        return -EMSGSIZE;
    rc = wait_check(c, kind, min);
    if (rc != 0)
        return rc < 0 ? rc : 0;

    start = now_ns();
    if (start >= deadline)
        return -ETIMEDOUT;

    /* phase 1: spin on the indices; no notify bit, so the peer sends no events. Not while
     * the server still waits for its client: that can take any time. */
    budget = spin_budget(c);
    if (vchan_ring_peer_state(&c->ring) == VCHAN_PEER_WAITING) {
        budget = 0;
        c->probing = false;
    }
    if (budget > 0) {
        uint64_t spin_end = start + budget < deadline ? start + budget : deadline;

        for (unsigned i = 1;; i++) {
            cpu_relax();
            rc = wait_check(c, kind, min);
            if (rc != 0) {
                uint64_t waited = now_ns() - start;

                c->stats.spin_ns += waited;
                if (rc > 0) {
                    c->stats.spin_wins++;
                    spin_adapt(c, waited, budget, true);
                }
                return rc < 0 ? rc : 0;
            }
            if ((i & 3) == 0) {
                uint64_t now = now_ns();

                if (now >= spin_end) {
                    c->stats.spin_ns += now - start;
                    break;
                }
            }
        }
    }

    /* phase 2: arm, re-check, sleep; events may be merged or spurious, so loop. After a
     * wake-up look before arming again: a bit set for nothing costs the peer an event. */
    c->stats.sleeps++;
    if (budget > 0)
        c->stats.spin_losses++;
    for (bool woken = false;; woken = true) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int timeout;

        rc = woken ? wait_check(c, kind, min) : 0;
        if (rc == 0) {
            vchan_ring_request_notify(&c->ring, bit);
            rc = wait_check(c, kind, min);
            if (rc > 0)
                vchan_ring_cancel_notify(&c->ring, bit);
        }
        if (rc != 0) {
            if (rc > 0)
                spin_adapt(c, now_ns() - start, budget, false);
            return rc < 0 ? rc : 0;
        }
        timeout = remaining_ms(deadline);
        if (timeout == 0) {
            spin_adapt(c, UINT64_MAX, budget, false);
            return -ETIMEDOUT;
        }
        if (timeout < 0 && c->backend->wait_event) {
            /* no deadline: sleep in the event read itself, one system call per wake-up */
            rc = c->backend->wait_event(c);
            if (rc > 0)
                c->stats.events_consumed += (uint64_t)rc;
            if (rc >= 0)
                continue;
            if (rc != -EOPNOTSUPP)
                return rc;
        }
        rc = poll(&pfd, 1, timeout);
        if (rc < 0)
            return -errno;
        if (rc > 0) {
            if (pfd.revents & (POLLERR | POLLNVAL))
                return -EIO;
            if (pfd.revents & POLLIN) {
                rc = c->backend->consume_ready(c);
                if (rc > 0)
                    c->stats.events_consumed += (uint64_t)rc;
            } else {
                rc = vchan_dispatch(c);
            }
            if (rc < 0)
                return rc;
        }
    }
}

int vchan_wait_readable(Vchan *c, size_t min, int timeout_ms)
{
    return wait_for(c, WAIT_READ, min ? min : 1, deadline_of(timeout_ms));
}

int vchan_wait_writable(Vchan *c, size_t min, int timeout_ms)
{
    return wait_for(c, WAIT_WRITE, min ? min : 1, deadline_of(timeout_ms));
}

int vchan_flush(Vchan *c, int timeout_ms)
{
    return wait_for(c, WAIT_FLUSH, 0, deadline_of(timeout_ms));
}

int vchan_read_full(Vchan *c, void *buf, size_t size, size_t *donep, int timeout_ms)
{
    uint64_t deadline = deadline_of(timeout_ms);
    uint8_t *p = buf;
    size_t done = 0;
    int rc = 0;

    if (size == 0)
        rc = -EINVAL;
    while (rc == 0 && done < size) {
        ssize_t n;

        /* wait first: it spins without arming, and returns at once if data is there */
        rc = wait_for(c, WAIT_READ, 1, deadline);
        if (rc < 0)
            break;
        n = vchan_read(c, p + done, size - done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0)
            rc = VCHAN_E_EOF;
        else if (n != -EAGAIN)
            rc = (int)n;
    }
    if (donep)
        *donep = done;
    return rc;
}

/*
 * A blocking writer that had to sleep on a full ring is woken as soon as the reader frees
 * anything (the protocol has only a notify bit, no threshold). Writing those few bytes at
 * once makes writer and reader alternate per read call: two context switches per small
 * piece when they share a CPU, the reader's cache lines stolen back when they do not. So
 * first let the reader drain, briefly: yield the CPU (to the reader, if it waits for ours)
 * until half the ring is free. Never longer than BATCH_NS, and not at all while the
 * reader waits for data (its request bit is set: it may need more than is in the ring, as
 * a packet read does) or once the channel is no longer open; the data written is the same,
 * only when differs. Only here, in the blocking stream helper: vchan_write() and vchan_send()
 * are unchanged.
 */
static void batch_wait(Vchan *c, uint64_t deadline)
{
    uint64_t end = now_ns() + BATCH_NS;

    if (end > deadline)
        end = deadline;
    for (;;) {
        ssize_t space = vchan_ring_buffer_space(&c->ring);

        if (space < 0 || (size_t)space >= c->ring.wsize / 2 ||
            (atomic_load_explicit(c->ring.own_notify, memory_order_relaxed) &
             VCHAN_NOTIFY_WRITE_BIT) ||
            vchan_ring_peer_state(&c->ring) != VCHAN_PEER_OPEN || now_ns() >= end)
            return;
        sched_yield();
    }
}

int vchan_write_full(Vchan *c, const void *buf, size_t size, size_t *donep, int timeout_ms)
{
    uint64_t deadline = deadline_of(timeout_ms);
    const uint8_t *p = buf;
    size_t done = 0;
    int rc = 0;

    while (rc == 0 && done < size) {
        uint64_t slept = c->stats.sleeps;
        ssize_t n;

        rc = wait_for(c, WAIT_WRITE, 1, deadline);
        if (rc < 0)
            break;
        if (c->stats.sleeps != slept)
            batch_wait(c, deadline);
        n = vchan_write(c, p + done, size - done);
        if (n > 0)
            done += (size_t)n;
        else if (n != -EAGAIN)
            rc = (int)n;
    }
    if (donep)
        *donep = done;
    return rc;
}
