/* SPDX-License-Identifier: MIT */
/*
 * test-conn.c - librpc connections end to end over both transports (socketpair and an
 * in-process vchan pair): HELLO and version refusal, the life of a call (accept, refuse,
 * exit, half-close), both ends opening streams, resets that leave other streams alone,
 * quotas, keepalive, and one violation per rule from a raw peer, each closing only that
 * connection with a reason while another connection carries on.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpctest.h"
#include "leak.h"

START_TEST(handshake)
{
    RtPair p;
    RpcConnConfig cb;
    rpc_conn_config_init(&cb);
    cb.max_streams = 7;
    cb.max_frame = 8192;
    cb.stream_window = 4096;
    cb.conn_window = 8192;
    rt_pair_up(&p, (RtTransport)_i, NULL, &cb);
    ck_assert_int_eq(p.a.ready, 1);
    ck_assert_int_eq(p.b.ready, 1);
    ck_assert_uint_eq(p.a.peer.version, 1);
    ck_assert_int_eq(p.a.peer.role, RPC_ROLE_ACCEPTOR);
    ck_assert_int_eq(p.b.peer.role, RPC_ROLE_INITIATOR);
    ck_assert_uint_eq(p.a.peer.max_streams, 7);
    ck_assert_uint_eq(p.a.peer.max_frame, 8192);
    ck_assert_uint_eq(p.a.peer.stream_window, 4096);
    ck_assert_uint_eq(p.a.peer.conn_window, 8192);
    ck_assert_uint_eq(p.b.peer.max_streams, 1024);
    RpcPeerInfo pi;
    ck_assert_int_eq(rpc_conn_peer_info(p.a.conn, &pi), 0);
    ck_assert_uint_eq(pi.max_frame, 8192);
    ck_assert(rpc_conn_is_ready(p.a.conn));
    ck_assert_uint_eq(rpc_conn_events(p.a.conn) & EPOLLIN, EPOLLIN);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(call_lifecycle)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcCall call = {.service = "demo.Echo",
                    .argument = "+x",
                    .target = "@dispvm:work",
                    .source = "work",
                    .user = "user",
                    .call_id = 42,
                    .flags = 5};
    RpcStream *s;
    ck_assert_int_eq(rpc_stream_open(p.a.conn, &call, &s), 0);
    RtStreamLog *la = rt_log(&p.a, s);
    ck_assert(rpc_stream_is_caller(s));
    ck_assert_uint_eq(rpc_stream_id(s) & 1, 1);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "hello", 5), 5);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0); /* idempotent */
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "x", 1), -EPIPE);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDOUT, "x", 1), -EBADF);
    ck_assert_int_eq(rpc_stream_exit(s, 0, NULL), -EPERM);
    rt_pump(&p);
    ck_assert_int_eq(p.b.calls, 1);
    RtStreamLog *lb = &p.b.log[0];
    const RpcCall *got = rpc_stream_call(lb->s);
    ck_assert_str_eq(got->service, "demo.Echo");
    ck_assert_str_eq(got->argument, "+x");
    ck_assert_str_eq(got->target, "@dispvm:work");
    ck_assert_str_eq(got->source, "work");
    ck_assert_str_eq(got->user, "user");
    ck_assert_uint_eq(got->call_id, 42);
    ck_assert_uint_eq(got->flags, 5);
    ck_assert(la->accepted);
    ck_assert_uint_eq(lb->nbytes[RPC_CH_STDIN], 5);
    ck_assert_mem_eq(lb->buf[RPC_CH_STDIN], "hello", 5);
    ck_assert(lb->eof[RPC_CH_STDIN]);
    /* Handler answers on stdout and stderr, closes stdout early, then exits. */
    ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDIN, "x", 1), -EBADF);
    ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDOUT, "out", 3), 3);
    ck_assert_int_eq(rpc_stream_close_write(lb->s, RPC_CH_STDOUT), 0);
    ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDERR, "err", 3), 3);
    ck_assert_int_eq(rpc_stream_exit(lb->s, 3, "bye\nnow"), 0);
    ck_assert_int_eq(rpc_stream_exit(lb->s, 3, NULL), -ENOTCONN); /* stream finished */
    rt_pump(&p);
    ck_assert_mem_eq(la->buf[RPC_CH_STDOUT], "out", 3);
    ck_assert_mem_eq(la->buf[RPC_CH_STDERR], "err", 3);
    ck_assert(la->eof[RPC_CH_STDOUT] && la->eof[RPC_CH_STDERR]);
    ck_assert(la->exited && !la->refused);
    ck_assert_int_eq(la->exit_code, 3);
    ck_assert_str_eq(la->exit_reason, "bye?now"); /* sanitised on send */
    ck_assert(la->freed && lb->freed);
    ck_assert(!la->reset && !lb->reset);
    RpcConnStats st;
    rpc_conn_get_stats(p.a.conn, &st);
    ck_assert_uint_eq(st.streams_open, 0);
    rpc_conn_get_stats(p.b.conn, &st);
    ck_assert_uint_eq(st.streams_open, 0);
    rt_pair_deinit(&p);
}
END_TEST

/* rpc_conn_cork(): a CALL, its stdin (small and a window's worth) and EOF queued under a (nested) cork
 * are not written until the last rpc_conn_uncork(), then arrive whole. */
START_TEST(cork_holds_output)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    static uint8_t big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7u);
    RpcConnStats st0, st;
    rpc_conn_get_stats(p.a.conn, &st0);
    rpc_conn_cork(p.a.conn);
    rpc_conn_cork(p.a.conn);
    RpcStream *s = rt_open(&p, &p.a, "demo.Corked");
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "hi", 2), 2);
    /* queued output limits a stream to about one frame: what the window allows is taken */
    ssize_t w = rpc_stream_send_window(s, RPC_CH_STDIN);
    ck_assert_int_gt(w, 1000);
    size_t nbig = (size_t)w < sizeof big ? (size_t)w : sizeof big;
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, big, nbig), (ssize_t)nbig);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    rpc_conn_uncork(p.a.conn); /* still corked once */
    rpc_conn_get_stats(p.a.conn, &st);
    ck_assert_uint_eq(st.bytes_out, st0.bytes_out);
    ck_assert_uint_gt(st.tx_queued, nbig); /* all of it held */
    rpc_conn_uncork(p.a.conn);
    rpc_conn_uncork(p.a.conn); /* unbalanced: ignored */
    rpc_conn_get_stats(p.a.conn, &st);
    ck_assert_uint_gt(st.bytes_out, st0.bytes_out);
    for (int i = 0; i < 10000 && (p.b.calls < 1 || !p.b.log[0].eof[RPC_CH_STDIN]); i++)
        rt_pump(&p);
    ck_assert_int_eq(p.b.calls, 1);
    RtStreamLog *lb = &p.b.log[0];
    ck_assert_uint_eq(lb->nbytes[RPC_CH_STDIN], 2 + nbig);
    ck_assert_mem_eq(lb->buf[RPC_CH_STDIN], "hi", 2);
    ck_assert(memcmp(lb->buf[RPC_CH_STDIN] + 2, big, nbig) == 0);
    ck_assert(lb->eof[RPC_CH_STDIN]);
    rt_pair_deinit(&p);
}
END_TEST

static bool fd_readable(RpcConn *c)
{
    struct pollfd pf = {.fd = rpc_conn_fd(c), .events = POLLIN};
    return poll(&pf, 1, 0) == 1;
}

/* Over a vchan, a dispatch reads without asking the peer for events: a peer that writes
 * while we are awake fires nothing. rpc_conn_prepare_wait() asks, before a sleep: then
 * the next write fires the fd; with input already there it says so instead. */
START_TEST(reads_arm_no_event)
{
    RtPair p;
    rt_pair_up(&p, RT_VCHAN, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "demo.Quiet");
    for (int i = 0; i < 10000 && p.b.calls < 1; i++)
        rt_pump(&p);
    ck_assert_int_eq(p.b.calls, 1);
    /* a known start: b armed and empty, a's write fires it, b consumes the event */
    while (rpc_conn_prepare_wait(p.b.conn) > 0)
        rpc_conn_dispatch(p.b.conn);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "zero", 4), 4);
    rpc_conn_dispatch(p.a.conn);
    ck_assert(fd_readable(p.b.conn));
    rpc_conn_dispatch(p.b.conn);
    ck_assert(!fd_readable(p.b.conn));
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "one", 3), 3);
    rpc_conn_dispatch(p.a.conn);
    ck_assert(!fd_readable(p.b.conn)); /* b did not ask */
    ck_assert_int_eq(rpc_conn_prepare_wait(p.b.conn), 1); /* but it is there */
    rpc_conn_dispatch(p.b.conn);
    ck_assert_uint_eq(p.b.log[0].nbytes[RPC_CH_STDIN], 7);
    ck_assert(!fd_readable(p.b.conn));
    ck_assert_int_eq(rpc_conn_prepare_wait(p.b.conn), 0); /* armed: sleep */
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "two", 3), 3);
    rpc_conn_dispatch(p.a.conn);
    ck_assert(fd_readable(p.b.conn));
    rpc_conn_dispatch(p.b.conn);
    ck_assert_uint_eq(p.b.log[0].nbytes[RPC_CH_STDIN], 10);
    ck_assert_mem_eq(p.b.log[0].buf[RPC_CH_STDIN], "zeroonetwo", 10);
    ck_assert(!fd_readable(p.b.conn)); /* the event was consumed */
    ck_assert_int_eq(rpc_conn_prepare_wait(p.a.conn), 0);
    rt_pair_deinit(&p);
}
END_TEST

/* Over a vchan, a writer that finds the ring full does not ask the reader for an event
 * either: the reader's reads fire nothing while the writer is awake. rpc_conn_prepare_wait()
 * says that the space is there already, or, with none, asks; then the reader's next read
 * fires the fd, and the dispatch tells the blocked stream. */
START_TEST(ring_space_arms_before_sleep)
{
    static uint8_t chunk[4096];
    RtPair p;
    ssize_t w;
    size_t total = 0;

    rt_pair_up(&p, RT_VCHAN, NULL, NULL); /* 64 KiB rings, 1 MiB stream window */
    RpcStream *s = rt_open(&p, &p.a, "demo.Quiet");
    for (int i = 0; i < 10000 && p.b.calls < 1; i++)
        rt_pump(&p);
    ck_assert_int_eq(p.b.calls, 1);
    RtStreamLog *la = rt_log(&p.a, s);

    while ((w = rpc_stream_write(s, RPC_CH_STDIN, chunk, sizeof(chunk))) > 0)
        total += (size_t)w;
    ck_assert_int_eq(w, -EAGAIN);
    ck_assert_uint_lt(total, 65536); /* the ring stopped it, not the window */
    for (int i = 0; i < 8; i++)
        rpc_conn_dispatch(p.b.conn);
    ck_assert_uint_eq(p.b.log[0].nbytes[RPC_CH_STDIN], total);
    ck_assert(!fd_readable(p.a.conn)); /* a did not ask */
    int told = la->writable;
    ck_assert_int_eq(rpc_conn_prepare_wait(p.a.conn), 1); /* but the space is there */
    rpc_conn_dispatch(p.a.conn);
    ck_assert_int_gt(la->writable, told);

    while ((w = rpc_stream_write(s, RPC_CH_STDIN, chunk, sizeof(chunk))) > 0)
        total += (size_t)w;
    ck_assert_int_eq(w, -EAGAIN);
    ck_assert_int_eq(rpc_conn_prepare_wait(p.a.conn), 0); /* armed: sleep */
    ck_assert(!fd_readable(p.a.conn));
    for (int i = 0; i < 8; i++)
        rpc_conn_dispatch(p.b.conn);
    ck_assert_uint_eq(p.b.log[0].nbytes[RPC_CH_STDIN], total);
    ck_assert(fd_readable(p.a.conn)); /* b's read woke a */
    told = la->writable;
    rpc_conn_dispatch(p.a.conn);
    ck_assert_int_gt(la->writable, told);
    ck_assert(!fd_readable(p.a.conn)); /* the event was consumed */
    ck_assert_int_gt(rpc_stream_write(s, RPC_CH_STDIN, chunk, sizeof(chunk)), 0);
    rt_pair_deinit(&p);
}
END_TEST

/* The handler frees its stream only once the caller's stdin EOF arrives. */
START_TEST(exit_before_stdin_eof)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    RtStreamLog *la = rt_log(&p.a, s);
    rt_pump(&p);
    RtStreamLog *lb = &p.b.log[0];
    ck_assert_int_eq(rpc_stream_exit(lb->s, 0, ""), 0);
    rt_pump(&p);
    ck_assert(la->exited && la->freed);
    ck_assert(lb->freed);
    ck_assert(!lb->reset);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(refuse)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    p.b.auto_accept = false;
    RpcStream *s = rt_open(&p, &p.a, "svc");
    RtStreamLog *la = rt_log(&p.a, s);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "pipelined", 9), 9);
    rt_pump(&p);
    RtStreamLog *lb = &p.b.log[0];
    /* Not accepted yet: no output, no exit. */
    ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDOUT, "x", 1), -EPROTO);
    ck_assert_int_eq(rpc_stream_exit(lb->s, 0, NULL), -EPROTO);
    ck_assert_uint_eq(lb->nbytes[RPC_CH_STDIN], 9);
    ck_assert_int_eq(rpc_stream_refuse(lb->s, 126, "denied by policy"), 0);
    ck_assert_int_eq(rpc_stream_accept(lb->s), -EALREADY);
    rt_pump(&p);
    ck_assert(la->exited && la->refused && !la->accepted);
    ck_assert_int_eq(la->exit_code, 126);
    ck_assert_str_eq(la->exit_reason, "denied by policy");
    ck_assert(la->freed && lb->freed);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(both_ends_open)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *sa[5], *sb[5];
    for (int i = 0; i < 5; i++) {
        sa[i] = rt_open(&p, &p.a, "from.a");
        sb[i] = rt_open(&p, &p.b, "from.b");
        ck_assert_uint_eq(rpc_stream_id(sa[i]) & 1, 1);
        ck_assert_uint_eq(rpc_stream_id(sb[i]) & 1, 0);
    }
    rt_pump(&p);
    ck_assert_int_eq(p.a.calls, 5);
    ck_assert_int_eq(p.b.calls, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert(rt_log(&p.a, sa[i])->accepted);
        ck_assert(rt_log(&p.b, sb[i])->accepted);
    }
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(reset_leaves_others)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s[3];
    RtStreamLog *la[3];
    for (int i = 0; i < 3; i++) {
        s[i] = rt_open(&p, &p.a, "svc");
        la[i] = rt_log(&p.a, s[i]);
        ck_assert_int_eq(rpc_stream_write(s[i], RPC_CH_STDIN, "abc", 3), 3);
    }
    rt_pump(&p);
    ck_assert_int_eq(rpc_stream_reset(s[1], RPC_RESET_CANCEL, "user pressed ^C"), 0);
    ck_assert_int_eq(rpc_stream_reset(s[1], RPC_RESET_CANCEL, "again"), -ENOTCONN);
    rt_pump(&p);
    RtStreamLog *lb1 = rt_log_by_id(&p.b, la[1]->id);
    ck_assert(lb1->reset && !lb1->reset_local);
    ck_assert_uint_eq(lb1->reset_code, RPC_RESET_CANCEL);
    ck_assert_str_eq(lb1->reset_reason, "user pressed ^C");
    ck_assert(lb1->freed && la[1]->freed);
    ck_assert(!la[1]->reset); /* we asked for it */
    /* The others still work to the end. */
    for (int i = 0; i < 3; i += 2) {
        RtStreamLog *lb = rt_log_by_id(&p.b, la[i]->id);
        ck_assert(!lb->reset && !lb->freed);
        ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDOUT, "ok", 2), 2);
        ck_assert_int_eq(rpc_stream_exit(lb->s, 0, NULL), 0);
        ck_assert_int_eq(rpc_stream_close_write(s[i], RPC_CH_STDIN), 0);
    }
    rt_pump(&p);
    for (int i = 0; i < 3; i += 2) {
        ck_assert(la[i]->exited && la[i]->freed);
        ck_assert_mem_eq(la[i]->buf[RPC_CH_STDOUT], "ok", 2);
    }
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

/* A RESET from each end crossing on the wire. */
START_TEST(reset_crossing)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    RtStreamLog *la = rt_log(&p.a, s);
    rt_pump(&p);
    RtStreamLog *lb = &p.b.log[0];
    ck_assert_int_eq(rpc_stream_reset(s, RPC_RESET_CANCEL, "a"), 0);
    ck_assert_int_eq(rpc_stream_reset(lb->s, RPC_RESET_CANCEL, "b"), 0);
    rt_pump(&p);
    ck_assert(la->freed && lb->freed);
    ck_assert(!la->reset && !lb->reset);
    ck_assert(!p.a.closed && !p.b.closed);
    /* An exit crossing a reset. */
    s = rt_open(&p, &p.a, "svc");
    la = rt_log(&p.a, s);
    rt_pump(&p);
    lb = rt_log_by_id(&p.b, la->id);
    ck_assert_int_eq(rpc_stream_exit(lb->s, 1, NULL), 0);
    ck_assert_int_eq(rpc_stream_reset(s, RPC_RESET_CANCEL, "a"), 0);
    rt_pump(&p);
    ck_assert(la->freed && lb->freed);
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(open_before_hello)
{
    RtPair p;
    rt_pair_init(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "early");
    RtStreamLog *la = rt_log(&p.a, s);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "x", 1), -EAGAIN);
    ck_assert_int_eq(rpc_stream_close_write(s, RPC_CH_STDIN), 0);
    rt_pump(&p);
    ck_assert(rt_both_ready(&p));
    ck_assert(la->accepted);
    ck_assert_int_eq(la->writable, 0); /* EOF was queued: nothing more to send */
    RtStreamLog *lb = &p.b.log[0];
    ck_assert(lb->eof[RPC_CH_STDIN]);
    rt_pair_deinit(&p);
}
END_TEST

/* A stream reset before the peer's HELLO is freed then, before on_ready: the application
 * never sees a connection come up with a stream it already gave up (kept across the split
 * of conn.c, where a stream's lifetime became one state). */
START_TEST(reset_before_hello)
{
    RtPair p;
    rt_pair_init(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "early");
    RtStreamLog *la = rt_log(&p.a, s);
    ck_assert_int_eq(rpc_stream_reset(s, RPC_RESET_CANCEL, "changed my mind"), 0);
    ck_assert(rt_pump_until(&p, rt_both_ready, RT_HANG_MS));
    ck_assert(la->freed);
    ck_assert_int_eq(la->ready_at_free, 0);
    ck_assert(!la->accepted);
    ck_assert_int_eq(p.b.calls, 0); /* the peer never heard of it */
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(writable_after_hello)
{
    RtPair p;
    rt_pair_init(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "early");
    RtStreamLog *la = rt_log(&p.a, s);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "x", 1), -EAGAIN);
    rt_pump(&p);
    ck_assert_int_ge(la->writable, 1);
    ck_assert_int_eq(rpc_stream_write(s, RPC_CH_STDIN, "x", 1), 1);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(stream_quota_local)
{
    RtPair p;
    RpcConnConfig cb;
    rpc_conn_config_init(&cb);
    cb.max_streams = 4;
    rt_pair_up(&p, (RtTransport)_i, NULL, &cb);
    RpcCall call = {.service = "svc"};
    RpcStream *s[4], *x;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rpc_stream_open(p.a.conn, &call, &s[i]), 0);
    ck_assert_int_eq(rpc_stream_open(p.a.conn, &call, &x), -EBUSY);
    rt_pump(&p);
    ck_assert_int_eq(rpc_stream_exit(p.b.log[0].s, 0, NULL), 0);
    ck_assert_int_eq(rpc_stream_close_write(s[0], RPC_CH_STDIN), 0);
    rt_pump(&p);
    ck_assert_int_eq(rpc_stream_open(p.a.conn, &call, &x), 0);
    /* Field rules hold before anything is sent. */
    RpcCall bad = {.service = "bad name"};
    ck_assert_int_eq(rpc_stream_open(p.a.conn, &bad, &x), -EINVAL);
    bad.service = NULL;
    ck_assert_int_eq(rpc_stream_open(p.a.conn, &bad, &x), -EINVAL);
    rt_pair_deinit(&p);
}
END_TEST

/* The dispatcher's requirement: 1,000 concurrent calls from one guest. */
START_TEST(thousand_concurrent)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    enum { N = 1000 };
    RpcStream *s[N];
    for (int i = 0; i < N; i++) {
        s[i] = rt_open(&p, &p.a, "svc");
        ck_assert_int_eq(rpc_stream_write(s[i], RPC_CH_STDIN, &i, sizeof(i)), sizeof(i));
    }
    rt_pump(&p);
    ck_assert_int_eq(p.b.calls, N);
    RpcConnStats st;
    rpc_conn_get_stats(p.b.conn, &st);
    ck_assert_uint_eq(st.streams_open, N);
    for (int i = 0; i < N; i++) {
        RtStreamLog *lb = &p.b.log[i];
        ck_assert_uint_eq(lb->nbytes[RPC_CH_STDIN], sizeof(int));
        ck_assert_int_eq(rpc_stream_write(lb->s, RPC_CH_STDOUT, lb->buf[RPC_CH_STDIN], sizeof(int)),
                         sizeof(int));
        ck_assert_int_eq(rpc_stream_exit(lb->s, i % 100, NULL), 0);
    }
    rt_pump(&p);
    for (int i = 0; i < N; i++) {
        RtStreamLog *la = &p.a.log[i];
        ck_assert(la->exited);
        ck_assert_int_eq(la->exit_code, i % 100);
        ck_assert_mem_eq(la->buf[RPC_CH_STDOUT], &i, sizeof(i));
    }
    rt_pair_deinit(&p);
}
END_TEST

static bool a_closed(RtPair *p)
{
    return p->a.closed;
}

START_TEST(peer_gone)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    RtStreamLog *la = rt_log(&p.a, s);
    rt_pump(&p);
    p.b.conn = rpc_conn_free(p.b.conn);
    ck_assert(p.b.log[0].freed);
    ck_assert(p.b.log[0].reset); /* handler side: freed before completing */
    ck_assert(rt_pump_until(&p, a_closed, RT_HANG_MS));
    ck_assert_int_eq(p.a.close_error, RPC_E_EOF);
    ck_assert(la->reset && la->reset_local);
    ck_assert_uint_eq(la->reset_code, RPC_RESET_CONN_CLOSED);
    ck_assert(la->freed);
    ck_assert_int_eq(rpc_conn_dispatch(p.a.conn), RPC_E_CLOSED);
    ck_assert_int_eq(rpc_stream_open(p.a.conn, &(RpcCall){.service = "x"}, &s), -ENOTCONN);
    ck_assert_uint_eq(rpc_conn_events(p.a.conn), 0);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(close_with_goaway)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    ck_assert_int_eq(rpc_conn_close(p.b.conn, "shutting down"), 0);
    ck_assert(p.b.closed);
    ck_assert_int_eq(p.b.close_error, RPC_E_LOCAL);
    ck_assert_int_eq(rpc_conn_close(p.b.conn, "again"), RPC_E_CLOSED);
    ck_assert(rt_pump_until(&p, a_closed, RT_HANG_MS));
    ck_assert_int_eq(p.a.close_error, RPC_E_GOAWAY);
    ck_assert_str_eq(p.a.close_reason, "peer: shutting down");
    rt_pair_deinit(&p);
}
END_TEST

/* Keepalive: a live peer answers PINGs and the connection stays; a silent one is dead. */
static bool pinged_twice(RtPair *p)
{
    RpcConnStats st;
    rpc_conn_get_stats(p->a.conn, &st);
    return st.pongs_in >= 2;
}

START_TEST(keepalive_alive)
{
    RtPair p;
    RpcConnConfig ca;
    rpc_conn_config_init(&ca);
    ca.keepalive_ms = 20;
    ca.dead_peer_ms = 2000;
    rt_pair_up(&p, (RtTransport)_i, &ca, NULL);
    ck_assert(rt_pump_until(&p, pinged_twice, RT_HANG_MS));
    ck_assert(!p.a.closed && !p.b.closed);
    rt_pair_deinit(&p);
}
END_TEST

static int pongs_seen;
static uint64_t pong_rtt;

static void on_pong(RpcConn *conn, uint64_t rtt_us, void *userdata)
{
    pongs_seen++;
    pong_rtt = rtt_us;
    ck_assert_ptr_eq(userdata, &pongs_seen);
}

static bool ponged(RtPair *p)
{
    return pongs_seen > 0;
}

/* rpc_conn_ping: one at a time, its PONG measured and reported once. */
START_TEST(ping_rtt)
{
    RtPair p;
    rt_pair_up(&p, (RtTransport)_i, NULL, NULL);
    pongs_seen = 0;
    pong_rtt = UINT64_MAX;
    ck_assert_int_eq(rpc_conn_ping(p.a.conn, on_pong, &pongs_seen), 0);
    ck_assert_int_eq(rpc_conn_ping(p.a.conn, on_pong, &pongs_seen), -EBUSY);
    ck_assert(rt_pump_until(&p, ponged, RT_HANG_MS));
    ck_assert_int_eq(pongs_seen, 1);
    ck_assert_uint_lt(pong_rtt, (uint64_t)RT_HANG_MS * 1000);
    /* Free again: a second one works. */
    ck_assert_int_eq(rpc_conn_ping(p.a.conn, on_pong, &pongs_seen), 0);
    ck_assert(rt_pump_until(&p, ponged, RT_HANG_MS));
    rt_pump(&p);
    ck_assert_int_eq(pongs_seen, 2);
    rpc_conn_close(p.a.conn, "done");
    ck_assert_int_eq(rpc_conn_ping(p.a.conn, on_pong, &pongs_seen), -ENOTCONN);
    rt_pair_deinit(&p);
}
END_TEST

START_TEST(keepalive_dead_peer)
{
    RtPair p;
    RpcConnConfig ca;
    rpc_conn_config_init(&ca);
    ca.keepalive_ms = 20;
    ca.dead_peer_ms = 40;
    rt_pair_up(&p, (RtTransport)_i, &ca, NULL);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    RtStreamLog *la = rt_log(&p.a, s);
    rt_pump(&p);
    /* b stops answering (never dispatched again) but its transport stays open. */
    RpcConn *b = p.b.conn;
    p.b.conn = NULL;
    ck_assert(rt_pump_until(&p, a_closed, RT_HANG_MS));
    ck_assert_int_eq(p.a.close_error, RPC_E_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(p.a.close_reason, "PING"));
    ck_assert(la->reset && la->freed);
    RpcConnStats st;
    rpc_conn_get_stats(p.a.conn, &st);
    ck_assert_uint_ge(st.pings_out, 1);
    p.b.conn = b;
    rt_pair_deinit(&p);
}
END_TEST

/* ---- raw peer: hand-made frames ---------------------------------------------------- */

static void raw_expect_close(RtRaw *r, int err, const char *needle)
{
    rt_raw_pump(r);
    ck_assert_msg(r->side.closed, "connection not closed (want: %s)", needle);
    ck_assert_int_eq(r->side.close_error, err);
    ck_assert_msg(strstr(r->side.close_reason, needle), "reason '%s' lacks '%s'",
                  r->side.close_reason, needle);
    ck_assert_int_eq(rpc_conn_dispatch(r->side.conn), RPC_E_CLOSED);
}

START_TEST(version_refused)
{
    RtRaw r;
    rt_raw_init(&r, RPC_ROLE_ACCEPTOR, NULL);
    RpcHelloMsg m = {.version_min = 9,
                     .version_max = 9,
                     .role = RPC_ROLE_INITIATOR,
                     .max_frame = 65536,
                     .max_streams = 1,
                     .stream_window = 65536,
                     .conn_window = 65536};
    uint8_t buf[RPC_HELLO_MAX];
    int n = rpc_msg_encode_hello(&m, buf, sizeof(buf));
    rt_raw_frame(&r, RPC_FT_HELLO, 0, 0, buf, (size_t)n);
    raw_expect_close(&r, RPC_E_VERSION, "unsupported protocol version: peer speaks 9..9");
    /* The peer is told why: our HELLO, then GOAWAY. */
    RpcFrameHeader hs[4];
    ck_assert_int_eq(rt_raw_read_frames(&r, hs, 4), 2);
    ck_assert_uint_eq(hs[0].type, RPC_FT_HELLO);
    ck_assert_uint_eq(hs[1].type, RPC_FT_GOAWAY);
    rt_raw_deinit(&r);
}
END_TEST

START_TEST(version_refused_by_peer)
{
    RtRaw r;
    rt_raw_init(&r, RPC_ROLE_ACCEPTOR, NULL);
    uint8_t buf[RPC_REASON_MSG_MAX];
    int n = rpc_msg_encode_reason(RPC_FT_GOAWAY, RPC_E_VERSION, "we speak 7 only", buf,
                                  sizeof(buf));
    rt_raw_frame(&r, RPC_FT_GOAWAY, 0, 0, buf, (size_t)n);
    raw_expect_close(&r, RPC_E_VERSION, "we speak 7 only");
    rt_raw_deinit(&r);
}
END_TEST

START_TEST(role_clash)
{
    RtRaw r;
    rt_raw_init(&r, RPC_ROLE_ACCEPTOR, NULL);
    rt_raw_hello(&r, RPC_ROLE_ACCEPTOR);
    raw_expect_close(&r, RPC_E_PROTO, "both ends claim the acceptor role");
    rt_raw_deinit(&r);
}
END_TEST

START_TEST(hello_timeout)
{
    RtRaw r;
    RpcConnConfig c;
    rpc_conn_config_init(&c);
    c.hello_timeout_ms = 30;
    rt_raw_init(&r, RPC_ROLE_ACCEPTOR, &c);
    for (int i = 0; i < 500 && !r.side.closed; i++) {
        int t = rpc_conn_next_timeout_ms(r.side.conn);
        ck_assert_int_ge(t, 0);
        poll(NULL, 0, t);
        rpc_conn_dispatch(r.side.conn);
    }
    ck_assert(r.side.closed);
    ck_assert_int_eq(r.side.close_error, RPC_E_TIMEOUT);
    rt_raw_deinit(&r);
}
END_TEST

/* Each entry: what the raw peer sends after HELLO (and, for handler-side cases, after our
 * connection opened stream 2 and the raw peer accepted it), and the reason we expect. */
typedef struct Violation {
    const char *name;
    void (*send)(RtRaw *r);
    int err;
    const char *reason;
} Violation;

static const uint8_t one = 'x';

static void v_before_hello(RtRaw *r)
{
    (void)r;
}
static void v_unknown_type(RtRaw *r)
{
    rt_raw_frame(r, RPC_FT_LAST + 1, 0, 1, NULL, 0);
}
static void v_reserved(RtRaw *r)
{
    uint8_t h[12] = {RPC_FT_PING, 0, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0};
    rt_raw_bytes(r, h, sizeof(h));
    rt_raw_bytes(r, "12345678", 8);
}
static void v_second_hello(RtRaw *r)
{
    rt_raw_hello(r, RPC_ROLE_INITIATOR);
}
static void v_caller_stdout(RtRaw *r)
{
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_STDOUT, 0, 1, &one, 1);
}
static void v_caller_stderr(RtRaw *r)
{
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_STDERR, RPC_FLAG_EOF, 1, &one, 1);
}
static void v_caller_exit(RtRaw *r)
{
    uint8_t b[64];
    int n = rpc_msg_encode_reason(RPC_FT_EXIT, 0, "", b, sizeof(b));
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_EXIT, 0, 1, b, (size_t)n);
}
static void v_caller_accept(RtRaw *r)
{
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_ACCEPT, 0, 1, NULL, 0);
}
static void v_stdin_after_eof(RtRaw *r)
{
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_STDIN, RPC_FLAG_EOF, 1, &one, 1);
    rt_raw_frame(r, RPC_FT_STDIN, 0, 1, &one, 1);
}
static void v_call_reuse(RtRaw *r)
{
    rt_raw_call(r, 3, "svc");
    rt_raw_call(r, 3, "svc");
}
static void v_call_lower(RtRaw *r)
{
    rt_raw_call(r, 5, "svc");
    rt_raw_call(r, 3, "svc");
}
static void v_call_parity(RtRaw *r)
{
    rt_raw_call(r, 2, "svc");
}
static void v_never_opened(RtRaw *r)
{
    rt_raw_frame(r, RPC_FT_STDIN, 0, 9, &one, 1);
}
static void v_bad_service(RtRaw *r)
{
    rt_raw_call(r, 1, "svc"), rt_raw_call(r, 3, "a");
}
static void v_bad_service2(RtRaw *r)
{
    const uint8_t call[] = {0x0a, 0x03, 'a', '$', 'b'};
    rt_raw_frame(r, RPC_FT_CALL, 0, 1, call, sizeof(call));
}
static void v_too_long(RtRaw *r)
{
    /* Only the header: the length is refused before any body is awaited. */
    uint8_t h[12];
    RpcFrameHeader fh = {.type = RPC_FT_STDIN, .stream = 1, .length = RPC_FRAME_MAX_DEFAULT + 1};
    rpc_frame_header_encode(h, &fh);
    rt_raw_call(r, 1, "svc");
    rt_raw_bytes(r, h, sizeof(h));
}
static void v_window_zero(RtRaw *r)
{
    uint8_t p[4] = {0};
    rt_raw_frame(r, RPC_FT_WINDOW, 0, 0, p, 4);
}
static void v_window_overflow(RtRaw *r)
{
    uint8_t p[4];
    rpc_put_le32(p, RPC_WINDOW_MAX);
    rt_raw_frame(r, RPC_FT_WINDOW, 0, 0, p, 4);
}
static void v_conn_window(RtRaw *r)
{
    /* Our conn window is 64 KiB here and the application holds what it gets: two streams
     * fill it at their own 32 KiB limit, one byte on a third is over. */
    static uint8_t big[32768];
    r->side.default_consume = 0;
    rt_raw_call(r, 1, "svc");
    rt_raw_call(r, 3, "svc");
    rt_raw_call(r, 5, "svc");
    rt_raw_frame(r, RPC_FT_STDIN, 0, 1, big, sizeof(big));
    rt_raw_frame(r, RPC_FT_STDIN, 0, 3, big, sizeof(big));
    rt_raw_pump(r);
    ck_assert(!r->side.closed);
    rt_raw_frame(r, RPC_FT_STDIN, 0, 5, big, 1);
}
static void v_stream_quota(RtRaw *r)
{
    for (uint32_t id = 1; id <= 9; id += 2)
        rt_raw_call(r, id, "svc");
}
static void v_ack_without_reset(RtRaw *r)
{
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_RESET, RPC_FLAG_ACK, 1, NULL, 0);
}
static void v_bad_reason(RtRaw *r)
{
    const uint8_t reset[] = {0x12, 0x02, 'a', '\n'};
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_RESET, 0, 1, reset, sizeof(reset));
}
static void v_data_after_reset(RtRaw *r)
{
    rt_raw_call(r, 1, "svc");
    rt_raw_frame(r, RPC_FT_RESET, 0, 1, NULL, 0);
    rt_raw_frame(r, RPC_FT_STDIN, 0, 1, &one, 1);
}

static const Violation violations[] = {
    {"frame before HELLO", v_before_hello, RPC_E_PROTO, "before HELLO"},
    {"unknown frame type", v_unknown_type, RPC_E_PROTO, "unknown frame type"},
    {"reserved field", v_reserved, RPC_E_PROTO, "reserved"},
    {"second HELLO", v_second_hello, RPC_E_PROTO, "second HELLO"},
    {"QSB-087 caller sends stdout", v_caller_stdout, RPC_E_PROTO, "wrong direction"},
    {"QSB-087 caller sends stderr", v_caller_stderr, RPC_E_PROTO, "wrong direction"},
    {"caller sends EXIT", v_caller_exit, RPC_E_PROTO, "wrong direction"},
    {"caller sends ACCEPT", v_caller_accept, RPC_E_PROTO, "wrong direction"},
    {"stdin after EOF", v_stdin_after_eof, RPC_E_PROTO, "stdin after EOF"},
    {"CALL reuses an id", v_call_reuse, RPC_E_PROTO, "reuses stream id"},
    {"CALL id goes down", v_call_lower, RPC_E_PROTO, "reuses stream id"},
    {"CALL with our parity", v_call_parity, RPC_E_PROTO, "parity"},
    {"frame for an unopened stream", v_never_opened, RPC_E_PROTO, "never opened"},
    {"bad service name", v_bad_service2, RPC_E_PROTO, "service name invalid"},
    {"data frame over max_frame", v_too_long, RPC_E_PROTO, "max frame"},
    {"WINDOW_UPDATE of 0", v_window_zero, RPC_E_PROTO, "out of range"},
    {"window grows too large", v_window_overflow, RPC_E_PROTO, "window grows"},
    {"connection window overrun", v_conn_window, RPC_E_QUOTA, "connection window"},
    {"too many streams", v_stream_quota, RPC_E_QUOTA, "more than 4 concurrent streams"},
    {"RESET ack without RESET", v_ack_without_reset, RPC_E_PROTO, "acknowledgement"},
    {"reason with a newline", v_bad_reason, RPC_E_PROTO, "printable"},
    {"data after RESET", v_data_after_reset, RPC_E_PROTO, "finished stream"},
};
#define NVIOL (sizeof(violations) / sizeof(violations[0]))

START_TEST(violation_closes_only_that_connection)
{
    const Violation *v = &violations[_i];
    RtRaw r;
    RpcConnConfig c;
    RtPair good;

    (void)v_bad_service;
    rpc_conn_config_init(&c);
    c.max_streams = 4;
    c.stream_window = 32768;
    c.conn_window = 65536;
    rt_raw_init(&r, RPC_ROLE_ACCEPTOR, &c);
    /* A healthy connection in the same process, with a call in progress. */
    rt_pair_up(&good, RT_SOCKET, NULL, NULL);
    RpcStream *gs = rt_open(&good, &good.a, "svc");
    rt_pump(&good);
    if (v->send != v_before_hello)
        rt_raw_hello(&r, RPC_ROLE_INITIATOR);
    else
        rt_raw_frame(&r, RPC_FT_PING, 0, 0, "12345678", 8);
    v->send(&r);
    raw_expect_close(&r, v->err, v->reason);
    /* The good connection carries on. */
    ck_assert_int_eq(rpc_stream_write(gs, RPC_CH_STDIN, "still", 5), 5);
    rt_pump(&good);
    ck_assert_uint_eq(good.b.log[0].nbytes[RPC_CH_STDIN], 5);
    ck_assert(!good.a.closed && !good.b.closed);
    rt_pair_deinit(&good);
    rt_raw_deinit(&r);
}
END_TEST

/* Handler-side violations: our connection opened stream 1 (it is the initiator). */
static void raw_initiator_with_call(RtRaw *r)
{
    rt_raw_init(r, RPC_ROLE_INITIATOR, NULL);
    rt_raw_hello(r, RPC_ROLE_ACCEPTOR);
    rt_raw_pump(r);
    rt_open(NULL, &r->side, "svc");
    rt_raw_pump(r);
}

START_TEST(handler_side_violations)
{
    static const uint8_t exitmsg[] = {0x08, 0x02};
    RtRaw r;

    /* stdin from the handler (wrong direction). */
    raw_initiator_with_call(&r);
    rt_raw_frame(&r, RPC_FT_ACCEPT, 0, 1, NULL, 0);
    rt_raw_frame(&r, RPC_FT_STDIN, 0, 1, &one, 1);
    raw_expect_close(&r, RPC_E_PROTO, "wrong direction");
    rt_raw_deinit(&r);
    /* output before ACCEPT. */
    raw_initiator_with_call(&r);
    rt_raw_frame(&r, RPC_FT_STDOUT, 0, 1, &one, 1);
    raw_expect_close(&r, RPC_E_PROTO, "before the call was accepted");
    rt_raw_deinit(&r);
    /* second ACCEPT. */
    raw_initiator_with_call(&r);
    rt_raw_frame(&r, RPC_FT_ACCEPT, 0, 1, NULL, 0);
    rt_raw_frame(&r, RPC_FT_ACCEPT, 0, 1, NULL, 0);
    raw_expect_close(&r, RPC_E_PROTO, "second answer");
    rt_raw_deinit(&r);
    /* EXIT before ACCEPT. */
    raw_initiator_with_call(&r);
    rt_raw_frame(&r, RPC_FT_EXIT, 0, 1, exitmsg, sizeof(exitmsg));
    raw_expect_close(&r, RPC_E_PROTO, "before the call was accepted");
    rt_raw_deinit(&r);
    /* second EXIT. */
    raw_initiator_with_call(&r);
    rt_raw_frame(&r, RPC_FT_ACCEPT, 0, 1, NULL, 0);
    rt_raw_frame(&r, RPC_FT_EXIT, 0, 1, exitmsg, sizeof(exitmsg));
    rt_raw_frame(&r, RPC_FT_EXIT, 0, 1, exitmsg, sizeof(exitmsg));
    raw_expect_close(&r, RPC_E_PROTO, "finished stream");
    ck_assert(r.side.log[0].exited);
    ck_assert_int_eq(r.side.log[0].exit_code, 1);
    rt_raw_deinit(&r);
    /* stdout after EOF. */
    raw_initiator_with_call(&r);
    rt_raw_frame(&r, RPC_FT_ACCEPT, 0, 1, NULL, 0);
    rt_raw_frame(&r, RPC_FT_STDOUT, RPC_FLAG_EOF, 1, NULL, 0);
    rt_raw_frame(&r, RPC_FT_STDOUT, 0, 1, &one, 1);
    raw_expect_close(&r, RPC_E_PROTO, "output after EOF");
    ck_assert_int_eq(r.side.log[0].events_after_eof, 0);
    rt_raw_deinit(&r);
}
END_TEST

/* A stream overrunning its window is reset; the connection and other streams stay. */
START_TEST(stream_window_overrun_resets_stream)
{
    RtRaw r;
    RpcConnConfig c;
    static uint8_t big[RPC_STREAM_WINDOW_MIN * 2];
    rpc_conn_config_init(&c);
    c.stream_window = RPC_STREAM_WINDOW_MIN;
    rt_raw_init(&r, RPC_ROLE_ACCEPTOR, &c);
    rt_raw_hello(&r, RPC_ROLE_INITIATOR);
    rt_raw_call(&r, 1, "svc");
    rt_raw_call(&r, 3, "svc");
    rt_raw_frame(&r, RPC_FT_STDIN, 0, 1, big, RPC_STREAM_WINDOW_MIN);     /* at the limit */
    rt_raw_frame(&r, RPC_FT_STDIN, 0, 3, big, RPC_STREAM_WINDOW_MIN + 1); /* one over */
    rt_raw_pump(&r);
    ck_assert(!r.side.closed);
    RtStreamLog *l1 = rt_log_by_id(&r.side, 1), *l3 = rt_log_by_id(&r.side, 3);
    ck_assert_uint_eq(l1->nbytes[RPC_CH_STDIN], RPC_STREAM_WINDOW_MIN);
    ck_assert(!l1->reset);
    ck_assert(l3->reset && l3->reset_local);
    ck_assert_uint_eq(l3->reset_code, RPC_RESET_FLOW);
    ck_assert_uint_eq(l3->nbytes[RPC_CH_STDIN], 0);
    /* Frames after our RESET are discarded until the peer acknowledges. */
    rt_raw_frame(&r, RPC_FT_STDIN, RPC_FLAG_EOF, 3, big, 10);
    rt_raw_frame(&r, RPC_FT_RESET, RPC_FLAG_ACK, 3, NULL, 0);
    rt_raw_pump(&r);
    ck_assert(!r.side.closed);
    ck_assert(l3->freed);
    RpcFrameHeader hs[16];
    int n = rt_raw_read_frames(&r, hs, 16);
    bool saw_reset = false;
    for (int i = 0; i < n && i < 16; i++)
        if (hs[i].type == RPC_FT_RESET && hs[i].stream == 3 && !(hs[i].flags & RPC_FLAG_ACK))
            saw_reset = true;
    ck_assert(saw_reset);
    rt_raw_deinit(&r);
}
END_TEST

/* The transport's send queue is bounded: a peer that never reads gets -EAGAIN, not memory. */
START_TEST(tx_queue_bound)
{
    RtPair p;
    RpcConnConfig ca, cb;
    rpc_conn_config_init(&ca);
    rpc_conn_config_init(&cb);
    ca.max_tx_queue = 256 << 10;
    cb.stream_window = 16 << 20;
    cb.conn_window = 64 << 20;
    rt_pair_up(&p, (RtTransport)_i, &ca, &cb);
    RpcStream *s = rt_open(&p, &p.a, "svc");
    rt_pump(&p);
    static uint8_t chunk[65536];
    size_t total = 0;
    for (;;) {
        ssize_t w = rpc_stream_write(s, RPC_CH_STDIN, chunk, sizeof(chunk));
        if (w == -EAGAIN)
            break;
        ck_assert_int_gt(w, 0);
        total += (size_t)w;
        ck_assert_uint_lt(total, 16u << 20);
    }
    RpcConnStats st;
    rpc_conn_get_stats(p.a.conn, &st);
    ck_assert_uint_le(st.tx_queued, 256u << 10);
    ck_assert_int_eq(rpc_stream_send_window(s, RPC_CH_STDIN), 0);
    /* Once b reads, the writer is told it may go on. */
    rt_pump(&p);
    ck_assert_int_ge(rt_log(&p.a, s)->writable, 1);
    ck_assert_uint_eq(p.b.log[0].nbytes[RPC_CH_STDIN], total);
    rt_pair_deinit(&p);
}
END_TEST

/* Freeing the connection from inside its own callbacks is allowed. */
static void free_on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    int *n = ud;
    (*n)++;
    rpc_conn_free(conn);
}

static void count_free(RpcStream *s, void *ud)
{
    int *n = ud;
    (*n) += 100;
}

START_TEST(free_inside_callback)
{
    int sv[2];
    int counter = 0;
    RpcConn *a, *b;
    RpcConnConfig ca, cb;
    rpc_conn_config_init(&ca);
    rpc_conn_config_init(&cb);
    cb.role = RPC_ROLE_ACCEPTOR;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    RpcCallbacks cbs = {.on_call = free_on_call, .on_stream_free = count_free};
    ck_assert_int_eq(rpc_conn_new_fd(&a, sv[0], true, &ca, NULL, NULL), 0);
    ck_assert_int_eq(rpc_conn_new_fd(&b, sv[1], true, &cb, &cbs, &counter), 0);
    RpcStream *s;
    ck_assert_int_eq(rpc_stream_open(a, &(RpcCall){.service = "x"}, &s), 0);
    for (int i = 0; i < 10; i++)
        rpc_conn_dispatch(a);
    ck_assert_int_eq(rpc_conn_dispatch(b), RPC_E_CLOSED); /* b is gone after this */
    ck_assert_int_eq(counter, 101);
    rpc_conn_free(a);
}
END_TEST

/* rpc_unix_listen() and rpc_unix_connect(): folders created, mode applied, a live socket kept, a stale one replaced,
 * and a connection through it carries a call. */
START_TEST(unix_listen)
{
    char dir[] = "/tmp/rpc-unix-XXXXXX", path[200], longp[200];
    struct stat st;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a/b/sock", dir);
    int fd = rpc_unix_listen(path, 0600, 16);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    int cfd = rpc_unix_connect(path);
    ck_assert_int_ge(cfd, 0);
    int afd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(afd, 0);
    RpcConnConfig ci, ca;
    RpcConn *ic = NULL, *ac = NULL;
    rpc_conn_config_init(&ci);
    rpc_conn_config_init(&ca);
    ca.role = RPC_ROLE_ACCEPTOR;
    ck_assert_int_eq(rpc_conn_new_fd(&ic, cfd, true, &ci, NULL, NULL), 0);
    ck_assert_int_eq(rpc_conn_new_fd(&ac, afd, true, &ca, NULL, NULL), 0);
    for (int i = 0; i < 1000 && !(rpc_conn_is_ready(ic) && rpc_conn_is_ready(ac)); i++) {
        rpc_conn_dispatch(ic);
        rpc_conn_dispatch(ac);
    }
    ck_assert(rpc_conn_is_ready(ic) && rpc_conn_is_ready(ac)); /* HELLOs crossed the socket */
    rpc_conn_free(ic);
    rpc_conn_free(ac);
    /* live: kept (the probe's connection waits in the queue, as it would for a daemon) */
    ck_assert_int_eq(rpc_unix_listen(path, 0600, 16), -EADDRINUSE);

    close(fd); /* the file stays: stale now, so it is replaced */
    fd = rpc_unix_listen(path, 0666, 16);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0666);
    close(fd);
    ck_assert_int_eq(rpc_unix_connect(path), -ECONNREFUSED); /* nobody listens now */

    memset(longp, 'x', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    ck_assert_int_eq(rpc_unix_listen(longp, 0600, 16), -ENAMETOOLONG);
    ck_assert_int_eq(rpc_unix_listen("", 0600, 16), -ENAMETOOLONG);
    ck_assert_int_eq(rpc_unix_connect(longp), -ENAMETOOLONG);

    unlink(path);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/a", dir);
    rmdir(path);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("librpc-conn");
    TCase *tc = tcase_create("conn");
    vt_leak_fixture(tc);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, handshake, 0, RT__COUNT);
    tcase_add_loop_test(tc, call_lifecycle, 0, RT__COUNT);
    tcase_add_loop_test(tc, cork_holds_output, 0, RT__COUNT);
    tcase_add_test(tc, reads_arm_no_event);
    tcase_add_test(tc, ring_space_arms_before_sleep);
    tcase_add_loop_test(tc, exit_before_stdin_eof, 0, RT__COUNT);
    tcase_add_loop_test(tc, refuse, 0, RT__COUNT);
    tcase_add_loop_test(tc, both_ends_open, 0, RT__COUNT);
    tcase_add_loop_test(tc, reset_leaves_others, 0, RT__COUNT);
    tcase_add_loop_test(tc, reset_crossing, 0, RT__COUNT);
    tcase_add_loop_test(tc, open_before_hello, 0, RT__COUNT);
    tcase_add_loop_test(tc, reset_before_hello, 0, RT__COUNT);
    tcase_add_loop_test(tc, writable_after_hello, 0, RT__COUNT);
    tcase_add_loop_test(tc, stream_quota_local, 0, RT__COUNT);
    tcase_add_loop_test(tc, thousand_concurrent, 0, RT__COUNT);
    tcase_add_loop_test(tc, peer_gone, 0, RT__COUNT);
    tcase_add_loop_test(tc, close_with_goaway, 0, RT__COUNT);
    tcase_add_loop_test(tc, keepalive_alive, 0, RT__COUNT);
    tcase_add_loop_test(tc, keepalive_dead_peer, 0, RT__COUNT);
    tcase_add_loop_test(tc, tx_queue_bound, 0, RT__COUNT);
    tcase_add_loop_test(tc, ping_rtt, 0, RT__COUNT);
    tcase_add_test(tc, version_refused);
    tcase_add_test(tc, unix_listen);
    tcase_add_test(tc, version_refused_by_peer);
    tcase_add_test(tc, role_clash);
    tcase_add_test(tc, hello_timeout);
    tcase_add_loop_test(tc, violation_closes_only_that_connection, 0, (int)NVIOL);
    tcase_add_test(tc, handler_side_violations);
    tcase_add_test(tc, stream_window_overrun_resets_stream);
    tcase_add_test(tc, free_inside_callback);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
