/* SPDX-License-Identifier: MIT */
/*
 * vrpcd.c - `vrpc-sim up --vrpc`: starts vrpc itself on an instance that is up. The
 * dispatcher runs in dom0 and one agent runs in every guest, each started through
 * `vrpc-sim exec` so that it is a process of its domain (destroy and down find it by its
 * environment, like any other program of the domain). Their logs go to the instance folder
 * (dispatcher.log, agent.NAME.log, audit.log). We return once the dispatcher reports every
 * agent connected, so that a caller's first vrpc-call cannot race the start-up.
 */
#include "sim.h"
#include "simcore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VRPC_START_TIMEOUT_S 30

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Folder of this executable (no trailing slash). */
static int self_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash;

    if (n <= 0)
        return -1;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return 0;
}

/* Find program @name: $VRPCSIM_VRPC_BINDIR, the build tree's @subdir next to sim/, then
 * the folder of vrpc-sim itself (an installed layout). */
static int find_program(char *buf, size_t len, const char *subdir, const char *name)
{
    const char *env = getenv("VRPCSIM_VRPC_BINDIR");
    char dir[PATH_MAX];

    if (env && *env) {
        snprintf(buf, len, "%s/%s", env, name);
        return access(buf, X_OK) == 0 ? 0 : -1;
    }
    if (self_dir(dir, sizeof(dir)) < 0)
        return -1;
    if ((size_t)snprintf(buf, len, "%s/../%s/%s", dir, subdir, name) < len &&
        access(buf, X_OK) == 0)
        return 0;
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) < len && access(buf, X_OK) == 0)
        return 0;
    return -1;
}

int sim_vrpc_path(char *buf, size_t len)
{
    /* each folder counts only with the program that is looked for there */
    static const char *const subdirs[] = {"agent", "dispatcher", "policy", "vchan"};
    static const char *const progs[] = {"vrpc-call", "vrpc-ctl", "vrpc-policy", "vchan-cat"};
    const char *env = getenv("VRPCSIM_VRPC_BINDIR");
    char dir[PATH_MAX], cand[PATH_MAX + 32];
    size_t used = 0;

    if (env && *env)
        return (size_t)snprintf(buf, len, "%s", env) < len ? 0 : -1;
    if (self_dir(dir, sizeof(dir)) < 0)
        return -1;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        snprintf(cand, sizeof(cand), "%s/../%s/%s", dir, subdirs[i], progs[i]);
        if (access(cand, X_OK) < 0)
            continue;
        snprintf(cand, sizeof(cand), "%s/../%s", dir, subdirs[i]);
        char *real = realpath(cand, NULL);
        if (!real)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ":" : "", real);
        free(real);
        if (n < 0 || (size_t)n >= len - used)
            return -1;
        used += (size_t)n;
    }
    return used ? 0 : -1;
}

/* The configuration folder: @etc as given (made absolute), else the example one that the
 * build assembles next to sim/ (build/etc), else /etc/vrpc. */
static int find_etc(char *buf, size_t len, const char *etc, char *err, size_t errlen)
{
    char dir[PATH_MAX], cand[PATH_MAX + 16];

    if (etc) {
        if (!realpath(etc, dir)) {
            set_err(err, errlen, "--etc %s: %s", etc, strerror(errno));
            return -1;
        }
    } else if (self_dir(dir, sizeof(dir)) == 0 &&
               (size_t)snprintf(cand, sizeof(cand), "%s/../etc", dir) < sizeof(cand) &&
               realpath(cand, dir)) {
        /* dir holds the example folder */
    } else {
        snprintf(dir, sizeof(dir), "/etc/vrpc");
    }
    if ((size_t)snprintf(cand, sizeof(cand), "%s/policy.d", dir) >= sizeof(cand) ||
        access(cand, F_OK) < 0) {
        set_err(err, errlen, "configuration folder %s has no policy.d (give --etc DIR)", dir);
        return -1;
    }
    if (strlen(dir) >= len) {
        set_err(err, errlen, "configuration path too long");
        return -1;
    }
    strcpy(buf, dir);
    return 0;
}

/* Start `vrpc-sim exec --ns NS DOMAIN -- ARGV...` detached, output to @logname in the
 * instance folder. Returns the pid or -1. */
static pid_t spawn_in_domain(const char *ns, const char *domain, const char *logname,
                             const char *const *argv, bool detach)
{
    char self[PATH_MAX], logf[PATH_MAX];
    const char *args[32];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    int k = 0;
    pid_t pid;

    if (sl <= 0 || sim_path(logf, sizeof(logf), "%s", logname) < 0)
        return -1;
    self[sl] = '\0';
    args[k++] = "vrpc-sim";
    args[k++] = "exec";
    args[k++] = "--ns";
    args[k++] = ns;
    args[k++] = domain;
    args[k++] = "--";
    for (int i = 0; argv[i] && k < 31; i++)
        args[k++] = argv[i];
    args[k] = NULL;

    fflush(NULL);
    pid = fork();
    if (pid != 0)
        return pid;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        dup2(fd, 0);
    fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if (detach)
        setsid();
    /* the daemons get stdio only, not whatever our caller (a test runner) left open */
    close_range(3, ~0u, 0);
    execv(self, (char *const *)args);
    _exit(127);
}

static bool child_alive(pid_t pid)
{
    int st;

    return waitpid(pid, &st, WNOHANG) == 0;
}

int sim_vrpc_start(const char *ns, const char *etc, const char *const *guests, int n, char *err,
                   size_t errlen)
{
    char dispatcher[PATH_MAX], agent[PATH_MAX], ctl[PATH_MAX], etcdir[PATH_MAX];
    char sock[PATH_MAX], control[PATH_MAX], audit[PATH_MAX], path[PATH_MAX], count[16];
    char logname[128], timeout[16];
    pid_t dpid, pid;
    int st;

    if (find_program(dispatcher, sizeof(dispatcher), "dispatcher", "vrpc-dispatcher") < 0 ||
        find_program(ctl, sizeof(ctl), "dispatcher", "vrpc-ctl") < 0 ||
        find_program(agent, sizeof(agent), "agent", "vrpc-agent") < 0) {
        const char *bindir = getenv("VRPCSIM_VRPC_BINDIR");
        if (bindir && *bindir)
            set_err(err, errlen,
                    "vrpc-dispatcher, vrpc-ctl or vrpc-agent not found in %s "
                    "(VRPCSIM_VRPC_BINDIR)",
                    bindir);
        else
            set_err(err, errlen,
                    "vrpc-dispatcher, vrpc-ctl or vrpc-agent not found next to "
                    "vrpc-sim (set VRPCSIM_VRPC_BINDIR)");
        return -1;
    }
    if (find_etc(etcdir, sizeof(etcdir), etc, err, errlen) < 0)
        return -1;
    if (sim_path(path, sizeof(path), "dom0") < 0 || (mkdir(path, 0700) < 0 && errno != EEXIST) ||
        sim_path(sock, sizeof(sock), "dom0/vrpc.sock") < 0 ||
        sim_path(control, sizeof(control), "dom0/control.sock") < 0 ||
        sim_path(audit, sizeof(audit), "audit.log") < 0) {
        set_err(err, errlen, "cannot prepare %s/dom0", sim_instance_dir());
        return -1;
    }

    const char *dargv[] = {dispatcher,  "--etc", etcdir,    "--socket", sock,
                           "--control", control, "--audit", audit,      NULL};
    dpid = spawn_in_domain(ns, "dom0", "dispatcher.log", dargv, true);
    if (dpid < 0) {
        set_err(err, errlen, "cannot start vrpc-dispatcher: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char asock[PATH_MAX];

        snprintf(logname, sizeof(logname), "agent.%s.log", guests[i]);
        if (sim_path(asock, sizeof(asock), "dom%d/vrpc.sock", i + 1) < 0) {
            set_err(err, errlen, "socket path too long");
            return -1;
        }
        const char *aargv[] = {agent, "--etc", etcdir, "--socket", asock, NULL};
        if (spawn_in_domain(ns, guests[i], logname, aargv, true) < 0) {
            set_err(err, errlen, "cannot start vrpc-agent in %s: %s", guests[i], strerror(errno));
            return -1;
        }
    }

    /* the control socket appears once the dispatcher is serving */
    for (int i = 0; access(control, F_OK) < 0; i++) {
        if (!child_alive(dpid)) {
            set_err(err, errlen, "vrpc-dispatcher exited at start-up (see %s/dispatcher.log)",
                    sim_instance_dir());
            return -1;
        }
        if (i >= VRPC_START_TIMEOUT_S * 100) {
            set_err(err, errlen,
                    "vrpc-dispatcher did not start within %d s (see "
                    "%s/dispatcher.log)",
                    VRPC_START_TIMEOUT_S, sim_instance_dir());
            return -1;
        }
        usleep(10000);
    }
    snprintf(count, sizeof(count), "%d", n);
    snprintf(timeout, sizeof(timeout), "%d", VRPC_START_TIMEOUT_S);
    const char *wargv[] = {ctl,   "--control", control, "wait-guests",
                           count, "--timeout", timeout, NULL};
    pid = spawn_in_domain(ns, "dom0", "vrpc-ctl.log", wargv, false);
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        set_err(err, errlen,
                "not every agent connected within %d s (see %s/dispatcher.log "
                "and agent.*.log)",
                VRPC_START_TIMEOUT_S, sim_instance_dir());
        return -1;
    }
    return 0;
}
