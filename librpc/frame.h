/* SPDX-License-Identifier: MIT */
/*
 * frame.h - private: the vrpc wire codec. Frame header encode/decode with per-type bounds,
 * and the protobuf-c control messages packed into and unpacked from bounded buffers, with
 * field validation. No I/O and no connection state: the fuzzers and unit tests drive it
 * directly.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

/* Frame types (u8 on the wire). 0 and everything above RPC_FT_LAST are invalid. */
typedef enum RpcFrameType {
    RPC_FT_HELLO = 1,
    RPC_FT_GOAWAY = 2,
    RPC_FT_PING = 3,
    RPC_FT_PONG = 4,
    RPC_FT_WINDOW = 5,
    RPC_FT_CALL = 6,
    RPC_FT_ACCEPT = 7,
    RPC_FT_REFUSE = 8,
    RPC_FT_EXIT = 9,
    RPC_FT_RESET = 10,
    RPC_FT_STDIN = 11,
    RPC_FT_STDOUT = 12,
    RPC_FT_STDERR = 13,
    RPC_FT_LAST = RPC_FT_STDERR,
} RpcFrameType;

#define RPC_FLAG_EOF 0x01u /* DATA: the sender half-closes this channel after the payload */
#define RPC_FLAG_ACK 0x02u /* RESET: acknowledges the peer's RESET */

/* Payload bounds of the control messages. */
#define RPC_HELLO_MAX 128u
#define RPC_CALL_MAX 512u
#define RPC_REASON_MSG_MAX (RPC_REASON_MAX + 16u) /* GOAWAY, EXIT, REFUSE, RESET */
#define RPC_PING_SIZE 8u
#define RPC_WINDOW_SIZE 4u
/* Largest window increment and window. */
#define RPC_WINDOW_MAX ((uint32_t)1 << 30)
#define RPC_STREAM_WINDOW_MIN 1024u
#define RPC_STREAM_WINDOW_MAX ((uint32_t)64 << 20)
#define RPC_MAX_STREAMS_MAX ((uint32_t)1 << 20)

typedef struct RpcFrameHeader {
    uint8_t type;
    uint8_t flags;
    uint16_t reserved;
    uint32_t stream;
    uint32_t length;
} RpcFrameHeader;

/* A received call, with its strings copied after validation. */
typedef struct RpcCallMsg {
    char service[RPC_SERVICE_MAX + 1];
    char argument[RPC_ARG_MAX + 1];
    char target[RPC_DOMAIN_MAX + 1];
    char source[RPC_DOMAIN_MAX + 1];
    char user[RPC_USER_MAX + 1];
    uint64_t call_id;
    uint32_t flags;
} RpcCallMsg;

typedef struct RpcHelloMsg {
    uint32_t version_min, version_max;
    uint32_t features;
    uint32_t role;
    uint32_t max_frame;
    uint32_t max_streams;
    uint32_t stream_window;
    uint32_t conn_window;
} RpcHelloMsg;

/* GOAWAY, EXIT, REFUSE and RESET: a code and a reason. */
typedef struct RpcReasonMsg {
    int64_t code; /* int32 for EXIT/REFUSE, uint32 for GOAWAY/RESET */
    char reason[RPC_REASON_MAX + 1];
} RpcReasonMsg;

const char *rpc_frame_type_name(unsigned type);

void rpc_frame_header_encode(uint8_t out[RPC_FRAME_HEADER_SIZE], const RpcFrameHeader *h);

/*
 * Decode and validate a header: known type, flags allowed for the type, reserved zero,
 * stream id zero exactly for the connection-level types, length within the type's bounds
 * (DATA: <= @max_frame, and 0 only with EOF). Returns 0, or -EPROTO with *@whyp set to a
 * static reason.
 */
int rpc_frame_header_decode(const uint8_t in[RPC_FRAME_HEADER_SIZE], uint32_t max_frame,
                            RpcFrameHeader *hp, const char **whyp);

/* Channel <-> DATA frame type. */
RpcFrameType rpc_frame_data_type(RpcChannel ch);
bool rpc_frame_is_data(unsigned type);
RpcChannel rpc_frame_data_channel(unsigned type);

/*
 * Message encoders: write the payload into @buf (@cap bytes) and return its length, or
 * -EINVAL (a field breaks its rule) / -EMSGSIZE (@cap too small). Reasons are sanitised
 * (non-printable bytes become '?', truncated to RPC_REASON_MAX), never refused.
 */
int rpc_msg_encode_hello(const RpcHelloMsg *m, uint8_t *buf, size_t cap);
int rpc_msg_encode_call(const RpcCall *call, uint8_t *buf, size_t cap);
int rpc_msg_encode_reason(unsigned type, int64_t code, const char *reason, uint8_t *buf,
                          size_t cap);

/*
 * Message decoders: unpack exactly @len bytes (already bounded by the header), demand the
 * canonical encoding (re-packing gives the same bytes: no unknown or repeated fields, no
 * embedded NUL in strings), then validate every field. Return 0 or -EPROTO with *@whyp.
 */
int rpc_msg_decode_hello(const uint8_t *untrusted_buf, size_t len, RpcHelloMsg *mp,
                         const char **whyp);
int rpc_msg_decode_call(const uint8_t *untrusted_buf, size_t len, RpcCallMsg *mp,
                        const char **whyp);
int rpc_msg_decode_reason(unsigned type, const uint8_t *untrusted_buf, size_t len, RpcReasonMsg *mp,
                          const char **whyp);

/* Raw fixed payloads. */
void rpc_put_le32(uint8_t *p, uint32_t v);
uint32_t rpc_get_le32(const uint8_t *p);

/* Copy @in into @out (@cap >= 1) replacing non-printable bytes with '?', truncating. */
void rpc_sanitize_reason(char *out, size_t cap, const char *in);
/* True if @s is printable ASCII and at most RPC_REASON_MAX bytes. */
bool rpc_valid_reason(const char *s);

/* Fill a RpcCall view over a received message. */
void rpc_call_from_msg(RpcCall *call, const RpcCallMsg *m);
