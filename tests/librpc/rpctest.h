/* SPDX-License-Identifier: MIT */
/*
 * rpctest.h - helpers for librpc's unit tests: a pair of connections over a socketpair or an
 * in-process vchan pair, callbacks that record every event per side, a pump that dispatches
 * both ends until nothing moves, and a raw peer for writing hand-made frames.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "rpc.h"

typedef enum RtTransport {
    RT_SOCKET = 0,
    RT_VCHAN = 1,
    /* rpc_conn_new_stream() over a socketpair through a transport that buffers what it
     * reads (as TLS does): bytes the fd's poll does not see, reported by its pending. */
    RT_STREAM = 2,
    RT__COUNT,
} RtTransport;

#define RT_MAX_STREAMS 4096
/* Bound of rt_pump_until() waits: a hang guard sized for a busy machine. */
#define RT_HANG_MS 60000

/* What one side saw, per stream slot (slot = index in order of on_call/open). */
typedef struct RtStreamLog {
    RpcStream *s;
    uint32_t id;
    bool accepted;
    bool exited;
    bool refused;
    int32_t exit_code;
    char exit_reason[RPC_REASON_MAX + 1];
    bool reset;
    uint32_t reset_code;
    bool reset_local;
    char reset_reason[RPC_REASON_MAX + 1];
    bool freed;
    int ready_at_free; /* the side's on_ready count when on_stream_free came */
    bool eof[3];
    size_t nbytes[3];
    uint8_t *buf[3]; /* received bytes (grown) */
    size_t cap[3];
    int writable;
    size_t consume_limit; /* bytes consumed per on_data (SIZE_MAX: all) */
    int events_after_eof; /* data seen after on_eof on the same channel */
} RtStreamLog;

typedef struct RtSide {
    RpcConn *conn;
    int ready;
    RpcPeerInfo peer;
    int calls;
    bool auto_accept;
    bool closed;
    int close_error;
    char close_reason[RPC_REASON_MAX + 1];
    int nstreams;
    RtStreamLog *log; /* RT_MAX_STREAMS entries */
    size_t default_consume;
    /* Optional overrides: the hook decides how much on_data consumes (the bytes it
     * consumed are still logged), and is told about on_writable. */
    size_t (*data_hook)(struct RtSide *side, RpcStream *s, const uint8_t *data, size_t len);
    void (*writable_hook)(struct RtSide *side, RpcStream *s);
} RtSide;

typedef struct RtPair {
    RtTransport transport;
    RtSide a, b; /* a: initiator, b: acceptor */
    RpcCallbacks cb;
} RtPair;

const char *rt_transport_name(RtTransport t);

/* Make a pair; @cfg_a/@cfg_b NULL for defaults (roles are forced: a initiator, b acceptor). */
void rt_pair_init(RtPair *p, RtTransport t, const RpcConnConfig *cfg_a, const RpcConnConfig *cfg_b);
void rt_pair_deinit(RtPair *p);

/* Dispatch both ends until nothing changes (bounded). Returns the rounds run. */
int rt_pump(RtPair *p);

/* Pump, waiting in poll(2) for fds and timers, until @cond(p) or @max_ms elapsed. */
bool rt_pump_until(RtPair *p, bool (*cond)(RtPair *p), int max_ms);
/* Both ends have exchanged HELLO. */
bool rt_both_ready(RtPair *p);
/* rt_pair_init(), then pump until both ends are ready (asserted). */
void rt_pair_up(RtPair *p, RtTransport t, const RpcConnConfig *cfg_a, const RpcConnConfig *cfg_b);

/* The log slot of stream @s on side @side (adds one if new). */
RtStreamLog *rt_log(RtSide *side, RpcStream *s);
RtStreamLog *rt_log_by_id(RtSide *side, uint32_t id);

RpcStream *rt_open(RtPair *p, RtSide *side, const char *service);

/* A connection whose peer is a raw fd the test drives by hand (socket transport only). */
typedef struct RtRaw {
    RtSide side;
    RpcCallbacks cb;
    int raw; /* our end: write frames, read what the connection sends */
} RtRaw;

void rt_raw_init(RtRaw *r, RpcRole role, const RpcConnConfig *cfg);
void rt_raw_deinit(RtRaw *r);
/* Write one frame (header with the given fields, then @payload). */
void rt_raw_frame(RtRaw *r, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                  size_t len);
/* Write raw bytes. */
void rt_raw_bytes(RtRaw *r, const void *p, size_t n);
/* Send a valid HELLO for @role (the opposite of the connection's). */
void rt_raw_hello(RtRaw *r, RpcRole role);
/* Write a CALL for @service on @stream. */
void rt_raw_call(RtRaw *r, uint32_t stream, const char *service);
/* Dispatch the connection a few times. */
void rt_raw_pump(RtRaw *r);
/* Read and decode the frames the connection wrote so far; returns how many, filling up to
 * @max headers (payload bytes are dropped). */
int rt_raw_read_frames(RtRaw *r, RpcFrameHeader *hs, int max);
