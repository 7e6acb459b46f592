/* SPDX-License-Identifier: MIT */
/*
 * vrpc-call - call a vrpc service in another domain. It connects to the local vrpc daemon
 * (the agent in a guest, the dispatcher in dom0) over its Unix socket, opens one librpc
 * stream with CALL{service, argument, target} and connects its stdin, stdout and stderr
 * (or a local command's, with --local) to the remote handler, binary-safe and with
 * backpressure both ways: stdin is read only while the stream has send credit, remote
 * output is consumed only as fast as our stdout takes it. Exits with the handler's status,
 * or 125 (framework error), 126 (refused), 127 (not found) with a one-line reason.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/escape.h"
#include "librpc/loop.h"
#include "librpc/rpc.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

#define EXIT_FRAMEWORK 125
#define AGENT_SOCKET "/run/vrpc/agent.sock"
#define DISPATCHER_SOCKET "/run/vrpc/dispatcher.sock"
#define CHUNK (64u * 1024u)

extern char **environ;

/* Where remote output goes (fd 1 / fd 2, or the pipe to --local's stdin). */
typedef struct Sink {
    int fd;
    bool nonblock;         /* we may get EAGAIN: watch EPOLLOUT */
    RpcLoopSource *src;    /* EPOLLOUT watch while blocked */
    bool paused;           /* on_data returned short */
    RpcChannel ch;
} Sink;

typedef struct Call {
    RpcLoop *loop;
    RpcConn *conn;
    RpcStream *stream;
    int in_fd; /* what we send as the remote stdin */
    RpcLoopSource *in_src;
    bool in_pollable;  /* epoll works on in_fd (else a regular file: read when credit) */
    bool in_nonblock;  /* else read once per readiness (a tty would block) */
    RpcLoopSource *in_defer;
    bool in_eof;
    Sink out, err;
    pid_t local_pid;
    int status; /* exit status once done, -1 before */
    bool done;
} Call;

static void finish(Call *c, int status)
{
    if (c->done)
        return;
    c->done = true;
    c->status = status;
    rpc_loop_quit(c->loop, 0);
}

__attribute__((format(printf, 3, 4))) static void fail(Call *c, int status, const char *fmt,
                                                       ...)
{
    if (c->done)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("vrpc-call: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    finish(c, status);
}

/* ---- stdin -> stream ---------------------------------------------------------------------- */

static void pump_in(Call *c);

static void on_in_ready(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    pump_in(userdata);
}

static void on_in_defer(RpcLoopSource *src, void *userdata)
{
    pump_in(userdata);
}

static void in_close(Call *c)
{
    c->in_eof = true;
    c->in_src = rpc_loop_source_free(c->in_src);
    c->in_defer = rpc_loop_source_free(c->in_defer);
    if (c->stream)
        (void)rpc_stream_close_write(c->stream, RPC_CH_STDIN);
    if (c->in_fd > 2)
        close(c->in_fd);
    c->in_fd = -1;
}

static void in_watch(Call *c, bool on)
{
    if (!on) {
        c->in_src = rpc_loop_source_free(c->in_src);
        return;
    }
    if (c->in_pollable) {
        if (!c->in_src &&
            rpc_loop_add_fd(c->loop, c->in_fd, EPOLLIN, on_in_ready, c, &c->in_src) < 0)
            fail(c, EXIT_FRAMEWORK, "cannot watch stdin");
    } else if (c->in_defer) {
        rpc_loop_defer_again(c->in_defer);
    }
}

static void pump_in(Call *c)
{
    static uint8_t buf[CHUNK];

    for (int burst = 0; burst < 8 && !c->in_eof && !c->done; burst++) {
        if (!c->stream)
            return;
        ssize_t w = rpc_stream_send_window(c->stream, RPC_CH_STDIN);
        if (w < 0) {
            /* The handler side is gone or half-closed: nothing more to send. */
            in_close(c);
            return;
        }
        if (w == 0) {
            in_watch(c, false);
            (void)rpc_stream_write(c->stream, RPC_CH_STDIN, buf, 1); /* arms on_writable */
            return;
        }
        ssize_t n = read(c->in_fd, buf, (size_t)w < sizeof buf ? (size_t)w : sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            in_watch(c, true);
            return;
        }
        if (n <= 0) {
            in_close(c);
            return;
        }
        ssize_t wr = rpc_stream_write(c->stream, RPC_CH_STDIN, buf, (size_t)n);
        if (wr != n) {
            fail(c, EXIT_FRAMEWORK, "lost stdin data (%zd of %zd bytes taken)", wr, n);
            return;
        }
        if (c->in_pollable && !c->in_nonblock)
            break;
    }
    in_watch(c, true);
}

/* ---- stream -> stdout/stderr ------------------------------------------------------------- */

static void on_sink_writable(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Sink *k = userdata;
    Call *c = (Call *)((char *)k - (k->ch == RPC_CH_STDOUT ? offsetof(Call, out)
                                                            : offsetof(Call, err)));
    k->src = rpc_loop_source_free(k->src);
    if (k->paused && c->stream) {
        k->paused = false;
        (void)rpc_stream_resume(c->stream);
    }
}

static size_t sink_write(Call *c, Sink *k, const uint8_t *data, size_t len)
{
    if (k->fd < 0)
        return len;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(k->fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && k->nonblock) {
            k->paused = true;
            if (!k->src &&
                rpc_loop_add_fd(c->loop, k->fd, EPOLLOUT, on_sink_writable, k, &k->src) < 0) {
                fail(c, EXIT_FRAMEWORK, "cannot watch %s", rpc_channel_name(k->ch));
                return len;
            }
            return done;
        }
        if (n < 0) {
            if (k->ch == RPC_CH_STDOUT && !c->local_pid) {
                /* Our reader went away (EPIPE): abandon the call, like a SIGPIPE would. */
                if (c->stream)
                    (void)rpc_stream_reset(c->stream, RPC_RESET_CANCEL, "caller's stdout closed");
                c->stream = NULL;
                finish(c, 128 + SIGPIPE);
                return len;
            }
            /* stderr unwritable, or --local's command stopped reading: drop the rest. */
            k->src = rpc_loop_source_free(k->src);
            if (k->fd > 2)
                close(k->fd);
            k->fd = -1;
            return len;
        }
        done += (size_t)n;
    }
    return done;
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static void cb_on_ready(RpcConn *conn, const RpcPeerInfo *peer, void *userdata)
{
    pump_in(userdata);
}

static size_t cb_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                         void *userdata)
{
    Call *c = userdata;
    return sink_write(c, ch == RPC_CH_STDERR ? &c->err : &c->out, data, len);
}

static void cb_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    Call *c = userdata;
    if (ch == RPC_CH_STDOUT && c->out.fd >= 0) {
        /* Pass the EOF on (pipelines, --local). */
        c->out.src = rpc_loop_source_free(c->out.src);
        close(c->out.fd);
        c->out.fd = -1;
    }
}

static void cb_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason,
                       void *userdata)
{
    Call *c = userdata;
    c->stream = NULL;
    /* The daemons' reasons start with "vrpc: " (they are written for any client); we
     * print our own prefix instead of stacking both. */
    if (reason && strncmp(reason, "vrpc: ", 6) == 0)
        reason += 6;
    if (reason && reason[0])
        fprintf(stderr, "vrpc-call: %s\n", reason);
    else if (refused)
        fprintf(stderr, "vrpc-call: call refused (%d)\n", code);
    int st = code < 0 || code > 255 ? EXIT_FRAMEWORK : code;
    finish(c, st);
}

static void cb_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                        void *userdata)
{
    Call *c = userdata;
    c->stream = NULL;
    if (code == RPC_RESET_CONN_CLOSED)
        fail(c, EXIT_FRAMEWORK, "connection to the vrpc daemon lost");
    else
        fail(c, EXIT_FRAMEWORK, "call reset (%s)%s%s", rpc_reset_code_name(code),
             reason && reason[0] ? ": " : "", reason ? reason : "");
}

static void cb_on_writable(RpcStream *s, void *userdata)
{
    Call *c = userdata;
    if (!c->in_eof)
        pump_in(c);
}

static void cb_on_stream_free(RpcStream *s, void *userdata)
{
    Call *c = userdata;
    if (c->stream == s)
        c->stream = NULL;
}

static void cb_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    Call *c = userdata;
    fail(c, EXIT_FRAMEWORK, "connection to the vrpc daemon lost (%s%s%s)",
         rpc_error_name(error), reason && reason[0] ? ": " : "", reason ? reason : "");
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

/* ---- setup ------------------------------------------------------------------------------- */

static void on_timeout(RpcLoopSource *src, void *userdata)
{
    Call *c = userdata;
    if (c->stream)
        (void)rpc_stream_reset(c->stream, RPC_RESET_CANCEL, "caller timed out");
    c->stream = NULL;
    fail(c, EXIT_FRAMEWORK, "timed out");
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vrpc-call [--socket PATH] [--timeout S] [--local CMD] TARGET "
            "SERVICE[+ARG]\n"
            "Call SERVICE in domain TARGET (a domain name, dom0, or @default) with stdin,\n"
            "stdout and stderr connected to the remote handler.\n"
            "  --socket PATH  the vrpc daemon's socket (default $VRPC_SOCKET, else\n"
            "                 " AGENT_SOCKET " if it exists, else " DISPATCHER_SOCKET ")\n"
            "  --timeout S    end the call after S seconds (exit 125, \"timed out\")\n"
            "  --local CMD    connect the remote handler to CMD (split on spaces, no shell)\n"
            "                 instead of our stdin and stdout\n"
            "Exit status: the handler's (128+N for signal N), 125 framework error,\n"
            "126 refused by policy, 127 service not found, 2 usage error.\n");
}

/* Decide the blocking mode of an fd we use: pipes and sockets become non-blocking (they
 * are ours alone in practice); ttys and files stay as they are. */
static bool make_nonblock(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode))
        return false;
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

static int split_cmd(char *cmd, char ***argvp)
{
    size_t n = 0, cap = 8;
    char **v = malloc(cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (char *save = NULL, *t = strtok_r(cmd, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n + 2 > cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return -ENOMEM;
            }
            v = nv;
        }
        v[n++] = t;
    }
    v[n] = NULL;
    if (n == 0) {
        free(v);
        return -EINVAL;
    }
    *argvp = v;
    return 0;
}

/* Start --local CMD: its stdout feeds the remote stdin, the remote stdout feeds its stdin. */
static int start_local(Call *c, char *cmd)
{
    char **argv = NULL;
    int to_child[2] = {-1, -1}, from_child[2] = {-1, -1};
    int r = split_cmd(cmd, &argv);
    if (r < 0)
        return r;
    if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0) {
        r = -errno;
        goto out;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    r = -posix_spawnp(&c->local_pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r < 0)
        goto out;
    close(to_child[0]);
    close(from_child[1]);
    c->in_fd = from_child[0];
    c->out.fd = to_child[1];
    to_child[0] = to_child[1] = from_child[0] = from_child[1] = -1;
out:
    for (int i = 0; i < 2; i++) {
        if (to_child[i] >= 0)
            close(to_child[i]);
        if (from_child[i] >= 0)
            close(from_child[i]);
    }
    free(argv);
    return r;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
        {"local", required_argument, NULL, 'l'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *sock = NULL;
    char *local = NULL;
    double timeout = 0;
    int o;
    opterr = 0; /* one line of our own for a bad option */
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            sock = optarg;
            break;
        case 't': {
            char *end;
            timeout = strtod(optarg, &end);
            if (end == optarg || *end || !(timeout > 0) || timeout > 1e6 || isnan(timeout)) {
                fprintf(stderr, "vrpc-call: --timeout: a number of seconds > 0\n");
                return 2;
            }
            break;
        }
        case 'l':
            local = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("vrpc-call (vrpc) %s\n", VRPC_VERSION);
            return 0;
        default:
            fprintf(stderr, "vrpc-call: unknown option or missing value '%s' (try --help)\n",
                    VRPC_ESC(argv[optind - 1]));
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "vrpc-call: need exactly TARGET and SERVICE[+ARG] (try --help)\n");
        return 2;
    }
    const char *target = argv[optind];
    char service[RPC_SERVICE_MAX + RPC_ARG_MAX + 2];
    if (strlen(argv[optind + 1]) >= sizeof service) {
        fprintf(stderr, "vrpc-call: service name too long\n");
        return 2;
    }
    strcpy(service, argv[optind + 1]);
    char *plus = strchr(service, '+');
    const char *arg = "";
    if (plus) {
        *plus = '\0';
        arg = plus + 1;
    }
    if (!rpc_valid_service(service) || !rpc_valid_argument(arg)) {
        fprintf(stderr, "vrpc-call: invalid service name '%s'\n", VRPC_ESC(argv[optind + 1]));
        return 2;
    }
    if (!target[0] || !rpc_valid_target(target)) {
        fprintf(stderr, "vrpc-call: invalid target '%s'\n", VRPC_ESC(target));
        return 2;
    }
    if (!sock || !sock[0]) {
        sock = getenv("VRPC_SOCKET");
        if (!sock || !sock[0])
            sock = access(AGENT_SOCKET, F_OK) == 0 ? AGENT_SOCKET : DISPATCHER_SOCKET;
    }

    signal(SIGPIPE, SIG_IGN);
    static Call call;
    Call *c = &call;
    c->status = -1;
    c->in_fd = 0;
    c->out = (Sink){.fd = 1, .ch = RPC_CH_STDOUT};
    c->err = (Sink){.fd = 2, .ch = RPC_CH_STDERR};
    if (local) {
        int r = start_local(c, local);
        if (r < 0) {
            fprintf(stderr, "vrpc-call: cannot run '%s': %s\n", local, strerror(-r));
            return EXIT_FRAMEWORK;
        }
    }
    c->out.nonblock = make_nonblock(c->out.fd);
    c->err.nonblock = make_nonblock(c->err.fd);
    c->in_nonblock = make_nonblock(c->in_fd);

    int fd = rpc_unix_connect(sock);
    if (fd < 0) {
        fprintf(stderr, "vrpc-call: cannot connect to %s: %s\n", sock, strerror(-fd));
        return EXIT_FRAMEWORK;
    }
    int r;
    RpcConnConfig cfg;
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_INITIATOR;
    cfg.keepalive_ms = 0;
    if ((r = rpc_loop_new(&c->loop)) < 0 ||
        (r = rpc_conn_new_fd(&c->conn, fd, true, &cfg, &callbacks, c)) < 0 ||
        (r = rpc_conn_attach(c->conn, c->loop)) < 0) {
        fprintf(stderr, "vrpc-call: cannot set up: %s\n", strerror(-r));
        return EXIT_FRAMEWORK;
    }
    RpcCall rc = {.service = service, .argument = arg, .target = target};
    r = rpc_stream_open(c->conn, &rc, &c->stream);
    if (r < 0) {
        fprintf(stderr, "vrpc-call: cannot open the call: %s\n", strerror(-r));
        return EXIT_FRAMEWORK;
    }
    rpc_stream_set_userdata(c->stream, c);

    /* epoll refuses regular files: those are read whenever the stream has credit. */
    RpcLoopSource *probe = NULL;
    if (rpc_loop_add_fd(c->loop, c->in_fd, EPOLLIN, on_in_ready, c, &probe) == 0) {
        c->in_pollable = true;
        rpc_loop_source_free(probe);
    } else if (rpc_loop_add_defer(c->loop, on_in_defer, c, &c->in_defer) < 0) {
        fprintf(stderr, "vrpc-call: cannot watch stdin\n");
        return EXIT_FRAMEWORK;
    }
    RpcLoopSource *timer = NULL;
    if (timeout > 0 &&
        rpc_loop_add_timer(c->loop, (int64_t)ceil(timeout * 1000), on_timeout, c, &timer) < 0) {
        fprintf(stderr, "vrpc-call: cannot set the timeout\n");
        return EXIT_FRAMEWORK;
    }

    r = rpc_loop_run(c->loop);
    if (r < 0 && !c->done)
        fail(c, EXIT_FRAMEWORK, "event loop failed: %s", strerror(-r));

    int status = c->status;
    if (c->stream) {
        (void)rpc_stream_reset(c->stream, RPC_RESET_CANCEL, "caller exiting");
        c->stream = NULL;
    }
    rpc_loop_source_free(timer);
    in_close(c);
    c->out.src = rpc_loop_source_free(c->out.src);
    c->err.src = rpc_loop_source_free(c->err.src);
    if (c->out.fd > 2)
        close(c->out.fd);
    rpc_conn_free(c->conn);
    rpc_loop_free(c->loop);
    if (c->local_pid > 0) {
        int st = 0;
        while (waitpid(c->local_pid, &st, 0) < 0 && errno == EINTR)
            ;
        int lcode = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (status == 0)
            status = lcode;
    }
    return status < 0 ? EXIT_FRAMEWORK : status;
}
