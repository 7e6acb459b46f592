/* SPDX-License-Identifier: MIT */
/*
 * bench-calls.c - `vrpc-bench calls`: what a whole vrpc call costs, end to end, on the sim.
 * The benchmark brings up a private instance with vrpc (`vrpc-sim up --vrpc`, guests
 * bencha and benchb, the shipped example configuration) and re-executes itself inside guest
 * bencha as a caller that speaks librpc to the local agent, exactly as vrpc-call does, but
 * without paying a process start per call. Each figure is printed with its ratio to the
 * floor: spawning the same service binary locally (posix_spawn + wait, stdio on pipes) in
 * the same run, in the sim's dom0 (under `vrpc-sim exec`, so with the environment the
 * dispatcher's handlers inherit), re-measured in every rep right before the call rows.
 * Measured: call latency p50/p99 of vrpc.Ping and demo.Echo (64 bytes) guest to dom0, guest
 * to guest, and a denied call; the vchan events (both directions) between the dispatcher and bencha's agent per
 * vrpc.Ping, from the dispatcher's counters (`stats` on its control socket); streaming
 * throughput through demo.Echo guest to dom0 and guest to guest beside a local `cat | cat`
 * pipeline of the same bytes; and N concurrent calls on one connection.
 */
#include "bench-calls.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-guest.h"
#include "bench-report.h"
#include "bench-util.h"
#include "librpc/rpc.h"

#ifndef VRPC_SIM_BIN
#define VRPC_SIM_BIN "vrpc-sim"
#endif
#ifndef VRPC_EXAMPLE_ETC
#define VRPC_EXAMPLE_ETC "/etc/vrpc"
#endif

extern char **environ;

/* ---- the floor: the service binary spawned locally ------------------------------------ */

/* posix_spawn @path with stdin from a pipe we close at once (after writing @in_len bytes
 * of @in), read its stdout to EOF, wait. Returns ns, or 0 on failure. */
static uint64_t spawn_once(const char *path, const void *in, size_t in_len)
{
    int pin[2], pout[2];
    posix_spawn_file_actions_t fa;
    char *argv[] = {(char *)path, NULL};
    char buf[4096];
    uint64_t t0 = bench_now_ns();
    pid_t pid;
    ssize_t n;

    if (pipe2(pin, O_CLOEXEC) < 0)
        return 0;
    if (pipe2(pout, O_CLOEXEC) < 0) {
        close(pin[0]);
        close(pin[1]);
        return 0;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    if (posix_spawn(&pid, path, &fa, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    if (in_len && pid > 0 && write(pin[1], in, in_len) != (ssize_t)in_len)
        pid = pid > 0 ? pid : -1;
    close(pin[1]);
    while ((n = read(pout[0], buf, sizeof(buf))) > 0)
        ;
    close(pout[0]);
    if (bench_wait_ok(pid) < 0)
        return 0;
    return bench_now_ns() - t0;
}

/* Stream @bytes through a chain of @nprogs locally spawned programs @progs (each without
 * arguments, the first reading our pipe, each writing the next one's stdin, the last writing
 * back to us): demo.Echo alone, or `cat | cat`. GB/s, or 0 on failure. */
static double spawn_stream(const char *const *progs, int nprogs, unsigned long long bytes)
{
    static uint8_t out[65536], in[65536];
    pid_t pids[4];
    int pin[2], pout[2], feed, np = 0;
    unsigned long long sent = 0, got = 0;
    uint64_t t0 = bench_now_ns();
    bool ok = true;

    if (nprogs < 1 || nprogs > 4 || pipe2(pin, O_CLOEXEC | O_NONBLOCK) < 0)
        return 0;
    fcntl(pin[0], F_SETFL, 0); /* the children get blocking ends */
    feed = pin[0];
    for (int i = 0; i < nprogs && ok; i++) {
        posix_spawn_file_actions_t fa;
        char *argv[] = {(char *)progs[i], NULL};

        if (pipe2(pout, O_CLOEXEC) < 0) {
            ok = false;
            break;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, feed, 0);
        posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
        if (posix_spawnp(&pids[np], progs[i], &fa, NULL, argv, environ) == 0)
            np++;
        else
            ok = false;
        posix_spawn_file_actions_destroy(&fa);
        close(feed);
        close(pout[1]);
        feed = pout[0];
    }
    fcntl(feed, F_SETFL, O_NONBLOCK);
    memset(out, 0x5a, sizeof(out));
    while (ok && got < bytes) {
        struct pollfd p[2] = {{feed, POLLIN, 0}, {sent < bytes ? pin[1] : -1, POLLOUT, 0}};
        ssize_t n;

        if (poll(p, 2, 10000) <= 0)
            break;
        if (sent < bytes && (p[1].revents & (POLLOUT | POLLERR))) {
            size_t want = bytes - sent < sizeof(out) ? (size_t)(bytes - sent) : sizeof(out);

            n = write(pin[1], out, want);
            if (n > 0)
                sent += (unsigned long long)n;
            if (sent >= bytes) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            n = read(feed, in, sizeof(in));
            if (n <= 0 && n != -1)
                break;
            if (n > 0)
                got += (unsigned long long)n;
        }
    }
    if (pin[1] >= 0)
        close(pin[1]);
    close(feed);
    for (int i = 0; i < np; i++)
        if (bench_wait_ok(pids[i]) < 0)
            ok = false;
    if (!ok || got != bytes)
        return 0;
    return (double)bytes / (double)(bench_now_ns() - t0);
}

typedef struct Cfg {
    const char *sim;
    const char *etc;
    char ns[48];
    char self[PATH_MAX];
    int calls;
    int concurrent;
    int reps;
    unsigned long long bytes;
} Cfg;

/* One hidden `vrpc-bench calls __client ...` inside guest bencha (bench-guest.c). */
static char *in_guest(Cfg *cfg, const char *mode, const char *target, const char *service,
                      unsigned long long count, int payload, int expect)
{
    const BenchGuest g = {cfg->sim, cfg->ns, "bencha", cfg->self, "calls"};

    return bench_guest_run(&g, mode, target, service, count, payload, expect);
}

static int sim_up(Cfg *cfg)
{
    const char *args[] = {"--vrpc", "--etc", cfg->etc, "bencha", "benchb", NULL};

    return bench_sim_up(cfg->sim, cfg->ns, args);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-bench calls [--calls N] [--concurrent N] [--bytes N] [--reps N] "
               "[--etc DIR]\n"
               "  End-to-end vrpc calls on a private vrpc-sim instance (guests bencha and\n"
               "  benchb with the dispatcher and agents), each figure with its ratio to\n"
               "  spawning the same service binary locally (posix_spawn + wait) in the sim's\n"
               "  dom0, re-measured in every rep; streams beside a local `cat | cat` of the\n"
               "  same bytes (the stream rows take turns, a quarter of --bytes each time);\n"
               "  vchan events per vrpc.Ping from the dispatcher's counters (vrpc-ctl stats).\n"
               "  --json rows: floor_p50_us ping_g2d_p50_us ping_g2g_p50_us\n"
               "  ping_events_per_call stream_g2d_gbps stream_g2g_gbps pipeline_gbps\n"
               "  --calls N       sequential calls per latency row (default 1000)\n"
               "  --concurrent N  calls opened at once on one connection (default 1000)\n"
               "  --bytes N       bytes streamed through demo.Echo (default 1 GiB)\n"
               "  --reps N        repetitions; medians are printed (default 5)\n"
               "  --etc DIR       configuration (default: the build's example etc)\n");
}

typedef struct Row {
    const char *name, *target, *service;
    int payload, expect;
} Row;

/* The dispatcher's control socket of our instance, where vrpc-sim puts it
 * (<VRPCSIM_ROOT or /dev/shm/vrpc-sim>/<ns>/dom0/control.sock). */
static void control_path(const Cfg *cfg, char *buf, size_t len)
{
    const char *root = getenv("VRPCSIM_ROOT");

    snprintf(buf, len, "%s/%s/dom0/control.sock", root && *root ? root : "/dev/shm/vrpc-sim",
             cfg->ns);
}

/* The dispatcher's counters for its connection to guest @guest (`stats` on the control
 * socket): vchan events sent to the agent and consumed from it, frames sent and received. */
typedef struct GuestCounters {
    unsigned long long sent, consumed, fout, fin;
} GuestCounters;

/* Fills *@gc; returns 0, or -1 if the guest is not listed or the socket does not answer. */
static int guest_counters(const Cfg *cfg, const char *guest, GuestCounters *gc)
{
    char path[PATH_MAX], *answer, *line;
    int fd, rc = -1;

    control_path(cfg, path, sizeof(path));
    fd = rpc_unix_connect(path);
    if (fd < 0)
        return -1;
    if (write(fd, "stats\n", 6) != 6) {
        close(fd);
        return -1;
    }
    answer = bench_slurp(fd); /* closes fd */
    for (line = answer; line && *line;) {
        char name[RPC_DOMAIN_MAX + 1];
        GuestCounters g;
        int domid;
        char *nl = strchr(line, '\n');

        if (sscanf(line,
                   "guest %64s domid %d events-sent %llu events-consumed %llu frames-sent %llu "
                   "frames-received %llu",
                   name, &domid, &g.sent, &g.consumed, &g.fout, &g.fin) == 6 &&
            strcmp(name, guest) == 0) {
            *gc = g;
            rc = 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(answer);
    return rc;
}

/* Per-call figures of one latency run, from the counters before and after it. */
typedef struct PerCall {
    double events, to_agent, frames_to, frames_from;
} PerCall;

/* One latency run of @row in guest bencha: p50/p99 in ns into @p50p / @p99p, the number of
 * calls with the expected exit code into @okp, and (when @pcp) the dispatcher<->bencha
 * vchan events and frames per call. Returns 0, or -1 if the run failed. */
static int latency_run(Cfg *cfg, const Row *row, double *p50p, double *p99p, int *okp,
                       PerCall *pcp)
{
    GuestCounters g0, g1;
    bool counted = pcp && guest_counters(cfg, "bencha", &g0) == 0;
    char *out = in_guest(cfg, "lat", row->target, row->service, (unsigned long long)cfg->calls,
                         row->payload, row->expect);
    unsigned long long a, b;
    int cnt, okc, rc = -1;

    if (out && sscanf(out, "lat %d %d %llu %llu", &cnt, &okc, &a, &b) == 4 && cnt) {
        *p50p = (double)a;
        *p99p = (double)b;
        *okp = okc;
        rc = 0;
        if (pcp) {
            counted = counted && guest_counters(cfg, "bencha", &g1) == 0;
            pcp->events = counted ? (double)(g1.sent + g1.consumed - g0.sent - g0.consumed) / cnt
                                  : NAN;
            pcp->to_agent = counted ? (double)(g1.sent - g0.sent) / cnt : NAN;
            pcp->frames_to = counted ? (double)(g1.fout - g0.fout) / cnt : NAN;
            pcp->frames_from = counted ? (double)(g1.fin - g0.fin) / cnt : NAN;
        }
    }
    free(out);
    return rc;
}

/* The floor of one rep: @calls local spawns of vrpc.Ping, p50/p99 in ns. Returns the count. */
static int floor_run(const char *ping, int calls, double *p50p, double *p99p)
{
    uint64_t *fl = calloc((size_t)calls, sizeof(*fl));
    int nf = 0;

    if (!fl)
        return 0;
    for (int i = 0; i < calls; i++) {
        uint64_t t = spawn_once(ping, NULL, 0);

        if (t)
            fl[nf++] = t;
    }
    *p50p = (double)bench_percentile(fl, nf, 50);
    *p99p = (double)bench_percentile(fl, nf, 99);
    free(fl);
    return nf;
}

/* `vrpc-bench calls __floor PATH CALLS`, run by floor_in_dom0(): prints "floor P50 P99 OK". */
static int floor_main(int argc, char **argv)
{
    double p50, p99;
    int calls = argc == 4 ? atoi(argv[3]) : 0, ok;

    if (calls < 1)
        return 2;
    ok = floor_run(argv[2], calls, &p50, &p99);
    printf("floor %.0f %.0f %d\n", p50, p99, ok);
    return ok ? 0 : 1;
}

/* The floor where the dispatcher spawns vrpc.Ping: in dom0 of the instance, under
 * `vrpc-sim exec`, so with the environment its handlers inherit (the emulation's preload
 * and library path, which cost every process start a few hundred microseconds here and do
 * not exist on Xen). Returns the count of spawns, 0 on failure. */
static int floor_in_dom0(Cfg *cfg, const char *ping, double *p50p, double *p99p)
{
    char scalls[24];
    snprintf(scalls, sizeof(scalls), "%d", cfg->calls);
    char *argv[] = {(char *)cfg->sim, "exec", "--ns", cfg->ns, "dom0", "--", cfg->self,
                    "calls", "__floor", (char *)ping, scalls, NULL};
    char *out = bench_run_capture(argv);
    int ok = 0;

    if (!out || sscanf(out, "floor %lf %lf %d", p50p, p99p, &ok) != 3)
        ok = 0;
    free(out);
    return ok;
}

static double stream_run(Cfg *cfg, const char *target, unsigned long long bytes)
{
    char *out = in_guest(cfg, "stream", target, "demo.Echo", bytes, 0, 0);
    unsigned long long b, ns;
    double g = 0;

    if (out && sscanf(out, "stream %llu %llu", &b, &ns) == 2 && b && ns)
        g = (double)b / (double)ns;
    free(out);
    return g;
}

#define MAX_REPS 16
#define NROWS 5
/* Turns of the four stream rows per rep (run_all()). */
#define STREAM_TURNS 4

static const Row rows[NROWS] = {
    {"vrpc.Ping guest->dom0", "dom0", "vrpc.Ping", 0, 0},
    {"vrpc.Ping guest->guest", "benchb", "vrpc.Ping", 0, 0},
    {"demo.Echo 64 B guest->dom0", "dom0", "demo.Echo", 64, 0},
    {"demo.Echo 64 B guest->guest", "benchb", "demo.Echo", 64, 0},
    {"denied (demo.Secret)", "benchb", "demo.Secret", 0, 126},
};

/* Every measurement, rep by rep: each rep re-measures the floors right before the call rows
 * (a co-runner or another benchmark that comes and goes then moves both), and the medians
 * over the reps are reported. */
static int run_all(Cfg *cfg, const char *ping, const char *echo)
{
    static const char *const pipeline[] = {"cat", "cat"};
    const char *echo_prog[] = {echo};
    int reps = cfg->reps < MAX_REPS ? cfg->reps : MAX_REPS;
    double fl50[MAX_REPS], fl99[MAX_REPS], l50[NROWS][MAX_REPS], l99[NROWS][MAX_REPS];
    double bare50[MAX_REPS], bare99[MAX_REPS];
    int nbare = 0;
    PerCall pc[MAX_REPS];
    double pipe_g[MAX_REPS], echo_g[MAX_REPS], st_g[2][MAX_REPS];
    int nfl = 0, nl[NROWS] = {0}, okl[NROWS] = {0}, nev = 0, npipe = 0, necho = 0,
        nst[2] = {0}, fl_ok = 0;
    const char *st[] = {"dom0", "benchb"};
    const char *stn[] = {"guest->dom0", "guest->guest"};

    for (int r = 0; r < reps; r++) {
        double p50, p99, g;
        PerCall one = {NAN, NAN, NAN, NAN};
        int ok;

        ok = floor_in_dom0(cfg, ping, &p50, &p99);
        if (ok) {
            fl50[nfl] = p50;
            fl99[nfl++] = p99;
            fl_ok = ok;
        }
        if (floor_run(ping, cfg->calls, &p50, &p99)) {
            bare50[nbare] = p50;
            bare99[nbare++] = p99;
        }
        for (int i = 0; i < NROWS; i++)
            if (latency_run(cfg, &rows[i], &l50[i][nl[i]], &l99[i][nl[i]], &ok,
                            i == 0 ? &one : NULL) == 0) {
                nl[i]++;
                okl[i] += ok;
                if (i == 0 && isfinite(one.events))
                    pc[nev++] = one;
            }
        /* The stream rows take turns, --bytes each in STREAM_TURNS parts, the order rotating:
         * on a shared machine one whole stream after another met different moods of the
         * machine (the ratios between the rows of one rep spread 15 % and more). */
        double ns[4] = {0, 0, 0, 0};
        bool sok[4] = {true, true, true, true};
        for (int t = 0; t < STREAM_TURNS; t++) {
            unsigned long long tb = cfg->bytes / STREAM_TURNS +
                                    (t == STREAM_TURNS - 1 ? cfg->bytes % STREAM_TURNS : 0);
            for (int k = 0; k < 4 && tb; k++) {
                int row = (t + k) % 4;
                g = row == 0   ? spawn_stream(pipeline, 2, tb)
                    : row == 1 ? spawn_stream(echo_prog, 1, tb)
                               : stream_run(cfg, st[row - 2], tb);
                if (g > 0)
                    ns[row] += (double)tb / g;
                else
                    sok[row] = false;
            }
        }
        if (sok[0] && ns[0] > 0)
            pipe_g[npipe++] = (double)cfg->bytes / ns[0];
        if (sok[1] && ns[1] > 0)
            echo_g[necho++] = (double)cfg->bytes / ns[1];
        for (int k = 0; k < 2; k++)
            if (sok[k + 2] && ns[k + 2] > 0)
                st_g[k][nst[k]++] = (double)cfg->bytes / ns[k + 2];
    }
    if (!nfl) {
        fprintf(stderr, "vrpc-bench: cannot run %s\n", ping);
        return 1;
    }

    double floor_p50 = bench_median_double(fl50, nfl), floor_p99 = bench_median_double(fl99, nfl);
    printf("vrpc-bench calls: %d sequential calls per row, %llu bytes per stream, medians of %d "
           "runs, %d co-runners; floor = posix_spawn+wait of the service binary locally in "
           "the sim's dom0 (where the dispatcher spawns it), re-measured in every run\n\n",
           cfg->calls, cfg->bytes, reps, bench_report_load());
    printf("%-30s %10s %10s %8s %8s %6s\n", "latency", "p50 us", "p99 us", "p50/flr", "p99/flr",
           "ok");
    printf("%-30s %10.1f %10.1f %8s %8s %6d\n", "floor: spawn vrpc.Ping", floor_p50 / 1e3,
           floor_p99 / 1e3, "1.00", "1.00", fl_ok);
    bench_row("calls", "floor_p50_us", floor_p50 / 1e3, "us");
    if (nbare) {
        double b50 = bench_median_double(bare50, nbare), b99 = bench_median_double(bare99, nbare);
        printf("%-30s %10.1f %10.1f %8.2f %8.2f %6s\n", "  (same, outside the sim)", b50 / 1e3,
               b99 / 1e3, b50 / floor_p50, b99 / floor_p99, "");
    }
    for (int i = 0; i < NROWS; i++) {
        if (!nl[i]) {
            printf("%-30s %10s\n", rows[i].name, "failed");
            continue;
        }
        double m50 = bench_median_double(l50[i], nl[i]), m99 = bench_median_double(l99[i], nl[i]);
        printf("%-30s %10.1f %10.1f %8.2f %8.2f %6d\n", rows[i].name, m50 / 1e3, m99 / 1e3,
               m50 / floor_p50, m99 / floor_p99, okl[i] / nl[i]);
        if (i == 0)
            bench_row("calls", "ping_g2d_p50_us", m50 / 1e3, "us");
        else if (i == 1)
            bench_row("calls", "ping_g2g_p50_us", m50 / 1e3, "us");
    }
    if (nev) {
        double ev[MAX_REPS], to[MAX_REPS], fto[MAX_REPS], ffrom[MAX_REPS];

        for (int r = 0; r < nev; r++) {
            ev[r] = pc[r].events;
            to[r] = pc[r].to_agent;
            fto[r] = pc[r].frames_to;
            ffrom[r] = pc[r].frames_from;
        }
        double m = bench_median_double(ev, nev), mt = bench_median_double(to, nev);

        printf("%-30s %10.2f   (dispatcher<->agent vchan: %.2f to the agent, %.2f from it)\n",
               "vchan events per vrpc.Ping", m, mt, m - mt);
        printf("%-30s %10.2f   (%.2f to the agent, %.2f from it)\n", "frames per vrpc.Ping",
               bench_median_double(fto, nev) + bench_median_double(ffrom, nev),
               bench_median_double(fto, nev), bench_median_double(ffrom, nev));
        bench_row("calls", "ping_events_per_call", m, "events");
    } else {
        printf("%-30s %10s\n", "vchan events per vrpc.Ping", "failed");
    }

    double pipe_m = npipe ? bench_median_double(pipe_g, npipe) : 0;
    printf("\n%-30s %10s %8s\n", "streaming demo.Echo", "GB/s", "/pipeln");
    if (npipe) {
        printf("%-30s %10.2f %8s\n", "pipeline: local cat | cat", pipe_m, "1.00");
        bench_row("calls", "pipeline_gbps", pipe_m, "GB/s");
    } else {
        printf("%-30s %10s\n", "pipeline: local cat | cat", "failed");
    }
    if (necho)
        printf("%-30s %10.2f %8.2f\n", "floor: local demo.Echo, pipes",
               bench_median_double(echo_g, necho),
               npipe ? bench_median_double(echo_g, necho) / pipe_m : NAN);
    for (int k = 0; k < 2; k++) {
        if (!nst[k]) {
            printf("%-30s %10s\n", stn[k], "failed");
            continue;
        }
        double m = bench_median_double(st_g[k], nst[k]);

        printf("%-30s %10.2f %8.2f\n", stn[k], m, npipe ? m / pipe_m : NAN);
        bench_row("calls", k == 0 ? "stream_g2d_gbps" : "stream_g2g_gbps", m, "GB/s");
    }

    printf("\n%-30s %10s %10s %12s\n", "concurrent vrpc.Ping", "opened", "ok", "total ms");
    for (int k = 0; k < 2; k++) {
        char *out = in_guest(cfg, "conc", st[k], "vrpc.Ping", (unsigned long long)cfg->concurrent,
                             0, 0);
        unsigned long long ns;
        int opened, ok;

        if (out && sscanf(out, "conc %d %d %llu", &opened, &ok, &ns) == 3)
            printf("%-30s %10d %10d %12.1f\n", stn[k], opened, ok, (double)ns / 1e6);
        else
            printf("%-30s %10s\n", stn[k], "failed");
        free(out);
    }
    return 0;
}

int bench_calls_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"calls", required_argument, NULL, 'c'},
        {"concurrent", required_argument, NULL, 'C'},
        {"bytes", required_argument, NULL, 'b'},
        {"reps", required_argument, NULL, 'r'},
        {"etc", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    Cfg cfg = {.sim = VRPC_SIM_BIN,
               .etc = VRPC_EXAMPLE_ETC,
               .calls = 1000,
               .concurrent = 1000,
               .reps = 5,
               .bytes = 1ull << 30};
    char ping[PATH_MAX], echo[PATH_MAX];
    int c;

    if (argc >= 2 && strcmp(argv[1], "__client") == 0)
        return bench_guest_client_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "__floor") == 0)
        return floor_main(argc, argv);
    optind = 1;
    opterr = 0; /* one line of our own: bench_bad_option() */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg.calls = atoi(optarg);
            break;
        case 'C':
            cfg.concurrent = atoi(optarg);
            break;
        case 'b':
            cfg.bytes = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            cfg.reps = atoi(optarg);
            break;
        case 'e':
            cfg.etc = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return bench_bad_option("calls", argv);
        }
    }
    if (optind != argc || cfg.calls < 1 || cfg.concurrent < 1 || cfg.reps < 1 || cfg.bytes == 0) {
        fprintf(stderr, "vrpc-bench calls: no operands; --calls, --concurrent, --reps and "
                        "--bytes >= 1 (try --help)\n");
        return 2;
    }
    if (bench_self_exe(cfg.self, sizeof(cfg.self)) < 0)
        return 1;
    snprintf(cfg.ns, sizeof(cfg.ns), "bench-calls-%d", (int)getpid());
    snprintf(ping, sizeof(ping), "%s/services/vrpc.Ping", cfg.etc);
    snprintf(echo, sizeof(echo), "%s/services/demo.Echo", cfg.etc);

    if (sim_up(&cfg) < 0) {
        fprintf(stderr, "vrpc-bench: vrpc-sim up --vrpc failed\n");
        return 1;
    }
    int rc = run_all(&cfg, ping, echo);
    bench_sim_down(cfg.sim, cfg.ns);
    return rc;
}
