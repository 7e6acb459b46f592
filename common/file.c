/* SPDX-License-Identifier: MIT */
/*
 * file.c - see file.h. Before issue 10 services/config.c and dispatcher/config.c each had
 * their own copy; the dispatcher's neither retried EINTR nor reported a read error.
 */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

int vrpc_file_read(int dirfd, const char *path, size_t cap, char **datap, size_t *sizep)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *data = NULL;
    struct stat st;
    size_t size = 0;

    *datap = NULL;
    *sizep = 0;
    fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return VRPC_FILE_E_NOT_REGULAR;
    if ((unsigned long long)st.st_size > cap)
        return VRPC_FILE_E_TOO_LARGE;
    data = malloc(cap + 1);
    if (!data)
        return -ENOMEM;
    while (size < cap + 1) {
        ssize_t n = read(fd, data + size, cap + 1 - size);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        size += (size_t)n;
    }
    if (size > cap)
        return VRPC_FILE_E_TOO_LARGE;
    data[size] = '\0';
    *datap = TAKE_PTR(data);
    *sizep = size;
    return 0;
}
