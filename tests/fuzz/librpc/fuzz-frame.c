/* SPDX-License-Identifier: MIT */
/*
 * fuzz-frame.c - libFuzzer harness for librpc's frame decoder: the header with its per-type
 * bounds and every control-message decoder, fed arbitrary bytes. The first byte picks the
 * decoder and the max frame; whatever decodes must re-encode to bytes that decode to the
 * same values (the decoders accept only canonical encodings).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why;

    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    data++;
    size--;
    switch (sel % 6) {
    case 0: {
        RpcFrameHeader h;
        uint32_t max = RPC_FRAME_MAX_MIN << (sel >> 4);
        if (size >= RPC_FRAME_HEADER_SIZE && rpc_frame_header_decode(data, max, &h, &why) == 0) {
            uint8_t again[RPC_FRAME_HEADER_SIZE];
            rpc_frame_header_encode(again, &h);
            if (memcmp(again, data, sizeof(again)) != 0)
                abort();
            if (h.length > RPC_FRAME_MAX_HARD)
                abort();
        }
        break;
    }
    case 1: {
        RpcHelloMsg m, m2;
        uint8_t buf[RPC_HELLO_MAX];
        if (rpc_msg_decode_hello(data, size, &m, &why) == 0) {
            int n = rpc_msg_encode_hello(&m, buf, sizeof(buf));
            if (n < 0 || rpc_msg_decode_hello(buf, (size_t)n, &m2, &why) != 0 ||
                memcmp(&m, &m2, sizeof(m)) != 0)
                abort();
        }
        break;
    }
    case 2: {
        RpcCallMsg m, m2;
        RpcCall call;
        uint8_t buf[RPC_CALL_MAX];
        if (rpc_msg_decode_call(data, size, &m, &why) == 0) {
            rpc_call_from_msg(&call, &m);
            int n = rpc_msg_encode_call(&call, buf, sizeof(buf));
            if (n < 0 || (size_t)n != size || memcmp(buf, data, size) != 0)
                abort();
            if (rpc_msg_decode_call(buf, (size_t)n, &m2, &why) != 0 ||
                strcmp(m.service, m2.service) != 0)
                abort();
        }
        break;
    }
    default: {
        static const unsigned types[] = {RPC_FT_GOAWAY, RPC_FT_EXIT, RPC_FT_RESET};
        unsigned type = types[(sel % 6) - 3];
        RpcReasonMsg m, m2;
        uint8_t buf[RPC_REASON_MSG_MAX];
        if (rpc_msg_decode_reason(type, data, size, &m, &why) == 0) {
            if (!rpc_valid_reason(m.reason))
                abort();
            int n = rpc_msg_encode_reason(type, m.code, m.reason, buf, sizeof(buf));
            if (n < 0 || rpc_msg_decode_reason(type, buf, (size_t)n, &m2, &why) != 0 ||
                m.code != m2.code || strcmp(m.reason, m2.reason) != 0)
                abort();
        }
        break;
    }
    }
    return 0;
}
