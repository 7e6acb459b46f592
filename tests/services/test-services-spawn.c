/* SPDX-License-Identifier: MIT */
/*
 * Starting handlers: argv, the exact environment (VRPC_* of the daemon
 * stripped, VRPCSIM_* kept), no inherited fds, a fresh session and process
 * group, default signals, exit codes and 128+signal, exec failures reported
 * cleanly on both spawn paths, pipes made ahead, the default scheduling policy, user switching, socket services with and
 * without the descriptor, and the pidfd/reap/kill helpers.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "svc-test-util.h"

extern char **environ;

static char *dir;

static void setup(void)
{
    vt_leak_setup();
    dir = svc_tmpdir();
    svc_install_probe(dir, "probe");
}

static void teardown(void)
{
    svc_tmpdir_remove(dir);
    dir = NULL;
    vt_leak_teardown();
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split TEXT into sorted lines (TEXT is modified). */
static char **sorted_lines(char *text, size_t *np)
{
    char **v = NULL;
    size_t n = 0;

    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        v = realloc(v, (n + 1) * sizeof(*v));
        ck_assert_ptr_nonnull(v);
        v[n++] = l;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    *np = n;
    return v;
}

START_TEST(test_argv)
{
    SvcOutput o = svc_run(dir, "probe", "argv", NULL);

    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, "2\nprobe\nargv\n"); /* argv[0] the service, argv[1] the argument */
    svc_output_free(&o);

    o = svc_run(dir, "probe", NULL, NULL);
    ck_assert_str_eq(o.out, "1\nprobe\n"); /* no argument: no argv[1] */
    svc_output_free(&o);

    o = svc_run(dir, "probe", "cwd", NULL);
    ck_assert_str_eq(o.out, "/\n");
    svc_output_free(&o);

    /* A relative services folder still works although the handler starts
     * in "/". */
    ck_assert_int_eq(chdir(dir), 0);
    o = svc_run(".", "probe", "argv", NULL);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, "2\nprobe\nargv\n");
    svc_output_free(&o);
    ck_assert_int_eq(chdir("/"), 0);
}
END_TEST

START_TEST(test_env_exact)
{
    SvcOutput o;
    size_t n_got, n_want = 0;
    char **got, **want, *want_text = NULL;
    size_t want_len = 0;
    FILE *f;

    ck_assert_int_eq(setenv("VRPC_FOO", "leak", 1), 0);
    ck_assert_int_eq(setenv("VRPC_SERVICE_NAME", "spoofed", 1), 0);
    ck_assert_int_eq(setenv("VRPC_", "bare prefix", 1), 0);
    ck_assert_int_eq(setenv("VRPCSIM_X", "kept", 1), 0);
    ck_assert_int_eq(setenv("XVRPC_Y", "kept too", 1), 0);
    o = svc_run(dir, "probe", "env",
                &(VrpcServiceCall){.source = "work", .requested_target = "@default"});
    ck_assert_int_eq(o.exit_code, 0);

    /* The expectation: our environment minus VRPC_*, plus the four. */
    f = open_memstream(&want_text, &want_len);
    ck_assert_ptr_nonnull(f);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "VRPC_", 5) != 0)
            fprintf(f, "%s\n", *e);
    fprintf(f, "VRPC_REMOTE_DOMAIN=work\nVRPC_SERVICE_NAME=probe\n"
               "VRPC_SERVICE_ARGUMENT=env\nVRPC_REQUESTED_TARGET=@default\n");
    fclose(f);
    got = sorted_lines(o.out, &n_got);
    want = sorted_lines(want_text, &n_want);
    ck_assert_uint_eq(n_got, n_want);
    for (size_t i = 0; i < n_got; i++)
        ck_assert_str_eq(got[i], want[i]);
    /* Spot checks of the tricky prefixes, in case the lists agree by accident. */
    ck_assert_ptr_nonnull(
        bsearch(&(const char *){"VRPCSIM_X=kept"}, got, n_got, sizeof(*got), cmp_str));
    ck_assert_ptr_nonnull(
        bsearch(&(const char *){"XVRPC_Y=kept too"}, got, n_got, sizeof(*got), cmp_str));
    ck_assert_ptr_null(
        bsearch(&(const char *){"VRPC_FOO=leak"}, got, n_got, sizeof(*got), cmp_str));
    free(got);
    free(want);
    free(want_text);
    svc_output_free(&o);
}
END_TEST

START_TEST(test_env_base_and_empty_argument)
{
    char *base[] = {"PATH=/usr/bin:/bin", "VRPC_SECRET=x", "VRPCSIM_INSTANCE=abc", NULL};
    VrpcServiceCall call = {.source = "vault", .base_env = base};
    SvcOutput o;

    /* No argument: the probe takes its action from its name, and
     * VRPC_SERVICE_ARGUMENT is empty; no requested target: empty too. */
    svc_install_probe(dir, "probe.env");
    o = svc_run(dir, "probe.env", NULL, &call);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, "PATH=/usr/bin:/bin\nVRPCSIM_INSTANCE=abc\n"
                            "VRPC_REMOTE_DOMAIN=vault\nVRPC_SERVICE_NAME=probe.env\n"
                            "VRPC_SERVICE_ARGUMENT=\nVRPC_REQUESTED_TARGET=\n");
    svc_output_free(&o);
}
END_TEST

START_TEST(test_no_fd_leak)
{
    int leak1 = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    int sv[2];
    SvcOutput o;
    VtLeak *fds = vt_leak_new();

    ck_assert_int_ge(leak1, 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_ge(dup2(leak1, 200), 0);
    vt_leak_fds(fds, "fds", 0, 0);
    o = svc_run(dir, "probe", "fds", NULL);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, "0\n1\n2\n");
    svc_output_free(&o);
    vt_leak_check(fds); /* and nothing leaked in the parent */
    vt_leak_free(fds);
    close(leak1);
    close(200);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Run the probe's "stderr" with 0, 1 and 2 closed in this process (the pipes made then,
 * at the start or, with PREPARE, ahead of it, get those numbers) and check its output. */
static void run_stdio_closed(bool prepare)
{
    int saved[3];
    SvcOutput o;

    for (int i = 0; i < 3; i++) {
        saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
        ck_assert_int_ge(saved[i], 0);
        close(i);
    }
    if (prepare)
        ck_assert_int_eq(vrpc_services_prepare_pipes(), 0);
    o = svc_run(dir, "probe", "stderr", NULL);
    for (int i = 0; i < 3; i++) {
        dup2(saved[i], i);
        close(saved[i]);
    }
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, "to stdout\n");
    ck_assert_str_eq(o.err, "to stderr\n");
    svc_output_free(&o);
}

START_TEST(test_stdio_closed_in_parent)
{
    /* A daemon with 0, 1 and 2 closed: the pipes then get low numbers, which
     * must not clobber each other in the child. */
    run_stdio_closed(false);
}
END_TEST

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    ck_assert_ptr_nonnull(d);
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the listing's own fd */
}

/* Pipes made ahead (vrpc_services_prepare_pipes()): kept as one set of six fds, taken by the
 * next start (whose child still holds only 0, 1 and 2, and whose data flows), and dropped
 * without a trace. Also made while 0, 1 and 2 were closed, so that the spare set holds
 * them: the child's ends must not clobber each other. */
START_TEST(test_prepared_pipes)
{
    static const char data[] = "through prepared pipes\n";
    VtLeak *fds = vt_leak_new();
    int base;
    VrpcService *s;
    VrpcServiceProcess proc;
    SvcOutput o;

    vt_leak_fds(fds, "fds", 0, 0);
    base = count_fds();
    ck_assert_int_eq(vrpc_services_prepare_pipes(), 0);
    ck_assert_int_eq(count_fds(), base + 6);
    ck_assert_int_eq(vrpc_services_prepare_pipes(), 0); /* one set only */
    ck_assert_int_eq(count_fds(), base + 6);
    o = svc_run(dir, "probe", "fds", NULL);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, "0\n1\n2\n");
    svc_output_free(&o);
    ck_assert_int_eq(count_fds(), base); /* the start took the set */

    ck_assert_int_eq(vrpc_services_prepare_pipes(), 0);
    s = svc_resolve_ok(dir, "probe", "cat");
    svc_start_ok(s, NULL, &proc);
    o = svc_finish(&proc, data, sizeof(data) - 1);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, data);
    svc_output_free(&o);
    vrpc_service_free(s);

    ck_assert_int_eq(vrpc_services_prepare_pipes(), 0);
    vrpc_services_drop_pipes();
    vrpc_services_drop_pipes(); /* nothing left to drop */
    ck_assert_int_eq(count_fds(), base);

    run_stdio_closed(true);
    vt_leak_check(fds);
    vt_leak_free(fds);
}
END_TEST

static void on_usr1(int sig)
{
    (void)sig;
}

/* Signals listed ahead (vrpc_services_prepare_signals()): the child resets the ones listed,
 * handled and ignored alike, and a start without a list resets them all. */
START_TEST(test_prepared_signals)
{
    static const char none[] = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n";
    sigset_t block;
    SvcOutput o;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
    signal(SIGHUP, SIG_IGN);
    signal(SIGRTMIN + 3, SIG_IGN);
    signal(SIGUSR1, on_usr1);
    vrpc_services_prepare_signals();
    vrpc_services_prepare_signals(); /* one list only */
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, none);
    svc_output_free(&o);

    /* The list is what the child resets: a disposition changed after it was made stays
     * (hence the rule in vrpc-services.h) ... */
    vrpc_services_prepare_signals();
    signal(SIGQUIT, SIG_IGN);
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_str_eq(o.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000004\n");
    svc_output_free(&o);
    /* ... and the start used it up: the next one, without a list, resets every signal. */
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_str_eq(o.out, none);
    svc_output_free(&o);

    /* A dropped list is not used. */
    signal(SIGQUIT, SIG_DFL);
    vrpc_services_prepare_signals();
    signal(SIGUSR2, SIG_IGN);
    vrpc_services_drop_signals();
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_str_eq(o.out, none);
    svc_output_free(&o);
}
END_TEST

/* A daemon running as SCHED_BATCH (vrpc-dispatcher --sched-batch) starts its handlers with
 * the default policy. */
START_TEST(test_sched_reset)
{
    SvcOutput o;
    char want[16];

    ck_assert_int_eq(sched_setscheduler(0, SCHED_BATCH, &(struct sched_param){0}), 0);
    o = svc_run(dir, "probe", "sched", NULL);
    ck_assert_int_eq(sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0}), 0);
    ck_assert_int_eq(o.exit_code, 0);
    snprintf(want, sizeof want, "%d\n", SCHED_OTHER);
    ck_assert_str_eq(o.out, want);
    svc_output_free(&o);
}
END_TEST

START_TEST(test_stdin_stdout_stderr)
{
    VrpcService *s = svc_resolve_ok(dir, "probe", "cat");
    VrpcServiceProcess proc;
    SvcOutput o;
    static const char data[] = "line one\nline two\n";

    svc_start_ok(s, NULL, &proc);
    ck_assert_int_gt(proc.pid, 0);
    ck_assert(!proc.is_socket);
    for (int i = 0; i < 3; i++) {
        int fd = i == 0 ? proc.stdin_fd : i == 1 ? proc.stdout_fd : proc.stderr_fd;

        ck_assert_int_gt(fd, 2);
        ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    }
    o = svc_finish(&proc, data, sizeof(data) - 1);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_str_eq(o.out, data);
    ck_assert_str_eq(o.err, "");
    svc_output_free(&o);
    vrpc_service_free(s);

    o = svc_run(dir, "probe", "stderr", NULL);
    ck_assert_str_eq(o.out, "to stdout\n");
    ck_assert_str_eq(o.err, "to stderr\n");
    svc_output_free(&o);
}
END_TEST

START_TEST(test_exit_codes)
{
    static const struct {
        const char *arg;
        int code;
    } cases[] = {
        {"exit.0", 0},      {"exit.1", 1},     {"exit.42", 42},   {"exit.255", 255},
        {"signal.15", 143}, {"signal.9", 137}, {"signal.6", 134}, {"signal.13", 141},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SvcOutput o = svc_run(dir, "probe", cases[i].arg, NULL);

        ck_assert_msg(o.exit_code == cases[i].code, "%s: %d, want %d", cases[i].arg, o.exit_code,
                      cases[i].code);
        svc_output_free(&o);
    }
}
END_TEST

START_TEST(test_session_and_signals)
{
    sigset_t block;
    SvcOutput o;
    int pid, pgid, sid;
    VrpcService *s = svc_resolve_ok(dir, "probe", "proc");
    VrpcServiceProcess proc;

    svc_start_ok(s, NULL, &proc);
    o = svc_finish(&proc, NULL, 0);
    ck_assert_int_eq(sscanf(o.out, "%d %d %d", &pid, &pgid, &sid), 3);
    ck_assert_int_eq(pgid, pid); /* its own process group... */
    ck_assert_int_eq(sid, pid);  /* ...and session */
    ck_assert_int_ne(pgid, getpgid(0));
    svc_output_free(&o);
    vrpc_service_free(s);

    /* The daemon blocks and ignores signals; the handler gets neither. */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGTERM);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_str_eq(o.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    svc_output_free(&o);
}
END_TEST

START_TEST(test_kill_group)
{
    VrpcService *s = svc_resolve_ok(dir, "probe", "tree");
    VrpcServiceProcess proc;
    char buf[64] = "";
    struct pollfd p;
    pid_t grandchild;
    int status, pidfd;
    ssize_t n;

    /* Orphans come back to us, so the grandchild can be reaped here. */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    svc_start_ok(s, NULL, &proc);
    pidfd = vrpc_service_pidfd_open(proc.pid);
    ck_assert_int_ge(pidfd, 0);
    ck_assert(fcntl(pidfd, F_GETFD) & FD_CLOEXEC);
    p = (struct pollfd){.fd = proc.stdout_fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    n = read(proc.stdout_fd, buf, sizeof(buf) - 1);
    ck_assert_int_gt(n, 0);
    grandchild = atoi(buf);
    ck_assert_int_gt(grandchild, 0);
    ck_assert_int_eq(vrpc_service_reap(proc.pid, NULL), -EAGAIN); /* still running */

    ck_assert_int_eq(vrpc_service_process_kill(&proc, SIGTERM), 0);
    /* The pidfd turns readable when the handler exits. */
    p = (struct pollfd){.fd = pidfd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    {
        int code = -1;

        ck_assert_int_eq(vrpc_service_reap(proc.pid, &code), 0);
        ck_assert_int_eq(code, 128 + SIGTERM);
    }
    /* The whole tree got the signal, not only the leader. */
    ck_assert_int_eq(waitpid(grandchild, &status, 0), grandchild);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    ck_assert_int_eq(vrpc_service_reap(proc.pid, NULL), -ECHILD);
    ck_assert_int_eq(vrpc_service_process_kill(&proc, SIGTERM), -ESRCH);
    close(pidfd);
    vrpc_service_process_deinit(&proc);
    vrpc_service_free(s);
    ck_assert_int_eq(vrpc_service_process_kill(&(VrpcServiceProcess){.pid = 0}, SIGTERM), -EINVAL);
}
END_TEST

static void check_start_fails(const char *service, const VrpcServiceCall *call, int want,
                              const char *reason)
{
    VrpcService *s = svc_resolve_ok(dir, service, NULL);
    VrpcServiceProcess proc = {.pid = 77, .stdin_fd = 5};
    char err[VRPC_SERVICES_ERROR_MAX] = "";
    VtLeak *fds = vt_leak_new();
    int r;

    vt_leak_fds(fds, "fds", 0, 0);
    r = vrpc_service_start(s, call ? call : &svc_default_call, &proc, err);

    ck_assert_msg(r == want, "%s: %d, want %d (%s)", service, r, want, err);
    ck_assert_msg(strstr(err, reason), "%s: \"%s\" lacks \"%s\"", service, err, reason);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(proc.pid, 0);
    ck_assert_int_eq(proc.stdin_fd, -1);
    ck_assert_int_eq(proc.stdout_fd, -1);
    ck_assert_int_eq(proc.stderr_fd, -1);
    vt_leak_check(fds);
    vt_leak_free(fds);
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* no child left behind */
    ck_assert_int_eq(errno, ECHILD);
    vrpc_service_free(s);
}

START_TEST(test_exec_failure)
{
    svc_write_file(dir, "garbage",
                   "\x7f"
                   "ELF not really\n",
                   0755);
    check_start_fails("garbage", NULL, VRPC_SERVICES_E_EXEC, "Exec format error");
    svc_write_file(dir, "badinterp", "#!/nonexistent/interpreter\n", 0755);
    check_start_fails("badinterp", NULL, VRPC_SERVICES_E_EXEC, "No such file or directory");
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_EXEC), 125);
}
END_TEST

START_TEST(test_bad_call)
{
    VrpcService *s = svc_resolve_ok(dir, "probe", NULL);
    VrpcServiceProcess proc;
    char err[VRPC_SERVICES_ERROR_MAX];

    ck_assert_int_eq(vrpc_service_start(s, &(VrpcServiceCall){.source = NULL}, &proc, err),
                     -EINVAL);
    ck_assert_int_eq(vrpc_service_start(s, &(VrpcServiceCall){.source = "a b"}, &proc, err),
                     -EINVAL);
    ck_assert_int_eq(
        vrpc_service_start(s, &(VrpcServiceCall){.source = "work", .requested_target = "x\ny"},
                           &proc, err),
        -EINVAL);
    /* The requested target has the codec's limit (common/names.h), not a looser one. */
    char long_target[VRPC_NAME_MAX + 2];
    memset(long_target, 'a', VRPC_NAME_MAX + 1);
    long_target[VRPC_NAME_MAX + 1] = 0;
    ck_assert_int_eq(
        vrpc_service_start(s, &(VrpcServiceCall){.source = "work", .requested_target = long_target},
                           &proc, err),
        -EINVAL);
    ck_assert_int_eq(vrpc_service_start(NULL, &svc_default_call, &proc, err), -EINVAL);
    ck_assert_int_eq(vrpc_service_start(s, &svc_default_call, NULL, err), -EINVAL);
    vrpc_service_free(s);
}
END_TEST

/* ---- users ------------------------------------------------------------- */

START_TEST(test_user_switch)
{
    struct passwd *pw = getpwnam("nobody");
    SvcOutput o;
    char *want;

    if (geteuid() != 0 || !pw) {
        fprintf(stderr, "test_user_switch: needs root and user nobody; checked elsewhere\n");
        return;
    }
    /* From the service configuration. */
    svc_write_file(dir, "probe.yaml", "user: nobody\n", 0644);
    o = svc_run(dir, "probe", "ids", NULL);
    ck_assert_int_eq(o.exit_code, 0);
    ck_assert_int_ge(asprintf(&want, "%u %u\n", (unsigned)pw->pw_uid, (unsigned)pw->pw_gid), 0);
    ck_assert_msg(strncmp(o.out, want, strlen(want)) == 0, "got \"%s\"", o.out);
    ck_assert_ptr_nonnull(strstr(o.out, pw->pw_dir)); /* HOME follows the user */
    ck_assert_ptr_null(strstr(o.out, "\n0 "));        /* root's group 0 is not kept */
    svc_output_free(&o);
    /* The forked path keeps the other guarantees too. */
    o = svc_run(dir, "probe", "fds", NULL);
    ck_assert_str_eq(o.out, "0\n1\n2\n");
    svc_output_free(&o);
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_str_eq(o.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    svc_output_free(&o);
    signal(SIGHUP, SIG_IGN); /* and with the signals listed ahead */
    vrpc_services_prepare_signals();
    o = svc_run(dir, "probe", "sigs", NULL);
    ck_assert_str_eq(o.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    svc_output_free(&o);
    o = svc_run(dir, "probe", "signal.15", NULL);
    ck_assert_int_eq(o.exit_code, 143);
    svc_output_free(&o);
    /* The configuration wins over the call's (policy's) user. */
    o = svc_run(dir, "probe", "ids", &(VrpcServiceCall){.source = "work", .user = "root"});
    ck_assert_msg(strncmp(o.out, want, strlen(want)) == 0, "got \"%s\"", o.out);
    svc_output_free(&o);
    /* Without configuration, the call's user applies; root means no switch. */
    {
        char *cfg;

        ck_assert_int_ge(asprintf(&cfg, "%s/probe.yaml", dir), 0);
        ck_assert_int_eq(unlink(cfg), 0);
        free(cfg);
    }
    o = svc_run(dir, "probe", "ids", &(VrpcServiceCall){.source = "work", .user = "nobody"});
    ck_assert_msg(strncmp(o.out, want, strlen(want)) == 0, "got \"%s\"", o.out);
    svc_output_free(&o);
    o = svc_run(dir, "probe", "ids", &(VrpcServiceCall){.source = "work", .user = "root"});
    ck_assert_msg(strncmp(o.out, "0 0\n", 4) == 0, "got \"%s\"", o.out);
    svc_output_free(&o);
    free(want);
}
END_TEST

START_TEST(test_user_errors)
{
    struct passwd *pw = getpwnam("nobody");

    svc_write_file(dir, "probe.yaml", "user: no-such-user-vrpc\n", 0644);
    check_start_fails("probe", NULL, VRPC_SERVICES_E_USER, "no-such-user-vrpc: no such user");
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_USER), 125);
    if (geteuid() != 0 || !pw)
        return;
    /* exec failure on the forked (user-switching) path. */
    svc_write_file(dir, "garbage",
                   "\x7f"
                   "ELF not really\n",
                   0755);
    svc_write_file(dir, "garbage.yaml", "user: nobody\n", 0644);
    check_start_fails("garbage", NULL, VRPC_SERVICES_E_EXEC, "Exec format error");
    /* Not executable by that user (folder closed to others). */
    svc_write_file(dir, "probe.yaml", "user: nobody\n", 0644);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    check_start_fails("probe", NULL, VRPC_SERVICES_E_EXEC, "Permission denied");
    ck_assert_int_eq(chmod(dir, 0755), 0);
    /* Not root: another user is refused clearly (this test runs in its own
     * forked process, so it may drop root for good). */
    {
        char *cfg;

        ck_assert_int_ge(asprintf(&cfg, "%s/probe.yaml", dir), 0);
        ck_assert_int_eq(unlink(cfg), 0);
        free(cfg);
    }
    /* Hand the folder over, so that nobody can also clean it up. */
    ck_assert_int_eq(chown(dir, pw->pw_uid, pw->pw_gid), 0);
    ck_assert_int_eq(setgroups(0, NULL), 0);
    ck_assert_int_eq(setgid(pw->pw_gid), 0);
    ck_assert_int_eq(setuid(pw->pw_uid), 0);
    svc_write_file(dir, "probe.yaml", "user: root\n", 0644);
    check_start_fails("probe", NULL, VRPC_SERVICES_E_USER, "does not run as root");
    /* ...while its own user is fine. */
    svc_write_file(dir, "probe.yaml", "user: nobody\n", 0644);
    {
        SvcOutput o = svc_run(dir, "probe", "ids", NULL);

        ck_assert_int_eq(o.exit_code, 0);
        svc_output_free(&o);
    }
}
END_TEST

/* ---- sockets ----------------------------------------------------------- */

static int listen_at(const char *folder, const char *name, int backlog)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cwd = open(".", O_PATH | O_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    /* Bind by a relative name: FOLDER may be too long for sun_path. */
    ck_assert_int_eq(chdir(folder), 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(fchdir(cwd), 0);
    close(cwd);
    ck_assert_int_eq(listen(fd, backlog), 0);
    return fd;
}

static char *read_all(int fd)
{
    char *buf = calloc(1, 4096);
    size_t len = 0;
    ssize_t n;

    ck_assert_ptr_nonnull(buf);
    while ((n = read(fd, buf + len, 4095 - len)) > 0)
        len += (size_t)n;
    ck_assert_int_eq(n, 0);
    return buf;
}

static void socket_roundtrip(const char *folder, const char *arg, const char *want_first)
{
    int lfd = listen_at(folder, "sock.Svc", 8);
    VrpcService *s = svc_resolve_ok(folder, "sock.Svc", arg);
    VrpcServiceProcess proc;
    SvcOutput o;
    char *got;
    int cfd;

    ck_assert_int_eq(s->kind, VRPC_SERVICE_SOCKET);
    svc_start_ok(s, &(VrpcServiceCall){.source = "work"}, &proc);
    ck_assert(proc.is_socket);
    ck_assert_int_eq(proc.pid, 0);
    ck_assert_int_eq(proc.stderr_fd, -1);
    ck_assert_int_ne(proc.stdin_fd, proc.stdout_fd);
    ck_assert(fcntl(proc.stdin_fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(proc.stdout_fd, F_GETFL) & O_NONBLOCK);
    cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(cfd, 0);
    ck_assert_int_eq(write(cfd, "reply\n", 6), 6);
    ck_assert_int_eq(shutdown(cfd, SHUT_WR), 0);
    /* svc_finish writes "data", then vrpc_service_process_close_stdin() must
     * give the server EOF although stdout_fd keeps the socket open. */
    o = svc_finish(&proc, "data", 4);
    ck_assert_str_eq(o.out, "reply\n");
    ck_assert_int_eq(o.exit_code, -1);
    got = read_all(cfd);
    ck_assert_str_eq(got, want_first);
    free(got);
    svc_output_free(&o);
    close(cfd);
    close(lfd);
    ck_assert_int_eq(unlink(s->path), 0);
    vrpc_service_free(s);
}

START_TEST(test_socket_descriptor)
{
    socket_roundtrip(dir, "arg", "sock.Svc+arg work\ndata");
    socket_roundtrip(dir, NULL, "sock.Svc+ work\ndata");
}
END_TEST

START_TEST(test_socket_skip_descriptor)
{
    svc_write_file(dir, "sock.Svc.yaml", "skip-service-descriptor: true\n", 0644);
    socket_roundtrip(dir, "arg", "data");
}
END_TEST

START_TEST(test_socket_long_path)
{
    /* A folder path longer than sun_path (108 bytes) still works. */
    char *deep;

    ck_assert_int_ge(asprintf(&deep, "%s/%s", dir,
                              "a-rather-long-folder-name-to-push-the-socket-path-beyond-"
                              "the-hundred-and-eight-bytes-of-sun-path"),
                     0);
    ck_assert_int_eq(mkdir(deep, 0755), 0);
    ck_assert_int_gt(strlen(deep) + strlen("/sock.Svc"), 108);
    socket_roundtrip(deep, "x", "sock.Svc+x work\ndata");
    free(deep);
}
END_TEST

START_TEST(test_socket_errors)
{
    int lfd = listen_at(dir, "sock.Svc", 0), n_ok = 0, r = 0;
    VrpcService *s = svc_resolve_ok(dir, "sock.Svc", NULL);
    VrpcServiceProcess procs[64];
    char err[VRPC_SERVICES_ERROR_MAX] = "";

    /* Nobody accepts: the listen queue fills, and then the call is refused
     * at once instead of waiting. */
    for (int i = 0; i < 64; i++) {
        r = vrpc_service_start(s, &svc_default_call, &procs[n_ok], err);
        if (r != 0)
            break;
        n_ok++;
    }
    ck_assert_int_eq(r, VRPC_SERVICES_E_CONNECT);
    ck_assert_ptr_nonnull(strstr(err, "listen queue is full"));
    for (int i = 0; i < n_ok; i++)
        vrpc_service_process_deinit(&procs[i]);
    close(lfd);
    /* The socket file without a listener. */
    r = vrpc_service_start(s, &svc_default_call, &procs[0], err);
    ck_assert_int_eq(r, VRPC_SERVICES_E_CONNECT);
    ck_assert_ptr_nonnull(strstr(err, "Connection refused"));
    ck_assert_int_eq(procs[0].stdin_fd, -1);
    vrpc_service_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("services-spawn");
    TCase *tc = tcase_create("spawn");
    TCase *users = tcase_create("users");
    TCase *sockets = tcase_create("sockets");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_argv);
    tcase_add_test(tc, test_env_exact);
    tcase_add_test(tc, test_env_base_and_empty_argument);
    tcase_add_test(tc, test_no_fd_leak);
    tcase_add_test(tc, test_stdio_closed_in_parent);
    tcase_add_test(tc, test_prepared_pipes);
    tcase_add_test(tc, test_prepared_signals);
    tcase_add_test(tc, test_sched_reset);
    tcase_add_test(tc, test_stdin_stdout_stderr);
    tcase_add_test(tc, test_exit_codes);
    tcase_add_test(tc, test_session_and_signals);
    tcase_add_test(tc, test_kill_group);
    tcase_add_test(tc, test_exec_failure);
    tcase_add_test(tc, test_bad_call);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(users, setup, teardown);
    tcase_add_test(users, test_user_switch);
    tcase_add_test(users, test_user_errors);
    suite_add_tcase(s, users);

    tcase_add_checked_fixture(sockets, setup, teardown);
    tcase_add_test(sockets, test_socket_descriptor);
    tcase_add_test(sockets, test_socket_skip_descriptor);
    tcase_add_test(sockets, test_socket_long_path);
    tcase_add_test(sockets, test_socket_errors);
    suite_add_tcase(s, sockets);
    return svc_run_suite(s);
}
