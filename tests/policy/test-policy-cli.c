/* SPDX-License-Identifier: MIT */
/*
 * The vrpc-policy tool as a user runs it: each row executes the built binary
 * and checks the exit code (0 ok, 1 failure, 2 usage) and a piece of stdout
 * and stderr. @VALID@ is the shipped example configuration, @BROKEN@ a folder
 * with one bad file, @QUBES@/@BADQUBES@ qrexec policy files.
 */

#include <stdbool.h>
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
    {{"--help"}, 0, "Usage: vrpc-policy [--etc DIR] COMMAND", ""},
    {{"--version"}, 0, "vrpc-policy ", ""},
    {{"check", "--help"}, 0, "Usage:", ""},
    {{"explain", "--version"}, 0, "vrpc-policy ", ""},
    {{NULL}, 2, "", "vrpc-policy: missing COMMAND (try --help)\n"},
    {{"frobnicate"}, 2, "", "unknown command 'frobnicate'"},
    {{"--frobnicate"}, 2, "", "unknown option '--frobnicate'"},
    {{"check", "--etc", "@VALID@"}, 0, "policy OK: 6 rules in 1 file\n", ""},
    {{"check", "-e", "@VALID@"}, 0, "policy OK", ""},
    {{"check", "--etc", "@BROKEN@"},
     1,
     "/policy.d/50-bad.yaml:4:13: unknown action \"permit\"",
     ""},
    {{"check", "--etc", "@BROKEN@"}, 1, "/policy.d/60-empty.yaml:1:1: empty file", ""},
    {{"check", "--etc", "/nonexistent/vrpc"},
     1,
     "/nonexistent/vrpc/policy.d: cannot open folder: No such file or directory",
     ""},
    {{"check", "--etc"}, 2, "", "option '--etc' needs an argument"},
    {{"check", "--etc", ""}, 2, "", "--etc needs a folder"},
    {{"check", "--etc", "@VALID@", "extra"}, 2, "", "give the folder once"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo.Echo"},
     0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:22\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work", "@adminvm", "vrpc.Ping"},
     0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:26\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work", "personal", "demo.Echo+hello"},
     0,
     "allow target=personal rule=@VALID@/policy.d/50-demo.yaml:32\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work", "@default", "demo.Echo"},
     0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:15\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo.Secret"},
     0,
     "deny rule=@VALID@/policy.d/50-demo.yaml:9\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "other.Service"},
     0,
     "deny rule=default\n",
     ""},
    {{"explain", "--etc", "@VALID@", "dom0", "work", "vrpc.Ping"}, 0, "deny rule=default\n", ""},
    {{"explain", "--etc", "@VALID@", "work", "@default", "vrpc.Ping"},
     0,
     "deny rule=@VALID@/policy.d/50-demo.yaml:36 reason=\"allow rule matched a call naming no "
     "target, and has no redirect\"\n",
     ""},
    {{"explain", "--etc", "@BROKEN@", "work", "dom0", "demo.Echo"},
     1,
     "deny rule=default reason=\"invalid policy\"\n",
     "every call is denied"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo/Echo"},
     2,
     "",
     "invalid service in 'demo/Echo'"},
    {{"explain", "--etc", "@VALID@", "work", "dom0", "demo.Echo+a b"},
     2,
     "",
     "invalid argument in 'demo.Echo+a b'"},
    {{"explain", "--etc", "@VALID@", "work", "dom0",
      "x+"
      "abcdefghijklmnopqrstuvwxyzabcdefghij"
      "klmnopqrstuvwxyzabcdefghijklm"},
     2,
     "",
     "invalid argument"},
    /* a domain of another host: accepted, and matched by no local token ("*", @anyvm) */
    {{"explain", "--etc", "@VALID@", "work@hosta", "vault", "demo.Echo"},
     0,
     "deny rule=default\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work", "vault@hostb", "demo.Echo"},
     0,
     "deny rule=default\n",
     ""},
    {{"explain", "--etc", "@VALID@", "work@Hosta", "vault", "demo.Echo"},
     2,
     "",
     "invalid SOURCE 'work@Hosta': expected a domain name, NAME@HOST or @adminvm"},
    {{"explain", "--etc", "@VALID@", "work", "vault@", "demo.Echo"},
     2,
     "",
     "invalid TARGET 'vault@'"},
    {{"explain", "--etc", "@VALID@", "bad source", "dom0", "demo.Echo"},
     2,
     "",
     "invalid SOURCE 'bad source'"},
    {{"explain", "--etc", "@VALID@", "work", "@anyvm", "demo.Echo"},
     2,
     "",
     "invalid TARGET '@anyvm'"},
    {{"explain", "--etc", "@VALID@", "work", "dom0"},
     2,
     "",
     "explain needs SOURCE TARGET SERVICE[+ARG]"},
    {{"graph", "--etc", "@VALID@"},
     0,
     "\"work\" -> \"dom0\" [label=\"demo.*\\nvrpc.Ping\\n"
     "demo.* (no target named)\", color=\"darkgreen\"];",
     ""},
    {{"graph", "--etc", "@VALID@"}, 0, "digraph vrpc_policy {", ""},
    {{"graph", "--etc", "@BROKEN@"}, 1, "", "50-bad.yaml:4:13: unknown action"},
    {{"graph", "extra", "more"}, 2, "", "graph takes at most one folder"},
    {{"import-qubes", "@QUBES@"}, 0, "  - service: \"qubes.Filecopy\"", ""},
    {{"import-qubes", "@BADQUBES@"}, 1, "", ":2: target: cannot convert \"@dispvm\""},
    {{"import-qubes", "@BADQUBES@"}, 1, "", "vrpc-policy: 1 problem; nothing was written\n"},
    {{"import-qubes", "--skip-unconvertible", "@BADQUBES@"},
     0,
     "  - service: \"qubes.Filecopy\"",
     "bad.policy:2: skipped: target: cannot convert \"@dispvm\""},
    {{"import-qubes", "-s", "@BADQUBES@"},
     0,
     NULL,
     "vrpc-policy: 1 rule converted, 1 line skipped (listed above)\n"},
    {{"--skip-unconvertible", "import-qubes", "@BADQUBES@"}, 0, NULL, "1 line skipped"},
    {{"import-qubes", "/nonexistent/q.policy"},
     1,
     "",
     "/nonexistent/q.policy: cannot read: No such file or directory"},
    {{"import-qubes"}, 2, "", "import-qubes needs at least one PATH"},
    {{"import-qubes", "--etc", "x", "@QUBES@"}, 2, "", "import-qubes does not take --etc"},
    {{"--etc", "x", "import-qubes", "@QUBES@"}, 2, "", "import-qubes does not take --etc"},
    {{"import-qubes", "-"}, 0, "rules: []\n", ""}, /* stdin is /dev/null */
    /* issue 16: a whole policy.d folder */
    {{"import-qubes", "@TREE@"},
     1,
     "",
     "@TREE@/30-user.policy:3: target=: cannot convert \"@dispvm:web\""},
    {{"import-qubes", "@TREE@/"}, 1, "", "vrpc-policy: 3 problems; nothing was written\n"},
    {{"import-qubes", "--skip-unconvertible", "@TREE@"},
     0,
     "  # @TREE@/include/admin-global-ro:2 (via @TREE@/50-admin.policy:2): mgmt",
     "vrpc-policy: 24 rules converted, 3 lines skipped (listed above)\n"},
    {{"import-qubes", "-s", "@TREE@/30-user.policy"},
     0,
     "  # converted from @TREE@/local.d/10-a.policy\n",
     "1 line skipped"},
    {{"import-qubes", "@TREE@/../broken.d"},
     1,
     "",
     "broken.d/include/loop-b:2: include loop: @TREE@/../broken.d/include/loop-a is already "
     "being read"},
    /* issue 12 item 6: options before the command */
    {{"--etc", "@VALID@", "check"}, 0, "@VALID@: policy OK: 6 rules in 1 file\n", ""},
    {{"-e", "@VALID@", "explain", "work", "dom0", "demo.Echo"},
     0,
     "allow target=dom0 rule=@VALID@/policy.d/50-demo.yaml:22\n",
     ""},
    {{"--etc", "/nonexistent", "check", "--etc", "@VALID@"}, 0, "policy OK", ""},
    {{"--etc", "@VALID@", "graph"}, 0, "digraph vrpc_policy {", ""},
    {{"--etc"}, 2, "", "option '--etc' needs an argument"},
    {{"--etc", "@VALID@"}, 2, "", "missing COMMAND"},
    {{"--frobnicate", "check"}, 2, "", "vrpc-policy: unknown option '--frobnicate' (try"},
    {{"check", "--frobnicate"}, 2, "", "unknown option '--frobnicate' for check"},
    {{"check", "--skip-unconvertible"},
     2,
     "",
     "check does not take --skip-unconvertible (only import-qubes does)"},
    /* issue 11 item 7: check (and graph) take the folder as an argument */
    {{"check", "@VALID@"}, 0, "@VALID@: policy OK: 6 rules in 1 file\n", ""},
    {{"check", "@VALID@/policy.d"}, 0, "@VALID@: policy OK: 6 rules in 1 file\n", ""},
    {{"check", "@VALID@/policy.d/"}, 0, "@VALID@: policy OK", ""},
    {{"check", "@BROKEN@/policy.d"}, 1, "/policy.d/50-bad.yaml:4:13: unknown action", ""},
    {{"check", "/nonexistent/vrpc/policy.d"},
     1,
     "/nonexistent/vrpc/policy.d: cannot open folder: No such file or directory",
     ""},
    {{"check", "--etc", "@VALID@", "@VALID@"},
     2,
     "",
     "check: give the folder once, as --etc DIR or as DIR, not both"},
    {{"check", "a", "b"}, 2, "", "check takes at most one folder, got 'a' and 'b'"},
    {{"graph", "@VALID@/policy.d"}, 0, "digraph vrpc_policy {", ""},
};

static char *work;

/* ARG with every @KEY@ replaced by its path (malloc'd). */
static char *expand(const char *arg)
{
    static const char *const keys[] = {"@VALID@", "@BROKEN@", "@QUBES@", "@BADQUBES@", "@TREE@"};
    char *values[5] = {NULL};
    char *result = strdup(arg);
    bool again = true;

    ck_assert_int_ge(asprintf(&values[0], "%s/services/etc", VRPC_SOURCE_DIR), 0);
    ck_assert_int_ge(asprintf(&values[1], "%s/broken", work), 0);
    ck_assert_int_ge(asprintf(&values[2], "%s/good.policy", work), 0);
    ck_assert_int_ge(asprintf(&values[3], "%s/bad.policy", work), 0);
    ck_assert_int_ge(asprintf(&values[4], "%s/tests/policy/qubes-tree/policy.d", VRPC_SOURCE_DIR),
                     0);
    while (again) {
        again = false;
        for (int i = 0; i < 5; i++) {
            const char *hit = strstr(result, keys[i]);
            char *next = NULL;

            if (!hit)
                continue;
            ck_assert_int_ge(asprintf(&next, "%.*s%s%s", (int)(hit - result), result, values[i],
                                      hit + strlen(keys[i])),
                             0);
            free(result);
            result = next;
            again = true;
        }
    }
    for (int i = 0; i < 5; i++)
        free(values[i]);
    return result;
}

START_TEST(test_cli)
{
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
    tu_write(work, "bad.policy",
             "qubes.Filecopy * @anyvm @anyvm ask\nqubes.Open * work @dispvm allow\n");
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

int main(void)
{
    Suite *s = suite_create("policy-cli");
    TCase *tc = tcase_create("vrpc-policy");
    vt_leak_fixture(tc);

    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_cli, 0, sizeof(cli_cases) / sizeof(cli_cases[0]));
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
