/* SPDX-License-Identifier: MIT */
/*
 * Instance bookkeeping for vrpc-sim: where an instance lives, its domain
 * table (the "domains" file, which the xc shim also reads), talking to the
 * daemon, and finding the processes that run inside an instance (by the
 * VRPCSIM_INSTANCE/VRPCSIM_DOMID variables that `vrpc-sim exec` sets).
 */
#include "sim.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef VRPC_SIM_XENSTORED
#define VRPC_SIM_XENSTORED "/usr/lib/xen-4.17/bin/xenstored"
#endif

void sim_log(const char *fmt, ...)
{
    struct timespec ts;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "%lld.%03ld vrpc-sim[%d]: ", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
            (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool sim_ns_valid(const char *ns)
{
    size_t n = strlen(ns);

    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)ns[i]) && ns[i] != '-' && ns[i] != '_')
            return false;
    return true;
}

bool sim_name_valid(const char *name)
{
    size_t n = strlen(name);
    bool digits = true;

    if (n == 0 || n > SIM_NAME_MAX || name[0] == '-' || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return false;
        digits = digits && isdigit(c);
    }
    return !digits && strcmp(name, "dom0") != 0 && strcmp(name, "Domain-0") != 0;
}

int sim_instance_for(const char *ns, char *buf, size_t len)
{
    const char *root = getenv("VRPCSIM_ROOT");
    int n;

    if (!root || !*root)
        root = "/dev/shm/vrpc-sim";
    n = snprintf(buf, len, "%s/%s", root, ns);
    if (n < 0 || (size_t)n >= len || (size_t)n > 60)
        return -ENAMETOOLONG; /* socket paths below it must fit sun_path */
    return 0;
}

int sim_table_load(SimTable *t)
{
    char path[PATH_MAX], name[SIM_NAME_MAX + 2], state[32];
    size_t nl;
    unsigned int domid;
    FILE *f;
    int r;

    memset(t, 0, sizeof(*t));
    if ((r = sim_path(path, sizeof(path), "domains")) < 0)
        return r;
    f = fopen(path, "re");
    if (!f)
        return -errno;
    while (t->n < SIM_MAX_DOMAINS && fscanf(f, "%u %65s %31s", &domid, name, state) == 3) {
        SimDomain *d = &t->dom[t->n++];
        d->domid = domid;
        nl = strnlen(name, SIM_NAME_MAX);
        memcpy(d->name, name, nl);
        d->name[nl] = '\0';
        d->state = strcmp(state, "running") == 0 ? SIM_DOM_RUNNING : SIM_DOM_DEAD;
    }
    fclose(f);
    return 0;
}

int sim_table_save(const SimTable *t)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    FILE *f;
    int r;

    if ((r = sim_path(path, sizeof(path), "domains")) < 0 ||
        (r = sim_path(tmp, sizeof(tmp), "domains.tmp")) < 0)
        return r;
    f = fopen(tmp, "we");
    if (!f)
        return -errno;
    for (unsigned int i = 0; i < t->n; i++)
        fprintf(f, "%u %s %s\n", t->dom[i].domid, t->dom[i].name,
                t->dom[i].state == SIM_DOM_RUNNING ? "running" : "dead");
    if (fclose(f) != 0)
        return -errno;
    return rename(tmp, path) < 0 ? -errno : 0;
}

SimDomain *sim_table_find(SimTable *t, const char *name)
{
    if (strcmp(name, "dom0") == 0 || strcmp(name, "Domain-0") == 0)
        name = "Domain-0";
    for (unsigned int i = 0; i < t->n; i++)
        if (strcmp(t->dom[i].name, name) == 0)
            return &t->dom[i];
    return NULL;
}

bool sim_instance_up(void)
{
    int fd = sim_hv_dial(0);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

int sim_control(uint32_t type, uint32_t a, uint32_t b, char *reply, size_t len)
{
    SimMsg m = {.type = SIM_MSG_HELLO, .a = SIM_KIND_CONTROL, .b = (uint32_t)getpid()};
    ssize_t n;
    int fd = sim_hv_dial(0);

    if (fd < 0)
        return fd;
    if (send(fd, &m, offsetof(SimMsg, text), MSG_NOSIGNAL) < 0)
        goto fail;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.a = a;
    m.b = b;
    if (send(fd, &m, offsetof(SimMsg, text), MSG_NOSIGNAL) < 0)
        goto fail;
    do
        n = recv(fd, &m, sizeof(m), 0);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < (ssize_t)offsetof(SimMsg, text) || m.type != SIM_MSG_REPLY)
        return -EPIPE;
    if (reply && len) {
        size_t tl = (size_t)n - offsetof(SimMsg, text);
        if (tl >= len)
            tl = len - 1;
        memcpy(reply, m.text, tl);
        reply[tl] = '\0';
    }
    return -(int)m.a;
fail:
    close(fd);
    return -errno;
}

/* Does /proc/@pid/environ carry NAME=value for the two instance variables? */
static bool proc_matches(pid_t pid, const char *inst, uint32_t domid, bool *is_dom)
{
    char path[64], *buf = NULL;
    size_t cap = 0, len = 0;
    bool in = false, dom = false;
    char want_dom[40];
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    for (;;) {
        ssize_t n;
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap + 65536);
            if (!nb)
                break;
            buf = nb;
            cap += 65536;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf)
        return false;
    buf[len] = '\0';
    snprintf(want_dom, sizeof(want_dom), "VRPCSIM_DOMID=%u", domid);
    for (size_t off = 0; off < len; off += strlen(buf + off) + 1) {
        const char *e = buf + off;
        if (strncmp(e, "VRPCSIM_INSTANCE=", 17) == 0 && strcmp(e + 17, inst) == 0)
            in = true;
        else if (strcmp(e, want_dom) == 0)
            dom = true;
    }
    free(buf);
    *is_dom = dom;
    return in;
}

static bool is_zombie(pid_t pid)
{
    char path[64], buf[256], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return !p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd, ppid = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
        return 0;
    return ppid;
}

static bool spared(pid_t pid, pid_t spare)
{
    for (int depth = 0; spare > 1 && depth < 64; depth++) {
        if (pid == spare)
            return true;
        spare = parent_of(spare);
    }
    return false;
}

static int scan(const char *inst, uint32_t domid, int sig, pid_t spare)
{
    struct dirent *de;
    int count = 0;
    DIR *d = opendir("/proc");

    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        bool is_dom;
        pid_t pid;

        if (*end || v <= 1)
            continue;
        pid = (pid_t)v;
        if (pid == getpid() || !proc_matches(pid, inst, domid, &is_dom))
            continue;
        if (domid != SIM_DOMID_INVALID && !is_dom)
            continue;
        if (is_zombie(pid) || (spare > 0 && spared(pid, spare)))
            continue;
        if (sig)
            kill(pid, sig);
        count++;
    }
    closedir(d);
    return count;
}

int sim_kill_instance_procs(uint32_t domid, int sig, pid_t spare)
{
    return scan(sim_instance_dir(), domid, sig, spare);
}

int sim_count_instance_procs(uint32_t domid)
{
    return scan(sim_instance_dir(), domid, 0, 0);
}

bool sim_keep_remains(void)
{
    const char *keep = getenv("VRPCSIM_KEEP");

    return keep && strcmp(keep, "1") == 0;
}

int sim_count_procs_of(const char *inst)
{
    return scan(inst, SIM_DOMID_INVALID, 0, 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

int sim_remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

const char *sim_libdir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("VRPCSIM_LIBDIR");
    ssize_t n;
    char *slash;

    if (env && *env)
        return env;
    if (dir[0])
        return dir;
    n = readlink("/proc/self/exe", dir, sizeof(dir) - 8);
    if (n <= 0)
        return "/usr/lib/vrpc-sim";
    dir[n] = '\0';
    slash = strrchr(dir, '/');
    if (slash)
        strcpy(slash, "/lib");
    return dir;
}

const char *sim_xenstored_path(void)
{
    const char *env = getenv("VRPCSIM_XENSTORED");

    if (env && *env)
        return env;
    if (access(VRPC_SIM_XENSTORED, X_OK) == 0)
        return VRPC_SIM_XENSTORED;
    return "/usr/lib/xen-4.17/bin/xenstored";
}
