/* SPDX-License-Identifier: MIT */
/*
 * bench-vchan.c - `vrpc-bench vchan`: in one run, side by side, vrpc's vchan, Debian's real
 * libxenvchan, a pipe and a Unix socketpair. Throughput of --bytes (default 1 GiB) at ring
 * sizes 2K/64K/256K/1M and write sizes 4K/64K, and the 64-byte request/response round trip
 * (p50, p99). The two vchan contenders run as two guests of a private vrpc-sim instance that
 * the benchmark brings up and tears down: it re-executes itself under `vrpc-sim exec` as a
 * hidden peer subcommand. Pipe and socketpair run between a forked pair of processes, sized
 * to the ring (F_SETPIPE_SZ, SO_SNDBUF; kernel minimums apply). Every contender does the same
 * work: the sender writes chunks of the write size from one buffer, the receiver copies
 * everything into its own buffer of that size, then acknowledges with one byte; the sender's
 * clock runs from its first write to the ack. Medians over --reps repetitions are printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libxenvchan.h>

#include "bench-util.h"
#include "bench-vchan.h"
#include "vchan/vchan.h"

#ifndef VRPC_SIM_BIN
#define VRPC_SIM_BIN "vrpc-sim"
#endif

#define MAX_REPS 50
#define RTT_MSG 64

enum { C_OURS, C_XEN, C_PIPE, C_SOCK, C_COUNT };
static const char *const cname[C_COUNT] = {"ours", "libxenvchan", "pipe", "socketpair"};
static const size_t rings[] = {2048, 65536, 262144, 1048576};
static const size_t wsizes[] = {4096, 65536};
#define NRINGS (sizeof(rings) / sizeof(rings[0]))
#define NWS (sizeof(wsizes) / sizeof(wsizes[0]))

/* ---- one endpoint, abstracted over the four transports ---- */

typedef struct End {
    int kind;
    Vchan *ours;
    struct libxenvchan *xen;
    int rfd, wfd; /* pipe / socket */
} End;

static ssize_t end_write_all(End *e, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    size_t done = 0;

    switch (e->kind) {
    case C_OURS:
        return vchan_write_full(e->ours, buf, n, NULL, -1) == 0 ? (ssize_t)n : -1;
    case C_XEN:
        return libxenvchan_write(e->xen, buf, n) == (int)n ? (ssize_t)n : -1;
    default:
        while (done < n) {
            ssize_t w = write(e->wfd, p + done, n - done);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            done += (size_t)w;
        }
        return (ssize_t)n;
    }
}

/* Read what is there, at least one byte, at most @n: > 0, or -1 (closed/error). */
static ssize_t end_read_some(End *e, void *buf, size_t n)
{
    for (;;) {
        ssize_t r;

        switch (e->kind) {
        case C_OURS:
            /* the blocking pattern of vchan.h: wait (spins without arming a notification,
             * returns at once when data is there), then read */
            if (vchan_wait_readable(e->ours, 1, -1) < 0)
                return -1;
            r = vchan_read(e->ours, buf, n);
            if (r == -EAGAIN)
                continue;
            return r > 0 ? r : -1;
        case C_XEN:
            r = libxenvchan_read(e->xen, buf, n);
            return r > 0 ? r : -1;
        default:
            r = read(e->rfd, buf, n);
            if (r < 0 && errno == EINTR)
                continue;
            return r > 0 ? r : -1;
        }
    }
}

static int end_read_all(End *e, void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t done = 0;

    while (done < n) {
        ssize_t r = end_read_some(e, p + done, n - done);

        if (r < 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/* Sender: @bytes in @wsize chunks, then wait for the ack. Returns ns, 0 on failure. */
static uint64_t run_send(End *e, unsigned long long bytes, size_t wsize)
{
    uint8_t *buf = malloc(wsize);
    unsigned long long done = 0;
    uint64_t t0;
    char ack;

    if (!buf)
        return 0;
    memset(buf, 0x5a, wsize);
    t0 = bench_now_ns();
    while (done < bytes) {
        size_t n = bytes - done < wsize ? (size_t)(bytes - done) : wsize;

        if (end_write_all(e, buf, n) < 0) {
            free(buf);
            return 0;
        }
        done += n;
    }
    if (end_read_all(e, &ack, 1) < 0)
        t0 = bench_now_ns() + 1; /* reported as a failure below */
    free(buf);
    return bench_now_ns() - t0;
}

/* Receiver: copy @bytes out into a @wsize buffer, then ack. */
static int run_recv(End *e, unsigned long long bytes, size_t wsize)
{
    uint8_t *buf = malloc(wsize);
    unsigned long long done = 0;
    volatile uint8_t sink = 0;

    if (!buf)
        return -1;
    while (done < bytes) {
        ssize_t r = end_read_some(e, buf, wsize);

        if (r < 0) {
            free(buf);
            return -1;
        }
        sink ^= buf[r - 1]; /* the copy is used */
        done += (unsigned long long)r;
    }
    free(buf);
    (void)sink;
    return end_write_all(e, "k", 1) == 1 ? 0 : -1;
}

/* Ping: @count 64-byte round trips; fills @lat (ns). */
static int run_ping(End *e, int count, uint64_t *lat)
{
    uint8_t msg[RTT_MSG], back[RTT_MSG];

    memset(msg, 0x33, sizeof(msg));
    for (int i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();

        if (end_write_all(e, msg, sizeof(msg)) < 0 || end_read_all(e, back, sizeof(back)) < 0)
            return -1;
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

static int run_echo(End *e, int count)
{
    uint8_t msg[RTT_MSG];

    for (int i = 0; i < count; i++)
        if (end_read_all(e, msg, sizeof(msg)) < 0 || end_write_all(e, msg, sizeof(msg)) < 0)
            return -1;
    return 0;
}

/* Print the result line of a measuring end. */
static int report_ping(End *e, int count)
{
    uint64_t *lat = calloc((size_t)count, sizeof(*lat));
    char line[64];
    int rc = -1;

    if (lat && run_ping(e, count, lat) == 0) {
        bench_format_rtt(line, sizeof(line), lat, count);
        fputs(line, stdout);
        rc = 0;
    }
    free(lat);
    return rc;
}

static int run_role(End *e, const char *mode, unsigned long long bytes, size_t wsize, int count)
{
    if (strcmp(mode, "send") == 0) {
        uint64_t ns = run_send(e, bytes, wsize);

        if (ns == 0)
            return -1;
        printf("ns %" PRIu64 "\n", ns);
        return 0;
    }
    if (strcmp(mode, "recv") == 0)
        return run_recv(e, bytes, wsize);
    if (strcmp(mode, "ping") == 0)
        return report_ping(e, count);
    if (strcmp(mode, "echo") == 0)
        return run_echo(e, count);
    return -1;
}

/* ---- the hidden peer: one vchan end inside a sim domain ----
 * __peer ours|xen server|client DOMID PATH MODE RING WSIZE BYTES COUNT */
static int peer_main(int argc, char **argv)
{
    End e = {.rfd = -1, .wfd = -1};
    bool server;
    int domid, rc;
    size_t ring, wsize;
    unsigned long long bytes;
    int count;

    if (argc != 11)
        return 2;
    e.kind = strcmp(argv[2], "ours") == 0 ? C_OURS : C_XEN;
    server = strcmp(argv[3], "server") == 0;
    domid = atoi(argv[4]);
    ring = strtoull(argv[7], NULL, 0);
    wsize = strtoull(argv[8], NULL, 0);
    bytes = strtoull(argv[9], NULL, 0);
    count = atoi(argv[10]);

    if (e.kind == C_OURS) {
        rc = server ? vchan_server_new(&e.ours, domid, argv[5], ring, ring)
                    : vchan_client_new_wait(&e.ours, domid, argv[5], 20000);
        if (rc < 0) {
            fprintf(stderr, "bench peer: vchan %s: %s\n", argv[3], strerror(-rc));
            return 1;
        }
        /* the server starts once the client is there */
        if (server && bench_vchan_wait_client(e.ours, 20000) < 0)
            return 1;
    } else {
        if (server) {
            e.xen = libxenvchan_server_init(NULL, domid, argv[5], ring, ring);
        } else {
            for (int i = 0; i < 2000 && !e.xen; i++) {
                e.xen = libxenvchan_client_init(NULL, domid, argv[5]);
                if (!e.xen)
                    usleep(10000);
            }
        }
        if (!e.xen) {
            fprintf(stderr, "bench peer: libxenvchan %s failed\n", argv[3]);
            return 1;
        }
        e.xen->blocking = 1;
        if (server && libxenvchan_wait(e.xen) < 0)
            return 1;
    }
    rc = run_role(&e, argv[6], bytes, wsize, count);
    fflush(stdout);
    if (e.kind == C_OURS) {
        vchan_flush(e.ours, 5000);
        if (getenv("VRPC_BENCH_STATS")) { /* debugging aid: how the waits went */
            VchanStats st;

            vchan_get_stats(e.ours, &st);
            fprintf(stderr,
                    "bench peer %s %s: events sent %" PRIu64 " consumed %" PRIu64
                    ", spin wins %" PRIu64 ", sleeps %" PRIu64 " (after a spin %" PRIu64
                    "), spun %" PRIu64 " us\n",
                    argv[3], argv[6], st.events_sent, st.events_consumed, st.spin_wins, st.sleeps,
                    st.spin_losses, st.spin_ns / 1000);
        }
        vchan_free(e.ours);
    } else {
        libxenvchan_close(e.xen);
    }
    return rc < 0 ? 1 : 0;
}

/* ---- the driver ---- */

typedef struct Cfg {
    BenchOpts opt; /* sim, bytes, reps, rtt (and --local) */
    const char *self;
    char ns[64];
    unsigned path_seq;
} Cfg;

/* One vchan run: server (domain 1) does @smode, client (domain 2) @cmode. Returns the output
 * of the measuring end (@measure_server), or NULL. */
static char *vchan_run(Cfg *cfg, int kind, const char *smode, const char *cmode,
                       bool measure_server, size_t ring, size_t wsize, int count)
{
    char path[64], abspath[96], sring[24], sws[24], sbytes[24], scount[24];
    const char *impl = kind == C_OURS ? "ours" : "xen";
    char *so, *co;

    snprintf(path, sizeof(path), "data/bench/%u", ++cfg->path_seq);
    snprintf(abspath, sizeof(abspath), "/local/domain/1/%s", path);
    snprintf(sring, sizeof(sring), "%zu", ring);
    snprintf(sws, sizeof(sws), "%zu", wsize);
    snprintf(sbytes, sizeof(sbytes), "%llu", cfg->opt.bytes);
    snprintf(scount, sizeof(scount), "%d", count);
    {
        char *sargv[] = {(char *)cfg->opt.sim,
                         "exec",
                         "--ns",
                         cfg->ns,
                         "bencha",
                         "--",
                         (char *)cfg->self,
                         "vchan",
                         "__peer",
                         (char *)impl,
                         "server",
                         "2",
                         path,
                         (char *)smode,
                         sring,
                         sws,
                         sbytes,
                         scount,
                         NULL};
        char *cargv[] = {(char *)cfg->opt.sim,
                         "exec",
                         "--ns",
                         cfg->ns,
                         "benchb",
                         "--",
                         (char *)cfg->self,
                         "vchan",
                         "__peer",
                         (char *)impl,
                         "client",
                         "1",
                         abspath,
                         (char *)cmode,
                         sring,
                         sws,
                         sbytes,
                         scount,
                         NULL};

        if (bench_run_pair(sargv, cargv, &so, &co) < 0)
            return NULL;
    }
    if (measure_server) {
        free(co);
        return so;
    }
    free(so);
    return co;
}

/* Pipe or socketpair run in a forked pair; the parent measures. */
static char *local_run(Cfg *cfg, int kind, bool rtt, size_t ring, size_t wsize, int count)
{
    int a[2], b[2], out[2];
    End pe = {.kind = kind}, ce = {.kind = kind};
    pid_t pid;
    char *res;
    int fd;

    if (kind == C_PIPE) {
        if (pipe(a) < 0 || pipe(b) < 0)
            return NULL;
        fcntl(a[1], F_SETPIPE_SZ, (int)(ring < 4096 ? 4096 : ring));
        fcntl(b[1], F_SETPIPE_SZ, (int)(ring < 4096 ? 4096 : ring));
        /* parent writes a[1], reads b[0]; child reads a[0], writes b[1] */
        pe.wfd = a[1], pe.rfd = b[0], ce.rfd = a[0], ce.wfd = b[1];
    } else {
        int sz = (int)ring;

        if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0)
            return NULL;
        for (int i = 0; i < 2; i++) {
            setsockopt(a[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
            setsockopt(a[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
        pe.wfd = pe.rfd = a[0];
        ce.wfd = ce.rfd = a[1];
        b[0] = b[1] = -1;
    }
    if (pipe(out) < 0)
        return NULL;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int rc = rtt ? run_echo(&ce, count) : run_recv(&ce, cfg->opt.bytes, wsize);

        _exit(rc < 0 ? 1 : 0);
    }
    close(ce.rfd);
    if (ce.wfd != ce.rfd)
        close(ce.wfd);
    /* the parent's report goes through a pipe like a peer's stdout */
    fd = dup(1);
    dup2(out[1], 1);
    close(out[1]);
    if (run_role(&pe, rtt ? "ping" : "send", cfg->opt.bytes, wsize, count) < 0)
        printf("failed\n");
    fflush(stdout);
    dup2(fd, 1);
    close(fd);
    close(pe.wfd);
    if (pe.rfd != pe.wfd)
        close(pe.rfd);
    res = bench_slurp(out[0]);
    if (bench_wait_ok(pid) < 0) {
        free(res);
        return NULL;
    }
    return res;
}

static char *one_run(Cfg *cfg, int kind, bool rtt, size_t ring, size_t wsize)
{
    if (kind == C_PIPE || kind == C_SOCK)
        return local_run(cfg, kind, rtt, ring, wsize, cfg->opt.rtt);
    if (rtt) /* the client pings and measures */
        return vchan_run(cfg, kind, "echo", "ping", false, ring, wsize, cfg->opt.rtt);
    return vchan_run(cfg, kind, "send", "recv", true, ring, wsize, cfg->opt.rtt);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-bench vchan [--bytes N] [--reps N] [--rtt N] [--sim PATH]\n"
               "  Throughput of N bytes (default 1 GiB) per run at rings 2K/64K/256K/1M and\n"
               "  writes of 4K/64K, and N (default 20000) 64-byte round trips, for vrpc's\n"
               "  vchan, Debian's libxenvchan (both over a private vrpc-sim instance), a pipe\n"
               "  and a socketpair. Medians of --reps (default 3) repetitions.\n");
}

static const char *human(size_t n, char *buf, size_t len)
{
    if (n >= 1048576)
        snprintf(buf, len, "%zuM", n / 1048576);
    else
        snprintf(buf, len, "%zuK", n / 1024);
    return buf;
}

int bench_vchan_main(int argc, char **argv)
{
    static uint64_t tput[C_COUNT][NRINGS][NWS];
    uint64_t p50[C_COUNT], p99[C_COUNT];
    static const char *const guests[] = {"bencha", "benchb", NULL};
    char selfbuf[PATH_MAX];
    int rc;
    Cfg cfg = {.opt = {.sim = VRPC_SIM_BIN, .bytes = 1ull << 30, .reps = 3, .rtt = 20000}};
    bool failed = false;

    if (argc >= 2 && strcmp(argv[1], "__peer") == 0)
        return peer_main(argc, argv);
    rc = bench_parse_opts("vchan", argc, argv, &cfg.opt, false, 65536, MAX_REPS, usage);
    if (rc >= 0)
        return rc;
    rc = bench_self_exe(selfbuf, sizeof(selfbuf));
    if (rc < 0) {
        fprintf(stderr, "vrpc-bench vchan: /proc/self/exe: %s\n", strerror(-rc));
        return 1;
    }
    cfg.self = selfbuf;
    snprintf(cfg.ns, sizeof(cfg.ns), "vrpc-bench-%d", (int)getpid());
    signal(SIGPIPE, SIG_IGN);
    if (bench_sim_up(cfg.opt.sim, cfg.ns, guests) < 0) {
        fprintf(stderr, "vrpc-bench vchan: cannot bring up a sim instance with %s\n", cfg.opt.sim);
        return 1;
    }

    printf("vrpc-bench vchan: %llu bytes per throughput run, %d round trips, median of %d\n",
           cfg.opt.bytes, cfg.opt.rtt, cfg.opt.reps);
    fflush(stdout);
    for (int k = 0; k < C_COUNT; k++) {
        uint64_t a[MAX_REPS], b[MAX_REPS];

        for (size_t r = 0; r < NRINGS; r++) {
            for (size_t w = 0; w < NWS; w++) {
                uint64_t v[MAX_REPS];

                for (int rep = 0; rep < cfg.opt.reps; rep++) {
                    char *out = one_run(&cfg, k, false, rings[r], wsizes[w]);
                    unsigned long long ns = 0;

                    if (!out || sscanf(out, "ns %llu", &ns) != 1 || ns == 0) {
                        fprintf(stderr, "vrpc-bench vchan: %s throughput run failed\n", cname[k]);
                        failed = true;
                    }
                    v[rep] = ns;
                    free(out);
                }
                tput[k][r][w] = bench_median_u64(v, cfg.opt.reps);
            }
        }
        for (int rep = 0; rep < cfg.opt.reps; rep++) {
            char *out = one_run(&cfg, k, true, 65536, RTT_MSG);
            unsigned long long x = 0, y = 0;

            if (!out || sscanf(out, "rtt %llu %llu", &x, &y) != 2) {
                fprintf(stderr, "vrpc-bench vchan: %s round-trip run failed\n", cname[k]);
                failed = true;
            }
            a[rep] = x;
            b[rep] = y;
            free(out);
        }
        p50[k] = bench_median_u64(a, cfg.opt.reps);
        p99[k] = bench_median_u64(b, cfg.opt.reps);
    }
    bench_sim_down(cfg.opt.sim, cfg.ns);

    printf("\nthroughput, GB/s (10^9 bytes/s)\n");
    printf("%-5s %-5s %9s %12s %9s %11s %11s\n", "ring", "write", "ours", "libxenvchan", "pipe",
           "socketpair", "ours/xen");
    for (size_t r = 0; r < NRINGS; r++) {
        for (size_t w = 0; w < NWS; w++) {
            char rb[16], wb[16];
            double g[C_COUNT];

            for (int k = 0; k < C_COUNT; k++)
                g[k] = tput[k][r][w] ? (double)cfg.opt.bytes / (double)tput[k][r][w] : 0;
            printf("%-5s %-5s %9.2f %12.2f %9.2f %11.2f %10.2fx\n", human(rings[r], rb, sizeof(rb)),
                   human(wsizes[w], wb, sizeof(wb)), g[C_OURS], g[C_XEN], g[C_PIPE], g[C_SOCK],
                   g[C_XEN] > 0 ? g[C_OURS] / g[C_XEN] : 0);
        }
    }
    printf("\n64-byte round trip, us\n%-12s %9s %9s\n", "", "p50", "p99");
    for (int k = 0; k < C_COUNT; k++)
        printf("%-12s %9.2f %9.2f\n", cname[k], (double)p50[k] / 1000, (double)p99[k] / 1000);
    if (p50[C_OURS] && p50[C_XEN])
        printf("ours/libxenvchan p50 %.3f, p99 %.3f\n", (double)p50[C_OURS] / (double)p50[C_XEN],
               (double)p99[C_OURS] / (double)p99[C_XEN]);
    fflush(stdout);
    return failed ? 1 : 0;
}
