/* SPDX-License-Identifier: MIT */
/* bench-remote.h - `vrpc-bench remote`: calls across two hosts linked by TLS, next to the
 * same calls between two guests of one host. */
#pragma once

int bench_remote_main(int argc, char **argv);
