/* SPDX-License-Identifier: MIT */
/*
 * leak: snapshots of what a test must give back (fds of a process, child processes, a sim
 * instance's processes, grant files and xenstore nodes) and the check that waits for the
 * state to return to them, then asserts it with a diff. See leak.h for what is compared.
 */
#include "leak.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtest.h"

/* What a failure message holds at most; the whole diff goes to stderr as well. */
#define MSG_MAX 3500

typedef enum ItemKind {
    ITEM_FDS,
    ITEM_CHILDREN,
    ITEM_INSTANCE_PROCS,
    ITEM_INSTANCE_GRANTS,
    ITEM_XS_NODES,
} ItemKind;

/* A sorted list of "KEY\tDETAIL" lines: KEY is compared, DETAIL only shown. */
typedef struct Lines {
    char **v;
    size_t n, cap;
} Lines;

typedef struct Item {
    ItemKind kind;
    char label[64];
    pid_t pid;
    unsigned flags;
    char ns[64];
    char root[256];
    Lines base;
} Item;

struct VtLeak {
    Item *items;
    size_t n;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lines_add(Lines *l, const char *key, const char *detail)
{
    char *s;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **v = realloc(l->v, cap * sizeof(*v));
        ck_assert_ptr_nonnull(v);
        l->v = v;
        l->cap = cap;
    }
    ck_assert_int_ge(asprintf(&s, "%s\t%s", key, detail ? detail : ""), 0);
    l->v[l->n++] = s;
}

static void lines_free(Lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (Lines){0};
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compare the KEY parts of two lines. */
static int cmp_key(const char *a, const char *b)
{
    size_t la = strcspn(a, "\t"), lb = strcspn(b, "\t");
    int c = strncmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static bool lines_same_keys(const Lines *a, const Lines *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (cmp_key(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

/* ---- readers --------------------------------------------------------------------------- */

/* Inodes of unbound, unnamed AF_UNIX datagram sockets (the sim's event senders). */
static void read_sender_inodes(Lines *out)
{
    char line[512];
    FILE *f = fopen("/proc/net/unix", "re");

    while (f && fgets(line, sizeof(line), f)) {
        unsigned long refs, proto, flags, type, st, inode;
        int used = 0;
        if (sscanf(line, "%*s %lx %lx %lx %lx %lx %lu%n", &refs, &proto, &flags, &type, &st, &inode,
                   &used) != 6)
            continue;
        const char *rest = line + used;
        while (*rest == ' ')
            rest++;
        if (type == 2 && (*rest == '\n' || *rest == '\0')) {
            char ino[32];
            snprintf(ino, sizeof(ino), "%lu", inode);
            lines_add(out, ino, NULL);
        }
    }
    if (f)
        fclose(f);
}

static bool has_key(const Lines *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (cmp_key(l->v[i], key) == 0)
            return true;
    return false;
}

static void read_fds(Lines *out, pid_t pid, unsigned flags)
{
    char path[64];
    Lines senders = {0};
    struct dirent *de;
    DIR *d;
    int own = -1;

    if (flags & VT_LEAK_SIM_SENDERS)
        read_sender_inodes(&senders);
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/fd");
    d = opendir(path);
    if (!d) {
        lines_add(out, "(no such process)", path);
        lines_free(&senders);
        return;
    }
    if (pid <= 0)
        own = dirfd(d); /* the listing's own fd */
    while ((de = readdir(d))) {
        char link[384], target[512], key[512], detail[800];
        unsigned long ino;
        ssize_t n;

        if (de->d_name[0] == '.' || atoi(de->d_name) == own)
            continue;
        snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            continue; /* closed meanwhile */
        target[n] = '\0';
        snprintf(key, sizeof(key), "%s", target);
        if (sscanf(target, "socket:[%lu]", &ino) == 1) {
            char s[32];
            snprintf(s, sizeof(s), "%lu", ino);
            if (has_key(&senders, s))
                continue;
            snprintf(key, sizeof(key), "socket");
        } else if (sscanf(target, "pipe:[%lu]", &ino) == 1) {
            snprintf(key, sizeof(key), "pipe");
        }
        snprintf(detail, sizeof(detail), "fd %s -> %s", de->d_name, target);
        lines_add(out, key, detail);
    }
    closedir(d);
    lines_free(&senders);
}

/* comm, state and ppid of @pid from /proc/PID/stat; false if it is gone. */
static bool proc_stat(long pid, char *comm, size_t comm_size, char *state, long *ppid)
{
    char path[64], buf[1024], *open_paren, *close_paren;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    open_paren = strchr(buf, '(');
    close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren)
        return false;
    snprintf(comm, comm_size, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
    return sscanf(close_paren + 1, " %c %ld", state, ppid) == 2;
}

/* Children of this process; *@livep: how many are still running (not zombies). */
static void read_children(Lines *out, int *livep)
{
    struct dirent *de;
    DIR *d = opendir("/proc");
    long self = (long)getpid();
    int live = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d))) {
        char comm[64], state, detail[64], *end;
        long pid = strtol(de->d_name, &end, 10), ppid;

        if (*end || pid <= 1 || !proc_stat(pid, comm, sizeof(comm), &state, &ppid) || ppid != self)
            continue;
        snprintf(detail, sizeof(detail), "pid %ld, state %c", pid, state);
        lines_add(out, comm, detail);
        live += state != 'Z';
    }
    closedir(d);
    if (livep)
        *livep = live;
}

/* Keys name the domain, so that vt_leak_forget_domain() can find them. */
static void add_instance_proc(pid_t pid, const char *comm, int domid, void *arg)
{
    char key[96], detail[32];

    if (domid >= 0)
        snprintf(key, sizeof(key), "%s in domain %d", comm, domid);
    else
        snprintf(key, sizeof(key), "%s", comm);
    snprintf(detail, sizeof(detail), "pid %d", (int)pid);
    lines_add(arg, key, detail);
}

static void read_grants(Lines *out, const char *ns)
{
    char path[700];
    struct dirent **doms = NULL;
    int nd;

    snprintf(path, sizeof(path), "%s/gnt", vt_instance_dir(ns));
    nd = scandir(path, &doms, NULL, alphasort);
    for (int i = 0; i < nd; i++) {
        if (doms[i]->d_name[0] != '.') {
            char sub[1000], key[300], detail[600];
            struct dirent *de;
            DIR *d;

            snprintf(sub, sizeof(sub), "%s/%s", path, doms[i]->d_name);
            snprintf(key, sizeof(key), "grant of domain %s", doms[i]->d_name);
            d = opendir(sub);
            while (d && (de = readdir(d)))
                if (de->d_name[0] != '.') {
                    snprintf(detail, sizeof(detail), "gnt/%s/%s", doms[i]->d_name, de->d_name);
                    lines_add(out, key, detail);
                }
            if (d)
                closedir(d);
        }
        free(doms[i]);
    }
    free(doms);
}

static void read_xs_nodes(Lines *out, const char *ns, const char *root)
{
    const char *argv[] = {VRPC_SIM_BIN, "exec",        "--ns", ns,   "dom0",
                          "--",         "xenstore-ls", "-f",   root, NULL};
    VtResult r = vt_run(argv, VT_HANG_S);

    ck_assert_msg(r.status == 0, "xenstore-ls %s in %s: %d %s", root, ns, r.status, r.err);
    for (char *line = r.out; line && *line;) {
        char *nl = strchr(line, '\n'), *eq;
        if (nl)
            *nl = '\0';
        eq = strstr(line, " = ");
        if (eq)
            *eq = '\0';
        if (*line)
            lines_add(out, line, NULL);
        line = nl ? nl + 1 : NULL;
    }
    vt_result_free(&r);
}

/* The current state of @it, sorted. *@livep += running children (ITEM_CHILDREN). */
static Lines item_read(const Item *it, int *livep)
{
    Lines l = {0};
    int live = 0;

    switch (it->kind) {
    case ITEM_FDS:
        read_fds(&l, it->pid, it->flags);
        break;
    case ITEM_CHILDREN:
        read_children(&l, &live);
        break;
    case ITEM_INSTANCE_PROCS:
        vt_instance_each(it->ns, add_instance_proc, &l);
        break;
    case ITEM_INSTANCE_GRANTS:
        read_grants(&l, it->ns);
        break;
    case ITEM_XS_NODES:
        read_xs_nodes(&l, it->ns, it->root);
        break;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(l.v[0]), cmp_line);
    if (livep)
        *livep += live;
    return l;
}

/* ---- snapshots --------------------------------------------------------------------------- */

VtLeak *vt_leak_new(void)
{
    VtLeak *l = calloc(1, sizeof(*l));
    ck_assert_ptr_nonnull(l);
    return l;
}

void vt_leak_free(VtLeak *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        lines_free(&l->items[i].base);
    free(l->items);
    free(l);
}

static Item *find(VtLeak *l, const char *label)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].label, label) == 0)
            return &l->items[i];
    return NULL;
}

/* Add (or replace) item @label of @kind and take its snapshot. */
static Item *add(VtLeak *l, ItemKind kind, const char *label)
{
    Item *it = find(l, label);

    if (it) {
        lines_free(&it->base);
    } else {
        Item *v = realloc(l->items, (l->n + 1) * sizeof(*v));
        ck_assert_ptr_nonnull(v);
        l->items = v;
        it = &l->items[l->n++];
    }
    *it = (Item){.kind = kind};
    snprintf(it->label, sizeof(it->label), "%s", label);
    return it;
}

void vt_leak_fds(VtLeak *l, const char *label, pid_t pid, unsigned flags)
{
    char path[64];
    Item *it = add(l, ITEM_FDS, label);

    snprintf(path, sizeof(path), "/proc/%d/fd", pid > 0 ? (int)pid : (int)getpid());
    ck_assert_msg(access(path, R_OK) == 0, "%s: cannot list %s: %s", label, path, strerror(errno));
    it->pid = pid;
    it->flags = flags;
    it->base = item_read(it, NULL);
}

void vt_leak_children(VtLeak *l, const char *label)
{
    Item *it = add(l, ITEM_CHILDREN, label);
    it->base = item_read(it, NULL);
}

void vt_leak_instance_procs(VtLeak *l, const char *label, const char *ns)
{
    Item *it = add(l, ITEM_INSTANCE_PROCS, label);
    snprintf(it->ns, sizeof(it->ns), "%s", ns);
    it->base = item_read(it, NULL);
}

void vt_leak_instance_grants(VtLeak *l, const char *label, const char *ns)
{
    Item *it = add(l, ITEM_INSTANCE_GRANTS, label);
    snprintf(it->ns, sizeof(it->ns), "%s", ns);
    it->base = item_read(it, NULL);
}

void vt_leak_xs_nodes(VtLeak *l, const char *label, const char *ns, const char *root)
{
    Item *it = add(l, ITEM_XS_NODES, label);
    snprintf(it->ns, sizeof(it->ns), "%s", ns);
    snprintf(it->root, sizeof(it->root), "%s", root ? root : "/local/domain");
    it->base = item_read(it, NULL);
}

void vt_leak_instance(VtLeak *l, const char *ns, pid_t disp)
{
    if (disp > 0)
        vt_leak_fds(l, "dispatcher fds", disp, VT_LEAK_SIM_SENDERS);
    vt_leak_instance_procs(l, "instance processes", ns);
    vt_leak_instance_grants(l, "grants", ns);
    vt_leak_xs_nodes(l, "xenstore nodes", ns, NULL);
}

void vt_leak_follow(VtLeak *l, const char *label, pid_t pid)
{
    Item *it = find(l, label);

    ck_assert_msg(it && it->kind == ITEM_FDS, "no fd item %s", label);
    it->pid = pid;
}

void vt_leak_drop(VtLeak *l, const char *label)
{
    Item *it = find(l, label);

    if (!it)
        return;
    lines_free(&it->base);
    memmove(it, it + 1, (size_t)(l->items + l->n - (it + 1)) * sizeof(*it));
    l->n--;
}

/* True if @line belongs to domain @domid in an item of @kind. */
static bool of_domain(ItemKind kind, const char *line, int domid)
{
    char want[64];
    size_t klen = strcspn(line, "\t"), wl;

    switch (kind) {
    case ITEM_INSTANCE_PROCS:
    case ITEM_INSTANCE_GRANTS:
        wl = (size_t)snprintf(want, sizeof(want), " domain %d", domid);
        return klen >= wl && strncmp(line + klen - wl, want, wl) == 0;
    case ITEM_XS_NODES:
        wl = (size_t)snprintf(want, sizeof(want), "/local/domain/%d", domid);
        return klen >= wl && strncmp(line, want, wl) == 0 && (klen == wl || line[wl] == '/');
    default:
        return false;
    }
}

void vt_leak_forget_domain(VtLeak *l, int domid)
{
    for (size_t i = 0; i < l->n; i++) {
        Lines *b = &l->items[i].base;
        size_t kept = 0;
        for (size_t j = 0; j < b->n; j++) {
            if (of_domain(l->items[i].kind, b->v[j], domid))
                free(b->v[j]);
            else
                b->v[kept++] = b->v[j];
        }
        b->n = kept;
    }
}

static bool cheap(const Item *it)
{
    return it->kind == ITEM_FDS || it->kind == ITEM_CHILDREN || it->kind == ITEM_INSTANCE_PROCS;
}

void vt_leak_settle(VtLeak *l)
{
    int stable = 0;

    /* Not steady within VT_HANG_MS: go on with the last snapshot; the check will tell. */
    for (long long end = now_ms() + VT_HANG_MS; stable < 5 && now_ms() < end;) {
        bool same = true;
        usleep(50000);
        for (size_t i = 0; i < l->n; i++) {
            Item *it = &l->items[i];
            Lines now;
            if (!cheap(it))
                continue;
            now = item_read(it, NULL);
            same = same && lines_same_keys(&now, &it->base);
            lines_free(&it->base);
            it->base = now;
        }
        stable = same ? stable + 1 : 0;
    }
    for (size_t i = 0; i < l->n; i++)
        if (!cheap(&l->items[i])) {
            lines_free(&l->items[i].base);
            l->items[i].base = item_read(&l->items[i], NULL);
        }
}

const char *vt_leak_text(VtLeak *l, const char *label)
{
    static char buf[16384];
    size_t len = 0;
    Item *it = find(l, label);

    buf[0] = '\0';
    for (size_t i = 0; it && i < it->base.n && len < sizeof(buf) - 1; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%.*s\n",
                                (int)strcspn(it->base.v[i], "\t"), it->base.v[i]);
    return buf;
}

/* ---- the check --------------------------------------------------------------------------- */

static void append(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char **buf, size_t *len, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *p = realloc(*buf, *len + (size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p + *len, s, (size_t)n + 1);
    *len += (size_t)n;
    *buf = p;
    free(s);
}

static void append_line(char **buf, size_t *len, char sign, const char *line)
{
    int klen = (int)strcspn(line, "\t");
    const char *detail = line[klen] ? line + klen + 1 : "";

    append(buf, len, "  %c %.*s%s%s%s\n", sign, klen, line, *detail ? " (" : "", detail,
           *detail ? ")" : "");
}

/* "+" lines now and not before, "-" lines before and not now; "" when the keys agree. */
static void diff(const Item *it, const Lines *now, char **buf, size_t *len)
{
    size_t i = 0, j = 0;

    append(buf, len, "%s: %zu now, %zu before:\n", it->label, now->n, it->base.n);
    while (i < it->base.n || j < now->n) {
        int c = i == it->base.n ? 1 : j == now->n ? -1 : cmp_key(it->base.v[i], now->v[j]);
        if (c == 0) {
            i++;
            j++;
        } else if (c < 0) {
            append_line(buf, len, '-', it->base.v[i++]);
        } else {
            append_line(buf, len, '+', now->v[j++]);
        }
    }
}

/* Threads of this process. */
static int own_threads(void)
{
    struct dirent *de;
    DIR *d = opendir("/proc/self/task");
    int n = 0;

    while (d && (de = readdir(d)))
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Compare every item with its snapshot: true if all agree; else the diff in *@diffp.
 * *@othersp: whether someone else can still change what differs. */
static bool compare(VtLeak *l, char **diffp, bool *othersp)
{
    bool others = own_threads() > 1, same = true;
    char *msg = NULL;
    size_t len = 0;
    int live = 0;

    for (size_t i = 0; i < l->n; i++) {
        const Item *it = &l->items[i];
        Lines now = item_read(it, &live);
        if (!lines_same_keys(&now, &it->base)) {
            same = false;
            diff(it, &now, &msg, &len);
        }
        /* another process (or a child still running) can still change this item */
        others = others || (it->kind == ITEM_FDS && it->pid > 0) ||
                 (it->kind != ITEM_FDS && it->kind != ITEM_CHILDREN);
        lines_free(&now);
    }
    if (othersp)
        *othersp = others || live > 0;
    if (diffp)
        *diffp = msg;
    else
        free(msg);
    return same;
}

bool vt_leak_same(VtLeak *l, char **diffp)
{
    if (diffp)
        *diffp = NULL;
    return compare(l, diffp, NULL);
}

void vt_leak_check(VtLeak *l)
{
    long long start = now_ms(), end = start + VT_HANG_MS;
    char out[MSG_MAX + 8], *msg = NULL;
    bool told = false, others;

    while (!compare(l, &msg, &others)) {
        if (!others || now_ms() >= end) {
            fprintf(stderr, "leak check failed:\n%s", msg);
            snprintf(out, sizeof(out), "%.*s%s", MSG_MAX, msg,
                     strlen(msg) > MSG_MAX ? "\n..." : "");
            free(msg);
            ck_abort_msg("leaked or lost (+ now, - before):\n%s", out);
        }
        if (!told && now_ms() - start > 2000) {
            /* for a test that its own timeout kills while this waits */
            fprintf(stderr, "leak check: still waiting for:\n%s", msg);
            told = true;
        }
        free(msg);
        usleep(20000);
    }
}

/* ---- the fixture ----------------------------------------------------------------------- */

static VtLeak *fixture;
static unsigned fixture_fd_flags;

void vt_leak_setup(void)
{
    vt_leak_free(fixture);
    fixture = vt_leak_new();
    vt_leak_fds(fixture, "fds of the test process", 0, fixture_fd_flags);
    vt_leak_children(fixture, "children of the test process");
}

void vt_leak_teardown(void)
{
    VtLeak *l = fixture;

    fixture = NULL;
    ck_assert_msg(l != NULL, "vt_leak_teardown without vt_leak_setup");
    vt_leak_check(l);
    vt_leak_free(l);
}

void vt_leak_fixture_check(void)
{
    ck_assert_msg(fixture != NULL, "vt_leak_fixture_check without vt_leak_setup");
    vt_leak_check(fixture);
}

void vt_leak_fixture_flags(TCase *tc, unsigned fd_flags)
{
    fixture_fd_flags = fd_flags;
    vt_leak_fixture(tc);
}

void vt_leak_fixture(TCase *tc)
{
    tcase_add_checked_fixture(tc, vt_leak_setup, vt_leak_teardown);
}
