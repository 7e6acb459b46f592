/* SPDX-License-Identifier: MIT */
/*
 * demo.Echo: copy stdin to stdout until EOF, byte for byte, then exit 0. When
 * both ends are pipes (as vrpc wires them) the bytes move with splice(2), so
 * they never pass through user space; otherwise a 256 KiB read/write loop.
 * Exits 1 on a read or write error, and dies of SIGPIPE when the reader left
 * before all of stdin was written out; a reader that left once it had it all
 * is no error (splice(2) at EOF reports the missing reader before the EOF).
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io-util.h"
#include "service-cli.h"

#define CHUNK (256 * 1024)

/* Whether stdin is at its end: no data left and no writer (poll says POLLHUP
 * without POLLIN). Waits until it knows: the writer of stdin may close a moment
 * after the reader of stdout did. */
static bool stdin_at_eof(void)
{
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};

    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return false;
    return !(p.revents & POLLIN) && (p.revents & POLLHUP);
}

/* Bytes could not be written: the reader left early. Die as a write with
 * SIGPIPE's default disposition would have. */
static int die_of_sigpipe(void)
{
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    return -1;
}

/* splice(2) found the reader of stdout gone: done if nothing was left to give
 * it (stdin at its end), else bytes are lost. */
static int reader_gone(void)
{
    return stdin_at_eof() ? 1 : die_of_sigpipe();
}

/* Returns 1 when done (EOF), 0 when splice does not apply, -1 on error. */
static int copy_splice(void)
{
    for (;;) {
        ssize_t n = splice(STDIN_FILENO, NULL, STDOUT_FILENO, NULL, 1 << 20, SPLICE_F_MOVE);

        if (n > 0)
            continue;
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EPIPE)
            return reader_gone();
        if (errno == EAGAIN) {
            /* Non-blocking fds: wait for whichever side is not ready. */
            struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                  {.fd = STDOUT_FILENO, .events = POLLOUT}};

            if (poll(p, 2, -1) < 0 && errno != EINTR)
                return -1;
            continue;
        }
        if (errno == EINVAL || errno == ESPIPE || errno == EBADF)
            return 0;
        return -1;
    }
}

static int copy_rw(void)
{
    static char buf[CHUNK];

    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && wait_fd(STDIN_FILENO, POLLIN))
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            return errno == EPIPE ? die_of_sigpipe() : -1;
    }
}

int main(int argc, char **argv)
{
    int r;

    service_cli(argc, argv, "demo.Echo", "Copy stdin to stdout until EOF.");
    /* EPIPE instead, so that a reader gone at our EOF is told apart (reader_gone) */
    signal(SIGPIPE, SIG_IGN);
    r = copy_splice();
    if (r == 0)
        r = copy_rw() == 0 ? 1 : -1;
    if (r < 0) {
        fprintf(stderr, "demo.Echo: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
