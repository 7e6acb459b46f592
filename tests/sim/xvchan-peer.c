/* SPDX-License-Identifier: MIT */
/*
 * xvchan-peer: a test peer linked against Debian's REAL libxenvchan, used to
 * prove that unmodified Xen userspace runs over the sim (and, later, that
 * our vchan interoperates with it).
 *
 *   xvchan-peer server|client DOMID PATH send|recv|ping|echo|hold [BYTES] [--ring N]
 *
 * send: write BYTES of a deterministic stream, print "sent N fnv=HEX", then
 *       wait for the reader's one-byte ack before closing.
 * recv: read until EOF (or BYTES, then ack), print "received N fnv=HEX".
 * ping: send BYTES in 512-byte chunks, expect each echoed back; "echoed N".
 * echo: copy whatever arrives back until the peer closes.
 * hold: print "ready", then wait until the peer closes; print "closed".
 * --after FILE: connect, then wait for FILE to exist before the first byte.
 * Exit 0 on success, 1 on failure, 2 on usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxenvchan.h>

#include "peer-stream.h"

static int usage(void)
{
    fprintf(stderr, "usage: xvchan-peer server|client DOMID PATH send|recv|ping|echo|hold [BYTES] "
                    "[--ring N] [--after FILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static uint8_t buf[65536];
    struct libxenvchan *v;
    unsigned long long total = 0, want = 0;
    uint64_t h = PEER_FNV_INIT, st = 42;
    size_t ring = 65536;
    const char *mode, *after = NULL;
    int domid, server;

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
        v = libxenvchan_server_init(NULL, domid, argv[3], ring, ring);
    else
        v = libxenvchan_client_init(NULL, domid, argv[3]);
    if (!v) {
        fprintf(stderr, "xvchan-peer: %s init failed for domain %d path %s: %s\n", argv[1], domid,
                argv[3], strerror(errno));
        return 1;
    }
    v->blocking = 1;
    if (server && libxenvchan_wait(v) < 0) { /* the client's connect event */
        fprintf(stderr, "xvchan-peer: wait failed\n");
        return 1;
    }
    /* hold back the first byte until the peer says it is ready for it */
    for (int i = 0; after && i < 2000 && access(after, F_OK) != 0; i++)
        usleep(5000);
    if (strcmp(mode, "send") == 0) {
        while (total < want) {
            size_t n = sizeof(buf);
            if (want - total < n)
                n = (size_t)(want - total);
            peer_fill(buf, n, &st);
            if (libxenvchan_write(v, buf, n) != (int)n) {
                fprintf(stderr, "xvchan-peer: write failed after %llu bytes\n", total);
                return 1;
            }
            h = peer_fnv(h, buf, n);
            total += n;
        }
        printf("sent %llu fnv=%016" PRIx64 "\n", total, h);
        fflush(stdout);
        /* the reader acks with one byte once it has everything */
        if (libxenvchan_read(v, buf, 1) != 1) {
            fprintf(stderr, "xvchan-peer: no ack from the reader\n");
            return 1;
        }
    } else if (strcmp(mode, "recv") == 0) {
        for (;;) {
            int n;
            if (want && total >= want)
                break;
            if (!libxenvchan_is_open(v) && libxenvchan_data_ready(v) == 0)
                break;
            n = libxenvchan_read(v, buf, sizeof(buf));
            if (n < 0)
                break;
            h = peer_fnv(h, buf, (size_t)n);
            total += (unsigned long long)n;
        }
        printf("received %llu fnv=%016" PRIx64 "\n", total, h);
        if (want && total == want)
            libxenvchan_write(v, "k", 1);
    } else if (strcmp(mode, "ping") == 0) {
        /* send BYTES in chunks, read each chunk back, compare */
        static uint8_t back[sizeof(buf)];
        while (total < want) {
            size_t n = 512, got = 0; /* below the smallest ring: no deadlock */
            if (want - total < n)
                n = (size_t)(want - total);
            peer_fill(buf, n, &st);
            if (libxenvchan_write(v, buf, n) != (int)n)
                break;
            while (got < n) {
                int r = libxenvchan_read(v, back + got, n - got);
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
            if (got != n || memcmp(buf, back, n) != 0) {
                fprintf(stderr, "xvchan-peer: echo mismatch after %llu bytes\n", total);
                return 1;
            }
            total += n;
        }
        printf("echoed %llu\n", total);
        if (total != want)
            return 1;
    } else if (strcmp(mode, "echo") == 0) {
        for (;;) {
            int n = libxenvchan_read(v, buf, sizeof(buf));
            if (n <= 0)
                break;
            if (libxenvchan_write(v, buf, (size_t)n) != n)
                break;
        }
    } else if (strcmp(mode, "hold") == 0) {
        printf("ready\n");
        fflush(stdout);
        while (libxenvchan_is_open(v) == 1)
            if (libxenvchan_wait(v) < 0)
                break;
        printf("closed\n");
    } else {
        libxenvchan_close(v);
        return usage();
    }
    fflush(stdout);
    libxenvchan_close(v);
    return 0;
}
