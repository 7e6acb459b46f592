/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the services tests: temporary services folders, the
 * probe program installed under any service name, and a small poll() loop
 * that drives a started handler to its end without timeouts (a hang is
 * caught by ctest's TIMEOUT, never by a timed assertion).
 */

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

#include "svc-test-util.h"

const VrpcServiceCall svc_default_call = {.source = "work", .requested_target = "dom0"};

char *svc_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir;

    ck_assert_int_ge(asprintf(&dir, "%s/vrpc-svc-test.XXXXXX", base && *base ? base : "/tmp"), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0755), 0);
    return dir;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void svc_tmpdir_remove(char *dir)
{
    if (!dir)
        return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

void svc_write_file(const char *dir, const char *name, const char *data, int mode)
{
    char *path;
    int fd;
    size_t len = strlen(data);

    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, (mode_t)mode), 0);
    close(fd);
    free(path);
}

void svc_install_probe(const char *dir, const char *name)
{
    char *path, buf[65536];
    int in, out;
    ssize_t n;

    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
    in = open(SVC_PROBE_BIN, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(in >= 0, "%s: %s", SVC_PROBE_BIN, strerror(errno));
    out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ck_assert_msg(out >= 0, "%s: %s", path, strerror(errno));
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    ck_assert_int_eq(n, 0);
    close(in);
    close(out);
    free(path);
}

VrpcService *svc_resolve_ok(const char *dir, const char *service, const char *arg)
{
    char err[VRPC_SERVICES_ERROR_MAX] = "";
    VrpcService *s = NULL;
    int r = vrpc_service_resolve(dir, service, strlen(service), arg, arg ? strlen(arg) : 0, &s,
                                 err);

    ck_assert_msg(r == 0, "resolve %s+%s: %d %s", service, arg ? arg : "", r, err);
    ck_assert_ptr_nonnull(s);
    return s;
}

int svc_resolve_err(const char *dir, const char *service, const char *arg,
                    char err[VRPC_SERVICES_ERROR_MAX])
{
    VrpcService *s = NULL;
    int r;

    err[0] = '\0';
    r = vrpc_service_resolve(dir, service, strlen(service), arg, arg ? strlen(arg) : 0, &s, err);
    ck_assert_msg(r != 0, "resolve %s+%s unexpectedly succeeded", service, arg ? arg : "");
    ck_assert_ptr_null(s);
    ck_assert_msg(err[0] != '\0' && !strchr(err, '\n'), "bad reason \"%s\"", err);
    return r;
}

void svc_start_ok(const VrpcService *service, const VrpcServiceCall *call, VrpcServiceProcess *proc)
{
    char err[VRPC_SERVICES_ERROR_MAX] = "";
    int r = vrpc_service_start(service, call ? call : &svc_default_call, proc, err);

    ck_assert_msg(r == 0, "start %s: %d %s", service->entry, r, err);
}

static void append(char **bufp, size_t *lenp, const char *data, size_t n)
{
    char *b = realloc(*bufp, *lenp + n + 1);

    ck_assert_ptr_nonnull(b);
    memcpy(b + *lenp, data, n);
    *lenp += n;
    b[*lenp] = '\0';
    *bufp = b;
}

SvcOutput svc_finish(VrpcServiceProcess *proc, const void *input, size_t input_len)
{
    SvcOutput o = {.exit_code = -1};
    size_t sent = 0;
    static char buf[65536];

    append(&o.out, &o.out_len, "", 0);
    append(&o.err, &o.err_len, "", 0);
    if (input_len == 0)
        vrpc_service_process_close_stdin(proc);
    while (proc->stdin_fd >= 0 || proc->stdout_fd >= 0 || proc->stderr_fd >= 0) {
        struct pollfd p[3] = {
            {.fd = proc->stdin_fd, .events = POLLOUT},
            {.fd = proc->stdout_fd, .events = POLLIN},
            {.fd = proc->stderr_fd, .events = POLLIN},
        };

        ck_assert_int_ge(poll(p, 3, -1), 0);
        if (p[0].revents & (POLLERR | POLLHUP)) {
            vrpc_service_process_close_stdin(proc); /* the handler stopped reading */
        } else if (p[0].revents & POLLOUT) {
            ssize_t n = write(proc->stdin_fd, (const char *)input + sent, input_len - sent);

            if (n < 0 && errno == EPIPE)
                vrpc_service_process_close_stdin(proc);
            else if (n < 0)
                ck_assert_msg(errno == EAGAIN, "write: %s", strerror(errno));
            else
                sent += (size_t)n;
            if (sent == input_len)
                vrpc_service_process_close_stdin(proc);
        }
        for (int i = 1; i < 3; i++) {
            int *fdp = i == 1 ? &proc->stdout_fd : &proc->stderr_fd;
            ssize_t n;

            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(*fdp, buf, sizeof(buf));
            if (n < 0 && errno == EAGAIN)
                continue;
            ck_assert_msg(n >= 0, "read: %s", strerror(errno));
            if (n == 0) {
                close(*fdp);
                *fdp = -1;
            } else if (i == 1) {
                append(&o.out, &o.out_len, buf, (size_t)n);
            } else {
                append(&o.err, &o.err_len, buf, (size_t)n);
            }
        }
    }
    if (proc->pid > 0) {
        int status;

        ck_assert_int_eq(waitpid(proc->pid, &status, 0), proc->pid);
        o.exit_code = vrpc_service_exit_code(status);
    }
    vrpc_service_process_deinit(proc);
    return o;
}

void svc_output_free(SvcOutput *o)
{
    free(o->out);
    free(o->err);
    *o = (SvcOutput){0};
}

SvcOutput svc_run(const char *dir, const char *service, const char *arg,
                  const VrpcServiceCall *call)
{
    VrpcService *s = svc_resolve_ok(dir, service, arg);
    VrpcServiceProcess proc;
    SvcOutput o;

    svc_start_ok(s, call, &proc);
    o = svc_finish(&proc, NULL, 0);
    vrpc_service_free(s);
    return o;
}

int svc_run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    int failed;

    /* A handler that exits early must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
