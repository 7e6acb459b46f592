/* SPDX-License-Identifier: MIT */
/*
 * vrpc-ctl - ask a running vrpc-dispatcher about its state through its control socket:
 * `status` prints the connected guests and the call counters, `stats` each guest vchan's
 * event counters (for vrpc-bench: events per call), `wait-guests COUNT` waits
 * until COUNT guests are connected (used by vrpc-sim up --vrpc and by tests). wait-guests
 * also waits for the dispatcher to start listening, and retries when it restarts.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/escape.h"
#include "librpc/rpc.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0.0"
#endif

#define DEFAULT_CONTROL "/run/vrpc/control.sock"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-ctl [--control PATH] status\n"
               "       vrpc-ctl [--control PATH] stats\n"
               "       vrpc-ctl [--control PATH] wait-guests COUNT [--timeout SECONDS]\n"
               "Query a running vrpc-dispatcher.\n"
               "\n"
               "  --control PATH     the dispatcher's control socket (default $VRPC_CONTROL,\n"
               "                     else " DEFAULT_CONTROL "; `vrpc-sim exec` sets it)\n"
               "  --timeout SECONDS  wait-guests: give up after this long (default 30)\n"
               "  --help, --version\n"
               "\n"
               "Exit status: 0 ok; 1 failure (no dispatcher, or wait-guests timed out);\n"
               "2 usage error.\n");
}

/* Send @cmd and read the whole answer (until EOF) into a new string, waiting at most until
 * @deadline_ms (-1: no limit). Returns 0, -ETIMEDOUT or -errno. */
static int request(int fd, const char *cmd, long long deadline_ms, char **answerp)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);

    if (!buf)
        return -ENOMEM;
    if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
        free(buf);
        return -errno;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int timeout = deadline_ms < 0 ? -1 : (int)(deadline_ms - now_ms());
        ssize_t n;

        if (deadline_ms >= 0 && timeout <= 0) {
            free(buf);
            return -ETIMEDOUT;
        }
        if (poll(&pfd, 1, timeout) < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return -errno;
        }
        if (!pfd.revents)
            continue;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *answerp = buf;
    return 0;
}

/* One-shot command @cmd ("status\n", "stats\n"): print the answer. */
static int cmd_query(const char *control, const char *cmd)
{
    char *answer = NULL;
    int fd = rpc_unix_connect(control), r;

    if (fd < 0) {
        fprintf(stderr, "vrpc-ctl: cannot connect to %s: %s\n", VRPC_ESC(control), strerror(-fd));
        return 1;
    }
    r = request(fd, cmd, now_ms() + 10000, &answer);
    close(fd);
    if (r < 0) {
        fprintf(stderr, "vrpc-ctl: %s: %s\n", control, strerror(-r));
        return 1;
    }
    if (strncmp(answer, "error", 5) == 0) {
        fprintf(stderr, "vrpc-ctl: %s", answer);
        free(answer);
        return 1;
    }
    fputs(answer, stdout);
    free(answer);
    return 0;
}

static int cmd_wait_guests(const char *control, unsigned count, double timeout_s)
{
    long long deadline = now_ms() + (long long)(timeout_s * 1000.0);

    /* At least one look, also with --timeout 0 (whether the guests are there now). */
    for (bool first = true;; first = false) {
        long long left = deadline - now_ms();
        char cmd[64], *answer = NULL;
        int fd, r;

        if (left <= 0 && !first)
            break;
        if (left < 0)
            left = 0;
        fd = rpc_unix_connect(control);
        if (fd < 0) {
            /* Not listening yet (or restarting): try again shortly. */
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        snprintf(cmd, sizeof(cmd), "wait-guests %u %lld\n", count, left);
        r = request(fd, cmd, deadline + 1000, &answer);
        close(fd);
        if (r == 0 && strcmp(answer, "ok\n") == 0) {
            free(answer);
            return 0;
        }
        if (r == 0 && strcmp(answer, "timeout\n") == 0) {
            free(answer);
            break;
        }
        if (r == 0 && strncmp(answer, "error", 5) == 0) {
            fprintf(stderr, "vrpc-ctl: %s", answer);
            free(answer);
            return 1;
        }
        free(answer);
        /* The dispatcher went away mid-wait: retry until the deadline. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "vrpc-ctl: timed out waiting for %u guests\n", count);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"control", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *control = NULL;
    double timeout_s = 30;
    bool timeout_set = false;
    int opt;

    /* GNU getopt permutes: options may come before or after the command. */
    opterr = 0; /* one line of our own for a bad option */
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            control = optarg;
            break;
        case 't': {
            char *end;
            timeout_s = strtod(optarg, &end);
            if (*end || end == optarg || !(timeout_s >= 0) || timeout_s > 1e6) {
                fprintf(stderr, "vrpc-ctl: invalid --timeout '%s'\n", VRPC_ESC(optarg));
                return 2;
            }
            timeout_set = true;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("vrpc-ctl (vrpc) %s\n", VRPC_VERSION);
            return 0;
        default:
            fprintf(stderr, "vrpc-ctl: unknown option or missing value '%s' (try --help)\n",
                    VRPC_ESC(argv[optind - 1]));
            return 2;
        }
    }
    if (!control) {
        const char *env = getenv("VRPC_CONTROL");
        control = env && *env ? env : DEFAULT_CONTROL;
    }
    if (optind < argc && strcmp(argv[optind], "status") == 0 && optind + 1 == argc && !timeout_set)
        return cmd_query(control, "status\n");
    if (optind < argc && strcmp(argv[optind], "stats") == 0 && optind + 1 == argc && !timeout_set)
        return cmd_query(control, "stats\n");
    if (optind < argc && strcmp(argv[optind], "wait-guests") == 0 && optind + 2 == argc) {
        const char *arg = argv[optind + 1];
        char *end;
        unsigned long count = strtoul(arg, &end, 10);

        if (*end || end == arg || arg[0] == '-' || count > 1000000) {
            fprintf(stderr, "vrpc-ctl: invalid COUNT '%s'\n", VRPC_ESC(arg));
            return 2;
        }
        return cmd_wait_guests(control, (unsigned)count, timeout_s);
    }
    fprintf(stderr, "vrpc-ctl: expected 'status', 'stats' or 'wait-guests COUNT' (try --help)\n");
    return 2;
}
