/* SPDX-License-Identifier: MIT */
/*
 * demo.Uppercase: the capitalising echo of the MirageOS vchan demo. It reads
 * stdin and writes each line, ASCII letters upper-cased and every other byte
 * unchanged, as soon as the line's '\n' has arrived; a final line without
 * '\n' is written at EOF. A line longer than the 64 KiB buffer is written in
 * 64 KiB pieces, so memory stays bounded whatever the caller sends.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io-util.h"
#include "service-cli.h"

#define BUF_SIZE (64 * 1024)

int main(int argc, char **argv)
{
    static char buf[BUF_SIZE];
    size_t len = 0;

    service_cli(argc, argv, "demo.Uppercase",
                "Copy stdin to stdout line by line, ASCII letters in upper case.");
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf + len, sizeof(buf) - len);
        size_t keep, flush;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && wait_fd(STDIN_FILENO, POLLIN))
            continue;
        if (n < 0) {
            fprintf(stderr, "demo.Uppercase: read: %s\n", strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        for (size_t i = len; i < len + (size_t)n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (char)(buf[i] - 'a' + 'A');
        len += (size_t)n;
        /* Everything up to the last complete line goes out now. */
        for (keep = len; keep > 0 && buf[keep - 1] != '\n'; keep--)
            ;
        flush = keep > 0 ? keep : len == sizeof(buf) ? len : 0;
        if (flush == 0)
            continue;
        if (write_all(STDOUT_FILENO, buf, flush) < 0) {
            fprintf(stderr, "demo.Uppercase: write: %s\n", strerror(errno));
            return 1;
        }
        memmove(buf, buf + flush, len - flush);
        len -= flush;
    }
    if (len > 0 && write_all(STDOUT_FILENO, buf, len) < 0) {
        fprintf(stderr, "demo.Uppercase: write: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
