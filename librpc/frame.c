/* SPDX-License-Identifier: MIT */
/*
 * frame.c - the vrpc wire codec: the fixed little-endian frame header with its per-type
 * bounds, and the protobuf-c control messages. Every decoder works on a buffer whose length
 * the header already bounded, checks that the bytes are the canonical encoding of the
 * message it unpacked (so a string cannot hide bytes after an embedded NUL and a field
 * cannot appear twice), and validates each field into a trusted copy.
 */
#include "frame.h"

#include <errno.h>
#include <string.h>

#include "common/names.h"
#include "vrpc.pb-c.h"

static const char *const frame_type_names[] = {
    [0] = "invalid",
    [RPC_FT_HELLO] = "HELLO",
    [RPC_FT_GOAWAY] = "GOAWAY",
    [RPC_FT_PING] = "PING",
    [RPC_FT_PONG] = "PONG",
    [RPC_FT_WINDOW] = "WINDOW_UPDATE",
    [RPC_FT_CALL] = "CALL",
    [RPC_FT_ACCEPT] = "ACCEPT",
    [RPC_FT_REFUSE] = "REFUSE",
    [RPC_FT_EXIT] = "EXIT",
    [RPC_FT_RESET] = "RESET",
    [RPC_FT_STDIN] = "STDIN",
    [RPC_FT_STDOUT] = "STDOUT",
    [RPC_FT_STDERR] = "STDERR",
};

const char *rpc_frame_type_name(unsigned type)
{
    if (type == 0 || type > RPC_FT_LAST)
        return "invalid";
    return frame_type_names[type];
}

/* Per-type rules: allowed flags, whether the stream id is 0, payload bounds. A max of 0
 * with data_bound means "the negotiated max frame". */
static const struct {
    uint8_t flags;
    bool conn_level; /* stream id must be 0 */
    bool any_stream; /* stream id may be 0 or not (WINDOW_UPDATE) */
    bool data;
    uint32_t min, max;
} frame_rules[RPC_FT_LAST + 1] = {
    [RPC_FT_HELLO] = {0, true, false, false, 1, RPC_HELLO_MAX},
    [RPC_FT_GOAWAY] = {0, true, false, false, 0, RPC_REASON_MSG_MAX},
    [RPC_FT_PING] = {0, true, false, false, RPC_PING_SIZE, RPC_PING_SIZE},
    [RPC_FT_PONG] = {0, true, false, false, RPC_PING_SIZE, RPC_PING_SIZE},
    [RPC_FT_WINDOW] = {0, false, true, false, RPC_WINDOW_SIZE, RPC_WINDOW_SIZE},
    [RPC_FT_CALL] = {0, false, false, false, 1, RPC_CALL_MAX},
    [RPC_FT_ACCEPT] = {0, false, false, false, 0, 0},
    [RPC_FT_REFUSE] = {0, false, false, false, 0, RPC_REASON_MSG_MAX},
    [RPC_FT_EXIT] = {0, false, false, false, 0, RPC_REASON_MSG_MAX},
    [RPC_FT_RESET] = {RPC_FLAG_ACK, false, false, false, 0, RPC_REASON_MSG_MAX},
    [RPC_FT_STDIN] = {RPC_FLAG_EOF, false, false, true, 0, 0},
    [RPC_FT_STDOUT] = {RPC_FLAG_EOF, false, false, true, 0, 0},
    [RPC_FT_STDERR] = {RPC_FLAG_EOF, false, false, true, 0, 0},
};

void rpc_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

uint32_t rpc_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void rpc_frame_header_encode(uint8_t out[RPC_FRAME_HEADER_SIZE], const RpcFrameHeader *h)
{
    out[0] = h->type;
    out[1] = h->flags;
    out[2] = (uint8_t)h->reserved;
    out[3] = (uint8_t)(h->reserved >> 8);
    rpc_put_le32(out + 4, h->stream);
    rpc_put_le32(out + 8, h->length);
}

int rpc_frame_header_decode(const uint8_t in[RPC_FRAME_HEADER_SIZE], uint32_t max_frame,
                            RpcFrameHeader *hp, const char **whyp)
{
    uint8_t untrusted_type = in[0];
    uint8_t untrusted_flags = in[1];
    uint16_t untrusted_reserved = (uint16_t)(in[2] | in[3] << 8);
    uint32_t untrusted_stream = rpc_get_le32(in + 4);
    uint32_t untrusted_length = rpc_get_le32(in + 8);

    if (untrusted_type == 0 || untrusted_type > RPC_FT_LAST) {
        *whyp = "unknown frame type";
        return -EPROTO;
    }
    if (untrusted_reserved != 0) {
        *whyp = "reserved header field not zero";
        return -EPROTO;
    }
    if (untrusted_flags & ~frame_rules[untrusted_type].flags) {
        *whyp = "flags not allowed for this frame type";
        return -EPROTO;
    }
    if (frame_rules[untrusted_type].conn_level && untrusted_stream != 0) {
        *whyp = "connection-level frame with a stream id";
        return -EPROTO;
    }
    if (!frame_rules[untrusted_type].conn_level && !frame_rules[untrusted_type].any_stream &&
        untrusted_stream == 0) {
        *whyp = "stream frame on stream 0";
        return -EPROTO;
    }
    if (frame_rules[untrusted_type].data) {
        if (untrusted_length > max_frame || untrusted_length > RPC_FRAME_MAX_HARD) {
            *whyp = "data frame longer than the max frame";
            return -EPROTO;
        }
        if (untrusted_length == 0 && !(untrusted_flags & RPC_FLAG_EOF)) {
            *whyp = "empty data frame without EOF";
            return -EPROTO;
        }
    } else if (untrusted_length < frame_rules[untrusted_type].min ||
               untrusted_length > frame_rules[untrusted_type].max) {
        *whyp = "payload length out of bounds for this frame type";
        return -EPROTO;
    }
    hp->type = untrusted_type;
    hp->flags = untrusted_flags;
    hp->reserved = 0;
    hp->stream = untrusted_stream;
    hp->length = untrusted_length;
    return 0;
}

RpcFrameType rpc_frame_data_type(RpcChannel ch)
{
    return (RpcFrameType)(RPC_FT_STDIN + (unsigned)ch);
}

bool rpc_frame_is_data(unsigned type)
{
    return type >= RPC_FT_STDIN && type <= RPC_FT_STDERR;
}

RpcChannel rpc_frame_data_channel(unsigned type)
{
    return (RpcChannel)(type - RPC_FT_STDIN);
}

/* ---- names --------------------------------------------------------------------------- */

/* The rules themselves live in common/names.c; here an absent or empty optional field
 * (argument, target, source, user) means "none". The length is bounded before the check so
 * that an unterminated buffer is never scanned past the limit. */
static size_t bounded_len(const char *s, size_t max)
{
    return strnlen(s, max + 1);
}

bool rpc_valid_service(const char *s)
{
    return s && vrpc_name_valid_service(s, bounded_len(s, VRPC_NAME_MAX));
}

bool rpc_valid_argument(const char *s)
{
    return !s || vrpc_name_valid_argument(s, bounded_len(s, VRPC_NAME_MAX));
}

bool rpc_valid_target(const char *s)
{
    return !s || vrpc_name_valid_target(s, bounded_len(s, VRPC_NAME_MAX));
}

bool rpc_valid_domain(const char *s)
{
    return !s || !s[0] || vrpc_name_valid_qualified(s, bounded_len(s, VRPC_NAME_MAX));
}

bool rpc_valid_user(const char *s)
{
    return !s || !s[0] || vrpc_name_valid_user(s, bounded_len(s, VRPC_USER_MAX));
}

bool rpc_valid_reason(const char *s)
{
    size_t n = 0;

    if (!s)
        return true;
    for (; s[n]; n++)
        if (n >= RPC_REASON_MAX || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return false;
    return true;
}

void rpc_sanitize_reason(char *out, size_t cap, const char *in)
{
    size_t n = 0;

    if (cap > RPC_REASON_MAX + 1)
        cap = RPC_REASON_MAX + 1;
    for (; in && in[n] && n + 1 < cap; n++) {
        unsigned char ch = (unsigned char)in[n];
        out[n] = (ch >= 0x20 && ch <= 0x7e) ? (char)ch : '?';
    }
    out[n] = '\0';
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- messages ------------------------------------------------------------------------ */

static int pack_checked(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
    size_t need = protobuf_c_message_get_packed_size(m);

    if (need > cap)
        return -EMSGSIZE;
    return (int)protobuf_c_message_pack(m, buf);
}

/* The bytes must be exactly what we would have produced: canonical form. */
static bool is_canonical(const ProtobufCMessage *m, const uint8_t *untrusted_buf, size_t len)
{
    uint8_t again[RPC_CALL_MAX > RPC_REASON_MSG_MAX ? RPC_CALL_MAX : RPC_REASON_MSG_MAX];

    /* protobuf-c keeps unknown fields and would pack them back: refuse them here. */
    if (m->n_unknown_fields != 0)
        return false;
    if (protobuf_c_message_get_packed_size(m) != len || len > sizeof(again))
        return false;
    protobuf_c_message_pack(m, again);
    return memcmp(again, untrusted_buf, len) == 0;
}

/*
 * Unpack @len bytes as a @desc message that must be in canonical form. Returns the message
 * (free it with protobuf_c_message_free_unpacked()), or NULL with *whyp set to @why[0]
 * (does not unpack) or @why[1] (not canonical).
 */
static ProtobufCMessage *unpack_canonical(const ProtobufCMessageDescriptor *desc,
                                          const char *const why[2], const uint8_t *untrusted_buf,
                                          size_t len, const char **whyp)
{
    ProtobufCMessage *untrusted = protobuf_c_message_unpack(desc, NULL, len, untrusted_buf);

    if (!untrusted) {
        *whyp = why[0];
        return NULL;
    }
    if (!is_canonical(untrusted, untrusted_buf, len)) {
        *whyp = why[1];
        protobuf_c_message_free_unpacked(untrusted, NULL);
        return NULL;
    }
    return untrusted;
}

int rpc_msg_encode_hello(const RpcHelloMsg *m, uint8_t *buf, size_t cap)
{
    Vrpc__Hello h = VRPC__HELLO__INIT;

    h.version_min = m->version_min;
    h.version_max = m->version_max;
    h.features = m->features;
    h.role = m->role;
    h.max_frame = m->max_frame;
    h.max_streams = m->max_streams;
    h.stream_window = m->stream_window;
    h.conn_window = m->conn_window;
    return pack_checked(&h.base, buf, cap);
}

int rpc_msg_decode_hello(const uint8_t *untrusted_buf, size_t len, RpcHelloMsg *mp,
                         const char **whyp)
{
    Vrpc__Hello *untrusted;
    int r = -EPROTO;

    if (len > RPC_HELLO_MAX) {
        *whyp = "HELLO too long";
        return -EPROTO;
    }
    untrusted = (Vrpc__Hello *)unpack_canonical(
        &vrpc__hello__descriptor,
        (const char *const[]){"HELLO does not unpack", "HELLO not in canonical encoding"},
        untrusted_buf, len, whyp);
    if (!untrusted)
        return -EPROTO;
    if (untrusted->version_min == 0 || untrusted->version_min > untrusted->version_max)
        *whyp = "HELLO version range invalid";
    else if (untrusted->role != RPC_ROLE_INITIATOR && untrusted->role != RPC_ROLE_ACCEPTOR)
        *whyp = "HELLO role invalid";
    else if (untrusted->max_frame < RPC_FRAME_MAX_MIN || untrusted->max_frame > RPC_FRAME_MAX_HARD)
        *whyp = "HELLO max_frame out of range";
    else if (untrusted->max_streams < 1 || untrusted->max_streams > RPC_MAX_STREAMS_MAX)
        *whyp = "HELLO max_streams out of range";
    else if (untrusted->stream_window < RPC_STREAM_WINDOW_MIN ||
             untrusted->stream_window > RPC_STREAM_WINDOW_MAX)
        *whyp = "HELLO stream_window out of range";
    else if (untrusted->conn_window < untrusted->stream_window ||
             untrusted->conn_window > RPC_WINDOW_MAX)
        *whyp = "HELLO conn_window out of range";
    else {
        mp->version_min = untrusted->version_min;
        mp->version_max = untrusted->version_max;
        mp->features = untrusted->features;
        mp->role = untrusted->role;
        mp->max_frame = untrusted->max_frame;
        mp->max_streams = untrusted->max_streams;
        mp->stream_window = untrusted->stream_window;
        mp->conn_window = untrusted->conn_window;
        r = 0;
    }
    vrpc__hello__free_unpacked(untrusted, NULL);
    return r;
}

int rpc_msg_encode_call(const RpcCall *call, uint8_t *buf, size_t cap)
{
    Vrpc__Call c = VRPC__CALL__INIT;

    if (!rpc_valid_service(call->service) || !rpc_valid_argument(call->argument) ||
        !rpc_valid_target(call->target) || !rpc_valid_domain(call->source) ||
        !rpc_valid_user(call->user))
        return -EINVAL;
    /* protobuf-c takes char *; it only reads them when packing. */
    c.service = (char *)call->service;
    c.argument = (char *)str_or_empty(call->argument);
    c.target = (char *)str_or_empty(call->target);
    c.source = (char *)str_or_empty(call->source);
    c.user = (char *)str_or_empty(call->user);
    c.call_id = call->call_id;
    c.flags = call->flags;
    return pack_checked(&c.base, buf, cap);
}

int rpc_msg_decode_call(const uint8_t *untrusted_buf, size_t len, RpcCallMsg *mp, const char **whyp)
{
    Vrpc__Call *untrusted;
    int r = -EPROTO;

    if (len > RPC_CALL_MAX) {
        *whyp = "CALL too long";
        return -EPROTO;
    }
    untrusted = (Vrpc__Call *)unpack_canonical(
        &vrpc__call__descriptor,
        (const char *const[]){"CALL does not unpack", "CALL not in canonical encoding"},
        untrusted_buf, len, whyp);
    if (!untrusted)
        return -EPROTO;
    if (!rpc_valid_service(untrusted->service))
        *whyp = "CALL service name invalid";
    else if (!rpc_valid_argument(untrusted->argument))
        *whyp = "CALL argument invalid";
    else if (!rpc_valid_target(untrusted->target))
        *whyp = "CALL target invalid";
    else if (!rpc_valid_domain(untrusted->source))
        *whyp = "CALL source invalid";
    else if (!rpc_valid_user(untrusted->user))
        *whyp = "CALL user invalid";
    else {
        /* Lengths were bounded by the validators above. */
        strcpy(mp->service, untrusted->service);
        strcpy(mp->argument, untrusted->argument);
        strcpy(mp->target, untrusted->target);
        strcpy(mp->source, untrusted->source);
        strcpy(mp->user, untrusted->user);
        mp->call_id = untrusted->call_id;
        mp->flags = untrusted->flags;
        r = 0;
    }
    vrpc__call__free_unpacked(untrusted, NULL);
    return r;
}

int rpc_msg_encode_reason(unsigned type, int64_t code, const char *reason, uint8_t *buf, size_t cap)
{
    char clean[RPC_REASON_MAX + 1];

    rpc_sanitize_reason(clean, sizeof(clean), reason);
    switch (type) {
    case RPC_FT_GOAWAY: {
        Vrpc__GoAway m = VRPC__GO_AWAY__INIT;
        m.code = (uint32_t)code;
        m.reason = clean;
        return pack_checked(&m.base, buf, cap);
    }
    case RPC_FT_EXIT:
    case RPC_FT_REFUSE: {
        Vrpc__Exit m = VRPC__EXIT__INIT;
        m.code = (int32_t)code;
        m.reason = clean;
        return pack_checked(&m.base, buf, cap);
    }
    case RPC_FT_RESET: {
        Vrpc__Reset m = VRPC__RESET__INIT;
        m.code = (uint32_t)code;
        m.reason = clean;
        return pack_checked(&m.base, buf, cap);
    }
    default:
        return -EINVAL;
    }
}

int rpc_msg_decode_reason(unsigned type, const uint8_t *untrusted_buf, size_t len, RpcReasonMsg *mp,
                          const char **whyp)
{
    ProtobufCMessage *untrusted;
    const ProtobufCMessageDescriptor *desc;
    const char *untrusted_reason;
    int64_t untrusted_code;
    int r = -EPROTO;

    if (len > RPC_REASON_MSG_MAX) {
        *whyp = "message too long";
        return -EPROTO;
    }
    switch (type) {
    case RPC_FT_GOAWAY:
        desc = &vrpc__go_away__descriptor;
        break;
    case RPC_FT_EXIT:
    case RPC_FT_REFUSE:
        desc = &vrpc__exit__descriptor;
        break;
    case RPC_FT_RESET:
        desc = &vrpc__reset__descriptor;
        break;
    default:
        *whyp = "not a reason message";
        return -EPROTO;
    }
    untrusted = unpack_canonical(
        desc, (const char *const[]){"message does not unpack", "message not in canonical encoding"},
        untrusted_buf, len, whyp);
    if (!untrusted)
        return -EPROTO;
    if (desc == &vrpc__go_away__descriptor) {
        untrusted_code = ((Vrpc__GoAway *)untrusted)->code;
        untrusted_reason = ((Vrpc__GoAway *)untrusted)->reason;
    } else if (desc == &vrpc__exit__descriptor) {
        untrusted_code = ((Vrpc__Exit *)untrusted)->code;
        untrusted_reason = ((Vrpc__Exit *)untrusted)->reason;
    } else {
        untrusted_code = ((Vrpc__Reset *)untrusted)->code;
        untrusted_reason = ((Vrpc__Reset *)untrusted)->reason;
    }
    if (!rpc_valid_reason(untrusted_reason))
        *whyp = "reason not printable ASCII or too long";
    else {
        mp->code = untrusted_code;
        strcpy(mp->reason, untrusted_reason ? untrusted_reason : "");
        r = 0;
    }
    protobuf_c_message_free_unpacked(untrusted, NULL);
    return r;
}

void rpc_call_from_msg(RpcCall *call, const RpcCallMsg *m)
{
    call->service = m->service;
    call->argument = m->argument;
    call->target = m->target;
    call->source = m->source;
    call->user = m->user;
    call->call_id = m->call_id;
    call->flags = m->flags;
}
