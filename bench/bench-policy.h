/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * bench_policy_main() - `vrpc-bench policy [--rules N[,N...]] [--calls N]
 * [--rounds N]`: policy evaluation latency, p50 and p99, for generated policies
 * of 10, 1,000 and 100,000 rules by default. Returns 0, 1 (failure) or 2
 * (bad usage), like a main().
 */
int bench_policy_main(int argc, char **argv);
