/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the small epoll dispatcher shared by vrpc's daemons: fd sources, one-shot
 * monotonic timers, signals through one signalfd, and deferred callbacks. Sources freed
 * while the loop is dispatching are only marked dead and reclaimed at the end of the
 * iteration, so a callback may free any source (its own included) without leaving a
 * dangling pointer in the epoll batch being processed.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "loop-internal.h"
#include "common/list.h"

#define MAX_EVENTS 64
#define NSIG_MAX 65

typedef enum SourceKind {
    SRC_FD = 0,
    SRC_TIMER,
    SRC_SIGNAL,
    SRC_DEFER,
    SRC_PREPARE,
    SRC_SIGFD, /* internal: the signalfd */
} SourceKind;

struct RpcLoopSource {
    RpcLoop *loop;
    SourceKind kind;
    bool dead;
    bool self_free;             /* defer without a handle */
    RpcLoopSource *next, *prev; /* every live source */
    RpcLoopSource *gc_next;
    void *userdata;
    union {
        RpcLoopFdFn fd_fn;
        RpcLoopTimerFn timer_fn;
        RpcLoopSignalFn signal_fn;
        RpcLoopDeferFn defer_fn;
        RpcLoopPrepareFn prepare_fn;
    };
    int fd;
    uint32_t events;
    int64_t deadline; /* timers: -1 disarmed */
    int signo;
    bool pending; /* defers */
};

struct RpcLoop {
    int epfd;
    RpcLoopSource *sources;
    RpcLoopSource *gc;
    RpcLoopSource *sigfd_src;
    RpcLoopSource *by_signal[NSIG_MAX];
    sigset_t sigmask;
    int ndefer_pending;
    uint64_t polls; /* epoll_wait() calls that returned: rpc_loop_poll_count() */
    bool quit;
    int quit_code;
};

/* The mask the process had before any loop blocked a signal, for children. */
static sigset_t saved_mask;
static sigset_t blocked_by_loops;
static bool saved_mask_valid;

int64_t rpc_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rpc_loop_new(RpcLoop **loopp)
{
    RpcLoop *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int r = -errno;
        free(l);
        return r;
    }
    sigemptyset(&l->sigmask);
    *loopp = l;
    return 0;
}

static RpcLoopSource *source_new(RpcLoop *l, SourceKind kind, void *userdata)
{
    RpcLoopSource *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = l;
    s->kind = kind;
    s->userdata = userdata;
    s->fd = -1;
    s->deadline = -1;
    s->next = l->sources;
    if (l->sources)
        l->sources->prev = s;
    l->sources = s;
    return s;
}

static void source_unlink(RpcLoopSource *s)
{
    RpcLoop *l = s->loop;
    VRPC_LIST_UNLINK(&l->sources, s);
    s->next = s->prev = NULL;
}

static void gc_run(RpcLoop *l)
{
    while (l->gc) {
        RpcLoopSource *s = l->gc;
        l->gc = s->gc_next;
        free(s);
    }
}

static void signals_update(RpcLoop *l)
{
    if (l->sigfd_src)
        signalfd(l->sigfd_src->fd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
}

RpcLoopSource *rpc_loop_source_free(RpcLoopSource *s)
{
    if (!s || s->dead)
        return NULL;
    RpcLoop *l = s->loop;
    s->dead = true;
    switch (s->kind) {
    case SRC_FD:
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        break;
    case SRC_SIGNAL:
        l->by_signal[s->signo] = NULL;
        sigdelset(&l->sigmask, s->signo);
        signals_update(l);
        {
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, s->signo);
            pthread_sigmask(SIG_UNBLOCK, &one, NULL);
            sigdelset(&blocked_by_loops, s->signo);
        }
        break;
    case SRC_DEFER:
        if (s->pending)
            l->ndefer_pending--;
        s->pending = false;
        break;
    case SRC_SIGFD:
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        break;
    default:
        break;
    }
    source_unlink(s);
    s->gc_next = l->gc;
    l->gc = s;
    return NULL;
}

void rpc_loop_source_freep(RpcLoopSource **srcp)
{
    *srcp = rpc_loop_source_free(*srcp);
}

RpcLoop *rpc_loop_free(RpcLoop *l)
{
    if (!l)
        return NULL;
    while (l->sources) {
        /* The signalfd goes last: signal sources update it. */
        RpcLoopSource *s = l->sources;
        if (s == l->sigfd_src && s->next)
            s = s->next;
        if (s == l->sigfd_src)
            l->sigfd_src = NULL;
        rpc_loop_source_free(s);
    }
    gc_run(l);
    close(l->epfd);
    free(l);
    return NULL;
}

void rpc_loop_freep(RpcLoop **loopp)
{
    *loopp = rpc_loop_free(*loopp);
}

RpcLoop *rpc_loop_source_loop(const RpcLoopSource *s)
{
    return s->loop;
}

int rpc_loop_add_fd(RpcLoop *l, int fd, uint32_t events, RpcLoopFdFn fn, void *userdata,
                    RpcLoopSource **srcp)
{
    if (fd < 0 || !fn)
        return -EINVAL;
    RpcLoopSource *s = source_new(l, SRC_FD, userdata);
    if (!s)
        return -ENOMEM;
    s->fd_fn = fn;
    s->fd = fd;
    s->events = events;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int r = -errno;
        source_unlink(s);
        free(s);
        return r;
    }
    *srcp = s;
    return 0;
}

int rpc_loop_fd_set_events(RpcLoopSource *s, uint32_t events)
{
    if (!s || s->kind != SRC_FD || s->dead)
        return -EINVAL;
    if (s->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        return -errno;
    s->events = events;
    return 0;
}

int rpc_loop_add_timer(RpcLoop *l, int64_t delay_ms, RpcLoopTimerFn fn, void *userdata,
                       RpcLoopSource **srcp)
{
    if (!fn)
        return -EINVAL;
    RpcLoopSource *s = source_new(l, SRC_TIMER, userdata);
    if (!s)
        return -ENOMEM;
    s->timer_fn = fn;
    rpc_loop_timer_set(s, delay_ms);
    *srcp = s;
    return 0;
}

int rpc_loop_timer_set(RpcLoopSource *s, int64_t delay_ms)
{
    if (!s || s->kind != SRC_TIMER || s->dead)
        return -EINVAL;
    s->deadline = delay_ms < 0 ? -1 : rpc_loop_now_ms() + delay_ms;
    return 0;
}

static void sigfd_cb(RpcLoop *l)
{
    struct signalfd_siginfo si;

    for (;;) {
        ssize_t n = read(l->sigfd_src->fd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si))
            return;
        if (si.ssi_signo < NSIG_MAX && l->by_signal[si.ssi_signo]) {
            RpcLoopSource *s = l->by_signal[si.ssi_signo];
            s->signal_fn(s, &si, s->userdata);
        }
        if (!l->sigfd_src)
            return;
    }
}

int rpc_loop_add_signal(RpcLoop *l, int signo, RpcLoopSignalFn fn, void *userdata,
                        RpcLoopSource **srcp)
{
    sigset_t one, old;

    if (signo <= 0 || signo >= NSIG_MAX || !fn || signo == SIGKILL || signo == SIGSTOP)
        return -EINVAL;
    if (l->by_signal[signo])
        return -EEXIST;
    if (!l->sigfd_src) {
        int fd = signalfd(-1, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        RpcLoopSource *f = source_new(l, SRC_SIGFD, NULL);
        if (!f) {
            close(fd);
            return -ENOMEM;
        }
        f->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = f};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            int r = -errno;
            source_unlink(f);
            free(f);
            close(fd);
            return r;
        }
        l->sigfd_src = f;
    }
    RpcLoopSource *s = source_new(l, SRC_SIGNAL, userdata);
    if (!s)
        return -ENOMEM;
    s->signal_fn = fn;
    s->signo = signo;
    sigemptyset(&one);
    sigaddset(&one, signo);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    if (!saved_mask_valid) {
        saved_mask = old;
        saved_mask_valid = true;
    }
    sigaddset(&blocked_by_loops, signo);
    sigaddset(&l->sigmask, signo);
    l->by_signal[signo] = s;
    signals_update(l);
    if (srcp)
        *srcp = s;
    return 0;
}

int rpc_loop_add_defer(RpcLoop *l, RpcLoopDeferFn fn, void *userdata, RpcLoopSource **srcp)
{
    if (!fn)
        return -EINVAL;
    RpcLoopSource *s = source_new(l, SRC_DEFER, userdata);
    if (!s)
        return -ENOMEM;
    s->defer_fn = fn;
    s->pending = true;
    s->self_free = !srcp;
    l->ndefer_pending++;
    if (srcp)
        *srcp = s;
    return 0;
}

int rpc_loop_add_prepare(RpcLoop *l, RpcLoopPrepareFn fn, void *userdata, RpcLoopSource **srcp)
{
    if (!fn || !srcp)
        return -EINVAL;
    RpcLoopSource *s = source_new(l, SRC_PREPARE, userdata);
    if (!s)
        return -ENOMEM;
    s->prepare_fn = fn;
    *srcp = s;
    return 0;
}

int rpc_loop_defer_again(RpcLoopSource *s)
{
    if (!s || s->kind != SRC_DEFER || s->dead)
        return -EINVAL;
    if (!s->pending) {
        s->pending = true;
        s->loop->ndefer_pending++;
    }
    return 0;
}

void rpc_loop_quit(RpcLoop *l, int code)
{
    l->quit = true;
    l->quit_code = code;
}

void rpc_loop_child_reset_signals(void)
{
    for (int sig = 1; sig < NSIG_MAX; sig++)
        if (sigismember(&blocked_by_loops, sig) == 1)
            signal(sig, SIG_DFL);
    if (saved_mask_valid)
        pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
}

static int run_defers(RpcLoop *l)
{
    int ran = 0;

    if (!l->ndefer_pending)
        return 0;
    /* Only those pending now: a defer that re-arms itself runs next iteration. */
    for (RpcLoopSource *s = l->sources; s; s = s->next)
        if (s->kind == SRC_DEFER && s->pending)
            s->gc_next = NULL, s->events = 1;
    for (RpcLoopSource *s = l->sources, *next; s; s = next) {
        next = s->next;
        if (s->kind != SRC_DEFER || !s->pending || s->events != 1)
            continue;
        s->events = 0;
        s->pending = false;
        l->ndefer_pending--;
        s->defer_fn(s, s->userdata);
        ran++;
        if (s->self_free && !s->dead && !s->pending)
            rpc_loop_source_free(s);
        /* Sources freed in the callback are unlinked: restart the walk safely. */
        next = l->sources;
    }
    return ran;
}

/* Each prepare source once (marked first: a callback may add or free sources). Returns the
 * number of callbacks that did work. */
static int run_prepares(RpcLoop *l, bool will_sleep)
{
    int busy = 0;

    for (RpcLoopSource *s = l->sources; s; s = s->next)
        if (s->kind == SRC_PREPARE)
            s->events = 1;
    for (RpcLoopSource *s = l->sources, *next; s; s = next) {
        next = s->next;
        if (s->kind != SRC_PREPARE || s->dead || s->events != 1)
            continue;
        s->events = 0;
        if (s->prepare_fn(s, will_sleep, s->userdata) > 0)
            busy++;
        next = l->sources; /* the callback may have changed the list */
    }
    return busy;
}

static int64_t next_deadline(RpcLoop *l)
{
    int64_t d = -1;
    for (RpcLoopSource *s = l->sources; s; s = s->next)
        if (s->kind == SRC_TIMER && s->deadline >= 0 && (d < 0 || s->deadline < d))
            d = s->deadline;
    return d;
}

static int run_timers(RpcLoop *l)
{
    int ran = 0;
    int64_t now = rpc_loop_now_ms();

    for (RpcLoopSource *s = l->sources, *next; s; s = next) {
        next = s->next;
        if (s->kind != SRC_TIMER || s->deadline < 0 || s->deadline > now)
            continue;
        s->deadline = -1;
        s->timer_fn(s, s->userdata);
        ran++;
        next = l->sources; /* the callback may have changed the list */
    }
    return ran;
}

/* One pass. @settle: after deferred callbacks ran, look once more without sleeping (what
 * rpc_loop_run_once() promises its caller, who may test a condition a callback set); without
 * it (rpc_loop_run(), which tests only quit) the pass goes on to sleep right away, its prepare
 * callbacks saying whether there is work: one epoll_wait() and one pass fewer per wake-up. */
static int run_pass(RpcLoop *l, int timeout_ms, bool settle)
{
    struct epoll_event evs[MAX_EVENTS];
    int ran = run_defers(l);
    int n;

    if (l->ndefer_pending || (ran && (settle || l->quit)))
        timeout_ms = 0;
    int busy = run_prepares(l, timeout_ms != 0);
    ran += busy;
    if (busy || l->ndefer_pending)
        timeout_ms = 0;
    int64_t d = next_deadline(l);
    if (d >= 0) {
        int64_t left = d - rpc_loop_now_ms();
        if (left < 0)
            left = 0;
        if (timeout_ms < 0 || left < timeout_ms)
            timeout_ms = left > 1000000 ? 1000000 : (int)left;
    }
    do
        n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    l->polls++;
    for (int i = 0; i < n; i++) {
        RpcLoopSource *s = evs[i].data.ptr;
        if (s->dead)
            continue;
        if (s->kind == SRC_SIGFD)
            sigfd_cb(l);
        else
            s->fd_fn(s, s->fd, evs[i].events, s->userdata);
        ran++;
    }
    ran += run_timers(l);
    gc_run(l);
    return ran;
}

uint64_t rpc_loop_poll_count(const RpcLoop *l)
{
    return l->polls;
}

int rpc_loop_run_once(RpcLoop *l, int timeout_ms)
{
    return run_pass(l, timeout_ms, true);
}

int rpc_loop_run(RpcLoop *l)
{
    l->quit = false;
    while (!l->quit) {
        int r = run_pass(l, -1, false);
        if (r < 0)
            return r;
    }
    return l->quit_code;
}
