/* SPDX-License-Identifier: MIT */
/* vrpc-bench-policy: the policy benchmark as a program of its own (also `vrpc-bench policy`). */
#include "bench-policy.h"

int main(int argc, char **argv)
{
    return bench_policy_main(argc, argv);
}
