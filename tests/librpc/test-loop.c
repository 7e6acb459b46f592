/* SPDX-License-Identifier: MIT */
/*
 * test-loop.c - librpc's epoll event loop: fd sources and event changes, one-shot timers and
 * re-arming, signals through signalfd, deferred callbacks, freeing sources from inside
 * callbacks (their own and others'), quitting, and a connection pair driven by the loop
 * through rpc_conn_attach().
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loop.h"
#include "rpc.h"
#include "vchan/vchan.h"
#include "leak.h"

typedef struct Ctx {
    RpcLoop *loop;
    int hits;
    int other_hits;
    RpcLoopSource *src, *other;
    uint32_t events;
    int signo;
    int prepares;
    bool will_sleep[8]; /* what the first prepare calls were told */
} Ctx;

static void fd_cb(RpcLoopSource *src, int fd, uint32_t events, void *ud)
{
    Ctx *c = ud;
    char b[16];
    c->hits++;
    c->events = events;
    if (events & EPOLLIN)
        ck_assert_int_gt(read(fd, b, sizeof(b)), 0);
}

START_TEST(fd_source)
{
    Ctx c = {0};
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_fd(c.loop, sv[0], EPOLLIN, fd_cb, &c, &c.src), 0);
    ck_assert_int_eq(rpc_loop_add_fd(c.loop, sv[0], EPOLLIN, fd_cb, &c, &c.other), -EEXIST);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 0), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 1000), 1);
    ck_assert_int_eq(c.hits, 1);
    ck_assert_uint_eq(c.events & EPOLLIN, EPOLLIN);
    ck_assert_int_eq(rpc_loop_fd_set_events(c.src, EPOLLOUT), 0);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 1000), 1);
    ck_assert_uint_eq(c.events & EPOLLOUT, EPOLLOUT);
    c.src = rpc_loop_source_free(c.src);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 0), 0);
    rpc_loop_free(c.loop);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static void timer_cb(RpcLoopSource *src, void *ud)
{
    Ctx *c = ud;
    c->hits++;
    if (c->hits < 3)
        ck_assert_int_eq(rpc_loop_timer_set(src, 1), 0);
    else
        rpc_loop_quit(c->loop, 7);
}

START_TEST(timers)
{
    Ctx c = {0};
    RpcLoopSource *t, *never;
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_timer(c.loop, 1, timer_cb, &c, &t), 0);
    ck_assert_int_eq(rpc_loop_add_timer(c.loop, -1, timer_cb, &c, &never), 0);
    ck_assert_int_eq(rpc_loop_run(c.loop), 7);
    ck_assert_int_eq(c.hits, 3);
    ck_assert_int_eq(rpc_loop_timer_set(never, 0), 0);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 1000), 1);
    ck_assert_int_eq(c.hits, 4);
    ck_assert_int_eq(rpc_loop_fd_set_events(t, 0), -EINVAL);
    ck_assert_int_eq(rpc_loop_defer_again(t), -EINVAL);
    rpc_loop_free(c.loop); /* frees t and never */
}
END_TEST

static void sig_cb(RpcLoopSource *src, const struct signalfd_siginfo *si, void *ud)
{
    Ctx *c = ud;
    c->hits++;
    c->signo = (int)si->ssi_signo;
}

START_TEST(signals)
{
    Ctx c = {0};
    RpcLoopSource *s1, *s2;
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_signal(c.loop, SIGUSR1, sig_cb, &c, &s1), 0);
    ck_assert_int_eq(rpc_loop_add_signal(c.loop, SIGUSR1, sig_cb, &c, &s2), -EEXIST);
    ck_assert_int_eq(rpc_loop_add_signal(c.loop, SIGKILL, sig_cb, &c, &s2), -EINVAL);
    /* without a handle the source lives as long as the loop (LeakSanitizer checks it goes) */
    ck_assert_int_eq(rpc_loop_add_signal(c.loop, SIGHUP, sig_cb, &c, NULL), 0);
    ck_assert_int_eq(rpc_loop_add_signal(c.loop, SIGUSR2, sig_cb, &c, &s2), 0);
    ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
    for (int i = 0; i < 10 && !c.hits; i++)
        rpc_loop_run_once(c.loop, 1000);
    ck_assert_int_eq(c.hits, 1);
    ck_assert_int_eq(c.signo, SIGUSR2);
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    for (int i = 0; i < 10 && c.hits < 2; i++)
        rpc_loop_run_once(c.loop, 1000);
    ck_assert_int_eq(c.signo, SIGUSR1);
    rpc_loop_source_free(s2);
    rpc_loop_free(c.loop);
}
END_TEST

static void defer_cb(RpcLoopSource *src, void *ud)
{
    Ctx *c = ud;
    c->hits++;
}

START_TEST(defers)
{
    Ctx c = {0};
    RpcLoopSource *d;
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_defer(c.loop, defer_cb, &c, &d), 0);
    ck_assert_int_eq(rpc_loop_add_defer(c.loop, defer_cb, &c, NULL), 0); /* self-freeing */
    ck_assert_int_eq(rpc_loop_run_once(c.loop, -1), 2);
    ck_assert_int_eq(c.hits, 2);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 0), 0);
    ck_assert_int_eq(rpc_loop_defer_again(d), 0);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, -1), 1);
    ck_assert_int_eq(c.hits, 3);
    rpc_loop_free(c.loop);
}
END_TEST

/* A callback frees its own source and another whose event is in the same batch. */
static void fd_free_cb(RpcLoopSource *src, int fd, uint32_t events, void *ud)
{
    Ctx *c = ud;
    c->hits++;
    rpc_loop_source_free(c->src);
    rpc_loop_source_free(c->other);
    c->src = c->other = NULL;
}

/* A prepare callback: counts its calls and remembers will_sleep (in events), frees its
 * source once other_hits says so, and reports work on its first call and while signo. */
static int prepare_cb(RpcLoopSource *src, bool will_sleep, void *ud)
{
    Ctx *c = ud;
    c->prepares++;
    c->events = will_sleep;
    if (c->other_hits) {
        c->src = rpc_loop_source_free(c->src);
        return 0;
    }
    return c->prepares == 1 || c->signo;
}

/* Prepare callbacks run before every poll, told whether it may sleep (not when the wait is 0
 * or deferred work ran); one that reports work keeps the loop from sleeping; freeing inside
 * works. */
START_TEST(prepares)
{
    Ctx c = {0};
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_prepare(c.loop, prepare_cb, &c, NULL), -EINVAL);
    ck_assert_int_eq(rpc_loop_add_prepare(c.loop, prepare_cb, &c, &c.src), 0);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 0), 1); /* a poll without sleep: work found */
    ck_assert_int_eq(c.prepares, 1);
    ck_assert_uint_eq(c.events, 0);
    ck_assert_int_eq(rpc_loop_add_defer(c.loop, defer_cb, &c, NULL), 0);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, -1), 1); /* the defer ran: no sleep */
    ck_assert_int_eq(c.hits, 1);
    ck_assert_int_eq(c.prepares, 2);
    ck_assert_uint_eq(c.events, 0);
    /* no work: it sleeps, up to the timeout */
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 10), 0);
    ck_assert_int_eq(c.prepares, 3);
    ck_assert_uint_eq(c.events, 1);
    /* would sleep forever: the prepare says it did work, so the wait is 0 */
    c.signo = 1;
    ck_assert_int_eq(rpc_loop_run_once(c.loop, -1), 1);
    ck_assert_int_eq(c.prepares, 4);
    ck_assert_uint_eq(c.events, 1);
    c.signo = 0;
    c.other_hits = 1;
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 10), 0);
    ck_assert_int_eq(c.prepares, 5);
    ck_assert_ptr_null(c.src);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 10), 0);
    ck_assert_int_eq(c.prepares, 5);
    rpc_loop_free(c.loop);
}
END_TEST

/* Logs what each prepare call is told. */
static int sleep_log_prepare(RpcLoopSource *src, bool will_sleep, void *ud)
{
    Ctx *c = ud;
    if (c->prepares < 8)
        c->will_sleep[c->prepares] = will_sleep;
    c->prepares++;
    return 0;
}

/* Counts; quits the loop when signo says so. */
static void quit_defer_cb(RpcLoopSource *src, void *ud)
{
    Ctx *c = ud;
    c->hits++;
    if (c->signo)
        rpc_loop_quit(c->loop, 5);
}

static void quit_timer_cb(RpcLoopSource *src, void *ud)
{
    Ctx *c = ud;
    c->other_hits++;
    rpc_loop_quit(c->loop, 9);
}

/* rpc_loop_run(): a pass whose deferred callbacks ran goes on to sleep, its prepare callbacks
 * told so, without first polling with a wait of 0 (one epoll_wait() and one pass fewer per
 * wake-up); a deferred callback that quits still ends the run at once. */
START_TEST(run_sleeps_after_defers)
{
    Ctx c = {0};
    RpcLoopSource *t;
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_prepare(c.loop, sleep_log_prepare, &c, &c.src), 0);
    ck_assert_int_eq(rpc_loop_add_defer(c.loop, quit_defer_cb, &c, NULL), 0);
    ck_assert_int_eq(rpc_loop_add_timer(c.loop, 1, quit_timer_cb, &c, &t), 0);
    ck_assert_int_eq(rpc_loop_run(c.loop), 9);
    ck_assert_int_eq(c.hits, 1);
    ck_assert_int_ge(c.prepares, 1);
    ck_assert_msg(c.will_sleep[0], "the pass that ran the defer polled before sleeping");

    /* a defer that quits: the run ends before the (hang guard) timer */
    c.signo = 1;
    ck_assert_int_eq(rpc_loop_add_defer(c.loop, quit_defer_cb, &c, NULL), 0);
    ck_assert_int_eq(rpc_loop_timer_set(t, 600000), 0);
    ck_assert_int_eq(rpc_loop_run(c.loop), 5);
    ck_assert_int_eq(c.hits, 2);
    ck_assert_int_eq(c.other_hits, 1);
    rpc_loop_free(c.loop);
}
END_TEST

START_TEST(free_inside_callback)
{
    Ctx c = {0};
    int a[2], b[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    ck_assert_int_eq(rpc_loop_new(&c.loop), 0);
    ck_assert_int_eq(rpc_loop_add_fd(c.loop, a[0], EPOLLOUT, fd_free_cb, &c, &c.src), 0);
    ck_assert_int_eq(rpc_loop_add_fd(c.loop, b[0], EPOLLOUT, fd_free_cb, &c, &c.other), 0);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 1000), 1);
    ck_assert_int_eq(c.hits, 1);
    ck_assert_int_eq(rpc_loop_run_once(c.loop, 0), 0);
    rpc_loop_free(c.loop);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}
END_TEST

/* Two connections attached to one loop exchange a call without any manual dispatch. */
typedef struct Pair {
    RpcLoop *loop;
    RpcConn *a, *b;
    int exit_code;
    char out[64];
    size_t nout;
} Pair;

static void p_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    ck_assert_int_eq(rpc_stream_accept(s), 0);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDOUT, call->service, strlen(call->service)),
                     (ssize_t)strlen(call->service));
    ck_assert_int_eq(rpc_stream_exit(s, 5, NULL), 0);
}

static size_t p_data(RpcStream *s, RpcChannel ch, const uint8_t *d, size_t n, void *ud)
{
    Pair *p = ud;
    ck_assert_uint_le(p->nout + n, sizeof(p->out));
    memcpy(p->out + p->nout, d, n);
    p->nout += n;
    return n;
}

static void p_exit(RpcStream *s, int32_t code, bool refused, const char *reason, void *ud)
{
    Pair *p = ud;
    p->exit_code = code;
    rpc_loop_quit(p->loop, 0);
}

/* One call on the pair, driven by the loop: the handler echoes the service name, exits 5. */
static void pair_call(Pair *p, const char *service)
{
    RpcStream *s;
    size_t n = strlen(service);
    p->nout = 0;
    p->exit_code = -1;
    ck_assert_int_eq(rpc_stream_open(p->a, &(RpcCall){.service = service}, &s), 0);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    ck_assert_int_eq(rpc_loop_run(p->loop), 0);
    ck_assert_int_eq(p->exit_code, 5);
    ck_assert_uint_eq(p->nout, n);
    ck_assert_mem_eq(p->out, service, n);
}

static void busy_defer(RpcLoopSource *src, void *ud)
{
    (void)ud;
    rpc_loop_defer_again(src); /* every iteration: the loop never sleeps */
}

static void hang_guard(RpcLoopSource *src, void *ud)
{
    rpc_loop_quit(((Pair *)ud)->loop, 1);
}

/* @p's a (caller) and b (acceptor) over a new vchan pair, not attached; b's end is *@vsp. */
static void pair_new_vchan(Pair *p, Vchan **vsp)
{
    static const RpcCallbacks cbs = {.on_call = p_call, .on_data = p_data, .on_exit = p_exit};
    RpcConnConfig ca, cb;
    Vchan *vcl;
    rpc_conn_config_init(&ca);
    rpc_conn_config_init(&cb);
    cb.role = RPC_ROLE_ACCEPTOR;
    ck_assert_int_eq(vchan_pair_new(vsp, &vcl, 0, 0), 0);
    ck_assert_int_eq(rpc_conn_new_vchan(&p->a, vcl, true, &ca, &cbs, p), 0);
    ck_assert_int_eq(rpc_conn_new_vchan(&p->b, *vsp, true, &cb, &cbs, p), 0);
}

/* Over a vchan a dispatch reads without arming the peer's event, and the loop arms only
 * before it sleeps. A loop that never sleeps (deferred work in every iteration, as while
 * it relays a stream) must still serve such a connection: a whole call goes through. */
START_TEST(busy_loop_serves_vchan)
{
    Pair p = {0};
    Vchan *vs;
    RpcLoopSource *busy, *guard;
    ck_assert_int_eq(rpc_loop_new(&p.loop), 0);
    pair_new_vchan(&p, &vs);
    ck_assert_int_eq(rpc_conn_attach(p.a, p.loop), 0);
    ck_assert_int_eq(rpc_conn_attach(p.b, p.loop), 0);
    ck_assert_int_eq(rpc_loop_add_defer(p.loop, busy_defer, NULL, &busy), 0);
    ck_assert_int_eq(rpc_loop_add_timer(p.loop, 120000, hang_guard, &p, &guard), 0);
    for (int i = 0; i < 3; i++) /* three calls: each more than the connect's first events */
        pair_call(&p, "busy.Test");
    rpc_loop_source_free(busy);
    rpc_loop_source_free(guard);
    rpc_conn_free(p.a);
    rpc_conn_free(p.b);
    rpc_loop_free(p.loop);
}
END_TEST

/* stale_vchan_report: b is attached to the loop, a is driven by hand. */
typedef struct Stale {
    Pair p;
    int pfd[2];
    bool fire;
} Stale;

/* Reads its pipe, then dispatches b before b's own callback of the same poll runs. */
static void dispatch_first_cb(RpcLoopSource *src, int fd, uint32_t events, void *ud)
{
    Stale *st = ud;
    char b[8];
    ck_assert_int_gt(read(fd, b, sizeof(b)), 0);
    rpc_conn_dispatch(st->p.b);
}

/* Runs after b's prepare (it was added before b was attached): b is asleep-ready, armed.
 * Makes the pipe readable, then has a send a call, which fires b's event: both are reported
 * by the coming poll, the pipe first. */
static int fire_prepare(RpcLoopSource *src, bool will_sleep, void *ud)
{
    Stale *st = ud;
    RpcStream *s;
    if (!st->fire || !will_sleep)
        return 0;
    st->fire = false;
    ck_assert_int_eq(write(st->pfd[1], "x", 1), 1);
    ck_assert_int_eq(rpc_stream_open(st->p.a, &(RpcCall){.service = "stale.Test"}, &s), 0);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    return 0;
}

/* Drive the loop (b) and a by hand until a's call has its exit. */
static void stale_run(Stale *st)
{
    uint64_t end = (uint64_t)rpc_loop_now_ms() + 120000; /* hang guard */
    st->p.exit_code = -1;
    while (st->p.exit_code < 0) {
        ck_assert_uint_lt((uint64_t)rpc_loop_now_ms(), end);
        ck_assert_int_ge(rpc_loop_run_once(st->p.loop, 10), 0);
        rpc_conn_dispatch(st->p.a);
    }
}

/* Two reports of one poll: another fd's callback dispatches the vchan connection first, which
 * takes the event, so the connection's own report is stale by the time its callback runs. Its
 * dispatch must look before taking an event (vchan_dispatch()), not take one on trust
 * (vchan_dispatch_ready()): on Xen's blocking event fd, that would sleep for ever. */
START_TEST(stale_vchan_report)
{
    Stale st = {0};
    Vchan *vs;
    RpcLoopSource *first, *fire;
    VchanStats vst;
    ck_assert_int_eq(rpc_loop_new(&st.p.loop), 0);
    ck_assert_int_eq(pipe2(st.pfd, O_NONBLOCK | O_CLOEXEC), 0);
    ck_assert_int_eq(rpc_loop_add_prepare(st.p.loop, fire_prepare, &st, &fire), 0);
    pair_new_vchan(&st.p, &vs);
    ck_assert_int_eq(rpc_conn_attach(st.p.b, st.p.loop), 0);
    ck_assert_int_eq(rpc_loop_add_fd(st.p.loop, st.pfd[0], EPOLLIN, dispatch_first_cb, &st, &first),
                     0);
    for (int i = 0; i < 3; i++) {
        st.fire = true;
        stale_run(&st);
        ck_assert_int_eq(st.p.exit_code, 5);
        ck_assert(!st.fire);
    }
    vchan_get_stats(vs, &vst);
    ck_assert_uint_ge(vst.events_consumed, 3); /* b was woken by events */
    ck_assert_uint_eq(vst.ready_empty, 0);
    rpc_loop_source_free(first);
    rpc_loop_source_free(fire);
    close(st.pfd[0]);
    close(st.pfd[1]);
    rpc_conn_free(st.p.a);
    rpc_conn_free(st.p.b);
    rpc_loop_free(st.p.loop);
}
END_TEST

START_TEST(attached_connections)
{
    Pair p = {0};
    int sv[2];
    RpcConnConfig ca, cb;
    RpcCallbacks cbs = {.on_call = p_call, .on_data = p_data, .on_exit = p_exit};
    rpc_conn_config_init(&ca);
    rpc_conn_config_init(&cb);
    cb.role = RPC_ROLE_ACCEPTOR;
    ck_assert_int_eq(rpc_loop_new(&p.loop), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(rpc_conn_new_fd(&p.a, sv[0], true, &ca, &cbs, &p), 0);
    ck_assert_int_eq(rpc_conn_new_fd(&p.b, sv[1], true, &cb, &cbs, &p), 0);
    ck_assert_int_eq(rpc_conn_attach(p.a, p.loop), 0);
    ck_assert_int_eq(rpc_conn_attach(p.a, p.loop), -EBUSY);
    ck_assert_int_eq(rpc_conn_attach(p.b, p.loop), 0);
    pair_call(&p, "loop.Test");
    rpc_conn_free(p.a);
    rpc_conn_free(p.b);
    rpc_loop_free(p.loop);
}
END_TEST

/* Issue 13 item 1: a loop-attached connection writes what one loop pass queued in one
 * transport write. The handler side counts its transport writes: a call answered in one
 * callback (accept, output, exit) under accept_hold_ms is one write, and arrives in order. */
typedef struct CountingFd {
    int fd;
    int writes;
} CountingFd;

static ssize_t cf_read(void *ctx, void *buf, size_t n)
{
    ssize_t r = read(((CountingFd *)ctx)->fd, buf, n);
    return r < 0 ? -errno : r;
}

static ssize_t cf_writev(void *ctx, const struct iovec *iov, int cnt)
{
    CountingFd *cf = ctx;
    ssize_t r = writev(cf->fd, iov, cnt);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    cf->writes++;
    return r;
}

static void cf_free(void *ctx)
{
    close(((CountingFd *)ctx)->fd);
}

static const RpcTransportOps counting_ops = {.read = cf_read, .writev = cf_writev, .free = cf_free};

typedef struct Hold {
    RpcLoop *loop;
    bool accepted, exited;
    size_t nout;      /* stdout bytes seen by the caller */
    size_t at_accept; /* of them, before on_accept (must be 0) */
    bool answer;      /* the handler answers in its on_call (else accepts only) */
} Hold;

static void h_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    Hold *h = ud;
    ck_assert_int_eq(rpc_stream_accept(s), 0);
    if (!h->answer)
        return;
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDOUT, "pong\n", 5), 5);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDOUT), 0);
    ck_assert_int_eq(rpc_stream_exit(s, 0, NULL), 0);
}

static void h_accept(RpcStream *s, void *ud)
{
    Hold *h = ud;
    h->accepted = true;
    h->at_accept = h->nout;
    if (!h->answer)
        rpc_loop_quit(h->loop, 0);
}

static size_t h_data(RpcStream *s, RpcChannel ch, const uint8_t *d, size_t n, void *ud)
{
    ((Hold *)ud)->nout += n;
    return n;
}

static void h_exit(RpcStream *s, int32_t code, bool refused, const char *reason, void *ud)
{
    Hold *h = ud;
    ck_assert(h->accepted);
    h->exited = true;
    rpc_loop_quit(h->loop, 0);
}

static void hold_run(bool answer)
{
    Hold h = {.answer = answer};
    CountingFd cf;
    int sv[2];
    RpcConn *a, *b;
    RpcConnConfig ca, cb;
    RpcCallbacks cbs = {.on_call = h_call, .on_accept = h_accept, .on_data = h_data,
                        .on_exit = h_exit};
    rpc_conn_config_init(&ca);
    rpc_conn_config_init(&cb);
    cb.role = RPC_ROLE_ACCEPTOR;
    cb.accept_hold_ms = 50;
    ck_assert_int_eq(rpc_loop_new(&h.loop), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cf = (CountingFd){.fd = sv[1]};
    ck_assert_int_eq(rpc_conn_new_fd(&a, sv[0], true, &ca, &cbs, &h), 0);
    ck_assert_int_eq(rpc_conn_new_stream(&b, sv[1], &counting_ops, &cf, &cb, &cbs, &h), 0);
    ck_assert_int_eq(rpc_conn_attach(a, h.loop), 0);
    ck_assert_int_eq(rpc_conn_attach(b, h.loop), 0);
    RpcStream *s;
    ck_assert_int_eq(rpc_stream_open(a, &(RpcCall){.service = "hold.Test"}, &s), 0);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    /* the HELLOs are exchanged first: count the handler's writes from its on_call on */
    while (rpc_conn_peer_info(b, &(RpcPeerInfo){0}) != 0)
        ck_assert_int_ge(rpc_loop_run_once(h.loop, 1000), 0);
    int before = cf.writes;
    ck_assert_int_eq(rpc_loop_run(h.loop), 0);
    ck_assert(h.accepted);
    ck_assert_uint_eq(h.at_accept, 0);
    if (answer) {
        ck_assert(h.exited);
        ck_assert_uint_eq(h.nout, 5);
        /* ACCEPT, DATA (+EOF), EXIT: one write */
        ck_assert_int_eq(cf.writes - before, 1);
    } else {
        /* nothing followed the ACCEPT: its deadline sent it alone */
        ck_assert(!h.exited);
        ck_assert_int_eq(cf.writes - before, 1);
    }
    rpc_conn_free(a);
    rpc_conn_free(b);
    rpc_loop_free(h.loop);
}

START_TEST(answer_in_one_write)
{
    hold_run(true);
}
END_TEST

START_TEST(held_accept_deadline)
{
    hold_run(false);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("librpc-loop");
    TCase *tc = tcase_create("loop");
    vt_leak_fixture(tc);
    tcase_set_timeout(tc, 600); /* a hang guard for a busy machine, not a budget */
    tcase_add_test(tc, fd_source);
    tcase_add_test(tc, timers);
    tcase_add_test(tc, signals);
    tcase_add_test(tc, defers);
    tcase_add_test(tc, prepares);
    tcase_add_test(tc, run_sleeps_after_defers);
    tcase_add_test(tc, free_inside_callback);
    tcase_add_test(tc, attached_connections);
    tcase_add_test(tc, busy_loop_serves_vchan);
    tcase_add_test(tc, stale_vchan_report);
    tcase_add_test(tc, answer_in_one_write);
    tcase_add_test(tc, held_accept_deadline);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
