/* SPDX-License-Identifier: MIT */
/*
 * ovchan-peer - the interop tests' peer built on vrpc's own vchan library: the same command
 * line, modes, deterministic byte stream and FNV-1a checksum as tests/sim/xvchan-peer (which
 * links Debian's libxenvchan), so the outputs of the two compare line for line.
 *
 *   ovchan-peer server|client DOMID PATH MODE [BYTES] [--ring N] [--after FILE]
 *
 * send:   write BYTES of the stream, print "sent N fnv=HEX", wait for the reader's one-byte
 *         ack, close.
 * recv:   read until EOF (or BYTES, then ack), print "received N fnv=HEX".
 * ping:   send BYTES in 512-byte chunks, expect each echoed back; "echoed N".
 * echo:   copy whatever arrives back until the peer closes.
 * hold:   print "ready" once connected, wait until the peer closes (or, asked every 200 ms
 *         by vchan_check_peer(), its domain is gone), print "closed", then
 *         "peer-domain N" (vchan_check_peer(): 1 alive, 0 gone, -errno cannot tell).
 * stress: (hostile-peer test) send and receive at random until the channel fails; print
 *         "outcome eproto" or "outcome eof" (exit 0) or "outcome other ERR" (exit 1). Gives
 *         up with exit 1 after BYTES milliseconds (default 60000).
 * A client waits up to 10 s for the server to appear. Exit 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vchan/vchan.h"

#include "peer-stream.h"

#define CHUNK 65536
#define WAIT_MS 30000 /* no single wait of a healthy transfer takes this long */

static int usage(void)
{
    fprintf(stderr, "usage: ovchan-peer server|client DOMID PATH "
                    "send|recv|ping|echo|hold|stress [BYTES] [--ring N] [--after FILE]\n");
    return 2;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "ovchan-peer: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    return 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Server: wait until a client has connected (or come and gone). */
static int wait_connected(Vchan *c)
{
    while (vchan_is_open(c) == VCHAN_STATE_WAITING) {
        struct pollfd pfd = {.fd = vchan_fd(c), .events = POLLIN};

        if (poll(&pfd, 1, WAIT_MS) <= 0)
            return -ETIMEDOUT;
        if (vchan_dispatch(c) < 0)
            return -EIO;
    }
    return vchan_is_open(c) == VCHAN_STATE_BROKEN ? -EPROTO : 0;
}

static int do_send(Vchan *c, unsigned long long want)
{
    static uint8_t buf[CHUNK];
    unsigned long long total = 0;
    uint64_t h = PEER_FNV_INIT, st = 42;
    size_t done;
    int rc;

    while (total < want) {
        size_t n = want - total < sizeof(buf) ? (size_t)(want - total) : sizeof(buf);

        peer_fill(buf, n, &st);
        rc = vchan_write_full(c, buf, n, &done, WAIT_MS);
        if (rc < 0) {
            fprintf(stderr, "ovchan-peer: write failed after %llu bytes: %s\n", total + done,
                    strerror(-rc));
            return 1;
        }
        h = peer_fnv(h, buf, n);
        total += n;
    }
    printf("sent %llu fnv=%016" PRIx64 "\n", total, h);
    fflush(stdout);
    rc = vchan_read_full(c, buf, 1, NULL, WAIT_MS);
    if (rc != 0) {
        fprintf(stderr, "ovchan-peer: no ack from the reader (%d)\n", rc);
        return 1;
    }
    return 0;
}

static int do_recv(Vchan *c, unsigned long long want)
{
    static uint8_t buf[CHUNK];
    unsigned long long total = 0;
    uint64_t h = PEER_FNV_INIT;
    int rc = 0;

    while (!want || total < want) {
        size_t max = sizeof(buf);
        ssize_t n;

        if (want && want - total < max)
            max = (size_t)(want - total);
        n = vchan_read(c, buf, max);
        if (n > 0) {
            h = peer_fnv(h, buf, (size_t)n);
            total += (unsigned long long)n;
            continue;
        }
        if (n == 0)
            break;
        if (n != -EAGAIN) {
            rc = (int)n;
            break;
        }
        n = vchan_wait_readable(c, 1, WAIT_MS);
        if (n < 0) {
            rc = (int)n;
            break;
        }
    }
    printf("received %llu fnv=%016" PRIx64 "\n", total, h);
    fflush(stdout);
    if (rc < 0)
        return fail("read", rc);
    if (want && total == want) {
        rc = vchan_write_full(c, "k", 1, NULL, WAIT_MS);
        if (rc < 0)
            return fail("ack", rc);
        vchan_flush(c, WAIT_MS);
    }
    return 0;
}

static int do_ping(Vchan *c, unsigned long long want)
{
    static uint8_t buf[512], back[512];
    unsigned long long total = 0;
    uint64_t st = 42;

    while (total < want) {
        size_t n = want - total < sizeof(buf) ? (size_t)(want - total) : sizeof(buf);
        int rc;

        peer_fill(buf, n, &st);
        rc = vchan_write_full(c, buf, n, NULL, WAIT_MS);
        if (rc == 0)
            rc = vchan_read_full(c, back, n, NULL, WAIT_MS);
        if (rc != 0 || memcmp(buf, back, n) != 0) {
            fprintf(stderr, "ovchan-peer: echo mismatch after %llu bytes (%d)\n", total, rc);
            return 1;
        }
        total += n;
    }
    printf("echoed %llu\n", total);
    return 0;
}

static int do_echo(Vchan *c)
{
    static uint8_t buf[CHUNK];

    for (;;) {
        ssize_t n = vchan_read(c, buf, sizeof(buf));
        int rc;

        if (n == 0)
            return 0;
        if (n == -EAGAIN) {
            rc = vchan_wait_readable(c, 1, -1);
            if (rc < 0)
                return fail("wait", rc);
            continue;
        }
        if (n < 0)
            return fail("read", (int)n);
        rc = vchan_write_full(c, buf, (size_t)n, NULL, WAIT_MS);
        if (rc == -EPIPE)
            return 0;
        if (rc < 0)
            return fail("write", rc);
    }
}

static int do_hold(Vchan *c)
{
    static uint8_t buf[CHUNK];

    printf("ready\n");
    fflush(stdout);
    for (;;) {
        ssize_t n = vchan_read(c, buf, sizeof(buf));

        if (n == 0)
            break;
        if (n == -EAGAIN)
            n = vchan_wait_readable(c, 1, 200);
        /* a destroyed domain never clears its live byte: ask now and then, as a daemon
         * would when XenStore's @releaseDomain fires */
        if (n == -ETIMEDOUT) {
            vchan_check_peer(c); /* 0 turns the channel CLOSED: the next read is EOF */
            n = 0;
        }
        if (n < 0)
            return fail("hold", (int)n);
    }
    printf("closed\npeer-domain %d\n", vchan_check_peer(c));
    return 0;
}

/*
 * Random traffic against a hostile peer. Any outcome but a latched violation or a close is
 * a failure; so is still running at @limit_ms (a hang). The outcome is printed before exit.
 */
static int do_stress(Vchan *c, unsigned long long limit_ms)
{
    static uint8_t buf[CHUNK];
    uint64_t deadline = now_ms() + (limit_ms ? limit_ms : 60000);
    unsigned seed = (unsigned)getpid();
    int rc = 0;

    memset(buf, 'x', sizeof(buf));
    while (now_ms() < deadline) {
        size_t n = 1 + (size_t)rand_r(&seed) % sizeof(buf);
        ssize_t r;

        switch (rand_r(&seed) % 6) {
        case 0:
            r = vchan_write(c, buf, n);
            break;
        case 1:
            r = vchan_read(c, buf, n);
            r = r == 0 ? -ENOTCONN : r; /* EOF */
            break;
        case 2:
            r = vchan_send(c, buf, n % 4096 + 1);
            break;
        case 3:
            r = vchan_recv(c, buf, n % 4096 + 1);
            r = r == 0 ? -ENOTCONN : r;
            break;
        case 4:
            r = vchan_data_ready(c);
            if (r >= 0)
                r = vchan_buffer_space(c);
            if (r >= 0 && vchan_is_open(c) == VCHAN_STATE_CLOSED && vchan_data_ready(c) == 0)
                r = -ENOTCONN;
            break;
        default:
            r = rand_r(&seed) % 2 ? vchan_wait_readable(c, 1 + n % 512, 50)
                                  : vchan_wait_writable(c, 1 + n % 512, 50);
            if (r == -ETIMEDOUT || r == -EMSGSIZE)
                r = 0;
            break;
        }
        if (r == -EAGAIN || r == -EMSGSIZE || r == -ECONNRESET || r >= 0)
            continue;
        rc = (int)r;
        break;
    }
    if (rc == -EPROTO && vchan_is_open(c) == VCHAN_STATE_BROKEN) {
        printf("outcome eproto\n");
        return 0;
    }
    if (rc == -EPIPE || rc == -ENOTCONN) {
        printf("outcome eof\n");
        return 0;
    }
    printf("outcome other %s\n", rc ? strerror(-rc) : "timeout (hang)");
    return 1;
}

int main(int argc, char **argv)
{
    Vchan *c = NULL;
    unsigned long long want = 0;
    size_t ring = 65536;
    const char *mode, *after = NULL;
    int domid, server, rc;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: ovchan-peer server|client DOMID PATH "
               "send|recv|ping|echo|hold|stress [BYTES] [--ring N] [--after FILE]\n");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("ovchan-peer 1\n");
        return 0;
    }
    if (argc < 5)
        return usage();
    server = strcmp(argv[1], "server") == 0;
    if (!server && strcmp(argv[1], "client") != 0)
        return usage();
    domid = atoi(argv[2]);
    mode = argv[4];
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--ring") == 0 && i + 1 < argc)
            ring = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--after") == 0 && i + 1 < argc)
            after = argv[++i];
        else
            want = strtoull(argv[i], NULL, 0);
    }
    if (server)
        rc = vchan_server_new(&c, domid, argv[3], ring, ring);
    else
        rc = vchan_client_new_wait(&c, domid, argv[3], 10000);
    if (rc < 0) {
        fprintf(stderr, "ovchan-peer: %s init failed for domain %d path %s: %s\n", argv[1], domid,
                argv[3], strerror(-rc));
        /* a hostile server's page may be refused at connect: that is an EPROTO outcome */
        if (strcmp(mode, "stress") == 0 && rc == -EPROTO) {
            printf("outcome eproto\n");
            return 0;
        }
        return 1;
    }
    if (server && strcmp(mode, "stress") != 0 && (rc = wait_connected(c)) < 0) {
        vchan_free(c);
        return fail("wait for client", rc);
    }
    for (int i = 0; after && i < 2000 && access(after, F_OK) != 0; i++)
        usleep(5000);

    if (strcmp(mode, "send") == 0)
        rc = do_send(c, want);
    else if (strcmp(mode, "recv") == 0)
        rc = do_recv(c, want);
    else if (strcmp(mode, "ping") == 0)
        rc = do_ping(c, want);
    else if (strcmp(mode, "echo") == 0)
        rc = do_echo(c);
    else if (strcmp(mode, "hold") == 0)
        rc = do_hold(c);
    else if (strcmp(mode, "stress") == 0)
        rc = do_stress(c, want);
    else
        rc = -1;
    fflush(stdout);
    vchan_free(c);
    return rc < 0 ? usage() : rc;
}
