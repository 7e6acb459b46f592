/* SPDX-License-Identifier: MIT */
/*
 * simcore: shared state of an emulated Xen host, used by the drop-in
 * hypervisor libraries, the xenstored preload, the per-guest xenbus process
 * and the daemon. See simcore.h for the layout of an instance.
 */
#include "simcore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;
static SimDomFile *domfiles[SIM_MAX_DOMAINS];
static int send_sock = -1;

const char *sim_instance_dir(void)
{
    const char *dir = getenv("VRPCSIM_INSTANCE");
    return (dir && *dir) ? dir : "/dev/shm/vrpc-sim/default";
}

uint32_t sim_self_domid(void)
{
    const char *s = getenv("VRPCSIM_DOMID");
    char *end;
    unsigned long v;

    if (!s || !*s)
        return 0;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v >= SIM_MAX_DOMAINS)
        return SIM_DOMID_INVALID;
    return (uint32_t)v;
}

int sim_path(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n, m;

    n = snprintf(buf, len, "%s/", sim_instance_dir());
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= len - (size_t)n)
        return -ENAMETOOLONG;
    return 0;
}

static SimDomFile *map_domfile(int fd)
{
    void *p = mmap(NULL, sizeof(SimDomFile), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

SimDomFile *sim_domfile(uint32_t domid)
{
    char path[PATH_MAX];
    SimDomFile *df;
    struct stat st;
    int fd;

    if (domid >= SIM_MAX_DOMAINS) {
        errno = ESRCH;
        return NULL;
    }
    pthread_mutex_lock(&core_lock);
    df = domfiles[domid];
    if (df)
        goto out;
    if (sim_path(path, sizeof(path), "dom.%u", domid) < 0) {
        errno = ENAMETOOLONG;
        goto out;
    }
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        errno = ESRCH;
        goto out;
    }
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(SimDomFile)) {
        close(fd);
        errno = ESRCH;
        goto out;
    }
    df = map_domfile(fd);
    close(fd);
    if (df && (df->magic != SIM_DOMFILE_MAGIC || df->domid != domid)) {
        munmap(df, sizeof(*df));
        df = NULL;
        errno = ESRCH;
    }
    domfiles[domid] = df;
out:
    pthread_mutex_unlock(&core_lock);
    return df;
}

int sim_domfile_create(uint32_t domid)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    SimDomFile *df;
    int fd, r;

    if (domid >= SIM_MAX_DOMAINS)
        return -EINVAL;
    if ((r = sim_path(path, sizeof(path), "dom.%u", domid)) < 0 ||
        (r = sim_path(tmp, sizeof(tmp), "dom.%u.tmp", domid)) < 0)
        return r;
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, sizeof(SimDomFile)) < 0) {
        r = -errno;
        close(fd);
        unlink(tmp);
        return r;
    }
    df = map_domfile(fd);
    close(fd);
    if (!df) {
        unlink(tmp);
        return -ENOMEM;
    }
    df->magic = SIM_DOMFILE_MAGIC;
    df->domid = domid;
    atomic_store(&df->next_ref, SIM_FIRST_FREE_REF);
    munmap(df, sizeof(*df));
    if (rename(tmp, path) < 0)
        return -errno;
    return 0;
}

uint32_t sim_next_serial(void)
{
    static _Atomic uint32_t serial;
    return atomic_fetch_add(&serial, 1) + 1;
}

int sim_hv_dial(int absent_err)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (sim_path(sun.sun_path, sizeof(sun.sun_path), "hv.sock") < 0)
        return -ENAMETOOLONG;
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int r = absent_err ? absent_err : -errno;
        close(fd);
        return r;
    }
    return fd;
}

int sim_hv_connect(enum SimHandleKind kind, uint32_t serial)
{
    SimMsg m = {0};
    /* no emulated hypervisor here: like a missing /dev/xen node */
    int fd = sim_hv_dial(-ENOENT);

    if (fd < 0)
        return fd;
    m.type = SIM_MSG_HELLO;
    m.dom = sim_self_domid();
    m.a = kind;
    m.b = (uint32_t)getpid();
    m.c = serial;
    if (send(fd, &m, offsetof(SimMsg, text), MSG_NOSIGNAL) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

void sim_hv_send(int fd, uint32_t type, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    SimMsg m = {.type = type, .dom = sim_self_domid(), .a = a, .b = b, .c = c, .d = d};

    if (fd >= 0)
        (void)send(fd, &m, offsetof(SimMsg, text), MSG_NOSIGNAL);
}

/* --- event channels -------------------------------------------------- */

int sim_evtchn_addr(uint32_t pid, uint32_t serial, void *addr, socklen_t *lenp)
{
    struct sockaddr_un *sun = addr;
    char name[sizeof(sun->sun_path) - 1];
    int n;

    n = snprintf(name, sizeof(name), "vrpc-sim:%s:ev:%u.%u", sim_instance_dir(), pid, serial);
    if (n < 0 || (size_t)n >= sizeof(name))
        return -ENAMETOOLONG;
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path + 1, name, (size_t)n); /* abstract: leading NUL */
    *lenp = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    return 0;
}

static int sender_socket(void)
{
    int fd;

    pthread_mutex_lock(&core_lock);
    if (send_sock < 0)
        send_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    fd = send_sock;
    pthread_mutex_unlock(&core_lock);
    return fd;
}

void sim_evtchn_deliver(uint32_t dom, uint32_t port)
{
    struct sockaddr_un sun;
    SimDomFile *df;
    SimPort *p;
    socklen_t len;
    uint32_t st, old, pid, serial;
    int fd;

    if (port == 0 || port >= SIM_MAX_PORTS || !(df = sim_domfile(dom)))
        return;
    p = &df->ports[port];
    st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st != SIM_PORT_INTERDOMAIN && st != SIM_PORT_VIRQ)
        return;
    old = atomic_fetch_or(&p->flags, SIM_PORT_PENDING);
    if (old & (SIM_PORT_PENDING | SIM_PORT_MASKED))
        return; /* merged with an event already on its way, or masked */
    pid = atomic_load(&p->owner_pid);
    serial = atomic_load(&p->owner_serial);
    if (sim_evtchn_addr(pid, serial, &sun, &len) < 0 || (fd = sender_socket()) < 0)
        return;
    /*
     * A full receive queue means the receiver has events to read anyway; it
     * sweeps its ports for PENDING bits when its queue drains, so an
     * EAGAIN here loses nothing.
     */
    if (sendto(fd, &port, sizeof(port), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sun, len) <
            0 &&
        errno == EAGAIN)
        atomic_fetch_or(&p->flags, SIM_PORT_LOST);
}

int sim_evtchn_send(uint32_t dom, uint32_t port)
{
    SimDomFile *df;
    SimPort *p;
    uint32_t st;

    if (port == 0 || port >= SIM_MAX_PORTS)
        return -EINVAL;
    if (!(df = sim_domfile(dom)))
        return -ESRCH;
    p = &df->ports[port];
    st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st == SIM_PORT_INTERDOMAIN)
        sim_evtchn_deliver(atomic_load(&p->remote_dom), atomic_load(&p->remote_port));
    else if (st != SIM_PORT_UNBOUND && st != SIM_PORT_VIRQ && st != SIM_PORT_BINDING)
        return -EINVAL;
    /* Xen accepts a send on an unbound port and drops it. */
    return 0;
}

void sim_evtchn_close_port(uint32_t dom, uint32_t port)
{
    SimDomFile *df, *rdf;
    SimPort *p, *r;
    uint32_t st, rdom, rport;

    if (port == 0 || port >= SIM_MAX_PORTS || !(df = sim_domfile(dom)))
        return;
    p = &df->ports[port];
    st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st == SIM_PORT_INTERDOMAIN) {
        rdom = atomic_load(&p->remote_dom);
        rport = atomic_load(&p->remote_port);
        rdf = rport < SIM_MAX_PORTS ? sim_domfile(rdom) : NULL;
        if (rdf) {
            uint32_t expect = SIM_PORT_INTERDOMAIN;
            r = &rdf->ports[rport];
            if (atomic_load(&r->remote_dom) == dom && atomic_load(&r->remote_port) == port) {
                /* like Xen: the remote end is unbound, bindable by us again */
                atomic_store(&r->remote_port, 0);
                atomic_compare_exchange_strong(&r->state, &expect, SIM_PORT_UNBOUND);
            }
        }
    }
    if (st == SIM_PORT_FREE)
        return;
    atomic_store(&p->flags, 0);
    atomic_store(&p->virq, 0);
    atomic_store(&p->remote_port, 0);
    atomic_store(&p->owner_pid, 0);
    atomic_store(&p->owner_serial, 0);
    atomic_store_explicit(&p->state, SIM_PORT_FREE, memory_order_release);
}

int sim_evtchn_alloc(SimDomFile *df)
{
    for (uint32_t i = 1; i < SIM_MAX_PORTS; i++) {
        uint32_t expect = SIM_PORT_FREE;
        if (atomic_compare_exchange_strong(&df->ports[i].state, &expect, SIM_PORT_RESERVED)) {
            atomic_store(&df->ports[i].flags, 0);
            return (int)i;
        }
    }
    return -ENOSPC;
}

/* --- grants ---------------------------------------------------------- */

static int grant_path(char *buf, size_t len, uint32_t owner, uint32_t ref)
{
    return sim_path(buf, len, "gnt/%u/%u", owner, ref);
}

int sim_grant_create(uint32_t owner, uint32_t ref, uint32_t grantee, bool writable, int *fdp)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    SimGrantMeta meta = {
        .magic = SIM_GRANT_MAGIC,
        .owner = owner,
        .grantee = grantee,
        .flags = writable ? SIM_GRANT_WRITABLE : 0,
        .owner_pid = (uint32_t)getpid(),
    };
    static _Atomic uint32_t tmpseq;
    int fd, r;

    if ((r = grant_path(path, sizeof(path), owner, ref)) < 0)
        return r;
    if ((r = sim_path(tmp, sizeof(tmp), "gnt/%u/.tmp.%d.%u", owner, (int)getpid(),
                      atomic_fetch_add(&tmpseq, 1))) < 0)
        return r;
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        char dir[PATH_MAX];
        if (sim_path(dir, sizeof(dir), "gnt/%u", owner) == 0 && mkdir(dir, 0700) < 0 &&
            errno != EEXIST)
            return -errno;
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, SIM_PAGE_SIZE + sizeof(meta)) < 0 ||
        pwrite(fd, &meta, sizeof(meta), SIM_PAGE_SIZE) != (ssize_t)sizeof(meta)) {
        r = -errno;
        goto fail;
    }
    /* link() publishes a complete file atomically and fails if ref is taken */
    if (link(tmp, path) < 0) {
        r = -errno;
        goto fail;
    }
    unlink(tmp);
    if (fdp)
        *fdp = fd;
    else
        close(fd);
    return 0;
fail:
    close(fd);
    unlink(tmp);
    return r;
}

int sim_grant_alloc(uint32_t owner, uint32_t grantee, bool writable, int *fdp)
{
    SimDomFile *df = sim_domfile(owner);
    const uint32_t span = SIM_MAX_REF - SIM_FIRST_FREE_REF + 1;

    if (!df)
        return -ESRCH;
    for (uint32_t tries = 0; tries < span; tries++) {
        uint32_t ref = atomic_fetch_add(&df->next_ref, 1);
        int r;

        ref = SIM_FIRST_FREE_REF + (ref - SIM_FIRST_FREE_REF) % span;
        r = sim_grant_create(owner, ref, grantee, writable, fdp);
        if (r == 0)
            return (int)ref;
        if (r != -EEXIST)
            return r;
    }
    return -ENOSPC;
}

int sim_grant_open(uint32_t owner, uint32_t ref, uint32_t mapper, bool write)
{
    char path[PATH_MAX];
    SimGrantMeta meta;
    int fd, r;

    if ((r = grant_path(path, sizeof(path), owner, ref)) < 0)
        return r;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -errno;
    if (pread(fd, &meta, sizeof(meta), SIM_PAGE_SIZE) != (ssize_t)sizeof(meta) ||
        meta.magic != SIM_GRANT_MAGIC) {
        close(fd);
        return -ENOENT;
    }
    if (meta.grantee != mapper || (write && !(meta.flags & SIM_GRANT_WRITABLE))) {
        close(fd);
        return -EPERM;
    }
    return fd;
}

void sim_grant_remove(uint32_t owner, uint32_t ref)
{
    char path[PATH_MAX];

    if (grant_path(path, sizeof(path), owner, ref) == 0)
        unlink(path);
}

void sim_notify_execute(uint32_t owner, uint32_t ref, uint32_t offset_flags, uint32_t notifier_dom,
                        uint32_t port)
{
    uint32_t offset = offset_flags & 0xFFFFu, flags = offset_flags >> 16;
    char path[PATH_MAX];

    if ((flags & SIM_NOTIFY_CLEAR_BYTE) && offset < SIM_PAGE_SIZE &&
        grant_path(path, sizeof(path), owner, ref) == 0) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            uint8_t zero = 0;
            (void)!pwrite(fd, &zero, 1, offset);
            close(fd);
        }
    }
    if (flags & SIM_NOTIFY_SEND_EVENT)
        (void)sim_evtchn_send(notifier_dom, port);
}
