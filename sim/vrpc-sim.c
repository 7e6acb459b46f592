/* SPDX-License-Identifier: MIT */
/*
 * vrpc-sim: bring up, use and tear down an emulated Xen host (dom0 plus
 * named guests) on which unmodified Xen userspace runs: the real C
 * xenstored, libxenvchan, vchan-socket-proxy, xenstore-utils and vrpc.
 */
#include "common/escape.h"
#include "sim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

static const char usage_text[] =
    "Usage: vrpc-sim COMMAND [--ns NAME] ...\n"
    "\n"
    "Emulated Xen host for vrpc: the real xenstored plus drop-in grant-table and\n"
    "event-channel libraries. Instances with different --ns names are independent.\n"
    "\n"
    "commands:\n"
    "  up [--ns NAME] [--vrpc [--etc DIR]] DOMAIN...\n"
    "                                  start xenstored for dom0 and introduce each guest\n"
    "                                  (domids 1, 2, ... in order); returns when ready.\n"
    "                                  --vrpc also starts vrpc-dispatcher in dom0 and\n"
    "                                  vrpc-agent in every guest, configured from DIR\n"
    "                                  (default: the shipped example configuration), and\n"
    "                                  returns when every agent is connected\n"
    "  exec [--ns NAME] DOMAIN -- CMD [ARG...]\n"
    "                                  run CMD as DOMAIN (dom0 or a guest name)\n"
    "  destroy [--ns NAME] DOMAIN      kill one guest; fires @releaseDomain\n"
    "  status [--ns NAME]              show the instance and its domains\n"
    "  down [--ns NAME]                stop everything and remove all its files\n"
    "\n"
    "options:\n"
    "  --ns NAME      instance name, [A-Za-z0-9_-]{1,32} (default: $VRPCSIM_NS or 'default')\n"
    "  -h, --help     show this help\n"
    "  --version      show the version\n"
    "\n"
    "environment: VRPCSIM_ROOT (default /dev/shm/vrpc-sim), VRPCSIM_NS, VRPCSIM_KEEP=1,\n"
    "  VRPCSIM_XENSTORED, VRPCSIM_LIBDIR, VRPCSIM_VRPC_BINDIR (see vrpc-sim(1))\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vrpc-sim: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return 2;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vrpc-sim: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static const char *ns;
static bool opt_vrpc;       /* up --vrpc */
static const char *opt_etc; /* up --etc DIR */

/* Parse [--ns NAME] and --help (plus --vrpc and --etc DIR when @up_opts); returns index of
 * the first operand or -2/-1. */
static int parse_common_ex(int argc, char **argv, bool stop_at_operand, bool up_opts)
{
    static const struct option opts[] = {
        {"ns", required_argument, NULL, 'n'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},   {"vrpc", no_argument, NULL, 'v'},
        {"etc", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, stop_at_operand ? "+h" : "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            ns = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case 'V':
            printf("vrpc-sim (vrpc) %s\n", VRPC_VERSION);
            return -1;
        case 'v':
        case 'e':
            if (!up_opts) {
                usage_error("option '%s' is only valid for 'up'", VRPC_ESC(argv[optind - 1]));
                return -2;
            }
            if (c == 'v')
                opt_vrpc = true;
            else
                opt_etc = optarg;
            break;
        default:
            if (optopt == 'n')
                usage_error("--ns needs a NAME");
            else if (optopt == 'e')
                usage_error("--etc needs a DIR");
            else
                usage_error("unknown option '%s'", VRPC_ESC(argv[optind - 1]));
            return -2;
        }
    }
    if (!sim_ns_valid(ns)) {
        usage_error("invalid instance name '%s': use [A-Za-z0-9_-], 1 to 32 characters",
                    VRPC_ESC(ns));
        return -2;
    }
    if (opt_etc && !opt_vrpc) {
        usage_error("--etc needs --vrpc");
        return -2;
    }
    return optind;
}

static int parse_common(int argc, char **argv, bool stop_at_operand)
{
    return parse_common_ex(argc, argv, stop_at_operand, false);
}

static int select_instance(void)
{
    char dir[PATH_MAX];

    if (sim_instance_for(ns, dir, sizeof(dir)) < 0)
        return fail("instance path for '%s' is too long (VRPCSIM_ROOT)", VRPC_ESC(ns));
    setenv("VRPCSIM_INSTANCE", dir, 1);
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

static void cleanup_stale(void)
{
    char path[PATH_MAX];
    long pid;
    FILE *f;

    /* a daemon that lost its socket; its children die with it */
    if (sim_path(path, sizeof(path), "daemon.pid") == 0 && (f = fopen(path, "re"))) {
        if (fscanf(f, "%ld", &pid) == 1 && pid > 1)
            kill((pid_t)pid, SIGKILL);
        fclose(f);
    }
    sim_kill_instance_procs(SIM_DOMID_INVALID, SIGKILL, getpid());
    for (int i = 0; i < 100 && sim_count_instance_procs(SIM_DOMID_INVALID) > 0; i++)
        usleep(10000);
    sim_remove_tree(sim_instance_dir());
}

/*
 * An instance whose daemon died without `down` (SIGKILL of the whole tree, a crash, the OOM
 * killer) keeps its folder: the shared memory of its grants, its sockets and logs. `up`
 * removes such folders next to its own: those that hold a daemon.pid (a daemon once ran
 * there) while no live process belongs to the instance any more. A folder without
 * daemon.pid may be an `up` in progress, and one with a live process is in use: both are
 * left alone, as is anything that is not a directory. Nothing is swept with VRPCSIM_KEEP=1.
 */
static void sweep_dead_instances(void)
{
    char root[PATH_MAX], dir[PATH_MAX], pidf[PATH_MAX + 16];
    const char *self = sim_instance_dir(), *slash = strrchr(self, '/');
    struct dirent *de;
    struct stat st;
    DIR *d;

    if (sim_keep_remains() || !slash || slash == self || (size_t)(slash - self) >= sizeof(root))
        return;
    memcpy(root, self, (size_t)(slash - self));
    root[slash - self] = '\0';
    if (!(d = opendir(root)))
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, slash + 1) == 0)
            continue;
        if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name) >= sizeof(dir))
            continue;
        snprintf(pidf, sizeof(pidf), "%s/daemon.pid", dir);
        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(pidf, F_OK) < 0 ||
            sim_count_procs_of(dir) != 0)
            continue;
        if (sim_remove_tree(dir) == 0)
            fprintf(stderr, "vrpc-sim: removed instance '%s': its processes are gone\n",
                    VRPC_ESC(de->d_name));
    }
    closedir(d);
}

static int cmd_down(int argc, char **argv);

static int cmd_up(int argc, char **argv)
{
    int first = parse_common_ex(argc, argv, false, true), p[2];
    char buf[512];
    ssize_t n;
    size_t got = 0;
    pid_t pid;

    if (first < 0)
        return first == -1 ? 0 : 2;
    if (first >= argc)
        return usage_error("up needs at least one DOMAIN name");
    if (argc - first > (int)SIM_MAX_DOMAINS - 1)
        return usage_error("too many domains");
    for (int i = first; i < argc; i++) {
        if (!sim_name_valid(argv[i]))
            return usage_error("invalid domain name '%s': use [A-Za-z0-9_.-], 1 to 64 "
                               "characters, not dom0 and not only digits",
                               VRPC_ESC(argv[i]));
        for (int j = first; j < i; j++)
            if (strcmp(argv[i], argv[j]) == 0)
                return usage_error("duplicate domain name '%s'", VRPC_ESC(argv[i]));
    }
    if (select_instance())
        return 1;
    if (sim_instance_up())
        return fail("instance '%s' is already up (vrpc-sim down first)", ns);
    if (access(sim_instance_dir(), F_OK) == 0)
        cleanup_stale();
    sweep_dead_instances();
    if (mkdir_p(sim_instance_dir()) < 0)
        return fail("cannot create %s", sim_instance_dir());
    if (pipe2(p, O_CLOEXEC) < 0)
        return fail("pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return fail("fork: %s", strerror(errno));
    if (pid == 0) {
        /* re-exec so that /proc/PID/environ names this instance */
        char logf[PATH_MAX], fdarg[16], self[PATH_MAX];
        const char **args = calloc((size_t)(argc - first) + 4, sizeof(*args));
        ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
        int fd, k = 0;

        close(p[0]);
        setsid();
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd >= 0)
            dup2(fd, 0);
        if (sim_path(logf, sizeof(logf), "daemon.log") == 0 &&
            (fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (!args || sl <= 0 || dup2(p[1], 3) < 0)
            _exit(1);
        self[sl] = '\0';
        snprintf(fdarg, sizeof(fdarg), "3");
        args[k++] = "vrpc-sim";
        args[k++] = "__daemon";
        args[k++] = fdarg;
        for (int i = first; i < argc; i++)
            args[k++] = argv[i];
        args[k] = NULL;
        execv(self, (char *const *)args);
        _exit(127);
    }
    close(p[1]);
    while (got < sizeof(buf) - 1 && (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0) {
        got += (size_t)n;
        if (memchr(buf, '\n', got))
            break;
    }
    close(p[0]);
    buf[got] = '\0';
    if (strncmp(buf, "ok\n", 3) != 0) {
        char *nl = strchr(buf, '\n');
        if (nl)
            *nl = '\0';
        waitpid(pid, NULL, 0);
        /* the logs a message names go with the instance unless VRPCSIM_KEEP=1 */
        return fail("up failed: %s%s", got ? buf : "the daemon exited",
                    sim_keep_remains() ? ""
                                       : " (removed with the instance: VRPCSIM_KEEP=1 keeps it)");
    }
    if (opt_vrpc) {
        char err[512];

        if (sim_vrpc_start(ns, opt_etc, (const char *const *)argv + first, argc - first, err,
                           sizeof(err)) < 0) {
            char *down_argv[] = {"down", "--ns", (char *)ns, NULL};
            int saved_stdout = dup(1), devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

            fail("up --vrpc failed: %s%s", err,
                 sim_keep_remains() ? ""
                                    : " (the instance was taken down: VRPCSIM_KEEP=1 keeps it, "
                                      "running, with its logs)");
            /* leave nothing behind; keep the instance for inspection with VRPCSIM_KEEP=1 */
            if (!sim_keep_remains()) {
                if (devnull >= 0)
                    dup2(devnull, 1);
                cmd_down(3, down_argv);
                fflush(stdout);
                if (saved_stdout >= 0)
                    dup2(saved_stdout, 1);
            }
            if (devnull >= 0)
                close(devnull);
            if (saved_stdout >= 0)
                close(saved_stdout);
            return 1;
        }
    }
    printf("vrpc-sim: instance '%s' up:", ns);
    printf(" dom0 (0)");
    for (int i = first; i < argc; i++)
        printf(", %s (%d)", argv[i], i - first + 1);
    printf(opt_vrpc ? "; vrpc dispatcher and agents connected\n" : "\n");
    return 0;
}

static int load_running(SimTable *t)
{
    if (!sim_instance_up() || sim_table_load(t) < 0) {
        fail("instance '%s' is not running (vrpc-sim up first)", ns);
        return -1;
    }
    return 0;
}

static int prepend_env(const char *var, const char *val, char sep)
{
    const char *old = getenv(var);
    char *buf;
    int r;

    if (!old || !*old)
        return setenv(var, val, 1);
    if (asprintf(&buf, "%s%c%s", val, sep, old) < 0)
        return -1;
    r = setenv(var, buf, 1);
    free(buf);
    return r;
}

static int cmd_exec(int argc, char **argv)
{
    int first = parse_common(argc, argv, true);
    char path[PATH_MAX], id[16];
    SimTable t;
    SimDomain *d;

    if (first < 0)
        return first == -1 ? 0 : 2;
    if (first >= argc)
        return usage_error("exec needs a DOMAIN and a command");
    if (select_instance() || load_running(&t) < 0)
        return 1;
    d = sim_table_find(&t, argv[first]);
    if (!d)
        return fail("unknown domain '%s'", VRPC_ESC(argv[first]));
    if (d->state != SIM_DOM_RUNNING)
        return fail("domain '%s' was destroyed", VRPC_ESC(argv[first]));
    first++;
    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    if (first >= argc)
        return usage_error("missing command after DOMAIN --");

    snprintf(id, sizeof(id), "%u", d->domid);
    setenv("VRPCSIM_DOMID", id, 1);
    if (d->domid == 0)
        sim_path(path, sizeof(path), "xenstored/socket");
    else
        sim_path(path, sizeof(path), "dom%u/xenbus.sock", d->domid);
    setenv("XENSTORED_PATH", path, 1);
    if (d->domid == 0)
        sim_path(path, sizeof(path), "xenstored");
    else
        sim_path(path, sizeof(path), "dom%u", d->domid);
    setenv("XENSTORED_RUNDIR", path, 1);
    /* the local vrpc socket of this domain (agent in a guest, dispatcher in dom0) */
    sim_path(path, sizeof(path), "dom%u/vrpc.sock", d->domid);
    setenv("VRPC_SOCKET", path, 1);
    /* and the dispatcher's control socket, for vrpc-ctl in dom0 */
    if (d->domid == 0) {
        sim_path(path, sizeof(path), "dom0/control.sock");
        setenv("VRPC_CONTROL", path, 1);
    }
    /* vrpc's programs by name (`exec work -- vrpc-call ...`), from a build tree too */
    if (sim_vrpc_path(path, sizeof(path)) == 0)
        prepend_env("PATH", path, ':');
    prepend_env("LD_LIBRARY_PATH", sim_libdir(), ':');
    snprintf(path, sizeof(path), "%s/libvrpcsim-xc.so", sim_libdir());
    prepend_env("LD_PRELOAD", path, ':');
    /* ASan-built programs must tolerate the preload ahead of their runtime */
    prepend_env("ASAN_OPTIONS", "verify_asan_link_order=0", ':');
    execvp(argv[first], argv + first);
    fprintf(stderr, "vrpc-sim: cannot run '%s': %s\n", argv[first], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

static int cmd_destroy(int argc, char **argv)
{
    int first = parse_common(argc, argv, false), r;
    char msg[1024];
    SimTable t;
    SimDomain *d;

    if (first < 0)
        return first == -1 ? 0 : 2;
    if (argc - first != 1)
        return usage_error("destroy needs exactly one DOMAIN");
    if (select_instance() || load_running(&t) < 0)
        return 1;
    d = sim_table_find(&t, argv[first]);
    if (!d)
        return fail("unknown domain '%s'", VRPC_ESC(argv[first]));
    if (d->domid == 0)
        return fail("cannot destroy dom0 (use vrpc-sim down)");
    if (d->state != SIM_DOM_RUNNING)
        return fail("domain '%s' is already destroyed", VRPC_ESC(argv[first]));
    r = sim_control(SIM_MSG_CMD_DESTROY, d->domid, 0, msg, sizeof(msg));
    if (r < 0)
        return fail("destroy failed: %s", msg[0] ? msg : strerror(-r));
    printf("vrpc-sim: %s\n", msg);
    return 0;
}

static int cmd_status(int argc, char **argv)
{
    int first = parse_common(argc, argv, false), r;
    char msg[1024];
    SimTable t;

    if (first < 0)
        return first == -1 ? 0 : 2;
    if (argc != first)
        return usage_error("status takes no operands ('%s')", VRPC_ESC(argv[first]));
    if (select_instance() || load_running(&t) < 0)
        return 1;
    r = sim_control(SIM_MSG_CMD_STATUS, 0, 0, msg, sizeof(msg));
    if (r < 0)
        return fail("status failed: %s", strerror(-r));
    printf("instance %s: up at %s\n", ns, sim_instance_dir());
    printf("%-6s %-20s %-10s %s\n", "DOMID", "NAME", "STATE", "PROCESSES");
    for (unsigned int i = 0; i < t.n; i++) {
        SimDomain *d = &t.dom[i];
        printf("%-6u %-20s %-10s %d\n", d->domid, d->name,
               d->state == SIM_DOM_RUNNING ? "running" : "destroyed",
               d->state == SIM_DOM_RUNNING ? sim_count_instance_procs(d->domid) : 0);
    }
    return 0;
}

static int cmd_down(int argc, char **argv)
{
    int first = parse_common(argc, argv, false), r;
    char msg[256];

    if (first < 0)
        return first == -1 ? 0 : 2;
    if (argc != first)
        return usage_error("down takes no operands ('%s')", VRPC_ESC(argv[first]));
    if (select_instance())
        return 1;
    if (!sim_instance_up()) {
        if (access(sim_instance_dir(), F_OK) == 0) {
            cleanup_stale();
            printf("vrpc-sim: removed the remains of instance '%s'\n", ns);
            return 0;
        }
        return fail("instance '%s' is not running", ns);
    }
    r = sim_control(SIM_MSG_CMD_DOWN, 0, 0, msg, sizeof(msg));
    if (r < 0)
        return fail("down failed: %s", strerror(-r));
    for (int i = 0; i < 1000 && access(sim_instance_dir(), F_OK) == 0; i++)
        usleep(10000);
    if (access(sim_instance_dir(), F_OK) == 0) {
        cleanup_stale();
    }
    printf("vrpc-sim: instance '%s' down\n", ns);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"up", cmd_up},         {"exec", cmd_exec}, {"destroy", cmd_destroy},
        {"status", cmd_status}, {"down", cmd_down},
    };

    ns = getenv("VRPCSIM_NS");
    if (!ns || !*ns)
        ns = "default";
    if (argc < 2)
        return usage_error("missing COMMAND");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vrpc-sim (vrpc) %s\n", VRPC_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "__ports") == 0 && argc == 4) {
        /* debugging aid: dump a domain's event-channel table */
        ns = argv[2];
        if (select_instance())
            return 1;
        SimDomFile *df = sim_domfile((uint32_t)strtoul(argv[3], NULL, 10));
        for (uint32_t p = 1; df && p < SIM_MAX_PORTS; p++) {
            SimPort *sp = &df->ports[p];
            if (atomic_load(&sp->state) != SIM_PORT_FREE)
                printf("port %u state %u flags %#x remote %u:%u virq %u owner %u.%u\n", p,
                       atomic_load(&sp->state), atomic_load(&sp->flags),
                       atomic_load(&sp->remote_dom), atomic_load(&sp->remote_port),
                       atomic_load(&sp->virq), atomic_load(&sp->owner_pid),
                       atomic_load(&sp->owner_serial));
        }
        return df ? 0 : 1;
    }
    if (strcmp(argv[1], "__daemon") == 0 && argc >= 3)
        return sim_daemon_main(argv + 3, (unsigned int)(argc - 3), atoi(argv[2]));
    if (strcmp(argv[1], "__xenbus") == 0 && argc == 4)
        return sim_xenbus_main((uint32_t)strtoul(argv[2], NULL, 10), atoi(argv[3]));
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    if (argv[1][0] == '-')
        return usage_error("unknown option '%s'", VRPC_ESC(argv[1]));
    return usage_error("unknown command '%s'", VRPC_ESC(argv[1]));
}
