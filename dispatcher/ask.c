/* SPDX-License-Identifier: MIT */
/*
 * ask.c - the prompt program behind a policy `ask` and the notify program behind
 * `notify: true`. A program is started with posix_spawn (no shell; argv from the call, stdin
 * /dev/null, a clean environment, no fd but 0-2, its own session) and then only watched from
 * the loop: a pidfd tells when it exits, its stdout pipe is read without blocking, a timer
 * bounds it. The dispatcher therefore never waits for a human: other calls, guests and
 * policy reloads go on while prompts are pending. An ask is answered by the first line of
 * the program's stdout together with its exit status: "allow" or "allow NAME" count only
 * when the program exits 0; any other first line denies at once; no answer within the
 * timeout denies. A program that is denied for, timed out, or whose call went away is killed
 * with its process group, and every program is reaped when its pidfd fires (no zombies; its
 * fds and loop sources go with it). Notify programs are fire-and-forget and rate-limited.
 */
#include "ask.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "vrpc-services.h"
#include "common/list.h"

/* The whole environment of both programs: nothing of the dispatcher's leaks through. */
#define ASK_ENV_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct Ask {
    AskSet *set;
    Ask *prev, *next;
    bool is_notify;
    pid_t pid;         /* 0 once reaped */
    int pidfd, out_fd; /* -1 when closed */
    RpcLoopSource *pid_src, *out_src, *timer;
    AskDoneFn fn; /* NULL once answered or cancelled */
    void *userdata;
    bool killed;
    char line[ASK_LINE_MAX + 1];
    size_t line_len;
    bool line_done; /* a '\n' was read, or the line overflowed */
    bool overflow;
    char *what;        /* asks: "SOURCE CALL TARGET", for ask_set_status() */
    int64_t start_ms;
};

struct AskSet {
    RpcLoop *loop;
    char *ask_program, *notify_program;
    int64_t timeout_ms;
    Ask *procs;
    unsigned notify_running;
    int64_t notify_window_ms; /* start of the current one-second window */
    unsigned notify_in_window;
    uint64_t notify_dropped;
    int64_t notify_dropped_logged_ms;
};

int ask_set_new(AskSet **setp, RpcLoop *loop, const char *ask_program, int64_t timeout_ms,
                const char *notify_program)
{
    AskSet *set = calloc(1, sizeof(*set));

    if (!set)
        return -ENOMEM;
    set->loop = loop;
    set->timeout_ms = timeout_ms;
    if ((ask_program && !(set->ask_program = strdup(ask_program))) ||
        (notify_program && !(set->notify_program = strdup(notify_program)))) {
        ask_set_free(set);
        return -ENOMEM;
    }
    *setp = set;
    return 0;
}

bool ask_set_has_program(const AskSet *set)
{
    return set && set->ask_program;
}

/* ---- one program -------------------------------------------------------------------------- */

static void proc_close_out(Ask *a)
{
    a->out_src = rpc_loop_source_free(a->out_src);
    if (a->out_fd >= 0)
        close(a->out_fd);
    a->out_fd = -1;
}

static void proc_free(Ask *a)
{
    AskSet *set = a->set;

    VRPC_LIST_UNLINK(&set->procs, a);
    if (a->is_notify && set->notify_running)
        set->notify_running--;
    proc_close_out(a);
    rpc_loop_source_free(a->pid_src);
    rpc_loop_source_free(a->timer);
    if (a->pidfd >= 0)
        close(a->pidfd);
    free(a->what);
    free(a);
}

/* Kill the process group; safe until the pid is reaped, which only on_exit() does. */
static void proc_kill(Ask *a)
{
    if (a->pid > 0 && !a->killed) {
        a->killed = true;
        if (kill(-a->pid, SIGKILL) < 0)
            kill(a->pid, SIGKILL);
    }
}

/* Deliver the answer once; the program, if still running, is killed. */
static void proc_answer(Ask *a, const AskAnswer *ans)
{
    AskDoneFn fn = a->fn;

    if (!fn)
        return;
    a->fn = NULL;
    proc_kill(a);
    proc_close_out(a);
    fn(ans, a->userdata);
}

static void answer_deny(Ask *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer_deny(Ask *a, const char *fmt, ...)
{
    AskAnswer ans = {.verdict = ASK_VERDICT_DENY};
    va_list ap;

    snprintf(ans.text, sizeof(ans.text), "%s", a->line);
    va_start(ap, fmt);
    vsnprintf(ans.reason, sizeof(ans.reason), fmt, ap);
    va_end(ap);
    proc_answer(a, &ans);
}

/* Read what the pipe holds now. Returns true at EOF or error (the pipe is then closed). */
static bool proc_read(Ask *a)
{
    char buf[512];

    for (;;) {
        ssize_t n = read(a->out_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return false;
        if (n <= 0) {
            proc_close_out(a);
            return true;
        }
        /* Untrusted bytes: only the first line is kept, bounded; the rest is drained. */
        for (ssize_t i = 0; i < n && !a->line_done; i++) {
            if (buf[i] == '\n') {
                a->line_done = true;
            } else if (buf[i] == '\0' || a->line_len == ASK_LINE_MAX) {
                a->line_done = a->overflow = true;
            } else {
                a->line[a->line_len++] = buf[i];
                a->line[a->line_len] = '\0';
            }
        }
    }
}

/* A complete first line that can never become an allow denies without waiting for the
 * program to exit. */
static void proc_check_line(Ask *a)
{
    AskAnswer ans;

    if (!a->fn || !a->line_done)
        return;
    if (a->overflow) {
        answer_deny(a, "ask: unrecognised answer");
        return;
    }
    ask_parse_line(a->line, a->line_len, &ans);
    if (ans.verdict == ASK_VERDICT_DENY)
        proc_answer(a, &ans);
}

static void on_output(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Ask *a = userdata;

    proc_read(a);
    proc_check_line(a);
}

static void on_exit_fd(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Ask *a = userdata;
    int status = 0;
    pid_t r;

    /* Everything the program wrote before exiting is in the pipe by now. */
    if (a->out_fd >= 0)
        proc_read(a);
    do
        r = waitpid(a->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return; /* not yet (a spurious wake-up) */
    a->pid = 0;
    if (a->fn) {
        if (r < 0) {
            answer_deny(a, "ask: cannot reap the ask program: %s", strerror(errno));
        } else if (WIFSIGNALED(status)) {
            answer_deny(a, "ask: the ask program was killed by signal %d", WTERMSIG(status));
        } else if (WEXITSTATUS(status) != 0) {
            answer_deny(a, "ask: the ask program exited with status %d", WEXITSTATUS(status));
        } else if (a->overflow) {
            answer_deny(a, "ask: unrecognised answer");
        } else if (a->line_len == 0 && !a->line_done) {
            answer_deny(a, "ask: the ask program gave no answer");
        } else {
            AskAnswer ans;
            ask_parse_line(a->line, a->line_len, &ans);
            proc_answer(a, &ans);
        }
    } else if (a->is_notify && r > 0 && !a->killed &&
               (WIFSIGNALED(status) || WEXITSTATUS(status) != 0)) {
        dlog(LOG_DEBUG, "notify program: exit %d", vrpc_service_exit_code(status));
    }
    proc_free(a);
}

static void on_timeout(RpcLoopSource *src, void *userdata)
{
    Ask *a = userdata;

    if (a->fn)
        answer_deny(a, "ask: no answer within %g s", (double)a->set->timeout_ms / 1000.0);
    else
        proc_kill(a); /* a notify program that overstayed */
}

/* Start @path with @argv; on success *ap is listed and watched. */
static int proc_spawn(AskSet *set, const char *path, char *const argv[], bool notify, Ask **ap)
{
    static char *const envp[] = {ASK_ENV_PATH, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int out[2] = {-1, -1};
    Ask *a;
    int r;

    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->set = set;
    a->is_notify = notify;
    a->pidfd = a->out_fd = -1;
    /* Only our end is non-blocking: the program writes to an ordinary pipe. */
    if (!notify && (pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0)) {
        r = -errno;
        if (out[0] >= 0) {
            close(out[0]);
            close(out[1]);
        }
        free(a);
        return r;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!r)
        r = notify ? posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)
                   : posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (!r)
        r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (!r)
        r = posix_spawn_file_actions_addchdir_np(&fa, "/");
    if (!r)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (!r)
        r = posix_spawnattr_setsigdefault(&attr, &all);
    /* As handlers start (services/spawn.c): SCHED_OTHER instead of the dispatcher's
     * SCHED_BATCH (--sched); a policy an administrator gave the daemon is kept. */
    bool batch = sched_getscheduler(0) == SCHED_BATCH;
    if (!r && batch)
        r = posix_spawnattr_setschedpolicy(&attr, SCHED_OTHER);
    if (!r && batch)
        r = posix_spawnattr_setschedparam(&attr, &(struct sched_param){0});
    if (!r)
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF |
                                                (batch ? POSIX_SPAWN_SETSCHEDULER : 0));
    if (!r)
        r = posix_spawn(&a->pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (out[1] >= 0)
        close(out[1]);
    a->out_fd = out[0];
    if (r) {
        a->pid = 0;
        if (a->out_fd >= 0)
            close(a->out_fd);
        free(a);
        return -r;
    }
    a->prev = NULL;
    a->next = set->procs;
    if (set->procs)
        set->procs->prev = a;
    set->procs = a;
    if (notify)
        set->notify_running++;

    a->pidfd = vrpc_service_pidfd_open(a->pid);
    r = a->pidfd < 0 ? a->pidfd : 0;
    if (!r)
        r = rpc_loop_add_fd(set->loop, a->pidfd, EPOLLIN, on_exit_fd, a, &a->pid_src);
    if (!r && a->out_fd >= 0)
        r = rpc_loop_add_fd(set->loop, a->out_fd, EPOLLIN, on_output, a, &a->out_src);
    if (!r)
        r = rpc_loop_add_timer(set->loop, set->timeout_ms, on_timeout, a, &a->timer);
    if (r < 0) {
        /* Cannot watch it: it must not outlive this call. */
        proc_kill(a);
        while (waitpid(a->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        a->pid = 0;
        proc_free(a);
        return r;
    }
    *ap = a;
    return 0;
}

int ask_start(AskSet *set, const AskArgs *args, AskDoneFn fn, void *userdata, Ask **askp)
{
    Ask *a;
    int r;

    if (!set || !set->ask_program)
        return -ENOENT;
    char *argv[] = {set->ask_program,
                    (char *)args->source,
                    (char *)args->call,
                    (char *)args->target,
                    (char *)(args->default_target ? args->default_target : ""),
                    NULL};
    r = proc_spawn(set, set->ask_program, argv, false, &a);
    if (r < 0)
        return r;
    a->fn = fn;
    a->userdata = userdata;
    a->start_ms = rpc_loop_now_ms();
    /* best effort: without it the status line shows "?" */
    if (asprintf(&a->what, "%s %s %s", args->source, args->call, args->target) < 0)
        a->what = NULL;
    *askp = a;
    return 0;
}

void ask_set_status(const AskSet *set, FILE *f)
{
    int64_t now = rpc_loop_now_ms();

    for (const Ask *a = set ? set->procs : NULL; a; a = a->next)
        if (!a->is_notify && a->fn)
            fprintf(f, "ask %s pending-ms %lld pid %d\n", a->what ? a->what : "? ? ?",
                    (long long)(now - a->start_ms), (int)a->pid);
}

void ask_cancel(Ask *a)
{
    if (!a || !a->fn)
        return;
    a->fn = NULL;
    proc_kill(a);
    proc_close_out(a);
}

void ask_notify(AskSet *set, const AskArgs *args, const char *decision)
{
    int64_t now = rpc_loop_now_ms();
    Ask *a;
    int r;

    if (!set || !set->notify_program)
        return;
    if (now - set->notify_window_ms >= 1000) {
        set->notify_window_ms = now;
        set->notify_in_window = 0;
    }
    if (set->notify_running >= ASK_NOTIFY_RUNNING_MAX ||
        set->notify_in_window >= ASK_NOTIFY_PER_SECOND) {
        set->notify_dropped++;
        if (now - set->notify_dropped_logged_ms >= 10000) {
            set->notify_dropped_logged_ms = now;
            dlog(LOG_WARNING, "notify: rate limit: %llu notifications dropped so far",
                 (unsigned long long)set->notify_dropped);
        }
        return;
    }
    set->notify_in_window++;
    char *argv[] = {set->notify_program,
                    (char *)args->source,
                    (char *)args->call,
                    (char *)args->target,
                    (char *)(args->default_target ? args->default_target : ""),
                    (char *)decision,
                    NULL};
    r = proc_spawn(set, set->notify_program, argv, true, &a);
    if (r < 0)
        dlog(LOG_WARNING, "notify: cannot run %s: %s", set->notify_program, strerror(-r));
}

AskSet *ask_set_free(AskSet *set)
{
    if (!set)
        return NULL;
    while (set->procs) {
        Ask *a = set->procs;
        a->fn = NULL;
        proc_kill(a);
        while (a->pid > 0 && waitpid(a->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        a->pid = 0;
        proc_free(a);
    }
    free(set->ask_program);
    free(set->notify_program);
    free(set);
    return NULL;
}

/* ---- answers ------------------------------------------------------------------------------ */

void ask_parse_line(const char *untrusted_line, size_t len, AskAnswer *ans)
{
    static const char allow_sp[] = "allow ";
    const size_t n_allow_sp = sizeof(allow_sp) - 1;

    *ans = (AskAnswer){.verdict = ASK_VERDICT_DENY};
    if (len > ASK_LINE_MAX || memchr(untrusted_line, '\0', len)) {
        snprintf(ans->reason, sizeof(ans->reason), "ask: unrecognised answer");
        return;
    }
    memcpy(ans->text, untrusted_line, len);
    ans->text[len] = '\0';
    if (strcmp(ans->text, "allow") == 0) {
        ans->verdict = ASK_VERDICT_ALLOW;
    } else if (strcmp(ans->text, "deny") == 0) {
        snprintf(ans->reason, sizeof(ans->reason), "ask: answered deny");
    } else if (len > n_allow_sp && len - n_allow_sp <= VRPC_POLICY_NAME_MAX &&
               memcmp(ans->text, allow_sp, n_allow_sp) == 0 &&
               (vrpc_policy_qualified_domain_is_valid(ans->text + n_allow_sp) ||
                strcmp(ans->text + n_allow_sp, "@adminvm") == 0)) {
        ans->verdict = ASK_VERDICT_ALLOW_NAME;
        snprintf(ans->name, sizeof(ans->name), "%s", ans->text + n_allow_sp);
    } else {
        snprintf(ans->reason, sizeof(ans->reason), "ask: unrecognised answer");
    }
}

bool ask_decide(const AskAnswer *ans, const VrpcPolicy *policy, const VrpcPolicyDecision *decision,
                char targetp[VRPC_POLICY_NAME_MAX + 1], const char **reasonp)
{
    targetp[0] = '\0';
    switch (ans->verdict) {
    case ASK_VERDICT_ALLOW:
        if (strcmp(decision->target, "@default") == 0 || !decision->target[0]) {
            *reasonp = "ask: answered allow, but the call names no target";
            return false;
        }
        snprintf(targetp, VRPC_POLICY_NAME_MAX + 1, "%s", decision->target);
        return true;
    case ASK_VERDICT_ALLOW_NAME:
        if (vrpc_policy_decision_check_target(policy, decision, ans->name, targetp) != 0) {
            *reasonp = "ask: answered a target outside the rule";
            return false;
        }
        return true;
    case ASK_VERDICT_DENY:
        break;
    }
    *reasonp = ans->reason[0] ? ans->reason : "ask: denied";
    return false;
}
