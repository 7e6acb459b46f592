/* SPDX-License-Identifier: MIT */
/* vrpc-bench-policy: standalone entry point until vrpc-bench folds it in. */
#include "bench_policy.h"

int main(int argc, char **argv) {
    return bench_policy_main(argc, argv);
}
