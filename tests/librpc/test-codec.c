/* SPDX-License-Identifier: MIT */
/*
 * test-codec.c - librpc's wire codec: the frame header with its per-type bounds (every
 * bound at the limit and one past it), the control messages (every field at its length
 * limit and one past, charsets, canonical encoding), and the name validators.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "vrpc.pb-c.h"
#include "leak.h"

static int decode(uint8_t type, uint8_t flags, uint16_t reserved, uint32_t stream, uint32_t len,
                  uint32_t max_frame)
{
    uint8_t b[RPC_FRAME_HEADER_SIZE];
    RpcFrameHeader h = {
        .type = type, .flags = flags, .reserved = reserved, .stream = stream, .length = len};
    RpcFrameHeader out;
    const char *why = NULL;
    rpc_frame_header_encode(b, &h);
    int r = rpc_frame_header_decode(b, max_frame, &out, &why);
    if (r == 0) {
        ck_assert_uint_eq(out.type, type);
        ck_assert_uint_eq(out.flags, flags);
        ck_assert_uint_eq(out.stream, stream);
        ck_assert_uint_eq(out.length, len);
    } else {
        ck_assert_ptr_nonnull(why);
    }
    return r;
}

START_TEST(header_layout)
{
    uint8_t b[RPC_FRAME_HEADER_SIZE];
    RpcFrameHeader h = {
        .type = RPC_FT_STDOUT, .flags = RPC_FLAG_EOF, .stream = 0x01020304, .length = 0x0a0b0c};
    rpc_frame_header_encode(b, &h);
    const uint8_t want[] = {12, 1, 0, 0, 4, 3, 2, 1, 0x0c, 0x0b, 0x0a, 0};
    ck_assert_mem_eq(b, want, sizeof(want));
    ck_assert_uint_eq(RPC_FRAME_HEADER_SIZE, 12);
}
END_TEST

START_TEST(header_type_and_reserved)
{
    ck_assert_int_eq(decode(0, 0, 0, 0, 4, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_LAST + 1, 0, 0, 1, 0, 65536), -EPROTO);
    ck_assert_int_eq(decode(255, 0, 0, 1, 0, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_LAST, RPC_FLAG_EOF, 0, 1, 0, 65536), 0);
    ck_assert_int_eq(decode(RPC_FT_PING, 0, 1, 0, 8, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_PING, 0, 0x8000, 0, 8, 65536), -EPROTO);
    ck_assert_str_eq(rpc_frame_type_name(0), "invalid");
    ck_assert_str_eq(rpc_frame_type_name(RPC_FT_LAST + 1), "invalid");
    for (unsigned t = 1; t <= RPC_FT_LAST; t++)
        ck_assert_str_ne(rpc_frame_type_name(t), "invalid");
}
END_TEST

START_TEST(header_flags)
{
    /* EOF only on data, ACK only on RESET, nothing else anywhere. */
    for (unsigned t = 1; t <= RPC_FT_LAST; t++) {
        uint32_t stream = (t == RPC_FT_HELLO || t == RPC_FT_GOAWAY || t == RPC_FT_PING ||
                           t == RPC_FT_PONG)
                              ? 0
                              : 1;
        uint32_t len = t == RPC_FT_PING || t == RPC_FT_PONG    ? 8
                       : t == RPC_FT_WINDOW                    ? 4
                       : t == RPC_FT_HELLO || t == RPC_FT_CALL ? 1
                                                               : 0;
        bool data = rpc_frame_is_data(t);
        if (data)
            len = 1;
        ck_assert_int_eq(decode((uint8_t)t, 0, 0, stream, len, 65536), 0);
        ck_assert_int_eq(decode((uint8_t)t, RPC_FLAG_EOF, 0, stream, len, 65536),
                         data ? 0 : -EPROTO);
        ck_assert_int_eq(decode((uint8_t)t, RPC_FLAG_ACK, 0, stream, len, 65536),
                         t == RPC_FT_RESET ? 0 : -EPROTO);
        for (unsigned f = 4; f < 256; f <<= 1)
            ck_assert_int_eq(decode((uint8_t)t, (uint8_t)f, 0, stream, len, 65536), -EPROTO);
    }
}
END_TEST

START_TEST(header_stream_ids)
{
    /* Connection-level types need stream 0; stream types need non-zero; WINDOW either. */
    ck_assert_int_eq(decode(RPC_FT_HELLO, 0, 0, 1, 10, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_GOAWAY, 0, 0, 1, 0, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_PING, 0, 0, 7, 8, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_PONG, 0, 0, 7, 8, 65536), -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_WINDOW, 0, 0, 0, 4, 65536), 0);
    ck_assert_int_eq(decode(RPC_FT_WINDOW, 0, 0, 9, 4, 65536), 0);
    unsigned stream_types[] = {RPC_FT_CALL,  RPC_FT_ACCEPT, RPC_FT_REFUSE, RPC_FT_EXIT,
                               RPC_FT_RESET, RPC_FT_STDIN,  RPC_FT_STDOUT, RPC_FT_STDERR};
    for (size_t i = 0; i < sizeof(stream_types) / sizeof(stream_types[0]); i++)
        ck_assert_int_eq(decode((uint8_t)stream_types[i],
                                rpc_frame_is_data(stream_types[i]) ? 1 : 0, 0, 0, 1, 65536),
                         -EPROTO);
    ck_assert_int_eq(decode(RPC_FT_STDIN, 0, 0, UINT32_MAX, 1, 65536), 0);
}
END_TEST

/* Every control type: min - 1, min, max, max + 1. */
START_TEST(header_lengths_at_limits)
{
    static const struct {
        uint8_t type;
        uint32_t stream, min, max;
    } t[] = {
        {RPC_FT_HELLO, 0, 1, RPC_HELLO_MAX},
        {RPC_FT_GOAWAY, 0, 0, RPC_REASON_MSG_MAX},
        {RPC_FT_PING, 0, RPC_PING_SIZE, RPC_PING_SIZE},
        {RPC_FT_PONG, 0, RPC_PING_SIZE, RPC_PING_SIZE},
        {RPC_FT_WINDOW, 3, RPC_WINDOW_SIZE, RPC_WINDOW_SIZE},
        {RPC_FT_CALL, 3, 1, RPC_CALL_MAX},
        {RPC_FT_ACCEPT, 3, 0, 0},
        {RPC_FT_REFUSE, 3, 0, RPC_REASON_MSG_MAX},
        {RPC_FT_EXIT, 3, 0, RPC_REASON_MSG_MAX},
        {RPC_FT_RESET, 3, 0, RPC_REASON_MSG_MAX},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (t[i].min > 0)
            ck_assert_int_eq(decode(t[i].type, 0, 0, t[i].stream, t[i].min - 1, 65536), -EPROTO);
        ck_assert_int_eq(decode(t[i].type, 0, 0, t[i].stream, t[i].min, 65536), 0);
        ck_assert_int_eq(decode(t[i].type, 0, 0, t[i].stream, t[i].max, 65536), 0);
        ck_assert_int_eq(decode(t[i].type, 0, 0, t[i].stream, t[i].max + 1, 65536), -EPROTO);
        ck_assert_int_eq(decode(t[i].type, 0, 0, t[i].stream, UINT32_MAX, 65536), -EPROTO);
    }
}
END_TEST

START_TEST(header_data_lengths)
{
    for (uint8_t type = RPC_FT_STDIN; type <= RPC_FT_STDERR; type++) {
        ck_assert_int_eq(decode(type, 0, 0, 1, 65536, 65536), 0);
        ck_assert_int_eq(decode(type, 0, 0, 1, 65537, 65536), -EPROTO);
        ck_assert_int_eq(decode(type, 0, 0, 1, RPC_FRAME_MAX_MIN, RPC_FRAME_MAX_MIN), 0);
        ck_assert_int_eq(decode(type, 0, 0, 1, RPC_FRAME_MAX_MIN + 1, RPC_FRAME_MAX_MIN), -EPROTO);
        /* The hard bound holds whatever max_frame says. */
        ck_assert_int_eq(decode(type, 0, 0, 1, RPC_FRAME_MAX_HARD, UINT32_MAX), 0);
        ck_assert_int_eq(decode(type, 0, 0, 1, RPC_FRAME_MAX_HARD + 1, UINT32_MAX), -EPROTO);
        /* Empty only as EOF. */
        ck_assert_int_eq(decode(type, 0, 0, 1, 0, 65536), -EPROTO);
        ck_assert_int_eq(decode(type, RPC_FLAG_EOF, 0, 1, 0, 65536), 0);
        ck_assert_int_eq(decode(type, RPC_FLAG_EOF, 0, 1, 1, 65536), 0);
    }
    ck_assert_int_eq(rpc_frame_data_type(RPC_CH_STDIN), RPC_FT_STDIN);
    ck_assert_int_eq(rpc_frame_data_type(RPC_CH_STDERR), RPC_FT_STDERR);
    ck_assert_int_eq(rpc_frame_data_channel(RPC_FT_STDOUT), RPC_CH_STDOUT);
    ck_assert(!rpc_frame_is_data(RPC_FT_RESET));
}
END_TEST

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

START_TEST(names_at_limits)
{
    char *s64 = rep('a', 64), *s65 = rep('a', 65), *s32 = rep('u', 32), *s33 = rep('u', 33);
    ck_assert(rpc_valid_service(s64));
    ck_assert(!rpc_valid_service(s65));
    ck_assert(!rpc_valid_service(""));
    ck_assert(!rpc_valid_service(NULL));
    ck_assert(rpc_valid_service("qubes.Filecopy-2_x"));
    ck_assert(!rpc_valid_service("a+b"));
    ck_assert(!rpc_valid_service("a b"));
    ck_assert(!rpc_valid_service("a$b"));
    ck_assert(!rpc_valid_service("a/b"));
    ck_assert(!rpc_valid_service("a@b"));
    ck_assert(rpc_valid_argument(s64));
    ck_assert(!rpc_valid_argument(s65));
    ck_assert(rpc_valid_argument(""));
    ck_assert(rpc_valid_argument(NULL));
    ck_assert(rpc_valid_argument("+a+b.c-d_e"));
    ck_assert(!rpc_valid_argument("a@b"));
    ck_assert(!rpc_valid_argument("a\nb"));
    ck_assert(rpc_valid_target(s64));
    ck_assert(!rpc_valid_target(s65));
    ck_assert(rpc_valid_target("@dispvm:work"));
    ck_assert(rpc_valid_target("@default"));
    ck_assert(rpc_valid_target(""));
    ck_assert(!rpc_valid_target("a+b"));
    ck_assert(!rpc_valid_target("a/b"));
    ck_assert(rpc_valid_domain(s64));
    ck_assert(!rpc_valid_domain(s65));
    ck_assert(!rpc_valid_domain("@adminvm"));
    ck_assert(!rpc_valid_domain("a:b"));
    /* Qualified names: a dispatcher sends an agent a CALL from work@hosta. */
    ck_assert(rpc_valid_domain("work@hosta"));
    ck_assert(rpc_valid_domain("dom0@host-b.lan"));
    ck_assert(!rpc_valid_domain("work@Hosta"));
    ck_assert(!rpc_valid_domain("work@"));
    ck_assert(!rpc_valid_domain("@hosta"));
    ck_assert(!rpc_valid_domain("a@b@c"));
    ck_assert(rpc_valid_target("vault@hostb"));
    ck_assert(rpc_valid_target("@adminvm"));
    ck_assert(!rpc_valid_target("@adminvm@hostb"));
    ck_assert(!rpc_valid_target("vault@-b"));
    ck_assert(rpc_valid_user(s32));
    ck_assert(!rpc_valid_user(s33));
    ck_assert(!rpc_valid_user("root user"));
    /* High bytes are never name characters. */
    ck_assert(!rpc_valid_service("caf\xc3\xa9"));
    free(s64);
    free(s65);
    free(s32);
    free(s33);
}
END_TEST

START_TEST(reason_at_limits)
{
    char *r256 = rep('r', 256), *r257 = rep('r', 257);
    ck_assert(rpc_valid_reason(r256));
    ck_assert(!rpc_valid_reason(r257));
    ck_assert(!rpc_valid_reason("line\nbreak"));
    ck_assert(!rpc_valid_reason("esc\x1b[31m"));
    ck_assert(!rpc_valid_reason("del\x7f"));
    ck_assert(rpc_valid_reason("~ !\"#"));
    char out[RPC_REASON_MAX + 1];
    rpc_sanitize_reason(out, sizeof(out), "a\nb\x80");
    ck_assert_str_eq(out, "a?b?");
    rpc_sanitize_reason(out, sizeof(out), r257);
    ck_assert_uint_eq(strlen(out), 256);

    /* Encoder sanitises and truncates; the decoder accepts 256 and refuses 257. */
    uint8_t buf[1024];
    RpcReasonMsg m;
    const char *why;
    int n = rpc_msg_encode_reason(RPC_FT_EXIT, -3, r257, buf, RPC_REASON_MSG_MAX);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, (int)RPC_REASON_MSG_MAX);
    ck_assert_int_eq(rpc_msg_decode_reason(RPC_FT_EXIT, buf, (size_t)n, &m, &why), 0);
    ck_assert_int_eq(m.code, -3);
    ck_assert_str_eq(m.reason, r256);
    /* GOAWAY and RESET with the largest code still fit the bound. */
    n = rpc_msg_encode_reason(RPC_FT_RESET, UINT32_MAX, r256, buf, RPC_REASON_MSG_MAX);
    ck_assert_int_gt(n, 0);
    n = rpc_msg_encode_reason(RPC_FT_GOAWAY, UINT32_MAX, r256, buf, RPC_REASON_MSG_MAX);
    ck_assert_int_gt(n, 0);
    n = rpc_msg_encode_reason(RPC_FT_EXIT, INT32_MIN, r256, buf, RPC_REASON_MSG_MAX);
    ck_assert_int_gt(n, 0);

    /* A 257-byte reason crafted by hand is refused. */
    Vrpc__Exit e = VRPC__EXIT__INIT;
    e.code = 1;
    e.reason = r257;
    n = (int)vrpc__exit__pack(&e, buf);
    ck_assert_int_eq(rpc_msg_decode_reason(RPC_FT_EXIT, buf, (size_t)n, &m, &why), -EPROTO);
    e.reason = "bad\nline";
    n = (int)vrpc__exit__pack(&e, buf);
    ck_assert_int_eq(rpc_msg_decode_reason(RPC_FT_EXIT, buf, (size_t)n, &m, &why), -EPROTO);
    /* Over the per-message bound before unpacking. */
    ck_assert_int_eq(rpc_msg_decode_reason(RPC_FT_EXIT, buf, RPC_REASON_MSG_MAX + 1, &m, &why),
                     -EPROTO);
    ck_assert_int_eq(rpc_msg_decode_reason(RPC_FT_PING, buf, 0, &m, &why), -EPROTO);
    free(r256);
    free(r257);
}
END_TEST

static int pack_call(const char *service, const char *arg, const char *target, const char *source,
                     const char *user, uint8_t *buf)
{
    Vrpc__Call c = VRPC__CALL__INIT;
    c.service = (char *)service;
    c.argument = (char *)arg;
    c.target = (char *)target;
    c.source = (char *)source;
    c.user = (char *)user;
    return (int)vrpc__call__pack(&c, buf);
}

static int decode_call(const uint8_t *b, int n)
{
    RpcCallMsg m;
    const char *why;
    return rpc_msg_decode_call(b, (size_t)n, &m, &why);
}

/* The name rules are common/names.h's, shared with the policy: a source domain starts with a
 * letter or digit and a user does not start with '-' (before issue 10 the codec let both
 * through and only the policy refused them). Empty still means "none". */
START_TEST(call_fields_common_rules)
{
    uint8_t buf[1024];
    RpcCall call = {.service = "demo.Echo", .source = "work", .user = "alice"};
    RpcCall bad;

    ck_assert_int_gt(rpc_msg_encode_call(&call, buf, sizeof(buf)), 0);
    bad = call, bad.source = ".work";
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.source = "-work";
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.user = "-root";
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "_work", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "", "-root", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "work", "r-oot", buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "", "", buf)), 0);
    /* Cross-host: source and target may be DOMAIN@HOST, and nothing else loosens. */
    call.source = "work@hosta";
    call.target = "vault@hostb";
    ck_assert_int_gt(rpc_msg_encode_call(&call, buf, sizeof(buf)), 0);
    bad = call, bad.source = "work@Hosta";
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.target = "@adminvm@hostb";
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "dom0@hostb", "work@hosta", "", buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "work@", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "@hosta", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "v@-b", "work", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "a@b@c", "work", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a@b", "", "", "work@hosta", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "work@hosta", "a@b", buf)), -EPROTO);
}
END_TEST

START_TEST(call_fields_at_limits)
{
    char *s64 = rep('s', 64), *s65 = rep('s', 65), *u32 = rep('u', 32), *u33 = rep('u', 33);
    uint8_t buf[2048];
    int n;

    /* Every field at its limit at once: fits RPC_CALL_MAX and round-trips. */
    RpcCall call = {.service = s64,
                    .argument = s64,
                    .target = s64,
                    .source = s64,
                    .user = u32,
                    .call_id = UINT64_MAX,
                    .flags = UINT32_MAX};
    n = rpc_msg_encode_call(&call, buf, RPC_CALL_MAX);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, (int)RPC_CALL_MAX);
    RpcCallMsg m;
    const char *why;
    ck_assert_int_eq(rpc_msg_decode_call(buf, (size_t)n, &m, &why), 0);
    ck_assert_str_eq(m.service, s64);
    ck_assert_str_eq(m.user, u32);
    ck_assert_uint_eq(m.call_id, UINT64_MAX);
    ck_assert_uint_eq(m.flags, UINT32_MAX);
    /* The encoder refuses one byte more in each field. */
    RpcCall bad = call;
    bad.service = s65;
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.argument = s65;
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.target = s65;
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.source = s65;
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    bad = call, bad.user = u33;
    ck_assert_int_eq(rpc_msg_encode_call(&bad, buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(rpc_msg_encode_call(&call, buf, 10), -EMSGSIZE);

    /* The decoder refuses hand-made messages one byte over, field by field. */
    ck_assert_int_eq(decode_call(buf, pack_call(s64, "", "", "", "", buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call(s65, "", "", "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("x", s64, "", "", "", buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call("x", s65, "", "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("x", "", s64, "", "", buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call("x", "", s65, "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("x", "", "", s64, "", buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call("x", "", "", s65, "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("x", "", "", "", u32, buf)), 0);
    ck_assert_int_eq(decode_call(buf, pack_call("x", "", "", "", u33, buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("", "", "", "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a;b", "", "", "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "$x", "", "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "a b", "", "", buf)), -EPROTO);
    ck_assert_int_eq(decode_call(buf, pack_call("a", "", "", "@x", "", buf)), -EPROTO);
    /* Over the bound before unpacking. */
    ck_assert_int_eq(decode_call(buf, RPC_CALL_MAX + 1), -EPROTO);
    free(s64);
    free(s65);
    free(u32);
    free(u33);
}
END_TEST

START_TEST(call_canonical_only)
{
    uint8_t buf[256], twice[512];
    int n = pack_call("svc", "", "", "", "", buf);

    /* A repeated field (last one wins in protobuf) is refused: one encoding per message. */
    memcpy(twice, buf, (size_t)n);
    memcpy(twice + n, buf, (size_t)n);
    ck_assert_int_eq(decode_call(twice, 2 * n), -EPROTO);
    /* An embedded NUL would hide bytes behind the string's end. */
    const uint8_t nul[] = {0x0a, 0x05, 'a', 'b', 0, 'c', 'd'};
    ck_assert_int_eq(decode_call(nul, sizeof(nul)), -EPROTO);
    /* An unknown field. */
    uint8_t unk[64];
    memcpy(unk, buf, (size_t)n);
    unk[n] = (15 << 3) | 0; /* field 15, varint */
    unk[n + 1] = 1;
    ck_assert_int_eq(decode_call(unk, n + 2), -EPROTO);
    /* An overlong varint for call_id. */
    const uint8_t longv[] = {0x0a, 0x01, 'a', 0x30, 0x81, 0x00};
    ck_assert_int_eq(decode_call(longv, sizeof(longv)), -EPROTO);
    /* Truncated and garbage input. */
    ck_assert_int_eq(decode_call(buf, n - 1), -EPROTO);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    ck_assert_int_eq(decode_call(junk, sizeof(junk)), -EPROTO);
}
END_TEST

static int hello_with(void (*tweak)(Vrpc__Hello *h, uint32_t v), uint32_t v)
{
    Vrpc__Hello h = VRPC__HELLO__INIT;
    uint8_t buf[256];
    RpcHelloMsg m;
    const char *why;
    h.version_min = 1;
    h.version_max = 1;
    h.role = 1;
    h.max_frame = 65536;
    h.max_streams = 1024;
    h.stream_window = 65536;
    h.conn_window = 1 << 20;
    tweak(&h, v);
    size_t n = vrpc__hello__pack(&h, buf);
    return rpc_msg_decode_hello(buf, n, &m, &why);
}

static void t_vmin(Vrpc__Hello *h, uint32_t v)
{
    h->version_min = v;
}
static void t_vmax(Vrpc__Hello *h, uint32_t v)
{
    h->version_max = v;
}
static void t_role(Vrpc__Hello *h, uint32_t v)
{
    h->role = v;
}
static void t_frame(Vrpc__Hello *h, uint32_t v)
{
    h->max_frame = v;
}
static void t_streams(Vrpc__Hello *h, uint32_t v)
{
    h->max_streams = v;
}
static void t_swin(Vrpc__Hello *h, uint32_t v)
{
    h->stream_window = v, h->conn_window = 1u << 30;
}
static void t_cwin(Vrpc__Hello *h, uint32_t v)
{
    h->conn_window = v;
}

START_TEST(hello_fields_at_limits)
{
    ck_assert_int_eq(hello_with(t_vmin, 1), 0);
    ck_assert_int_eq(hello_with(t_vmin, 0), -EPROTO);
    ck_assert_int_eq(hello_with(t_vmin, 2), -EPROTO); /* min > max */
    ck_assert_int_eq(hello_with(t_vmax, 9), 0);       /* decodes; negotiation decides */
    ck_assert_int_eq(hello_with(t_role, 2), 0);
    ck_assert_int_eq(hello_with(t_role, 0), -EPROTO);
    ck_assert_int_eq(hello_with(t_role, 3), -EPROTO);
    ck_assert_int_eq(hello_with(t_frame, RPC_FRAME_MAX_MIN), 0);
    ck_assert_int_eq(hello_with(t_frame, RPC_FRAME_MAX_MIN - 1), -EPROTO);
    ck_assert_int_eq(hello_with(t_frame, RPC_FRAME_MAX_HARD), 0);
    ck_assert_int_eq(hello_with(t_frame, RPC_FRAME_MAX_HARD + 1), -EPROTO);
    ck_assert_int_eq(hello_with(t_streams, 1), 0);
    ck_assert_int_eq(hello_with(t_streams, 0), -EPROTO);
    ck_assert_int_eq(hello_with(t_streams, RPC_MAX_STREAMS_MAX), 0);
    ck_assert_int_eq(hello_with(t_streams, RPC_MAX_STREAMS_MAX + 1), -EPROTO);
    ck_assert_int_eq(hello_with(t_swin, RPC_STREAM_WINDOW_MIN), 0);
    ck_assert_int_eq(hello_with(t_swin, RPC_STREAM_WINDOW_MIN - 1), -EPROTO);
    ck_assert_int_eq(hello_with(t_swin, RPC_STREAM_WINDOW_MAX), 0);
    ck_assert_int_eq(hello_with(t_swin, RPC_STREAM_WINDOW_MAX + 1), -EPROTO);
    ck_assert_int_eq(hello_with(t_cwin, 65536), 0);
    ck_assert_int_eq(hello_with(t_cwin, 65535), -EPROTO); /* below the stream window */
    ck_assert_int_eq(hello_with(t_cwin, RPC_WINDOW_MAX), 0);
    ck_assert_int_eq(hello_with(t_cwin, RPC_WINDOW_MAX + 1), -EPROTO);

    /* Round trip through our encoder, and the length bound before unpacking. */
    RpcHelloMsg in = {1, 1, 0, 2, 4096, 1, 1024, 1024}, out;
    uint8_t buf[RPC_HELLO_MAX + 8];
    const char *why;
    int n = rpc_msg_encode_hello(&in, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(rpc_msg_decode_hello(buf, (size_t)n, &out, &why), 0);
    ck_assert_mem_eq(&in, &out, sizeof(in));
    ck_assert_int_eq(rpc_msg_decode_hello(buf, RPC_HELLO_MAX + 1, &out, &why), -EPROTO);
    /* The largest HELLO fits its bound. */
    RpcHelloMsg big = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                       UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
    ck_assert_int_le(rpc_msg_encode_hello(&big, buf, sizeof(buf)), (int)RPC_HELLO_MAX);
}
END_TEST

START_TEST(le32)
{
    uint8_t b[4];
    rpc_put_le32(b, 0xdeadbeef);
    ck_assert_uint_eq(b[0], 0xef);
    ck_assert_uint_eq(b[3], 0xde);
    ck_assert_uint_eq(rpc_get_le32(b), 0xdeadbeef);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("librpc-codec");
    TCase *tc = tcase_create("codec");
    vt_leak_fixture(tc);
    tcase_add_test(tc, header_layout);
    tcase_add_test(tc, header_type_and_reserved);
    tcase_add_test(tc, header_flags);
    tcase_add_test(tc, header_stream_ids);
    tcase_add_test(tc, header_lengths_at_limits);
    tcase_add_test(tc, header_data_lengths);
    tcase_add_test(tc, names_at_limits);
    tcase_add_test(tc, reason_at_limits);
    tcase_add_test(tc, call_fields_at_limits);
    tcase_add_test(tc, call_fields_common_rules);
    tcase_add_test(tc, call_canonical_only);
    tcase_add_test(tc, hello_fields_at_limits);
    tcase_add_test(tc, le32);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
