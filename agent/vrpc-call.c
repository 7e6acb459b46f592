/* SPDX-License-Identifier: MIT */
/*
 * vrpc-call - call a vrpc service in another domain. A thin program on libvrpc's streaming
 * API (vrpc/vrpc.h): one VrpcClient to the local vrpc daemon (the agent in a guest, the
 * dispatcher in dom0), one VrpcCall, and a poll(2) loop connecting its stdin, stdout and
 * stderr (or a local command's, with --local) to the remote handler, binary-safe and with
 * backpressure both ways: stdin is read only while the call has send room, remote output is
 * taken from the library only as fast as our stdout takes it (the library holds the handler
 * back meanwhile). Exits with the handler's status, or 125 (framework error), 126
 * (refused), 127 (not found) with a one-line reason.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/escape.h"
#include "vrpc/vrpc.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

#define EXIT_FRAMEWORK VRPC_EXIT_FRAMEWORK
#define CHUNK (64u * 1024u)
/* Longest SERVICE+ARG (librpc's limits: 64 + '+' + 64). */
#define SERVICE_ARG_MAX (64 + 1 + 64)

extern char **environ;

/* Where remote output goes (fd 1 / fd 2, or the pipe to --local's stdin). */
typedef struct Sink {
    int fd;        /* -1: dropped (output read and discarded) */
    bool nonblock; /* we may get EAGAIN: poll for POLLOUT */
    bool blocked;  /* the last write met EAGAIN */
    bool eof;      /* the channel's EOF was seen */
    VrpcChannel ch;
    uint8_t buf[CHUNK]; /* taken from the call, not yet written */
    size_t off, len;
} Sink;

typedef struct Call {
    VrpcClient *client;
    VrpcCall *call;
    int in_fd;        /* what we send as the remote stdin */
    bool in_nonblock; /* else read once per readiness (a tty would block) */
    bool in_ready;    /* poll said readable */
    bool in_eof;
    Sink out, err;
    pid_t local_pid;
    int status; /* exit status once done, -1 before */
    bool done;
} Call;

__attribute__((format(printf, 3, 4))) static void fail(Call *c, int status, const char *fmt, ...)
{
    if (c->done)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("vrpc-call: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    c->done = true;
    c->status = status;
}

/* Abandon the call: the daemon stops the handler; the caller decides our status. */
static void cancel(Call *c, const char *why)
{
    (void)vrpc_call_cancel(c->call, why);
}

/* ---- stdin -> call ------------------------------------------------------------------------ */

static void in_close(Call *c)
{
    c->in_eof = true;
    (void)vrpc_call_close_stdin(c->call);
    if (c->in_fd > 2)
        close(c->in_fd);
    c->in_fd = -1;
}

/* Returns true when stdin wants a POLLIN watch. */
static bool pump_in(Call *c)
{
    static uint8_t buf[CHUNK];

    for (int burst = 0; burst < 8 && !c->in_eof && !c->done; burst++) {
        ssize_t w = vrpc_call_write_space(c->call);
        if (w < 0) {
            /* The handler side is gone or half-closed: nothing more to send. */
            in_close(c);
            return false;
        }
        if (w == 0)
            return false; /* the library wakes us when there is room */
        if (!c->in_nonblock && !c->in_ready)
            return true;
        ssize_t n = read(c->in_fd, buf, (size_t)w < sizeof buf ? (size_t)w : sizeof buf);
        c->in_ready = false;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        if (n <= 0) {
            in_close(c);
            return false;
        }
        ssize_t wr = vrpc_call_write(c->call, buf, (size_t)n);
        if (wr != n) {
            cancel(c, "caller lost stdin data");
            fail(c, EXIT_FRAMEWORK, "lost stdin data (%zd of %zd bytes taken)", wr, n);
            return false;
        }
    }
    return !c->in_eof && !c->done;
}

/* ---- call -> stdout/stderr ------------------------------------------------------------------ */

/* Write what the sink holds. Returns false when the call was abandoned. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool sink_flush(Call *c, Sink *k)
{
    while (k->len && k->fd >= 0) {
        ssize_t n = write(k->fd, k->buf + k->off, k->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && k->nonblock) {
            k->blocked = true;
            return true;
        }
        if (n < 0) {
            if (k->ch == VRPC_STDOUT && !c->local_pid) {
                /* Our reader went away (EPIPE): abandon the call, like a SIGPIPE would. */
                cancel(c, "caller's stdout closed");
                c->done = true;
                c->status = 128 + SIGPIPE;
                return false;
            }
            /* stderr unwritable, or --local's command stopped reading: drop the rest. */
            if (k->fd > 2)
                close(k->fd);
            k->fd = -1;
            break;
        }
        k->off += (size_t)n;
        k->len -= (size_t)n;
    }
    k->blocked = false;
    k->off = k->len = 0;
    return true;
}

/* Move remote output to the sink's fd while it takes it. Returns true if it wants POLLOUT. */
static bool pump_out(Call *c, Sink *k)
{
    while (!c->done) {
        if (!sink_flush(c, k))
            return false;
        if (k->blocked)
            return true;
        if (k->eof)
            return false;
        ssize_t n = vrpc_call_read(c->call, k->ch, k->buf, sizeof k->buf);
        if (n == -EAGAIN)
            return false;
        if (n <= 0) {
            k->eof = true;
            if (k->ch == VRPC_STDOUT && k->fd >= 0) {
                /* Pass the EOF on (pipelines, --local). */
                close(k->fd);
                k->fd = -1;
            }
            return false;
        }
        k->len = (size_t)n;
    }
    return false;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-call [--socket PATH] [--timeout S] [--local CMD] TARGET "
               "SERVICE[+ARG]\n"
               "Call SERVICE in domain TARGET (a domain name, dom0, or @default) with stdin,\n"
               "stdout and stderr connected to the remote handler.\n"
               "  --socket PATH  the vrpc daemon's socket (default $VRPC_SOCKET, else\n"
               "                 " VRPC_AGENT_SOCKET " if it exists, else " VRPC_DISPATCHER_SOCKET
               ")\n"
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
    const char *service = argv[optind + 1];
    if (strlen(service) > SERVICE_ARG_MAX) {
        fprintf(stderr, "vrpc-call: service name too long\n");
        return 2;
    }
    if (!vrpc_service_valid(service)) {
        fprintf(stderr, "vrpc-call: invalid service name '%s'\n", VRPC_ESC(service));
        return 2;
    }
    if (!vrpc_target_valid(target)) {
        fprintf(stderr, "vrpc-call: invalid target '%s'\n", VRPC_ESC(target));
        return 2;
    }
    if (!sock || !sock[0])
        sock = vrpc_default_socket();

    signal(SIGPIPE, SIG_IGN);
    static Call call;
    Call *c = &call;
    c->status = -1;
    c->in_fd = 0;
    c->out.fd = 1;
    c->out.ch = VRPC_STDOUT;
    c->err.fd = 2;
    c->err.ch = VRPC_STDERR;
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

    int r = vrpc_client_new(&c->client, sock);
    if (r < 0) {
        fprintf(stderr, "vrpc-call: cannot connect to %s: %s\n", sock, strerror(-r));
        return EXIT_FRAMEWORK;
    }
    r = vrpc_call_open(c->client, target, service, &c->call);
    if (r < 0) {
        fprintf(stderr, "vrpc-call: cannot open the call: %s\n", strerror(-r));
        return EXIT_FRAMEWORK;
    }
    int64_t deadline = timeout > 0 ? now_ms() + (int64_t)ceil(timeout * 1000) : -1;

    while (!c->done) {
        struct pollfd p[4] = {{.fd = vrpc_client_fd(c->client), .events = POLLIN}};
        nfds_t np = 1;
        int in_i = -1, out_i = -1, err_i = -1;
        if (pump_out(c, &c->out)) {
            out_i = (int)np;
            p[np++] = (struct pollfd){.fd = c->out.fd, .events = POLLOUT};
        }
        if (pump_out(c, &c->err)) {
            err_i = (int)np;
            p[np++] = (struct pollfd){.fd = c->err.fd, .events = POLLOUT};
        }
        if (pump_in(c)) {
            in_i = (int)np;
            p[np++] = (struct pollfd){.fd = c->in_fd, .events = POLLIN};
        }
        if (c->done)
            break;
        int ec;
        if (vrpc_call_exit_code(c->call, &ec) == 0 && c->out.eof && c->err.eof && !c->out.len &&
            !c->err.len) {
            /* ended, and every byte that came before the end is out */
            const char *reason = vrpc_call_reason(c->call);
            if (reason)
                fprintf(stderr, "vrpc-call: %s\n", reason);
            c->done = true;
            c->status = ec;
            break;
        }
        int wait = vrpc_client_timeout_ms(c->client);
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                cancel(c, "caller timed out");
                fail(c, EXIT_FRAMEWORK, "timed out");
                break;
            }
            if (wait < 0 || left < wait)
                wait = left > 1000000 ? 1000000 : (int)left;
        }
        if (poll(p, np, wait) < 0 && errno != EINTR) {
            fail(c, EXIT_FRAMEWORK, "event loop failed: %s", strerror(errno));
            break;
        }
        if (in_i >= 0 && p[in_i].revents)
            c->in_ready = true;
        if (out_i >= 0 && p[out_i].revents)
            c->out.blocked = false;
        if (err_i >= 0 && p[err_i].revents)
            c->err.blocked = false;
        (void)vrpc_client_dispatch(c->client);
    }

    int status = c->status;
    vrpc_call_free(c->call);
    vrpc_client_free(c->client);
    if (!c->in_eof && c->in_fd > 2)
        close(c->in_fd);
    if (c->out.fd > 2)
        close(c->out.fd);
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
