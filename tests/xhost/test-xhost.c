/* SPDX-License-Identifier: MIT */
/*
 * test-xhost: calls across hosts. Two vrpc-sim instances (--ns) are two hosts, hosta and
 * hostb, each with the real vrpc-dispatcher configured with a host: section; a PKI is made at
 * run time (tests/support/make-pki.sh: a CA, host certificates, a rogue CA). Ports are
 * chosen by binding port 0, so parallel tests do not collide. Each case checks at the end that
 * neither host left anything behind (the shared leak checker, as in the e2e tests). Split into
 * ctest entries xhost.NAME with CK_RUN_CASE.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "leak.h"
#include "vtest.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef struct Host {
    const char *name;
    char ns[64];
    char etc[256];
    int port;
    pid_t disp;
    VtLeak *leak;
    int links_up; /* links up when the baseline was taken (and when it is checked) */
} Host;

static Host A = {.name = "hosta"}, B = {.name = "hostb"};
static char g_pki[256];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A free TCP port on 127.0.0.1 (the kernel's choice). */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static const VtFile services[] = {
    {"test.Env", "#!/bin/sh\necho \"$VRPC_REMOTE_DOMAIN|$VRPC_SERVICE_NAME|"
                 "$VRPC_REQUESTED_TARGET\"\n"},
    {"test.Sleep", "#!/bin/sh\necho started\nexec sleep 1000\n"},
    {"test.Denied", "#!/bin/sh\necho should-never-run\n"},
};

/* Policy: every test.* and demo.* call allowed both ways, except test.Denied which each host
 * denies in one direction (hosta outbound to hostb's vault, hostb inbound from work@hosta
 * for dom0). */
static const char policy_fmt[] =
    "rules:\n"
    "  - {service: test.Denied, source: work, target: vault@%s, action: deny}\n"
    "  - {service: test.Denied, source: work@%s, target: dom0, action: deny}\n"
    "  - {service: \"test.*\", source: \"*\", target: \"*\", action: allow}\n"
    "  - {service: \"demo.*\", source: \"*\", target: \"*\", action: allow}\n"
    "  - {service: \"test.*\", source: \"*\", target: \"*@*\", action: allow}\n"
    "  - {service: \"demo.*\", source: \"*\", target: \"*@*\", action: allow}\n"
    "  - {service: \"test.*\", source: \"*@*\", target: \"*\", action: allow}\n"
    "  - {service: \"demo.*\", source: \"*@*\", target: \"*\", action: allow}\n";

/* The dispatcher.yaml of @h listening on @listen_ip:h->port with one peer @peer_name at
 * @peer_addr (address:port); @cert_name picks the certificate files (the host's own, the
 * rogue CA's "rogue-NAME", or another host's name); @extra is appended. */
static void host_config_at(Host *h, const char *listen_ip, const char *peer_name,
                           const char *peer_addr, const char *cert_name, const char *extra)
{
    char y[2048];
    snprintf(y, sizeof y,
             "host:\n"
             "  name: %s\n"
             "  listen: \"%s:%d\"\n"
             "  tls: {ca: %s/ca.pem, cert: %s/%s.pem, key: %s/%s.key}\n"
             "  peers:\n"
             "    %s: \"%s\"\n%s",
             h->name, listen_ip, h->port, g_pki, g_pki, cert_name, g_pki, cert_name, peer_name,
             peer_addr, extra ? extra : "");
    write_file(h->etc, "dispatcher.yaml", y, 0644);
}

/* The dispatcher.yaml of @h on 127.0.0.1 with @peer as its peer (see host_config_at). */
static void host_config(Host *h, const Host *peer, const char *cert_name, const char *extra)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", peer->port);
    host_config_at(h, "127.0.0.1", peer->name, addr, cert_name, extra);
}

static void host_prepare(Host *h, const Host *peer, const char *tag)
{
    char pol[2048];
    snprintf(h->ns, sizeof h->ns, "%s", vt_ns(tag));
    snprintf(h->etc, sizeof h->etc, "/tmp/vrpc-xhost-%s-XXXXXX", h->ns);
    snprintf(pol, sizeof pol, policy_fmt, peer->name, peer->name);
    vt_make_etc(h->etc, VRPC_EXAMPLE_ETC_DIR, services, sizeof services / sizeof services[0], pol);
}

static void pki(void)
{
    snprintf(g_pki, sizeof g_pki, "/tmp/vrpc-xhost-pki-%d", (int)getpid());
    VtResult r = vt_run(ARGS(MAKE_PKI, g_pki, "hosta", "hostb", "hostc"), VT_HANG_S);
    ck_assert_msg(r.status == 0, "make-pki: %s", r.err);
    vt_result_free(&r);
}

static VtResult ctl_status(const Host *h)
{
    return vt_run(ARGS(VRPC_SIM_BIN, "exec", "--ns", h->ns, "dom0", "--", VRPC_CTL_BIN, "status"),
                  VT_HANG_S);
}

/* Wait until `vrpc-ctl status` on @h shows the link to @peer in @state. */
static bool wait_link(const Host *h, const char *peer, const char *state)
{
    char want[128];
    snprintf(want, sizeof want, "host %s state %s ", peer, state);
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end; usleep(50000)) {
        VtResult r = ctl_status(h);
        bool ok = r.status == 0 && strstr(r.out, want);
        vt_result_free(&r);
        if (ok)
            return true;
    }
    return false;
}

/* Wait until @h's links are settled: @up of them up and no handshake in progress (a
 * second link of a pair being made or closed would move the fd baseline). */
static void wait_settled(const Host *h, int up)
{
    char want[64];
    snprintf(want, sizeof want, " up %d handshakes 0\n", up);
    char last[1024] = "";
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end; usleep(50000)) {
        VtResult r = ctl_status(h);
        bool ok = r.status == 0 && strstr(r.out, want);
        snprintf(last, sizeof last, "%s%s", r.out, r.err);
        vt_result_free(&r);
        if (ok)
            return;
    }
    ck_abort_msg("%s: links did not settle: %s", h->name, last);
}

/* The baseline of @h with @up links up. A host that keeps dialling a refused peer opens a
 * socket per try: the baseline is taken between tries (no handshake or dial in progress,
 * before and after the snapshot settled), and the check at the end waits the same way, so
 * the dialling socket is in neither. */
static void host_baseline_links(Host *h, int up)
{
    /* Settled links first: a second link of the pair still being closed, or the status
     * connection just used, would move the baseline. */
    wait_settled(h, up);
    h->disp = vt_instance_pid(h->ns, "vrpc-dispatcher", -1);
    ck_assert_int_gt(h->disp, 0);
    vt_leak_free(h->leak);
    h->leak = vt_leak_new();
    h->links_up = up;
    vt_leak_instance(h->leak, h->ns, h->disp);
    vt_leak_settle(h->leak);
    wait_settled(h, up);
}

static void host_baseline(Host *h)
{
    host_baseline_links(h, 1);
}

/* Both hosts up with guest work on hosta and vault on hostb, linked. */
static void setup(const char *tag)
{
    char ta[64], tb[64];
    pki();
    A.port = free_port();
    B.port = free_port();
    snprintf(ta, sizeof ta, "%s-a", tag);
    snprintf(tb, sizeof tb, "%s-b", tag);
    host_prepare(&A, &B, ta);
    host_prepare(&B, &A, tb);
    host_config(&A, &B, "hosta", NULL);
    host_config(&B, &A, "hostb", NULL);
    vt_sim_up_vrpc(A.ns, A.etc, ARGS("work"));
    vt_sim_up_vrpc(B.ns, B.etc, ARGS("vault"));
    ck_assert_msg(wait_link(&A, "hostb", "up"), "link hosta -> hostb not up");
    ck_assert_msg(wait_link(&B, "hosta", "up"), "link hostb -> hosta not up");
    wait_settled(&A, 1);
    wait_settled(&B, 1);
}

static void wait_settled(const Host *h, int up);

static void host_check(Host *h)
{
    if (h->leak) {
        vt_leak_check(h->leak);
        vt_leak_free(h->leak);
        h->leak = NULL;
    }
}

static void host_down(Host *h)
{
    vt_sim_down(h->ns);
    VtResult r = vt_run(ARGS("rm", "-rf", h->etc), 60);
    vt_result_free(&r);
}

/* Both hosts' leak checks while both are up (one going drops the other's link), then down. */
static void teardown_check(void)
{
    if (A.leak)
        wait_settled(&A, A.links_up);
    if (B.leak)
        wait_settled(&B, B.links_up);
    host_check(&A);
    host_check(&B);
    host_down(&A);
    host_down(&B);
    VtResult r = vt_run(ARGS("rm", "-rf", g_pki), 60);
    vt_result_free(&r);
}

/* Run `vrpc-call ARGS` as @dom of host @h with @input (NULL: none) through bash. */
static VtResult call(const Host *h, const char *dom, const char *input, const char *target,
                     const char *service)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "printf '%%s' '%s' | %s %s %s", input ? input : "", VRPC_CALL_BIN,
             target, service);
    return vt_run(ARGS(VRPC_SIM_BIN, "exec", "--ns", h->ns, dom, "--", "bash", "-c", cmd),
                  VT_HANG_S);
}

static void expect(const Host *h, const char *dom, const char *input, const char *target,
                   const char *service, int status, const char *out)
{
    VtResult r = call(h, dom, input, target, service);
    ck_assert_msg(r.status == status, "%s on %s -> %s %s: status %d (want %d): %s", dom, h->name,
                  target, service, r.status, status, r.err);
    if (out)
        ck_assert_msg(strcmp(r.out, out) == 0, "%s -> %s %s: out '%s' (want '%s')", dom, target,
                      service, r.out, out);
    vt_result_free(&r);
}

static char *log_of(const Host *h, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", vt_instance_dir(h->ns), name);
    char *t = vt_read_file(path);
    return t ? t : strdup("");
}

/* ---- cases ------------------------------------------------------------------------------- */

/* Remote calls both directions, identity from the certificate, dom0 as source,
 * NAME@THISHOST is local, an unknown host is refused like an unknown target. */
START_TEST(remote_calls)
{
    setup("rc");
    host_baseline(&A);
    host_baseline(&B);
    expect(&A, "work", "hello", "vault@hostb", "demo.Echo", 0, "hello");
    expect(&A, "work", NULL, "vault@hostb", "test.Env", 0, "work@hosta|test.Env|vault\n");
    expect(&B, "vault", NULL, "work@hosta", "test.Env", 0, "vault@hostb|test.Env|work\n");
    expect(&A, "dom0", NULL, "vault@hostb", "test.Env", 0, "dom0@hosta|test.Env|vault\n");
    expect(&A, "work", NULL, "dom0@hostb", "test.Env", 0, "work@hosta|test.Env|dom0\n");
    /* NAME@THISHOST is local */
    expect(&A, "work", NULL, "dom0@hosta", "test.Env", 0, "work|test.Env|dom0\n");
    /* an unknown host: the same refusal as an unknown domain */
    VtResult u = call(&A, "work", NULL, "vault@hostz", "test.Env");
    VtResult l = call(&A, "work", NULL, "nosuch", "test.Env");
    ck_assert_int_eq(u.status, 126);
    ck_assert_int_eq(l.status, 126);
    char *pu = strstr(u.err, " refused"), *pl = strstr(l.err, " refused");
    ck_assert(pu && pl);
    ck_assert_str_eq(pu, pl);
    vt_result_free(&u);
    vt_result_free(&l);
    /* the audit shows the qualified names on both sides */
    char *aa = log_of(&A, "audit.log"), *ab = log_of(&B, "audit.log");
    ck_assert_msg(strstr(aa, "vault@hostb"), "audit of hosta: %s", aa);
    ck_assert_msg(strstr(ab, "work@hosta"), "audit of hostb: %s", ab);
    free(aa);
    free(ab);
    VtResult st = ctl_status(&A);
    ck_assert_msg(strstr(st.out, "host hostb state up rtt-us "), "%s", st.out);
    vt_result_free(&st);
    teardown_check();
}
END_TEST

/* Outbound deny on hosta, inbound deny on hostb: both 126, the handler never runs. */
START_TEST(policy_deny)
{
    setup("pd");
    host_baseline(&A);
    host_baseline(&B);
    expect(&A, "work", NULL, "vault@hostb", "test.Denied", 126, "");
    expect(&A, "work", NULL, "dom0@hostb", "test.Denied", 126, "");
    char *ab = log_of(&B, "audit.log");
    /* the outbound denial never reached hostb; the inbound one was decided there */
    ck_assert_msg(strstr(ab, "work@hosta") && strstr(ab, "deny"), "audit of hostb: %s", ab);
    free(ab);
    /* the same service from dom0 is allowed both ways */
    expect(&A, "dom0", NULL, "vault@hostb", "test.Denied", 0, "should-never-run\n");
    teardown_check();
}
END_TEST

/* 1 GiB through the link, checksummed at both ends. */
START_TEST(gib_stream)
{
    setup("gib");
    host_baseline(&A);
    host_baseline(&B);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "set -o pipefail; head -c 1073741824 /dev/urandom | tee >(sha256sum > %s/in.sum) | "
             "%s vault@hostb demo.Echo | sha256sum > %s/out.sum; wait",
             A.etc, VRPC_CALL_BIN, A.etc);
    VtResult r = vt_run(ARGS(VRPC_SIM_BIN, "exec", "--ns", A.ns, "work", "--", "bash", "-c", cmd),
                        1200);
    ck_assert_msg(r.status == 0, "%d %s", r.status, r.err);
    vt_result_free(&r);
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/in.sum", A.etc);
    snprintf(p2, sizeof p2, "%s/out.sum", A.etc);
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end; usleep(50000)) {
        char *s1 = vt_read_file(p1);
        bool done = s1 && strlen(s1) > 64;
        free(s1);
        if (done)
            break;
    }
    char *s1 = vt_read_file(p1), *s2 = vt_read_file(p2);
    ck_assert(s1 && s2 && strlen(s1) > 64);
    ck_assert_str_eq(s1, s2);
    free(s1);
    free(s2);
    teardown_check();
}
END_TEST

/* hostb's certificate is from a rogue CA, or names another host: no link, the reason
 * logged on hosta, and calls to hostb are refused like an unknown target. */
static void refused_peer(const char *tag, const char *cert, const char *reason)
{
    pki();
    A.port = free_port();
    B.port = free_port();
    char ta[64], tb[64];
    snprintf(ta, sizeof ta, "%s-a", tag);
    snprintf(tb, sizeof tb, "%s-b", tag);
    host_prepare(&A, &B, ta);
    host_prepare(&B, &A, tb);
    host_config(&A, &B, "hosta", NULL);
    /* hostb's own check that its certificate names it would stop it: give it the name its
     * certificate has, but keep hosta's peer entry (hostb) pointing at it */
    if (strcmp(cert, "hostc") == 0) {
        B.name = "hostc";
        host_config(&B, &A, "hostc", NULL);
    } else {
        host_config(&B, &A, cert, NULL);
    }
    /* hostb's CA file is the rogue one too, so that it trusts its own chain */
    if (strncmp(cert, "rogue-", 6) == 0) {
        char y[2048];
        snprintf(y, sizeof y,
                 "host:\n  name: hostb\n  listen: \"127.0.0.1:%d\"\n"
                 "  tls: {ca: %s/rogue-ca.pem, cert: %s/%s.pem, key: %s/%s.key}\n"
                 "  peers:\n    hosta: \"127.0.0.1:%d\"\n",
                 B.port, g_pki, g_pki, cert, g_pki, cert, A.port);
        write_file(B.etc, "dispatcher.yaml", y, 0644);
    }
    vt_sim_up_vrpc(A.ns, A.etc, ARGS("work"));
    vt_sim_up_vrpc(B.ns, B.etc, ARGS("vault"));
    bool seen = false;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && !seen; usleep(50000)) {
        char *lg = log_of(&A, "dispatcher.log");
        seen = strstr(lg, reason) != NULL;
        free(lg);
    }
    char *lg = log_of(&A, "dispatcher.log");
    ck_assert_msg(seen, "hosta's log has no '%s': %s", reason, lg);
    free(lg);
    VtResult st = ctl_status(&A);
    ck_assert_msg(!strstr(st.out, "state up"), "%s", st.out);
    vt_result_free(&st);
    /* hosta keeps dialling the refused peer: its baseline is taken between tries */
    host_baseline_links(&A, 0);
    expect(&A, "work", NULL, "vault@hostb", "test.Env", 126, "");
    teardown_check();
    B.name = "hostb";
}

START_TEST(rogue_ca)
{
    refused_peer("rca", "rogue-hostb", "certificate not accepted");
}
END_TEST

START_TEST(wrong_name)
{
    refused_peer("wn", "hostc", "does not name host hostb");
}
END_TEST

/* A call streaming when the TCP link is cut: 125 with "link to hostb lost" for the caller,
 * the handler on hostb cleaned up; the link comes back and a call works. */
START_TEST(link_killed)
{
    setup("lk");
    host_baseline(&A);
    host_baseline(&B);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s vault@hostb test.Sleep < /dev/null", VRPC_CALL_BIN);
    char log[512];
    snprintf(log, sizeof log, "%s/sleeper.log", A.etc);
    pid_t c = vt_spawn(ARGS(VRPC_SIM_BIN, "exec", "--ns", A.ns, "work", "--", "bash", "-c", cmd),
                       log);
    ck_assert_int_gt(c, 0);
    bool started = false;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && !started; usleep(50000)) {
        char *t = vt_read_file(log);
        started = t && strstr(t, "started");
        free(t);
    }
    ck_assert(started);
    /* the link, whichever host dialled it */
    char filt[128];
    snprintf(filt, sizeof filt, "sport = :%d or dport = :%d or sport = :%d or dport = :%d", B.port,
             B.port, A.port, A.port);
    VtResult k = vt_run(ARGS("ss", "-K", "-t", filt), 60);
    ck_assert_msg(k.status == 0, "ss -K: %s", k.err);
    vt_result_free(&k);
    int st = vt_wait(c, VT_HANG_MS);
    ck_assert_msg(st == 125, "caller status %d", st);
    char *t = vt_read_file(log);
    ck_assert_msg(t && strstr(t, "link to hostb lost"), "caller said: %s", t ? t : "");
    free(t);
    /* hostb saw it too: its audit line says so */
    bool seen = false;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && !seen; usleep(50000)) {
        char *ab = log_of(&B, "audit.log");
        seen = strstr(ab, "link to hosta lost") != NULL;
        free(ab);
    }
    ck_assert_msg(seen, "no 'link to hosta lost' in hostb's audit");
    ck_assert(wait_link(&A, "hostb", "up"));
    ck_assert(wait_link(&B, "hosta", "up"));
    expect(&A, "work", "again", "vault@hostb", "demo.Echo", 0, "again");
    teardown_check();
}
END_TEST

/* hostb's dispatcher restarts: hosta's calls fail until the link is back, then work. */
START_TEST(peer_restart)
{
    setup("pr");
    host_baseline(&A);
    pid_t d = vt_instance_pid(B.ns, "vrpc-dispatcher", -1);
    ck_assert_int_gt(d, 0);
    ck_assert_int_eq(kill(d, SIGTERM), 0);
    ck_assert(wait_link(&A, "hostb", "down") || wait_link(&A, "hostb", "connecting"));
    expect(&A, "work", NULL, "vault@hostb", "test.Env", 126, "");
    char sock[600], control[600], log[600];
    snprintf(sock, sizeof sock, "%s/dom0/vrpc.sock", vt_instance_dir(B.ns));
    snprintf(control, sizeof control, "%s/dom0/control.sock", vt_instance_dir(B.ns));
    snprintf(log, sizeof log, "%s/dispatcher2.log", vt_instance_dir(B.ns));
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && kill(d, 0) == 0;)
        usleep(20000);
    pid_t d2 = vt_spawn(ARGS(VRPC_SIM_BIN, "exec", "--ns", B.ns, "dom0", "--", VRPC_DISPATCHER_BIN,
                             "--etc", B.etc, "--socket", sock, "--control", control),
                        log);
    ck_assert_int_gt(d2, 0);
    ck_assert(wait_link(&A, "hostb", "up"));
    VtResult w = vt_run(ARGS(VRPC_SIM_BIN, "exec", "--ns", B.ns, "dom0", "--", VRPC_CTL_BIN,
                             "--control", control, "wait-guests", "1", "--timeout", "60"),
                        90);
    vt_result_free(&w);
    expect(&A, "work", "back", "vault@hostb", "demo.Echo", 0, "back");
    teardown_check();
    waitpid(d2, NULL, 0);
}
END_TEST

/* 100 remote calls at once, all answered. */
START_TEST(concurrent_100)
{
    setup("c100");
    host_baseline(&A);
    host_baseline(&B);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "for i in $(seq 100); do (r=$(printf \"x$i\" | %s vault@hostb demo.Echo); "
             "echo \"<$r>\") & done; wait",
             VRPC_CALL_BIN);
    VtResult r = vt_run(ARGS(VRPC_SIM_BIN, "exec", "--ns", A.ns, "work", "--", "bash", "-c", cmd),
                        600);
    ck_assert_int_eq(r.status, 0);
    for (int i = 1; i <= 100; i++) {
        char want[16];
        snprintf(want, sizeof want, "<x%d>\n", i);
        ck_assert_msg(strstr(r.out, want), "no answer %d: %s", i, r.err);
    }
    vt_result_free(&r);
    teardown_check();
}
END_TEST

/* Bad host: sections stop the dispatcher at start with FILE:LINE:COL and a reason. */
START_TEST(config_errors)
{
    pki();
    static const struct {
        const char *yaml, *where, *what;
    } bad[] = {
        {"host:\n  name: hosta\n  colour: red\n", ":3:3:", "unknown key"},
        {"host:\n  name: Host_A\n", ":2:9:", "invalid host name"},
        {"host:\n  name: hosta\n  listen: \"127.0.0.1:99999\"\n"
         "  tls: {ca: PKI/ca.pem, cert: PKI/hosta.pem, key: PKI/hosta.key}\n",
         ":3:11:", "invalid address"},
        {"host:\n  name: hosta\n  listen: \"127.0.0.1:7001\"\n"
         "  tls: {ca: /nonexistent/ca.pem, cert: /x, key: /y}\n",
         ":4:13:", "No such file"},
        {"host:\n  name: hosta\n  listen: \"127.0.0.1:7001\"\n"
         "  tls: {ca: PKI/ca.pem, cert: PKI/hosta.pem, key: PKI/hosta.key}\n"
         "  peers:\n    hosta: \"127.0.0.1:7002\"\n",
         ":6:5:", "this host's own name"},
        /* the files themselves, checked before anything starts (no sim needed) */
        {"host:\n  name: hosta\n  listen: \"127.0.0.1:7001\"\n  tls:\n    ca: PKI/ca.pem\n"
         "    cert: PKI/hostb.pem\n    key: PKI/hostb.key\n",
         ":6:11: host.tls.cert:", "does not name host hosta"},
        {"host:\n  name: hosta\n  listen: \"127.0.0.1:7001\"\n  tls:\n    ca: PKI/ca.pem\n"
         "    cert: PKI/hosta.pem\n    key: PKI/hostb.key\n",
         ":7:10: host.tls.key:", "mismatch"},
        {"host:\n  name: hosta\n  listen: \"127.0.0.1:7001\"\n  tls:\n    ca: PKI/hosta.key\n"
         "    cert: PKI/hosta.pem\n    key: PKI/hosta.key\n",
         ":5:9: host.tls.ca:", "hosta.key"},
    };
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/vrpc-xhost-cfg-%d", (int)getpid());
    mkdir(dir, 0755);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char y[1024], *o = y;
        for (const char *p = bad[i].yaml; *p;) {
            if (strncmp(p, "PKI", 3) == 0) {
                o += sprintf(o, "%s", g_pki);
                p += 3;
            } else {
                *o++ = *p++;
            }
        }
        *o = '\0';
        write_file(dir, "dispatcher.yaml", y, 0644);
        VtResult r = vt_run(ARGS(VRPC_DISPATCHER_BIN, "--etc", dir, "--socket", "/nonexistent/s"),
                            60);
        ck_assert_msg(r.status != 0, "case %zu accepted", i);
        ck_assert_msg(strstr(r.err, "dispatcher.yaml") && strstr(r.err, bad[i].where) &&
                          strstr(r.err, bad[i].what),
                      "case %zu: '%s'", i, r.err);
        vt_result_free(&r);
    }
    /* A key others may read: a warning, with where it is configured (the run then goes on to
     * make its sockets, in @dir, and fails at xenstore: no sim here). */
    {
        char y[2048], cmd[1200];
        snprintf(cmd, sizeof cmd, "cp %s/hosta.key %s/open.key && chmod 0644 %s/open.key", g_pki,
                 dir, dir);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(y, sizeof y,
                 "host:\n  name: hosta\n  listen: \"127.0.0.1:7001\"\n  tls:\n    ca: %s/ca.pem\n"
                 "    cert: %s/hosta.pem\n    key: %s/open.key\n",
                 g_pki, g_pki, dir);
        write_file(dir, "dispatcher.yaml", y, 0644);
        char sock[300], control[300];
        snprintf(sock, sizeof sock, "%s/run/vrpc.sock", dir);
        snprintf(control, sizeof control, "%s/run/control.sock", dir);
        VtResult r = vt_run(
            ARGS(VRPC_DISPATCHER_BIN, "--etc", dir, "--socket", sock, "--control", control), 60);
        ck_assert_msg(strstr(r.err, ":7:10: host.tls.key:") && strstr(r.err, "mode 0644") &&
                          strstr(r.err, "make it 0600"),
                      "no warning for a key of mode 0644: '%s'", r.err);
        vt_result_free(&r);
    }
    VtResult r = vt_run(ARGS("rm", "-rf", dir, g_pki), 60);
    vt_result_free(&r);
}
END_TEST

/* A raw TLS client with a valid certificate (host hostc, a configured peer of hosta)
 * sending garbage frames loses its own link; hostb's link and calls are untouched. */
START_TEST(hostile_peer)
{
    pki();
    A.port = free_port();
    B.port = free_port();
    host_prepare(&A, &B, "hp-a");
    host_prepare(&B, &A, "hp-b");
    char extra[64];
    snprintf(extra, sizeof extra, "    hostc: \"127.0.0.1:%d\"\n", free_port());
    host_config(&A, &B, "hosta", extra);
    host_config(&B, &A, "hostb", NULL);
    vt_sim_up_vrpc(A.ns, A.etc, ARGS("work"));
    vt_sim_up_vrpc(B.ns, B.etc, ARGS("vault"));
    ck_assert(wait_link(&A, "hostb", "up"));
    /* hosta keeps dialling hostc (nothing listens there): its baseline is taken between
     * tries, with the link to hostb up */
    host_baseline_links(&A, 1);
    host_baseline(&B);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "head -c 65536 /dev/urandom | timeout 60 openssl s_client -quiet -tls1_3 "
             "-connect 127.0.0.1:%d -cert %s/hostc.pem -key %s/hostc.key -CAfile %s/ca.pem "
             ">/dev/null 2>&1; true",
             A.port, g_pki, g_pki, g_pki);
    VtResult r = vt_run(ARGS("bash", "-c", cmd), 120);
    vt_result_free(&r);
    bool seen = false;
    for (long long end = now_ms() + VT_HANG_MS; now_ms() < end && !seen; usleep(50000)) {
        char *lg = log_of(&A, "dispatcher.log");
        seen = strstr(lg, "host hostc") != NULL;
        free(lg);
    }
    ck_assert_msg(seen, "hosta did not log the hostile link");
    ck_assert(wait_link(&A, "hostb", "up"));
    expect(&A, "work", "still", "vault@hostb", "demo.Echo", 0, "still");
    teardown_check();
}
END_TEST

/* The dialer tries every address the peer's name resolves to. hosta runs in a private mount
 * namespace whose /etc/hosts gives hostb's DNS name two addresses, first 127.0.0.1 (nothing
 * listens on that port: refused) and then 127.0.0.9, where hostb listens. hostb's own address
 * for hosta is a closed port, so the link can only be hosta's dial to the second address.
 * Needs root (unshare, mount). */
START_TEST(multi_address)
{
    if (geteuid() != 0) {
        fprintf(stderr, "multi_address: needs root for a private /etc/hosts; not run\n");
        return;
    }
    pki();
    A.port = free_port();
    B.port = free_port();
    int closed = free_port();
    host_prepare(&A, &B, "ma-a");
    host_prepare(&B, &A, "ma-b");
    char addr[64], hosts[512];
    snprintf(addr, sizeof addr, "hostb-multi.test:%d", B.port);
    host_config_at(&A, "127.0.0.1", "hostb", addr, "hosta", NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", closed);
    host_config_at(&B, "127.0.0.9", "hosta", addr, "hostb", NULL);
    write_file(A.etc, "hosts",
               "127.0.0.1 localhost\n127.0.0.1 hostb-multi.test\n127.0.0.9 hostb-multi.test\n",
               0644);
    snprintf(hosts, sizeof hosts, "%s/hosts", A.etc);
    vt_sim_up_vrpc(B.ns, B.etc, ARGS("vault"));
    /* hosta's whole instance inherits the namespace; the resolver's order is checked first */
    static const char script[] =
        "mount --bind \"$1\" /etc/hosts\n"
        "first=$(getent ahostsv4 hostb-multi.test | head -n 1)\n"
        "case \"$first\" in \"127.0.0.1 \"*) ;; *) echo \"first address: $first\" >&2; exit 3;; esac\n"
        "exec \"$2\" up --ns \"$3\" --vrpc --etc \"$4\" work\n";
    VtResult r = vt_run(ARGS("unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                             "sh", hosts, VRPC_SIM_BIN, A.ns, A.etc),
                        VT_HANG_S);
    ck_assert_msg(r.status == 0, "hosta in its own mount namespace (%d): %s", r.status, r.err);
    vt_result_free(&r);
    ck_assert_msg(wait_link(&A, "hostb", "up"), "link hosta -> hostb not up");
    ck_assert_msg(wait_link(&B, "hosta", "up"), "link hostb -> hosta not up");
    host_baseline(&A);
    host_baseline(&B);
    expect(&A, "work", "over the second address", "vault@hostb", "demo.Echo", 0,
           "over the second address");
    teardown_check();
}
END_TEST

int main(void)
{
    const VtCase cases[] = {
        {"remote_calls", remote_calls, 600},   {"policy_deny", policy_deny, 600},
        {"gib_stream", gib_stream, 1500},      {"rogue_ca", rogue_ca, 600},
        {"wrong_name", wrong_name, 600},       {"link_killed", link_killed, 600},
        {"peer_restart", peer_restart, 600},   {"concurrent_100", concurrent_100, 900},
        {"config_errors", config_errors, 300}, {"hostile_peer", hostile_peer, 600},
        {"multi_address", multi_address, 600},
    };
    return vt_main("xhost", cases, sizeof cases / sizeof cases[0], "vrpc-xhost-");
}
