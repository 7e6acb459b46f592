/* SPDX-License-Identifier: MIT */
/*
 * dtest.c - the helpers of the dispatcher's integration tests (test-dispatcher.c,
 * test-ask.c): an environment of one sim instance with the real dispatcher in dom0 and fake
 * agents in the guests, calls, vrpc-ctl, the audit log, and the leak checks at the end.
 */
#include "dtest.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const test_policy = "rules:\n"
                                "  - service: vrpc.Ping\n"
                                "    source: vault\n"
                                "    target: \"*\"\n"
                                "    action: deny\n"
                                "  - service: \"demo.*\"\n"
                                "    source: \"@anyvm\"\n"
                                "    target: \"@adminvm\"\n"
                                "    action: allow\n"
                                "  - service: \"vrpc.*\"\n"
                                "    source: \"@anyvm\"\n"
                                "    target: \"@adminvm\"\n"
                                "    action: allow\n"
                                "  - service: \"test.*\"\n"
                                "    source: \"@anyvm\"\n"
                                "    target: \"@adminvm\"\n"
                                "    action: allow\n"
                                "  - service: \"fake.*\"\n"
                                "    source: \"@anyvm\"\n"
                                "    target: \"@anyvm\"\n"
                                "    action: allow\n"
                                "  - service: \"fake.*\"\n"
                                "    source: \"@adminvm\"\n"
                                "    target: \"@anyvm\"\n"
                                "    action: allow\n"
                                "  - service: \"demo.*\"\n"
                                "    source: \"@adminvm\"\n"
                                "    target: \"@adminvm\"\n"
                                "    action: allow\n"
                                "  - service: \"demo.*\"\n"
                                "    source: \"*\"\n"
                                "    target: \"@anyvm\"\n"
                                "    action: allow\n";

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

void write_file(const char *path, const char *text)
{
    char tmp[512];
    int fd;

    /* Atomically, as docs/policy.md asks: a hidden temporary file, then rename. */
    snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
    {
        char *slash = strrchr(tmp, '/');
        char base[256];
        snprintf(base, sizeof(base), "%s", slash + 1);
        snprintf(slash + 1, sizeof(tmp) - (size_t)(slash + 1 - tmp), ".%s", base);
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", tmp, strerror(errno));
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(rename(tmp, path), 0);
}

VtResult ctl(Env *e, const char *a1, const char *a2, const char *a3, const char *a4)
{
    const char *argv[] = {VRPC_CTL, "--control", e->control, a1, a2, a3, a4, NULL};
    return vt_run(argv, 60);
}

char *ctl_status(Env *e)
{
    VtResult r = ctl(e, "status", NULL, NULL, NULL);
    char *out = r.status == 0 ? strdup(r.out) : NULL;
    vt_result_free(&r);
    return out;
}

void wait_guests(Env *e, int n)
{
    char count[16];
    snprintf(count, sizeof(count), "%d", n);
    VtResult r = ctl(e, "wait-guests", count, "--timeout", "30");
    ck_assert_msg(r.status == 0, "wait-guests %d: %d %s (log %s)", n, r.status, r.err, e->log);
    vt_result_free(&r);
}

/* Poll until `vrpc-ctl status` has @needle (true) or 20 s pass (false). */
bool wait_status(Env *e, const char *needle, bool present)
{
    long long end = now_ms() + VT_HANG_MS;
    while (now_ms() < end) {
        char *s = ctl_status(e);
        bool has = s && strstr(s, needle);
        free(s);
        if (has == present)
            return true;
        sleep_ms(20);
    }
    return false;
}

const char *dtest_disp_option;

void disp_start(Env *e)
{
    const char *argv[] = {VRPC_SIM_BIN,
                          "exec",
                          "--ns",
                          e->ns,
                          "dom0",
                          "--",
                          VRPC_DISPATCHER,
                          "--etc",
                          e->etc,
                          "--socket",
                          e->sock,
                          "--control",
                          e->control,
                          "--audit",
                          e->audit,
                          "--debug",
                          dtest_disp_option,
                          NULL};
    char *s = NULL;
    long long end = now_ms() + VT_HANG_MS;

    e->disp = vt_spawn(argv, e->log);
    ck_assert_int_gt(e->disp, 0);
    while (!s && now_ms() < end) {
        ck_assert_msg(kill(e->disp, 0) == 0 && waitpid(e->disp, NULL, WNOHANG) == 0,
                      "dispatcher died at start (log %s)", e->log);
        s = ctl_status(e);
        if (!s)
            sleep_ms(20);
    }
    ck_assert_msg(s != NULL, "dispatcher not answering (log %s)", e->log);
    free(s);
}

void disp_stop(Env *e)
{
    ck_assert_int_eq(kill(e->disp, SIGTERM), 0);
    ck_assert_int_eq(vt_wait(e->disp, VT_HANG_MS), 0);
    e->disp = 0;
}

pid_t agent_serve(Env *e, const char *dom)
{
    char log[160];
    const char *argv[] = {VRPC_SIM_BIN, "exec",     "--ns",  e->ns, dom,
                          "--",         FAKE_AGENT, "serve", NULL};
    ck_assert_int_lt(e->n_agents, MAX_AGENTS);
    snprintf(log, sizeof(log), "%s/agent-%s-%d.log", e->dir, dom, e->n_agents);
    e->agent[e->n_agents] = vt_spawn(argv, log);
    snprintf(e->agent_dom[e->n_agents], sizeof(e->agent_dom[0]), "%s", dom);
    return e->agent[e->n_agents++];
}

void agent_stop(Env *e, pid_t pid, int sig)
{
    for (int i = 0; i < e->n_agents; i++)
        if (e->agent[i] == pid) {
            kill(pid, sig);
            int st = vt_wait(pid, VT_HANG_MS);
            ck_assert_int_eq(st, sig == SIGTERM ? 0 : 128 + sig);
            e->agent[i] = 0;
        }
}

void agent_gone(Env *e, pid_t pid)
{
    for (int i = 0; i < e->n_agents; i++)
        if (e->agent[i] == pid && pid > 0) {
            ck_assert_msg(vt_wait(pid, VT_HANG_MS) >= 0, "agent %d did not go", (int)pid);
            e->agent[i] = 0;
        }
}

VtResult guest_call_opts(Env *e, const char *dom, const char *const *opts, const char *target,
                         const char *svc)
{
    const char *argv[32] = {VRPC_SIM_BIN, "exec", "--ns", e->ns, dom, "--", FAKE_AGENT};
    int n = 7;
    for (; opts && *opts; opts++)
        argv[n++] = *opts;
    argv[n++] = "call";
    argv[n++] = target;
    argv[n++] = svc;
    argv[n] = NULL;
    return vt_run(argv, 60);
}

VtResult guest_call(Env *e, const char *dom, const char *input, const char *target, const char *svc)
{
    const char *opts[] = {"--input", input, NULL};
    return guest_call_opts(e, dom, input ? opts : NULL, target, svc);
}

VtResult local_call(Env *e, const char *input, const char *target, const char *svc)
{
    const char *opts[] = {"--socket", e->sock, input ? "--input" : NULL, input, NULL};
    return guest_call_opts(e, "dom0", opts, target, svc);
}

void env_up(Env *e, const char *tag, const char *dispatcher_yaml, const char *const *guests)
{
    static const char *const shipped[] = {"demo.Echo", "demo.Uppercase", "vrpc.Ping"};
    char path[256], target[256];

    memset(e, 0, sizeof(*e));
    snprintf(e->ns, sizeof(e->ns), "%s", vt_ns(tag));
    for (const char *const *g = guests; *g; g++)
        e->n_guests++;
    vt_sim_up(e->ns, guests);
    snprintf(e->dir, sizeof(e->dir), "/tmp/vdt-%s-XXXXXX", tag);
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    snprintf(e->etc, sizeof(e->etc), "%s/etc", e->dir);
    snprintf(e->sock, sizeof(e->sock), "%s/run/d.sock", e->dir);
    snprintf(e->control, sizeof(e->control), "%s/run/control.sock", e->dir);
    snprintf(e->audit, sizeof(e->audit), "%s/audit.log", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/dispatcher.log", e->dir);
    ck_assert_int_eq(mkdir(e->etc, 0755), 0);
    snprintf(path, sizeof(path), "%s/policy.d", e->etc);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/services", e->etc);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
        snprintf(path, sizeof(path), "%s/services/%s", e->etc, shipped[i]);
        snprintf(target, sizeof(target), "%s/services/%s", VRPC_EXAMPLE_ETC_DIR, shipped[i]);
        ck_assert_int_eq(symlink(target, path), 0);
    }
    /* test.BadConfig: an executable with an invalid configuration (125). */
    snprintf(path, sizeof(path), "%s/services/test.BadConfig", e->etc);
    snprintf(target, sizeof(target), "%s/services/demo.Echo", VRPC_EXAMPLE_ETC_DIR);
    ck_assert_int_eq(symlink(target, path), 0);
    snprintf(path, sizeof(path), "%s/services/test.BadConfig.yaml", e->etc);
    write_file(path, "no-such-setting: 1\n");
    snprintf(path, sizeof(path), "%s/policy.d/50-test.yaml", e->etc);
    write_file(path, test_policy);
    if (dispatcher_yaml) {
        snprintf(path, sizeof(path), "%s/dispatcher.yaml", e->etc);
        write_file(path, dispatcher_yaml);
    }
    disp_start(e);
    /* The sim's Xen libraries keep a few process-wide sockets after the first vchan and
     * the first event: let one guest make one call (vrpc.Ping) and leave before counting. */
    {
        const char *argv[] = {VRPC_SIM_BIN, "exec", "--ns", e->ns,       guests[0], "--",
                              FAKE_AGENT,   "call", "dom0", "vrpc.Ping", NULL};
        VtResult r = vt_run(argv, 60);
        ck_assert_msg(r.status == 0, "fake-agent hello: %d %s", r.status, r.err);
        vt_result_free(&r);
        ck_assert(wait_status(e, "total guests 0 ", true));
    }
    /* What every test gives back: the dispatcher's fds (its sim event senders are not
     * per-connection), the instance's processes and grants, and each domain's xenstore
     * nodes, where no agent has left data/vrpc or data/vrpc-ready. */
    e->leak = vt_leak_new();
    vt_leak_instance(e->leak, e->ns, e->disp);
    ck_assert_msg(!strstr(vt_leak_text(e->leak, "xenstore nodes"), "/data/vrpc"), "%s",
                  vt_leak_text(e->leak, "xenstore nodes"));
    e->n_guests_up = e->n_guests;
}

void env_down(Env *e)
{
    for (int i = 0; i < e->n_agents; i++)
        if (e->agent[i] > 0)
            agent_stop(e, e->agent[i], SIGTERM);
    if (e->disp > 0) {
        ck_assert_msg(wait_status(e, "total guests 0 calls-in-flight 0", true),
                      "guests or calls left (log %s)", e->log);
        /* a restarted dispatcher is held to the first one's fds */
        vt_leak_follow(e->leak, "dispatcher fds", e->disp);
    } else {
        vt_leak_drop(e->leak, "dispatcher fds");
        vt_leak_drop(e->leak, "instance processes");
    }
    /* a destroyed guest (the test lowered n_guests) is gone with its processes, grants and
     * xenstore folder */
    for (int domid = e->n_guests + 1; domid <= e->n_guests_up; domid++)
        vt_leak_forget_domain(e->leak, domid);
    /* Connections are released right after they close: the check waits for them. */
    vt_leak_check(e->leak);
    vt_leak_free(e->leak);
    e->leak = NULL;
    if (e->disp > 0)
        disp_stop(e);
    vt_sim_down(e->ns);
    const char *rm[] = {"rm", "-rf", e->dir, NULL};
    VtResult r = vt_run(rm, VT_HANG_S);
    vt_result_free(&r);
}

bool json_flat_object(const char *p)
{
    if (*p++ != '{')
        return false;
    for (bool first = true;; first = false) {
        if (*p == '}' && first)
            return p[1] == '\0';
        if (*p++ != '"')
            return false;
        while (*p && *p != '"')
            p += *p == '\\' ? 2 : 1;
        if (*p++ != '"' || *p++ != ':')
            return false;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if ((unsigned char)*p < 0x20)
                    return false;
                p += *p == '\\' ? 2 : 1;
            }
            if (*p++ != '"')
                return false;
        } else if (strncmp(p, "null", 4) == 0) {
            p += 4;
        } else {
            char *end;
            strtod(p, &end);
            if (end == p)
                return false;
            p = end;
        }
        if (*p == '}')
            return p[1] == '\0';
        if (*p++ != ',')
            return false;
    }
}

/* The last line matching @source and @service among the lines after line @after (1-based), or
 * NULL; *@index is its line number. */
static char *audit_find(Env *e, const char *source, const char *service, size_t after,
                        size_t *index)
{
    char needle1[128], needle2[128], *text, *line, *save, *found = NULL;
    size_t n = 0;

    text = vt_read_file(e->audit);
    if (!text)
        return NULL;
    snprintf(needle1, sizeof(needle1), "\"source\":\"%s\"", source);
    snprintf(needle2, sizeof(needle2), "\"service\":\"%s\"", service);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        n++;
        if (n > after && strstr(line, needle1) && strstr(line, needle2)) {
            found = line;
            *index = n;
        }
    }
    found = found ? strdup(found) : NULL;
    free(text);
    return found;
}

char *audit_line(Env *e, const char *source, const char *service)
{
    size_t index;
    return audit_find(e, source, service, 0, &index);
}

char *wait_audit_line(Env *e, const char *source, const char *service)
{
    long long end = now_ms() + VT_HANG_MS;
    size_t index = 0;
    char *l = NULL;
    while (!(l = audit_find(e, source, service, e->audit_seen, &index)) && now_ms() < end)
        sleep_ms(20);
    if (l)
        e->audit_seen = index;
    return l;
}

void assert_alive(Env *e)
{
    ck_assert_msg(waitpid(e->disp, NULL, WNOHANG) == 0, "dispatcher died (log %s)", e->log);
}
