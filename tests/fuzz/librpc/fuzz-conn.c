/* SPDX-License-Identifier: MIT */
/*
 * fuzz-conn.c - libFuzzer harness for a whole librpc connection fed arbitrary bytes by its
 * peer over a socketpair. The first byte sets our role, whether a valid HELLO is prepended
 * (so that the fuzzer reaches the stream states), and how the application behaves (accepts
 * and answers calls, consumes partially, resets, resumes). Whatever comes in, the
 * connection must stay memory-safe and end either open or closed with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct App {
    uint8_t mode;
    int calls;
    bool closed;
    RpcStream *last;
} App;

static void on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    App *a = ud;
    a->calls++;
    a->last = s;
    switch ((a->mode >> 3) % 4) {
    case 0:
        rpc_stream_accept(s);
        rpc_stream_write(s, RPC_CH_STDOUT, "out", 3);
        break;
    case 1:
        rpc_stream_refuse(s, 126, "no");
        break;
    case 2:
        rpc_stream_accept(s);
        rpc_stream_write(s, RPC_CH_STDERR, "err", 3);
        rpc_stream_exit(s, 0, "bye");
        break;
    default:
        rpc_stream_reset(s, RPC_RESET_CANCEL, "cancel");
        break;
    }
}

static size_t on_data(RpcStream *s, RpcChannel ch, const uint8_t *d, size_t len, void *ud)
{
    App *a = ud;
    if (a->mode & 4)
        return len / 2;
    return len;
}

static void on_stream_free(RpcStream *s, void *ud)
{
    App *a = ud;
    if (a->last == s)
        a->last = NULL;
}

static void on_close(RpcConn *conn, int error, const char *reason, void *ud)
{
    App *a = ud;
    if (a->closed || !reason)
        abort();
    a->closed = true;
}

static void drain(int fd)
{
    uint8_t sink[65536];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    RpcConn *c = NULL;
    RpcConnConfig cfg;
    App app = {0};
    RpcCallbacks cb = {.on_call = on_call,
                       .on_data = on_data,
                       .on_stream_free = on_stream_free,
                       .on_close = on_close};

    if (size < 1 || size > 200000)
        return 0;
    app.mode = data[0];
    data++;
    size--;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    rpc_conn_config_init(&cfg);
    cfg.role = (app.mode & 1) ? RPC_ROLE_INITIATOR : RPC_ROLE_ACCEPTOR;
    cfg.max_streams = 8;
    cfg.stream_window = 4096;
    cfg.conn_window = 16384;
    cfg.max_frame = RPC_FRAME_MAX_MIN;
    cfg.max_tx_queue = 65536;
    if (rpc_conn_new_fd(&c, sv[0], true, &cfg, &cb, &app) < 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (app.mode & 2) {
        RpcHelloMsg m = {.version_min = 1,
                         .version_max = 1,
                         .role = (app.mode & 1) ? RPC_ROLE_ACCEPTOR : RPC_ROLE_INITIATOR,
                         .max_frame = RPC_FRAME_MAX_MIN,
                         .max_streams = 8,
                         .stream_window = 4096,
                         .conn_window = 16384};
        uint8_t frame[RPC_FRAME_HEADER_SIZE + RPC_HELLO_MAX];
        int n = rpc_msg_encode_hello(&m, frame + RPC_FRAME_HEADER_SIZE, RPC_HELLO_MAX);
        RpcFrameHeader h = {.type = RPC_FT_HELLO, .length = (uint32_t)n};
        rpc_frame_header_encode(frame, &h);
        if (write(sv[1], frame, RPC_FRAME_HEADER_SIZE + (size_t)n) < 0)
            abort();
    }
    /* Our own call, so that the caller side is exercised too. */
    RpcStream *mine = NULL;
    if (app.mode & 0x40)
        rpc_stream_open(c, &(RpcCall){.service = "fuzz.Call"}, &mine);
    size_t off = 0;
    for (int round = 0; round < 64 && !app.closed; round++) {
        if (off < size) {
            size_t chunk = size - off;
            if (app.mode & 0x80)
                chunk = chunk > 7 ? 7 : chunk; /* dribble: partial headers and bodies */
            ssize_t w = write(sv[1], data + off, chunk);
            if (w > 0)
                off += (size_t)w;
        }
        rpc_conn_dispatch(c);
        drain(sv[1]);
        if (app.last && (app.mode & 4))
            rpc_stream_resume(app.last);
        if (off >= size && round > 4)
            break;
    }
    (void)mine;
    rpc_conn_free(c);
    close(sv[1]);
    return 0;
}
