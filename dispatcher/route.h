/* SPDX-License-Identifier: MIT */
/*
 * route.h - one call through the dispatcher: policy, then a dom0 service or a relay to the
 * target guest's agent. Called from the connection callbacks of peer.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher.h"
#include "librpc/rpc.h"

/* A CALL arrived on @src's connection (we are the HANDLER of @s). */
void route_call(Peer *src, RpcStream *s, const RpcCall *untrusted_call);

/* @p is being freed: forget it in every call. */
void route_peer_gone(Peer *p);

/* Shutdown: free every call record left (their streams and handlers are gone). */
void route_free_all(Dispatcher *d);
