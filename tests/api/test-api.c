/* SPDX-License-Identifier: MIT */
/*
 * test-api: tests of libvrpc's public API (vrpc/vrpc.h). In process, without a sim: the
 * service-side descriptor parser over socketpairs, and the caller's errors when no daemon
 * runs or the daemon goes away. Over the emulated host (one sim instance per case, with the
 * real dispatcher and agents): api-probe runs in a guest and makes blocking calls with every
 * exit code, streams megabytes, runs many calls at once on one connection, and calls a
 * socket service that serves several calls from one process. ctest entries api.NAME select
 * a case with CK_RUN_CASE.
 */
#include <check.h>
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
#include <unistd.h>

#include "vrpc/vrpc.h"
#include "leak.h"
#include "vtest.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char g_ns[64];
static char g_etc[256];

static const VtFile test_services[] = {
    {"test.Exit", "#!/bin/sh\nexit \"$1\"\n"},
    {"test.Stderr", "#!/bin/sh\necho out-line\necho err-line >&2\nexit 7\n"},
    {"test.Denied", "#!/bin/sh\necho should-never-run\n"},
    {"test.Sleep", "#!/bin/sh\necho $$\nexec sleep 1000\n"},
    {"test.Bad", "#!/bin/sh\necho should-never-run\n"},
    {"test.Bad.yaml", "timeout: soon\n"},
};

static const char test_policy[] =
    "rules:\n"
    "  - service: test.Denied\n    source: \"*\"\n    target: \"*\"\n    action: deny\n"
    "  - service: \"test.*\"\n    source: \"*\"\n    target: \"*\"\n    action: allow\n"
    "  - service: \"demo.*\"\n    source: \"*\"\n    target: \"*\"\n    action: allow\n";

static void setup(const char *tag)
{
    snprintf(g_ns, sizeof g_ns, "%s", vt_ns(tag));
    snprintf(g_etc, sizeof g_etc, "/tmp/vrpc-api-%s-XXXXXX", g_ns);
    vt_make_etc(g_etc, VRPC_EXAMPLE_ETC_DIR, test_services,
                sizeof test_services / sizeof test_services[0], test_policy);
    vt_sim_up_vrpc(g_ns, g_etc, ARGS("work", "vault"));
}

static void teardown(void)
{
    vt_sim_down(g_ns);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_etc);
    ck_assert_int_eq(system(cmd), 0);
}

/* Run api-probe in domain @dom; returns its stdout (caller frees), asserting exit 0. */
static char *probe(const char *dom, const char *const *args)
{
    const char *argv[32] = {VRPC_SIM_BIN, "exec", "--ns", g_ns, dom, "--", API_PROBE_BIN};
    int n = 7;
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    VtResult r = vt_run(argv, VT_HANG_S * 2);
    ck_assert_msg(r.status == 0, "api-probe %s in %s: status %d, out '%s' err '%s'", argv[7], dom,
                  r.status, r.out, r.err);
    ck_assert_msg(!strstr(r.out, "BAD"), "api-probe: %s", r.out);
    char *out = strdup(r.out);
    vt_result_free(&r);
    return out;
}

/* api-probe buffer: expect exit code @code and stdout @out (NULL: the call failed with @rc). */
static void expect_buffer(const char *dom, const char *target, const char *svc, const char *in,
                          int rc, int code, const char *out)
{
    char want[512];
    if (out)
        snprintf(want, sizeof want, "rc=0 exit=%d len=%zu out=%s\n", code, strlen(out), out);
    else
        snprintf(want, sizeof want, "rc=%d exit=125 len=0 out=(null)\n", rc);
    char *got = probe(dom, in ? ARGS("buffer", target, svc, in) : ARGS("buffer", target, svc));
    ck_assert_msg(strcmp(got, want) == 0, "%s %s: got '%s', want '%s'", target, svc, got, want);
    free(got);
}

static void expect_probe(const char *dom, const char *const *args, const char *want)
{
    char *out = probe(dom, args);
    ck_assert_msg(strcmp(out, want) == 0, "%s: got '%s', want '%s'", args[2], out, want);
    free(out);
}

/* A mkdtemp template named after this run, so that main() removes what a failed case
 * left behind. */
static void temp_template(char *buf, size_t size, const char *what)
{
    snprintf(buf, size, "/tmp/vrpc-api-%s%s-XXXXXX", vt_ns(""), what);
}

/* A Unix socket bound at DIR/s in a new temporary folder @dir (a mkdtemp template),
 * listening if @listening. Returns the fd; the path goes to @path. */
static int temp_socket(char *dir, char *path, size_t size, bool listening)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, size, "%s/s", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

/* ---- in process: no daemon, the daemon goes away --------------------------------------------- */

START_TEST(no_daemon)
{
    char *out = (char *)1;
    size_t len = 99;
    int code = -1;
    setenv("VRPC_SOCKET", "/nonexistent/vrpc/agent.sock", 1);
    ck_assert_str_eq(vrpc_default_socket(), "/nonexistent/vrpc/agent.sock");
    ck_assert_int_eq(vrpc_call_buffer("dom0", "vrpc.Ping", NULL, 0, &out, &len, &code), -ENOENT);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(code, VRPC_EXIT_FRAMEWORK);
    VrpcClient *c = (VrpcClient *)1;
    ck_assert_int_eq(vrpc_client_new(&c, NULL), -ENOENT);
    /* a socket file nobody listens on */
    char path[128], sock[300];
    temp_template(path, sizeof path, "dead");
    close(temp_socket(path, sock, sizeof sock, false));
    setenv("VRPC_SOCKET", sock, 1);
    ck_assert_int_eq(vrpc_call_buffer("dom0", "vrpc.Ping", NULL, 0, &out, &len, &code),
                     -ECONNREFUSED);
    ck_assert_int_eq(code, VRPC_EXIT_FRAMEWORK);
    /* bad names: -EINVAL before any connection */
    ck_assert_int_eq(vrpc_call_buffer("dom0", "bad/name", NULL, 0, &out, &len, &code), -EINVAL);
    ck_assert_int_eq(vrpc_call_buffer("", "vrpc.Ping", NULL, 0, &out, &len, &code), -EINVAL);
    ck_assert(!vrpc_service_valid("bad/name"));
    ck_assert(!vrpc_service_valid(""));
    ck_assert(vrpc_service_valid("demo.Echo+a+b"));
    /* names that can never name a service (docs/services.md): refused here already */
    ck_assert(!vrpc_service_valid(".hidden"));
    ck_assert(!vrpc_service_valid("t.x.yaml"));
    ck_assert(!vrpc_service_valid("t.Arg+cfg.yaml"));
    ck_assert(vrpc_service_valid("t.Arg+.."));
    ck_assert(vrpc_service_valid("t.yaml2+x"));
    ck_assert_int_eq(vrpc_call_buffer("dom0", ".hidden", NULL, 0, &out, &len, &code), -EINVAL);
    ck_assert(!vrpc_target_valid(""));
    ck_assert(vrpc_target_valid("@dispvm:work"));
    unlink(sock);
    rmdir(path);
    unsetenv("VRPC_SOCKET");
}
END_TEST

START_TEST(daemon_lost)
{
    VtLeak *fds = vt_leak_new();
    vt_leak_fds(fds, "fds", 0, 0);
    char dir[128], sock[300];
    temp_template(dir, sizeof dir, "lost");
    int lfd = temp_socket(dir, sock, sizeof sock, true);
    VrpcClient *c;
    ck_assert_int_eq(vrpc_client_new(&c, sock), 0);
    VrpcCall *a, *b;
    ck_assert_int_eq(vrpc_call_open(c, "dom0", "vrpc.Ping", &a), 0);
    ck_assert_int_eq(vrpc_call_open(c, "vault", "demo.Echo", &b), 0);
    ck_assert_int_eq(vrpc_call_open(c, "vault", "bad/name", &b), -EINVAL);
    ck_assert_int_eq(vrpc_call_exit_code(a, &(int){0}), -EAGAIN);
    ck_assert_ptr_null(vrpc_call_reason(a));
    /* the "daemon" accepts and hangs up */
    int cfd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(cfd, 0);
    close(cfd);
    int r = 0;
    for (int i = 0; i < 1000 && r == 0; i++)
        r = vrpc_client_wait(c, VT_HANG_MS);
    ck_assert_int_eq(r, -ENOTCONN);
    int code = -1;
    ck_assert_int_eq(vrpc_call_exit_code(a, &code), 0);
    ck_assert_int_eq(code, VRPC_EXIT_FRAMEWORK);
    ck_assert_msg(strncmp(vrpc_call_reason(a), "connection to the vrpc daemon lost", 34) == 0,
                  "reason '%s'", vrpc_call_reason(a));
    ck_assert_int_eq(vrpc_call_exit_code(b, &code), 0);
    ck_assert_int_eq(code, VRPC_EXIT_FRAMEWORK);
    char buf[8];
    ck_assert_int_eq(vrpc_call_read(b, VRPC_STDOUT, buf, sizeof buf), 0);
    ck_assert_int_eq(vrpc_call_write(b, "x", 1), -ENOTCONN);
    ck_assert_int_eq(vrpc_call_cancel(b, NULL), -EALREADY);
    VrpcCall *d = NULL;
    ck_assert_int_eq(vrpc_call_open(c, "dom0", "vrpc.Ping", &d), -ENOTCONN);
    /* the fd is quiet once the connection is gone, and waiting does not hang */
    struct pollfd p = {.fd = vrpc_client_fd(c), .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    ck_assert_int_eq(vrpc_client_wait(c, -1), -ENOTCONN);
    vrpc_call_free(a);
    vrpc_client_free(c); /* b outlives its client */
    ck_assert_int_eq(vrpc_call_exit_code(b, &code), 0);
    vrpc_call_free(b);
    close(lfd);
    unlink(sock);
    rmdir(dir);
    vt_leak_check(fds);
    vt_leak_free(fds); /* the client's fds went with it */
}
END_TEST

/* ---- in process: the service side's descriptor parser ------------------------------------------- */

/* Feed @text to a socketpair and parse it; returns vrpc_server_call_from_fd()'s result. */
static int parse(const char *text, size_t len, VrpcServerCall **callp, int *peerp)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(write(sv[1], text, len), (ssize_t)len);
    if (!peerp)
        close(sv[1]); /* all there is: EOF behind it */
    int r = vrpc_server_call_from_fd(sv[0], 0, callp);
    if (peerp)
        *peerp = sv[1];
    return r;
}

START_TEST(server_descriptor)
{
    VrpcServerCall *call;
    int peer;
    static const char ok[] = "my.Service+arg+more work\nstdin bytes";
    ck_assert_int_eq(parse(ok, sizeof ok - 1, &call, &peer), 0);
    ck_assert_str_eq(vrpc_server_call_service(call), "my.Service");
    ck_assert_str_eq(vrpc_server_call_untrusted_argument(call), "arg+more");
    ck_assert_str_eq(vrpc_server_call_source(call), "work");
    /* not one byte behind the line was taken */
    char buf[64];
    ck_assert_int_eq(read(vrpc_server_call_fd(call), buf, sizeof buf), 11);
    ck_assert_int_eq(memcmp(buf, "stdin bytes", 11), 0);
    ck_assert_int_eq(write(vrpc_server_call_fd(call), "reply", 5), 5);
    ck_assert_int_eq(read(peer, buf, sizeof buf), 5);
    vrpc_server_call_free(call);
    ck_assert_int_eq(read(peer, buf, sizeof buf), 0); /* freeing ends the call */
    close(peer);

    ck_assert_int_eq(parse("demo.Echo+ dom0\n", 16, &call, NULL), 0);
    ck_assert_str_eq(vrpc_server_call_untrusted_argument(call), "");
    vrpc_server_call_free(call);

    static const char *const bad[] = {
        "demo.Echo work\n",        /* no '+' */
        "demo.Echo+ work extra\n", /* two spaces */
        "demo.Echo+work\n",        /* no source */
        "demo.Echo+ \n",           /* empty source */
        "demo/Echo+ work\n",       /* '/' in the service */
        ".hidden+ work\n",         /* leading dot */
        "demo.Echo+a;b work\n",    /* ';' in the argument */
        "+arg work\n",             /* empty service */
        "demo.Echo+ wo\trk\n",     /* control byte in the source */
        "demo.Echo+ work",         /* EOF before the newline */
        "",                        /* EOF at once */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call = (VrpcServerCall *)1;
        int r = parse(bad[i], strlen(bad[i]), &call, NULL);
        ck_assert_msg(r == -EPROTO, "'%s': %d", bad[i], r);
    }
    /* a NUL inside the line */
    ck_assert_int_eq(parse("demo.Echo+\0 work\n", 17, &call, NULL), -EPROTO);
    /* no newline within the maximum */
    char longline[VRPC_DESCRIPTOR_MAX + 10];
    memset(longline, 'a', sizeof longline);
    ck_assert_int_eq(parse(longline, sizeof longline, &call, NULL), -EPROTO);
    /* nothing yet, and nothing comes within the timeout */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(vrpc_server_call_from_fd(sv[0], 0, &call), -EAGAIN);
    close(sv[1]);
}
END_TEST

START_TEST(server_listen)
{
    VtLeak *fds = vt_leak_new();
    vt_leak_fds(fds, "fds", 0, 0);
    char dir[128];
    temp_template(dir, sizeof dir, "srv");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/my.Service", dir);
    VrpcServer *s;
    ck_assert_int_eq(vrpc_server_listen(&s, path, 0600), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    VrpcServerCall *call;
    ck_assert_int_eq(vrpc_server_accept(s, 0, &call), -EAGAIN);
    VrpcServer *s2;
    ck_assert_int_eq(vrpc_server_listen(&s2, path, 0600), -EADDRINUSE);
    /* that probe connected and left without a descriptor: refused, the server goes on */
    ck_assert_int_eq(vrpc_server_accept(s, VT_HANG_MS, &call), -EPROTO);
    for (int i = 0; i < 3; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        char line[64];
        int n = snprintf(line, sizeof line, "my.Service+%d dom%d\n", i, i);
        ck_assert_int_eq(write(fd, line, (size_t)n), n);
        ck_assert_int_eq(vrpc_server_accept(s, VT_HANG_MS, &call), 0);
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        ck_assert_str_eq(vrpc_server_call_untrusted_argument(call), want);
        vrpc_server_call_free(call);
        close(fd);
    }
    vrpc_server_free(s);
    ck_assert_int_eq(access(path, F_OK), -1); /* removed */
    rmdir(dir);
    vt_leak_check(fds);
    vt_leak_free(fds);
}
END_TEST

/* ---- over the sim ----------------------------------------------------------------------------- */

START_TEST(blocking)
{
    setup("blk");
    expect_buffer("work", "dom0", "vrpc.Ping", NULL, 0, 0, "pong\n");
    expect_buffer("work", "vault", "demo.Uppercase", "hello vault\n", 0, 0, "HELLO VAULT\n");
    expect_buffer("dom0", "work", "demo.Uppercase", "from dom0", 0, 0, "FROM DOM0");
    expect_buffer("dom0", "work", "test.Exit+5", NULL, 0, 5, "");
    expect_buffer("work", "work", "demo.Echo", "loop", 0, 0, "loop");
    /* every exit code: the handler's own, 125, 126, 127 */
    expect_buffer("work", "vault", "test.Exit+42", NULL, 0, 42, "");
    expect_buffer("work", "dom0", "test.Exit+0", NULL, 0, 0, "");
    expect_buffer("work", "dom0", "test.Bad", NULL, 0, 125, "");
    expect_buffer("work", "vault", "test.Denied", NULL, 0, 126, "");
    expect_buffer("work", "nowhere", "vrpc.Ping", NULL, 0, 126, "");
    expect_buffer("work", "vault", "test.Nothing", NULL, 0, 127, "");
    expect_buffer("work", "dom0", "bad/name", NULL, -EINVAL, 0, NULL);
    teardown();
}
END_TEST

START_TEST(streaming)
{
    setup("str");
    /* 6 MiB through demo.Echo in another guest: what comes back is what went in */
    char *out = probe("work", ARGS("stream", "vault", "demo.Echo", "6291456"));
    unsigned long long sum = 0;
    int code = -1;
    size_t n = 0;
    ck_assert_msg(sscanf(out, "exit=%d out=%zu sum=%llx", &code, &n, &sum) == 3, "%s", out);
    ck_assert_int_eq(code, 0);
    ck_assert_uint_eq(n, 6291456);
    free(out);
    /* the same sum as the input (printed by the probe on stderr): run once more capturing both */
    const char *argv[] = {VRPC_SIM_BIN,  "exec",   "--ns", g_ns,        "work",    "--",
                          API_PROBE_BIN, "stream", "dom0", "demo.Echo", "1000000", NULL};
    VtResult r = vt_run(argv, VT_HANG_S * 2);
    ck_assert_int_eq(r.status, 0);
    const char *so = strstr(r.out, "sum="), *si = strstr(r.err, "sum=");
    ck_assert_ptr_nonnull(so);
    ck_assert_ptr_nonnull(si);
    ck_assert_int_eq(strncmp(so, si, 20), 0);
    ck_assert_ptr_nonnull(strstr(r.err, "in=1000000 "));
    vt_result_free(&r);
    /* stdout and stderr apart, the handler's code, no reason */
    out = probe("work", ARGS("stream", "dom0", "test.Stderr", "0"));
    ck_assert_msg(strstr(out, "exit=7 out=9 ") == out, "%s", out);
    ck_assert_msg(strstr(out, " err=err-line/ reason=(none)\n"), "%s", out);
    free(out);
    /* refusals with the reason vrpc-call prints */
    out = probe("work", ARGS("stream", "vault", "test.Denied", "10"));
    ck_assert_msg(strstr(out, "exit=126 out=0 ") == out, "%s", out);
    ck_assert_msg(strstr(out, " reason=test.Denied to vault refused\n"), "%s", out);
    free(out);
    out = probe("work", ARGS("stream", "dom0", "test.Nothing", "10"));
    ck_assert_msg(strstr(out, "exit=127 out=0 ") == out, "%s", out);
    ck_assert_msg(strstr(out, " reason=test.Nothing not found in dom0\n"), "%s", out);
    free(out);
    /* cancelled: 125 with our reason, and the handler is stopped */
    out = probe("work", ARGS("cancel", "vault"));
    int pid = 0;
    char reason[64] = "";
    ck_assert_msg(sscanf(out, "pid=%d exit=125 reason=%63[^\n]", &pid, reason) == 2, "%s", out);
    ck_assert_str_eq(reason, "enough");
    ck_assert_int_gt(pid, 1);
    free(out);
    bool gone = false;
    for (int i = 0; i < VT_HANG_MS / 20 && !gone; i++) {
        gone = kill(pid, 0) < 0 && errno == ESRCH;
        if (!gone)
            usleep(20000);
    }
    ck_assert_msg(gone, "handler %d still runs after the cancel", pid);
    /* vrpc_call_buffer: up to VRPC_CALL_BUFFER_MAX, then -EFBIG */
    expect_probe("work", ARGS("big", "dom0", "3000000"), "rc=0 exit=0 len=3000000\n");
    char big[32];
    snprintf(big, sizeof big, "%zu", VRPC_CALL_BUFFER_MAX + 65536);
    expect_probe("work", ARGS("big", "vault", big), "rc=-27 exit=125 len=0\n");
    /* a handler that exits without reading its stdin: the writer is told, not stuck */
    out = probe("work", ARGS("stream", "vault", "test.Exit+3", "3000000"));
    ck_assert_msg(strstr(out, "exit=3 out=0 ") == out, "%s", out);
    free(out);
    teardown();
}
END_TEST

START_TEST(concurrent)
{
    setup("conc");
    expect_probe("work", ARGS("concurrent", "200", "dom0"), "ok=200 of 200\n");
    expect_probe("work", ARGS("concurrent", "100", "vault"), "ok=100 of 100\n");
    expect_probe("dom0", ARGS("concurrent", "50", "work"), "ok=50 of 50\n");
    /* vrpc_call_buffer from several threads at once (a connection each) */
    expect_probe("work", ARGS("threads", "8", "vault"), "ok=40 of 40\n");
    teardown();
}
END_TEST

START_TEST(socket_server)
{
    setup("srv");
    char path[300], log[320];
    snprintf(path, sizeof path, "%s/services/test.Serve", g_etc);
    snprintf(log, sizeof log, "%s.log", g_etc);
    /* one server process, outside the sim like any dom0 or guest service */
    pid_t srv = vt_spawn(ARGS(API_PROBE_BIN, "serve", path, "3"), log);
    ck_assert_msg(vt_wait_path(path, VT_HANG_MS), "no socket at %s", path);
    expect_buffer("work", "dom0", "test.Serve+x-1", "hello", 0, 0,
                  "src=work svc=test.Serve arg=x-1|HELLO");
    expect_buffer("work", "vault", "test.Serve", "abc", 0, 0, "src=work svc=test.Serve arg=|ABC");
    expect_buffer("dom0", "work", "test.Serve+a+b", NULL, 0, 0, "src=dom0 svc=test.Serve arg=a+b|");
    ck_assert_int_eq(vt_wait(srv, VT_HANG_MS), 0); /* three calls, one process */
    ck_assert_int_eq(access(path, F_OK), -1);
    unlink(log);
    teardown();
}
END_TEST

int main(void)
{
    const VtCase cases[] = {
        {"no_daemon", no_daemon, 600},
        {"daemon_lost", daemon_lost, 600},
        {"server_descriptor", server_descriptor, 600},
        {"server_listen", server_listen, 600},
        {"blocking", blocking, 300},
        {"streaming", streaming, 600},
        {"concurrent", concurrent, 600},
        {"socket_server", socket_server, 300},
    };
    return vt_main("api", cases, sizeof cases / sizeof cases[0], "vrpc-api-");
}
