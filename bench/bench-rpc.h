/* SPDX-License-Identifier: MIT */
/* bench-rpc.h - `vrpc-bench rpc-mux`: librpc streams vs the raw vchan underneath. */
#pragma once

int bench_rpc_main(int argc, char **argv);
