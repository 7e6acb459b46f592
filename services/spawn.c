/* SPDX-License-Identifier: MIT */
/*
 * Starting handlers. Executables are started with clone(CLONE_VM|CLONE_VFORK)
 * on a stack of their own, the way posix_spawn() works inside (no page-table
 * copy: on the machines measured, fork() costs a quarter more per call), but
 * not with posix_spawn() itself, because the child must ask for
 * PR_SET_PDEATHSIG = SIGKILL: a handler dies with the daemon that started it,
 * even when the daemon is SIGKILLed (docs/services.md). Switching to another
 * user goes through fork(): glibc's set*id() is not safe in a child that
 * shares our memory. A child that fails before exec says why, so exec errors
 * are clean errors of the start: the CLONE_VM child in a record it leaves in
 * our (suspended) frame, the forked one through a CLOEXEC pipe. There is no shell, the child
 * leads a new session (its own process group, no controlling terminal), runs
 * as another user when the service says so, its signal mask is empty and
 * every disposition is the default, it keeps no fd but 0, 1 and 2, and its
 * environment is built here, in the parent, from trusted values only. Socket
 * services are connected without blocking and sent their descriptor. Nothing
 * here waits for the handler.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
/* the compiler's own header: ASAN_UNPOISON_MEMORY_REGION() is a no-op without ASan */
#include <sanitizer/asan_interface.h>

#include "common/cleanup.h"
#include "common/names.h"
#include "errbuf.h"
#include "vrpc-services.h"

extern char **environ;

#define ENV_PREFIX "VRPC_"

/* Take an fd out of a _cleanup_close_ variable, leaving -1 behind. */
static inline int take_fd(int *fdp)
{
    int fd = *fdp;

    *fdp = -1;
    return fd;
}
#define TAKE_FD(fd) take_fd(&(fd))
#ifndef VRPC_SERVICES_PIPE_SIZE
#define VRPC_SERVICES_PIPE_SIZE (1 << 20)
#endif
/* At most this many live handlers get the big stdin/stdout pipes; later ones
 * keep the kernel's default (64 KiB), so that the extra kernel memory a
 * caller can pin through handlers that do not read or whose output nobody
 * reads stays bounded (here 32 * 2 MiB) whatever the number of calls. */
#define BIG_PIPE_SLOTS 32

/* ---- big-pipe budget ------------------------------------------------------ */

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t big_pids[BIG_PIPE_SLOTS]; /* 0: free; -1: reserved, spawn pending */

/* A free slot's index, or -1. Under big_lock. */
static int big_free_slot(void)
{
    for (int i = 0; i < BIG_PIPE_SLOTS; i++)
        if (big_pids[i] == 0)
            return i;
    return -1;
}

/* Reserve a slot for a handler about to start: its index, or -1 if none is
 * free. */
static int big_reserve(void)
{
    pthread_mutex_lock(&big_lock);
    int slot = big_free_slot();
    if (slot >= 0)
        big_pids[slot] = -1;
    pthread_mutex_unlock(&big_lock);
    return slot;
}

/* Give slot SLOT to PID, or free it when PID is 0 (the start failed). */
static void big_commit(int slot, pid_t pid)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&big_lock);
    big_pids[slot] = pid;
    pthread_mutex_unlock(&big_lock);
}

/* PID was reaped: its slot, if it had one, is free again. A handler reaped
 * elsewhere (waitpid at shutdown or after a failed start) keeps its slot;
 * that only makes later pipes smaller, never bigger than the bound. */
static void big_release(pid_t pid)
{
    pthread_mutex_lock(&big_lock);
    for (int i = 0; i < BIG_PIPE_SLOTS; i++)
        if (big_pids[i] == pid)
            big_pids[i] = 0;
    pthread_mutex_unlock(&big_lock);
}

/* ---- environment ------------------------------------------------------- */

/* The handler's own variables (VRPC_*, VRPC_SOCKET, HOME, USER, LOGNAME) at most. */
#define ENV_EXTRA_MAX 10

typedef struct Env {
    char **vec; /* NULL-terminated; points into the base and into extra */
    char *extra[ENV_EXTRA_MAX];
    size_t n_extra;
} Env;

static void env_deinit(Env *env)
{
    for (size_t i = 0; i < env->n_extra; i++)
        free(env->extra[i]);
    free(env->vec);
    *env = (Env){0};
}

static bool env_is_name(const char *entry, const char *name)
{
    size_t len = strlen(name);

    return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

static int env_add(Env *env, size_t *np, const char *name, const char *value)
{
    char *s;

    if (env->n_extra == ENV_EXTRA_MAX)
        return -ENOBUFS; /* a bug: more variables than planned for */
    if (asprintf(&s, "%s=%s", name, value) < 0)
        return -ENOMEM;
    env->extra[env->n_extra++] = s;
    env->vec[(*np)++] = s;
    return 0;
}

/* The handler's environment: BASE minus every VRPC_* variable (and minus
 * HOME, USER and LOGNAME when PW switches users), plus the call's variables and
 * the daemon's socket. */
static int env_build(Env *env, char *const *base, const VrpcService *s, const VrpcServiceCall *call,
                     const struct passwd *pw)
{
    size_t n_base = 0, n = 0;
    int r = 0;

    while (base[n_base])
        n_base++;
    env->vec = calloc(n_base + ENV_EXTRA_MAX + 1, sizeof(*env->vec));
    if (!env->vec)
        return -ENOMEM;
    for (size_t i = 0; i < n_base; i++) {
        const char *e = base[i];

        /* Only names that really start with "VRPC_": VRPCSIM_* stays. */
        if (strncmp(e, ENV_PREFIX, strlen(ENV_PREFIX)) == 0)
            continue;
        if (pw && (env_is_name(e, "HOME") || env_is_name(e, "USER") || env_is_name(e, "LOGNAME")))
            continue;
        env->vec[n++] = (char *)e;
    }
    r = r ?: env_add(env, &n, "VRPC_REMOTE_DOMAIN", call->source);
    r = r ?: env_add(env, &n, "VRPC_SERVICE_NAME", s->service);
    r = r ?: env_add(env, &n, "VRPC_SERVICE_ARGUMENT", s->argument);
    r = r
            ?: env_add(env, &n, "VRPC_REQUESTED_TARGET",
                       call->requested_target ? call->requested_target : "");
    if (call->daemon_socket && call->daemon_socket[0] == '/') /* the handler runs in / */
        r = r ?: env_add(env, &n, "VRPC_SOCKET", call->daemon_socket);
    if (pw) {
        r = r ?: env_add(env, &n, "HOME", pw->pw_dir);
        r = r ?: env_add(env, &n, "USER", pw->pw_name);
        r = r ?: env_add(env, &n, "LOGNAME", pw->pw_name);
    }
    env->vec[n] = NULL;
    return r;
}

/* ---- user -------------------------------------------------------------- */

typedef struct User {
    bool switch_user;
    struct passwd pw;
    char *buf;
    gid_t *groups;
    int n_groups;
} User;

static void user_deinit(User *u)
{
    free(u->buf);
    free(u->groups);
    *u = (User){0};
}

/* Decide who runs the handler: the configuration's user, else the call's,
 * else the daemon's own. Only root may switch to someone else. */
static int user_resolve(User *u, const VrpcService *s, const VrpcServiceCall *call, char *err)
{
    const char *name = s->config.user[0]             ? s->config.user
                       : call->user && call->user[0] ? call->user
                                                     : NULL;
    struct passwd *found = NULL;
    size_t size = 16384;
    int r;

    *u = (User){0};
    if (!name)
        return 0;
    if (!vrpc_name_valid_user(name, strlen(name))) {
        services_err(err, "cannot run %s: invalid user name", s->service);
        return VRPC_SERVICES_E_USER;
    }
    for (;;) {
        free(u->buf);
        u->buf = malloc(size);
        if (!u->buf)
            return -ENOMEM;
        r = getpwnam_r(name, &u->pw, u->buf, size, &found);
        if (r != ERANGE || size >= (1u << 20))
            break;
        size *= 2;
    }
    if (r != 0 || !found) {
        services_err(err, "cannot run %s as user %s: %s", s->service, name,
                     r ? strerror(r) : "no such user");
        return VRPC_SERVICES_E_USER;
    }
    if (u->pw.pw_uid == geteuid())
        return 0; /* already that user */
    if (geteuid() != 0) {
        services_err(err, "cannot run %s as user %s: vrpc does not run as root", s->service, name);
        return VRPC_SERVICES_E_USER;
    }
    u->n_groups = 32;
    for (;;) {
        int n = u->n_groups;

        free(u->groups);
        u->groups = calloc((size_t)n, sizeof(*u->groups));
        if (!u->groups)
            return -ENOMEM;
        if (getgrouplist(u->pw.pw_name, u->pw.pw_gid, u->groups, &n) >= 0) {
            u->n_groups = n;
            break;
        }
        if (n <= u->n_groups || n > 65536) {
            services_err(err, "cannot run %s as user %s: cannot list its groups", s->service, name);
            return VRPC_SERVICES_E_USER;
        }
        u->n_groups = n;
    }
    u->switch_user = true;
    return 0;
}

/* ---- pipes ------------------------------------------------------------- */

/* Move FD to 3 or above (keeping O_CLOEXEC), so that dup2() onto 0, 1 and 2
 * in the child cannot clobber another of the child's ends. */
static int fd_above_stdio(int *fdp)
{
    int fd;

    if (*fdp > 2)
        return 0;
    fd = fcntl(*fdp, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return -errno;
    close(*fdp);
    *fdp = fd;
    return 0;
}

/* A new pipe end has no status flag to keep (F_SETFL ignores the access mode). */
static int set_nonblock(int fd)
{
    return fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
}

/* A pipe whose child end is blocking and >= 3 and whose parent end is
 * non-blocking; CHILD_READS tells the direction. Both ends O_CLOEXEC.
 * BIG asks for a pipe buffer of VRPC_SERVICES_PIPE_SIZE (best effort: the
 * kernel caps it at fs.pipe-max-size and at the user's pipe quota), so that
 * a streaming handler and the daemon wake each other per megabyte instead
 * of per 64 KiB. */
static int make_pipe(bool child_reads, bool big, int *childp, int *parentp)
{
    int p[2], r;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    if (big)
        (void)fcntl(p[0], F_SETPIPE_SZ, VRPC_SERVICES_PIPE_SIZE);
    *childp = child_reads ? p[0] : p[1];
    *parentp = child_reads ? p[1] : p[0];
    r = fd_above_stdio(childp);
    if (r == 0)
        r = set_nonblock(*parentp);
    if (r < 0) {
        close(*childp);
        close(*parentp);
        *childp = *parentp = -1;
    }
    return r;
}

static void close_fd(int *fdp)
{
    if (*fdp >= 0) {
        int saved = errno;

        close(*fdp);
        errno = saved;
    }
    *fdp = -1;
}

/* A handler's three pipes: the child's ends and ours, stdin first. */
typedef struct PipeSet {
    int child[3];
    int ours[3];
    bool big; /* stdin and stdout of VRPC_SERVICES_PIPE_SIZE */
} PipeSet;

#define PIPE_SET_NONE ((PipeSet){{-1, -1, -1}, {-1, -1, -1}, false})

static void pipes_close(PipeSet *ps)
{
    for (int i = 0; i < 3; i++) {
        close_fd(&ps->child[i]);
        close_fd(&ps->ours[i]);
    }
}

static int pipes_make(PipeSet *ps, bool big)
{
    int r;

    *ps = PIPE_SET_NONE;
    ps->big = big;
    r = make_pipe(true, big, &ps->child[0], &ps->ours[0]);
    r = r ?: make_pipe(false, big, &ps->child[1], &ps->ours[1]);
    r = r ?: make_pipe(false, false, &ps->child[2], &ps->ours[2]);
    if (r < 0)
        pipes_close(ps);
    return r;
}

/* The pipes of the next start, made ahead by vrpc_services_prepare_pipes() (under big_lock):
 * three pipe2() with their fcntl()s cost about 15 us on the machines measured, on the path
 * of every call. */
static PipeSet spare = {{-1, -1, -1}, {-1, -1, -1}, false};

/* Pipes for a start, BIG or not: the spare set if it is of that size, else new ones. */
static int pipes_take(PipeSet *ps, bool big)
{
    pthread_mutex_lock(&big_lock);
    *ps = spare;
    spare = PIPE_SET_NONE;
    pthread_mutex_unlock(&big_lock);
    if (ps->ours[0] >= 0 && ps->big == big)
        return 0;
    pipes_close(ps);
    return pipes_make(ps, big);
}

int vrpc_services_prepare_pipes(void)
{
    PipeSet ps;
    bool big;
    int r;

    pthread_mutex_lock(&big_lock);
    if (spare.ours[0] >= 0) {
        pthread_mutex_unlock(&big_lock);
        return 0;
    }
    big = big_free_slot() >= 0;
    pthread_mutex_unlock(&big_lock);
    r = pipes_make(&ps, big);
    if (r < 0)
        return r;
    pthread_mutex_lock(&big_lock);
    if (spare.ours[0] < 0) {
        spare = ps;
        ps = PIPE_SET_NONE;
    }
    pthread_mutex_unlock(&big_lock);
    pipes_close(&ps); /* another thread was first */
    return 0;
}

void vrpc_services_drop_pipes(void)
{
    PipeSet ps;

    pthread_mutex_lock(&big_lock);
    ps = spare;
    spare = PIPE_SET_NONE;
    pthread_mutex_unlock(&big_lock);
    pipes_close(&ps);
}

/* The kernel's struct sigaction for rt_sigaction(2), which glibc's
 * sigaction() will not pass on for its internal signals. */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

/* @sig to SIG_DFL through the kernel directly: glibc's sigaction() refuses its internal
 * signals (32, 33), which may be ignored since our own start. Async-signal-safe. */
static void sig_default(int sig)
{
    struct kernel_sigaction ksa = {.handler = SIG_DFL};

    (void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
}

/* The signals a child resets to SIG_DFL before exec: those whose disposition was not the
 * default when the list was made. */
typedef struct SigList {
    int n;
    uint8_t sig[NSIG];
} SigList;

/* The next start's list, made ahead by vrpc_services_prepare_signals() (under big_lock).
 * Without one, the child resets every signal: 66 rt_sigaction() calls, 20-25 us in a new
 * child on the machines measured, while the daemon waits for the child's exec. */
static SigList sig_spare;
static bool sig_spare_ready;

void vrpc_services_prepare_signals(void)
{
    SigList l = {0};

    pthread_mutex_lock(&big_lock);
    if (sig_spare_ready) {
        pthread_mutex_unlock(&big_lock);
        return;
    }
    pthread_mutex_unlock(&big_lock);
    for (int sig = 1; sig < NSIG; sig++) {
        struct kernel_sigaction ksa;

        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        /* The kernel's view, glibc's internal signals included; in doubt, reset. */
        if (syscall(SYS_rt_sigaction, sig, NULL, &ksa, sizeof(ksa.mask)) < 0 ||
            ksa.handler != SIG_DFL)
            l.sig[l.n++] = (uint8_t)sig;
    }
    pthread_mutex_lock(&big_lock);
    sig_spare = l;
    sig_spare_ready = true;
    pthread_mutex_unlock(&big_lock);
}

void vrpc_services_drop_signals(void)
{
    pthread_mutex_lock(&big_lock);
    sig_spare_ready = false;
    pthread_mutex_unlock(&big_lock);
}

/* The prepared list into @l, if there is one (it is used once). */
static bool sigs_take(SigList *l)
{
    bool ready;

    pthread_mutex_lock(&big_lock);
    ready = sig_spare_ready;
    if (ready)
        *l = sig_spare;
    sig_spare_ready = false;
    pthread_mutex_unlock(&big_lock);
    return ready;
}

/* ---- executables ------------------------------------------------------- */

static bool is_resource_error(int e)
{
    return e == ENOMEM || e == EAGAIN || e == EMFILE || e == ENFILE;
}

/* What the child reports when it fails before exec. */
typedef struct ChildFailure {
    int32_t stage;
    int32_t error;
} ChildFailure;

enum { STAGE_SETUP, STAGE_GROUPS, STAGE_GID, STAGE_UID, STAGE_EXEC };

static void close_from(int from, int to, int max_fd)
{
    if (from > to)
        return;
    if (syscall(SYS_close_range, (unsigned)from, (unsigned)to, 0) == 0)
        return;
    for (int fd = from; fd <= to && fd < max_fd; fd++)
        close(fd);
}

/* In the forked child: only async-signal-safe calls from here to exec. @u NULL:
 * keep the daemon's user. A failure goes to @shared where the child shares our memory
 * (CLONE_VM: @report_fd is -1), else as a record on @report_fd. */
__attribute__((noreturn)) static void child_run(const char *path, char *const argv[],
                                                char *const envp[], const int child[3],
                                                int report_fd, volatile ChildFailure *shared,
                                                int max_fd, const User *u, pid_t parent,
                                                const SigList *reset)
{
    ChildFailure f = {STAGE_SETUP, 0};
    sigset_t none;

    if (setsid() < 0)
        goto fail;
    /* The default scheduling policy, whatever the daemon runs as (vrpc-dispatcher
     * --sched-batch): a handler is not a batch job. */
    if (sched_getscheduler(0) == SCHED_BATCH &&
        sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0}) < 0)
        goto fail;
    /* No daemon handler may run here, in the daemon's memory, once the mask is emptied; and
     * an ignored signal would stay ignored through exec. All signals are blocked so far. */
    if (reset) {
        for (int i = 0; i < reset->n; i++)
            sig_default(reset->sig[i]);
    } else {
        for (int sig = 1; sig < NSIG; sig++)
            sig_default(sig); /* fails harmlessly for SIGKILL, SIGSTOP */
    }
    for (int i = 0; i < 3; i++)
        if (dup2(child[i], i) < 0)
            goto fail;
    if (report_fd < 0) {
        close_from(3, INT32_MAX, max_fd);
    } else {
        close_from(3, report_fd - 1, max_fd);
        close_from(report_fd + 1, INT32_MAX, max_fd);
    }
    f.stage = STAGE_GROUPS;
    if (u && setgroups((size_t)u->n_groups, u->groups) < 0)
        goto fail;
    f.stage = STAGE_GID;
    if (u && setgid(u->pw.pw_gid) < 0)
        goto fail;
    f.stage = STAGE_UID;
    if (u && setuid(u->pw.pw_uid) < 0)
        goto fail;
    f.stage = STAGE_SETUP;
    if (chdir("/") < 0)
        goto fail;
    /* Die with the daemon. After the uid change, which clears the setting; if the
     * daemon is already gone, the child is not wanted either. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    f.stage = STAGE_EXEC;
    execve(path, argv, envp);
fail:
    f.error = errno;
    if (shared) {
        shared->error = f.error;
        shared->stage = f.stage;
    } else {
        (void)!write(report_fd, &f, sizeof(f));
    }
    _exit(127);
}

typedef struct ChildArgs {
    const char *path;
    char *const *argv;
    char *const *envp;
    const int *child;
    volatile ChildFailure *failure;
    int max_fd;
    pid_t parent;
    const SigList *reset;
} ChildArgs;

/* Entry of the CLONE_VM child: it runs on its own stack while we are suspended
 * (CLONE_VFORK) until it has exec'ed or exited. */
static int child_entry(void *p)
{
    const ChildArgs *a = p;

    child_run(a->path, a->argv, a->envp, a->child, -1, a->failure, a->max_fd, NULL, a->parent,
              a->reset);
}

/* Wait for the child that reported failure @f, and say why; returns the error to return. */
static int child_failed(pid_t pid, ChildFailure f, const char *path, const User *u, char *err)
{
    static const char *const stages[] = {
        [STAGE_SETUP] = "set up", [STAGE_GROUPS] = "setgroups", [STAGE_GID] = "setgid",
        [STAGE_UID] = "setuid",   [STAGE_EXEC] = "exec",
    };

    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (f.stage < STAGE_SETUP || f.stage > STAGE_EXEC)
        f.stage = STAGE_SETUP;
    services_err(err, "cannot %s %s%s%s: %s", stages[f.stage], path, u ? " as user " : "",
                 u ? u->pw.pw_name : "", strerror(f.error));
    if (f.stage == STAGE_EXEC)
        return VRPC_SERVICES_E_EXEC;
    if (f.stage == STAGE_SETUP || is_resource_error(f.error))
        return f.error > 0 ? -f.error : -EIO;
    return VRPC_SERVICES_E_USER;
}

/* Our user: clone(CLONE_VM|CLONE_VFORK), the child sharing our memory until its exec, so that
 * a failure before exec is a record it leaves in our frame (no report pipe). */
static int spawn_shared(const char *path, char *const argv[], char *const envp[],
                        const int child[3], int max_fd, const SigList *reset, pid_t *pidp,
                        char *err)
{
    /* The child's stack: ours is suspended and this frame outlives the child's use. */
    _Alignas(16) char stack[64 << 10];
    volatile ChildFailure f = {.stage = -1, .error = 0};
    ChildArgs a = {path, argv, envp, child, &f, max_fd, getpid(), reset};
    sigset_t all, saved;
    pid_t pid;
    int r;

    /* No daemon signal handler may run in the child before it resets them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid = clone(child_entry, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    r = pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    /* The child's frames never returned: under AddressSanitizer their redzones would stay
     * poisoned in our frame, where the next child's frames land. */
    ASAN_UNPOISON_MEMORY_REGION(stack, sizeof(stack));
    if (r < 0)
        return r;
    /* The child has exec'ed (f untouched) or exited (f says why, unless it was killed). */
    if (f.stage >= 0)
        return child_failed(pid, (ChildFailure){f.stage, f.error}, path, NULL, err);
    *pidp = pid;
    return 0;
}

/* Another user: fork(), the child switching user before exec; a failure comes as a record
 * on a CLOEXEC pipe whose EOF says the exec succeeded. */
static int spawn_forked(const char *path, char *const argv[], char *const envp[],
                        const int child[3], int max_fd, const User *u, const SigList *reset,
                        pid_t *pidp, char *err)
{
    int report[2], r = 0;
    sigset_t all, saved;
    ChildFailure f;
    ssize_t n;
    pid_t pid, parent = getpid();

    if (pipe2(report, O_CLOEXEC) < 0)
        return -errno;
    if ((r = fd_above_stdio(&report[1])) < 0) {
        close(report[0]);
        close(report[1]);
        return r;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid = fork();
    if (pid == 0)
        child_run(path, argv, envp, child, report[1], NULL, max_fd, u, parent, reset);
    r = pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(report[1]);
    if (r < 0) {
        close(report[0]);
        return r;
    }
    do
        n = read(report[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof(f))
        return child_failed(pid, f, path, u, err);
    *pidp = pid;
    return 0;
}

/* Start @path as a handler (as user @u, or NULL: ours). */
static int spawn_child(const char *path, char *const argv[], char *const envp[], const int child[3],
                       const User *u, pid_t *pidp, char *err)
{
    int max_fd = (int)sysconf(_SC_OPEN_MAX);
    SigList reset;
    bool listed = sigs_take(&reset);

    if (max_fd < 0 || max_fd > 65536)
        max_fd = 65536;
    if (u)
        return spawn_forked(path, argv, envp, child, max_fd, u, listed ? &reset : NULL, pidp, err);
    return spawn_shared(path, argv, envp, child, max_fd, listed ? &reset : NULL, pidp, err);
}

static int start_executable(const VrpcService *s, const VrpcServiceCall *call,
                            VrpcServiceProcess *proc, char *err)
{
    char *const *base = call->base_env ? call->base_env : environ;
    char *argv[3] = {(char *)s->service, s->argument[0] ? (char *)s->argument : NULL, NULL};
    PipeSet ps = PIPE_SET_NONE;
    Env env = {0};
    User user = {0};
    pid_t pid = 0;
    int r, big = -1;

    r = user_resolve(&user, s, call, err);
    if (r != 0)
        goto out;
    r = env_build(&env, base, s, call, user.switch_user ? &user.pw : NULL);
    if (r < 0) {
        services_err(err, "cannot build the environment: %s", strerror(-r));
        goto out;
    }
    big = big_reserve();
    r = pipes_take(&ps, big >= 0);
    if (r < 0) {
        services_err(err, "cannot create pipes: %s", strerror(-r));
        goto out;
    }
    if (err)
        err[0] = '\0';
    r = spawn_child(s->path, argv, env.vec, ps.child, user.switch_user ? &user : NULL, &pid, err);
    if (r < 0 && err && !err[0])
        services_err(err, "cannot start %s: %s", s->path, strerror(-r));
    if (r != 0)
        goto out;
    proc->pid = pid;
    big_commit(big, pid);
    big = -1;
    proc->stdin_fd = TAKE_FD(ps.ours[0]);
    proc->stdout_fd = TAKE_FD(ps.ours[1]);
    proc->stderr_fd = TAKE_FD(ps.ours[2]);
out:
    big_commit(big, 0);
    pipes_close(&ps);
    env_deinit(&env);
    user_deinit(&user);
    return r;
}

/* ---- sockets ----------------------------------------------------------- */

int vrpc_service_descriptor_format(const char *service, const char *argument, const char *source,
                                   char *buf, size_t size)
{
    int n;

    if (!service || !source || !buf ||
        vrpc_services_validate(service, strlen(service), argument, argument ? strlen(argument) : 0,
                               NULL) != 0 ||
        !vrpc_name_valid_qualified(source, strnlen(source, VRPC_NAME_MAX + 1)))
        return -EINVAL;
    n = snprintf(buf, size, "%s+%s %s\n", service, argument ? argument : "", source);
    if (n < 0 || (size_t)n >= size)
        return -ENOBUFS;
    return n;
}

static int start_socket(const VrpcService *s, const VrpcServiceCall *call, VrpcServiceProcess *proc,
                        char *err)
{
    _cleanup_close_ int fd = -1, path_fd = -1, out_fd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char line[VRPC_SERVICES_DESCRIPTOR_MAX + 1];
    int n = 0;

    if (!s->config.skip_service_descriptor) {
        n = vrpc_service_descriptor_format(s->service, s->argument, call->source, line,
                                           sizeof(line));
        if (n < 0) {
            services_err(err, "cannot format the service descriptor");
            return n;
        }
    }
    if (strlen(s->path) < sizeof(sa.sun_path)) {
        memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    } else {
        /* Too long for sun_path: reach the socket through an O_PATH fd. */
        path_fd = open(s->path, O_PATH | O_CLOEXEC);
        if (path_fd < 0) {
            services_err(err, "%s: %s", s->path, strerror(errno));
            return VRPC_SERVICES_E_CONNECT;
        }
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", path_fd);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        services_err(err, "cannot create a socket: %s", strerror(errno));
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        /* A Unix stream connect never completes later: EAGAIN means the
         * listen queue is full, and waiting for room would block the call. */
        services_err(err, "cannot connect to %s: %s", s->path,
                     errno == EAGAIN ? "its listen queue is full" : strerror(errno));
        return VRPC_SERVICES_E_CONNECT;
    }
    if (n > 0) {
        ssize_t w;

        do
            w = send(fd, line, (size_t)n, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w != n) {
            services_err(err, "cannot write the descriptor to %s: %s", s->path,
                         w < 0 ? strerror(errno) : "short write");
            return VRPC_SERVICES_E_CONNECT;
        }
    }
    out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (out_fd < 0) {
        services_err(err, "cannot duplicate a socket: %s", strerror(errno));
        return -errno;
    }
    proc->is_socket = true;
    proc->stdin_fd = TAKE_FD(fd);
    proc->stdout_fd = TAKE_FD(out_fd);
    return 0;
}

/* ---- public ------------------------------------------------------------ */

int vrpc_service_start(const VrpcService *service, const VrpcServiceCall *call,
                       VrpcServiceProcess *procp, char *err)
{
    VrpcServiceProcess proc = {.pid = 0, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    int r;

    if (procp)
        *procp = proc;
    if (!service || !call || !procp || !call->source ||
        /* a domain of this host, or DOMAIN@HOST for a call from another host */
        !vrpc_name_valid_qualified(call->source, strnlen(call->source, VRPC_NAME_MAX + 1)) ||
        (call->requested_target &&
         !vrpc_name_valid_target(call->requested_target,
                                 strnlen(call->requested_target, VRPC_NAME_MAX + 1)))) {
        services_err(err, "invalid arguments");
        return -EINVAL;
    }
    if (service->kind == VRPC_SERVICE_SOCKET)
        r = start_socket(service, call, &proc, err);
    else
        r = start_executable(service, call, &proc, err);
    if (r == 0)
        *procp = proc;
    return r;
}

void vrpc_service_process_close_stdin(VrpcServiceProcess *proc)
{
    if (!proc || proc->stdin_fd < 0)
        return;
    if (proc->is_socket)
        shutdown(proc->stdin_fd, SHUT_WR);
    close_fd(&proc->stdin_fd);
}

void vrpc_service_process_deinit(VrpcServiceProcess *proc)
{
    if (!proc)
        return;
    close_fd(&proc->stdin_fd);
    close_fd(&proc->stdout_fd);
    close_fd(&proc->stderr_fd);
}

int vrpc_service_process_kill(const VrpcServiceProcess *proc, int sig)
{
    if (!proc || proc->pid <= 0)
        return -EINVAL;
    if (kill(-proc->pid, sig) < 0)
        return -errno;
    return 0;
}

int vrpc_service_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd;

    if (pid <= 0)
        return -EINVAL;
    fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
#else
    (void)pid;
    return -ENOSYS;
#endif
}

int vrpc_service_exit_code(int wait_status)
{
    if (WIFEXITED(wait_status))
        return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return VRPC_SERVICES_EXIT_FRAMEWORK; /* stopped/continued: not an exit */
}

int vrpc_service_reap(pid_t pid, int *exit_codep)
{
    int status = 0;
    pid_t r;

    if (pid <= 0)
        return -EINVAL;
    do
        r = waitpid(pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -EAGAIN;
    big_release(pid);
    if (exit_codep)
        *exit_codep = vrpc_service_exit_code(status);
    return 0;
}
