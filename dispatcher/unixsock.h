/* SPDX-License-Identifier: MIT */
/*
 * unixsock.h - listening Unix stream sockets for the dispatcher.
 */
#pragma once

#include <sys/types.h>

/*
 * Listen on @path with permissions @mode (the socket is created under a umask that
 * leaves only @mode). A stale socket (nobody accepting) is replaced; a live one is an
 * error (-EADDRINUSE). The parent folder is created (0755) if missing.
 * Returns the non-blocking, close-on-exec fd, or -errno (-ENAMETOOLONG for a long path).
 */
int unixsock_listen(const char *path, mode_t mode);
