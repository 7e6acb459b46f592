/* SPDX-License-Identifier: MIT */
/*
 * bench-remote.c - `vrpc-bench remote`: what a call costs across hosts, next to the same call
 * between two guests of one host, in the same run. Two private vrpc-sim instances are two
 * hosts, hosta and hostb, whose dispatchers are linked by TLS 1.3 over loopback exactly as in
 * tests/xhost: a CA and host certificates made at run time (tests/support/make-pki.sh), free
 * 127.0.0.1 ports, a host: section in each dispatcher.yaml and policies allowing the calls on
 * both sides. hosta runs guests bencha and benchb, hostb runs benchc. The in-guest caller of
 * bench-guest.c measures from bencha: vrpc.Ping p50/p99 to benchc@hostb (remote) and to
 * benchb (local guest->guest), and a demo.Echo stream to each (every byte compared with what
 * was sent). The TLS ceiling is this machine's AES-128-GCM encryption speed of 16 KiB blocks
 * (a full TLS record) on one core, through OpenSSL's EVP interface, as the link uses it.
 */
#include "bench-remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench-guest.h"
#include "bench-report.h"
#include "bench-util.h"

#ifndef VRPC_SIM_BIN
#define VRPC_SIM_BIN "vrpc-sim"
#endif
#ifndef VRPC_EXAMPLE_ETC
#define VRPC_EXAMPLE_ETC "/etc/vrpc"
#endif
#ifndef VRPC_MAKE_PKI
#define VRPC_MAKE_PKI "make-pki.sh"
#endif

#define REPS_MAX 16
#define LINK_WAIT_NS (120ull * 1000000000ull)
/* The targets of issue 14. */
#define TARGET_PING_RATIO 1.3
#define TARGET_STREAM_RATIO 0.7
#define TARGET_STREAM_GBS 1.0

typedef struct Opts {
    const char *etc;
    int calls, reps;
    unsigned long long bytes;
} Opts;

typedef struct Host {
    const char *name;
    char ns[48];
    char etc[PATH_MAX];
    int port;
    bool up;
} Host;

/* A free TCP port on 127.0.0.1 (the kernel's choice), or -1. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "vrpc-bench remote: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Run @argv to completion with its stdout discarded: 0 if it succeeded. */
static int run(char *const *argv)
{
    char *out = bench_run_capture(argv);

    free(out);
    return out ? 0 : -1;
}

/* @h's configuration: a copy of the example etc, a host: section naming @peer, and a policy
 * that allows bencha's calls to hostb (outbound, on hosta) and bencha@hosta's calls to benchc
 * (inbound, on hostb). */
static int host_prepare(Host *h, const Host *peer, const char *dir, const char *example,
                        const char *pki)
{
    char src[PATH_MAX + 16], yaml[4096];

    snprintf(h->etc, sizeof(h->etc), "%s/etc-%s", dir, h->name);
    snprintf(src, sizeof(src), "%s/.", example);
    char *cp[] = {"/bin/cp", "-rL", src, h->etc, NULL};
    if (run(cp) < 0) {
        fprintf(stderr, "vrpc-bench remote: cannot copy %s\n", example);
        return -1;
    }
    snprintf(yaml, sizeof(yaml),
             "host:\n"
             "  name: %s\n"
             "  listen: \"127.0.0.1:%d\"\n"
             "  tls: {ca: %s/ca.pem, cert: %s/%s.pem, key: %s/%s.key}\n"
             "  peers:\n"
             "    %s: \"127.0.0.1:%d\"\n",
             h->name, h->port, pki, pki, h->name, pki, h->name, peer->name, peer->port);
    if (write_file(h->etc, "dispatcher.yaml", yaml) < 0)
        return -1;
    snprintf(yaml, sizeof(yaml),
             "rules:\n"
             "  - {service: vrpc.Ping, source: bencha, target: \"*@hostb\", action: allow}\n"
             "  - {service: demo.Echo, source: bencha, target: \"*@hostb\", action: allow}\n"
             "  - {service: vrpc.Ping, source: bencha@hosta, target: benchc, action: allow}\n"
             "  - {service: demo.Echo, source: bencha@hosta, target: benchc, action: allow}\n");
    snprintf(src, sizeof(src), "%s/policy.d", h->etc);
    return write_file(src, "40-remote.yaml", yaml);
}

static int host_up(Host *h, const char *sim, const char *const *guests)
{
    const char *args[8] = {"--vrpc", "--etc", h->etc};
    size_t n = 3;

    for (; *guests && n < 7; guests++)
        args[n++] = *guests;
    args[n] = NULL;
    if (bench_sim_up(sim, h->ns, args) < 0) {
        fprintf(stderr, "vrpc-bench remote: vrpc-sim up --ns %s failed\n", h->ns);
        return -1;
    }
    h->up = true;
    return 0;
}

/* Wait until a remote vrpc.Ping goes through: the link is up and both policies allow it. */
static int wait_link(const BenchGuest *g, const char *target)
{
    for (uint64_t end = bench_now_ns() + LINK_WAIT_NS; bench_now_ns() < end;) {
        double p50, p99;
        int ok = 0;

        if (bench_guest_latency(g, target, "vrpc.Ping", 1, 0, 0, &p50, &p99, &ok) && ok == 1)
            return 0;
        usleep(100000);
    }
    fprintf(stderr, "vrpc-bench remote: the link hosta -> hostb did not come up\n");
    return -1;
}

/* AES-128-GCM encryption of 16 KiB blocks (one TLS record each, a fresh IV and a tag per
 * block, as TLS does) for about @ms on this core: GB/s, or 0 if OpenSSL failed. */
static double tls_ceiling(int ms)
{
    static unsigned char in[16384], out[16384 + 16];
    unsigned char key[16] = {1, 2, 3, 4}, iv[12] = {0}, tag[16];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned long long bytes = 0;
    uint64_t t0 = bench_now_ns(), ns = 0;
    bool ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, iv) == 1;

    while (ok && ns < (uint64_t)ms * 1000000ull) {
        for (int i = 0; i < 16 && ok; i++) {
            int len = 0, fin = 0;

            iv[11]++;
            if (iv[11] == 0)
                iv[10]++;
            ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) == 1 &&
                 EVP_EncryptUpdate(ctx, out, &len, in, (int)sizeof(in)) == 1 &&
                 EVP_EncryptFinal_ex(ctx, out + len, &fin) == 1 &&
                 EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) == 1;
            bytes += sizeof(in);
        }
        ns = bench_now_ns() - t0;
    }
    EVP_CIPHER_CTX_free(ctx);
    return ok && ns ? (double)bytes / (double)ns : 0;
}

static double loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;

    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vrpc-bench remote [--calls N] [--bytes N] [--reps N] [--etc DIR]\n"
            "  Calls across hosts: two private vrpc-sim instances (hosta with guests bencha and\n"
            "  benchb, hostb with benchc) whose dispatchers are linked by TLS 1.3 over loopback,\n"
            "  with a CA and certificates made for the run. Measures, in the same run, from\n"
            "  bencha: vrpc.Ping p50/p99 to benchc@hostb and to benchb (local guest->guest), a\n"
            "  demo.Echo stream to each (every byte checked), and the TLS ceiling (AES-128-GCM\n"
            "  encryption of 16 KiB records on one core), with the ratios and the targets.\n"
            "  --calls N  sequential calls per latency run (default 1000)\n"
            "  --bytes N  bytes streamed through demo.Echo per run (default 1 GiB)\n"
            "  --reps N   runs of each figure, interleaved; medians are printed (default 3)\n"
            "  --etc DIR  configuration both hosts start from (default: the build's example "
            "etc)\n");
}

static int parse(int argc, char **argv, Opts *o)
{
    static const struct option opts[] = {
        {"calls", required_argument, NULL, 'c'}, {"bytes", required_argument, NULL, 'b'},
        {"reps", required_argument, NULL, 'r'},  {"etc", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    opterr = 0; /* one line of our own: bench_bad_option() */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->calls = atoi(optarg);
            break;
        case 'b':
            o->bytes = strtoull(optarg, NULL, 0);
            break;
        case 'r':
            o->reps = atoi(optarg);
            break;
        case 'e':
            o->etc = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return bench_bad_option("remote", argv);
        }
    }
    if (optind != argc || o->calls < 1 || o->bytes == 0 || o->reps < 1 || o->reps > REPS_MAX) {
        fprintf(stderr, "vrpc-bench remote: --calls >= 1, --bytes >= 1, --reps 1..%d\n",
                REPS_MAX);
        return 2;
    }
    return -1;
}

/* Medians of the interleaved runs. */
typedef struct Figures {
    double rping50[REPS_MAX], rping99[REPS_MAX], lping50[REPS_MAX], lping99[REPS_MAX];
    double rstream[REPS_MAX], lstream[REPS_MAX], ceiling[REPS_MAX];
    int nr, nl, nrs, nls, nc;
} Figures;

static void measure(const BenchGuest *g, const Opts *o, Figures *f)
{
    for (int r = 0; r < o->reps; r++) {
        int ok;

        if (bench_guest_latency(g, "benchc@hostb", "vrpc.Ping", o->calls, 0, 0,
                                &f->rping50[f->nr], &f->rping99[f->nr], &ok) &&
            ok == o->calls)
            f->nr++;
        if (bench_guest_latency(g, "benchb", "vrpc.Ping", o->calls, 0, 0, &f->lping50[f->nl],
                                &f->lping99[f->nl], &ok) &&
            ok == o->calls)
            f->nl++;
        double gbs = bench_guest_stream(g, "benchc@hostb", o->bytes);
        if (gbs > 0)
            f->rstream[f->nrs++] = gbs;
        gbs = bench_guest_stream(g, "benchb", o->bytes);
        if (gbs > 0)
            f->lstream[f->nls++] = gbs;
        gbs = tls_ceiling(1000);
        if (gbs > 0)
            f->ceiling[f->nc++] = gbs;
    }
}

static const char *verdict(bool met)
{
    return met ? "met" : "NOT met";
}

static void report(const Opts *o, Figures *f, double load0, double load1)
{
    double rp50 = bench_median_double(f->rping50, f->nr) / 1e3,
           rp99 = bench_median_double(f->rping99, f->nr) / 1e3,
           lp50 = bench_median_double(f->lping50, f->nl) / 1e3,
           lp99 = bench_median_double(f->lping99, f->nl) / 1e3,
           rs = bench_median_double(f->rstream, f->nrs),
           ls = bench_median_double(f->lstream, f->nls),
           tc = bench_median_double(f->ceiling, f->nc);

    printf("vrpc-bench remote: hosta -> hostb over TLS 1.3 on loopback; %d calls per latency "
           "run, %llu bytes per stream, medians of %d interleaved runs; --load %d, load "
           "average %.2f at start, %.2f at end\n\n",
           o->calls, o->bytes, o->reps, bench_report_load(), load0, load1);
    printf("%-36s %10s %10s %8s %6s\n", "vrpc.Ping from bencha", "p50 us", "p99 us", "p50/loc",
           "runs");
    printf("%-36s %10.1f %10.1f %8s %6d\n", "local guest->guest (benchb)", lp50, lp99, "1.00",
           f->nl);
    printf("%-36s %10.1f %10.1f %8.2f %6d\n", "remote (benchc@hostb)", rp50, rp99,
           lp50 > 0 ? rp50 / lp50 : 0, f->nr);
    printf("\n%-36s %10s %8s %6s\n", "demo.Echo stream from bencha", "GB/s", "/local", "runs");
    printf("%-36s %10.2f %8s %6d\n", "local guest->guest (benchb)", ls, "1.00", f->nls);
    printf("%-36s %10.2f %8.2f %6d\n", "remote (benchc@hostb)", rs, ls > 0 ? rs / ls : 0,
           f->nrs);
    printf("\n%-36s %10.2f %8s %6d\n", "TLS ceiling: aes-128-gcm 16 KiB, 1 core", tc,
           "", f->nc);
    printf("%-36s %10.2f\n", "  remote stream / ceiling", tc > 0 ? rs / tc : 0);
    printf("\ntargets: remote Ping p50 <= %.1fx local: %s (%.2fx); remote stream >= %.1fx local: "
           "%s (%.2fx); remote stream >= %.0f GB/s: %s (%.2f)\n",
           TARGET_PING_RATIO, verdict(lp50 > 0 && rp50 <= TARGET_PING_RATIO * lp50),
           lp50 > 0 ? rp50 / lp50 : 0, TARGET_STREAM_RATIO,
           verdict(ls > 0 && rs >= TARGET_STREAM_RATIO * ls), ls > 0 ? rs / ls : 0,
           TARGET_STREAM_GBS, verdict(rs >= TARGET_STREAM_GBS), rs);
    bench_row("remote", "remote_ping_p50_us", f->nr ? rp50 : NAN, "us");
    bench_row("remote", "remote_ping_p99_us", f->nr ? rp99 : NAN, "us");
    bench_row("remote", "remote_stream_gbps", f->nrs ? rs : NAN, "GB/s");
    bench_row("remote", "local_g2g_ping_p50_us", f->nl ? lp50 : NAN, "us");
    bench_row("remote", "local_g2g_stream_gbps", f->nls ? ls : NAN, "GB/s");
    bench_row("remote", "tls_ceiling_gbps", f->nc ? tc : NAN, "GB/s");
}

int bench_remote_main(int argc, char **argv)
{
    Opts o = {.etc = VRPC_EXAMPLE_ETC, .calls = 1000, .reps = 3, .bytes = 1ull << 30};
    Host a = {.name = "hosta"}, b = {.name = "hostb"};
    char self[PATH_MAX], dir[PATH_MAX], pki[PATH_MAX + 8];
    int rc, ret = 1;

    if (argc >= 2 && strcmp(argv[1], "__client") == 0)
        return bench_guest_client_main(argc, argv);
    rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (bench_self_exe(self, sizeof(self)) < 0)
        return 1;
    snprintf(dir, sizeof(dir), "/tmp/vrpc-bench-remote-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir)) {
        fprintf(stderr, "vrpc-bench remote: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    int undo_dir = bench_undo_add((const char *const *)rm);
    snprintf(pki, sizeof(pki), "%s/pki", dir);
    snprintf(a.ns, sizeof(a.ns), "bench-ra-%d", (int)getpid());
    snprintf(b.ns, sizeof(b.ns), "bench-rb-%d", (int)getpid());
    a.port = free_port();
    b.port = free_port();
    char *mkpki[] = {"/bin/sh", VRPC_MAKE_PKI, pki, "hosta", "hostb", NULL};
    if (a.port < 0 || b.port < 0 || run(mkpki) < 0) {
        fprintf(stderr, "vrpc-bench remote: cannot make the PKI with %s\n", VRPC_MAKE_PKI);
        goto out;
    }
    static const char *const guests_a[] = {"bencha", "benchb", NULL}, *const guests_b[] = {
                                                                          "benchc", NULL};
    if (host_prepare(&a, &b, dir, o.etc, pki) < 0 || host_prepare(&b, &a, dir, o.etc, pki) < 0 ||
        host_up(&a, VRPC_SIM_BIN, guests_a) < 0 || host_up(&b, VRPC_SIM_BIN, guests_b) < 0)
        goto out;
    const BenchGuest g = {VRPC_SIM_BIN, a.ns, "bencha", self, "remote"};
    if (wait_link(&g, "benchc@hostb") < 0)
        goto out;
    Figures f = {0};
    double load0 = loadavg();
    measure(&g, &o, &f);
    report(&o, &f, load0, loadavg());
    ret = f.nr && f.nl && f.nrs && f.nls && f.nc ? 0 : 1;
out:
    if (a.up)
        bench_sim_down(VRPC_SIM_BIN, a.ns);
    if (b.up)
        bench_sim_down(VRPC_SIM_BIN, b.ns);
    bench_undo_drop(undo_dir);
    run(rm);
    return ret;
}
