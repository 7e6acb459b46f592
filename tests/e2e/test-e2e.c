/* SPDX-License-Identifier: MIT */
/*
 * test-e2e: end-to-end tests of vrpc calls over the emulated Xen host. Each test case brings
 * up its own sim instance with `vrpc-sim up --vrpc` (the real vrpc-dispatcher in dom0 and a
 * vrpc-agent in every guest, from a copy of the example configuration plus test services
 * and a test policy), runs vrpc-call in a domain, checks what arrives, and finally checks
 * that no process and no fd of the agent and the dispatcher was left behind. Split into
 * ctest entries e2e.NAME with CK_RUN_CASE.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "leak.h"
#include "vtest.h"

#define RUN_TIMEOUT_MS 300000

/* ---- per-test instance ---------------------------------------------------------------- */

typedef struct Out {
    int status;
    char *out, *err;
    size_t out_len, err_len;
} Out;
static Out run_call(const char *dom, const char *input, const char *const *args);
static void out_free(Out *o);
static int log_count(const char *file, const char *needle);
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char g_ns[64];
static char g_etc[256];
static pid_t g_agent_pid, g_disp_pid;
/* What the test gives back: the dispatcher's fds, the instance's processes, grants and
 * xenstore nodes (g_leak), and the fds of the agent of domain 1 (g_agent_leak, kept across
 * a dispatcher restart; NULL once that agent is gone). */
static VtLeak *g_leak, *g_agent_leak;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Test services: tiny scripts (the framework itself never uses a shell). */
static const VtFile test_services[] = {
    {"test.Exit", "#!/bin/sh\nexit \"$1\"\n"},
    {"test.Signal", "#!/bin/sh\nkill -\"$1\" $$\nsleep 10\n"},
    {"test.Stderr", "#!/bin/sh\necho out-line\necho err-line >&2\nexit 7\n"},
    {"test.Count", "#!/bin/sh\nn=$(wc -c | tr -d ' ')\necho \"count=$n\"\n"},
    {"test.CloseOut",
     "#!/bin/sh\necho early\nexec 1>&-\nn=$(wc -c | tr -d ' ')\necho \"stdin=$n\" >&2\n"
     "exit 3\n"},
    {"test.CloseErr",
     "#!/bin/sh\nexec 2>&-\necho now\nn=$(wc -c | tr -d ' ')\necho \"stdin=$n\"\nexit 4\n"},
    {"test.Linger", "#!/bin/sh\necho hi\nexec 2>&-\nexec 1>&-\nexec sleep 1000\n"},
    {"test.Linger.yaml", "exit-on-service-eof: true\n"},
    {"test.CloseAll",
     "#!/bin/sh\necho early\nexec 1>&- 2>&-\nn=$(wc -c | tr -d ' ')\nexit \"$n\"\n"},
    {"test.Env", "#!/bin/sh\necho \"$VRPC_REMOTE_DOMAIN|$VRPC_SERVICE_NAME|"
                 "$VRPC_SERVICE_ARGUMENT|$VRPC_REQUESTED_TARGET\"\n"},
    /* A call from inside a handler, to the target named by the argument: it must reach
     * the daemon that started the handler (VRPC_SOCKET), whatever socket that listens on. */
    {"test.Nested", "#!/bin/sh\nexec \"$E2E_VRPC_CALL\" \"$1\" test.Env\n"},
    {"test.Sleep", "#!/bin/sh\necho $$\nexec sleep 1000\n"},
    {"test.Denied", "#!/bin/sh\necho should-never-run\n"},
    {"test.Slow", "#!/bin/sh\nexec sleep 1000\n"},
    {"test.Slow.yaml", "timeout: 0.3\n"},
    {"test.Forever", "#!/bin/sh\nexec sleep 1000\n"},
    {"test.Forever.yaml", "exit-on-client-eof: true\n"},
    {"test.Bad", "#!/bin/sh\necho should-never-run\n"},
    {"test.Bad.yaml", "timeout: soon\n"},
};

static const char test_policy[] =
    "rules:\n"
    "  - service: test.Denied\n    source: \"*\"\n    target: \"*\"\n    action: deny\n"
    "  - service: \"demo.*\"\n    source: \"*\"\n    target: \"@default\"\n    action: allow\n"
    "    redirect: \"@adminvm\"\n"
    "  - service: \"test.*\"\n    source: \"*\"\n    target: \"*\"\n    action: allow\n"
    "  - service: \"demo.*\"\n    source: \"*\"\n    target: \"*\"\n    action: allow\n";

/* Take the baselines (the agent's only when @agent; without it the agent's stays, or goes
 * with the agent when g_agent_pid is 0) once they are steady: connections of earlier calls
 * close asynchronously. */
static void settle_baseline(bool agent)
{
    if (agent) {
        vt_leak_free(g_agent_leak);
        g_agent_leak = vt_leak_new();
        vt_leak_fds(g_agent_leak, "agent fds (domain 1)", g_agent_pid, VT_LEAK_SIM_SENDERS);
        vt_leak_settle(g_agent_leak);
    } else if (!g_agent_pid) {
        vt_leak_free(g_agent_leak);
        g_agent_leak = NULL;
    }
    vt_leak_free(g_leak);
    g_leak = vt_leak_new();
    vt_leak_instance(g_leak, g_ns, g_disp_pid);
    vt_leak_settle(g_leak);
}

/* Set by a test before setup(): a line added to dispatcher.yaml, and a policy instead of
 * test_policy (the direct-path tests). */
static const char *g_dispatcher_extra;
static const char *g_policy;

static void setup(const char *tag, const char *const *guests)
{
    snprintf(g_ns, sizeof g_ns, "%s", vt_ns(tag));
    snprintf(g_etc, sizeof g_etc, "/tmp/vrpc-e2e-%s-XXXXXX", g_ns);
    vt_make_etc(g_etc, VRPC_EXAMPLE_ETC_DIR, test_services,
                sizeof test_services / sizeof test_services[0], g_policy ? g_policy : test_policy);
    /* Direct guest<->guest channels close 1 s after their last call instead of 30 s, so a
     * test that made guest->guest calls does not wait out the default at its leak check. */
    if (!g_dispatcher_extra)
        g_dispatcher_extra = "direct-idle-timeout: 1";
    {
        char path[400];
        snprintf(path, sizeof path, "%s/dispatcher.yaml", g_etc);
        FILE *f = fopen(path, "a");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "\n%s\n", g_dispatcher_extra);
        fclose(f);
    }

    vt_sim_up_vrpc(g_ns, g_etc, guests);
    /* One call first: the daemons finish setting up their links (lazily opened fds)
     * before the baseline is taken. */
    Out o = run_call("work", NULL, ARGS("dom0", "vrpc.Ping"));
    ck_assert_msg(o.status == 0, "warm-up call: %d %s", o.status, o.err);
    out_free(&o);
    g_agent_pid = vt_instance_pid(g_ns, "vrpc-agent", 1);
    g_disp_pid = vt_instance_pid(g_ns, "vrpc-dispatcher", -1);
    ck_assert_msg(g_agent_pid > 0 && g_disp_pid > 0, "daemons not found");
    settle_baseline(true);
    if (getenv("E2E_DEBUG")) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "ls -l /proc/%d/fd /proc/%d/fd >&2", (int)g_agent_pid,
                 (int)g_disp_pid);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot list fds\n");
    }
}

/* Nothing left behind: same processes in the instance, same fds in the agent of domain 1
 * and in the dispatcher, same grants per domain and same xenstore nodes (waiting for
 * asynchronous clean-up to finish). Then down. */
static void teardown_check(void)
{
    if (g_agent_leak)
        vt_leak_check(g_agent_leak);
    vt_leak_check(g_leak);
    vt_leak_free(g_agent_leak);
    vt_leak_free(g_leak);
    g_agent_leak = g_leak = NULL;
    vt_sim_down(g_ns);
    const char *rm[] = {"rm", "-rf", g_etc, NULL};
    VtResult r = vt_run(rm, 60);
    vt_result_free(&r);
}

/* ---- running vrpc-call in a domain --------------------------------------------------------- */

typedef struct Call {
    pid_t pid;
    int in, out, err; /* our ends; -1 when not piped */
} Call;

/* Start `vrpc-sim exec --ns NS DOM -- vrpc-call ARGS...`. @in_fd/@out_fd >= 0: use that fd
 * as the child's stdin/stdout instead of a pipe. */
static Call call_start(const char *dom, int in_fd, int out_fd, const char *const *args)
{
    const char *argv[32] = {VRPC_SIM_BIN, "exec", "--ns", g_ns, dom, "--", VRPC_CALL_BIN};
    int n = 7;
    for (; *args && n < 30; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    int pi[2] = {-1, -1}, po[2] = {-1, -1}, pe[2];
    if (in_fd < 0)
        ck_assert_int_eq(pipe2(pi, O_CLOEXEC), 0);
    if (out_fd < 0)
        ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(in_fd >= 0 ? in_fd : pi[0], 0);
        dup2(out_fd >= 0 ? out_fd : po[1], 1);
        dup2(pe[1], 2);
        unsetenv("VRPCSIM_INSTANCE");
        unsetenv("VRPCSIM_DOMID");
        unsetenv("XENSTORED_PATH");
        unsetenv("VRPC_SOCKET");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    Call c = {.pid = pid, .in = pi[1], .out = po[0], .err = pe[0]};
    if (pi[0] >= 0)
        close(pi[0]);
    if (po[1] >= 0)
        close(po[1]);
    close(pe[1]);
    return c;
}

static int wait_status(pid_t pid)
{
    int st = vt_wait(pid, RUN_TIMEOUT_MS);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return st;
}

static void append(char **buf, size_t *len, const void *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p + *len, data, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
}

/* Feed @input (then EOF) and collect stdout and stderr until both close. */
static Out call_finish(Call c, const void *input, size_t in_len)
{
    Out o = {.out = calloc(1, 1), .err = calloc(1, 1)};
    size_t in_off = 0;
    if (c.in >= 0 && in_len == 0) {
        close(c.in);
        c.in = -1;
    }
    if (c.in >= 0)
        fcntl(c.in, F_SETFL, O_NONBLOCK);
    long long end = now_ms() + RUN_TIMEOUT_MS;
    while ((c.in >= 0 || c.out >= 0 || c.err >= 0) && now_ms() < end) {
        struct pollfd p[3] = {{.fd = c.in, .events = POLLOUT},
                              {.fd = c.out, .events = POLLIN},
                              {.fd = c.err, .events = POLLIN}};
        if (poll(p, 3, 200) <= 0)
            continue;
        if (c.in >= 0 && p[0].revents) {
            ssize_t n = write(c.in, (const char *)input + in_off, in_len - in_off);
            if (n > 0)
                in_off += (size_t)n;
            if ((n < 0 && errno != EAGAIN) || in_off == in_len) {
                close(c.in);
                c.in = -1;
            }
        }
        for (int i = 1; i < 3; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[65536];
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                append(i == 1 ? &o.out : &o.err, i == 1 ? &o.out_len : &o.err_len, buf, (size_t)n);
            } else {
                close(p[i].fd);
                if (i == 1)
                    c.out = -1;
                else
                    c.err = -1;
            }
        }
    }
    if (c.in >= 0)
        close(c.in);
    if (c.out >= 0)
        close(c.out);
    if (c.err >= 0)
        close(c.err);
    o.status = wait_status(c.pid);
    return o;
}

static Out run_call(const char *dom, const char *input, const char *const *args)
{
    Call c = call_start(dom, -1, -1, args);
    return call_finish(c, input, input ? strlen(input) : 0);
}

static void out_free(Out *o)
{
    free(o->out);
    free(o->err);
}

/* Run a call and check its status and (unless @out is NULL) its whole stdout. */
static void expect_call(const char *dom, const char *input, const char *const *args, int status,
                        const char *out)
{
    Out o = run_call(dom, input, args);
    ck_assert_msg(o.status == status, "%s %s %s: status %d, expected %d (stderr: %s)", dom, args[0],
                  args[1] ? args[1] : "", o.status, status, o.err);
    if (out)
        ck_assert_str_eq(o.out, out);
    out_free(&o);
}

/* ---- deterministic data -------------------------------------------------------------------- */

static void prng_fill(uint64_t *state, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(buf + i, &x, n);
    }
}

/* Write a file of @len pseudo-random bytes from @seed. */
static void make_data_file(const char *path, uint64_t seed, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    static uint8_t buf[1 << 16];
    uint64_t st = seed;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof buf ? len - done : sizeof buf;
        prng_fill(&st, buf, n);
        ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
        done += n;
    }
    close(fd);
}

/*
 * Stream @total pseudo-random bytes through demo.Echo from @dom to @target, generated and
 * checked on the fly (a child process writes, we read and compare byte for byte and keep
 * an FNV-1a checksum of both sides). Returns vrpc-call's exit status.
 */
static int stream_echo(const char *dom, const char *target, uint64_t total, uint64_t seed)
{
    Call c = call_start(dom, -1, -1, ARGS(target, "demo.Echo"));
    pid_t feeder = fork();
    ck_assert_int_ge(feeder, 0);
    if (feeder == 0) {
        close(c.out);
        close(c.err);
        static uint8_t buf[1 << 16];
        uint64_t st = seed;
        for (uint64_t done = 0; done < total;) {
            size_t n = total - done < sizeof buf ? (size_t)(total - done) : sizeof buf;
            prng_fill(&st, buf, n);
            for (size_t off = 0; off < n;) {
                ssize_t w = write(c.in, buf + off, n - off);
                if (w <= 0)
                    _exit(1);
                off += (size_t)w;
            }
            done += n;
        }
        _exit(0);
    }
    close(c.in);
    static uint8_t got[1 << 16], want[1 << 16];
    uint64_t st = seed, done = 0, h_in = 1469598103934665603ull, h_out = h_in;
    size_t want_len = 0, want_off = 0;
    bool same = true;
    for (;;) {
        ssize_t n = read(c.out, got, sizeof got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (want_off == want_len) {
                want_len = total - done - (uint64_t)i < sizeof want
                               ? (size_t)(total - done - (uint64_t)i)
                               : sizeof want;
                if (want_len == 0) {
                    same = false; /* more than was sent */
                    break;
                }
                prng_fill(&st, want, want_len);
                want_off = 0;
            }
            h_in = (h_in ^ want[want_off]) * 1099511628211ull;
            h_out = (h_out ^ got[i]) * 1099511628211ull;
            if (got[i] != want[want_off++])
                same = false;
        }
        done += (uint64_t)n;
        if (!same)
            break;
    }
    close(c.out);
    char err[4096];
    ssize_t en = read(c.err, err, sizeof err - 1);
    err[en > 0 ? en : 0] = '\0';
    close(c.err);
    int fst = wait_status(feeder);
    int st_call = wait_status(c.pid);
    ck_assert_msg(same, "data differs at byte %llu", (unsigned long long)done);
    ck_assert_msg(done == total, "got %llu of %llu bytes (stderr: %s)", (unsigned long long)done,
                  (unsigned long long)total, err);
    ck_assert_msg(h_in == h_out, "checksums differ");
    ck_assert_int_eq(fst, 0);
    fprintf(stderr, "streamed %llu bytes %s -> %s, fnv1a %016llx\n", (unsigned long long)total, dom,
            target, (unsigned long long)h_out);
    return st_call;
}

/* ---- tests --------------------------------------------------------------------------------- */

START_TEST(guest_to_dom0)
{
    setup("g2d", ARGS("work", "vault"));
    Out o = run_call("work", "hello from work\n", ARGS("dom0", "demo.Uppercase"));
    ck_assert_int_eq(o.status, 0);
    ck_assert_str_eq(o.out, "HELLO FROM WORK\n");
    ck_assert_str_eq(o.err, "");
    out_free(&o);
    expect_call("work", NULL, ARGS("dom0", "test.Env+arg-1"), 0, "work|test.Env|arg-1|dom0\n");
    /* @default goes to dom0 through the example policy's redirect */
    expect_call("work", "x\n", ARGS("@default", "demo.Uppercase"), 0, "X\n");
    teardown_check();
}
END_TEST

START_TEST(dom0_to_guest)
{
    setup("d2g", ARGS("work", "vault"));
    expect_call("dom0", "abc\n", ARGS("work", "demo.Uppercase"), 0, "ABC\n");
    expect_call("dom0", NULL, ARGS("work", "test.Env"), 0, "dom0|test.Env||work\n");
    teardown_check();
}
END_TEST

START_TEST(guest_to_guest)
{
    setup("g2g", ARGS("work", "vault"));
    expect_call("work", "to vault\n", ARGS("vault", "demo.Uppercase"), 0, "TO VAULT\n");
    expect_call("work", NULL, ARGS("vault", "test.Env+a+b"), 0, "work|test.Env|a+b|vault\n");
    expect_call("vault", NULL, ARGS("work", "test.Env"), 0, "vault|test.Env||work\n");
    /* handlers calling out: through vault's agent, and through the dispatcher in dom0 */
    expect_call("work", NULL, ARGS("vault", "test.Nested+dom0"), 0, "vault|test.Env||dom0\n");
    expect_call("work", NULL, ARGS("dom0", "test.Nested+vault"), 0, "dom0|test.Env||vault\n");
    teardown_check();
}
END_TEST

START_TEST(loopback)
{
    setup("loop", ARGS("work"));
    expect_call("work", "myself\n", ARGS("work", "demo.Uppercase"), 0, "MYSELF\n");
    expect_call("work", NULL, ARGS("work", "test.Env"), 0, "work|test.Env||work\n");
    teardown_check();
}
END_TEST

START_TEST(not_found_and_refused)
{
    setup("nf", ARGS("work", "vault"));
    const char *targets[] = {"dom0", "vault", "work"};
    for (int i = 0; i < 3; i++) {
        Out o = run_call("work", NULL, ARGS(targets[i], "test.Nothing"));
        ck_assert_msg(o.status == 127, "%s: status %d (%s)", targets[i], o.status, o.err);
        ck_assert_str_eq(o.out, "");
        /* the service and the domain are named, as in a refusal */
        char nf[128];
        snprintf(nf, sizeof nf, "vrpc-call: test.Nothing not found in %s\n", targets[i]);
        ck_assert_msg(strcmp(o.err, nf) == 0, "%s: stderr '%s'", targets[i], o.err);
        out_free(&o);
        /* denied by policy although it exists: 126, and the handler never runs */
        o = run_call("work", NULL, ARGS(targets[i], "test.Denied"));
        ck_assert_msg(o.status == 126, "%s: status %d", targets[i], o.status);
        ck_assert_str_eq(o.out, "");
        char want[128];
        snprintf(want, sizeof want, "vrpc-call: test.Denied to %s refused\n", targets[i]);
        ck_assert_msg(strcmp(o.err, want) == 0, "%s: stderr '%s'", targets[i], o.err);
        out_free(&o);
    }
    /* usage errors: exit 2 */
    expect_call("work", NULL, ARGS("dom0", "bad/name"), 2, NULL);
    expect_call("work", NULL, ARGS("dom0"), 2, NULL);
    teardown_check();
}
END_TEST

START_TEST(exit_codes_and_signals)
{
    setup("exit", ARGS("work", "vault"));
    const char *targets[] = {"dom0", "vault"};
    for (int t = 0; t < 2; t++) {
        static const char *codes[] = {"0", "1", "42", "255"};
        for (int i = 0; i < 4; i++) {
            char svc[64];
            snprintf(svc, sizeof svc, "test.Exit+%s", codes[i]);
            Out o = run_call("work", NULL, ARGS(targets[t], svc));
            ck_assert_msg(o.status == atoi(codes[i]), "%s %s: %d (%s)", targets[t], svc, o.status,
                          o.err);
            out_free(&o);
        }
        static const int sigs[] = {SIGKILL, SIGTERM, SIGSEGV};
        for (int i = 0; i < 3; i++) {
            char svc[64];
            snprintf(svc, sizeof svc, "test.Signal+%d", sigs[i]);
            Out o = run_call("work", NULL, ARGS(targets[t], svc));
            ck_assert_msg(o.status == 128 + sigs[i], "%s %s: %d (%s)", targets[t], svc, o.status,
                          o.err);
            out_free(&o);
        }
    }
    teardown_check();
}
END_TEST

/* Read @fd (blocking) to EOF into @buf, NUL-terminated, at most @size - 1 bytes. */
static void read_to_eof(int fd, char *buf, size_t size)
{
    size_t got = 0;

    for (;;) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
}

/* Read exactly @len bytes of @fd (blocking) into @buf, NUL-terminated. */
static void read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    buf[got] = '\0';
}

START_TEST(stdin_eof_semantics)
{
    setup("eof", ARGS("work", "vault"));
    const char *targets[] = {"dom0", "vault"};
    for (int t = 0; t < 2; t++) {
        /* caller -> handler: our EOF reaches the handler, which answers after it */
        expect_call("work", "0123456789", ARGS(targets[t], "test.Count"), 0, "count=10\n");
        /* empty stdin: EOF at once */
        expect_call("work", NULL, ARGS(targets[t], "test.Count"), 0, "count=0\n");
        /* handler -> caller: the handler closes its stdout early; the caller sees EOF on
         * stdout, the call goes on (stdin still flows), stderr and the status follow */
        Call c = call_start("work", -1, -1, ARGS(targets[t], "test.CloseOut"));
        char buf[64];
        read_to_eof(c.out, buf, sizeof buf);
        ck_assert_str_eq(buf, "early\n"); /* stdout reached EOF before stdin was sent */
        Out o = call_finish(c, "abcdefgh", 8);
        ck_assert_int_eq(o.status, 3);
        ck_assert_str_eq(o.err, "stdin=8\n");
        out_free(&o);
        /* stderr closed while the handler goes on: stdout, not watched while stderr's EOF
         * waits for the exit (services/handler.c), still delivers what it writes then and
         * later; "now" arrives before stdin was sent */
        c = call_start("work", -1, -1, ARGS(targets[t], "test.CloseErr"));
        read_exact(c.out, buf, 4);
        ck_assert_str_eq(buf, "now\n");
        o = call_finish(c, "abcdefgh", 8);
        ck_assert_int_eq(o.status, 4);
        ck_assert_str_eq(o.out, "stdin=8\n");
        ck_assert_str_eq(o.err, "");
        out_free(&o);
        /* exit-on-service-eof: stdout's EOF ends the call at once (code 0, the handler group
         * gets SIGTERM), also when stderr closed first and its EOF waits for the exit */
        expect_call("work", NULL, ARGS(targets[t], "test.Linger"), 0, "hi\n");
        /* both outputs closed while the handler goes on: an EOF held for the exit
         * (services/handler.c, EXIT_WAIT_MS) must not wait for the exit itself */
        c = call_start("work", -1, -1, ARGS(targets[t], "test.CloseAll"));
        read_to_eof(c.out, buf, sizeof buf);
        ck_assert_str_eq(buf, "early\n"); /* EOF before stdin was sent, the handler runs on */
        o = call_finish(c, "abcdefgh", 8);
        ck_assert_int_eq(o.status, 8);
        out_free(&o);
    }
    teardown_check();
}
END_TEST

START_TEST(stderr_separate)
{
    setup("stderr", ARGS("work", "vault"));
    const char *targets[] = {"dom0", "vault", "work"};
    for (int t = 0; t < 3; t++) {
        Out o = run_call("work", NULL, ARGS(targets[t], "test.Stderr"));
        ck_assert_int_eq(o.status, 7);
        ck_assert_str_eq(o.out, "out-line\n");
        ck_assert_str_eq(o.err, "err-line\n");
        out_free(&o);
    }
    /* dom0 -> guest as well */
    Out o = run_call("dom0", NULL, ARGS("work", "test.Stderr"));
    ck_assert_int_eq(o.status, 7);
    ck_assert_str_eq(o.out, "out-line\n");
    ck_assert_str_eq(o.err, "err-line\n");
    out_free(&o);
    teardown_check();
}
END_TEST

START_TEST(gib_checksummed)
{
    setup("gib", ARGS("work", "vault"));
    ck_assert_int_eq(stream_echo("work", "dom0", 1ull << 30, 0x9e3779b97f4a7c15ull), 0);
    ck_assert_int_eq(stream_echo("work", "vault", 1ull << 30, 0x243f6a8885a308d3ull), 0);
    teardown_check();
}
END_TEST

/* Binary-safe: every byte value, NULs and newlines included, both directions of a relay. */
START_TEST(binary_small)
{
    setup("bin", ARGS("work", "vault"));
    ck_assert_int_eq(stream_echo("work", "dom0", 4 << 20, 7), 0);
    ck_assert_int_eq(stream_echo("dom0", "vault", 4 << 20, 8), 0);
    ck_assert_int_eq(stream_echo("work", "work", 4 << 20, 9), 0);
    teardown_check();
}
END_TEST

/* The number after "@field " in the line of `vrpc-ctl status` that starts with @line (a
 * guest's "guest NAME ", or "total guests"), or -1. */
static long ctl_status_value(const char *line, const char *field)
{
    char control[600], key[64];
    snprintf(control, sizeof control, "%s/dom0/control.sock", vt_instance_dir(g_ns));
    const char *argv[] = {VRPC_SIM_BIN, "exec",      "--ns",  g_ns,     "dom0", "--",
                          VRPC_CTL_BIN, "--control", control, "status", NULL};
    VtResult r = vt_run(argv, VT_HANG_S);
    long n = -1;
    snprintf(key, sizeof key, "%s ", field);
    const char *t = strstr(r.out, line);
    const char *k = t ? strstr(t, key) : NULL;
    if (k)
        n = atol(k + strlen(key));
    vt_result_free(&r);
    return n;
}

/* calls-total of guest @name, or -1. */
static long ctl_calls_total(const char *name)
{
    char line[80];
    snprintf(line, sizeof line, "guest %s ", name);
    return ctl_status_value(line, "calls-total");
}

static int ctl_in_flight(void)
{
    return (int)ctl_status_value("total guests", "calls-in-flight");
}

START_TEST(concurrent_200)
{
    enum { N = 200 };
    setup("conc", ARGS("work", "vault"));
    static Call calls[N];
    for (int i = 0; i < N; i++) {
        calls[i] = call_start("work", -1, -1, ARGS(i % 2 ? "vault" : "dom0", "demo.Echo"));
        char line[64];
        int n = snprintf(line, sizeof line, "call %d\n", i);
        ck_assert_int_eq(write(calls[i].in, line, (size_t)n), n);
    }
    /* Every call is open at once: stdin is still open on all of them. */
    int inflight = -1;
    for (long long end = now_ms() + 120000; now_ms() < end; usleep(100000)) {
        inflight = ctl_in_flight();
        if (inflight >= N)
            break;
    }
    ck_assert_msg(inflight >= N, "calls in flight: %d", inflight);
    for (int i = 0; i < N; i++) {
        char line[64];
        snprintf(line, sizeof line, "call %d\n", i);
        Out o = call_finish(calls[i], NULL, 0);
        ck_assert_msg(o.status == 0, "call %d: %d %s", i, o.status, o.err);
        ck_assert_str_eq(o.out, line);
        out_free(&o);
    }
    teardown_check();
}
END_TEST

START_TEST(slow_reader)
{
    setup("slow", ARGS("work", "vault"));
    char slow_in[300], fast_in[300];
    snprintf(slow_in, sizeof slow_in, "%s.slow", g_etc);
    snprintf(fast_in, sizeof fast_in, "%s.fast", g_etc);
    const size_t slow_len = 32u << 20, fast_len = 256u << 20;
    make_data_file(slow_in, 11, slow_len);
    /* The slow call: nobody reads its stdout until the fast call is done. */
    int sfd = open(slow_in, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    Call slow = call_start("work", sfd, -1, ARGS("dom0", "demo.Echo"));
    close(sfd);
    /* Let the slow call fill every buffer on its way. */
    for (long long end = now_ms() + 60000; now_ms() < end; usleep(50000)) {
        struct pollfd p = {.fd = slow.out, .events = POLLIN};
        if (poll(&p, 1, 0) == 1)
            break;
    }
    /* Meanwhile a call from the same guest (same vchan) streams at full speed. */
    ck_assert_int_eq(stream_echo("work", "dom0", fast_len, 12), 0);
    (void)fast_in;
    ck_assert_msg(waitpid(slow.pid, NULL, WNOHANG) == 0, "the slow call ended early");
    /* Now read the slow call: everything arrives, intact. */
    int fd = open(slow_in, O_RDONLY | O_CLOEXEC);
    static uint8_t a[1 << 16], b[1 << 16];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(slow.out, a, sizeof a);
        if (n <= 0)
            break;
        ck_assert_int_eq(read(fd, b, (size_t)n), n);
        ck_assert_msg(memcmp(a, b, (size_t)n) == 0, "slow call data differs near %zu", got);
        got += (size_t)n;
    }
    close(fd);
    close(slow.out);
    close(slow.err);
    ck_assert_int_eq(got, slow_len);
    ck_assert_int_eq(wait_status(slow.pid), 0);
    unlink(slow_in);
    teardown_check();
}
END_TEST

START_TEST(handler_killed)
{
    setup("kill", ARGS("work", "vault"));
    const char *targets[] = {"dom0", "vault"};
    for (int t = 0; t < 2; t++) {
        Call c = call_start("work", -1, -1, ARGS(targets[t], "test.Sleep"));
        char buf[32];
        size_t got = 0;
        while (got < sizeof buf - 1) {
            ssize_t n = read(c.out, buf + got, 1);
            if (n <= 0 || buf[got] == '\n')
                break;
            got++;
        }
        buf[got] = '\0';
        pid_t hp = (pid_t)atoi(buf);
        ck_assert_msg(hp > 1, "no handler pid: '%s'", buf);
        ck_assert_int_eq(kill(hp, SIGKILL), 0);
        Out o = call_finish(c, NULL, 0);
        ck_assert_msg(o.status == 128 + SIGKILL, "%s: status %d (%s)", targets[t], o.status, o.err);
        out_free(&o);
    }
    /* the caller going away kills the handler too */
    Call c = call_start("work", -1, -1, ARGS("vault", "test.Sleep"));
    char buf[32] = "";
    ssize_t n = read(c.out, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    pid_t hp = (pid_t)atoi(buf);
    kill(c.pid, SIGKILL);
    wait_status(c.pid);
    close(c.in);
    close(c.out);
    close(c.err);
    bool gone = false;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && !gone; usleep(50000))
        gone = kill(hp, 0) < 0 && errno == ESRCH;
    ck_assert_msg(gone, "handler %d still running after its caller died", (int)hp);
    teardown_check();
}
END_TEST

START_TEST(agent_clean_exit)
{
    setup("aexit", ARGS("work"));
    expect_call("work", "x", ARGS("dom0", "demo.Echo"), 0, NULL);
    teardown_check(); /* also checks fds before the agent goes */
    /* (vrpc-sim down sends SIGTERM; vt_sim_down checks nothing is left) */
}
END_TEST

static int audit_count(const char *service, const char *needle);
static int audit_wait(const char *service, const char *needle, int expect);

START_TEST(service_config)
{
    setup("svccfg", ARGS("work", "vault"));
    const char *targets[] = {"dom0", "vault"};
    for (int t = 0; t < 2; t++) {
        /* timeout: the handler group is killed, the call fails with 125 and a reason */
        Out o = run_call("work", NULL, ARGS(targets[t], "test.Slow"));
        ck_assert_msg(o.status == 125, "%s: %d %s", targets[t], o.status, o.err);
        ck_assert_msg(strstr(o.err, "vrpc-call: test.Slow timed out after 0.3 s"), "%s: '%s'",
                      targets[t], o.err);
        out_free(&o);
        /* the audit says why: in dom0 the end is a timeout; a guest's agent timed it out
         * and gave its 125 (on the relay with its words: "target: vrpc: ... timed out") */
        if (t == 0) {
            ck_assert_int_eq(audit_wait("test.Slow", "\"reason\":\"the service timed out\"", 1), 1);
        } else {
            ck_assert_int_eq(audit_wait("test.Slow", "\"resolved_target\":\"vault\"", 1), 1);
            ck_assert_int_eq(audit_count("test.Slow", "\"exit\":125"), 2);
        }
        /* exit-on-client-eof: our EOF ends the call although the handler never exits */
        o = run_call("work", "bye", ARGS(targets[t], "test.Forever"));
        ck_assert_msg(o.status == 0, "%s: %d %s", targets[t], o.status, o.err);
        out_free(&o);
        /* a bad configuration refuses the call with the file's name, never hangs */
        o = run_call("work", NULL, ARGS(targets[t], "test.Bad"));
        ck_assert_msg(o.status == 125, "%s: %d %s", targets[t], o.status, o.err);
        ck_assert_msg(strstr(o.err, "test.Bad.yaml:1:"), "%s: '%s'", targets[t], o.err);
        ck_assert_str_eq(o.out, "");
        out_free(&o);
    }
    teardown_check();
}
END_TEST

START_TEST(call_cli)
{
    setup("cli", ARGS("work", "vault"));
    Out o = run_call("work", NULL, ARGS("--help"));
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, "Usage: vrpc-call"));
    out_free(&o);
    expect_call("work", NULL, ARGS("--version"), 0, NULL);
    expect_call("work", NULL, ARGS("--bogus", "dom0", "demo.Echo"), 2, NULL);
    expect_call("work", NULL, ARGS("--timeout", "-1", "dom0", "demo.Echo"), 2, NULL);
    /* no daemon there: 125 at once, with a reason */
    o = run_call("work", NULL, ARGS("--socket", "/nonexistent/vrpc.sock", "dom0", "demo.Echo"));
    ck_assert_int_eq(o.status, 125);
    ck_assert_ptr_nonnull(strstr(o.err, "vrpc-call: cannot connect to /nonexistent/vrpc.sock"));
    out_free(&o);
    /* --timeout: 125 "timed out", the handler is killed (checked by teardown) */
    o = run_call("work", NULL, ARGS("--timeout", "0.3", "vault", "test.Sleep"));
    ck_assert_int_eq(o.status, 125);
    ck_assert_ptr_nonnull(strstr(o.err, "vrpc-call: timed out"));
    out_free(&o);
    /* our stdout is a closed pipe: the call is reset, exit 128+SIGPIPE */
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    Call c = call_start("work", zero, p[1], ARGS("dom0", "demo.Echo"));
    close(zero);
    close(p[1]);
    o = call_finish(c, NULL, 0);
    ck_assert_int_eq(o.status, 128 + SIGPIPE);
    out_free(&o);
    /* --local: the remote output goes to the local command, its output to the remote */
    char path[300], cmd[320];
    snprintf(path, sizeof path, "%s.local", g_etc);
    snprintf(cmd, sizeof cmd, "tee %s", path);
    expect_call("work", NULL, ARGS("--local", cmd, "vault", "vrpc.Ping+local"), 0, NULL);
    char *text = vt_read_file(path);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "pong local\n");
    free(text);
    unlink(path);
    /* vrpc-ctl in dom0 finds the sim's dispatcher by itself: `vrpc-sim exec` sets
     * VRPC_CONTROL as it sets VRPC_SOCKET for vrpc-call (issue 11 item 1) */
    const char *ctl[] = {VRPC_SIM_BIN, "exec",       "--ns",   g_ns, "dom0",
                         "--",         VRPC_CTL_BIN, "status", NULL};
    VtResult r = vt_run(ctl, VT_HANG_S);
    ck_assert_msg(r.status == 0, "vrpc-ctl status: %d %s", r.status, r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "total guests"));
    vt_result_free(&r);
    teardown_check();
}
END_TEST

/* A socket service: a server on SERVICES/test.Sock (outside the sim) that answers each of
 * @n connections with "desc=<descriptor line>|<data read until EOF>" and closes. */
static pid_t start_socket_service(int n)
{
    char path[300];
    snprintf(path, sizeof path, "%s/services/test.Sock", g_etc);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_int_lt(strlen(path), sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        for (int i = 0; i < n; i++) {
            int c = accept(lfd, NULL, NULL);
            if (c < 0)
                _exit(1);
            char buf[4096];
            size_t len = 0;
            ssize_t r;
            while (len < sizeof buf && (r = read(c, buf + len, sizeof buf - len)) > 0)
                len += (size_t)r;
            char *nl = memchr(buf, '\n', len);
            if (!nl)
                _exit(2);
            dprintf(c, "desc=%.*s|%.*s", (int)(nl - buf), buf, (int)(len - (size_t)(nl + 1 - buf)),
                    nl + 1);
            close(c);
        }
        _exit(0);
    }
    close(lfd);
    return pid;
}

START_TEST(socket_service)
{
    setup("sock", ARGS("work", "vault"));
    pid_t srv = start_socket_service(3);
    /* dom0's socket service through the dispatcher, a guest's through its agent */
    expect_call("work", "data-1", ARGS("dom0", "test.Sock"), 0, "desc=test.Sock+ work|data-1");
    expect_call("work", "data-2", ARGS("vault", "test.Sock+arg"), 0,
                "desc=test.Sock+arg work|data-2");
    expect_call("dom0", "", ARGS("work", "test.Sock"), 0, "desc=test.Sock+ dom0|");
    ck_assert_int_eq(wait_status(srv), 0);
    teardown_check();
}
END_TEST

/* True once process @pid is gone (it is not our child: kill(pid, 0) tells). */
static bool wait_gone(pid_t pid)
{
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end; usleep(20000))
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
    return false;
}

/* Start a call of test.Sleep from @dom to @target; returns the handler's pid. */
static pid_t start_sleeper(const char *dom, const char *target, Call *cp)
{
    *cp = call_start(dom, -1, -1, ARGS(target, "test.Sleep"));
    char buf[32];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = read(cp->out, buf + got, 1);
        if (n <= 0 || buf[got] == '\n')
            break;
        got++;
    }
    buf[got] = '\0';
    pid_t hp = (pid_t)atoi(buf);
    ck_assert_msg(hp > 1, "no handler pid: '%s'", buf);
    return hp;
}

/* The agent of work dies mid-call: the caller in vault gets 125, the others keep working. */
START_TEST(agent_killed)
{
    setup("akill", ARGS("work", "vault"));
    Call c;
    pid_t hp = start_sleeper("vault", "work", &c);
    ck_assert_int_eq(kill(g_agent_pid, SIGKILL), 0);
    Out o = call_finish(c, NULL, 0);
    ck_assert_msg(o.status == 125, "status %d (%s)", o.status, o.err);
    ck_assert_ptr_nonnull(strstr(o.err, "vrpc-call: "));
    out_free(&o);
    /* the handler (its own session) dies with its agent: PR_SET_PDEATHSIG */
    ck_assert_msg(wait_gone(hp), "handler %d outlived its SIGKILLed agent", (int)hp);
    g_agent_pid = 0;
    settle_baseline(false);
    expect_call("vault", "still\n", ARGS("dom0", "demo.Uppercase"), 0, "STILL\n");
    expect_call("dom0", "y", ARGS("vault", "demo.Echo"), 0, "y");
    expect_call("vault", "y", ARGS("vault", "demo.Echo"), 0, "y");
    o = run_call("vault", NULL, ARGS("work", "demo.Echo"));
    ck_assert_msg(o.status == 126 || o.status == 125, "call to a dead agent: %d", o.status);
    out_free(&o);
    teardown_check();
}
END_TEST

/* A guest destroyed mid-call: its caller's peer gets 125, the others keep working. */
START_TEST(guest_destroyed)
{
    setup("gdest", ARGS("work", "vault"));
    Call c;
    (void)start_sleeper("vault", "work", &c);
    const char *argv[] = {VRPC_SIM_BIN, "destroy", "--ns", g_ns, "work", NULL};
    VtResult r = vt_run(argv, 60);
    ck_assert_msg(r.status == 0, "destroy: %s", r.err);
    vt_result_free(&r);
    Out o = call_finish(c, NULL, 0);
    ck_assert_msg(o.status == 125, "status %d (%s)", o.status, o.err);
    out_free(&o);
    g_agent_pid = 0;
    settle_baseline(false);
    expect_call("vault", "z\n", ARGS("dom0", "demo.Uppercase"), 0, "Z\n");
    expect_call("dom0", "z", ARGS("vault", "demo.Echo"), 0, "z");
    teardown_check();
}
END_TEST

static void ctl_wait_guests(int n)
{
    char control[600], count[16];
    snprintf(control, sizeof control, "%s/dom0/control.sock", vt_instance_dir(g_ns));
    snprintf(count, sizeof count, "%d", n);
    const char *argv[] = {VRPC_SIM_BIN, "exec",       "--ns",      g_ns,    "dom0",
                          "--",         VRPC_CTL_BIN, "--control", control, "wait-guests",
                          count,        "--timeout",  "60",        NULL};
    VtResult r = vt_run(argv, 90);
    ck_assert_msg(r.status == 0, "wait-guests: %d %s", r.status, r.err);
    vt_result_free(&r);
}

/* Start a new dispatcher in dom0 on the instance's sockets; wait for both guests. */
static pid_t start_dispatcher(const char *logname)
{
    char sock[600], control[600], log[600];
    snprintf(sock, sizeof sock, "%s/dom0/vrpc.sock", vt_instance_dir(g_ns));
    snprintf(control, sizeof control, "%s/dom0/control.sock", vt_instance_dir(g_ns));
    snprintf(log, sizeof log, "%s/%s", vt_instance_dir(g_ns), logname);
    const char *argv[] = {
        VRPC_SIM_BIN, "exec", "--ns",     g_ns, "dom0",      "--",    VRPC_DISPATCHER_BIN,
        "--etc",      g_etc,  "--socket", sock, "--control", control, NULL};
    pid_t pid = vt_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    ctl_wait_guests(2);
    return pid;
}

START_TEST(dispatcher_restart)
{
    setup("drst", ARGS("work", "vault"));
    /* a call running in dom0 when the dispatcher stops */
    Call running = call_start("work", -1, -1, ARGS("dom0", "test.Sleep"));
    char pid[32] = "";
    ck_assert_int_gt(read(running.out, pid, sizeof pid - 1), 0);
    /* SIGHUP (its terminal gone) ends it cleanly, as SIGTERM does (dtest.c's disp_stop) */
    ck_assert_int_eq(kill(g_disp_pid, SIGHUP), 0);
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && kill(g_disp_pid, 0) == 0;)
        usleep(20000);
    /* the caller gets 125, and the audit says the dispatcher cut the call (not its caller) */
    Out ro = call_finish(running, NULL, 0);
    ck_assert_msg(ro.status == 125, "running call: status %d (%s)", ro.status, ro.err);
    out_free(&ro);
    ck_assert_int_eq(audit_wait("test.Sleep", "\"reason\":\"vrpc-dispatcher stopped\"", 1), 1);
    ck_assert_int_eq(audit_count("test.Sleep", "\"end\":\"aborted\",\"exit\":125"), 1);
    {
        char log[600];
        snprintf(log, sizeof log, "%s/dispatcher.log", vt_instance_dir(g_ns));
        char *text = vt_read_file(log);
        ck_assert_msg(text && strstr(text, "signal 1: shutting down"), "no clean end on SIGHUP: %s",
                      text ? text : "(no log)");
        free(text);
    }
    /* while dom0 is away, local calls fail at once with 125 and a reason */
    Out o = run_call("work", "x", ARGS("dom0", "demo.Echo"));
    ck_assert_msg(o.status == 125, "status %d", o.status);
    ck_assert_msg(strncmp(o.err, "vrpc-call: ", 11) == 0 && !strstr(o.err, "vrpc: "), "stderr '%s'",
                  o.err);
    out_free(&o);
    /* a new dispatcher finds the agents' new offers */
    pid_t d2 = start_dispatcher("dispatcher2.log");
    /* the new dispatcher's own baseline; the agent keeps its first one (old vchan freed) */
    g_disp_pid = d2;
    settle_baseline(false);
    o = run_call("work", "again\n", ARGS("dom0", "demo.Uppercase"));
    ck_assert_msg(o.status == 0, "%d %s", o.status, o.err);
    ck_assert_str_eq(o.out, "AGAIN\n");
    out_free(&o);
    expect_call("work", "x", ARGS("vault", "demo.Echo"), 0, "x");
    expect_call("dom0", "y", ARGS("vault", "demo.Echo"), 0, "y");
    teardown_check();
    waitpid(d2, NULL, 0);
}
END_TEST

/* The dispatcher is SIGKILLed mid-call: its handler dies with it (PR_SET_PDEATHSIG), the
 * caller gets 125, and a new dispatcher serves again. */
START_TEST(dispatcher_killed)
{
    setup("dkill", ARGS("work", "vault"));
    Call c;
    pid_t hp = start_sleeper("work", "dom0", &c);
    ck_assert_int_eq(kill(g_disp_pid, SIGKILL), 0);
    ck_assert_msg(wait_gone(hp), "handler %d outlived its SIGKILLed dispatcher", (int)hp);
    Out o = call_finish(c, NULL, 0);
    ck_assert_msg(o.status == 125, "status %d (%s)", o.status, o.err);
    out_free(&o);
    pid_t d2 = start_dispatcher("dispatcher2.log");
    g_disp_pid = d2;
    settle_baseline(false);
    expect_call("work", "x", ARGS("dom0", "demo.Echo"), 0, "x");
    teardown_check();
    waitpid(d2, NULL, 0);
}
END_TEST

/* The audit line of every call whose service is @service: its "exit" values, in order. */
static int audit_exits_now(const char *service, int *codes, int max)
{
    char path[600], want[128];
    snprintf(path, sizeof path, "%s/audit.log", vt_instance_dir(g_ns));
    snprintf(want, sizeof want, "\"service\":\"%s\",", service);
    char *text = vt_read_file(path);
    ck_assert_ptr_nonnull(text);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, want))
            continue;
        const char *e = strstr(line, "\"exit\":");
        ck_assert_msg(e, "audit line without exit: %s", line);
        ck_assert_int_lt(n, max);
        codes[n++] = atoi(e + strlen("\"exit\":"));
    }
    free(text);
    return n;
}

/* The same, once at least @expect lines are there: a caller may have its exit code a moment
 * before the dispatcher writes the call's audit line (hang guard VT_HANG_MS). */
static int audit_exits(const char *service, int *codes, int max, int expect)
{
    long long end = now_ms() + VT_HANG_MS;
    int n;
    while ((n = audit_exits_now(service, codes, max)) < expect && now_ms() < end)
        usleep(20000);
    return n;
}

/* Large calls through the real agent (guest -> dom0 and guest -> guest) complete, and the
 * audit says so: exit 0, not -1 (aborted). Non-zero codes are recorded as they are. */
START_TEST(audit_exit)
{
    enum { TO_DOM0 = 4, TO_GUEST = 3 };
    setup("audit", ARGS("work", "vault"));
    for (int i = 0; i < TO_DOM0; i++)
        ck_assert_int_eq(stream_echo("work", "dom0", 16u << 20, 100 + (uint64_t)i), 0);
    for (int i = 0; i < TO_GUEST; i++)
        ck_assert_int_eq(stream_echo("work", "vault", 16u << 20, 200 + (uint64_t)i), 0);
    expect_call("work", NULL, ARGS("dom0", "test.Exit+42"), 42, NULL);
    expect_call("work", NULL, ARGS("vault", "test.Exit+42"), 42, NULL);
    int codes[16];
    int n = audit_exits("demo.Echo", codes, 16, TO_DOM0 + TO_GUEST);
    ck_assert_int_eq(n, TO_DOM0 + TO_GUEST);
    for (int i = 0; i < n; i++)
        ck_assert_msg(codes[i] == 0, "demo.Echo call %d: audit exit %d", i, codes[i]);
    n = audit_exits("test.Exit", codes, 16, 2);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(codes[0], 42);
    ck_assert_int_eq(codes[1], 42);
    teardown_check();
}
END_TEST

/* Lines of the instance's log @file that contain @needle. */
static int log_count(const char *file, const char *needle)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", vt_instance_dir(g_ns), file);
    char *text = vt_read_file(path);
    ck_assert_ptr_nonnull(text);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        n += strstr(line, needle) != NULL;
    free(text);
    return n;
}

/*
 * Regression (review finding 1): a guest that rewrote its own data/vrpc-ready a few thousand
 * times (one value over and over, or alternating values) cut itself off from vrpc for good:
 * the dispatcher's attempt for the last value failed (the agent's offer was being replaced),
 * it never retried that value, the agent never learned its announcement was overwritten,
 * and every later call from the guest got 125 "not connected to dom0". Each write also
 * logged a line or two. Now the agent re-offers once its announcement stays changed, the
 * dispatcher retries with backoff, and its lines are rate-limited.
 */
START_TEST(ready_rewritten)
{
    static const char *const rounds[][3] = {
        {"x1", NULL}, {"x2", NULL}, {"a.1", "a.2", NULL}, {"x3", NULL}, {"b.1", "b.2", NULL},
    };
    setup("ready", ARGS("work", "vault"));
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        const char *argv[12] = {VRPC_SIM_BIN, "exec", "--ns",        g_ns,
                                "work",       "--",   XS_HAMMER_BIN, "data/vrpc-ready",
                                "3000"};
        for (size_t j = 0; rounds[i][j]; j++)
            argv[9 + j] = rounds[i][j];
        VtResult r = vt_run(argv, 300);
        ck_assert_msg(r.status == 0, "xs-hammer: %d %s", r.status, r.err);
        vt_result_free(&r);
        /* The writes stopped: work recovers by itself (a minute is only a hang guard). */
        bool ok = false;
        int status = -1;
        for (long long end = now_ms() + 60000; !ok && now_ms() < end;) {
            Out o = run_call("work", "up\n", ARGS("dom0", "demo.Uppercase"));
            status = o.status;
            ok = o.status == 0 && strcmp(o.out, "UP\n") == 0;
            out_free(&o);
            if (!ok)
                usleep(100000);
        }
        ck_assert_msg(ok, "round %zu (%s...): work is still cut off, last status %d", i + 1,
                      rounds[i][0], status);
        expect_call("work", "w", ARGS("vault", "demo.Echo"), 0, "w");
        expect_call("vault", "v", ARGS("work", "demo.Echo"), 0, "v");
    }
    /* Rate-limited: a line per guest per 10 s, not one per write (15,000 writes here). */
    int fails = log_count("dispatcher.log", "cannot connect to the agent");
    int lib = log_count("dispatcher.log", "another client is connected") +
              log_count("dispatcher.log", "no server there");
    int restarts = log_count("dispatcher.log", "agent offered a new connection (generation");
    ck_assert_msg(fails <= 30, "%d 'cannot connect' lines", fails);
    ck_assert_msg(lib == 0, "%d vchan library lines for failed attempts", lib);
    ck_assert_msg(restarts <= 30, "%d 'new connection' lines", restarts);
    ck_assert_msg(log_count("agent.work.log", "was changed by another process") <= 30,
                  "the agent's warning is not rate-limited");
    /* While connected, the rewrites above cut nothing: a healthy connection stays. Now the
     * case of the original report: the dispatcher connects WHILE work rewrites the node (a
     * new dispatcher, so every agent must be found again). Its attempts fail or race the
     * agent's re-offers; it retries with backoff, and work recovers once the writes stop. */
    ck_assert_int_eq(kill(g_disp_pid, SIGTERM), 0);
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && kill(g_disp_pid, 0) == 0;)
        usleep(20000);
    const char *hammer[] = {VRPC_SIM_BIN,      "exec", "--ns", g_ns,  "work", "--", XS_HAMMER_BIN,
                            "data/vrpc-ready", "3000", "c.1",  "c.2", NULL};
    pid_t hp = vt_spawn(hammer, NULL);
    ck_assert_int_gt(hp, 0);
    pid_t d2 = start_dispatcher("dispatcher2.log");
    ck_assert_int_eq(vt_wait(hp, VT_HANG_MS), 0);
    g_disp_pid = d2;
    settle_baseline(false);
    bool ok = false;
    for (long long end = now_ms() + VT_HANG_MS; !ok && now_ms() < end;) {
        Out o = run_call("work", "up\n", ARGS("dom0", "demo.Uppercase"));
        ok = o.status == 0 && strcmp(o.out, "UP\n") == 0;
        out_free(&o);
        if (!ok)
            usleep(100000);
    }
    ck_assert_msg(ok, "work is still cut off after the dispatcher restarted under rewrites");
    expect_call("work", "w", ARGS("vault", "demo.Echo"), 0, "w");
    expect_call("vault", "v", ARGS("work", "demo.Echo"), 0, "v");
    teardown_check();
    waitpid(d2, NULL, 0);
}
END_TEST


/* ---- direct guest<->guest channels ---------------------------------------------------------- */

/* The audit lines of @service that contain @needle. */
static int audit_count(const char *service, const char *needle)
{
    char path[600], want[128];
    snprintf(path, sizeof path, "%s/audit.log", vt_instance_dir(g_ns));
    snprintf(want, sizeof want, "\"service\":\"%s\",", service);
    char *text = vt_read_file(path);
    ck_assert_ptr_nonnull(text);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        n += strstr(line, want) && strstr(line, needle);
    free(text);
    return n;
}

/* Wait (hang guard VT_HANG_MS) until at least @expect audit lines of @service contain
 * @needle; returns how many do. */
static int audit_wait(const char *service, const char *needle, int expect)
{
    long long end = now_ms() + VT_HANG_MS;
    int n;
    while ((n = audit_count(service, needle)) < expect && now_ms() < end)
        usleep(20000);
    return n;
}

static void direct_setup(const char *tag, const char *const *guests)
{
    g_dispatcher_extra = "direct-idle-timeout: 1";
    setup(tag, guests);
}

/* Streams flow guest -> guest on the direct channel, checksummed; exit codes pass through;
 * the audit says path direct; the channel closes when idle (teardown: no xenstore node left). */
START_TEST(direct_data)
{
    direct_setup("dd", ARGS("work", "vault"));
    ck_assert_int_eq(stream_echo("work", "vault", 32u << 20, 7), 0);
    ck_assert_int_eq(stream_echo("work", "vault", 1u << 20, 8), 0);
    expect_call("work", NULL, ARGS("vault", "test.Exit+42"), 42, NULL);
    expect_call("work", NULL, ARGS("vault", "test.Env+x"), 0, "work|test.Env|x|vault\n");
    expect_call("work", NULL, ARGS("vault", "test.Stderr"), 7, "out-line\n");
    /* no such service in the target: refused there (127), audited as a refusal as on the
     * relay, not as an exit */
    Out nf = run_call("work", NULL, ARGS("vault", "test.Nothing"));
    ck_assert_int_eq(nf.status, 127);
    out_free(&nf);
    ck_assert_int_eq(audit_wait("test.Nothing", "\"end\":\"refused\"", 1), 1);
    ck_assert_int_eq(audit_count("test.Nothing", "\"path\":\"direct\""), 1);
    ck_assert_int_eq(audit_wait("demo.Echo", "\"path\":\"direct\"", 2), 2);
    ck_assert_int_eq(audit_wait("test.Exit", "\"exit\":42", 1), 1);
    ck_assert_int_eq(audit_count("test.Exit", "\"path\":\"direct\""), 1);
    ck_assert_int_eq(audit_count("demo.Echo", "\"exit\":0"), 2);
    /* both agents reported the end, and their reports agree */
    ck_assert_int_eq(audit_count("demo.Echo", "\"end\":\"exit\""), 2);
    ck_assert_int_eq(audit_count("demo.Echo", "\"reported_by\":\"both\""), 2);
    ck_assert_int_eq(audit_count("test.Exit", "\"reported_by\":\"both\""), 1);
    ck_assert_int_eq(audit_count("test.Nothing", "\"reported_by\":\"both\""), 1);
    /* the other direction gets its own channel */
    expect_call("vault", "v\n", ARGS("work", "demo.Uppercase"), 0, "V\n");
    ck_assert_int_eq(audit_wait("demo.Uppercase", "\"path\":\"direct\"", 1), 1);
    /* vrpc-ctl status counts a direct call once, for its caller: the agents' end reports
     * are not calls */
    long work0 = ctl_calls_total("work"), vault0 = ctl_calls_total("vault");
    expect_call("work", NULL, ARGS("vault", "test.Exit+3"), 3, NULL);
    ck_assert_int_eq(audit_wait("test.Exit", "\"exit\":3", 1), 1);
    ck_assert_int_eq(ctl_calls_total("work"), work0 + 1);
    ck_assert_int_eq(ctl_calls_total("vault"), vault0);
    teardown_check();
}
END_TEST

/* kill -9 of the caller in the source mid-stream: the handler in the target goes away, the
 * audit gets the call's end, nothing leaks. */
START_TEST(direct_source_killed)
{
    direct_setup("dsk", ARGS("work", "vault"));
    Call c;
    pid_t hp = start_sleeper("work", "vault", &c);
    kill(c.pid, SIGKILL);
    wait_status(c.pid);
    close(c.in);
    close(c.out);
    close(c.err);
    ck_assert_msg(wait_gone(hp), "handler %d still running after its caller died", (int)hp);
    ck_assert_int_eq(audit_wait("test.Sleep", "\"path\":\"direct\"", 1), 1);
    /* the caller went away: cancelled, no exit status given (the source's agent says so; the
     * target saw its stream reset) */
    ck_assert_int_eq(audit_count("test.Sleep", "\"end\":\"cancelled\",\"exit\":null"), 1);
    ck_assert_int_eq(audit_count("test.Sleep", "\"reason\":\"the caller went away\""), 1);
    /* and the pair still works */
    expect_call("work", "a", ARGS("vault", "demo.Echo"), 0, "a");
    teardown_check();
}
END_TEST

/* kill -9 of the handler in the target mid-stream: the caller gets 128+9, as on the relay. */
START_TEST(direct_target_killed)
{
    direct_setup("dtk", ARGS("work", "vault"));
    Call c;
    pid_t hp = start_sleeper("work", "vault", &c);
    ck_assert_int_eq(kill(hp, SIGKILL), 0);
    Out o = call_finish(c, NULL, 0);
    ck_assert_msg(o.status == 128 + SIGKILL, "status %d (%s)", o.status, o.err);
    out_free(&o);
    ck_assert_int_eq(audit_wait("test.Sleep", "\"exit\":137", 1), 1);
    ck_assert_int_eq(audit_count("test.Sleep", "\"path\":\"direct\""), 1);
    teardown_check();
}
END_TEST

/* A third guest cannot reach the work -> vault channel: its xenstore directory is readable by
 * work only and the ring is granted to work only; and the policy still decides its own
 * calls (no path around it). */
static const char third_policy[] =
    "rules:\n"
    "  - service: \"*\"\n    source: other\n    target: vault\n    action: deny\n"
    "  - service: \"*\"\n    source: \"*\"\n    target: \"*\"\n    action: allow\n";

START_TEST(direct_third_guest)
{
    g_policy = third_policy;
    direct_setup("d3", ARGS("work", "vault", "other"));
    /* a call keeps the channel 1 (work -> vault, domain 2) open */
    Call c;
    pid_t hp = start_sleeper("work", "vault", &c);
    char path[128];
    snprintf(path, sizeof path, "/local/domain/2/vrpc-direct/1");
    const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", g_ns, "other", "--",
                          VCHAN_CAT_BIN, "client", "2", path, NULL};
    VtResult r = vt_run(argv, 60);
    ck_assert_msg(r.status != 0, "other connected to work's direct channel");
    vt_result_free(&r);
    /* nor can work open a second client on it (one client per vchan) while its agent has it */
    Out o = run_call("other", NULL, ARGS("vault", "test.Exit+0"));
    ck_assert_int_eq(o.status, 126);
    out_free(&o);
    /* other -> work is allowed, and goes on a channel of its own */
    expect_call("other", "o", ARGS("work", "demo.Echo"), 0, "o");
    ck_assert_int_eq(kill(hp, SIGKILL), 0);
    o = call_finish(c, NULL, 0);
    ck_assert_int_eq(o.status, 128 + SIGKILL);
    out_free(&o);
    teardown_check();
    g_policy = NULL;
}
END_TEST

/* A hostile source agent on its own direct channel: a forged token, the right token for
 * another service, and the right token used twice; only the right use runs, once. */
START_TEST(direct_forged)
{
    direct_setup("dfg", ARGS("work", "vault"));
    ck_assert_int_eq(kill(g_agent_pid, SIGTERM), 0);
    ck_assert(wait_gone(g_agent_pid));
    g_agent_pid = 0;
    settle_baseline(false);
    const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", g_ns, "work", "--",
                          FAKE_AGENT_BIN, "--direct", "call", "vault", "test.Exit+5", NULL};
    VtResult r = vt_run(argv, 120);
    ck_assert_msg(r.status == 0, "fake-agent: %d %s", r.status, r.err);
    ck_assert_str_eq(r.out, "forged: refused 1024\n"
                            "wrong-service: refused 1024\n"
                            "good: exit 5\n"
                            "replay: refused 1024\n");
    vt_result_free(&r);
    ck_assert_int_eq(audit_wait("test.Exit", "\"exit\":5", 1), 1);
    ck_assert_int_eq(audit_count("test.Exit", "\"path\":\"direct\""), 1);
    ck_assert_int_eq(audit_count("test.Other", ""), 0);
    teardown_check();
}
END_TEST

/* Stop vault's agent (domain 2) and run @cmd in vault instead (its output to @logname in the
 * instance's folder); wait until the dispatcher has it, then take the baselines. */
static pid_t replace_vault_agent(const char *logname, const char *const *cmd)
{
    pid_t vault_agent = vt_instance_pid(g_ns, "vrpc-agent", 2);
    ck_assert_int_gt(vault_agent, 0);
    ck_assert_int_eq(kill(vault_agent, SIGTERM), 0);
    ck_assert(wait_gone(vault_agent));
    char log[600];
    snprintf(log, sizeof log, "%s/%s", vt_instance_dir(g_ns), logname);
    const char *argv[16] = {VRPC_SIM_BIN, "exec", "--ns", g_ns, "vault", "--"};
    int n = 6;
    for (; *cmd && n < 15; cmd++)
        argv[n++] = *cmd;
    argv[n] = NULL;
    pid_t pid = vt_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    ctl_wait_guests(2);
    settle_baseline(false);
    return pid;
}

/* A hostile target agent (fake-agent --direct serve in vault) runs direct calls but never
 * reports their end to dom0, and claims every token used: the source's agent's own end
 * report closes the dispatcher's record direct-report-timeout later, as "unconfirmed", and
 * so does the source agent's connection going away; the calls quota is given back
 * (vrpc-ctl status: 0 calls in flight). A report that differs from the source's is audited
 * as "mismatch". Regression test: the record and the source's quota
 * were kept for ever. */
static const char allow_all_policy[] =
    "rules:\n"
    "  - service: \"*\"\n    source: \"*\"\n    target: \"*\"\n    action: allow\n";

static int wait_in_flight(int want)
{
    int n = -1;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end; usleep(50000))
        if ((n = ctl_in_flight()) == want)
            break;
    return n;
}

START_TEST(direct_target_silent)
{
    g_policy = allow_all_policy;
    direct_setup("dts", ARGS("work", "vault"));
    pid_t fake = replace_vault_agent("fake-agent.vault.log",
                                     ARGS(FAKE_AGENT_BIN, "--direct", "serve"));

    /* the call itself works: the caller gets the target's exit status */
    expect_call("work", NULL, ARGS("vault", "fake.Exit+3"), 3, NULL);
    ck_assert_int_eq(audit_wait("fake.Exit", "\"end\":\"unconfirmed\"", 1), 1);
    ck_assert_int_eq(audit_count("fake.Exit", "\"exit\":3,"), 1);
    ck_assert_int_eq(audit_count("fake.Exit", "\"path\":\"direct\",\"reported_by\":\"source\""),
                     1);
    ck_assert_int_eq(audit_count("fake.Exit", "the target agent did not report the end"), 1);
    ck_assert_int_eq(wait_in_flight(0), 0);
    /* both report, and they differ: the audit says so */
    expect_call("work", NULL, ARGS("vault", "fake.Lie+4"), 4, NULL);
    ck_assert_int_eq(audit_wait("fake.Lie", "\"end\":\"mismatch\"", 1), 1);
    ck_assert_int_eq(audit_count("fake.Lie", "\"exit\":4,"), 1);
    ck_assert_int_eq(audit_count("fake.Lie", "\"reported_by\":\"both\""), 1);
    ck_assert_int_eq(audit_count("fake.Lie", "reports differ: target 5, source 4"), 1);
    ck_assert_int_eq(wait_in_flight(0), 0);
    /* the target says "exit 0" while the call runs, then the caller goes away: the source's
     * "cancelled" does not outrank the target's word, the reports differ, no exit given */
    {
        Call b = call_start("work", -1, -1, ARGS("vault", "fake.Boast"));
        char line[8];
        size_t have = 0;
        while (have < sizeof line) { /* "running\n": the call is up on the channel */
            ssize_t n = read(b.out, line + have, sizeof line - have);
            ck_assert_int_gt(n, 0);
            have += (size_t)n;
        }
        kill(b.pid, SIGKILL);
        wait_status(b.pid);
        close(b.in);
        close(b.out);
        close(b.err);
        ck_assert_int_eq(audit_wait("fake.Boast", "\"end\":\"mismatch\",\"exit\":null", 1), 1);
        ck_assert_int_eq(audit_count("fake.Boast", "reports differ: target 0, source cancelled"),
                         1);
        ck_assert_int_eq(wait_in_flight(0), 0);
    }
    vt_leak_check(g_leak); /* the channel closed when idle: no node, grant or fd left */

    /* the source agent goes away mid-call: the call is over on its side */
    Call c = call_start("work", -1, -1, ARGS("vault", "fake.Echo"));
    ck_assert_int_eq(write(c.in, "ping\n", 5), 5);
    char buf[8] = "";
    size_t got = 0;
    while (got < 5) {
        ssize_t n = read(c.out, buf + got, 5 - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert(memcmp(buf, "ping\n", 5) == 0);
    ck_assert_int_eq(ctl_in_flight(), 1);
    ck_assert_int_eq(kill(g_agent_pid, SIGTERM), 0);
    ck_assert(wait_gone(g_agent_pid));
    g_agent_pid = 0;
    Out o = call_finish(c, NULL, 0);
    ck_assert_msg(o.status == 125, "status %d (%s)", o.status, o.err);
    out_free(&o);
    ck_assert_int_eq(audit_wait("fake.Echo", "\"end\":\"unconfirmed\"", 1), 1);
    ck_assert_int_eq(audit_count("fake.Echo", "\"path\":\"direct\""), 1);
    ck_assert_int_eq(wait_in_flight(0), 0);
    settle_baseline(false);
    teardown_check();
    waitpid(fake, NULL, 0);
    g_policy = NULL;
}
END_TEST

/* The dispatcher is SIGKILLed while a direct channel is open: the handler on the target and
 * the caller end (the agents close their channels with their dom0 connection), and the next
 * dispatcher removes the channel's directory it finds at start. */
static bool xs_exists(const char *key)
{
    const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", g_ns, "dom0", "--", "xenstore-exists",
                          key, NULL};
    VtResult r = vt_run(argv, VT_HANG_S);
    bool ok = r.status == 0;
    vt_result_free(&r);
    return ok;
}

START_TEST(direct_dispatcher_killed)
{
    direct_setup("ddk", ARGS("work", "vault"));
    Call c;
    pid_t hp = start_sleeper("work", "vault", &c);
    ck_assert(xs_exists("/local/domain/2/vrpc-direct/1"));
    ck_assert_int_eq(kill(g_disp_pid, SIGKILL), 0);
    ck_assert_msg(wait_gone(hp), "handler %d outlived the direct channel", (int)hp);
    Out o = call_finish(c, NULL, 0);
    ck_assert_msg(o.status == 125, "status %d (%s)", o.status, o.err);
    out_free(&o);
    ck_assert(xs_exists("/local/domain/2/vrpc-direct"));
    pid_t d2 = start_dispatcher("dispatcher2.log");
    ck_assert(!xs_exists("/local/domain/2/vrpc-direct"));
    g_disp_pid = d2;
    settle_baseline(false);
    expect_call("work", "x", ARGS("vault", "demo.Echo"), 0, "x");
    /* that dispatcher has no --audit: its audit lines go to its log */
    bool direct = false;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && !direct; usleep(20000))
        direct = log_count("dispatcher2.log", "\"path\":\"direct\"") == 1;
    ck_assert_msg(direct, "the call after the restart did not go direct");
    teardown_check();
    waitpid(d2, NULL, 0);
}
END_TEST

/* The target's agent has no direct channels (--no-direct): calls are relayed, and the audit
 * says why. */
START_TEST(direct_fallback)
{
    direct_setup("dfb", ARGS("work", "vault"));
    pid_t a2 = replace_vault_agent("agent.vault.2.log",
                                   ARGS(VRPC_AGENT_BIN, "--etc", g_etc, "--no-direct"));
    ck_assert_int_eq(stream_echo("work", "vault", 4u << 20, 9), 0);
    expect_call("work", NULL, ARGS("vault", "test.Exit+3"), 3, NULL);
    ck_assert_int_eq(audit_wait("demo.Echo", "\"path\":\"relay\"", 1), 1);
    ck_assert_int_eq(audit_count("demo.Echo", "\"fallback\":\"target-no-direct\""), 1);
    ck_assert_int_eq(audit_wait("test.Exit", "\"exit\":3", 1), 1);
    /* the other direction: the source has no direct, nothing to fall back from */
    expect_call("vault", "w", ARGS("work", "demo.Echo"), 0, "w");
    ck_assert_int_eq(audit_wait("demo.Echo", "\"path\":\"relay\"", 2), 2);
    ck_assert_int_eq(audit_count("demo.Echo", "\"fallback\""), 1);
    pid_t a2_agent = vt_instance_pid(g_ns, "vrpc-agent", 2);
    teardown_check();
    if (a2_agent > 0)
        (void)a2_agent;
    waitpid(a2, NULL, 0);
}
END_TEST

int main(void)
{
    /* for test.Nested: the daemons pass it on to their handlers (not a VRPC_* name) */
    setenv("E2E_VRPC_CALL", VRPC_CALL_BIN, 1);
    const VtCase cases[] = {
        {"guest_to_dom0", guest_to_dom0, 120},
        {"dom0_to_guest", dom0_to_guest, 120},
        {"guest_to_guest", guest_to_guest, 120},
        {"loopback", loopback, 120},
        {"not_found_and_refused", not_found_and_refused, 120},
        {"exit_codes_and_signals", exit_codes_and_signals, 180},
        {"stdin_eof", stdin_eof_semantics, 120},
        {"stderr", stderr_separate, 120},
        {"binary", binary_small, 240},
        {"gib_checksummed", gib_checksummed, 900},
        {"concurrent_200", concurrent_200, 600},
        {"slow_reader", slow_reader, 600},
        {"handler_killed", handler_killed, 120},
        {"agent_clean_exit", agent_clean_exit, 120},
        {"service_config", service_config, 120},
        {"call_cli", call_cli, 120},
        {"dispatcher_restart", dispatcher_restart, 180},
        {"socket_service", socket_service, 120},
        {"agent_killed", agent_killed, 120},
        {"dispatcher_killed", dispatcher_killed, 180},
        {"audit_exit", audit_exit, 300},
        {"guest_destroyed", guest_destroyed, 120},
        {"ready_rewritten", ready_rewritten, 600},
        {"direct_data", direct_data, 600},
        {"direct_source_killed", direct_source_killed, 600},
        {"direct_target_killed", direct_target_killed, 600},
        {"direct_third_guest", direct_third_guest, 600},
        {"direct_fallback", direct_fallback, 600},
        {"direct_forged", direct_forged, 600},
        {"direct_target_silent", direct_target_silent, 600},
        {"direct_dispatcher_killed", direct_dispatcher_killed, 600},
    };
    /* configuration folders of this run that a failed test left behind */
    return vt_main("e2e", cases, sizeof cases / sizeof cases[0], "vrpc-e2e-");
}
