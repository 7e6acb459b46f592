/* SPDX-License-Identifier: MIT */
/*
 * bench-util.c - what the vrpc-bench subcommands (vchan, rpc-mux, calls) have in common: a
 * monotonic nanosecond clock, qsort() comparisons, medians and percentiles, and the process
 * plumbing of a benchmark that re-executes itself inside a private vrpc-sim instance:
 * starting a child with its stdout on a pipe, reading that to EOF, waiting for a clean exit,
 * and bringing the instance up and down with vrpc-sim's output discarded; and what a run
 * leaves behind while it runs (instances, temporary directories) undone on a fatal signal too.
 */
#include "bench-util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* longest vrpc-sim command line bench_sim_up() builds: SIM up --ns NS + args + NULL */
#define SIM_MAX_ARGS 32

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

uint64_t bench_median_u64(uint64_t *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), bench_cmp_u64);
    return v[n / 2];
}

double bench_median_double(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
    return v[n / 2];
}

uint64_t bench_percentile(uint64_t *v, int n, int p)
{
    int i;

    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), bench_cmp_u64);
    i = (int)(((int64_t)n * p + 99) / 100) - 1;
    if (i < 0)
        i = 0;
    return v[i < n ? i : n - 1];
}

void bench_format_rtt(char *out, size_t len, uint64_t *lat, int count)
{
    qsort(lat, (size_t)count, sizeof(*lat), bench_cmp_u64);
    snprintf(out, len, "rtt %llu %llu\n", (unsigned long long)lat[count / 2],
             (unsigned long long)lat[(size_t)count * 99 / 100]);
}

int bench_self_exe(char *buf, size_t len)
{
    ssize_t n;

    if (len < 2)
        return -ENAMETOOLONG;
    n = readlink("/proc/self/exe", buf, len - 1);
    if (n < 0)
        return -errno;
    if ((size_t)n >= len - 1)
        return -ENAMETOOLONG; /* possibly cut short */
    buf[n] = '\0';
    return 0;
}

pid_t bench_start(char *const *argv, int *fdp)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    *fdp = p[0];
    return pid;
}

char *bench_slurp(int fd)
{
    size_t len = 0, cap = 4096;
    char *s = malloc(cap);
    ssize_t n;

    if (!s) {
        close(fd);
        return NULL;
    }
    while ((n = read(fd, s + len, cap - len - 1)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)n;
        if (cap - len < 2) {
            char *t = realloc(s, cap * 2);

            if (!t)
                break;
            s = t;
            cap *= 2;
        }
    }
    s[len] = '\0';
    close(fd);
    return s;
}

int bench_wait_ok(pid_t pid)
{
    int st;

    if (pid < 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

char *bench_run_capture(char *const *argv)
{
    pid_t pid;
    char *out;
    int fd;

    fflush(NULL);
    pid = bench_start(argv, &fd);
    if (pid < 0)
        return NULL;
    out = bench_slurp(fd);
    if (bench_wait_ok(pid) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

int bench_run_pair(char *const *argv_a, char *const *argv_b, char **out_ap, char **out_bp)
{
    int fda = -1, fdb = -1;
    pid_t pa = bench_start(argv_a, &fda), pb = bench_start(argv_b, &fdb);
    char *a = pa < 0 ? NULL : bench_slurp(fda), *b = pb < 0 ? NULL : bench_slurp(fdb);
    /* reap both whatever happened */
    int ra = bench_wait_ok(pa), rb = bench_wait_ok(pb);

    if (ra < 0 || rb < 0 || !a || !b) {
        free(a);
        free(b);
        *out_ap = *out_bp = NULL;
        return -1;
    }
    *out_ap = a;
    *out_bp = b;
    return 0;
}

int bench_vchan_wait_client(Vchan *v, int timeout_ms)
{
    while (vchan_is_open(v) == VCHAN_STATE_WAITING) {
        struct pollfd pfd = {.fd = vchan_fd(v), .events = POLLIN};
        int n = poll(&pfd, 1, timeout_ms);

        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        vchan_dispatch(v);
    }
    return 0;
}

/* Run @argv with stdout to /dev/null (vrpc-sim's daemons must not hold a pipe of ours
 * open) and wait: 0 if it exited with status 0, else -1. Async-signal-safe. */
static int run_quiet(char *const *argv)
{
    pid_t pid = fork();

    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

        if (devnull >= 0)
            dup2(devnull, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return bench_wait_ok(pid);
}

/* ---- undone on a fatal signal ------------------------------------------------------------ */

/* Commands that undo what a run has set up, run from the handler of SIGINT, SIGTERM, SIGHUP
 * and SIGPIPE with run_quiet() (fork, open, dup2, execv and waitpid: async-signal-safe),
 * newest first; then the signal takes its default course. An entry is filled before it is marked used, and unmarked before
 * the normal path undoes it itself. */
#define UNDO_MAX 8
#define UNDO_ARGS 6

typedef struct Undo {
    char buf[1024];
    char *argv[UNDO_ARGS + 1];
    volatile sig_atomic_t used;
} Undo;

static Undo undos[UNDO_MAX];

static void on_fatal_signal(int sig)
{
    int saved = errno;

    for (int i = UNDO_MAX - 1; i >= 0; i--)
        if (undos[i].used) {
            undos[i].used = 0;
            (void)run_quiet(undos[i].argv);
        }
    signal(sig, SIG_DFL);
    raise(sig);
    errno = saved;
}

static void undo_handlers(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    static bool installed;
    struct sigaction sa = {.sa_handler = on_fatal_signal}, old;

    if (installed)
        return;
    installed = true;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        /* a signal the caller ignores (SIGPIPE, say) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
}

int bench_undo_add(const char *const *argv)
{
    for (int i = 0; i < UNDO_MAX; i++) {
        Undo *u = &undos[i];
        size_t off = 0, n = 0;

        if (u->used)
            continue;
        for (; argv[n]; n++) {
            size_t len = strlen(argv[n]) + 1;

            if (n == UNDO_ARGS || off + len > sizeof(u->buf))
                return -1;
            memcpy(u->buf + off, argv[n], len);
            u->argv[n] = u->buf + off;
            off += len;
        }
        if (n == 0)
            return -1;
        u->argv[n] = NULL;
        undo_handlers();
        u->used = 1;
        return i;
    }
    return -1;
}

void bench_undo_drop(int id)
{
    if (id >= 0 && id < UNDO_MAX)
        undos[id].used = 0;
}

/* The entry that downs instance @ns, or -1. */
static int undo_find_sim(const char *ns)
{
    for (int i = 0; i < UNDO_MAX; i++)
        if (undos[i].used && undos[i].argv[1] && strcmp(undos[i].argv[1], "down") == 0 &&
            undos[i].argv[3] && strcmp(undos[i].argv[3], ns) == 0)
            return i;
    return -1;
}

int bench_sim_up(const char *sim, const char *ns, const char *const *args)
{
    char *argv[SIM_MAX_ARGS] = {(char *)sim, "up", "--ns", (char *)ns};
    const char *down[] = {sim, "down", "--ns", ns, NULL};
    size_t n = 4;

    for (; args && *args; args++) {
        if (n + 1 >= SIM_MAX_ARGS)
            return -1;
        argv[n++] = (char *)*args;
    }
    argv[n] = NULL;
    if (undo_find_sim(ns) < 0)
        (void)bench_undo_add(down); /* even a half-started instance is taken down */
    return run_quiet(argv);
}

int bench_sim_down(const char *sim, const char *ns)
{
    char *argv[] = {(char *)sim, "down", "--ns", (char *)ns, NULL};

    bench_undo_drop(undo_find_sim(ns));
    return run_quiet(argv);
}

int bench_bad_option(const char *name, char **argv)
{
    fprintf(stderr, "vrpc-bench %s: unknown option or missing value: '%s' (try --help)\n", name,
            optind > 0 ? argv[optind - 1] : "");
    return 2;
}

int bench_parse_opts(const char *name, int argc, char **argv, BenchOpts *o, bool takes_local,
                     unsigned long long min_bytes, int max_reps, void (*usage)(FILE *))
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
            o->bytes = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            o->reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--rtt") == 0 && i + 1 < argc) {
            o->rtt = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--sim") == 0 && i + 1 < argc) {
            o->sim = argv[++i];
        } else if (takes_local && strcmp(argv[i], "--local") == 0) {
            o->local = true;
        } else {
            fprintf(stderr, "vrpc-bench %s: unknown option '%s'\n", name, argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (o->bytes < min_bytes || o->reps < 1 || o->reps > max_reps || o->rtt < 100) {
        fprintf(stderr, "vrpc-bench %s: --bytes >= %llu, --reps 1..%d, --rtt >= 100\n", name,
                min_bytes, max_reps);
        return 2;
    }
    return -1;
}
