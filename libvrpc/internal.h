/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what libvrpc's source files share. Only vrpc/vrpc.h is public; everything
 * else in the library (librpc, linked in statically) stays local to libvrpc.so through
 * -fvisibility=hidden and the version script libvrpc/libvrpc.map.
 */
#pragma once

#include <stdint.h>

#include "vrpc/vrpc.h"

/* Hold the client connection's output (rpc_conn_cork) until the matching uncork writes it
 * all at once: vrpc_call() opens a call, writes its input and closes it in one write. */
void vrpc_client_cork(VrpcClient *c);
void vrpc_client_uncork(VrpcClient *c);
