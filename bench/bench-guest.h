/* SPDX-License-Identifier: MIT */
/* bench-guest.h - the caller the sim benchmarks (calls, remote) run inside a guest: it speaks
 * librpc to the guest's agent exactly as vrpc-call does, without a process start per call,
 * and prints one line of figures on stdout. The driver side starts it with
 * `vrpc-sim exec --ns NS GUEST -- vrpc-bench SUB __client ...` and reads that line. */
#pragma once

#include <stdbool.h>

/* Where the in-guest caller runs: the sim binary, the instance, the guest, this executable
 * and the subcommand whose hidden __client mode it re-executes. */
typedef struct BenchGuest {
    const char *sim, *ns, *guest, *self, *sub;
} BenchGuest;

/* bench_guest_client_main() - the hidden `vrpc-bench SUB __client MODE TARGET SERVICE COUNT
 * PAYLOAD EXPECT` (argv[1] is "__client"), inside a guest (VRPC_SOCKET set by vrpc-sim exec).
 * MODE lat: COUNT sequential calls, each with PAYLOAD bytes of stdin; prints
 * "lat N OK P50_NS P99_NS" (OK: calls that ended with EXPECT). MODE conc: COUNT calls opened at
 * once; prints "conc N OK NS". MODE stream: COUNT bytes of a pattern through demo.Echo, read
 * back and compared with what was sent; prints "stream BYTES NS" (BYTES 0 when the call
 * failed or a byte came back wrong or missing). Returns 0, 1 (no agent) or 2 (usage). */
int bench_guest_client_main(int argc, char **argv);

/* bench_guest_run() - runs the caller in @g's guest (MODE etc. as above) to completion.
 * Returns its stdout (caller frees), or NULL if it failed. */
char *bench_guest_run(const BenchGuest *g, const char *mode, const char *target,
                      const char *service, unsigned long long count, int payload, int expect);

/* bench_guest_latency() - one "lat" run: @calls sequential calls of @service on @target.
 * Returns true with the run's p50 and p99 (ns) and the calls that ended with @expect in
 * *@okp, or false if the run failed or made no call. */
bool bench_guest_latency(const BenchGuest *g, const char *target, const char *service,
                         int calls, int payload, int expect, double *p50p, double *p99p,
                         int *okp);

/* bench_guest_stream() - one "stream" run of @bytes through @target's demo.Echo. Returns
 * GB/s, or 0 if the run failed or the bytes did not all come back as sent. */
double bench_guest_stream(const BenchGuest *g, const char *target, unsigned long long bytes);
