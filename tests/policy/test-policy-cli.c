/* SPDX-License-Identifier: MIT */
/*
 * The vrpc-policy tool as a user runs it: each row executes the built binary
 * and checks the exit code (0 ok, 1 failure, 2 usage) and a piece of stdout
 * and stderr. @VALID@ is the shipped example configuration, @BROKEN@ a folder
 * with one bad file, @QUBES@/@BADQUBES@ qrexec policy files.
 */

#include <string.h>

#include "test-util.h"

#define MAX_ARGS 10

typedef struct CliCase {
    const char *args[MAX_ARGS];
    int status;
    const char *out; /* substring of stdout, NULL: don't care, "" : must be empty */
    const char *err; /* substring of stderr, same conventions */
} CliCase;

static const CliCase cli_cases[] = {
    {{"--help"}, 0, "Usage: vrpc-policy COMMAND", ""},
    {{"--version"}, 0, "vrpc-policy ", ""},
    {{"check", "--help"}, 0, "Usage:", ""},
    {{"explain", "--version"}, 0, "vrpc-policy ", ""},
    {{NULL}, 2, "", "vrpc-policy: missing COMMAND (try 'vrpc-policy --help')\n"},
    {{"frobnicate"}, 2, "", "unknown command 'frobnicate'"},
    {{"--frobnicate"}, 2, "", "unknown option --frobnicate"},
    {{"check", "--etc", "@VALID@"}, 0, "policy OK: 6 rules in 1 file\n", ""},
    {{"check", "-e", "@VALID@"}, 0, "policy OK", ""},
    {{"check", "--etc", "@BROKEN@"}, 1, "/policy.d/50-bad.yaml:4:13: unknown action \"permit\"",
     ""},
    {{"check", "--etc", "@BROKEN@"}, 1, "/policy.d/60-empty.yaml:1:1: empty file", ""},
    {{"check", "--etc", "/nonexistent/vrpc"}, 1,
     "/nonexistent/vrpc/policy.d: cannot open folder: No such file or directory", ""},
    {{"check", "--etc"}, 2, "", "option --etc needs an argument"},
    {{"check", "--etc", ""}, 2, "", "--etc needs a folder"},
    {{"check", "--etc", "@VALID@", "extra"}, 2, "", "check takes no arguments"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo.Echo"}, 0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:22\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "@adminvm", "vrpc.Ping"}, 0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:26\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "personal", "demo.Echo+hello"}, 0,
     "allow target=personal rule=@VALID@/policy.d/50-demo.yaml:32\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "@default", "demo.Echo"}, 0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:15\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo.Secret"}, 0,
     "deny rule=@VALID@/policy.d/50-demo.yaml:9\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "other.Service"}, 0,
     "deny rule=default\n", ""},
    {{"explain", "--etc", "@VALID@", "dom0", "work", "vrpc.Ping"}, 0, "deny rule=default\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "@default", "vrpc.Ping"}, 0,
     "deny rule=@VALID@/policy.d/50-demo.yaml:36 reason=\"allow rule matched a call naming no "
     "target, and has no redirect\"\n",
     ""},
    {{"explain", "--etc", "@BROKEN@", "work", "dom0", "demo.Echo"}, 1,
     "deny rule=default reason=\"invalid policy\"\n",
     "every call is denied"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo/Echo"}, 2, "",
     "invalid service in 'demo/Echo'"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo.Echo+a b"}, 2, "",
     "invalid argument in 'demo.Echo+a b'"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "x+" "abcdefghijklmnopqrstuvwxyzabcdefghij"
                                                      "klmnopqrstuvwxyzabcdefghijklm"},
     2, "", "invalid argument"},
    {{"explain", "--etc", "@VALID@", "bad source", "dom0", "demo.Echo"}, 2, "",
     "invalid SOURCE 'bad source'"},
    {{"explain", "--etc", "@VALID@", "work", "@anyvm", "demo.Echo"}, 2, "",
     "invalid TARGET '@anyvm'"},
    {{"explain", "--etc", "@VALID@", "work", "dom0"}, 2, "",
     "explain needs SOURCE TARGET SERVICE[+ARG]"},
    {{"graph", "--etc", "@VALID@"}, 0, "\"work\" -> \"dom0\" [label=\"demo.*\\nvrpc.Ping\\n"
                                       "demo.* (no target named)\", color=\"darkgreen\"];",
     ""},
    {{"graph", "--etc", "@VALID@"}, 0, "digraph vrpc_policy {", ""},
    {{"graph", "--etc", "@BROKEN@"}, 1, "", "50-bad.yaml:4:13: unknown action"},
    {{"graph", "extra"}, 2, "", "graph takes no arguments"},
    {{"import-qubes", "@QUBES@"}, 0, "  - service: \"qubes.Filecopy\"", ""},
    {{"import-qubes", "@BADQUBES@"}, 1, "", ":2: cannot convert !include"},
    {{"import-qubes", "@BADQUBES@"}, 1, "", "1 line could not be converted; nothing was written"},
    {{"import-qubes", "/nonexistent/q.policy"}, 1, "",
     "cannot read /nonexistent/q.policy: No such file or directory"},
    {{"import-qubes"}, 2, "", "import-qubes needs at least one FILE"},
    {{"import-qubes", "--etc", "x", "@QUBES@"}, 2, "", "import-qubes does not take --etc"},
};

static char *work;

static char *expand(const char *arg) {
    static const char *const keys[] = {"@VALID@", "@BROKEN@", "@QUBES@", "@BADQUBES@"};
    const char *values[4];
    char *valid = NULL, *broken = NULL, *qubes = NULL, *bad = NULL, *result = NULL;
    const char *hit;

    ck_assert_int_ge(asprintf(&valid, "%s/services/etc", VRPC_SOURCE_DIR), 0);
    ck_assert_int_ge(asprintf(&broken, "%s/broken", work), 0);
    ck_assert_int_ge(asprintf(&qubes, "%s/good.policy", work), 0);
    ck_assert_int_ge(asprintf(&bad, "%s/bad.policy", work), 0);
    values[0] = valid;
    values[1] = broken;
    values[2] = qubes;
    values[3] = bad;
    for (int i = 0; i < 4 && !result; i++) {
        hit = strstr(arg, keys[i]);
        if (hit)
            ck_assert_int_ge(asprintf(&result, "%.*s%s%s", (int)(hit - arg), arg, values[i],
                                      hit + strlen(keys[i])),
                             0);
    }
    free(valid);
    free(broken);
    free(qubes);
    free(bad);
    return result ? result : strdup(arg);
}

START_TEST(test_cli) {
    const CliCase *c = &cli_cases[_i];
    char *argv[MAX_ARGS + 2] = {(char *)VRPC_POLICY_BIN};
    char *want_out = NULL, *want_err = NULL;
    TuRun run = {0};
    int n = 1;

    work = tu_mkdtemp();
    tu_write(work, "broken/policy.d/50-bad.yaml",
             "rules:\n  - service: a\n    source: b\n    action: permit\n    target: c\n");
    tu_write(work, "broken/policy.d/60-empty.yaml", "");
    tu_write(work, "good.policy", "qubes.Filecopy * @anyvm @anyvm ask\n");
    tu_write(work, "bad.policy", "qubes.Filecopy * @anyvm @anyvm ask\n!include other\n");
    for (int i = 0; i < MAX_ARGS && c->args[i]; i++)
        argv[n++] = expand(c->args[i]);
    argv[n] = NULL;

    tu_run(argv, &run);
    if (c->out)
        want_out = expand(c->out);
    if (c->err)
        want_err = expand(c->err);
    ck_assert_msg(run.status == c->status, "row %d: exit %d, want %d\nstdout: %s\nstderr: %s", _i,
                  run.status, c->status, run.out, run.err);
    if (want_out && !*want_out)
        ck_assert_msg(!*run.out, "row %d: unexpected stdout: %s", _i, run.out);
    else if (want_out)
        ck_assert_msg(strstr(run.out, want_out), "row %d: '%s' not in stdout:\n%s", _i, want_out,
                      run.out);
    if (want_err && !*want_err)
        ck_assert_msg(!*run.err, "row %d: unexpected stderr: %s", _i, run.err);
    else if (want_err)
        ck_assert_msg(strstr(run.err, want_err), "row %d: '%s' not in stderr:\n%s", _i, want_err,
                      run.err);
    /* one line for bad usage, never a stack of errors */
    if (c->status == 2)
        ck_assert_msg(strchr(run.err, '\n') == run.err + strlen(run.err) - 1,
                      "row %d: usage error is not one line: %s", _i, run.err);

    for (int i = 1; i < n; i++)
        free(argv[i]);
    free(want_out);
    free(want_err);
    tu_run_free(&run);
    tu_rmrf(work);
    free(work);
}
END_TEST

int main(void) {
    Suite *s = suite_create("policy-cli");
    TCase *tc = tcase_create("vrpc-policy");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_cli, 0, sizeof(cli_cases) / sizeof(cli_cases[0]));
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
