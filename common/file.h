/* SPDX-License-Identifier: MIT */
/*
 * file.h - reading a small configuration file whole, bounded: the one slurp behind
 * SERVICE.yaml and dispatcher.yaml (each caller passes its own size cap).
 */
#ifndef VRPC_COMMON_FILE_H
#define VRPC_COMMON_FILE_H

#include <stddef.h>

/* Outcomes of vrpc_file_read() the caller reports in its own words. */
enum {
    VRPC_FILE_E_NOT_REGULAR = 1, /* a folder, FIFO, device or socket */
    VRPC_FILE_E_TOO_LARGE = 2,   /* more than the cap */
};

/*
 * vrpc_file_read() - read the whole of @path (relative to @dirfd, which may be AT_FDCWD) into
 * a new buffer *@datap of *@sizep bytes plus a terminating NUL, refusing anything but a
 * regular file of at most @cap bytes. The file is opened non-blocking, so that a FIFO planted
 * under the name cannot hang the caller, and read one byte past @cap to tell "exactly at" from
 * "over", however the file grows meanwhile. Returns 0, VRPC_FILE_E_NOT_REGULAR,
 * VRPC_FILE_E_TOO_LARGE, -ENOMEM, or the -errno of open() (-ENOENT: absent) or read().
 */
int vrpc_file_read(int dirfd, const char *path, size_t cap, char **datap, size_t *sizep);

#endif
