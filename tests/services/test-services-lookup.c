/* SPDX-License-Identifier: MIT */
/*
 * Lookup and configuration: SERVICE+ARG before SERVICE, the kinds of entries
 * (executable, socket, and every kind that is refused with its own error),
 * symlinks, a missing folder, and SERVICE.yaml: every error with its
 * FILE:LINE:COL, the valid forms, and the config lookup order.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "svc-test-util.h"

static char *dir;

static void setup(void)
{
    vt_leak_setup();
    dir = svc_tmpdir();
}

static void teardown(void)
{
    svc_tmpdir_remove(dir);
    dir = NULL;
    vt_leak_teardown();
}

static void make_socket(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_lt(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name),
                     (int)sizeof(sa.sun_path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd); /* the socket file stays: enough for lookup */
}

static char *path_of(const char *name)
{
    char *p;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

START_TEST(test_order)
{
    VrpcService *s;

    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    svc_write_file(dir, "svc+special", "#!/bin/true\n", 0755);

    s = svc_resolve_ok(dir, "svc", "special"); /* the exact name first */
    ck_assert_str_eq(s->entry, "svc+special");
    ck_assert_str_eq(s->service, "svc");
    ck_assert_str_eq(s->argument, "special");
    ck_assert_int_eq(s->kind, VRPC_SERVICE_EXECUTABLE);
    {
        char *p = path_of("svc+special");

        ck_assert_str_eq(s->path, p);
        free(p);
    }
    vrpc_service_free(s);

    s = svc_resolve_ok(dir, "svc", "other"); /* then SERVICE */
    ck_assert_str_eq(s->entry, "svc");
    ck_assert_str_eq(s->argument, "other");
    vrpc_service_free(s);

    s = svc_resolve_ok(dir, "svc", NULL); /* no argument: SERVICE only */
    ck_assert_str_eq(s->entry, "svc");
    ck_assert_str_eq(s->argument, "");
    ck_assert_ptr_null(s->config_path);
    vrpc_service_free(s);
}
END_TEST

START_TEST(test_not_found)
{
    char err[VRPC_SERVICES_ERROR_MAX];

    svc_write_file(dir, "svc+only", "#!/bin/true\n", 0755);
    ck_assert_int_eq(svc_resolve_err(dir, "nothing", NULL, err), VRPC_SERVICES_E_NOT_FOUND);
    ck_assert_str_eq(err, "service nothing not found");
    ck_assert_int_eq(svc_resolve_err(dir, "nothing", "x", err), VRPC_SERVICES_E_NOT_FOUND);
    ck_assert_str_eq(err, "service nothing+x not found");
    /* svc+only exists, but plain svc and svc+other do not. */
    ck_assert_int_eq(svc_resolve_err(dir, "svc", NULL, err), VRPC_SERVICES_E_NOT_FOUND);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", "other", err), VRPC_SERVICES_E_NOT_FOUND);
    /* A missing folder means nothing is found, not a framework error. */
    {
        char *missing = path_of("no-such-folder");

        ck_assert_int_eq(svc_resolve_err(missing, "svc", NULL, err), VRPC_SERVICES_E_NOT_FOUND);
        ck_assert_ptr_nonnull(strstr(err, "no services folder"));
        free(missing);
    }
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_NOT_FOUND), 127);
}
END_TEST

START_TEST(test_kinds)
{
    char err[VRPC_SERVICES_ERROR_MAX];
    VrpcService *s;
    char *p;

    make_socket("sock.Svc");
    s = svc_resolve_ok(dir, "sock.Svc", "arg");
    ck_assert_int_eq(s->kind, VRPC_SERVICE_SOCKET);
    ck_assert_str_eq(s->entry, "sock.Svc");
    vrpc_service_free(s);

    p = path_of("folder.Svc");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    free(p);
    ck_assert_int_eq(svc_resolve_err(dir, "folder.Svc", NULL, err), VRPC_SERVICES_E_KIND);
    ck_assert_ptr_nonnull(strstr(err, "is a folder"));

    svc_write_file(dir, "plain.Svc", "data\n", 0644);
    ck_assert_int_eq(svc_resolve_err(dir, "plain.Svc", NULL, err), VRPC_SERVICES_E_KIND);
    ck_assert_ptr_nonnull(strstr(err, "not executable"));

    p = path_of("fifo.Svc");
    ck_assert_int_eq(mkfifo(p, 0755), 0);
    free(p);
    ck_assert_int_eq(svc_resolve_err(dir, "fifo.Svc", NULL, err), VRPC_SERVICES_E_KIND);
    ck_assert_ptr_nonnull(strstr(err, "not an executable file or a Unix socket"));

    /* A broken SERVICE+ARG is an error; it does not fall back to SERVICE. */
    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    svc_write_file(dir, "svc+broken", "x", 0600);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", "broken", err), VRPC_SERVICES_E_KIND);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_KIND), 125);
}
END_TEST

START_TEST(test_symlinks)
{
    char err[VRPC_SERVICES_ERROR_MAX];
    VrpcService *s;
    char *p = path_of("link.Svc"), *d = path_of("dangling.Svc");

    /* The administrator's links are followed, also out of the folder. */
    ck_assert_int_eq(symlink(SVC_PROBE_BIN, p), 0);
    s = svc_resolve_ok(dir, "link.Svc", NULL);
    ck_assert_int_eq(s->kind, VRPC_SERVICE_EXECUTABLE);
    vrpc_service_free(s);
    ck_assert_int_eq(symlink("/nonexistent/vrpc/target", d), 0);
    ck_assert_int_eq(svc_resolve_err(dir, "dangling.Svc", NULL, err), VRPC_SERVICES_E_KIND);
    ck_assert_ptr_nonnull(strstr(err, "dangling symlink"));
    free(p);
    free(d);
}
END_TEST

/* ---- configuration ----------------------------------------------------- */

typedef struct BadConfig {
    const char *text;
    const char *where;   /* expected ":LINE:COL" (or ": " for no position) */
    const char *message; /* expected substring */
} BadConfig;

static const BadConfig bad_configs[] = {
    {"bogus: 1\n", ":1:1:", "unknown key \"bogus\""},
    {"user: alice\nUser: bob\n", ":2:1:", "unknown key \"User\""},
    {"timeout: 5\ntimeout: 6\n", ":2:1:", "duplicate key \"timeout\" (first at 1:1)"},
    {"user: alice\nuser: bob\n", ":2:1:", "duplicate key \"user\""},
    {"- user: alice\n", ":1:1:", "expected a mapping of settings, got a list"},
    {"just a string\n", ":1:1:", "expected a mapping of settings, got a string"},
    {"true\n", ":1:1:", "expected a mapping of settings, got a boolean"},
    {"user: [a]\n", ":1:7:", "user: expected a string, got a list"},
    {"user: true\n", ":1:7:", "user: expected a string, got a boolean"},
    {"user: ~\n", ":1:7:", "user: expected a string, got null"},
    {"user: \"a b\"\n", ":1:7:", "is not a user name"},
    {"user: -rf\n", ":1:7:", "is not a user name"},
    {"user: \"a\\0b\"\n", ":1:7:", "is not a user name"},
    {"exit-on-client-eof: yes\n", ":1:21:", "expected true or false, got a string"},
    {"exit-on-service-eof: \"true\"\n", ":1:22:", "expected true or false, got a string"},
    {"skip-service-descriptor: 1\n", ":1:26:", "expected true or false"},
    {"skip-service-descriptor: {}\n", ":1:26:", "got a mapping"},
    {"timeout: 0\n", ":1:10:", "must be more than 0"},
    {"timeout: 0.0\n", ":1:10:", "must be more than 0"},
    {"timeout: -1\n", ":1:10:", "expected a number of seconds"},
    {"timeout: 1e9\n", ":1:10:", "at most 1000000 seconds"},
    {"timeout: inf\n", ":1:10:", "expected a number of seconds"},
    {"timeout: .nan\n", ":1:10:", "expected a number of seconds"},
    {"timeout: 0x10\n", ":1:10:", "expected a number of seconds"},
    {"timeout: \"5\"\n", ":1:10:", "expected a number of seconds"},
    {"timeout: five\n", ":1:10:", "expected a number of seconds, got a string \"five\""},
    {"timeout: true\n", ":1:10:", "got a boolean"},
    {"timeout: [1]\n", ":1:10:", "got a list"},
    {"timeout: 1.5.2\n", ":1:10:", "expected a number of seconds"},
    {"? [a]\n: 1\n", ":1:3:", "keys must be strings, got a list"},
    {"user: alice\n---\nuser: bob\n", ":2:1:", "only one YAML document is allowed"},
    {"user: &a alice\n", ":1:", "anchor"},
    {"user: [unclosed\n", ":", ""},
    {"\tuser: x\n", ":1:", ""},
    {"timeout: 5\n  bad indent: 1\n", ":2:", ""},
};

START_TEST(test_config_errors)
{
    const BadConfig *c = &bad_configs[_i];
    char err[VRPC_SERVICES_ERROR_MAX], *p, *want;

    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    svc_write_file(dir, "svc.yaml", c->text, 0644);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", NULL, err), VRPC_SERVICES_E_CONFIG);
    p = path_of("svc.yaml");
    ck_assert_int_ge(asprintf(&want, "%s%s", p, c->where), 0);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "row %d: \"%s\" does not start with %s",
                  _i, err, want);
    ck_assert_msg(strstr(err, c->message), "row %d: \"%s\" lacks \"%s\"", _i, err, c->message);
    ck_assert_int_eq(vrpc_services_error_exit_code(VRPC_SERVICES_E_CONFIG), 125);
    free(p);
    free(want);
}
END_TEST

START_TEST(test_config_file_errors)
{
    char err[VRPC_SERVICES_ERROR_MAX], *p, *big;
    size_t n = VRPC_SERVICES_CONFIG_MAX + 1;

    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    /* A FIFO as configuration: refused at once, never waited on. */
    p = path_of("svc.yaml");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", NULL, err), VRPC_SERVICES_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_int_eq(unlink(p), 0);
    /* A folder. */
    ck_assert_int_eq(mkdir(p, 0755), 0);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", NULL, err), VRPC_SERVICES_E_CONFIG);
    ck_assert_int_eq(rmdir(p), 0);
    /* One byte over the limit (a comment, so only the size is wrong). */
    big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    big[0] = '#';
    big[n] = '\0';
    svc_write_file(dir, "svc.yaml", big, 0644);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", NULL, err), VRPC_SERVICES_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "file too large"));
    /* Exactly at the limit is fine. */
    big[n - 1] = '\0';
    svc_write_file(dir, "svc.yaml", big, 0644);
    vrpc_service_free(svc_resolve_ok(dir, "svc", NULL));
    /* Unreadable (only meaningful when not root: root reads anyway). */
    free(big);
    free(p);
}
END_TEST

START_TEST(test_config_valid)
{
    VrpcService *s;

    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    svc_write_file(dir, "svc.yaml",
                   "# every key\n"
                   "user: nobody\n"
                   "exit-on-client-eof: true\n"
                   "exit-on-service-eof: True\n"
                   "timeout: 2.5\n"
                   "skip-service-descriptor: FALSE\n",
                   0644);
    s = svc_resolve_ok(dir, "svc", NULL);
    ck_assert_str_eq(s->config.user, "nobody");
    ck_assert(s->config.exit_on_client_eof);
    ck_assert(s->config.exit_on_service_eof);
    ck_assert(!s->config.skip_service_descriptor);
    ck_assert(s->config.timeout == 2.5);
    ck_assert_ptr_nonnull(s->config_path);
    ck_assert_ptr_nonnull(strstr(s->config_path, "/svc.yaml"));
    vrpc_service_free(s);

    svc_write_file(dir, "svc.yaml", "{timeout: 30, skip-service-descriptor: true}\n", 0644);
    s = svc_resolve_ok(dir, "svc", NULL);
    ck_assert(s->config.timeout == 30);
    ck_assert(s->config.skip_service_descriptor);
    ck_assert_str_eq(s->config.user, "");
    vrpc_service_free(s);

    svc_write_file(dir, "svc.yaml", "timeout: 1e3\nuser: \"alice\"\n", 0644);
    s = svc_resolve_ok(dir, "svc", NULL);
    ck_assert(s->config.timeout == 1000);
    ck_assert_str_eq(s->config.user, "alice");
    vrpc_service_free(s);

    /* Empty, comments only, an empty document: no settings. */
    for (int i = 0; i < 3; i++) {
        static const char *const empties[] = {"", "# nothing here\n", "---\n...\n"};

        svc_write_file(dir, "svc.yaml", empties[i], 0644);
        s = svc_resolve_ok(dir, "svc", NULL);
        ck_assert_str_eq(s->config.user, "");
        ck_assert(s->config.timeout == 0);
        ck_assert(!s->config.exit_on_client_eof && !s->config.exit_on_service_eof &&
                  !s->config.skip_service_descriptor);
        ck_assert_ptr_nonnull(s->config_path);
        vrpc_service_free(s);
    }
}
END_TEST

START_TEST(test_config_order)
{
    char err[VRPC_SERVICES_ERROR_MAX];
    VrpcService *s;

    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    svc_write_file(dir, "svc.yaml", "timeout: 1\n", 0644);
    svc_write_file(dir, "svc+special.yaml", "timeout: 2\n", 0644);

    /* SERVICE+ARG.yaml first, even when the entry found is plain SERVICE. */
    s = svc_resolve_ok(dir, "svc", "special");
    ck_assert_str_eq(s->entry, "svc");
    ck_assert(s->config.timeout == 2);
    ck_assert_ptr_nonnull(strstr(s->config_path, "/svc+special.yaml"));
    vrpc_service_free(s);
    /* Then SERVICE.yaml. */
    s = svc_resolve_ok(dir, "svc", "other");
    ck_assert(s->config.timeout == 1);
    vrpc_service_free(s);
    s = svc_resolve_ok(dir, "svc", NULL);
    ck_assert(s->config.timeout == 1);
    vrpc_service_free(s);
    /* No fallback past a broken SERVICE+ARG.yaml. */
    svc_write_file(dir, "svc+special.yaml", "timeout: soon\n", 0644);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", "special", err), VRPC_SERVICES_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "svc+special.yaml:1:10:"));
    /* A config file cannot be called as a service. */
    ck_assert_int_eq(svc_resolve_err(dir, "svc.yaml", NULL, err), VRPC_SERVICES_E_NAME);
    ck_assert_int_eq(svc_resolve_err(dir, "svc", "special.yaml", err), VRPC_SERVICES_E_NAME);
}
END_TEST

START_TEST(test_no_fd_leak)
{
    VtLeak *fds = vt_leak_new();
    char err[VRPC_SERVICES_ERROR_MAX];

    vt_leak_fds(fds, "fds", 0, 0);
    svc_write_file(dir, "svc", "#!/bin/true\n", 0755);
    svc_write_file(dir, "svc.yaml", "timeout: 1\n", 0644);
    svc_write_file(dir, "bad", "#!/bin/true\n", 0755);
    svc_write_file(dir, "bad.yaml", "timeout: x\n", 0644);
    for (int i = 0; i < 50; i++) {
        vrpc_service_free(svc_resolve_ok(dir, "svc", "a"));
        svc_resolve_err(dir, "bad", NULL, err);
        svc_resolve_err(dir, "none", NULL, err);
    }
    vt_leak_check(fds);
    vt_leak_free(fds);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("services-lookup");
    TCase *tc = tcase_create("lookup");
    TCase *cfg = tcase_create("config");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_kinds);
    tcase_add_test(tc, test_symlinks);
    tcase_add_test(tc, test_no_fd_leak);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(cfg, setup, teardown);
    tcase_add_loop_test(cfg, test_config_errors, 0,
                        (int)(sizeof(bad_configs) / sizeof(bad_configs[0])));
    tcase_add_test(cfg, test_config_file_errors);
    tcase_add_test(cfg, test_config_valid);
    tcase_add_test(cfg, test_config_order);
    suite_add_tcase(s, cfg);
    return svc_run_suite(s);
}
