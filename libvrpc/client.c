/* SPDX-License-Identifier: MIT */
/*
 * client.c - the caller side of libvrpc: one librpc connection to the local vrpc daemon
 * (VrpcClient) carrying any number of calls (VrpcCall, one librpc stream each). The
 * application watches one fd: an epoll set holding the daemon's socket (with the events
 * librpc wants, kept in sync after every call that may queue output) and an eventfd that is
 * raised while notify callbacks are pending. Remote output is copied into a bounded buffer
 * per channel; when one is full, on_data consumes less and librpc pauses the stream, so the
 * handler is held back by flow control until the application reads.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "libvrpc/internal.h"
#include "librpc/rpc.h"
#include "common/list.h"

#define CHAN_BUF_MAX (64u * 1024u)
#define REASON_MAX 512

typedef struct ChanBuf {
    uint8_t *data;
    size_t off, len; /* unread bytes are data[off .. off+len) */
    bool eof;
} ChanBuf;

struct VrpcCall {
    VrpcClient *client;      /* NULL once the client was freed */
    VrpcCall *next, *prev;   /* client's calls */
    VrpcCall *pnext, *pprev; /* client's pending notifications */
    bool pending;
    RpcStream *stream; /* NULL once the stream is gone */
    ChanBuf out, err;
    bool stdin_closed;
    bool done;
    int exit_code;
    char *reason;
    VrpcNotifyFn notify;
    void *userdata;
};

struct VrpcClient {
    RpcConn *conn;
    int epfd, evfd;
    int sock_fd;
    uint32_t sock_events; /* registered in epfd; 0 once removed */
    bool ev_raised;
    bool closed;
    char close_reason[REASON_MAX];
    VrpcCall *calls;
    VrpcCall *phead, *ptail;
};

/* ---- notifications -------------------------------------------------------------------------- */

static void raise_ev(VrpcClient *c)
{
    if (c->ev_raised)
        return;
    uint64_t one = 1;
    if (write(c->evfd, &one, sizeof one) == (ssize_t)sizeof one)
        c->ev_raised = true;
}

static void notify_queue(VrpcCall *call)
{
    VrpcClient *c = call->client;
    if (!c || call->pending)
        return;
    call->pending = true;
    call->pnext = NULL;
    call->pprev = c->ptail;
    if (c->ptail)
        c->ptail->pnext = call;
    else
        c->phead = call;
    c->ptail = call;
    raise_ev(c);
}

static void notify_unlink(VrpcCall *call)
{
    VrpcClient *c = call->client;
    if (!c || !call->pending)
        return;
    if (call->pprev)
        call->pprev->pnext = call->pnext;
    else
        c->phead = call->pnext;
    if (call->pnext)
        call->pnext->pprev = call->pprev;
    else
        c->ptail = call->pprev;
    call->pending = false;
    call->pnext = call->pprev = NULL;
}

/* Keep the socket's epoll events equal to what librpc wants now. */
static void sync_events(VrpcClient *c)
{
    if (c->closed || !c->conn)
        return;
    uint32_t ev = rpc_conn_events(c->conn);
    if (ev == c->sock_events)
        return;
    struct epoll_event e = {.events = ev, .data.fd = c->sock_fd};
    if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->sock_fd, &e) == 0)
        c->sock_events = ev;
    else
        raise_ev(c); /* cannot happen in practice; dispatching again is the safe answer */
}

/* ---- call state ------------------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void call_end(VrpcCall *call, int code,
                                                           const char *fmt, ...)
{
    if (call->done)
        return;
    call->done = true;
    call->exit_code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&call->reason, fmt, ap) < 0)
            call->reason = NULL;
        va_end(ap);
    }
    notify_queue(call);
}

/* The stream is going away: forget it (its userdata too, so late callbacks find nothing). */
static void call_drop_stream(VrpcCall *call)
{
    if (call->stream)
        rpc_stream_set_userdata(call->stream, NULL);
    call->stream = NULL;
}

static void chan_clear(ChanBuf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = 0;
}

/* ---- librpc callbacks ------------------------------------------------------------------------ */

static void cb_on_ready(RpcConn *conn, const RpcPeerInfo *peer, void *userdata)
{
    VrpcClient *c = userdata;
    /* stdin credit has arrived with the daemon's HELLO */
    for (VrpcCall *call = c->calls; call; call = call->next)
        if (!call->done && !call->stdin_closed)
            notify_queue(call);
}

static size_t cb_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                         void *userdata)
{
    VrpcCall *call = rpc_stream_get_userdata(s); /* @userdata is the client */
    if (!call || call->done || (ch != RPC_CH_STDOUT && ch != RPC_CH_STDERR))
        return len;
    ChanBuf *b = ch == RPC_CH_STDOUT ? &call->out : &call->err;
    if (!b->data) {
        b->data = malloc(CHAN_BUF_MAX);
        if (!b->data)
            return 0; /* held by librpc; retried on the next read */
    }
    if (b->off && b->off + b->len == CHAN_BUF_MAX) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    size_t room = CHAN_BUF_MAX - b->off - b->len;
    size_t n = len < room ? len : room;
    memcpy(b->data + b->off + b->len, data, n);
    b->len += n;
    if (n)
        notify_queue(call);
    return n;
}

static void cb_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    VrpcCall *call = rpc_stream_get_userdata(s); /* @userdata is the client */
    if (!call || (ch != RPC_CH_STDOUT && ch != RPC_CH_STDERR))
        return;
    (ch == RPC_CH_STDOUT ? &call->out : &call->err)->eof = true;
    notify_queue(call);
}

/* The call of stream @s, which ends now (exit or reset): no more output will come. */
static VrpcCall *call_of_ending_stream(RpcStream *s)
{
    VrpcCall *call = rpc_stream_get_userdata(s);
    if (call) {
        call_drop_stream(call);
        call->out.eof = call->err.eof = true;
    }
    return call;
}

static void cb_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason, void *userdata)
{
    VrpcCall *call = call_of_ending_stream(s);
    if (!call)
        return;
    int st = code < 0 || code > 255 ? VRPC_EXIT_FRAMEWORK : code;
    /* The daemons' reasons start with "vrpc: " (written for any client); the application
     * adds its own prefix instead. */
    if (reason && strncmp(reason, "vrpc: ", 6) == 0)
        reason += 6;
    if (reason && reason[0])
        call_end(call, st, "%s", reason);
    else if (refused)
        call_end(call, st, "call refused (%d)", (int)code);
    else
        call_end(call, st, NULL);
}

static void cb_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason, void *userdata)
{
    VrpcCall *call = call_of_ending_stream(s);
    if (!call)
        return;
    if (code == RPC_RESET_CONN_CLOSED)
        call_end(call, VRPC_EXIT_FRAMEWORK, "connection to the vrpc daemon lost");
    else
        call_end(call, VRPC_EXIT_FRAMEWORK, "call reset (%s)%s%s", rpc_reset_code_name(code),
                 reason && reason[0] ? ": " : "", reason ? reason : "");
}

static void cb_on_writable(RpcStream *s, void *userdata)
{
    VrpcCall *call = rpc_stream_get_userdata(s); /* @userdata is the client */
    if (call)
        notify_queue(call);
}

static void cb_on_stream_free(RpcStream *s, void *userdata)
{
    VrpcCall *call = rpc_stream_get_userdata(s); /* @userdata is the client */
    if (call && call->stream == s)
        call->stream = NULL;
}

static void cb_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    VrpcClient *c = userdata;
    c->closed = true;
    snprintf(c->close_reason, sizeof c->close_reason, "connection to the vrpc daemon lost (%s%s%s)",
             rpc_error_name(error), reason && reason[0] ? ": " : "", reason ? reason : "");
    /* A closed socket would keep the epoll set readable for ever. */
    if (c->sock_events) {
        (void)epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->sock_fd, NULL);
        c->sock_events = 0;
    }
    for (VrpcCall *call = c->calls; call; call = call->next) {
        call->out.eof = call->err.eof = true;
        call_end(call, VRPC_EXIT_FRAMEWORK, "%s", c->close_reason);
    }
    raise_ev(c);
}

static const RpcCallbacks callbacks = {
    .on_ready = cb_on_ready,
    .on_data = cb_on_data,
    .on_eof = cb_on_eof,
    .on_exit = cb_on_exit,
    .on_reset = cb_on_reset,
    .on_writable = cb_on_writable,
    .on_stream_free = cb_on_stream_free,
    .on_close = cb_on_close,
};

/* ---- the client -------------------------------------------------------------------------------- */

int vrpc_client_new(VrpcClient **clientp, const char *socket_path)
{
    if (!clientp)
        return -EINVAL;
    if (!socket_path || !socket_path[0])
        socket_path = vrpc_default_socket();
    VrpcClient *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->epfd = c->evfd = c->sock_fd = -1;
    int r;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->epfd < 0 || c->evfd < 0) {
        r = -errno;
        goto fail;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.fd = c->evfd};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &e) < 0) {
        r = -errno;
        goto fail;
    }
    int fd = rpc_unix_connect(socket_path);
    if (fd < 0) {
        r = fd;
        goto fail;
    }
    RpcConnConfig cfg;
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_INITIATOR;
    cfg.keepalive_ms = 0; /* a local socket: the kernel tells us when the daemon dies */
    cfg.max_frame = RPC_FRAME_MAX_LOCAL;
    r = rpc_conn_new_fd(&c->conn, fd, true, &cfg, &callbacks, c);
    if (r < 0)
        goto fail;
    c->sock_fd = fd;
    c->sock_events = rpc_conn_events(c->conn);
    e = (struct epoll_event){.events = c->sock_events, .data.fd = fd};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        r = -errno;
        goto fail;
    }
    rpc_conn_set_name(c->conn, "vrpc daemon");
    *clientp = c;
    return 0;
fail:
    c->sock_events = 0;
    vrpc_client_free(c);
    return r;
}

VrpcClient *vrpc_client_free(VrpcClient *c)
{
    if (!c)
        return NULL;
    for (VrpcCall *call = c->calls, *next; call; call = next) {
        next = call->next;
        notify_unlink(call);
        if (call->stream) {
            RpcStream *s = call->stream;
            call_drop_stream(call);
            (void)rpc_stream_reset(s, RPC_RESET_CANCEL, "caller gone");
        }
        call->out.eof = call->err.eof = true;
        call_end(call, VRPC_EXIT_FRAMEWORK, "client freed");
        call->client = NULL;
        call->next = call->prev = NULL;
    }
    c->calls = NULL;
    c->phead = c->ptail = NULL;
    /* GOAWAY (one try, no waiting), then the socket is closed (owned) */
    if (c->conn && !c->closed && c->sock_events)
        (void)rpc_conn_close(c->conn, "client freed");
    rpc_conn_free(c->conn);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->evfd >= 0)
        close(c->evfd);
    free(c);
    return NULL;
}

void vrpc_client_cork(VrpcClient *c)
{
    if (c && c->conn)
        rpc_conn_cork(c->conn);
}

void vrpc_client_uncork(VrpcClient *c)
{
    if (c && c->conn)
        rpc_conn_uncork(c->conn);
}

int vrpc_client_fd(const VrpcClient *c)
{
    return c ? c->epfd : -EINVAL;
}

int vrpc_client_timeout_ms(const VrpcClient *c)
{
    if (!c)
        return -1;
    if (c->phead || c->ev_raised)
        return 0;
    return c->closed ? -1 : rpc_conn_next_timeout_ms(c->conn);
}

int vrpc_client_dispatch(VrpcClient *c)
{
    if (!c)
        return -EINVAL;
    uint64_t v;
    if (c->ev_raised) {
        (void)read(c->evfd, &v, sizeof v);
        c->ev_raised = false;
    }
    if (!c->closed) {
        (void)rpc_conn_dispatch(c->conn);
        sync_events(c);
    }
    /* Notify callbacks may free their call (it leaves the queue) or touch other calls. */
    while (c->phead) {
        VrpcCall *call = c->phead;
        notify_unlink(call);
        if (call->notify)
            call->notify(call, call->userdata);
    }
    if (c->ev_raised) { /* nothing left to notify: clear a wake-up raised meanwhile */
        (void)read(c->evfd, &v, sizeof v);
        c->ev_raised = false;
    }
    sync_events(c);
    return c->closed ? -ENOTCONN : 0;
}

int vrpc_client_wait(VrpcClient *c, int timeout_ms)
{
    if (!c)
        return -EINVAL;
    int t = vrpc_client_timeout_ms(c);
    if (c->closed && t < 0)
        return -ENOTCONN; /* nothing will ever come */
    if (t < 0 || (timeout_ms >= 0 && timeout_ms < t))
        t = timeout_ms;
    struct pollfd p = {.fd = c->epfd, .events = POLLIN};
    if (poll(&p, 1, t) < 0 && errno != EINTR)
        return -errno;
    return vrpc_client_dispatch(c);
}

/* ---- calls ---------------------------------------------------------------------------------- */

/* Split "NAME[+ARG]" into @name (of RPC_SERVICE_MAX + RPC_ARG_MAX + 2 bytes) and *@argp and
 * check both against the rules of docs/services.md: the charsets and lengths, and what can
 * name a service at all (vrpc_name_can_name_service(): such a name the daemons answer 127). */
static bool split_service(const char *service, char *name, const char **argp)
{
    if (!service || strlen(service) > RPC_SERVICE_MAX + RPC_ARG_MAX + 1)
        return false;
    strcpy(name, service);
    char *plus = strchr(name, '+');
    *argp = "";
    if (plus) {
        *plus = '\0';
        *argp = plus + 1;
    }
    return rpc_valid_service(name) && rpc_valid_argument(*argp) &&
           vrpc_name_can_name_service(name, strlen(name), false) &&
           vrpc_name_can_name_service(*argp, strlen(*argp), true);
}

bool vrpc_service_valid(const char *service)
{
    char name[RPC_SERVICE_MAX + RPC_ARG_MAX + 2];
    const char *arg;
    return split_service(service, name, &arg);
}

bool vrpc_target_valid(const char *target)
{
    return target && target[0] && rpc_valid_target(target);
}

int vrpc_call_open(VrpcClient *c, const char *target, const char *service, VrpcCall **callp)
{
    char name[RPC_SERVICE_MAX + RPC_ARG_MAX + 2];
    const char *arg;
    if (!c || !callp || !split_service(service, name, &arg) || !vrpc_target_valid(target))
        return -EINVAL;
    if (c->closed)
        return -ENOTCONN;
    VrpcCall *call = calloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    RpcCall rc = {.service = name, .argument = arg, .target = target};
    int r = rpc_stream_open(c->conn, &rc, &call->stream);
    if (r < 0) {
        free(call);
        return r == -ERANGE ? -EBUSY : r;
    }
    rpc_stream_set_userdata(call->stream, call);
    call->client = c;
    call->exit_code = -1;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    sync_events(c);
    *callp = call;
    return 0;
}

void vrpc_call_set_notify(VrpcCall *call, VrpcNotifyFn fn, void *userdata)
{
    if (!call)
        return;
    call->notify = fn;
    call->userdata = userdata;
}

void *vrpc_call_get_userdata(const VrpcCall *call)
{
    return call ? call->userdata : NULL;
}

static ssize_t write_errno(const VrpcCall *call)
{
    if (!call->stream || call->done)
        return -ENOTCONN;
    if (call->stdin_closed)
        return -EPIPE;
    return 0;
}

ssize_t vrpc_call_write(VrpcCall *call, const void *buf, size_t len)
{
    if (!call || (!buf && len))
        return -EINVAL;
    ssize_t r = write_errno(call);
    if (r < 0 || len == 0)
        return r;
    r = rpc_stream_write(call->stream, RPC_CH_STDIN, buf, len);
    if (r == -ENOTCONN || r == -EBADF)
        r = -EPIPE; /* the handler side is gone or half-closed: nothing more to send */
    sync_events(call->client);
    return r;
}

ssize_t vrpc_call_write_space(VrpcCall *call)
{
    if (!call)
        return -EINVAL;
    ssize_t r = write_errno(call);
    if (r < 0)
        return r;
    r = rpc_stream_send_window(call->stream, RPC_CH_STDIN);
    if (r < 0)
        return r == -ENOTCONN || r == -EBADF ? -EPIPE : r;
    if (r == 0) {
        /* Nothing would be accepted: a write now only arms on_writable (-EAGAIN). */
        static const uint8_t probe;
        ssize_t w = rpc_stream_write(call->stream, RPC_CH_STDIN, &probe, 1);
        if (w > 0) /* the window opened meanwhile; the byte is not the caller's */
            return -EIO;
        sync_events(call->client);
    }
    return r;
}

int vrpc_call_close_stdin(VrpcCall *call)
{
    if (!call)
        return -EINVAL;
    if (call->stdin_closed)
        return 0;
    call->stdin_closed = true;
    if (!call->stream)
        return call->done ? -ENOTCONN : 0;
    (void)rpc_stream_close_write(call->stream, RPC_CH_STDIN);
    sync_events(call->client);
    return 0;
}

ssize_t vrpc_call_read(VrpcCall *call, VrpcChannel ch, void *buf, size_t len)
{
    if (!call || (ch != VRPC_STDOUT && ch != VRPC_STDERR) || (!buf && len))
        return -EINVAL;
    ChanBuf *b = ch == VRPC_STDOUT ? &call->out : &call->err;
    if (b->len == 0) {
        if (b->eof)
            return 0;
        /* a malloc failure in on_data left the bytes with librpc: ask again */
        if (call->stream && rpc_stream_is_paused(call->stream)) {
            (void)rpc_stream_resume(call->stream);
            if (call->client)
                sync_events(call->client);
        }
        if (b->len == 0)
            return b->eof ? 0 : -EAGAIN;
    }
    size_t n = len < b->len ? len : b->len;
    memcpy(buf, b->data + b->off, n);
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
    /* Room again: let librpc deliver what it held back (and return the credit). */
    if (call->stream && rpc_stream_is_paused(call->stream)) {
        (void)rpc_stream_resume(call->stream);
        if (call->client)
            sync_events(call->client);
    }
    return (ssize_t)n;
}

bool vrpc_call_done(const VrpcCall *call)
{
    return call && call->done;
}

int vrpc_call_exit_code(const VrpcCall *call, int *exit_codep)
{
    if (!call || !exit_codep)
        return -EINVAL;
    if (!call->done)
        return -EAGAIN;
    *exit_codep = call->exit_code;
    return 0;
}

const char *vrpc_call_reason(const VrpcCall *call)
{
    return call && call->done ? call->reason : NULL;
}

int vrpc_call_cancel(VrpcCall *call, const char *reason)
{
    if (!call)
        return -EINVAL;
    if (call->done)
        return -EALREADY;
    if (call->stream) {
        RpcStream *s = call->stream;
        call_drop_stream(call);
        (void)rpc_stream_reset(s, RPC_RESET_CANCEL, reason ? reason : "call cancelled");
        if (call->client)
            sync_events(call->client);
    }
    chan_clear(&call->out);
    chan_clear(&call->err);
    call->out.eof = call->err.eof = true;
    call_end(call, VRPC_EXIT_FRAMEWORK, "%s", reason ? reason : "call cancelled");
    return 0;
}

VrpcCall *vrpc_call_free(VrpcCall *call)
{
    if (!call)
        return NULL;
    VrpcClient *c = call->client;
    if (!call->done)
        (void)vrpc_call_cancel(call, "caller gone");
    call_drop_stream(call);
    if (c) {
        notify_unlink(call);
        VRPC_LIST_UNLINK(&c->calls, call);
    }
    chan_clear(&call->out);
    chan_clear(&call->err);
    free(call->reason);
    free(call);
    return NULL;
}
