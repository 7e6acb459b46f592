/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - vrpc_call_buffer(), the one-shot blocking call, written on the streaming
 * API with a private connection (so it may run in several threads at once), plus the
 * library's version and default socket.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvrpc/internal.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

const char *vrpc_version(void)
{
    return VRPC_VERSION;
}

const char *vrpc_default_socket(void)
{
    const char *s = getenv("VRPC_SOCKET");
    if (s && s[0])
        return s;
    return access(VRPC_AGENT_SOCKET, F_OK) == 0 ? VRPC_AGENT_SOCKET : VRPC_DISPATCHER_SOCKET;
}

/* Move stdout into *bufp (growing it), drop stderr. Returns 0, -EFBIG or -ENOMEM. */
static int drain(VrpcCall *call, char **bufp, size_t *lenp, size_t *capp)
{
    for (;;) {
        if (*capp - *lenp < 4096) {
            if (*capp > VRPC_CALL_BUFFER_MAX)
                return -EFBIG;
            size_t ncap = *capp ? *capp * 2 : 65536;
            char *nb = realloc(*bufp, ncap + 1);
            if (!nb)
                return -ENOMEM;
            *bufp = nb;
            *capp = ncap;
        }
        ssize_t n = vrpc_call_read(call, VRPC_STDOUT, *bufp + *lenp, *capp - *lenp);
        if (n <= 0)
            break;
        *lenp += (size_t)n;
        if (*lenp > VRPC_CALL_BUFFER_MAX)
            return -EFBIG;
    }
    char sink[4096];
    while (vrpc_call_read(call, VRPC_STDERR, sink, sizeof sink) > 0)
        ;
    return 0;
}

int vrpc_call_buffer(const char *target, const char *service, const void *in, size_t in_len,
                     char **out, size_t *out_len, int *exit_code)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (exit_code)
        *exit_code = VRPC_EXIT_FRAMEWORK;
    if (!out || !exit_code || (!in && in_len) || !vrpc_service_valid(service) ||
        !vrpc_target_valid(target))
        return -EINVAL;

    VrpcClient *client = NULL;
    VrpcCall *call = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, sent = 0;
    int r = vrpc_client_new(&client, NULL);
    if (r < 0)
        goto out;
    /* CALL, the input that fits and its EOF leave in one write: the agent wakes once */
    vrpc_client_cork(client);
    bool corked = true;
    r = vrpc_call_open(client, target, service, &call);
    if (r < 0) {
        vrpc_client_uncork(client);
        goto out;
    }
    bool in_closed = false;
    for (;;) {
        while (!in_closed) {
            if (sent == in_len) {
                (void)vrpc_call_close_stdin(call);
                in_closed = true;
                break;
            }
            ssize_t n = vrpc_call_write(call, (const char *)in + sent, in_len - sent);
            if (n == -EAGAIN)
                break;
            if (n < 0) { /* the handler stopped reading: the rest is not wanted */
                (void)vrpc_call_close_stdin(call);
                in_closed = true;
                break;
            }
            sent += (size_t)n;
        }
        if (corked) {
            vrpc_client_uncork(client);
            corked = false;
        }
        r = drain(call, &buf, &len, &cap);
        if (r < 0) {
            (void)vrpc_call_cancel(call, "caller's buffer is full");
            goto out;
        }
        if (vrpc_call_done(call)) {
            /* output that arrived before the end is still buffered */
            r = drain(call, &buf, &len, &cap);
            if (r < 0)
                goto out;
            break;
        }
        r = vrpc_client_wait(client, -1);
        if (r < 0 && r != -ENOTCONN)
            goto out;
        r = 0;
    }
    if (!buf && !(buf = malloc(1))) {
        r = -ENOMEM;
        goto out;
    }
    buf[len] = '\0';
    (void)vrpc_call_exit_code(call, exit_code);
    *out = buf;
    buf = NULL;
    if (out_len)
        *out_len = len;
out:
    free(buf);
    vrpc_call_free(call);
    vrpc_client_free(client);
    return r;
}
