/* SPDX-License-Identifier: MIT */
/*
 * bench-report.c - the options every vrpc-bench subcommand shares (bench-report.h). --load N
 * forks N children that spin at normal priority until the run ends: a dom0 is rarely idle,
 * and a figure measured only on an idle machine flatters whatever sleeps least. --json keeps
 * a private copy of stdout for the rows and points fd 1 at stderr, so the human tables (and
 * anything a subcommand prints) stay readable without breaking the one-object-per-line
 * stream a script reads.
 */
#include "bench-report.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOAD_MAX 64

static pid_t load_pids[LOAD_MAX];
static int load_n;
static FILE *json_out;

int bench_report_load(void)
{
    return load_n;
}

bool bench_report_json(void)
{
    return json_out != NULL;
}

void bench_report_stop(void)
{
    for (int i = 0; i < load_n; i++)
        kill(load_pids[i], SIGKILL);
    for (int i = 0; i < load_n; i++)
        while (waitpid(load_pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    load_n = 0;
}

static int load_start(int n)
{
    pid_t parent = getpid();

    for (int i = 0; i < n; i++) {
        pid_t pid = fork();

        if (pid < 0) {
            fprintf(stderr, "vrpc-bench: --load: fork: %s\n", strerror(errno));
            bench_report_stop();
            return -1;
        }
        if (pid == 0) {
            volatile unsigned long spin = 0;

            /* a co-runner must not outlive a benchmark that was killed */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            for (;;)
                spin++;
        }
        load_pids[load_n++] = pid;
    }
    return 0;
}

/* The value of --load: a decimal 0..LOAD_MAX, nothing else. */
static int parse_load(const char *s)
{
    char *end;
    long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > LOAD_MAX)
        return -1;
    return (int)v;
}

static int json_start(void)
{
    int fd = dup(STDOUT_FILENO);

    if (fd < 0 || !(json_out = fdopen(fd, "w"))) {
        fprintf(stderr, "vrpc-bench: --json: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fflush(stdout);
    if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        fprintf(stderr, "vrpc-bench: --json: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int bench_report_take_opts(int *argcp, char **argv)
{
    int argc = *argcp, out = 1, load = 0;
    bool json = false;

    for (int i = 1; i < argc; i++) {
        const char *val = NULL;

        if (strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(argv[i], "--load") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vrpc-bench: --load needs a value (0..%d)\n", LOAD_MAX);
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(argv[i], "--load=", 7) == 0) {
            val = argv[i] + 7;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if ((load = parse_load(val)) < 0) {
            fprintf(stderr, "vrpc-bench: --load: '%s' is not a number of co-runners 0..%d\n",
                    val, LOAD_MAX);
            return 2;
        }
    }
    argv[out] = NULL;
    *argcp = out;
    if (json && json_start() < 0)
        return 2;
    if (load && load_start(load) < 0)
        return 2;
    atexit(bench_report_stop);
    return -1;
}

void bench_row(const char *bench, const char *row, double value, const char *unit)
{
    if (!json_out)
        return;
    if (isfinite(value))
        fprintf(json_out, "{\"bench\": \"%s\", \"row\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
                bench, row, value, unit);
    else
        fprintf(json_out, "{\"bench\": \"%s\", \"row\": \"%s\", \"value\": null, \"unit\": \"%s\"}\n",
                bench, row, unit);
    fflush(json_out);
}
