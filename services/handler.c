/* SPDX-License-Identifier: MIT */
/*
 * handler.c - run one service handler for an incoming librpc call and bridge its pipes (or
 * socket) to the stream on the daemon's epoll loop, with end-to-end backpressure: stdin is
 * consumed only as fast as the handler's pipe takes it, stdout/stderr are read only while
 * the stream has send credit. The handler's exit arrives through a pidfd; stdout and stderr
 * are drained to EOF before EXIT is sent. Used by vrpc-agent and vrpc-dispatcher alike.
 */

#include "handler.h"
#include "common/list.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One read from a handler's output: up to its whole pipe (enlarged to 1 MiB), so that a
 * streaming handler moves a pipeful per wake-up of the daemon (issue 13 item 2). */
#define OUT_CHUNK (1024u * 1024u)
/* Reads per wakeup and channel, so that one busy handler cannot starve the loop. */
#define OUT_BURST 4
/* Once an output reached EOF and the process is still there, how long its EOF waits for the
 * exit. A process closes its files a few microseconds before its pidfd becomes readable;
 * holding the EOF until then lets the EOFs and the EXIT leave in one write and one vchan
 * event instead of two or three (issue 13). The wait is the loop's (a timer and the pidfd),
 * not a blocking one: a process that closes its outputs and runs on delays its own EOF by
 * this much, and nobody else's traffic. Only the EOF is held: output read before goes out
 * as always. Meanwhile the other output is parked (see out_eof()): read at the exit, its EOF
 * does not wake the daemon on its own; data it gets meanwhile waits this much at most. */
#define EXIT_WAIT_MS 2
/* Descriptors whose close waits for the end of the loop pass, at most (see close_later()). */
#define CLOSE_LATER_MAX 32

enum { OUT_STDOUT = 0, OUT_STDERR = 1 };

typedef struct HandlerOut {
    RpcLoopSource *src; /* registered only while we want to read */
    bool eof;
    bool eof_held; /* reached, not sent yet: waits for the exit (EXIT_WAIT_MS) */
    bool parked;   /* not watched while the other output's EOF waits for the exit */
} HandlerOut;

struct VrpcHandler {
    VrpcHandlerSet *set;
    VrpcHandler *prev, *next;
    unsigned refs; /* > 0 while a function of ours is on the stack */

    RpcStream *stream; /* NULL once freed */
    VrpcServiceProcess proc;
    int pidfd;
    RpcLoopSource *pid_src;
    RpcLoopSource *stdin_src; /* EPOLLOUT watch while stdin is blocked */
    RpcLoopSource *timer;
    RpcLoopSource *hold_timer; /* ends the wait of held EOFs for the exit */
    HandlerOut out[2];

    char entry[2 * VRPC_SERVICES_NAME_MAX + 2];
    double timeout;
    bool exit_on_client_eof, exit_on_service_eof;

    bool stdin_blocked; /* on_data took less than offered: resume when writable */
    bool reaped;        /* the process is gone (or there never was one) */
    bool exiting;       /* inside rpc_stream_exit(): a stream free now is completion */
    int exit_code;      /* valid once reaped */
    bool done;          /* EXIT sent or stream aborted; callback called */
    VrpcHandlerResult result;
    int64_t start_us;

    VrpcHandlerDoneFn done_fn;
    void *userdata;
};

struct VrpcHandlerSet {
    RpcLoop *loop;
    VrpcHandler *head;
    size_t count;
    RpcLoopSource *pipes_src;     /* before each poll: closes, then the spare pipes */
    int closing[CLOSE_LATER_MAX]; /* closed before the loop polls again (close_later()) */
    unsigned n_closing;
};

/* Close @fd at the end of this loop pass, after the pass's frames went out: closing the last
 * end of a pipe frees it (2-3 us each on the machines measured), and a finished handler's
 * three pipes and pidfd would otherwise stand between its exit and the EXIT's write. Its
 * number stays taken until then, so nothing can reuse it meanwhile. At once when many wait. */
static void close_later(VrpcHandlerSet *set, int fd)
{
    if (fd < 0)
        return;
    if (set->n_closing == CLOSE_LATER_MAX) {
        close(fd);
        return;
    }
    set->closing[set->n_closing++] = fd;
}

static void close_pending(VrpcHandlerSet *set)
{
    for (unsigned i = 0; i < set->n_closing; i++)
        close(set->closing[i]);
    set->n_closing = 0;
}

/* Before every poll, after the pass's frames went out (the connections flush in deferred
 * callbacks, which run first): the closes of the pass; before a sleep also the pipes of the
 * next start and the list of signals its child resets, made now rather than on its path
 * (vrpc_services_prepare_pipes(), vrpc_services_prepare_signals()). One set
 * is always kept, so a daemon's fd count between calls stays the same. A failure only means
 * the next start makes its own. */
static int on_prepare(RpcLoopSource *src, bool will_sleep, void *userdata)
{
    (void)src;
    close_pending(userdata);
    if (will_sleep) {
        (void)vrpc_services_prepare_pipes();
        vrpc_services_prepare_signals();
    }
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static RpcChannel out_channel(int i)
{
    return i == OUT_STDOUT ? RPC_CH_STDOUT : RPC_CH_STDERR;
}

static int out_fd(const VrpcHandler *h, int i)
{
    return i == OUT_STDOUT ? h->proc.stdout_fd : h->proc.stderr_fd;
}

static void close_out(VrpcHandler *h, int i)
{
    h->out[i].src = rpc_loop_source_free(h->out[i].src);
    int *fdp = i == OUT_STDOUT ? &h->proc.stdout_fd : &h->proc.stderr_fd;
    close_later(h->set, *fdp);
    *fdp = -1;
    h->out[i].eof = true;
}

static void close_stdin(VrpcHandler *h)
{
    h->stdin_src = rpc_loop_source_free(h->stdin_src);
    if (h->proc.stdin_fd >= 0 && h->proc.is_socket)
        (void)shutdown(h->proc.stdin_fd, SHUT_WR); /* the EOF, now */
    close_later(h->set, h->proc.stdin_fd);
    h->proc.stdin_fd = -1;
}

static void close_all(VrpcHandler *h)
{
    close_stdin(h);
    close_out(h, OUT_STDOUT);
    close_out(h, OUT_STDERR);
    h->timer = rpc_loop_source_free(h->timer);
    h->hold_timer = rpc_loop_source_free(h->hold_timer);
    h->out[OUT_STDOUT].eof_held = h->out[OUT_STDERR].eof_held = false;
    h->out[OUT_STDOUT].parked = h->out[OUT_STDERR].parked = false;
}

static void kill_group(VrpcHandler *h, int sig)
{
    if (h->proc.pid > 0 && !h->reaped)
        (void)vrpc_service_process_kill(&h->proc, sig);
}

static void handler_free(VrpcHandler *h)
{
    close_all(h);
    h->pid_src = rpc_loop_source_free(h->pid_src);
    close_later(h->set, h->pidfd);
    VrpcHandlerSet *set = h->set;
    VRPC_LIST_UNLINK(&set->head, h);
    set->count--;
    free(h);
}

/* Free @h once nothing refers to it: stream gone, process reaped, not on the stack. */
static void maybe_free(VrpcHandler *h)
{
    if (h->refs == 0 && !h->stream && h->reaped)
        handler_free(h);
}

static void unref(VrpcHandler *h)
{
    h->refs--;
    maybe_free(h);
}

static void report(VrpcHandler *h, int exit_code, bool aborted)
{
    if (h->done)
        return;
    h->done = true;
    h->result.exit_code = aborted ? -1 : exit_code;
    h->result.aborted = aborted;
    h->result.duration_us = now_us() - h->start_us;
    if (h->done_fn) {
        h->refs++;
        h->done_fn(h, &h->result, h->userdata);
        h->refs--;
    }
}

static void release_eofs(VrpcHandler *h);

/* The call is over from the stream's point of view: send EXIT and stop bridging. */
static void finish(VrpcHandler *h, int code, const char *reason)
{
    release_eofs(h);
    close_all(h);
    if (h->stream) {
        /* When the caller's stdin EOF has already arrived, rpc_stream_exit() completes the
         * stream and, inside a dispatch (e.g. from on_writable), frees it right away: the
         * on_stream_free that runs before it returns is the normal end, not an abort. */
        h->exiting = true;
        int r = rpc_stream_exit(h->stream, code, reason);
        h->exiting = false;
        if (r < 0 && r != -EALREADY) {
            report(h, -1, true);
            return;
        }
    }
    report(h, code, false);
}

static void abort_call(VrpcHandler *h)
{
    kill_group(h, SIGKILL);
    close_all(h);
    report(h, -1, true);
}

/* Send EXIT when the process is gone and both outputs reached EOF. */
static void check_complete(VrpcHandler *h)
{
    if (h->done || !h->reaped || !h->out[OUT_STDOUT].eof || !h->out[OUT_STDERR].eof)
        return;
    if (h->result.timed_out) {
        char reason[256];
        snprintf(reason, sizeof reason, "vrpc: %s timed out after %g s", h->entry, h->timeout);
        finish(h, VRPC_SERVICES_EXIT_FRAMEWORK, reason);
    } else {
        finish(h, h->exit_code, NULL);
    }
}

static void on_out_ready(RpcLoopSource *src, int fd, uint32_t events, void *userdata);

static void watch_out(VrpcHandler *h, int i)
{
    if (h->out[i].src || h->out[i].eof || h->out[i].parked)
        return;
    int r = rpc_loop_add_fd(h->set->loop, out_fd(h, i), EPOLLIN, on_out_ready, h, &h->out[i].src);
    if (r < 0) {
        if (h->stream)
            rpc_stream_reset(h->stream, RPC_RESET_INTERNAL, "vrpc: cannot watch the handler");
        abort_call(h);
    }
}

static void pump_out(VrpcHandler *h, int i);

/* Send the EOFs that wait for the exit: the process is gone, or it ran on for EXIT_WAIT_MS.
 * A parked output is watched again. */
static void release_eofs(VrpcHandler *h)
{
    if (h->hold_timer)
        (void)rpc_loop_timer_set(h->hold_timer, -1);
    for (int i = 0; i < 2; i++) {
        if (!h->out[i].eof_held)
            continue;
        h->out[i].eof_held = false;
        if (h->stream)
            (void)rpc_stream_close_write(h->stream, out_channel(i));
    }
    for (int i = 0; i < 2 && !h->done; i++) {
        if (!h->out[i].parked)
            continue;
        h->out[i].parked = false;
        watch_out(h, i);
    }
}

static void on_hold_timeout(RpcLoopSource *src, void *userdata)
{
    VrpcHandler *h = userdata;

    h->refs++;
    release_eofs(h);
    unref(h);
}

/* Output @i reached EOF while the process is there: its EOF waits for the exit (pidfd), at
 * most EXIT_WAIT_MS from the first output's EOF. Sent at once if no timer can be had.
 * Returns whether it waits. */
static bool hold_eof(VrpcHandler *h, int i)
{
    bool first = !h->out[!i].eof_held;

    if (!h->hold_timer &&
        rpc_loop_add_timer(h->set->loop, -1, on_hold_timeout, h, &h->hold_timer) < 0) {
        (void)rpc_stream_close_write(h->stream, out_channel(i));
        return false;
    }
    h->out[i].eof_held = true;
    if (first)
        (void)rpc_loop_timer_set(h->hold_timer, EXIT_WAIT_MS);
    return true;
}

static void out_eof(VrpcHandler *h, int i)
{
    close_out(h, i);
    if (i == OUT_STDOUT && h->exit_on_service_eof && !h->done) {
        if (h->stream)
            (void)rpc_stream_close_write(h->stream, out_channel(i));
        kill_group(h, SIGTERM);
        finish(h, h->reaped ? h->exit_code : 0, NULL);
        return;
    }
    /* An output closes most often because the process is exiting: its EOF waits for the exit
     * (hold_eof), and the other output is read now rather than on its own wake-up, so that
     * the EOFs and the EXIT of a finished call leave in one loop pass, in one write (issue
     * 13). An exiting process releases its files in reverse order, stderr before stdout, a
     * few microseconds before its pidfd turns readable; the reads are non-blocking: what is
     * not there yet comes through the loop as before. */
    bool held = false;
    if (h->stream) {
        if (!h->done && !h->reaped && h->pid_src)
            held = hold_eof(h, i);
        else
            (void)rpc_stream_close_write(h->stream, out_channel(i));
    }
    if (!h->done && !h->out[!i].eof && h->out[!i].src) {
        /* While the EOF waits, the other output is parked: not watched, read when the pidfd
         * turns readable (or the wait ends). Its EOF, a few microseconds away, would
         * otherwise wake the daemon once more, preempting the exiting process. A process
         * that closes one output and runs on delays the other's data by at most
         * EXIT_WAIT_MS, once. Not stdout when its EOF ends the call (exit-on-service-eof). */
        if (held && !(h->exit_on_service_eof && i == OUT_STDERR)) {
            h->out[!i].parked = true;
            h->out[!i].src = rpc_loop_source_free(h->out[!i].src);
        }
        pump_out(h, !i);
    }
    check_complete(h);
}

/* Move what the handler wrote on output @i to the stream, while the stream takes it. */
static void pump_out(VrpcHandler *h, int i)
{
    static uint8_t buf[OUT_CHUNK];
    RpcChannel ch = out_channel(i);

    for (int burst = 0; burst < OUT_BURST && !h->out[i].eof && !h->done; burst++) {
        if (!h->stream) {
            abort_call(h);
            return;
        }
        ssize_t w = rpc_stream_send_window(h->stream, ch);
        if (w < 0) {
            abort_call(h);
            return;
        }
        if (w == 0) {
            /* Blocked: stop watching the pipe (EPOLLHUP would fire regardless of the
             * mask) and let a write of nothing-yet arm on_writable. */
            h->out[i].src = rpc_loop_source_free(h->out[i].src);
            (void)rpc_stream_write(h->stream, ch, buf, 1);
            return;
        }
        size_t want = (size_t)w < sizeof buf ? (size_t)w : sizeof buf;
        ssize_t n = read(out_fd(h, i), buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            watch_out(h, i);
            return;
        }
        if (n <= 0) {
            out_eof(h, i);
            return;
        }
        if (h->result.first_byte_us < 0)
            h->result.first_byte_us = now_us() - h->start_us;
        if (i == OUT_STDOUT)
            h->result.stdout_bytes += (uint64_t)n;
        else
            h->result.stderr_bytes += (uint64_t)n;
        ssize_t wr = rpc_stream_write(h->stream, ch, buf, (size_t)n);
        if (wr != n) {
            /* The window said it fits; anything else means the stream is failing. */
            if (wr >= 0)
                rpc_stream_reset(h->stream, RPC_RESET_INTERNAL, "vrpc: short write");
            abort_call(h);
            return;
        }
    }
    watch_out(h, i);
}

static void on_out_ready(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    VrpcHandler *h = userdata;
    int i = fd == h->proc.stdout_fd ? OUT_STDOUT : OUT_STDERR;

    h->refs++;
    pump_out(h, i);
    unref(h);
}

/* Reap the process if it has exited (WNOHANG); then stop feeding stdin and complete. */
static void try_reap(VrpcHandler *h)
{
    int code = 0;
    int r = vrpc_service_reap(h->proc.pid, &code);

    if (r == -EAGAIN)
        return;
    h->pid_src = rpc_loop_source_free(h->pid_src);
    h->reaped = true;
    h->exit_code = r == 0 ? code : VRPC_SERVICES_EXIT_FRAMEWORK;
    h->proc.pid = 0;
    h->refs++;
    if (!h->done) {
        /* Stop feeding stdin; whatever the caller still sends is discarded. */
        close_stdin(h);
        if (h->stdin_blocked && h->stream) {
            h->stdin_blocked = false;
            (void)rpc_stream_resume(h->stream);
        }
        /* What the process left in its outputs, and their EOFs, in this pass with the EXIT. */
        for (int i = 0; i < 2 && !h->done; i++)
            if (!h->out[i].eof && (h->out[i].src || h->out[i].parked))
                pump_out(h, i);
        if (!h->done)
            release_eofs(h);
        check_complete(h);
    }
    unref(h);
}

static void on_pidfd(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    try_reap(userdata);
}

static void on_timeout(RpcLoopSource *src, void *userdata)
{
    VrpcHandler *h = userdata;

    h->timer = rpc_loop_source_free(h->timer);
    if (h->done)
        return;
    h->refs++;
    h->result.timed_out = true;
    if (h->proc.is_socket) {
        close_out(h, OUT_STDOUT);
        close_out(h, OUT_STDERR);
    } else {
        kill_group(h, SIGKILL);
    }
    check_complete(h);
    unref(h);
}

static void on_stdin_writable(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    VrpcHandler *h = userdata;

    h->stdin_src = rpc_loop_source_free(h->stdin_src);
    if (!h->stdin_blocked || !h->stream)
        return;
    h->stdin_blocked = false;
    h->refs++;
    (void)rpc_stream_resume(h->stream);
    unref(h);
}

/* ---- the stream's events ----------------------------------------------------------------- */

static size_t handler_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                              void *userdata)
{
    VrpcHandler *h = userdata;

    if (!h || ch != RPC_CH_STDIN)
        return h ? len : 0;
    if (h->done || h->proc.stdin_fd < 0)
        return len; /* nobody reads it any more: discard */
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(h->proc.stdin_fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            /* EPIPE and friends: the handler stopped reading its stdin. */
            close_stdin(h);
            return len;
        }
        done += (size_t)n;
    }
    h->result.stdin_bytes += done;
    if (done < len) {
        h->stdin_blocked = true;
        if (!h->stdin_src && rpc_loop_add_fd(h->set->loop, h->proc.stdin_fd, EPOLLOUT,
                                             on_stdin_writable, h, &h->stdin_src) < 0) {
            close_stdin(h);
            h->stdin_blocked = false;
            return len;
        }
    }
    return done;
}

static void handler_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    VrpcHandler *h = userdata;

    if (!h || ch != RPC_CH_STDIN || h->done)
        return;
    h->refs++;
    close_stdin(h);
    if (h->exit_on_client_eof) {
        kill_group(h, SIGTERM);
        finish(h, 0, NULL);
    }
    unref(h);
}

static void handler_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                             void *userdata)
{
    VrpcHandler *h = userdata;

    if (!h)
        return;
    h->refs++;
    abort_call(h);
    unref(h);
}

static void handler_on_writable(RpcStream *s, void *userdata)
{
    VrpcHandler *h = userdata;

    if (!h || h->done)
        return;
    h->refs++;
    for (int i = 0; i < 2 && !h->done; i++)
        if (!h->out[i].eof && !h->out[i].src)
            pump_out(h, i);
    unref(h);
}

static void handler_on_stream_free(RpcStream *s, void *userdata)
{
    VrpcHandler *h = userdata;

    if (!h)
        return;
    rpc_stream_set_ops(s, NULL, NULL);
    h->stream = NULL;
    h->refs++;
    if (!h->done && !h->exiting)
        abort_call(h);
    unref(h);
}

/* The events of a handler's stream (rpc_stream_set_ops): the daemons' connection callbacks
 * never see them. */
static const RpcStreamOps handler_stream_ops = {
    .on_data = handler_on_data,
    .on_eof = handler_on_eof,
    .on_reset = handler_on_reset,
    .on_writable = handler_on_writable,
    .on_stream_free = handler_on_stream_free,
};

void vrpc_handler_cancel(VrpcHandler *h, const char *reason)
{
    if (!h || h->done)
        return;
    h->refs++;
    if (h->stream)
        (void)rpc_stream_reset(h->stream, RPC_RESET_CANCEL, reason);
    abort_call(h);
    unref(h);
}

pid_t vrpc_handler_pid(const VrpcHandler *h)
{
    return h && !h->reaped ? h->proc.pid : 0;
}

const char *vrpc_handler_service(const VrpcHandler *h)
{
    return h ? h->entry : "";
}

/* ---- start ------------------------------------------------------------------------------ */

static int refuse(RpcStream *s, int r, const char *err)
{
    char reason[VRPC_SERVICES_ERROR_MAX];

    if (err && err[0])
        snprintf(reason, sizeof reason, "%s", err);
    else
        snprintf(reason, sizeof reason, "vrpc: %s", vrpc_services_strerror(r));
    (void)rpc_stream_refuse(s, vrpc_services_error_exit_code(r), reason);
    return r;
}

int vrpc_handler_start(VrpcHandlerSet *set, RpcStream *s, const VrpcService *service,
                       const VrpcHandlerCall *call, VrpcHandlerDoneFn done, void *userdata,
                       VrpcHandler **hp, char *err)
{
    char errbuf[VRPC_SERVICES_ERROR_MAX] = "";
    int r;

    if (!err)
        err = errbuf;
    err[0] = '\0';
    if (!set || !s || !service || !call || !call->source || rpc_stream_is_caller(s) ||
        rpc_stream_get_userdata(s) || rpc_stream_get_ops(s)) {
        snprintf(err, VRPC_SERVICES_ERROR_MAX, "vrpc: internal error (bad handler start)");
        if (s && !rpc_stream_is_caller(s))
            refuse(s, -EINVAL, err);
        return -EINVAL;
    }

    VrpcHandler *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, VRPC_SERVICES_ERROR_MAX, "vrpc: out of memory");
        return refuse(s, -ENOMEM, err);
    }
    h->set = set;
    h->pidfd = -1;
    h->proc = (VrpcServiceProcess){.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    h->start_us = now_us();
    h->result.first_byte_us = -1;
    h->result.spawn_us = -1;
    snprintf(h->entry, sizeof h->entry, "%s", service->entry);
    h->timeout = service->config.timeout;
    h->exit_on_client_eof = service->config.exit_on_client_eof;
    h->exit_on_service_eof = service->config.exit_on_service_eof;
    h->done_fn = done;
    h->userdata = userdata;

    VrpcServiceCall sc = {
        .source = call->source,
        .requested_target = call->requested_target ? call->requested_target : "",
        .user = call->user,
        .base_env = call->base_env,
        .daemon_socket = call->daemon_socket,
    };
    r = vrpc_service_start(service, &sc, &h->proc, err);
    if (r != 0) {
        free(h);
        if (r < 0 && !err[0])
            snprintf(err, VRPC_SERVICES_ERROR_MAX, "vrpc: cannot start %s: %s", service->entry,
                     strerror(-r));
        return refuse(s, r, err);
    }
    h->result.spawn_us = now_us() - h->start_us;

    if (h->proc.pid > 0) {
        h->pidfd = vrpc_service_pidfd_open(h->proc.pid);
        if (h->pidfd < 0) {
            r = h->pidfd;
            goto fail;
        }
        r = rpc_loop_add_fd(set->loop, h->pidfd, EPOLLIN, on_pidfd, h, &h->pid_src);
        if (r < 0)
            goto fail;
    } else {
        /* Socket service: nothing to reap; the call ends with 0 once the server closes. */
        h->reaped = true;
        h->exit_code = 0;
    }
    if (h->proc.stderr_fd < 0)
        h->out[OUT_STDERR].eof = true;
    if (h->proc.stdout_fd < 0)
        h->out[OUT_STDOUT].eof = true;
    if (h->timeout > 0) {
        double ms = h->timeout * 1000.0;
        r = rpc_loop_add_timer(set->loop, ms > 9e15 ? (int64_t)9e15 : (int64_t)ms, on_timeout, h,
                               &h->timer);
        if (r < 0)
            goto fail;
    }
    r = rpc_stream_accept(s);
    if (r < 0)
        goto fail;

    h->stream = s;
    rpc_stream_set_ops(s, &handler_stream_ops, h);
    h->next = set->head;
    if (set->head)
        set->head->prev = h;
    set->head = h;
    set->count++;
    watch_out(h, OUT_STDOUT);
    watch_out(h, OUT_STDERR);
    if (hp)
        *hp = h;
    return 0;

fail:
    snprintf(err, VRPC_SERVICES_ERROR_MAX, "vrpc: cannot run %s: %s", service->entry, strerror(-r));
    close_all(h);
    h->pid_src = rpc_loop_source_free(h->pid_src);
    if (h->pidfd >= 0)
        close(h->pidfd);
    if (h->proc.pid > 0) {
        (void)vrpc_service_process_kill(&h->proc, SIGKILL);
        while (waitpid(h->proc.pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free(h);
    if (r == -ENOTCONN)
        return r;
    return refuse(s, r, err);
}

/* ---- set ---------------------------------------------------------------------------------- */

int vrpc_handler_set_new(VrpcHandlerSet **setp, RpcLoop *loop)
{
    if (!setp || !loop)
        return -EINVAL;
    VrpcHandlerSet *set = calloc(1, sizeof *set);
    if (!set)
        return -ENOMEM;
    set->loop = loop;
    int r = rpc_loop_add_prepare(loop, on_prepare, set, &set->pipes_src);
    if (r < 0) {
        free(set);
        return r;
    }
    signal(SIGPIPE, SIG_IGN);
    (void)vrpc_services_prepare_pipes();
    vrpc_services_prepare_signals();
    *setp = set;
    return 0;
}

VrpcHandlerSet *vrpc_handler_set_free(VrpcHandlerSet *set)
{
    if (!set)
        return NULL;
    while (set->head) {
        VrpcHandler *h = set->head;
        h->done = true; /* no callbacks from here on */
        h->refs++;
        if (h->stream) {
            RpcStream *s = h->stream;
            h->stream = NULL;
            rpc_stream_set_ops(s, NULL, NULL);
            (void)rpc_stream_reset(s, RPC_RESET_CANCEL, "vrpc: shutting down");
        }
        kill_group(h, SIGKILL);
        if (h->proc.pid > 0 && !h->reaped)
            while (waitpid(h->proc.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        h->reaped = true;
        h->refs = 0;
        handler_free(h);
    }
    set->pipes_src = rpc_loop_source_free(set->pipes_src);
    close_pending(set);
    vrpc_services_drop_pipes();
    vrpc_services_drop_signals();
    free(set);
    return NULL;
}

size_t vrpc_handler_set_count(const VrpcHandlerSet *set)
{
    return set ? set->count : 0;
}
