/* SPDX-License-Identifier: MIT */
/*
 * vtest: process and vrpc-sim helpers for vrpc's Check-based integration
 * tests. Paths of the programs under test come from compile definitions
 * (VRPC_SIM_BIN) so that tests run from any folder.
 */
#include "vtest.h"
#include "leak.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int decode(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int vt_wait(pid_t pid, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    int st;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return decode(st);
        if (r < 0)
            return -1;
        if (now_ms() >= end)
            return -1;
        usleep(2000);
    }
}

/* Children start clean of any instance identity this process took on. */
static void scrub_env(void)
{
    unsetenv("VRPCSIM_INSTANCE");
    unsetenv("VRPCSIM_DOMID");
    unsetenv("XENSTORED_PATH");
    unsetenv("XENSTORED_RUNDIR");
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    if (!p)
        return;
    memcpy(p + *len, data, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
}

VtResult vt_run(const char *const *argv, int timeout_s)
{
    VtResult r = {.status = -1};
    int po[2], pe[2];
    size_t lo = 0, le = 0;
    long long end = now_ms() + (long long)timeout_s * 1000;
    pid_t pid;

    r.out = calloc(1, 1);
    r.err = calloc(1, 1);
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)
        return r;
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        scrub_env();
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    struct pollfd pfd[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0 && now_ms() < end) {
        if (poll(pfd, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char buf[4096];
            ssize_t n;
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            n = read(pfd[i].fd, buf, sizeof(buf));
            if (n > 0) {
                append(i ? &r.err : &r.out, i ? &le : &lo, buf, (size_t)n);
            } else {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    r.status = vt_wait(pid, (int)(end - now_ms() > 0 ? end - now_ms() : 0) + 100);
    if (r.status < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        r.status = -1;
    }
    return r;
}

void vt_result_free(VtResult *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

pid_t vt_spawn(const char *const *argv, const char *logfile)
{
    pid_t pid = fork();

    if (pid == 0) {
        /* CLOEXEC: only the dup2'ed copies reach the program (its fd counts are checked) */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        int log = logfile ? open(logfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : devnull;
        dup2(devnull, 0);
        dup2(log, 1);
        dup2(log, 2);
        scrub_env();
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* The test runner's pid: Check forks each test, the runner outlives them. */
static int run_id(void)
{
    const char *s = getenv("VT_RUN_ID");
    return s && *s ? atoi(s) : (int)getpid();
}

void vt_init(void)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)getpid());
    setenv("VT_RUN_ID", buf, 1);
}

const char *vt_ns(const char *tag)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "t%d-%s", run_id(), tag);
    return buf;
}

void vt_cleanup_instances(void)
{
    char prefix[32];
    const char *root = getenv("VRPCSIM_ROOT");
    struct dirent *de;
    DIR *d = opendir(root && *root ? root : "/dev/shm/vrpc-sim");

    snprintf(prefix, sizeof(prefix), "t%d-", run_id());
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        const char *argv[] = {VRPC_SIM_BIN, "down", "--ns", de->d_name, NULL};
        VtResult r = vt_run(argv, 60);
        vt_result_free(&r);
    }
    if (d)
        closedir(d);
}

const char *vt_instance_dir(const char *ns)
{
    static char buf[512];
    const char *root = getenv("VRPCSIM_ROOT");
    snprintf(buf, sizeof(buf), "%s/%s", root && *root ? root : "/dev/shm/vrpc-sim", ns);
    return buf;
}

void vt_sim_up(const char *ns, const char *const *guests)
{
    const char *argv[64] = {VRPC_SIM_BIN, "up", "--ns", ns};
    int n = 4;
    VtResult r;

    for (; guests && *guests && n < 62; guests++)
        argv[n++] = *guests;
    argv[n] = NULL;
    r = vt_run(argv, 60);
    ck_assert_msg(r.status == 0, "vrpc-sim up failed (%d): %s", r.status, r.err);
    vt_result_free(&r);
}

void vt_sim_up_vrpc(const char *ns, const char *etc, const char *const *guests)
{
    const char *argv[64] = {VRPC_SIM_BIN, "up", "--ns", ns, "--vrpc"};
    int n = 5;
    VtResult r;

    if (etc) {
        argv[n++] = "--etc";
        argv[n++] = etc;
    }
    for (; guests && *guests && n < 62; guests++)
        argv[n++] = *guests;
    argv[n] = NULL;
    r = vt_run(argv, 90);
    ck_assert_msg(r.status == 0, "vrpc-sim up --vrpc failed (%d): %s", r.status, r.err);
    vt_result_free(&r);
}

/* Read up to @size - 1 bytes of /proc/@pid/@what, NUL-terminated; the length or -1. */
static ssize_t read_proc(long pid, const char *what, char *buf, size_t size)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/%s", pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* True if the NUL-separated @env (@n bytes) has the entry @want. */
static bool env_has(const char *env, ssize_t n, const char *want)
{
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(env + off) + 1)
        if (strcmp(env + off, want) == 0)
            return true;
    return false;
}

/* VRPCSIM_DOMID of the NUL-separated @env (@n bytes), or -1. */
static int env_domid(const char *env, ssize_t n)
{
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(env + off) + 1)
        if (strncmp(env + off, "VRPCSIM_DOMID=", 14) == 0)
            return atoi(env + off + 14);
    return -1;
}

int vt_instance_each(const char *ns, void (*fn)(pid_t pid, const char *comm, int domid, void *arg),
                     void *arg)
{
    char want[600];
    struct dirent *de;
    int count = 0;
    DIR *d = opendir("/proc");

    snprintf(want, sizeof(want), "VRPCSIM_INSTANCE=%s", vt_instance_dir(ns));
    while (d && (de = readdir(d))) {
        static char buf[65536];
        char sbuf[512], *end, *open_paren, *close_paren;
        long pid = strtol(de->d_name, &end, 10);
        ssize_t n;
        int domid;

        if (*end || pid <= 1 || pid == getpid())
            continue;
        n = read_proc(pid, "environ", buf, sizeof(buf));
        if (n <= 0 || !env_has(buf, n, want))
            continue;
        domid = env_domid(buf, n);
        /* zombies of our own children are not running processes */
        if (read_proc(pid, "stat", sbuf, sizeof(sbuf)) <= 0)
            continue;
        open_paren = strchr(sbuf, '(');
        close_paren = strrchr(sbuf, ')');
        if (!open_paren || !close_paren || close_paren < open_paren || !close_paren[1] ||
            close_paren[2] == 'Z')
            continue;
        *close_paren = '\0';
        if (fn)
            fn((pid_t)pid, open_paren + 1, domid, arg);
        count++;
    }
    if (d)
        closedir(d);
    return count;
}

int vt_instance_procs(const char *ns)
{
    return vt_instance_each(ns, NULL, NULL);
}

typedef struct FindPid {
    const char *prog;
    int domid;
    pid_t found;
} FindPid;

static void match_daemon(pid_t pid, const char *comm, int domid, void *arg)
{
    static char buf[65536];
    FindPid *f = arg;
    size_t l, pl = strlen(f->prog);

    (void)comm; /* cut at 15 characters: argv[0] is compared instead */
    if (f->found || (f->domid >= 0 && domid != f->domid) ||
        read_proc(pid, "cmdline", buf, sizeof(buf)) <= 0)
        return;
    l = strlen(buf);
    if (l >= pl && strcmp(buf + l - pl, f->prog) == 0)
        f->found = pid;
}

pid_t vt_instance_pid(const char *ns, const char *prog, int domid)
{
    FindPid f = {.prog = prog, .domid = domid};

    vt_instance_each(ns, match_daemon, &f);
    return f.found;
}

void vt_sim_down(const char *ns)
{
    const char *argv[] = {VRPC_SIM_BIN, "down", "--ns", ns, NULL};
    VtResult r = vt_run(argv, 60);
    struct stat st;

    ck_assert_msg(r.status == 0, "vrpc-sim down failed (%d): %s", r.status, r.err);
    vt_result_free(&r);
    ck_assert_msg(stat(vt_instance_dir(ns), &st) < 0 && errno == ENOENT,
                  "instance folder %s left behind", vt_instance_dir(ns));
    /* the daemon removes the folder last, then exits: give it a moment */
    for (long long end = now_ms() + VT_HANG_MS; vt_instance_procs(ns) > 0 && now_ms() < end;)
        usleep(20000);
    ck_assert_int_eq(vt_instance_procs(ns), 0);
}

bool vt_wait_path(const char *path, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    while (access(path, F_OK) != 0) {
        if (now_ms() >= end)
            return false;
        usleep(5000);
    }
    return true;
}

char *vt_read_file(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    char tmp[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        return NULL;
    buf = calloc(1, 1);
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        append(&buf, &len, tmp, (size_t)n);
    close(fd);
    return buf;
}

void vt_wait_vchan_server(const char *ns, const char *path)
{
    char key[256];

    snprintf(key, sizeof(key), "%s/event-channel", path);
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end;) {
        const char *argv[] = {VRPC_SIM_BIN, "exec",          "--ns", ns,  "dom0",
                              "--",         "xenstore-read", key,    NULL};
        VtResult r = vt_run(argv, VT_HANG_S);
        bool ok = r.status == 0;

        vt_result_free(&r);
        if (ok)
            return;
        usleep(25000);
    }
    ck_abort_msg("no vchan server appeared at %s", path);
}

pid_t vt_unix_echo_server(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid;

    ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    unlink(path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    pid = fork();
    if (pid == 0) {
        for (;;) {
            int c = accept(fd, NULL, NULL);
            char buf[65536], flag[300];
            ssize_t n;

            if (c < 0)
                _exit(1);
            snprintf(flag, sizeof(flag), "%s.accepted", path);
            close(open(flag, O_WRONLY | O_CREAT, 0600));
            while ((n = read(c, buf, sizeof(buf))) > 0)
                if (write(c, buf, (size_t)n) != n)
                    break;
            close(c);
        }
    }
    close(fd);
    return pid;
}

int vt_main(const char *suite, const VtCase *cases, size_t n, const char *tmp_prefix)
{
    vt_init();
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create(suite);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        vt_leak_fixture(tc); /* this process's fds and children */
        tcase_add_test(tc, cases[i].test);
        tcase_set_timeout(tc, cases[i].timeout);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    vt_cleanup_instances();
    if (tmp_prefix) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf /tmp/%s%s*", tmp_prefix, vt_ns(""));
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove /tmp/%s%s*\n", tmp_prefix, vt_ns(""));
    }
    return failed ? 1 : 0;
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

void vt_make_etc(char *dir, const char *example_etc, const VtFile *services, size_t n,
                 const char *policy)
{
    char src[1024], sub[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/.", example_etc);
    const char *cp[] = {"cp", "-rL", src, dir, NULL};
    VtResult r = vt_run(cp, 60);
    ck_assert_msg(r.status == 0, "cp: %s", r.err);
    vt_result_free(&r);
    snprintf(sub, sizeof sub, "%s/services", dir);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(services[i].name);
        bool yaml = l > 5 && strcmp(services[i].name + l - 5, ".yaml") == 0;
        write_file(sub, services[i].name, services[i].text, yaml ? 0644 : 0755);
    }
    if (policy) {
        snprintf(sub, sizeof sub, "%s/policy.d", dir);
        write_file(sub, "40-test.yaml", policy, 0644);
    }
}

int vt_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* the listing's own */
}
