/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * write_all() for the shipped services: writes every byte, retrying on EINTR
 * and waiting with poll() if the fd it was handed is non-blocking.
 */

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

/* Wait until FD is ready for EVENTS; false on a poll error. */
static inline bool wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};

    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return false;
    return true;
}

/* Returns 0 or -errno. */
static inline int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT))
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}
