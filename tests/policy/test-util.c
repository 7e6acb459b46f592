/* SPDX-License-Identifier: MIT */
/*
 * Test helpers for the policy tests. Every test works in its own mkdtemp()
 * folder and removes it, so the suites can run in parallel with each other
 * and with other ctest jobs; child processes are always reaped.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"

/* All folders of one test program live under one base folder, made and
 * removed by tu_run_suite() in the parent process: a failed assertion ends a
 * forked Check test with _exit(), skipping the test's own cleanup. */
static char *base_dir;

static char *make_temp(const char *parent)
{
    char *path = NULL;

    if (asprintf(&path, "%s/vrpc-policy-test.XXXXXX", parent) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static const char *tmp_root(void)
{
    const char *tmp = getenv("TMPDIR");

    return tmp && *tmp ? tmp : "/tmp";
}

char *tu_mkdtemp(void)
{
    char *path = make_temp(base_dir ? base_dir : tmp_root());

    ck_assert_msg(path != NULL, "mkdtemp: %s", strerror(errno));
    return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tu_rmrf(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_mkdir(const char *dir, const char *rel)
{
    char *path = NULL;

    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, rel), 0);
    ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
    free(path);
}

/* DIR/REL, after creating the folders inside DIR that lead to it. */
static char *make_parents(const char *dir, const char *rel)
{
    char *path = NULL;

    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, rel), 0);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
                      strerror(errno));
        *p = '/';
    }
    return path;
}

void tu_write_in_place(const char *dir, const char *rel, const char *content)
{
    char *path = make_parents(dir, rel);
    FILE *f = fopen(path, "we");

    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    fputs(content, f);
    ck_assert_int_eq(fclose(f), 0);
    free(path);
}

void tu_write(const char *dir, const char *rel, const char *content)
{
    char *path = make_parents(dir, rel), *tmp = NULL, *slash;
    FILE *f;

    slash = strrchr(path, '/');
    /* A hidden temporary next to the target, then rename: the way tools
     * should install policy files, and what the watch expects. */
    ck_assert_int_ge(asprintf(&tmp, "%.*s/.tmp-%s", (int)(slash - path), path, slash + 1), 0);
    f = fopen(tmp, "we");
    ck_assert_msg(f != NULL, "fopen %s: %s", tmp, strerror(errno));
    fputs(content, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
    free(tmp);
    free(path);
}

/* Read everything from two pipes until both close. */
static void drain(int out_fd, int err_fd, char **outp, char **errp)
{
    size_t out_size = 0, err_size = 0;
    FILE *out = open_memstream(outp, &out_size);
    FILE *err = open_memstream(errp, &err_size);
    struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
    int open_fds = 2;

    ck_assert(out && err);
    while (open_fds > 0) {
        ck_assert_int_ge(poll(fds, 2, 30000), 1);
        for (int i = 0; i < 2; i++) {
            char buf[4096];
            ssize_t n;

            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(fds[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            fwrite(buf, 1, (size_t)n, i == 0 ? out : err);
        }
    }
    fclose(out);
    fclose(err);
}

void tu_run(char *const argv[], TuRun *run)
{
    int out[2], err[2], status = 0;
    pid_t pid;

    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);

        if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(125);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    drain(out[0], err[0], &run->out, &run->err);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    run->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void tu_run_free(TuRun *run)
{
    free(run->out);
    free(run->err);
    *run = (TuRun){0};
}

int tu_load(VrpcPolicy **policyp, const char *const *names, const char *const *texts,
            size_t n_files, const char *domains)
{
    VrpcPolicyText files[8];
    VrpcPolicyText dom = {
        .name = "domains.yaml", .data = domains, .size = domains ? strlen(domains) : 0};

    ck_assert_uint_le(n_files, 8);
    for (size_t i = 0; i < n_files; i++)
        files[i] = (VrpcPolicyText){.name = names[i], .data = texts[i], .size = strlen(texts[i])};
    return vrpc_policy_load_texts(files, n_files, domains ? &dom : NULL, policyp);
}

int tu_run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    int failed;

    base_dir = make_temp(tmp_root());
    if (!base_dir) {
        fprintf(stderr, "cannot create a temporary folder: %s\n", strerror(errno));
        srunner_free(sr);
        return 1;
    }
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tu_rmrf(base_dir);
    free(base_dir);
    base_dir = NULL;
    return failed == 0 ? 0 : 1;
}
