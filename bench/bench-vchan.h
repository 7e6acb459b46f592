/* SPDX-License-Identifier: MIT */
/* bench-vchan.h - `vrpc-bench vchan`: vrpc's vchan vs libxenvchan, a pipe and a socketpair. */
#pragma once

int bench_vchan_main(int argc, char **argv);
