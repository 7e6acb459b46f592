/* SPDX-License-Identifier: MIT */
/*
 * fake-agent - a stand-in for vrpc-agent in the dispatcher's tests, run in a guest with
 * `vrpc-sim exec --ns NS GUEST -- fake-agent MODE ...`. It offers the vchan at
 * /local/domain/N/data/vrpc, announces data/vrpc-ready with a fresh generation and speaks
 * librpc as ACCEPTOR, like the real agent, and it can misbehave on purpose.
 *
 *   fake-agent serve                  answer calls until SIGTERM; re-offer when dom0 closes
 *   fake-agent call TARGET SVC[+ARG]  make one call (stdin or --input -> call stdin, call
 *                                     stdout/stderr -> ours), exit with its code; the
 *                                     reason of a refusal goes to stderr. Calls to this
 *                                     guest are answered meanwhile (loopback).
 *   fake-agent hello                  connect, then exit 0 at once (HELLO exchanged)
 *   fake-agent hostile MODE           after HELLO: garbage | ping-flood | wrong-direction;
 *                                     exit 0 once the dispatcher has closed the vchan,
 *                                     3 if it has not within --wait-ms
 *   fake-agent --socket PATH call ... the same as a dom0 caller on the dispatcher's socket
 *   fake-agent --direct call TARGET SVC[+ARG]
 *                                     announce RPC_FEATURE_DIRECT; when the dispatcher
 *                                     redirects the call to a direct channel, connect to it
 *                                     and try, in order, a forged token, the right token for
 *                                     another service, the right token, the same token
 *                                     again; print "NAME: exit CODE" or "NAME: refused CODE"
 *                                     per attempt and exit 0 (a hostile source agent)
 *   fake-agent --direct serve         also a direct target: take vrpc-direct.serve, serve the
 *                                     channel and run the canned services there for any
 *                                     token, but never report a call's end to dom0 (but for
 *                                     fake.Lie+N, which exits N and reports N+1) and claim
 *                                     every token used when dom0 revokes it (a hostile target)
 * Options: --input STR, --forge-source NAME (call: put NAME in CALL.source),
 *          --wait-ms MS (default 20000), --ready-file PATH (touched when connected),
 *          --count N (call: open N calls at once, print "exit CODE reason R" per call).
 * Canned services: fake.Echo (stdin -> stdout), fake.Who (prints the CALL's source, target,
 * service, argument), fake.Exit+N (exit N), fake.Sleep (never answers, for aborts), any
 * other name: REFUSE 127.
 * Exit codes of call: the call's code; 124 no dispatcher within --wait-ms; 125 connection
 * lost; 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "common/direct.h"
#include "frame.h"
#include "librpc/loop.h"
#include "librpc/rpc.h"
#include "vchan/vchan.h"

typedef enum Mode { MODE_SERVE, MODE_CALL, MODE_HOSTILE, MODE_HELLO } Mode;

static struct {
    Mode mode;
    const char *target, *service_arg, *hostile, *input, *forge_source, *ready_file, *socket;
    int wait_ms;
    int count, finished;
    bool exiting;  /* tearing down: no more reports */
    bool direct;   /* --direct */
    char *redirect; /* the redirect the dispatcher answered with */
    bool accepted; /* one of our calls was accepted */
    RpcLoop *loop;
    struct xs_handle *xs;
    int domid;
    char ready_path[128];
    char vchan_path[128];
    unsigned counter;
    RpcConn *conn;
    Vchan *vc;
    RpcLoopSource *reoffer, *stdin_src, *deadline;
    RpcStream *call;
    bool call_done, stdin_eof;
    int exit_code;
    size_t input_off;
} g;

typedef struct Served {
    RpcStream *s;
    int kind; /* 0 echo, 1 sleep, 2 vrpc-direct.serve (its request line in line[]) */
    bool eof;
    size_t len;
    char line[256];
} Served;

/* --direct serve: the one direct channel we serve (a new serve request replaces it). */
static struct {
    RpcConn *conn;
    unsigned ch;
    uint64_t token, call_id; /* of the last serve request */
} dt;

static void direct_control(RpcStream *s, const RpcCall *call);
static void direct_serve_eof(Served *sv);

/* The userdata of the streams we opened (served streams hold a Served). */
static int our_call_tag;

static bool is_ours(RpcStream *s)
{
    return rpc_stream_get_userdata(s) == &our_call_tag;
}

static void die(const char *msg)
{
    fprintf(stderr, "fake-agent: %s\n", msg);
    exit(1);
}

static void announce(void)
{
    char gen[64];
    snprintf(gen, sizeof(gen), "%d.%u", (int)getpid(), ++g.counter);
    if (!xs_write(g.xs, XBT_NULL, g.ready_path, gen, (unsigned)strlen(gen)))
        die("cannot write vrpc-ready");
}

static void unannounce(void)
{
    xs_rm(g.xs, XBT_NULL, g.ready_path);
}

/* stdin -> the call's stdin. Bytes the stream does not take wait in pending[] and stdin is
 * not polled until on_writable (which librpc sends only after a short or refused write). */
static uint8_t pending[65536];
static size_t pending_len, pending_off;
static void stdin_cb(RpcLoopSource *src, int fd, uint32_t events, void *u);
static void stdin_flush(void);

/* ---- canned handlers -------------------------------------------------------------------- */

static void echo_pump(Served *sv, RpcStream *s)
{
    (void)sv;
    rpc_stream_resume(s);
}

static void on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *u)
{
    Served *sv;
    char line[512];

    if (g.direct && g.mode == MODE_SERVE && (call->flags & VRPC_CALL_F_CONTROL)) {
        direct_control(s, call);
    } else if (strcmp(call->service, "fake.Who") == 0) {
        rpc_stream_accept(s);
        snprintf(line, sizeof(line), "source=%s target=%s service=%s arg=%s\n",
                 call->source ? call->source : "", call->target ? call->target : "", call->service,
                 call->argument ? call->argument : "");
        rpc_stream_write(s, RPC_CH_STDOUT, line, strlen(line));
        rpc_stream_exit(s, 0, NULL);
    } else if (strcmp(call->service, "fake.Lie") == 0 && conn == dt.conn && dt.conn &&
               call->call_id == dt.token) {
        /* a direct call: exit N, tell dom0 it was N+1 */
        int n = atoi(call->argument ? call->argument : "0");
        RpcCall rep = {.service = VRPC_DIRECT_SVC_EXIT,
                       .argument = line,
                       .call_id = dt.call_id,
                       .flags = VRPC_CALL_F_CONTROL};
        RpcStream *r = NULL;
        snprintf(line, sizeof(line), "%d", (n + 1) & 0xff);
        if (rpc_stream_open(g.conn, &rep, &r) == 0)
            rpc_stream_close_write(r, RPC_CH_STDIN);
        rpc_stream_accept(s);
        rpc_stream_exit(s, n, NULL);
    } else if (strcmp(call->service, "fake.Exit") == 0) {
        rpc_stream_accept(s);
        rpc_stream_write(s, RPC_CH_STDERR, "bye\n", 4);
        rpc_stream_exit(s, atoi(call->argument ? call->argument : "0"), NULL);
    } else if (strcmp(call->service, "fake.Boast") == 0 && conn == dt.conn && dt.conn &&
               call->call_id == dt.token) {
        /* a direct call: tell dom0 at once that it exited 0, but keep it running */
        RpcCall rep = {.service = VRPC_DIRECT_SVC_EXIT,
                       .argument = "0",
                       .call_id = dt.call_id,
                       .flags = VRPC_CALL_F_CONTROL};
        RpcStream *r = NULL;
        if (rpc_stream_open(g.conn, &rep, &r) == 0)
            rpc_stream_close_write(r, RPC_CH_STDIN);
        sv = calloc(1, sizeof(*sv));
        if (!sv) {
            rpc_stream_refuse(s, 125, "oom");
            return;
        }
        sv->s = s;
        sv->kind = 1; /* as fake.Sleep: reads, never ends by itself */
        rpc_stream_set_userdata(s, sv);
        rpc_stream_accept(s);
        rpc_stream_write(s, RPC_CH_STDOUT, "running\n", 8);
    } else if (strcmp(call->service, "fake.TimedOut") == 0) {
        /* as an agent's handler set ends a call its service's timeout cut */
        rpc_stream_accept(s);
        rpc_stream_exit(s, 125, "vrpc: fake.TimedOut timed out after 0.3 s");
    } else if (strcmp(call->service, "fake.Echo") == 0 ||
               strcmp(call->service, "fake.Sleep") == 0) {
        sv = calloc(1, sizeof(*sv));
        if (!sv) {
            rpc_stream_refuse(s, 125, "oom");
            return;
        }
        sv->s = s;
        sv->kind = strcmp(call->service, "fake.Sleep") == 0;
        rpc_stream_set_userdata(s, sv);
        rpc_stream_accept(s);
    } else {
        rpc_stream_refuse(s, 127, "vrpc: service not found");
    }
}

static size_t on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *u)
{
    if (is_ours(s)) {
        /* Our call's output. */
        int fd = ch == RPC_CH_STDERR ? 2 : 1;
        size_t off = 0;
        while (off < len) {
            ssize_t n = write(fd, data + off, len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        return len;
    }
    Served *sv = rpc_stream_get_userdata(s);
    if (!sv)
        return len;
    if (sv->kind == 1)
        return len; /* sleep: swallow */
    if (sv->kind == 2) {
        size_t n = len < sizeof(sv->line) - 1 - sv->len ? len : sizeof(sv->line) - 1 - sv->len;
        memcpy(sv->line + sv->len, data, n);
        sv->len += n;
        return len;
    }
    ssize_t n = rpc_stream_write(s, RPC_CH_STDOUT, data, len);
    if (n == -EAGAIN)
        return 0;
    return n < 0 ? len : (size_t)n;
}

static void on_eof(RpcStream *s, RpcChannel ch, void *u)
{
    if (is_ours(s))
        return;
    Served *sv = rpc_stream_get_userdata(s);
    if (sv && sv->kind == 0)
        rpc_stream_exit(s, 0, NULL);
    else if (sv && sv->kind == 2)
        direct_serve_eof(sv);
}

static void on_writable(RpcStream *s, void *u)
{
    Served *sv = is_ours(s) ? NULL : rpc_stream_get_userdata(s);
    if (sv && rpc_stream_is_paused(s))
        echo_pump(sv, s);
    if (s == g.call && g.stdin_src) {
        stdin_flush();
        if (pending_off == pending_len)
            rpc_loop_fd_set_events(g.stdin_src, EPOLLIN);
    }
    if (s == g.call && g.input && !g.stdin_eof) {
        size_t len = strlen(g.input);
        while (g.input_off < len) {
            ssize_t n = rpc_stream_write(s, RPC_CH_STDIN, g.input + g.input_off, len - g.input_off);
            if (n <= 0)
                return;
            g.input_off += (size_t)n;
        }
        g.stdin_eof = true;
        rpc_stream_close_write(s, RPC_CH_STDIN);
    }
}

static void on_exit_cb(RpcStream *s, int32_t code, bool refused, const char *reason, void *u)
{
    if (!is_ours(s))
        return;
    if (g.direct && refused && code == VRPC_DIRECT_REDIRECT_CODE && reason && !g.redirect) {
        g.redirect = strdup(reason);
        g.call_done = true;
        g.call = NULL;
        rpc_loop_quit(g.loop, 0);
        return;
    }
    if (g.count) {
        printf("exit %d reason %s\n", code, reason ? reason : "");
        fflush(stdout);
        if (++g.finished == g.count) {
            g.call_done = true;
            rpc_loop_quit(g.loop, 0);
        }
        return;
    }
    if (refused || (reason && *reason))
        fprintf(stderr, "fake-agent: %s\n", reason && *reason ? reason : "refused");
    g.exit_code = code;
    g.call_done = true;
    g.call = NULL;
    rpc_loop_quit(g.loop, 0);
}

static void on_reset(RpcStream *s, uint32_t code, bool local, const char *reason, void *u)
{
    if (!is_ours(s) || g.exiting)
        return;
    if (g.count) {
        printf("reset %s\n", reason ? reason : "");
        fflush(stdout);
        if (++g.finished == g.count) {
            g.call_done = true;
            rpc_loop_quit(g.loop, 0);
        }
        return;
    }
    fprintf(stderr, "fake-agent: call reset: %s\n", reason ? reason : "");
    g.exit_code = 125;
    g.call_done = true;
    g.call = NULL;
    rpc_loop_quit(g.loop, 0);
}

static void on_stream_free(RpcStream *s, void *u)
{
    if (is_ours(s)) {
        if (s == g.call)
            g.call = NULL;
        return;
    }
    free(rpc_stream_get_userdata(s));
    rpc_stream_set_userdata(s, NULL);
}

static void open_call(void)
{
    char service[RPC_SERVICE_MAX + 1], arg[RPC_ARG_MAX + 1] = "";
    const char *plus = strchr(g.service_arg, '+');
    size_t sl = plus ? (size_t)(plus - g.service_arg) : strlen(g.service_arg);

    if (sl > RPC_SERVICE_MAX || (plus && strlen(plus + 1) > RPC_ARG_MAX))
        die("service too long");
    memcpy(service, g.service_arg, sl);
    service[sl] = '\0';
    if (plus)
        snprintf(arg, sizeof(arg), "%s", plus + 1);
    RpcCall call = {.service = service,
                    .argument = arg,
                    .target = g.target,
                    .source = g.forge_source,
                    .flags = g.direct ? VRPC_CALL_F_DIRECT_OK : 0};
    if (g.count) {
        for (int i = 0; i < g.count; i++) {
            RpcStream *s;
            if (rpc_stream_open(g.conn, &call, &s) < 0)
                die("cannot open a call");
            rpc_stream_set_userdata(s, &our_call_tag);
            rpc_stream_close_write(s, RPC_CH_STDIN);
        }
        return;
    }
    if (rpc_stream_open(g.conn, &call, &g.call) < 0)
        die("cannot open the call");
    rpc_stream_set_userdata(g.call, &our_call_tag);
    if (g.input) {
        on_writable(g.call, NULL);
    } else if (rpc_loop_add_fd(g.loop, 0, EPOLLIN, stdin_cb, NULL, &g.stdin_src) < 0) {
        /* stdin is not pollable (a regular file or /dev/null): treat as empty. */
        g.stdin_eof = true;
        rpc_stream_close_write(g.call, RPC_CH_STDIN);
    }
}

static void stdin_flush(void)
{
    while (pending_off < pending_len) {
        ssize_t n = rpc_stream_write(g.call, RPC_CH_STDIN, pending + pending_off,
                                     pending_len - pending_off);
        if (n <= 0)
            break;
        pending_off += (size_t)n;
    }
}

static void stdin_cb(RpcLoopSource *src, int fd, uint32_t events, void *u)
{
    ssize_t n;

    if (!g.call) {
        g.stdin_src = rpc_loop_source_free(g.stdin_src);
        return;
    }
    stdin_flush();
    if (pending_off < pending_len) {
        rpc_loop_fd_set_events(src, 0);
        return;
    }
    n = read(0, pending, sizeof(pending));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        g.stdin_src = rpc_loop_source_free(g.stdin_src);
        g.stdin_eof = true;
        rpc_stream_close_write(g.call, RPC_CH_STDIN);
        return;
    }
    pending_len = (size_t)n;
    pending_off = 0;
    stdin_flush();
    if (pending_off < pending_len)
        rpc_loop_fd_set_events(src, 0);
}

/* ---- hostile modes ---------------------------------------------------------------------- */

static void raw_frame(unsigned type, uint8_t flags, uint32_t stream, const void *p, uint32_t len)
{
    uint8_t hdr[RPC_FRAME_HEADER_SIZE];
    RpcFrameHeader h = {.type = (uint8_t)type, .flags = flags, .stream = stream, .length = len};

    rpc_frame_header_encode(hdr, &h);
    vchan_write_full(g.vc, hdr, sizeof(hdr), NULL, 5000);
    if (len)
        vchan_write_full(g.vc, p, len, NULL, 5000);
}

static int wait_closed(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < g.wait_ms / 10; i++) {
        vchan_dispatch(g.vc);
        if (vchan_is_open(g.vc) != VCHAN_STATE_OPEN)
            return 0;
        nanosleep(&ts, NULL);
    }
    return 3;
}

static int run_hostile(void)
{
    uint32_t sid = 0;

    if (strcmp(g.hostile, "wrong-direction") == 0) {
        /* A call of ours, accepted, then stdout from the caller's side (QSB-087). */
        RpcCall call = {.service = "demo.Echo", .target = "dom0"};
        RpcStream *s = NULL;
        if (rpc_stream_open(g.conn, &call, &s) < 0)
            die("cannot open");
        sid = rpc_stream_id(s);
        for (int i = 0; i < 2000 && !g.accepted && !rpc_conn_is_closed(g.conn); i++)
            rpc_loop_run_once(g.loop, 10);
    }
    /* From here on we write behind librpc's back: it has nothing queued (it is idle). */
    rpc_conn_detach(g.conn);
    if (strcmp(g.hostile, "garbage") == 0) {
        static const uint8_t junk[] = {0x77, 0xff, 0x12, 0x34, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0x7f, 'x',  'y',  'z'};
        vchan_write_full(g.vc, junk, sizeof(junk), NULL, 5000);
    } else if (strcmp(g.hostile, "ping-flood") == 0) {
        uint8_t ping[RPC_PING_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
        /* Never read: the PONGs pile up in the dispatcher until its quota cuts us off. */
        for (long i = 0; i < 4000000; i++) {
            uint8_t hdr[RPC_FRAME_HEADER_SIZE + RPC_PING_SIZE];
            RpcFrameHeader h = {.type = RPC_FT_PING, .length = RPC_PING_SIZE};
            rpc_frame_header_encode(hdr, &h);
            memcpy(hdr + RPC_FRAME_HEADER_SIZE, ping, RPC_PING_SIZE);
            if (vchan_write_full(g.vc, hdr, sizeof(hdr), NULL, 2000) < 0)
                break;
            vchan_dispatch(g.vc);
            if (vchan_is_open(g.vc) != VCHAN_STATE_OPEN)
                break;
        }
    } else if (strcmp(g.hostile, "wrong-direction") == 0) {
        raw_frame(RPC_FT_STDOUT, 0, sid, "evil\n", 5);
    } else {
        die("unknown hostile mode");
    }
    int r = wait_closed();
    printf("%s\n", r == 0 ? "closed" : "open");
    return r;
}

/* ---- connection --------------------------------------------------------------------------- */

static void on_ready(RpcConn *conn, const RpcPeerInfo *peer, void *u)
{
    if (g.ready_file) {
        int fd = open(g.ready_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    if (g.mode == MODE_CALL && !g.call && !g.call_done)
        open_call();
    if (g.mode == MODE_HOSTILE || g.mode == MODE_HELLO) {
        g.call_done = g.mode == MODE_HELLO;
        rpc_loop_quit(g.loop, 0);
    }
}

static void offer(void);

static void reoffer_cb(RpcLoopSource *src, void *u)
{
    g.conn = rpc_conn_free(g.conn);
    g.vc = NULL;
    offer();
}

static void on_close(RpcConn *conn, int error, const char *reason, void *u)
{
    if (g.mode == MODE_SERVE) {
        rpc_loop_add_defer(g.loop, reoffer_cb, NULL, NULL);
        return;
    }
    if (!g.call_done) {
        fprintf(stderr, "fake-agent: connection to dom0 lost: %s\n", reason);
        g.exit_code = 125;
        g.call_done = true;
    }
    rpc_loop_quit(g.loop, 0);
}

static void on_accept(RpcStream *s, void *u)
{
    g.accepted = true;
}

static const RpcCallbacks callbacks = {
    .on_ready = on_ready,
    .on_accept = on_accept,
    .on_call = on_call,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_exit = on_exit_cb,
    .on_reset = on_reset,
    .on_writable = on_writable,
    .on_stream_free = on_stream_free,
    .on_close = on_close,
};

static void offer(void)
{
    RpcConnConfig cfg;
    int r;

    unannounce();
    r = vchan_server_new(&g.vc, 0, g.vchan_path, 1 << 20, 1 << 20);
    if (r < 0) {
        fprintf(stderr, "fake-agent: vchan_server_new: %s\n", strerror(-r));
        exit(1);
    }
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_ACCEPTOR;
    cfg.hello_timeout_ms = 0; /* the dispatcher may come much later */
    if (g.direct)
        cfg.features |= RPC_FEATURE_DIRECT;
    if (rpc_conn_new_vchan(&g.conn, g.vc, true, &cfg, &callbacks, NULL) < 0 ||
        rpc_conn_attach(g.conn, g.loop) < 0)
        die("cannot set up librpc");
    announce();
}

/* ---- --direct serve: a hostile direct target ---------------------------------------------- */

static void dt_on_close(RpcConn *conn, int error, const char *reason, void *u)
{
    /* the source went away: the conn is freed at the next serve, close or exit */
}

static const RpcCallbacks dt_callbacks = {
    .on_call = on_call,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_writable = on_writable,
    .on_stream_free = on_stream_free,
    .on_close = dt_on_close,
};

static void direct_control(RpcStream *s, const RpcCall *call)
{
    if (strcmp(call->service, VRPC_DIRECT_SVC_SERVE) == 0) {
        Served *sv = calloc(1, sizeof(*sv));
        if (!sv) {
            rpc_stream_refuse(s, 125, "oom");
            return;
        }
        sv->s = s;
        sv->kind = 2;
        rpc_stream_set_userdata(s, sv); /* answered at its stdin's EOF */
        return;
    }
    if (strcmp(call->service, VRPC_DIRECT_SVC_CLOSE) == 0) {
        dt.conn = rpc_conn_free(dt.conn);
        rpc_stream_accept(s);
        rpc_stream_exit(s, 0, NULL);
        return;
    }
    /* vrpc-direct.revoke: "used already" (it will never be reported) */
    rpc_stream_refuse(s, 125, "vrpc: no such token (used already?)");
}

static void direct_serve_eof(Served *sv)
{
    VrpcDirectServe req;
    char path[96];
    Vchan *vc = NULL;
    RpcConnConfig cfg;

    if (vrpc_direct_parse_serve(sv->line, sv->len, &req) < 0)
        die("malformed serve request");
    if (!dt.conn || dt.ch != req.ch || rpc_conn_is_closed(dt.conn)) {
        dt.conn = rpc_conn_free(dt.conn);
        vrpc_direct_path(path, sizeof(path), g.domid, req.ch);
        if (vchan_server_new(&vc, req.peer_domid, path, 1 << 16, 1 << 16) < 0)
            die("cannot offer the direct vchan");
        rpc_conn_config_init(&cfg);
        cfg.role = RPC_ROLE_ACCEPTOR;
        cfg.hello_timeout_ms = 0;
        if (rpc_conn_new_vchan(&dt.conn, vc, true, &cfg, &dt_callbacks, NULL) < 0 ||
            rpc_conn_attach(dt.conn, g.loop) < 0)
            die("cannot serve the direct vchan");
        dt.ch = req.ch;
    }
    dt.token = req.token;
    dt.call_id = req.call_id;
    rpc_stream_accept(sv->s);
    rpc_stream_exit(sv->s, 0, NULL);
}

static void on_term(RpcLoopSource *src, const struct signalfd_siginfo *si, void *u)
{
    rpc_loop_quit(g.loop, 0);
}

static void on_deadline(RpcLoopSource *src, void *u)
{
    if (g.mode == MODE_SERVE)
        return;
    fprintf(stderr, "fake-agent: timed out\n");
    g.exit_code = 124;
    g.call_done = true;
    rpc_loop_quit(g.loop, 0);
}

/* A dom0 caller: the same call over the dispatcher's Unix socket. */
static int local_call(void)
{
    RpcConnConfig cfg;
    int fd;

    if (g.mode != MODE_CALL)
        return 2;
    fd = rpc_unix_connect(g.socket);
    if (fd == -ENAMETOOLONG)
        return 2;
    if (fd < 0) {
        fprintf(stderr, "fake-agent: cannot connect to %s: %s\n", g.socket, strerror(-fd));
        return 125;
    }
    if (rpc_loop_new(&g.loop) < 0)
        die("loop");
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_INITIATOR;
    if (rpc_conn_new_fd(&g.conn, fd, true, &cfg, &callbacks, NULL) < 0 ||
        rpc_conn_attach(g.conn, g.loop) < 0)
        die("cannot set up librpc");
    rpc_loop_add_timer(g.loop, g.wait_ms, on_deadline, NULL, &g.deadline);
    rpc_loop_run(g.loop);
    g.exiting = true;
    rpc_loop_source_free(g.stdin_src);
    rpc_loop_source_free(g.deadline);
    g.conn = rpc_conn_free(g.conn);
    rpc_loop_free(g.loop);
    return g.exit_code;
}

/* ---- --direct: a hostile source agent on the direct channel ----------------------------- */

static struct {
    RpcConn *conn;
    int attempt;
    bool done;
} dp;

static const char *const attempt_names[] = {"forged", "wrong-service", "good", "replay"};

static void dp_next(void);

static void dp_exit(RpcStream *s, int32_t code, bool refused, const char *reason, void *u)
{
    printf("%s: %s %d\n", attempt_names[dp.attempt], refused ? "refused" : "exit", code);
    fflush(stdout);
    dp.attempt++;
    dp_next();
}

static void dp_reset(RpcStream *s, uint32_t code, bool local, const char *reason, void *u)
{
    printf("%s: reset %s\n", attempt_names[dp.attempt], reason ? reason : "");
    fflush(stdout);
    dp.done = true;
    rpc_loop_quit(g.loop, 0);
}

static void dp_close(RpcConn *conn, int error, const char *reason, void *u)
{
    if (!dp.done)
        printf("channel closed: %s\n", reason ? reason : "");
    dp.done = true;
    rpc_loop_quit(g.loop, 0);
}

static const RpcCallbacks dp_callbacks = {
    .on_exit = dp_exit,
    .on_reset = dp_reset,
    .on_close = dp_close,
};

static uint64_t dp_token;
static char dp_service[RPC_SERVICE_MAX + 1], dp_arg[RPC_ARG_MAX + 1];

static void dp_next(void)
{
    RpcStream *s;

    if (dp.attempt >= 4) {
        dp.done = true;
        rpc_loop_quit(g.loop, 0);
        return;
    }
    RpcCall call = {.service = dp.attempt == 1 ? "test.Other" : dp_service,
                    .argument = dp_arg,
                    .call_id = dp.attempt == 0 ? dp_token ^ 0x5a5a5a5a5a5a5a5aull : dp_token};
    if (rpc_stream_open(dp.conn, &call, &s) < 0)
        die("cannot open a direct call");
    rpc_stream_close_write(s, RPC_CH_STDIN);
}

static int run_direct(void)
{
    int domid;
    unsigned ch;
    uint64_t call_id;
    char path[96];
    Vchan *vc = NULL;
    RpcConnConfig cfg;
    const char *plus = strchr(g.service_arg, '+');

    if (vrpc_direct_parse_redirect(g.redirect, &domid, &ch, &dp_token, &call_id) < 0)
        die("malformed redirect");
    snprintf(dp_service, sizeof(dp_service), "%.*s",
             (int)(plus ? (size_t)(plus - g.service_arg) : strlen(g.service_arg)), g.service_arg);
    snprintf(dp_arg, sizeof(dp_arg), "%s", plus ? plus + 1 : "");
    vrpc_direct_path(path, sizeof(path), domid, ch);
    int r = vchan_client_new(&vc, domid, path);
    if (r < 0) {
        fprintf(stderr, "fake-agent: cannot connect to %s: %s\n", path, strerror(-r));
        return 1;
    }
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_INITIATOR;
    if (rpc_conn_new_vchan(&dp.conn, vc, true, &cfg, &dp_callbacks, NULL) < 0 ||
        rpc_conn_attach(dp.conn, g.loop) < 0)
        die("cannot set up librpc");
    dp_next();
    rpc_loop_run(g.loop);
    dp.conn = rpc_conn_free(dp.conn);
    return dp.attempt == 4 ? 0 : 1;
}

int main(int argc, char **argv)
{
    RpcLoopSource *term = NULL, *intr = NULL;
    char *dom;
    unsigned len;
    int i = 1, ret;

    g.wait_ms = 20000;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: fake-agent [OPTIONS] serve | call TARGET SVC[+ARG] | hostile MODE\n");
            return 0;
        } else if (strcmp(argv[i], "--direct") == 0) {
            g.direct = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("fake-agent 0.1\n");
            return 0;
        } else if (i + 1 >= argc) {
            return 2;
        } else if (strcmp(argv[i], "--input") == 0) {
            g.input = argv[++i];
        } else if (strcmp(argv[i], "--count") == 0) {
            g.count = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--socket") == 0) {
            g.socket = argv[++i];
        } else if (strcmp(argv[i], "--forge-source") == 0) {
            g.forge_source = argv[++i];
        } else if (strcmp(argv[i], "--wait-ms") == 0) {
            g.wait_ms = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--ready-file") == 0) {
            g.ready_file = argv[++i];
        } else {
            return 2;
        }
    }
    if (i < argc && strcmp(argv[i], "serve") == 0 && i + 1 == argc) {
        g.mode = MODE_SERVE;
    } else if (i < argc && strcmp(argv[i], "call") == 0 && i + 3 == argc) {
        g.mode = MODE_CALL;
        g.target = argv[i + 1];
        g.service_arg = argv[i + 2];
    } else if (i < argc && strcmp(argv[i], "hello") == 0 && i + 1 == argc) {
        g.mode = MODE_HELLO;
    } else if (i < argc && strcmp(argv[i], "hostile") == 0 && i + 2 == argc) {
        g.mode = MODE_HOSTILE;
        g.hostile = argv[i + 1];
    } else {
        fprintf(stderr, "fake-agent: usage error\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (g.socket)
        return local_call();
    g.xs = xs_open(0);
    if (!g.xs)
        die("xs_open");
    dom = xs_read(g.xs, XBT_NULL, "domid", &len);
    if (!dom)
        die("cannot read domid");
    g.domid = atoi(dom);
    free(dom);
    snprintf(g.ready_path, sizeof(g.ready_path), "/local/domain/%d/data/vrpc-ready", g.domid);
    snprintf(g.vchan_path, sizeof(g.vchan_path), "/local/domain/%d/data/vrpc", g.domid);
    if (rpc_loop_new(&g.loop) < 0)
        die("loop");
    rpc_loop_add_signal(g.loop, SIGTERM, on_term, NULL, &term);
    rpc_loop_add_signal(g.loop, SIGINT, on_term, NULL, &intr);
    rpc_loop_add_timer(g.loop, g.wait_ms, on_deadline, NULL, &g.deadline);
    offer();
    rpc_loop_run(g.loop);
    if (g.mode == MODE_HOSTILE && !g.call_done && rpc_conn_is_ready(g.conn)) {
        rpc_loop_source_free(g.deadline);
        g.deadline = NULL;
        ret = run_hostile();
    } else if (g.mode == MODE_HOSTILE) {
        ret = 124;
    } else if (g.mode == MODE_HELLO) {
        ret = g.call_done ? 0 : 124;
    } else if (g.redirect) {
        rpc_loop_source_free(g.deadline);
        g.deadline = NULL;
        ret = run_direct();
        free(g.redirect);
    } else {
        ret = g.mode == MODE_CALL ? g.exit_code : 0;
    }
    /* Leave nothing behind: the vchan directory, vrpc-ready. */
    g.exiting = true;
    rpc_loop_source_free(g.stdin_src);
    rpc_loop_source_free(g.deadline);
    rpc_loop_source_free(term);
    rpc_loop_source_free(intr);
    dt.conn = rpc_conn_free(dt.conn);
    g.conn = rpc_conn_free(g.conn);
    unannounce();
    rpc_loop_free(g.loop);
    xs_close(g.xs);
    return ret;
}
