/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD shim answering the few libxenctrl calls that Xen userspace
 * makes of the hypervisor (xc_interface_open/close, xc_domain_getinfo) from
 * the instance's domain table. Built twice: libvrpcsim-xc.so for every
 * process started by `vrpc-sim exec`, and libvrpcsim-xsd.so (SIM_XSD) for
 * xenstored only, which also answers open()/fopen() of /proc/xen/xsd_port
 * (an unbound dom0 event channel, as the dom0 kernel provides) and
 * /proc/xen/xsd_kva (dom0's xenstore ring page; nobody uses it here).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenctrl.h>

#include "simcore.h"

#define EXPORT __attribute__((visibility("default")))

struct xc_interface_core {
    int dummy;
};

EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger,
                                       xentoollog_logger *dombuild_logger, unsigned open_flags)
{
    return calloc(1, sizeof(struct xc_interface_core));
}

EXPORT int xc_interface_close(xc_interface *xch)
{
    free(xch);
    return 0;
}

/* Domains of the instance that are still alive, in domid order. */
EXPORT int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
                             xc_dominfo_t *info)
{
    char path[4096], name[128], state[32];
    unsigned int domid, n = 0;
    FILE *f;

    if (sim_path(path, sizeof(path), "domains") < 0 || !(f = fopen(path, "re"))) {
        errno = ESRCH;
        return -1;
    }
    /* the daemon writes the table in domid order */
    while (n < max_doms && fscanf(f, "%u %127s %31s", &domid, name, state) == 3) {
        if (domid < first_domid || strcmp(state, "running") != 0)
            continue;
        memset(&info[n], 0, sizeof(info[n]));
        info[n].domid = domid;
        info[n].running = 1;
        info[n].max_vcpu_id = 0;
        info[n].nr_online_vcpus = 1;
        n++;
    }
    fclose(f);
    return (int)n;
}

#ifdef SIM_XSD
#include <xenevtchn.h>

static int xsd_file(const char *path)
{
    static int port = -1;
    int fd;

    if (strcmp(path, "/proc/xen/xsd_port") == 0) {
        char buf[16];
        int n;

        if (port < 0) {
            /* held for the life of xenstored, like the dom0 kernel's */
            xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
            if (!xce)
                return -1;
            port = xenevtchn_bind_unbound_port(xce, 0);
            if (port < 0)
                return -1;
        }
        fd = memfd_create("xsd_port", MFD_CLOEXEC);
        n = snprintf(buf, sizeof(buf), "%d", port);
        if (fd < 0 || write(fd, buf, (size_t)n) != n || lseek(fd, 0, SEEK_SET) != 0)
            return -1;
        return fd;
    }
    if (strcmp(path, "/proc/xen/xsd_kva") == 0) {
        fd = memfd_create("xsd_kva", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, SIM_PAGE_SIZE) < 0)
            return -1;
        return fd;
    }
    errno = ENOENT;
    return -1;
}

static bool is_xsd(const char *path)
{
    return path && strncmp(path, "/proc/xen/xsd_", 14) == 0;
}

static int next_open(const char *sym, const char *path, int flags, mode_t mode)
{
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(path, flags, mode);
}

EXPORT int open(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return is_xsd(path) ? xsd_file(path) : next_open("open", path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return is_xsd(path) ? xsd_file(path) : next_open("open64", path, flags, mode);
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
    FILE *(*real)(const char *, const char *);
    int fd;

    if (is_xsd(path)) {
        fd = xsd_file(path);
        return fd < 0 ? NULL : fdopen(fd, mode);
    }
    real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
    return real ? real(path, mode) : NULL;
}
#endif
