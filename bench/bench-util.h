/* SPDX-License-Identifier: MIT */
/* bench-util.h - helpers the vrpc-bench subcommands share: clock, sorting and medians,
 * running child programs with their stdout captured, a private vrpc-sim instance. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vchan/vchan.h"

/* bench_now_ns() - CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* bench_cmp_u64() - qsort() comparison of two uint64_t, ascending. */
int bench_cmp_u64(const void *a, const void *b);

/* bench_cmp_double() - qsort() comparison of two doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

/* bench_median_u64() - sorts @v[@n] and returns its middle element (the upper one for an
 * even @n); 0 when @n is 0. */
uint64_t bench_median_u64(uint64_t *v, int n);

/* bench_median_double() - as bench_median_u64(), for doubles. */
double bench_median_double(double *v, int n);

/* bench_percentile() - sorts @v[@n] and returns its @p-th percentile (@p 0..100, nearest
 * rank: the smallest element with at least @p percent of @v at or below it); 0 when @n is 0. */
uint64_t bench_percentile(uint64_t *v, int n, int p);

/* bench_format_rtt() - sorts the @count round-trip times @lat (ns, @count >= 1) and writes
 * "rtt P50 P99\n" into @out (@len bytes, truncated if short): the line a measuring peer
 * reports, P50 being lat[count/2] and P99 lat[count*99/100] after sorting. */
void bench_format_rtt(char *out, size_t len, uint64_t *lat, int count);

/* bench_self_exe() - the path of the running executable into @buf (@len bytes), for
 * re-executing it as a hidden peer. Returns 0, or -errno (-ENAMETOOLONG if it does not fit). */
int bench_self_exe(char *buf, size_t len);

/* bench_start() - starts @argv (NULL-terminated, argv[0] a path) with its stdout to a pipe
 * whose read end (close-on-exec) is stored in *@fdp. Returns the child's pid, or -1 (no
 * child, *@fdp untouched). */
pid_t bench_start(char *const *argv, int *fdp);

/* bench_slurp() - reads @fd to EOF into a NUL-terminated heap string and closes @fd, also on
 * failure. Returns the string (caller frees; what was read before an allocation failure), or
 * NULL if nothing could be allocated. */
char *bench_slurp(int fd);

/* bench_wait_ok() - waits for child @pid. Returns 0 if it exited with status 0, -1 if it
 * failed, was killed, or @pid is negative or not a child. */
int bench_wait_ok(pid_t pid);

/* bench_run_capture() - runs @argv (as bench_start()) to completion after flushing stdio.
 * Returns its whole stdout (caller frees) if it exited with status 0, else NULL. */
char *bench_run_capture(char *const *argv);

/* bench_run_pair() - runs @argv_a and @argv_b concurrently (as bench_start()) and collects
 * both. Returns 0 with their stdout in *@out_ap and *@out_bp (caller frees) if both exited
 * with status 0; else -1 with both set to NULL. Either child that started is always reaped. */
int bench_run_pair(char *const *argv_a, char *const *argv_b, char **out_ap, char **out_bp);

/* bench_vchan_wait_client() - on the server end @v of a vchan, dispatches until a client
 * has connected (the end is no longer VCHAN_STATE_WAITING), sleeping in poll(2) up to
 * @timeout_ms at a time. Returns 0, -ETIMEDOUT if a wait passed with nothing to dispatch,
 * or -errno from poll(2). */
int bench_vchan_wait_client(Vchan *v, int timeout_ms);

/* bench_undo_add() - run @argv (NULL-terminated: a program's path and at most 5 arguments)
 * if the benchmark dies of SIGINT, SIGTERM, SIGHUP or SIGPIPE before bench_undo_drop() of the
 * returned id; newest first, stdout discarded. Returns the id, or -1 if it cannot be kept
 * (too many entries, too long). bench_sim_up() and bench_sim_down() keep their own entry. */
int bench_undo_add(const char *const *argv);

/* bench_undo_drop() - forget entry @id (a no-op for -1). */
void bench_undo_drop(int id);

/* bench_sim_up() - `SIM up --ns NS ARGS...` (@args NULL-terminated: options and guest names)
 * with stdout discarded. Returns 0 if it succeeded, -1 otherwise. */
int bench_sim_up(const char *sim, const char *ns, const char *const *args);

/* bench_sim_down() - `SIM down --ns NS` with stdout discarded. Returns 0 if it succeeded,
 * -1 otherwise. */
int bench_sim_down(const char *sim, const char *ns);

/* bench_bad_option() - after getopt_long() (with opterr 0) returned '?' or ':' for
 * "vrpc-bench @name", prints one line naming the argument it stopped at (argv[optind - 1])
 * and returns 2, the exit code of a usage error. */
int bench_bad_option(const char *name, char **argv);

/* The options the sim benchmarks share; the caller fills in the defaults. */
typedef struct BenchOpts {
    const char *sim;
    unsigned long long bytes;
    int reps, rtt;
    bool local; /* --local, where @takes_local */
} BenchOpts;

/* bench_parse_opts() - parse --help, --bytes N, --reps N, --rtt N, --sim PATH (and --local
 * when @takes_local) for "vrpc-bench @name", then check bytes >= @min_bytes, reps
 * 1..@max_reps and rtt >= 100. Returns -1 to go on, else the exit code (0 after --help). */
int bench_parse_opts(const char *name, int argc, char **argv, BenchOpts *o, bool takes_local,
                     unsigned long long min_bytes, int max_reps, void (*usage)(FILE *));
