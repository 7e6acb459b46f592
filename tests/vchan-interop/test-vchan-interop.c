/* SPDX-License-Identifier: MIT */
/*
 * Interop tests of vrpc's vchan over the sim, against real Xen userspace: our library
 * (ovchan-peer) against Debian's libxenvchan (xvchan-peer) in both roles with in-page (2K)
 * and multi-page (64K, 1M) rings, 1 GiB each way with FNV checksums, close and kill -9 seen
 * by the survivor, domain death, vchan-cat against Debian's vchan-socket-proxy in both roles,
 * vchan-cat --uppercase/--persist, and the hostile peer: a process in the peer domain that
 * rewrites the control page at random while our side runs traffic (our side must end with
 * EPROTO or EOF, never hang; in the ASan build it runs instrumented). Every test brings up
 * its own sim instance; one Check test case per ctest entry (CK_RUN_CASE).
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "leak.h"
#include "vtest.h"

#define GiB "1073741824"

static const char *const two_guests[] = {"work", "vault", NULL};

/* Server in guest work (domid 1) for guest vault (domid 2); the client's absolute path. */
#define SRV_DOM "work"
#define CLI_DOM "vault"
#define SRV_FOR "2"
#define CLI_FOR "1"
#define SRV_PATH "data/vchan/2/t"
#define CLI_PATH "/local/domain/1/data/vchan/2/t"

static char *tmpname(const char *what)
{
    char *p;

    ck_assert_int_ge(asprintf(&p, "/tmp/vrpc-vi-%d-%s", (int)getpid(), what), 0);
    return p;
}

/* Wait until a vchan server has published @path/event-channel (read as dom0). */
/* Poll @file until it contains @what. */
static bool wait_output(const char *file, const char *what, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        char *s = vt_read_file(file);
        bool ok = s && strstr(s, what);

        free(s);
        if (ok)
            return true;
        usleep(10000);
    }
    return false;
}

/* The "fnv=..." of the line starting with @prefix in @s (NULL if absent). */
static const char *checksum_after(const char *s, const char *prefix)
{
    const char *p = s ? strstr(s, prefix) : NULL;

    return p ? strstr(p, "fnv=") : NULL;
}

/*
 * One transfer: server program @sprog in guest work, client @cprog in guest vault, @bytes
 * sent by the server (@server_sends) or by the client, the server asking for @ring bytes
 * each way. The sender's "sent N fnv=X" must equal the receiver's "received N fnv=X".
 */
static void transfer(const char *tag, const char *sprog, const char *cprog, bool server_sends,
                     const char *bytes, const char *ring)
{
    const char *ns = vt_ns(tag);
    char *slog = tmpname("srv.log"), *so, sent[64], received[64];
    const char *srv[] = {VRPC_SIM_BIN,
                         "exec",
                         "--ns",
                         ns,
                         SRV_DOM,
                         "--",
                         sprog,
                         "server",
                         SRV_FOR,
                         SRV_PATH,
                         server_sends ? "send" : "recv",
                         bytes,
                         "--ring",
                         ring,
                         NULL};
    const char *cli[] = {VRPC_SIM_BIN,
                         "exec",
                         "--ns",
                         ns,
                         CLI_DOM,
                         "--",
                         cprog,
                         "client",
                         CLI_FOR,
                         CLI_PATH,
                         server_sends ? "recv" : "send",
                         bytes,
                         NULL};
    const char *sender, *receiver, *hs, *hr;
    VtResult r;
    pid_t pid;

    vt_sim_up(ns, two_guests);
    pid = vt_spawn(srv, slog);
    vt_wait_vchan_server(ns, CLI_PATH);
    r = vt_run(cli, 600);
    ck_assert_msg(r.status == 0, "client failed (%d): %s %s", r.status, r.out, r.err);
    ck_assert_int_eq(vt_wait(pid, 60000), 0);
    so = vt_read_file(slog);
    ck_assert_ptr_nonnull(so);
    sender = server_sends ? so : r.out;
    receiver = server_sends ? r.out : so;
    snprintf(sent, sizeof(sent), "sent %s fnv=", bytes);
    snprintf(received, sizeof(received), "received %s fnv=", bytes);
    ck_assert_msg(strstr(sender, sent), "sender: %s", sender);
    ck_assert_msg(strstr(receiver, received), "receiver: %s", receiver);
    hs = checksum_after(sender, "sent ");
    hr = checksum_after(receiver, "received ");
    ck_assert_msg(hs && hr && strncmp(hs, hr, 20) == 0, "checksum mismatch: %s vs %s", sender,
                  receiver);
    free(so);
    unlink(slog);
    free(slog);
    vt_result_free(&r);
    vt_sim_down(ns);
}

#define O OVCHAN_PEER
#define X XVCHAN_PEER

/* ---- our server, Debian's client ---- */
START_TEST(ours_server_sends_2k)
{
    transfer("os2s", O, X, true, "16777216", "1024");
}
END_TEST
START_TEST(ours_server_recvs_2k)
{
    transfer("os2r", O, X, false, "16777216", "1024");
}
END_TEST
START_TEST(ours_server_sends_64k)
{
    transfer("os64s", O, X, true, GiB, "65536");
}
END_TEST
START_TEST(ours_server_recvs_64k)
{
    transfer("os64r", O, X, false, GiB, "65536");
}
END_TEST
START_TEST(ours_server_sends_1m)
{
    transfer("os1ms", O, X, true, GiB, "1048576");
}
END_TEST
START_TEST(ours_server_recvs_1m)
{
    transfer("os1mr", O, X, false, GiB, "1048576");
}
END_TEST

/* ---- Debian's server, our client ---- */
START_TEST(ours_client_recvs_2k)
{
    transfer("oc2r", X, O, true, "16777216", "1024");
}
END_TEST
START_TEST(ours_client_sends_2k)
{
    transfer("oc2s", X, O, false, "16777216", "1024");
}
END_TEST
START_TEST(ours_client_recvs_64k)
{
    transfer("oc64r", X, O, true, GiB, "65536");
}
END_TEST
START_TEST(ours_client_sends_64k)
{
    transfer("oc64s", X, O, false, GiB, "65536");
}
END_TEST
START_TEST(ours_client_recvs_1m)
{
    transfer("oc1mr", X, O, true, GiB, "1048576");
}
END_TEST
START_TEST(ours_client_sends_1m)
{
    transfer("oc1ms", X, O, false, GiB, "1048576");
}
END_TEST

/*
 * Our client starts first and waits for a real server in another guest. Found by the bench:
 * xenstored answers a guest's read of the keys not written yet with EACCES (their directory is
 * unreadable to it) and drops watch events it may not see; the wait must go on regardless.
 */
START_TEST(ours_client_waits_for_real_server)
{
    const char *ns = vt_ns("ocw");
    char *clog = tmpname("cli.log"), *co;
    const char *srv[] = {VRPC_SIM_BIN, "exec",   "--ns", ns,        SRV_DOM,  "--",   X,   "server",
                         SRV_FOR,      SRV_PATH, "send", "1048576", "--ring", "1024", NULL};
    const char *cli[] = {VRPC_SIM_BIN, "exec",  "--ns",   ns,     CLI_DOM,   "--", O,
                         "client",     CLI_FOR, CLI_PATH, "recv", "1048576", NULL};
    VtResult r;
    pid_t cp;

    vt_sim_up(ns, two_guests);
    cp = vt_spawn(cli, clog);
    usleep(500000); /* the client is waiting by now (not asserted: it may be slower) */
    r = vt_run(srv, 60);
    ck_assert_msg(r.status == 0, "server failed (%d): %s %s", r.status, r.out, r.err);
    ck_assert_int_eq(vt_wait(cp, VT_HANG_MS), 0);
    co = vt_read_file(clog);
    ck_assert_ptr_nonnull(co);
    ck_assert_msg(
        strstr(co, "received 1048576 fnv=") &&
            strncmp(checksum_after(co, "received "), checksum_after(r.out, "sent "), 20) == 0,
        "client: %s server: %s", co, r.out);
    free(co);
    unlink(clog);
    free(clog);
    vt_result_free(&r);
    vt_sim_down(ns);
}
END_TEST

/*
 * Close seen as EOF: one side pings @bytes (512-byte chunks echoed back and compared), then
 * closes; the echoing side must see EOF and exit 0 on its own.
 */
static void ping_then_close(const char *tag, const char *sprog, const char *cprog,
                            bool server_pings, const char *ring)
{
    const char *ns = vt_ns(tag);
    char *slog = tmpname("srv.log"), *so;
    const char *srv[] = {VRPC_SIM_BIN,
                         "exec",
                         "--ns",
                         ns,
                         SRV_DOM,
                         "--",
                         sprog,
                         "server",
                         SRV_FOR,
                         SRV_PATH,
                         server_pings ? "ping" : "echo",
                         "1048576",
                         "--ring",
                         ring,
                         NULL};
    const char *cli[] = {VRPC_SIM_BIN,
                         "exec",
                         "--ns",
                         ns,
                         CLI_DOM,
                         "--",
                         cprog,
                         "client",
                         CLI_FOR,
                         CLI_PATH,
                         server_pings ? "echo" : "ping",
                         "1048576",
                         NULL};
    VtResult r;
    pid_t pid;

    vt_sim_up(ns, two_guests);
    pid = vt_spawn(srv, slog);
    vt_wait_vchan_server(ns, CLI_PATH);
    r = vt_run(cli, 120);
    ck_assert_msg(r.status == 0, "client failed (%d): %s %s", r.status, r.out, r.err);
    /* the echo side exits by itself once it sees the pinger's close */
    ck_assert_int_eq(vt_wait(pid, VT_HANG_MS), 0);
    so = vt_read_file(slog);
    ck_assert_ptr_nonnull(so);
    ck_assert_msg(strstr(server_pings ? so : r.out, "echoed 1048576\n"), "pinger: %s%s", so, r.out);
    free(so);
    unlink(slog);
    free(slog);
    vt_result_free(&r);
    vt_sim_down(ns);
}

START_TEST(close_real_client_seen_by_our_server)
{
    ping_then_close("cl1", O, X, false, "1024");
}
END_TEST
START_TEST(close_our_server_seen_by_real_client)
{
    ping_then_close("cl2", O, X, true, "65536");
}
END_TEST
START_TEST(close_real_server_seen_by_our_client)
{
    ping_then_close("cl3", X, O, true, "1024");
}
END_TEST
START_TEST(close_our_client_seen_by_real_server)
{
    ping_then_close("cl4", X, O, false, "1048576");
}
END_TEST

/*
 * Both ends "hold"; then one is killed with SIGKILL (or its whole domain destroyed). The
 * survivor must see the channel closed and exit 0; ours also reports vchan_check_peer().
 */
static void kill_one(const char *tag, const char *sprog, const char *cprog, bool kill_server,
                     bool destroy_domain, bool srv_in_dom0, const char *expect_peer)
{
    const char *ns = vt_ns(tag);
    const char *cli_path = srv_in_dom0 ? "/local/domain/0/" SRV_PATH : CLI_PATH;
    char *slog = tmpname("srv.log"), *clog = tmpname("cli.log"), *out;
    const char *srv[] = {VRPC_SIM_BIN, "exec",   "--ns",   ns,      srv_in_dom0 ? "dom0" : SRV_DOM,
                         "--",         sprog,    "server", SRV_FOR, SRV_PATH,
                         "hold",       "--ring", "65536",  NULL};
    const char *cli[] = {VRPC_SIM_BIN, "exec",   "--ns",
                         ns,           CLI_DOM,  "--",
                         cprog,        "client", srv_in_dom0 ? "0" : CLI_FOR,
                         cli_path,     "hold",   NULL};
    const char *destroy[] = {VRPC_SIM_BIN, "destroy", "--ns", ns, kill_server ? SRV_DOM : CLI_DOM,
                             NULL};
    pid_t sp, cp;

    vt_sim_up(ns, two_guests);
    sp = vt_spawn(srv, slog);
    vt_wait_vchan_server(ns, cli_path);
    cp = vt_spawn(cli, clog);
    ck_assert_msg(wait_output(clog, "ready", 10000), "client never connected");
    ck_assert_msg(wait_output(slog, "ready", 10000), "server never saw the client");
    if (destroy_domain) {
        VtResult r = vt_run(destroy, 60);

        ck_assert_msg(r.status == 0, "destroy failed: %s", r.err);
        vt_result_free(&r);
        ck_assert_int_ge(vt_wait(kill_server ? sp : cp, VT_HANG_MS), 0);
    } else {
        kill(kill_server ? sp : cp, SIGKILL);
        ck_assert_int_eq(vt_wait(kill_server ? sp : cp, VT_HANG_MS), 128 + SIGKILL);
    }
    /* the survivor sees the channel closed (not a hang) and exits 0 */
    ck_assert_int_eq(vt_wait(kill_server ? cp : sp, VT_HANG_MS), 0);
    out = vt_read_file(kill_server ? clog : slog);
    ck_assert_msg(out && strstr(out, "closed\n"), "survivor: %s", out);
    if (expect_peer)
        ck_assert_msg(strstr(out, expect_peer), "survivor: %s", out);
    else /* ours may not be able to tell (a guest server: -EACCES), but never says "gone" */
        ck_assert_msg(!strstr(out, "peer-domain 0\n"), "survivor: %s", out);
    free(out);
    unlink(slog);
    unlink(clog);
    free(slog);
    free(clog);
    vt_sim_down(ns);
}

/* A guest server cannot ask xenstored about another domain (EACCES): not asserted. */
START_TEST(kill_real_client_seen_by_our_server)
{
    kill_one("k1", O, X, false, false, false, NULL);
}
END_TEST
START_TEST(kill_our_server_seen_by_real_client)
{
    kill_one("k2", O, X, true, false, false, NULL);
}
END_TEST
/* the process died, its domain lives: a guest client falls back to the server's ring-ref */
START_TEST(kill_real_server_seen_by_our_client)
{
    kill_one("k3", X, O, true, false, false, "peer-domain 1\n");
}
END_TEST
START_TEST(kill_our_client_seen_by_real_server)
{
    kill_one("k4", X, O, false, false, false, NULL);
}
END_TEST
START_TEST(kill_real_client_seen_by_our_dom0_server)
{
    kill_one("k5", O, X, false, false, true, "peer-domain 1\n");
}
END_TEST
START_TEST(destroy_server_domain_seen_by_our_client)
{
    kill_one("d1", X, O, true, true, false, "peer-domain 0\n");
}
END_TEST
START_TEST(destroy_client_domain_seen_by_our_dom0_server)
{
    kill_one("d2", O, X, false, true, true, "peer-domain 0\n");
}
END_TEST

/* ---- vchan-cat ---- */

/* Run `sh -c SCRIPT` as @dom in @ns; returns the result. */
static VtResult sh_as(const char *ns, const char *dom, const char *script, int timeout_s)
{
    const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", ns, dom, "--", "sh", "-c", script, NULL};

    return vt_run(argv, timeout_s);
}

START_TEST(vchan_cat_uppercase)
{
    const char *ns = vt_ns("up");
    const char *srv[] = {VRPC_SIM_BIN,  "exec",    "--ns",   ns,  "work",
                         "--",          VCHAN_CAT, "server", "0", "data/vchan/0/up",
                         "--uppercase", NULL};
    VtResult r;
    pid_t pid;

    vt_sim_up(ns, two_guests);
    pid = vt_spawn(srv, NULL);
    vt_wait_vchan_server(ns, "/local/domain/1/data/vchan/0/up");
    r = sh_as(ns, "dom0",
              "printf 'hello from dom0' | " VCHAN_CAT " client 1 /local/domain/1/data/vchan/0/up",
              60);
    ck_assert_msg(r.status == 0, "client failed (%d): %s", r.status, r.err);
    ck_assert_str_eq(r.out, "HELLO FROM DOM0");
    vt_result_free(&r);
    /* without --persist the server exits by itself once its client has left */
    ck_assert_int_eq(vt_wait(pid, VT_HANG_MS), 0);
    vt_sim_down(ns);
}
END_TEST

START_TEST(vchan_cat_uppercase_persist)
{
    const char *ns = vt_ns("upp");
    const char *srv[] = {VRPC_SIM_BIN,  "exec",      "--ns",   ns,  "work",
                         "--",          VCHAN_CAT,   "server", "2", "data/vchan/2/up",
                         "--uppercase", "--persist", NULL};
    static const char *const msgs[] = {"first client", "second client, MixedCase 123"};
    static const char *const want[] = {"FIRST CLIENT", "SECOND CLIENT, MIXEDCASE 123"};
    pid_t pid;

    vt_sim_up(ns, two_guests);
    pid = vt_spawn(srv, NULL);
    for (int i = 0; i < 2; i++) {
        char script[512];
        VtResult r;

        /* the server re-offers the vchan after each client: wait for the fresh keys */
        vt_wait_vchan_server(ns, "/local/domain/1/data/vchan/2/up");
        snprintf(script, sizeof(script),
                 "printf '%s' | %s client 1 /local/domain/1/data/vchan/2/up --wait 10000", msgs[i],
                 VCHAN_CAT);
        r = sh_as(ns, "vault", script, 60);
        ck_assert_msg(r.status == 0, "client %d failed (%d): %s", i, r.status, r.err);
        ck_assert_str_eq(r.out, want[i]);
        vt_result_free(&r);
    }
    /* still serving: a persistent server does not exit when a client leaves */
    ck_assert_int_eq(vt_wait(pid, 200), -1);
    kill(pid, SIGTERM);
    ck_assert_int_eq(vt_wait(pid, VT_HANG_MS), 0);
    vt_sim_down(ns);
}
END_TEST

/*
 * vchan-cat to vchan-cat between two guests, 1 MiB one way with nothing coming back, then 1
 * MiB the other way: many times the rings (1 KiB by default), so the writer must be woken
 * by the reader's reads. (A partial write used to arm no wake-up: the writer slept for good
 * after the first ring full, and the reader, idle, lingered out with exit 0 on 1 KiB.)
 */
START_TEST(vchan_cat_both_ways)
{
    const char *ns = vt_ns("cat2");
    char *in = tmpname("in"), *out = tmpname("out");
    const char *cmp[] = {"cmp", in, out, NULL};
    char script[1024];
    VtResult r;

    vt_sim_up(ns, two_guests);
    snprintf(script, sizeof(script), "head -c 1048576 /dev/urandom > %s", in);
    r = sh_as(ns, "dom0", script, 60);
    ck_assert_int_eq(r.status, 0);
    vt_result_free(&r);
    for (int dir = 0; dir < 2; dir++) {
        char path[64], sargs[600];
        /* dir 0: the client (vault) sends; dir 1: the server (work) sends */
        snprintf(path, sizeof(path), "data/vchan/2/bw%d", dir);
        snprintf(sargs, sizeof(sargs), "exec %s server 2 %s %s %s", VCHAN_CAT, path,
                 dir ? "<" : ">", dir ? in : out);
        const char *srv[] = {VRPC_SIM_BIN, "exec", "--ns", ns,    "work",
                             "--",         "sh",   "-c",   sargs, NULL};
        pid_t pid = vt_spawn(srv, NULL);
        char full[96];
        snprintf(full, sizeof(full), "/local/domain/1/%s", path);
        vt_wait_vchan_server(ns, full);
        snprintf(script, sizeof(script), "%s client 1 %s %s %s", VCHAN_CAT, full, dir ? ">" : "<",
                 dir ? out : in);
        r = sh_as(ns, "vault", script, 120);
        ck_assert_msg(r.status == 0, "direction %d: client failed (%d): %s", dir, r.status, r.err);
        vt_result_free(&r);
        ck_assert_msg(vt_wait(pid, VT_HANG_MS) == 0, "direction %d: server did not end with 0",
                      dir);
        r = vt_run(cmp, VT_HANG_S);
        ck_assert_msg(r.status == 0, "direction %d: the bytes differ: %s", dir, r.out);
        vt_result_free(&r);
        unlink(out);
    }
    unlink(in);
    free(in);
    free(out);
    vt_sim_down(ns);
}
END_TEST

/*
 * vchan-cat client (dom0) -> vchan-socket-proxy server mode (guest work) -> Unix echo
 * socket: 1 MiB of random data must come back unchanged. vchan-cat's stdin is held back
 * until the proxy has connected its socket (the proxy strands earlier data, docs/sim.md).
 */
START_TEST(vchan_cat_client_to_proxy_server)
{
    const char *ns = vt_ns("pxs");
    char *sock = tmpname("echo.sock"), *in = tmpname("in"), *out = tmpname("out");
    char script[2048];
    const char *pargv[] = {
        VRPC_SIM_BIN, "exec", "--ns",           ns,   "work", "--", VCHAN_SOCKET_PROXY, "-m",
        "server",     "0",    "data/vchan/0/p", sock, NULL};
    const char *cmp[] = {"cmp", in, out, NULL};
    pid_t echo, proxy;
    VtResult r;

    vt_sim_up(ns, two_guests);
    echo = vt_unix_echo_server(sock);
    proxy = vt_spawn(pargv, NULL);
    vt_wait_vchan_server(ns, "/local/domain/1/data/vchan/0/p");
    snprintf(script, sizeof(script),
             "head -c 1048576 /dev/urandom > %s && rm -f %s.accepted && "
             "(while [ ! -e %s.accepted ]; do sleep 0.01; done; cat %s) | "
             "%s client 1 /local/domain/1/data/vchan/0/p --linger 3000 > %s",
             in, sock, sock, in, VCHAN_CAT, out);
    r = sh_as(ns, "dom0", script, 120);
    ck_assert_msg(r.status == 0, "vchan-cat through the proxy failed (%d): %s", r.status, r.err);
    vt_result_free(&r);
    r = vt_run(cmp, VT_HANG_S);
    ck_assert_msg(r.status == 0, "echoed data differs: %s", r.out);
    vt_result_free(&r);
    kill(proxy, SIGKILL);
    vt_wait(proxy, VT_HANG_MS);
    kill(echo, SIGKILL);
    vt_wait(echo, VT_HANG_MS);
    unlink(in);
    unlink(out);
    unlink(sock);
    {
        char acc[300];

        snprintf(acc, sizeof(acc), "%s.accepted", sock);
        unlink(acc);
    }
    free(in);
    free(out);
    free(sock);
    vt_sim_down(ns);
}
END_TEST

/*
 * vchan-socket-proxy client mode (dom0, listening on a Unix socket) -> vchan-cat server
 * --uppercase (guest vault): what goes into the socket comes back uppercased, in several
 * rounds including one larger than the ring.
 */
START_TEST(proxy_client_to_vchan_cat_server)
{
    const char *ns = vt_ns("pxc");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char *sock = tmpname("proxy.sock");
    const char *sargv[] = {VRPC_SIM_BIN,  "exec",    "--ns",   ns,  "vault",
                           "--",          VCHAN_CAT, "server", "0", "data/vchan/0/u",
                           "--uppercase", NULL};
    const char *pargv[] = {VRPC_SIM_BIN,
                           "exec",
                           "--ns",
                           ns,
                           "dom0",
                           "--",
                           VCHAN_SOCKET_PROXY,
                           "-m",
                           "client",
                           "2",
                           "/local/domain/2/data/vchan/0/u",
                           sock,
                           NULL};
    static char buf[200000], back[200000];
    pid_t server, proxy;
    int fd = -1;

    vt_sim_up(ns, two_guests);
    server = vt_spawn(sargv, NULL);
    vt_wait_vchan_server(ns, "/local/domain/2/data/vchan/0/u");
    unlink(sock);
    proxy = vt_spawn(pargv, NULL);
    ck_assert(vt_wait_path(sock, VT_HANG_MS));
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
    for (int i = 0; i < 100; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            break;
        close(fd);
        fd = -1;
        usleep(20000);
    }
    ck_assert_int_ge(fd, 0);
    for (int round = 0; round < 4; round++) {
        size_t len = round == 3 ? sizeof(buf) : 15, got = 0;

        if (round < 3)
            memcpy(buf, "hello from dom0", 15);
        else
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)('a' + i % 26);
        ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
        while (got < len) {
            ssize_t n = read(fd, back + got, len - got);

            ck_assert_int_gt(n, 0);
            got += (size_t)n;
        }
        for (size_t i = 0; i < len; i++)
            buf[i] = buf[i] >= 'a' && buf[i] <= 'z' ? (char)(buf[i] - 32) : buf[i];
        ck_assert_int_eq(memcmp(buf, back, len), 0);
        if (round < 3)
            ck_assert_int_eq(memcmp(back, "HELLO FROM DOM0", 15), 0);
    }
    close(fd);
    kill(proxy, SIGKILL);
    vt_wait(proxy, VT_HANG_MS);
    kill(server, SIGTERM);
    ck_assert_int_ge(vt_wait(server, VT_HANG_MS), 0);
    unlink(sock);
    free(sock);
    vt_sim_down(ns);
}
END_TEST

/* ---- hostile peer ---- */

/*
 * Rounds of attack: hostile-peer (Debian's libxenvchan plus a scribbler thread) in one
 * domain, ovchan-peer "stress" in the other. Ours must print "outcome eproto" or "outcome
 * eof" and exit 0 within the bound; in the ASan build any bad access aborts it instead.
 */
static void hostile(const char *tag, bool attacker_is_server)
{
    const char *ns = vt_ns(tag);
    static const char *const rings[] = {"1024", "65536", "1048576", "4096"};
    int eproto = 0, eof = 0;

    vt_sim_up(ns, two_guests);
    for (int round = 0; round < 8; round++) {
        char seed[16], *alog = tmpname("attacker.log");
        const char *ring = rings[round % 4];
        const char *srv_prog = attacker_is_server ? HOSTILE_PEER : O;
        const char *cli_prog = attacker_is_server ? O : HOSTILE_PEER;
        const char *att_srv[] = {VRPC_SIM_BIN, "exec",   "--ns",   ns,      SRV_DOM,
                                 "--",         srv_prog, "server", SRV_FOR, SRV_PATH,
                                 "2",          seed,     "--ring", ring,    NULL};
        const char *att_cli[] = {VRPC_SIM_BIN, "exec",  "--ns",   ns,  CLI_DOM, "--", cli_prog,
                                 "client",     CLI_FOR, CLI_PATH, "2", seed,    NULL};
        const char *our_srv[] = {VRPC_SIM_BIN, "exec",  "--ns",   ns,      SRV_DOM,
                                 "--",         O,       "server", SRV_FOR, SRV_PATH,
                                 "stress",     "60000", "--ring", ring,    NULL};
        const char *our_cli[] = {VRPC_SIM_BIN, "exec",  "--ns",   ns,       CLI_DOM, "--", O,
                                 "client",     CLI_FOR, CLI_PATH, "stress", "60000", NULL};
        VtResult r;
        pid_t att;
        int st;

        snprintf(seed, sizeof(seed), "%d", 1000 + round);
        if (attacker_is_server) {
            att = vt_spawn(att_srv, alog);
            vt_wait_vchan_server(ns, CLI_PATH);
            r = vt_run(our_cli, 120);
        } else {
            pid_t ours;
            char *olog = tmpname("ours.log");

            ours = vt_spawn(our_srv, olog);
            vt_wait_vchan_server(ns, CLI_PATH);
            att = vt_spawn(att_cli, alog);
            st = vt_wait(ours, 120000);
            r = (VtResult){.status = st, .out = vt_read_file(olog), .err = strdup("")};
            if (st < 0) {
                kill(ours, SIGKILL);
                vt_wait(ours, VT_HANG_MS);
            }
            unlink(olog);
            free(olog);
        }
        /* the attacker stops by itself after 2 s */
        st = vt_wait(att, VT_HANG_MS);
        if (st < 0) {
            kill(att, SIGKILL);
            vt_wait(att, VT_HANG_MS);
        }
        ck_assert_msg(r.status == 0, "round %d (seed %s, ring %s): our side failed (%d): %s %s",
                      round, seed, ring, r.status, r.out ? r.out : "", r.err);
        ck_assert_msg(r.out && (strstr(r.out, "outcome eproto") || strstr(r.out, "outcome eof")),
                      "round %d: %s", round, r.out);
        eproto += strstr(r.out, "eproto") != NULL;
        eof += strstr(r.out, "outcome eof") != NULL;
        vt_result_free(&r);
        unlink(alog);
        free(alog);
        /* the server of the next round publishes at the same path: wait for this one's
         * keys to go (a killed libxenvchan server leaves them; remove them as dom0) */
        {
            const char *rm[] = {VRPC_SIM_BIN, "exec",        "--ns",   ns,  "dom0",
                                "--",         "xenstore-rm", CLI_PATH, NULL};
            VtResult rr = vt_run(rm, VT_HANG_S);

            vt_result_free(&rr);
        }
    }
    /* the attack must actually have broken the protocol at least once */
    ck_assert_msg(eproto > 0, "no round ended in EPROTO (%d EOF)", eof);
    vt_sim_down(ns);
}

START_TEST(hostile_server_attacks_our_client)
{
    hostile("hs", true);
}
END_TEST
START_TEST(hostile_client_attacks_our_server)
{
    hostile("hc", false);
}
END_TEST

static Suite *interop_suite(void)
{
    Suite *s = suite_create("vchan-interop");
    struct {
        const char *name;
        int timeout;
        const TTest *tests[4];
    } cases[] = {
        {"ours-server-2k", 300, {ours_server_sends_2k, ours_server_recvs_2k}},
        {"ours-server-64k", 900, {ours_server_sends_64k, ours_server_recvs_64k}},
        {"ours-server-1m", 900, {ours_server_sends_1m, ours_server_recvs_1m}},
        {"ours-client-2k",
         300,
         {ours_client_recvs_2k, ours_client_sends_2k, ours_client_waits_for_real_server}},
        {"ours-client-64k", 900, {ours_client_recvs_64k, ours_client_sends_64k}},
        {"ours-client-1m", 900, {ours_client_recvs_1m, ours_client_sends_1m}},
        {"close",
         300,
         {close_real_client_seen_by_our_server, close_our_server_seen_by_real_client,
          close_real_server_seen_by_our_client, close_our_client_seen_by_real_server}},
        {"kill",
         300,
         {kill_real_client_seen_by_our_server, kill_our_server_seen_by_real_client,
          kill_real_server_seen_by_our_client, kill_our_client_seen_by_real_server}},
        {"domain-death",
         300,
         {destroy_server_domain_seen_by_our_client, destroy_client_domain_seen_by_our_dom0_server,
          kill_real_client_seen_by_our_dom0_server}},
        {"vchan-cat", 300, {vchan_cat_uppercase, vchan_cat_uppercase_persist, vchan_cat_both_ways}},
        {"socket-proxy", 300, {vchan_cat_client_to_proxy_server, proxy_client_to_vchan_cat_server}},
        {"hostile-server", 600, {hostile_server_attacks_our_client}},
        {"hostile-client", 600, {hostile_client_attacks_our_server}},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);

        tcase_set_timeout(tc, cases[i].timeout);
        vt_leak_fixture(tc);
        for (int j = 0; j < 4 && cases[i].tests[j]; j++)
            tcase_add_test(tc, cases[i].tests[j]);
        tcase_add_unchecked_fixture(tc, NULL, vt_cleanup_instances);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    vt_init();
    signal(SIGPIPE, SIG_IGN);
    sr = srunner_create(interop_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
