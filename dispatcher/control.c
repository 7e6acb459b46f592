/* SPDX-License-Identifier: MIT */
/*
 * control.c - the dispatcher's control socket (see control.h for the protocol). Only root
 * (the socket is 0600) can ask; still, requests are bounded (one line of at most
 * CONTROL_LINE_MAX bytes, at most CONTROL_CLIENTS_MAX clients) and every socket is
 * non-blocking, so a stuck vrpc-ctl cannot stall the dispatcher.
 */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "librpc/loop.h"
#include "ask.h"
#include "link.h"
#include "log.h"
#include "peer.h"
#include "common/list.h"
#include "vchan/vchan.h"

typedef struct CtlClient CtlClient;

struct CtlClient {
    Control *ctl;
    CtlClient *prev, *next;
    int fd;
    RpcLoopSource *src;
    RpcLoopSource *timer;
    char line[CONTROL_LINE_MAX + 1];
    size_t line_len;
    char *out;
    size_t out_len, out_off;
    bool waiting;
    unsigned wait_count;
};

struct Control {
    Dispatcher *d;
    char *path;
    int fd;
    RpcLoopSource *src;
    CtlClient *clients;
    unsigned n_clients;
};

static void client_free(CtlClient *cl)
{
    Control *ctl = cl->ctl;

    VRPC_LIST_UNLINK(&ctl->clients, cl);
    ctl->n_clients--;
    rpc_loop_source_free(cl->src);
    rpc_loop_source_free(cl->timer);
    close(cl->fd);
    free(cl->out);
    free(cl);
}

static void client_flush(CtlClient *cl)
{
    while (cl->out_off < cl->out_len) {
        ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            rpc_loop_fd_set_events(cl->src, EPOLLOUT);
            return;
        }
        if (n <= 0)
            break;
        cl->out_off += (size_t)n;
    }
    client_free(cl);
}

static void client_reply(CtlClient *cl, const char *text)
{
    free(cl->out);
    cl->out = strdup(text);
    cl->out_len = cl->out ? strlen(cl->out) : 0;
    cl->out_off = 0;
    cl->waiting = false;
    cl->timer = rpc_loop_source_free(cl->timer);
    client_flush(cl);
}

static char *format_status(Dispatcher *d)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    unsigned guests = 0;

    if (!f)
        return NULL;
    for (Peer *p = d->peers; p; p = p->next) {
        if (p->kind != PEER_GUEST || !p->ready)
            continue;
        guests++;
        fprintf(f, "guest %s domid %d calls-in-flight %u calls-total %llu\n", p->name, p->domid,
                p->calls_in_flight, (unsigned long long)p->calls_total);
    }
    links_status(d->links, f);
    ask_set_status(d->asks, f);
    fprintf(f, "total guests %u calls-in-flight %u calls-total %llu refused %llu\n", guests,
            d->calls_in_flight, (unsigned long long)d->calls_total,
            (unsigned long long)d->refused_total);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The vchan counters of each connected guest, for vrpc-bench (events per call). */
static char *format_stats(Dispatcher *d)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (!f)
        return NULL;
    for (Peer *p = d->peers; p; p = p->next) {
        VchanStats st;

        if (p->kind != PEER_GUEST || !p->ready || !p->vchan)
            continue;
        RpcConnStats cs;

        vchan_get_stats(p->vchan, &st);
        rpc_conn_get_stats(p->conn, &cs);
        fprintf(f,
                "guest %s domid %d events-sent %llu events-consumed %llu frames-sent %llu "
                "frames-received %llu\n",
                p->name, p->domid, (unsigned long long)st.events_sent,
                (unsigned long long)st.events_consumed, (unsigned long long)cs.frames_out,
                (unsigned long long)cs.frames_in);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void on_wait_timeout(RpcLoopSource *src, void *userdata)
{
    client_reply(userdata, "timeout\n");
}

static void client_command(CtlClient *cl)
{
    Dispatcher *d = cl->ctl->d;
    unsigned count;
    long long timeout_ms;
    int n = 0;

    if (strcmp(cl->line, "status") == 0 || strcmp(cl->line, "stats") == 0) {
        char *text = strcmp(cl->line, "stats") == 0 ? format_stats(d) : format_status(d);
        client_reply(cl, text ? text : "error: out of memory\n");
        free(text);
    } else if (sscanf(cl->line, "wait-guests %u %lld%n", &count, &timeout_ms, &n) == 2 &&
               cl->line[n] == '\0' && timeout_ms >= 0) {
        if (peer_count_ready_guests(d) >= count) {
            client_reply(cl, "ok\n");
            return;
        }
        cl->waiting = true;
        cl->wait_count = count;
        if (rpc_loop_add_timer(d->loop, timeout_ms, on_wait_timeout, cl, &cl->timer) < 0)
            client_reply(cl, "error: out of memory\n");
    } else {
        client_reply(cl, "error: unknown command\n");
    }
}

static void on_client(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    CtlClient *cl = userdata;
    char buf[256];
    ssize_t n;

    if (cl->out) {
        client_flush(cl);
        return;
    }
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_free(cl); /* hung up (e.g. vrpc-ctl gave up waiting) */
        return;
    }
    if (cl->waiting)
        return; /* nothing more is expected */
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            cl->line[cl->line_len] = '\0';
            client_command(cl);
            return;
        }
        if (cl->line_len == CONTROL_LINE_MAX) {
            client_reply(cl, "error: line too long\n");
            return;
        }
        cl->line[cl->line_len++] = buf[i];
    }
}

static void on_listen(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Control *ctl = userdata;
    CtlClient *cl;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (cfd < 0)
        return;
    if (ctl->n_clients >= CONTROL_CLIENTS_MAX || !(cl = calloc(1, sizeof(*cl)))) {
        close(cfd);
        return;
    }
    cl->ctl = ctl;
    cl->fd = cfd;
    if (rpc_loop_add_fd(ctl->d->loop, cfd, EPOLLIN, on_client, cl, &cl->src) < 0) {
        close(cfd);
        free(cl);
        return;
    }
    cl->next = ctl->clients;
    if (ctl->clients)
        ctl->clients->prev = cl;
    ctl->clients = cl;
    ctl->n_clients++;
}

int control_new(Control **cp, Dispatcher *d, const char *path)
{
    Control *ctl = calloc(1, sizeof(*ctl));
    int r;

    if (!ctl)
        return -ENOMEM;
    ctl->d = d;
    ctl->fd = -1;
    ctl->path = strdup(path);
    if (!ctl->path) {
        free(ctl);
        return -ENOMEM;
    }
    r = rpc_unix_listen(path, 0600, 128);
    if (r < 0) {
        free(ctl->path);
        free(ctl);
        return r;
    }
    ctl->fd = r;
    r = rpc_loop_add_fd(d->loop, ctl->fd, EPOLLIN, on_listen, ctl, &ctl->src);
    if (r < 0) {
        control_free(ctl);
        return r;
    }
    *cp = ctl;
    return 0;
}

Control *control_free(Control *ctl)
{
    if (!ctl)
        return NULL;
    while (ctl->clients)
        client_free(ctl->clients);
    rpc_loop_source_free(ctl->src);
    if (ctl->fd >= 0) {
        close(ctl->fd);
        unlink(ctl->path);
    }
    free(ctl->path);
    free(ctl);
    return NULL;
}

void control_guests_changed(Control *ctl)
{
    unsigned ready;
    CtlClient *next;

    if (!ctl)
        return;
    ready = peer_count_ready_guests(ctl->d);
    for (CtlClient *cl = ctl->clients; cl; cl = next) {
        next = cl->next;
        if (cl->waiting && ready >= cl->wait_count)
            client_reply(cl, "ok\n");
    }
}
