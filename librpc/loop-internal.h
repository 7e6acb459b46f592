/* SPDX-License-Identifier: MIT */
/* loop-internal.h - what the loop tells the rest of librpc, not the library's users. */
#pragma once

#include <stdint.h>

#include "loop.h"

/* The number of epoll_wait() calls of @loop that returned: what a fd callback reports was true
 * when the count last moved. */
uint64_t rpc_loop_poll_count(const RpcLoop *loop);
