/* SPDX-License-Identifier: MIT */
/*
 * svc-probe: a test service that reports what vrpc gave it. The action is
 * the argument (argv[1]), as vrpc passes it:
 *   argv        argc and every argv entry, one per line
 *   env         the environment, one entry per line
 *   fds         the open fds, one per line (the listing's own fd excluded)
 *   proc        "PID PGID SID"
 *   sigs        the SigBlk and SigIgn lines of /proc/self/status
 *   ids         "UID GID" then the supplementary groups, then $HOME
 *   cwd         the working directory
 *   exit.N      exit with code N
 *   signal.N    kill itself with signal N
 *   stderr      write "to stderr" to stderr and "to stdout" to stdout
 *   cat         copy stdin to stdout
 *   tree        fork a child that sleeps; print the child's pid; wait
 * Without an argument, the action is what follows the last '.' of argv[0]
 * ("probe.env" acts as "env"), else "argv".
 * Run by hand with --help or --version (only when VRPC_SERVICE_NAME is unset).
 */

#include <dirent.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int list_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    if (!d)
        return 1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            printf("%s\n", e->d_name);
    closedir(d);
    return 0;
}

static int print_sigs(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];

    if (!f)
        return 1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "SigBlk:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0)
            fputs(line, stdout);
    fclose(f);
    return 0;
}

static int print_ids(void)
{
    gid_t groups[256];
    int n = getgroups(256, groups);
    const char *home = getenv("HOME");

    printf("%u %u\n", (unsigned)getuid(), (unsigned)getgid());
    for (int i = 0; i < n; i++)
        printf("%u%s", (unsigned)groups[i], i + 1 < n ? " " : "");
    printf("\n%s\n", home ? home : "(unset)");
    return 0;
}

static int tree(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        pause();
        _exit(0);
    }
    printf("%d\n", (int)pid);
    fflush(stdout);
    pause();
    return 0;
}

static int cat(void)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(0, buf, sizeof(buf))) > 0)
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            return 1;
    return n == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *a = argc > 1 ? argv[1] : strrchr(argv[0], '.') ? strrchr(argv[0], '.') + 1 : "";

    if (!getenv("VRPC_SERVICE_NAME") && argc == 2 && strcmp(a, "--help") == 0) {
        printf("Usage: svc-probe ACTION (see the source)\n");
        return 0;
    }
    if (!getenv("VRPC_SERVICE_NAME") && argc == 2 && strcmp(a, "--version") == 0) {
        printf("svc-probe (vrpc tests) 1\n");
        return 0;
    }
    if (strcmp(a, "argv") == 0 || *a == '\0') {
        printf("%d\n", argc);
        for (int i = 0; i < argc; i++)
            printf("%s\n", argv[i]);
        return 0;
    }
    if (strcmp(a, "env") == 0) {
        for (char **e = environ; *e; e++)
            printf("%s\n", *e);
        return 0;
    }
    if (strcmp(a, "fds") == 0)
        return list_fds();
    if (strcmp(a, "sched") == 0) {
        printf("%d\n", sched_getscheduler(0));
        return 0;
    }
    if (strcmp(a, "proc") == 0) {
        printf("%d %d %d\n", (int)getpid(), (int)getpgid(0), (int)getsid(0));
        return 0;
    }
    if (strcmp(a, "sigs") == 0)
        return print_sigs();
    if (strcmp(a, "ids") == 0)
        return print_ids();
    if (strcmp(a, "cwd") == 0) {
        char buf[4096];

        printf("%s\n", getcwd(buf, sizeof(buf)) ? buf : "?");
        return 0;
    }
    if (strncmp(a, "exit.", 5) == 0)
        return atoi(a + 5);
    if (strncmp(a, "signal.", 7) == 0) {
        int sig = atoi(a + 7);

        signal(sig, SIG_DFL);
        raise(sig);
        return 99;
    }
    if (strcmp(a, "stderr") == 0) {
        fprintf(stderr, "to stderr\n");
        printf("to stdout\n");
        return 0;
    }
    if (strcmp(a, "cat") == 0)
        return cat();
    if (strcmp(a, "tree") == 0)
        return tree();
    fprintf(stderr, "svc-probe: unknown action \"%s\"\n", a);
    return 2;
}
