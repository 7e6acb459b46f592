/* SPDX-License-Identifier: MIT */
/*
 * import-qubes, table-driven: each qrexec construct either converts to YAML
 * that loads as a valid vrpc policy with the same meaning, or is refused with
 * its FILE:LINE and no output at all. Nothing may be dropped silently.
 */

#include <string.h>

#include "import-qubes.h"
#include "test-util.h"

typedef struct ImportCase {
    const char *input;  /* q.policy */
    const char *input2; /* r.policy, NULL: none */
    int problems;       /* expected return value */
    const char *expect; /* substring of the YAML (problems == 0) or of stderr */
    const char *expect2;
} ImportCase;

static const ImportCase import_cases[] = {
    {"qubes.Filecopy * @anyvm @anyvm ask\n", NULL, 0,
     "  - service: \"qubes.Filecopy\"\n    argument: \"*\"\n    source: \"@anyvm\"\n"
     "    target: \"@anyvm\"\n    action: ask\n",
     NULL},
    {"qubes.Gpg + work vault allow\n", NULL, 0, "argument: \"\"\n", "source: \"work\""},
    {"qubes.Gpg +key1 work vault allow\n", NULL, 0, "argument: \"key1\"\n", NULL},
    {"qubes.Gpg +a+b work vault allow\n", NULL, 0, "argument: \"a+b\"\n", NULL},
    {"* * @anyvm @adminvm deny\n", NULL, 0, "service: \"*\"", "target: \"@adminvm\""},
    {"qubes.Gpg * work @default allow target=vault\n", NULL, 0, "redirect: \"vault\"\n",
     "target: \"@default\""},
    {"qubes.Gpg * work @default ask default_target=vault\n", NULL, 0, "default_target: \"vault\"\n",
     NULL},
    {"qubes.Gpg * work @anyvm ask target=@adminvm user=alice notify=yes\n", NULL, 0,
     "redirect: \"@adminvm\"\n    user: \"alice\"\n    notify: true\n", NULL},
    {"qubes.Gpg * work vault deny notify=no\n", NULL, 0, "action: deny\n    notify: false\n", NULL},
    {"qubes.Gpg * @tag:trusted @type:AppVM allow\n", NULL, 0, "source: \"@tag:trusted\"",
     "target: \"@type:AppVM\""},
    {"# keep this comment\n\n   \nqubes.Gpg * work vault allow\n", NULL, 0,
     "  # keep this comment\n", "  # q.policy:4: qubes.Gpg * work vault allow\n"},
    {"qubes.Gpg\t*\twork\tvault\tallow\r\n", NULL, 0, "action: allow\n", NULL},
    /* regression (found by fuzz-policy-import): bytes that are not UTF-8 in a
     * comment made the converted YAML unreadable */
    {"#wo\x8e\x98 caf\xc3\xa9\x01\n", NULL, 0, "  #wo?? caf???\n", NULL},
    {"", NULL, 0, "rules: []\n", NULL},
    {"# only a comment\n", NULL, 0, "rules: []\n", "# only a comment"},
    {"a.One * work vault allow\n", "a.Two * work vault deny\n", 0, "# converted from q.policy\n",
     "# converted from r.policy\n"},
    /* refusals */
    /* includes resolve in the folder of the files (see test-policy-import-tree.c) */
    {"!include /etc/qubes/policy.d/include/admin\n", NULL, 1,
     "q.policy:1: cannot read include/admin: No such file or directory", NULL},
    {"# c\n!include-dir /etc/qubes/policy.d/include\n", NULL, 1,
     "q.policy:2: cannot read include: No such file or directory", NULL},
    {"!include-service admin.vm.List * /etc/x\n", NULL, 1,
     "q.policy:1: !include-service \"/etc/x\": the path leaves the policy folder", NULL},
    {"!compat-4.0\n", NULL, 1,
     "q.policy:1: cannot convert !compat-4.0: it reads the R4.0 policy files of "
     "/etc/qubes-rpc/policy, which vrpc does not have (--skip-unconvertible skips such lines)",
     NULL},
    {"!frobnicate\n", NULL, 1, "q.policy:1: unknown directive", NULL},
    {"qubes.Open * work @dispvm allow\n", NULL, 1,
     "q.policy:1: target: cannot convert \"@dispvm\": vrpc has no disposable domains", NULL},
    {"qubes.Open * @dispvm:web vault allow\n", NULL, 1, "q.policy:1: source: cannot convert", NULL},
    {"qubes.Open * work @default allow target=@dispvm:web\n", NULL, 1,
     "q.policy:1: target=: cannot convert \"@dispvm:web\"", NULL},
    {"qubes.Open * work vault allow autostart=yes autostart=no\n", NULL, 1,
     "q.policy:1: duplicate parameter autostart=", NULL},
    {"qubes.Open * work vault allow frob=1\n", NULL, 1, "q.policy:1: unknown parameter \"frob\"",
     NULL},
    {"qubes.Open * work vault allow user\n", NULL, 1,
     "q.policy:1: expected PARAM=VALUE, got \"user\"", NULL},
    {"qubes.Open * work vault allow user=a user=b\n", NULL, 1,
     "q.policy:1: duplicate parameter user=", NULL},
    {"work vault allow\n", NULL, 1,
     "q.policy:1: expected SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...], got 3 fields",
     NULL},
    {"qubes.Open * work vault permit\n", NULL, 1, "q.policy:1: unknown action \"permit\"", NULL},
    {"qubes.Open * $anyvm vault allow\n", NULL, 1, "q.policy:1: source: old-style token", NULL},
    {"qubes.Open * @default vault allow\n", NULL, 1,
     "q.policy:1: source: @default is only valid as a target", NULL},
    {"qubes.Open * work vault deny target=vault\n", NULL, 1,
     "q.policy:1: target= is not valid with deny", NULL},
    {"qubes.Open * work vault deny user=root\n", NULL, 1, "q.policy:1: user= is not valid", NULL},
    {"qubes.Open * work vault allow default_target=vault\n", NULL, 1,
     "q.policy:1: default_target= is only valid with ask", NULL},
    {"qubes.Open * work @default allow\n", NULL, 1,
     "q.policy:1: allow with target @default needs target=", NULL},
    {"qubes.Open * work vault allow notify=maybe\n", NULL, 1,
     "q.policy:1: notify= must be yes or no", NULL},
    {"qubes/Open * work vault allow\n", NULL, 1, "q.policy:1: invalid service name", NULL},
    {"qubes.Open ARG work vault allow\n", NULL, 1,
     "q.policy:1: invalid argument \"ARG\" (expected *, + or +ARGUMENT)", NULL},
    {"qubes.Open * @foo vault allow\n", NULL, 1, "q.policy:1: source: unknown token", NULL},
    {"qubes.Open * work vault allow user=-x\n", NULL, 1, "q.policy:1: invalid user name", NULL},
    /* every problem is reported, and one bad line anywhere means no output */
    {"a.B * work vault allow\nbad\n!include x\n", NULL, 2, "q.policy:2: expected SERVICE",
     "q.policy:3: cannot read x: No such file or directory"},
    {"a.B * work vault allow\n", "x.Y * work @dispvm allow\n", 1, "r.policy:1: target:", NULL},
};

START_TEST(test_import)
{
    const ImportCase *c = &import_cases[_i];
    VrpcPolicyText files[2] = {
        {"q.policy", c->input, strlen(c->input)},
        {"r.policy", c->input2, c->input2 ? strlen(c->input2) : 0},
    };
    static const char *const names[] = {"q.policy", "r.policy"};
    char *out = NULL, *err = NULL;
    size_t out_size = 0, err_size = 0;
    FILE *fout = open_memstream(&out, &out_size);
    FILE *ferr = open_memstream(&err, &err_size);
    int r;

    ck_assert(fout && ferr);
    r = policy_import_qubes_memory(files, c->input2 ? 2 : 1, names, c->input2 ? 2 : 1, NULL, fout,
                                   ferr, NULL);
    fclose(fout);
    fclose(ferr);
    ck_assert_msg(r == c->problems, "row %d: %d problems, want %d; stderr:\n%s", _i, r, c->problems,
                  err);
    if (c->problems == 0) {
        VrpcPolicy *policy = NULL;
        int lr = vrpc_policy_load_texts(&(VrpcPolicyText){"out.yaml", out, out_size}, 1, NULL,
                                        &policy);

        ck_assert_msg(lr == 0, "row %d: converted YAML is invalid: %s\n%s", _i,
                      vrpc_policy_get_error(policy, 0), out);
        vrpc_policy_unref(policy);
        ck_assert_str_eq(err, "");
        ck_assert_msg(strstr(out, c->expect), "row %d: '%s' not in:\n%s", _i, c->expect, out);
        if (c->expect2)
            ck_assert_msg(strstr(out, c->expect2), "row %d: '%s' not in:\n%s", _i, c->expect2, out);
    } else {
        ck_assert_msg(out_size == 0, "row %d: output despite problems:\n%s", _i, out);
        ck_assert_msg(strstr(err, c->expect), "row %d: '%s' not in:\n%s", _i, c->expect, err);
        if (c->expect2)
            ck_assert_msg(strstr(err, c->expect2), "row %d: '%s' not in:\n%s", _i, c->expect2, err);
    }
    free(out);
    free(err);
}
END_TEST

/* A converted policy decides like the original: first match, redirects, @default. */
START_TEST(test_import_semantics)
{
    static const char qubes[] = "qubes.Gpg * work vault deny\n"
                                "qubes.Gpg * @anyvm @default allow target=vault\n"
                                "qubes.Gpg * @anyvm vault allow\n";
    char *out = NULL;
    size_t out_size = 0;
    FILE *fout = open_memstream(&out, &out_size);
    VrpcPolicy *policy = NULL;
    VrpcPolicyDecision d;
    char line[512];

    ck_assert_int_eq(policy_import_qubes_memory(&(VrpcPolicyText){"q.policy", qubes, strlen(qubes)},
                                                1, NULL, 0, NULL, fout, stderr, NULL),
                     0);
    fclose(fout);
    ck_assert_int_eq(
        vrpc_policy_load_texts(&(VrpcPolicyText){"out.yaml", out, out_size}, 1, NULL, &policy), 0);
    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = "work",
                                                               .untrusted_target = "vault",
                                                               .untrusted_service = "qubes.Gpg"},
                                          &d),
                     0);
    ck_assert_int_eq(d.action, VRPC_POLICY_DENY);
    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = "personal",
                                                               .untrusted_target = "@default",
                                                               .untrusted_service = "qubes.Gpg"},
                                          &d),
                     0);
    vrpc_policy_decision_format(&d, line, sizeof(line));
    ck_assert_str_eq(line, "allow target=vault rule=out.yaml:12");
    vrpc_policy_unref(policy);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy-import");
    TCase *tc = tcase_create("import-qubes");
    vt_leak_fixture(tc);

    tcase_add_loop_test(tc, test_import, 0, sizeof(import_cases) / sizeof(import_cases[0]));
    tcase_add_test(tc, test_import_semantics);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
