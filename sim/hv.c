/* SPDX-License-Identifier: MIT */
/*
 * The instance daemon: what the hypervisor and the toolstack do on a real
 * Xen host. It starts the real C xenstored (with the xsd preload), writes
 * the toolstack's xenstore nodes for every domain, starts one xenbus
 * process per guest, and holds a connection from every gnttab/gntshr/evtchn
 * handle so that when a process closes a handle or dies it can run that
 * handle's unmap-notify registrations, remove its grants and close its
 * event channels, as the kernel would. It also serves `vrpc-sim` control
 * commands: status, destroy (kill a guest, raise VIRQ_DOM_EXC so xenstored
 * fires @releaseDomain), down.
 */
#include "sim.h"
#include "common/array.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

typedef struct Notify {
    uint32_t owner, ref, word, port;
} Notify;

typedef struct Conn {
    int fd;
    uint32_t kind, pid, serial, dom;
    bool hello, dead;
    uint32_t *shares;
    size_t nshares, capshares;
    Notify *notifies;
    size_t nnotifies, capnotifies;
} Conn;

static struct {
    int listen_fd;
    Conn **conns;
    size_t nconns;
    SimTable table;
    pid_t xenstored;
    pid_t xenbus[SIM_MAX_DOMAINS];
    struct xs_handle *xs;
    bool dead_dom[SIM_MAX_DOMAINS];
    bool quit;
    bool downed; /* stopping for `down`, which removes every file */
    char xs_socket[PATH_MAX];
} hv;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int push_u32(uint32_t **arr, size_t *n, size_t *cap, uint32_t v)
{
    if (vrpc_array_reserve(arr, *n, cap, sizeof(**arr), 8) < 0)
        return -ENOMEM;
    (*arr)[(*n)++] = v;
    return 0;
}

static void conn_free(Conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->shares);
    free(c->notifies);
    free(c);
}

/* What the kernel does when a gnttab/gntshr/evtchn handle goes away. */
static void conn_cleanup(Conn *c)
{
    bool domain_gone = c->dom < SIM_MAX_DOMAINS && hv.dead_dom[c->dom];

    /* a destroyed domain never runs its unmap-notify */
    for (size_t i = 0; i < c->nnotifies && !domain_gone; i++) {
        Notify *n = &c->notifies[i];
        sim_notify_execute(n->owner, n->ref, n->word, c->dom, n->port);
    }
    c->nnotifies = 0;
    for (size_t i = 0; i < c->nshares; i++)
        sim_grant_remove(c->dom, c->shares[i]);
    c->nshares = 0;
    if (c->kind == SIM_KIND_EVTCHN) {
        SimDomFile *df = sim_domfile(c->dom);
        for (uint32_t p = 1; df && p < SIM_MAX_PORTS; p++) {
            if (atomic_load(&df->ports[p].state) != SIM_PORT_FREE &&
                atomic_load(&df->ports[p].owner_pid) == c->pid &&
                atomic_load(&df->ports[p].owner_serial) == c->serial)
                sim_evtchn_close_port(c->dom, p);
        }
    }
}

static bool accept_conn(void);
static void drain_conn(Conn *c);

/*
 * A dying process closes its handles one by one. Its event channels must
 * outlive its grant handles so that unmap-notify events still go out:
 * evtchn handles of a pid are cleaned only once no live handle of that pid
 * has a notify registration left.
 */
static void reap(uint32_t pid)
{
    bool notifies_live = false;

    /* The dying process's other handles may not have been read yet, or not even accepted
     * (a loaded host): take in everything pending first, so that every notify
     * registration it made is known before its event channels go. */
    while (accept_conn())
        ;
    for (size_t i = 0; i < hv.nconns; i++)
        if (!hv.conns[i]->dead)
            drain_conn(hv.conns[i]);

    for (size_t i = 0; i < hv.nconns; i++) {
        Conn *c = hv.conns[i];
        if (c->pid == pid && !c->dead && c->nnotifies)
            notifies_live = true;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < hv.nconns;) {
            Conn *c = hv.conns[i];
            bool evt = c->kind == SIM_KIND_EVTCHN;
            if (c->pid != pid || !c->dead || evt != (pass == 1) || (evt && notifies_live)) {
                i++;
                continue;
            }
            conn_cleanup(c);
            conn_free(c);
            hv.conns[i] = hv.conns[--hv.nconns];
        }
    }
}

static void reply(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply(int fd, int err, const char *fmt, ...)
{
    SimMsg m = {.type = SIM_MSG_REPLY, .a = (uint32_t)err};
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(m.text, sizeof(m.text), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(m.text))
        n = sizeof(m.text) - 1;
    (void)send(fd, &m, offsetof(SimMsg, text) + (size_t)n, MSG_NOSIGNAL);
}

static void raise_dom_exc(void)
{
    SimDomFile *df = sim_domfile(0);

    for (uint32_t p = 1; df && p < SIM_MAX_PORTS; p++)
        if (atomic_load(&df->ports[p].state) == SIM_PORT_VIRQ &&
            atomic_load(&df->ports[p].virq) == SIM_VIRQ_DOM_EXC)
            sim_evtchn_deliver(0, p);
}

static void pump(int timeout_ms);

static void wait_pids_gone(uint32_t domid, uint64_t deadline)
{
    while (now_ms() < deadline && sim_count_instance_procs(domid) > 0)
        pump(10);
}

static int destroy_domain(uint32_t domid, pid_t requester, char *msg, size_t len)
{
    SimDomain *d = NULL;
    char path[64];
    uint64_t deadline;

    for (unsigned int i = 0; i < hv.table.n; i++)
        if (hv.table.dom[i].domid == domid)
            d = &hv.table.dom[i];
    if (!d || domid == 0) {
        snprintf(msg, len, "no such guest domain %u", domid);
        return ESRCH;
    }
    if (d->state == SIM_DOM_DEAD) {
        snprintf(msg, len, "domain '%s' is already destroyed", d->name);
        return EALREADY;
    }
    sim_log("destroying domain %u (%s)", domid, d->name);
    /* From now on the domain's handles die without running notifies. */
    hv.dead_dom[domid] = true;
    d->state = SIM_DOM_DEAD;
    sim_table_save(&hv.table);
    sim_kill_instance_procs(domid, SIGKILL, requester);
    if (hv.xenbus[domid] > 0)
        kill(hv.xenbus[domid], SIGKILL);
    wait_pids_gone(domid, now_ms() + 3000);

    /* Xen closes the domain's event channels and revokes its grants. */
    {
        SimDomFile *df = sim_domfile(domid);
        for (uint32_t p = 1; df && p < SIM_MAX_PORTS; p++)
            if (atomic_load(&df->ports[p].state) != SIM_PORT_FREE)
                sim_evtchn_close_port(domid, p);
        char gdir[PATH_MAX];
        if (sim_path(gdir, sizeof(gdir), "gnt/%u", domid) == 0)
            sim_remove_tree(gdir);
    }
    raise_dom_exc();
    /* xenstored releases the domain (and fires @releaseDomain) */
    deadline = now_ms() + 5000;
    while (now_ms() < deadline && xs_is_domain_introduced(hv.xs, domid))
        pump(5);
    if (xs_is_domain_introduced(hv.xs, domid)) {
        snprintf(msg, len, "xenstored did not release domain %u", domid);
        return ETIMEDOUT;
    }
    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    xs_rm(hv.xs, XBT_NULL, path);
    snprintf(msg, len, "domain '%s' (%u) destroyed", d->name, domid);
    return 0;
}

static void do_status(char *msg, size_t len)
{
    size_t off = 0;
    int n;

    n = snprintf(msg, len, "daemon %d xenstored %d handles %zu\n", (int)getpid(), (int)hv.xenstored,
                 hv.nconns);
    off = n > 0 ? (size_t)n : 0;
    for (unsigned int i = 0; i < hv.table.n && off < len; i++) {
        SimDomain *d = &hv.table.dom[i];
        n = snprintf(msg + off, len - off, "%u %s %s\n", d->domid, d->name,
                     d->state == SIM_DOM_RUNNING ? "running" : "destroyed");
        if (n > 0)
            off += (size_t)n;
    }
}

static void handle_msg(Conn *c, const SimMsg *m, size_t n)
{
    char text[1024];
    int err;

    if (n < offsetof(SimMsg, text))
        return;
    if (!c->hello) {
        if (m->type != SIM_MSG_HELLO)
            return;
        c->hello = true;
        c->kind = m->a;
        c->pid = m->b;
        c->serial = m->c;
        c->dom = m->dom;
        return;
    }
    switch (m->type) {
    case SIM_MSG_SHARE:
        push_u32(&c->shares, &c->nshares, &c->capshares, m->a);
        break;
    case SIM_MSG_UNSHARE:
        for (size_t i = 0; i < c->nshares; i++)
            if (c->shares[i] == m->a) {
                c->shares[i] = c->shares[--c->nshares];
                break;
            }
        break;
    case SIM_MSG_NOTIFY_SET:
        if (vrpc_array_reserve(&c->notifies, c->nnotifies, &c->capnotifies, sizeof(*c->notifies),
                               4) < 0)
            break;
        c->notifies[c->nnotifies++] = (Notify){m->a, m->b, m->c, m->d};
        break;
    case SIM_MSG_NOTIFY_CLEAR:
        for (size_t i = 0; i < c->nnotifies; i++)
            if (c->notifies[i].owner == m->a && c->notifies[i].ref == m->b) {
                c->notifies[i] = c->notifies[--c->nnotifies];
                break;
            }
        break;
    case SIM_MSG_CMD_STATUS:
        do_status(text, sizeof(text));
        reply(c->fd, 0, "%s", text);
        break;
    case SIM_MSG_CMD_DESTROY:
        err = destroy_domain(m->a, (pid_t)c->pid, text, sizeof(text));
        reply(c->fd, err, "%s", text);
        break;
    case SIM_MSG_CMD_DOWN:
        sim_log("down requested by pid %u", c->pid);
        hv.quit = true; /* from now on a dying xenbus is no domain death */
        hv.downed = true;
        sim_kill_instance_procs(SIM_DOMID_INVALID, SIGTERM, (pid_t)c->pid);
        {
            uint64_t deadline = now_ms() + 1000;
            while (now_ms() < deadline && sim_count_instance_procs(SIM_DOMID_INVALID) > 0)
                pump(10);
        }
        sim_kill_instance_procs(SIM_DOMID_INVALID, SIGKILL, (pid_t)c->pid);
        reply(c->fd, 0, "down");
        break;
    default:
        break;
    }
}

/* Accept one pending handle connection; false when none is pending. */
static bool accept_conn(void)
{
    Conn *c, **arr;
    int fd = accept4(hv.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return false;
    c = calloc(1, sizeof(*c));
    arr = realloc(hv.conns, (hv.nconns + 1) * sizeof(*arr));
    if (!c || !arr) {
        free(c);
        if (arr)
            hv.conns = arr;
        close(fd);
        return true;
    }
    hv.conns = arr;
    c->fd = fd;
    hv.conns[hv.nconns++] = c;
    return true;
}

/* Handle every message waiting on @c; mark it dead at EOF. */
static void drain_conn(Conn *c)
{
    for (;;) {
        SimMsg m;
        ssize_t got = recv(c->fd, &m, sizeof(m), MSG_DONTWAIT);
        if (got > 0) {
            handle_msg(c, &m, (size_t)got);
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        c->dead = true;
        break;
    }
}

static void reap_children(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == hv.xenstored) {
            sim_log("xenstored exited (status %d)", status);
            hv.xenstored = 0;
        }
        for (unsigned int d = 0; d < SIM_MAX_DOMAINS; d++) {
            if (hv.xenbus[d] == pid) {
                hv.xenbus[d] = 0;
                if (!hv.dead_dom[d] && !hv.quit) {
                    char msg[256];
                    sim_log("xenbus of domain %u died: destroying it", d);
                    destroy_domain(d, 0, msg, sizeof(msg));
                }
            }
        }
    }
}

/* One round of the event loop: accept, read messages, reap closed handles. */
static void pump(int timeout_ms)
{
    static int depth;
    size_t n = hv.nconns + 1;
    struct pollfd *pfd = calloc(n, sizeof(*pfd));
    Conn **snap = calloc(n, sizeof(*snap));
    int r;

    if (!pfd || !snap) {
        free(pfd);
        free(snap);
        return;
    }
    pfd[0] = (struct pollfd){.fd = hv.listen_fd, .events = POLLIN};
    for (size_t i = 0; i < hv.nconns; i++) {
        snap[i + 1] = hv.conns[i];
        pfd[i + 1] = (struct pollfd){.fd = hv.conns[i]->fd, .events = POLLIN};
    }
    depth++;
    r = poll(pfd, n, timeout_ms);
    reap_children();
    if (r <= 0)
        goto out;
    for (size_t i = 1; i < n; i++) {
        Conn *c = snap[i];
        if (!pfd[i].revents)
            continue;
        drain_conn(c);
    }
    if (pfd[0].revents & POLLIN)
        while (accept_conn())
            ;
out:
    /* nested rounds (inside a command) only mark: the outer round owns snap */
    if (--depth == 0)
        for (size_t i = 0; i < hv.nconns;) {
            Conn *c = hv.conns[i];
            size_t before = hv.nconns;
            if (c->dead)
                reap(c->pid);
            i = hv.nconns < before ? 0 : i + 1;
        }
    free(pfd);
    free(snap);
}

static void child_env(uint32_t domid)
{
    char buf[PATH_MAX + 64];
    const char *old;

    snprintf(buf, sizeof(buf), "%u", domid);
    setenv("VRPCSIM_DOMID", buf, 1);
    old = getenv("LD_LIBRARY_PATH");
    snprintf(buf, sizeof(buf), "%s%s%s", sim_libdir(), old && *old ? ":" : "", old ? old : "");
    setenv("LD_LIBRARY_PATH", buf, 1);
}

static pid_t spawn_xenstored(void)
{
    char rundir[PATH_MAX], logf[PATH_MAX], preload[PATH_MAX + 32];
    pid_t pid;

    if (sim_path(rundir, sizeof(rundir), "xenstored") < 0 ||
        sim_path(logf, sizeof(logf), "xenstored.log") < 0)
        return -1;
    mkdir(rundir, 0700);
    pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    child_env(0);
    snprintf(preload, sizeof(preload), "%s/libvrpcsim-xsd.so", sim_libdir());
    setenv("LD_PRELOAD", preload, 1);
    setenv("XENSTORED_RUNDIR", rundir, 1);
    unsetenv("XENSTORED_PATH");
    int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execl(sim_xenstored_path(), "xenstored", "--no-fork", (char *)NULL);
    fprintf(stderr, "cannot run %s: %s\n", sim_xenstored_path(), strerror(errno));
    _exit(127);
}

static bool xs_socket_ready(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;
    bool ok;

    if (strlen(hv.xs_socket) >= sizeof(sun.sun_path))
        return false;
    memcpy(sun.sun_path, hv.xs_socket, strlen(hv.xs_socket) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
    close(fd);
    return ok;
}

static bool xs_put(const char *path, const char *val, const struct xs_permissions *perms,
                   unsigned int nperms)
{
    if (!xs_write(hv.xs, XBT_NULL, path, val, (unsigned int)strlen(val)))
        return false;
    return !perms ||
           xs_set_permissions(hv.xs, XBT_NULL, path, (struct xs_permissions *)perms, nperms);
}

static int write_domain_nodes(uint32_t domid, const char *name)
{
    char path[128], val[32];
    struct xs_permissions ro[2] = {{.id = 0, .perms = XS_PERM_NONE},
                                   {.id = domid, .perms = XS_PERM_READ}};
    struct xs_permissions rw[1] = {{.id = domid, .perms = XS_PERM_NONE}};
    unsigned int nro = domid ? 2 : 1;

    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    if (!xs_put(path, "", ro, nro))
        return -errno;
    snprintf(path, sizeof(path), "/local/domain/%u/name", domid);
    if (!xs_put(path, name, ro, nro))
        return -errno;
    snprintf(path, sizeof(path), "/local/domain/%u/domid", domid);
    snprintf(val, sizeof(val), "%u", domid);
    if (!xs_put(path, val, ro, nro))
        return -errno;
    /* the guest's own writable areas, as libxl creates them */
    static const char *const own[] = {"data", "attr", "feature", "control"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, own[i]);
        if (!xs_put(path, "", domid ? rw : NULL, 1))
            return -errno;
    }
    return 0;
}

static pid_t spawn_xenbus(uint32_t domid, int *ready_rd)
{
    char self[PATH_MAX];
    int p[2];
    ssize_t n;
    pid_t pid;

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0 || pipe2(p, O_CLOEXEC) < 0)
        return -1;
    self[n] = '\0';
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        char fdarg[16], domarg[16];
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        child_env(domid);
        setenv("XENSTORED_PATH", hv.xs_socket, 1);
        dup2(p[1], 3);
        snprintf(fdarg, sizeof(fdarg), "3");
        snprintf(domarg, sizeof(domarg), "%u", domid);
        execl(self, "vrpc-sim", "__xenbus", domarg, fdarg, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *ready_rd = p[0];
    return pid;
}

static int wait_ready(int fd, uint64_t deadline, char *msg, size_t len)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t n;

    while (now_ms() < deadline) {
        pump(5);
        if (poll(&pfd, 1, 0) > 0) {
            n = read(fd, msg, len - 1);
            msg[n > 0 ? n : 0] = '\0';
            if (n > 0 && strncmp(msg, "ok", 2) == 0)
                return 0;
            if (n <= 0)
                snprintf(msg, len, "exited before it was ready");
            return -EIO;
        }
    }
    snprintf(msg, len, "timed out");
    return -ETIMEDOUT;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (fd >= 0 && n > 0)
        (void)!write(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static int start(char **guests, unsigned int nguests, int ready_fd)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char msg[256], gdir[PATH_MAX];
    uint64_t deadline;
    int r;

    /* the domain table: dom0 plus the guests, domids 1, 2, ... in order */
    hv.table.n = 0;
    hv.table.dom[hv.table.n++] = (SimDomain){.domid = 0, .name = "Domain-0"};
    for (unsigned int i = 0; i < nguests; i++) {
        SimDomain *d = &hv.table.dom[hv.table.n++];
        d->domid = i + 1;
        snprintf(d->name, sizeof(d->name), "%s", guests[i]);
        d->state = SIM_DOM_RUNNING;
    }
    if ((r = sim_path(gdir, sizeof(gdir), "gnt")) < 0 || (mkdir(gdir, 0700) < 0 && errno != EEXIST))
        return say(ready_fd, "cannot create %s: %s\n", gdir, strerror(errno)), -1;
    for (unsigned int i = 0; i < hv.table.n; i++)
        if ((r = sim_domfile_create(hv.table.dom[i].domid)) < 0)
            return say(ready_fd, "cannot create domain table: %s\n", strerror(-r)), -1;
    if ((r = sim_table_save(&hv.table)) < 0)
        return say(ready_fd, "cannot write domain table: %s\n", strerror(-r)), -1;

    if (sim_path(sun.sun_path, sizeof(sun.sun_path), "hv.sock") < 0)
        return say(ready_fd, "instance path too long\n"), -1;
    hv.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    unlink(sun.sun_path);
    if (hv.listen_fd < 0 || bind(hv.listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(hv.listen_fd, 256) < 0)
        return say(ready_fd, "cannot listen on %s: %s\n", sun.sun_path, strerror(errno)), -1;

    if (sim_path(hv.xs_socket, sizeof(hv.xs_socket), "xenstored/socket") < 0)
        return say(ready_fd, "instance path too long\n"), -1;
    if (access(sim_xenstored_path(), X_OK) < 0)
        return say(ready_fd, "xenstored not found at %s (run scripts/setup)\n",
                   sim_xenstored_path()),
               -1;
    hv.xenstored = spawn_xenstored();
    if (hv.xenstored < 0)
        return say(ready_fd, "cannot start xenstored: %s\n", strerror(errno)), -1;
    deadline = now_ms() + 10000;
    while (now_ms() < deadline && hv.xenstored > 0 && !xs_socket_ready())
        pump(5);
    if (hv.xenstored <= 0 || !xs_socket_ready())
        return say(ready_fd, "xenstored did not start (see %s/xenstored.log)\n",
                   sim_instance_dir()),
               -1;
    setenv("XENSTORED_PATH", hv.xs_socket, 1);
    hv.xs = xs_open(XS_OPEN_SOCKETONLY);
    if (!hv.xs)
        return say(ready_fd, "cannot connect to xenstored: %s\n", strerror(errno)), -1;
    if ((r = write_domain_nodes(0, "Domain-0")) < 0)
        return say(ready_fd, "cannot write dom0 nodes: %s\n", strerror(-r)), -1;

    for (unsigned int i = 1; i < hv.table.n; i++) {
        SimDomain *d = &hv.table.dom[i];
        char dir[PATH_MAX];
        int rd = -1;

        if ((r = write_domain_nodes(d->domid, d->name)) < 0)
            return say(ready_fd, "cannot write nodes of %s: %s\n", d->name, strerror(-r)), -1;
        if (sim_path(dir, sizeof(dir), "dom%u", d->domid) < 0 || mkdir(dir, 0700) < 0)
            return say(ready_fd, "cannot create %s: %s\n", dir, strerror(errno)), -1;
        hv.xenbus[d->domid] = spawn_xenbus(d->domid, &rd);
        if (hv.xenbus[d->domid] < 0)
            return say(ready_fd, "cannot start xenbus for %s\n", d->name), -1;
        r = wait_ready(rd, now_ms() + 10000, msg, sizeof(msg));
        close(rd);
        if (r < 0)
            return say(ready_fd, "xenbus for %s: %s\n", d->name, msg), -1;
    }
    say(ready_fd, "ok\n");
    return 0;
}

static void shutdown_all(void)
{
    uint64_t deadline;

    for (unsigned int d = 0; d < SIM_MAX_DOMAINS; d++)
        if (hv.xenbus[d] > 0)
            kill(hv.xenbus[d], SIGKILL);
    if (hv.xs)
        xs_close(hv.xs);
    hv.xs = NULL;
    if (hv.xenstored > 0)
        kill(hv.xenstored, SIGTERM);
    deadline = now_ms() + 2000;
    while (now_ms() < deadline) {
        bool any = hv.xenstored > 0;
        for (unsigned int d = 0; d < SIM_MAX_DOMAINS; d++)
            any = any || hv.xenbus[d] > 0;
        if (!any)
            break;
        pump(10);
    }
    if (hv.xenstored > 0)
        kill(hv.xenstored, SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    for (size_t i = 0; i < hv.nconns; i++)
        conn_free(hv.conns[i]);
    free(hv.conns);
    hv.conns = NULL;
    hv.nconns = 0;
    if (hv.listen_fd >= 0)
        close(hv.listen_fd);
    /* VRPCSIM_KEEP=1 keeps a failed instance's logs; `down` removes every file */
    if (hv.downed || !sim_keep_remains())
        sim_remove_tree(sim_instance_dir());
}

static void write_pidfile(void)
{
    char path[PATH_MAX];
    FILE *f;

    if (sim_path(path, sizeof(path), "daemon.pid") == 0 && (f = fopen(path, "we"))) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
}

/* Someone removed the instance under us: nothing left to serve. */
static bool instance_gone(void)
{
    char path[PATH_MAX];

    return sim_path(path, sizeof(path), "hv.sock") < 0 || access(path, F_OK) != 0;
}

int sim_daemon_main(char **guests, unsigned int nguests, int ready_fd)
{
    hv.listen_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    write_pidfile();
    if (start(guests, nguests, ready_fd) < 0) {
        close(ready_fd);
        shutdown_all();
        return 1;
    }
    close(ready_fd);
    while (!hv.quit) {
        pump(1000);
        if (instance_gone()) {
            sim_log("instance folder removed: shutting down");
            hv.quit = true;
        }
    }
    shutdown_all();
    sim_log("instance down");
    return 0;
}
