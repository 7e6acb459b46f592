/* SPDX-License-Identifier: MIT */
/*
 * server.c - the service side of libvrpc: a long-running daemon listening on a Unix socket
 * in the services folder serves one call per accepted connection. The vrpc daemon writes
 * the descriptor line "SERVICE+ARG SOURCE\n" first (docs/services.md); it is read with
 * MSG_PEEK so that not one byte of the caller's stdin behind it is consumed, checked as a
 * whole, and only then split into the call's fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libvrpc/internal.h"
#include "librpc/rpc.h"

struct VrpcServer {
    int fd;
    char *path; /* unlinked on free; NULL for an fd handed to us */
};

struct VrpcServerCall {
    int fd;
    char service[RPC_SERVICE_MAX + 1];
    char untrusted_argument[RPC_ARG_MAX + 1];
    char source[RPC_DOMAIN_MAX + 1];
};

int vrpc_server_listen(VrpcServer **serverp, const char *path, mode_t mode)
{
    if (!serverp || !path)
        return -EINVAL;
    VrpcServer *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return -ENOMEM;
    }
    s->fd = rpc_unix_listen(path, mode, 64);
    if (s->fd < 0) {
        int r = s->fd;
        free(s->path);
        free(s);
        return r;
    }
    *serverp = s;
    return 0;
}

int vrpc_server_new_fd(VrpcServer **serverp, int listen_fd)
{
    if (!serverp || listen_fd < 0)
        return -EINVAL;
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -EINVAL;
    (void)fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    VrpcServer *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = listen_fd;
    *serverp = s;
    return 0;
}

VrpcServer *vrpc_server_free(VrpcServer *s)
{
    if (!s)
        return NULL;
    if (s->fd >= 0)
        close(s->fd);
    if (s->path)
        (void)unlink(s->path);
    free(s->path);
    free(s);
    return NULL;
}

int vrpc_server_fd(const VrpcServer *s)
{
    return s ? s->fd : -EINVAL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Split and check a descriptor line (without its newline) into @call. The line comes
 * through a socket anyone with access to it may write: every field is checked against
 * the name rules before it is copied, and a line that breaks them is refused as a whole.
 */
static int parse_descriptor(const char *untrusted_line, size_t len, VrpcServerCall *call)
{
    char line[VRPC_DESCRIPTOR_MAX];
    if (len >= sizeof line || memchr(untrusted_line, '\0', len))
        return -EPROTO;
    memcpy(line, untrusted_line, len);
    line[len] = '\0';
    char *space = strchr(line, ' ');
    if (!space || strchr(space + 1, ' '))
        return -EPROTO;
    *space = '\0';
    char *plus = strchr(line, '+');
    if (!plus)
        return -EPROTO;
    *plus = '\0';
    const char *service = line, *arg = plus + 1, *source = space + 1;
    if (!rpc_valid_service(service) || service[0] == '.' || !rpc_valid_argument(arg) ||
        !source[0] || !rpc_valid_domain(source))
        return -EPROTO;
    /* checked: the lengths fit the fields */
    strcpy(call->service, service);
    strcpy(call->untrusted_argument, arg);
    strcpy(call->source, source);
    return 0;
}

/* Read the descriptor line from @fd without consuming anything behind it. */
static int read_descriptor(int fd, int timeout_ms, VrpcServerCall *call)
{
    char buf[VRPC_DESCRIPTOR_MAX];
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        if (n == 0)
            return -EPROTO; /* closed before the line was complete */
        if (n > 0) {
            char *nl = memchr(buf, '\n', (size_t)n);
            if (nl) {
                size_t line_len = (size_t)(nl - buf);
                ssize_t got;
                do
                    got = recv(fd, buf, line_len + 1, MSG_DONTWAIT);
                while (got < 0 && errno == EINTR);
                if (got != (ssize_t)(line_len + 1))
                    return -EPROTO;
                return parse_descriptor(buf, line_len, call);
            }
            if ((size_t)n == sizeof buf)
                return -EPROTO; /* no newline where there must be one */
        }
        if (n > 0) {
            /* a partial line: is more to come at all? */
            struct pollfd h = {.fd = fd, .events = POLLRDHUP};
            if (poll(&h, 1, 0) > 0 && (h.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                return -EPROTO;
        }
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return -EAGAIN;
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        if (n > 0) {
            /* poll would return at once (the partial line is readable): sleep a little */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* nothing yet: wait for the first bytes */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            return -errno;
    }
}

int vrpc_server_call_from_fd(int fd, int timeout_ms, VrpcServerCall **callp)
{
    if (fd < 0 || !callp)
        return -EINVAL;
    VrpcServerCall *call = calloc(1, sizeof *call);
    if (!call) {
        close(fd);
        return -ENOMEM;
    }
    call->fd = fd;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = read_descriptor(fd, timeout_ms, call);
    if (r < 0) {
        vrpc_server_call_free(call);
        return r;
    }
    *callp = call;
    return 0;
}

int vrpc_server_accept(VrpcServer *s, int timeout_ms, VrpcServerCall **callp)
{
    if (!s || !callp)
        return -EINVAL;
    int fd;
    do
        fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return vrpc_server_call_from_fd(fd, timeout_ms, callp);
}

int vrpc_server_call_fd(const VrpcServerCall *call)
{
    return call ? call->fd : -EINVAL;
}

const char *vrpc_server_call_source(const VrpcServerCall *call)
{
    return call ? call->source : NULL;
}

const char *vrpc_server_call_service(const VrpcServerCall *call)
{
    return call ? call->service : NULL;
}

const char *vrpc_server_call_untrusted_argument(const VrpcServerCall *call)
{
    return call ? call->untrusted_argument : NULL;
}

VrpcServerCall *vrpc_server_call_free(VrpcServerCall *call)
{
    if (!call)
        return NULL;
    if (call->fd >= 0)
        close(call->fd);
    free(call);
    return NULL;
}
