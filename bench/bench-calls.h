/* SPDX-License-Identifier: MIT */
/* bench-calls.h - `vrpc-bench calls`: end-to-end call latency, streaming and concurrency. */
#pragma once

int bench_calls_main(int argc, char **argv);
