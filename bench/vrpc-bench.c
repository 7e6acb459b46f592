/* SPDX-License-Identifier: MIT */
/*
 * vrpc-bench: vrpc's benchmarks, one subcommand each. Benchmarks print
 * figures and ratios measured in the same run; they assert nothing.
 */
#include <stdio.h>
#include <string.h>

#include "common/escape.h"
#include "bench-calls.h"
#include "bench-policy.h"
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
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-bench BENCHMARK [OPTIONS]   (vrpc-bench BENCHMARK --help)\n\n");
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].what);
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
        if (strcmp(argv[1], benches[i].name) == 0)
            return benches[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vrpc-bench: unknown %s '%s' (try --help)\n",
            argv[1][0] == '-' ? "option" : "benchmark", VRPC_ESC(argv[1]));
    return 2;
}
