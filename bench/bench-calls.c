/* SPDX-License-Identifier: MIT */
/*
 * bench-calls.c - `vrpc-bench calls`: what a whole vrpc call costs, end to end, on the sim.
 * The benchmark brings up a private instance with vrpc (`vrpc-sim up --vrpc`, guests
 * bencha and benchb, the shipped example configuration) and re-executes itself inside guest
 * bencha as a caller that speaks librpc to the local agent, exactly as vrpc-call does, but
 * without paying a process start per call. Each figure is printed with its ratio to the
 * floor: spawning the same service binary locally (posix_spawn + wait, stdio on pipes) in
 * the same run. Measured: call latency p50/p99 of vrpc.Ping and demo.Echo (64 bytes) guest
 * to dom0, guest to guest, and a denied call; streaming throughput through demo.Echo guest
 * to dom0 and guest to guest; and N concurrent calls on one connection.
 */
#include "bench-calls.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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
#include "bench-util.h"

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

/* Stream @bytes through a locally spawned @path (demo.Echo) over pipes: GB/s, or 0. */
static double spawn_stream(const char *path, unsigned long long bytes)
{
    static uint8_t out[65536], in[65536];
    int pin[2], pout[2], st;
    posix_spawn_file_actions_t fa;
    char *argv[] = {(char *)path, NULL};
    unsigned long long sent = 0, got = 0;
    uint64_t t0 = bench_now_ns();
    pid_t pid;

    if (pipe2(pin, O_CLOEXEC | O_NONBLOCK) < 0)
        return 0;
    if (pipe2(pout, O_CLOEXEC | O_NONBLOCK) < 0)
        return 0;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    /* the child gets blocking ends */
    fcntl(pin[0], F_SETFL, 0);
    fcntl(pout[1], F_SETFL, 0);
    if (posix_spawn(&pid, path, &fa, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    if (pid < 0)
        return 0;
    memset(out, 0x5a, sizeof(out));
    while (got < bytes) {
        struct pollfd p[2] = {{pout[0], POLLIN, 0}, {sent < bytes ? pin[1] : -1, POLLOUT, 0}};
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
            n = read(pout[0], in, sizeof(in));
            if (n <= 0)
                break;
            got += (unsigned long long)n;
        }
    }
    if (pin[1] >= 0)
        close(pin[1]);
    close(pout[0]);
    if (waitpid(pid, &st, 0) < 0 || got != bytes)
        return 0;
    return (double)bytes / (double)(bench_now_ns() - t0);
}

/* ---- the driver ------------------------------------------------------------------------ */

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

static BenchGuest guest_of(const Cfg *cfg)
{
    return (BenchGuest){cfg->sim, cfg->ns, "bencha", cfg->self, "calls"};
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
               "  spawning the same service binary locally (posix_spawn + wait).\n"
               "  --calls N       sequential calls per latency row (default 1000)\n"
               "  --concurrent N  calls opened at once on one connection (default 1000)\n"
               "  --bytes N       bytes streamed through demo.Echo (default 1 GiB)\n"
               "  --reps N        repetitions; medians are printed (default 3)\n"
               "  --etc DIR       configuration (default: the build's example etc)\n");
}

typedef struct Row {
    const char *name, *target, *service;
    int payload, expect;
} Row;

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
    static const Row rows[] = {
        {"vrpc.Ping guest->dom0", "dom0", "vrpc.Ping", 0, 0},
        {"vrpc.Ping guest->guest", "benchb", "vrpc.Ping", 0, 0},
        {"demo.Echo 64 B guest->dom0", "dom0", "demo.Echo", 64, 0},
        {"demo.Echo 64 B guest->guest", "benchb", "demo.Echo", 64, 0},
        {"denied (demo.Secret)", "benchb", "demo.Secret", 0, 126},
    };
    Cfg cfg = {.sim = VRPC_SIM_BIN,
               .etc = VRPC_EXAMPLE_ETC,
               .calls = 1000,
               .concurrent = 1000,
               .reps = 3,
               .bytes = 1ull << 30};
    char ping[PATH_MAX], echo[PATH_MAX];
    int c;

    if (argc >= 2 && strcmp(argv[1], "__client") == 0)
        return bench_guest_client_main(argc, argv);
    optind = 1;
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
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cfg.calls < 1 || cfg.concurrent < 1 || cfg.reps < 1 || cfg.bytes == 0) {
        usage(stderr);
        return 2;
    }
    if (bench_self_exe(cfg.self, sizeof(cfg.self)) < 0)
        return 1;
    snprintf(cfg.ns, sizeof(cfg.ns), "bench-calls-%d", (int)getpid());
    snprintf(ping, sizeof(ping), "%s/services/vrpc.Ping", cfg.etc);
    snprintf(echo, sizeof(echo), "%s/services/demo.Echo", cfg.etc);

    /* the floor, measured in this run */
    uint64_t *fl = calloc((size_t)cfg.calls, sizeof(*fl));
    uint64_t floor_p50, floor_p99;
    int nf = 0;
    if (!fl)
        return 1;
    for (int i = 0; i < cfg.calls; i++) {
        uint64_t t = spawn_once(ping, NULL, 0);

        if (t)
            fl[nf++] = t;
    }
    floor_p50 = bench_percentile(fl, nf, 50);
    floor_p99 = bench_percentile(fl, nf, 99);
    free(fl);
    if (!nf) {
        fprintf(stderr, "vrpc-bench: cannot run %s\n", ping);
        return 1;
    }
    double floor_gbs[16];
    for (int r = 0; r < cfg.reps && r < 16; r++)
        floor_gbs[r] = spawn_stream(echo, cfg.bytes);
    double floor_stream = bench_median_double(floor_gbs, cfg.reps < 16 ? cfg.reps : 16);

    const BenchGuest g = guest_of(&cfg);
    if (sim_up(&cfg) < 0) {
        fprintf(stderr, "vrpc-bench: vrpc-sim up --vrpc failed\n");
        return 1;
    }
    printf("vrpc-bench calls: %d sequential calls per row, medians of %d runs; floor = "
           "posix_spawn+wait of the service binary locally\n\n",
           cfg.calls, cfg.reps);
    printf("%-30s %10s %10s %8s %8s %6s\n", "latency", "p50 us", "p99 us", "p50/flr", "p99/flr",
           "ok");
    printf("%-30s %10.1f %10.1f %8s %8s %6d\n", "floor: spawn vrpc.Ping", floor_p50 / 1e3,
           floor_p99 / 1e3, "1.00", "1.00", nf);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double p50[16], p99[16];
        int ok = 0, n = 0, reps = cfg.reps < 16 ? cfg.reps : 16;

        for (int r = 0; r < reps; r++) {
            int okc;

            if (bench_guest_latency(&g, rows[i].target, rows[i].service, cfg.calls,
                                    rows[i].payload, rows[i].expect, &p50[n], &p99[n], &okc)) {
                n++;
                ok += okc;
            }
        }
        if (!n) {
            printf("%-30s %10s\n", rows[i].name, "failed");
            continue;
        }
        double m50 = bench_median_double(p50, n), m99 = bench_median_double(p99, n);
        printf("%-30s %10.1f %10.1f %8.2f %8.2f %6d\n", rows[i].name, m50 / 1e3, m99 / 1e3,
               m50 / (double)floor_p50, m99 / (double)floor_p99, ok / n);
    }

    printf("\n%-30s %10s %8s\n", "streaming demo.Echo", "GB/s", "/floor");
    printf("%-30s %10.2f %8s\n", "floor: local demo.Echo, pipes", floor_stream, "1.00");
    const char *st[] = {"dom0", "benchb"};
    const char *stn[] = {"guest->dom0", "guest->guest"};
    for (int k = 0; k < 2; k++) {
        double gb[16];
        int n = 0, reps = cfg.reps < 16 ? cfg.reps : 16;

        for (int r = 0; r < reps; r++) {
            double gbs = bench_guest_stream(&g, st[k], cfg.bytes);

            if (gbs > 0)
                gb[n++] = gbs;
        }
        if (n)
            printf("%-30s %10.2f %8.2f\n", stn[k], bench_median_double(gb, n),
                   bench_median_double(gb, n) / floor_stream);
        else
            printf("%-30s %10s\n", stn[k], "failed");
    }

    printf("\n%-30s %10s %10s %12s\n", "concurrent vrpc.Ping", "opened", "ok", "total ms");
    for (int k = 0; k < 2; k++) {
        char *out = bench_guest_run(&g, "conc", st[k], "vrpc.Ping",
                                    (unsigned long long)cfg.concurrent, 0, 0);
        unsigned long long ns;
        int opened, ok;

        if (out && sscanf(out, "conc %d %d %llu", &opened, &ok, &ns) == 3)
            printf("%-30s %10d %10d %12.1f\n", stn[k], opened, ok, (double)ns / 1e6);
        else
            printf("%-30s %10s\n", stn[k], "failed");
        free(out);
    }
    bench_sim_down(cfg.sim, cfg.ns);
    return 0;
}
