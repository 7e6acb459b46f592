/* SPDX-License-Identifier: MIT */
/*
 * unixsock.c - listening Unix stream sockets for the daemons that speak librpc locally (the
 * agent's socket for vrpc-call, the dispatcher's dom0 and control sockets). The socket file
 * gets its permissions at bind time, through the umask, so that there is no window in which
 * a more permissive socket exists. A leftover socket file of a dead daemon is replaced, but
 * never one that still accepts connections.
 */
#include "rpc.h"

#include <limits.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!path || !*path || strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Create the folders above @path (0755), like mkdir -p; a failure shows up at bind(). */
static void make_parents(const char *path)
{
    char dir[PATH_MAX];

    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return;
        *p = '/';
    }
}

int rpc_unix_listen(const char *path, mode_t mode, int backlog)
{
    struct sockaddr_un sa;
    mode_t old_umask;
    int fd, r;

    r = fill_addr(&sa, path);
    if (r < 0)
        return r;
    make_parents(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    old_umask = umask((mode_t)(~mode & 0777));
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (r < 0 && errno == EADDRINUSE) {
        /* Replace it only if nobody is accepting on it. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            umask(old_umask);
            close(fd);
            return -EADDRINUSE;
        }
        unlink(path);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    umask(old_umask);
    if (r < 0 || listen(fd, backlog) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int rpc_unix_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd, r;

    r = fill_addr(&sa, path);
    if (r < 0)
        return r;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}
