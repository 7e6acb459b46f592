/* SPDX-License-Identifier: MIT */
/*
 * vrpc-bench: vrpc's benchmarks, one subcommand each. Benchmarks print
 * figures and ratios measured in the same run; they assert nothing.
 */
#include <stdio.h>
#include <string.h>

#include "common/escape.h"
#include "bench-calls.h"
#include "bench-report.h"
#include "bench-policy.h"
#include "bench-remote.h"
#include "bench-rpc.h"
#include "bench-vchan.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *what;
} benches[] = {
    {"policy", bench_policy_main, "policy evaluation latency at 10, 1,000 and 100,000 rules"},
    {"vchan", bench_vchan_main, "vchan vs libxenvchan, pipe, socketpair on the sim: GB/s, RTT"},
    {"calls", bench_calls_main, "end-to-end vrpc calls on the sim vs spawning the service locally"},
    {"rpc-mux", bench_rpc_main, "librpc streams vs raw vchan, 1 MiB rings: 1/64 streams GB/s, RTT"},
    {"remote", bench_remote_main, "calls across two sim hosts linked by TLS vs guest->guest"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-bench BENCHMARK [OPTIONS]   (vrpc-bench BENCHMARK --help)\n\n");
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].what);
    fprintf(f, "\nEvery benchmark also takes:\n"
               "  --load N   run N CPU-bound co-runners (busy loops, normal priority) throughout\n"
               "  --json     print one JSON object per row on stdout:\n"
               "             {\"bench\": B, \"row\": NAME, \"value\": NUMBER, \"unit\": U};\n"
               "             the human table goes to stderr\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "vrpc-bench: missing BENCHMARK (try --help)\n");
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vrpc-bench (vrpc) %s\n", VRPC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        if (strcmp(argv[1], benches[i].name) == 0) {
            int sub_argc = argc - 1, rc = bench_report_take_opts(&sub_argc, argv + 1);

            if (rc >= 0)
                return rc;
            return benches[i].fn(sub_argc, argv + 1);
        }
    fprintf(stderr, "vrpc-bench: unknown %s '%s' (try --help)\n",
            argv[1][0] == '-' ? "option" : "benchmark", VRPC_ESC(argv[1]));
    return 2;
}
