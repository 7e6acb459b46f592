/* SPDX-License-Identifier: MIT */
/*
 * import-qubes on whole qrexec policy trees. The first table gives small
 * in-memory trees, one include rule per row (order of files, inlining at the
 * position, paths resolved against the folder, the pre-4.1 format of
 * !include-service files, loops, escapes, what vrpc cannot express). The
 * fixture tests convert tests/policy/qubes-tree from disk and decide a table
 * of calls whose expected results were written by reading qrexec's rules
 * (first match over the inlined order), not by running the importer; each
 * decision is traced back to its qrexec FILE:LINE through the origin comment
 * that the importer writes above every rule.
 */

#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "import-qubes.h"
#include "test-util.h"

#define MAX_TREE 6

typedef struct TreeFile {
    const char *name;
    const char *text;
} TreeFile;

typedef struct TreeCase {
    TreeFile files[MAX_TREE];
    bool skip;       /* --skip-unconvertible */
    int problems;    /* expected return value */
    int skipped;     /* expected skipped lines */
    const char *out; /* substrings of the YAML, in this order (problems == 0) */
    const char *out2;
    const char *out3;
    const char *err; /* substring of stderr, NULL: must be empty */
} TreeCase;

static const TreeCase tree_cases[] = {
    /* the folder: NAME.policy in byte order; anything else is ignored */
    {{{"b.policy", "b.B * w v allow\n"},
      {"a.policy", "a.A * w v allow\n"},
      {"README", "not a rule\n"},
      {"c.policy~", "not a rule\n"},
      {".hidden.policy", "not a rule\n"},
      {"sub/d.policy", "not a rule\n"}},
     false,
     0,
     0,
     "# converted from a.policy\n",
     "service: \"a.A\"",
     "service: \"b.B\"",
     NULL},
    {{{"10-Upper.policy", "a.A * w v allow\n"}, {"20-ok.policy", "b.B * w v allow\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10-Upper.policy: invalid file name: qrexec reads only names made of [0-9a-z_.-]"},
    /* !include inlines at its position; nested paths are relative to the
     * folder, not to the including file */
    {{{"10.policy", "a.A * w v allow\n!include inc/x\nc.C * w v allow\n"},
      {"inc/x", "b.B * w v allow\n!include inc/y\n"},
      {"inc/y", "b2.B * w v allow\n"}},
     false,
     0,
     0,
     "service: \"a.A\"",
     "service: \"b2.B\"",
     "service: \"c.C\"",
     NULL},
    {{{"10.policy", "!include inc/x\n"}, {"inc/x", "!include y\n"}, {"inc/y", "a.A * w v deny\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "inc/x:1: cannot read y: No such file or directory"},
    /* the same file twice is not a loop */
    {{{"10.policy", "!include inc/x\n!include ./inc//x\n"}, {"inc/x", "a.A * w v allow\n"}},
     false,
     0,
     0,
     "# inc/x:1: a.A",
     "# inc/x:1: a.A",
     NULL,
     NULL},
    /* !include-dir: the folder's NAME.policy files in order, not recursive */
    {{{"10.policy", "!include-dir d\nz.Z * w v allow\n"},
      {"d/2.policy", "b.B * w v allow\n"},
      {"d/1.policy", "a.A * w v allow\n"},
      {"d/notes", "not a rule\n"},
      {"d/sub/3.policy", "not a rule\n"}},
     false,
     0,
     0,
     "service: \"a.A\"",
     "service: \"b.B\"",
     "service: \"z.Z\"",
     NULL},
    {{{"10.policy", "!include-dir d\n"}, {"d", "a.A * w v allow\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: d is not a folder"},
    {{{"10.policy", "!include-dir d\n"}, {"d/Bad.policy", "a.A * w v allow\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "d/Bad.policy: invalid file name"},
    /* a line of separators only ("," becomes a blank in the pre-4.1 format)
     * is an empty line, not a rule (the fuzzer found it read past the fields) */
    {{{"10.policy", "!include-service a.A + svc\n"}, {"svc", ",\n ,\t,\nw v allow\n"}},
     false,
     0,
     0,
     "service: \"a.A\"",
     NULL,
     NULL,
     NULL},
    /* !include-service: SOURCE TARGET ACTION[,PARAMS] for one service and
     * argument, '$' for '@', commas between parameters, nested includes */
    {{{"10.policy", "!include-service admin.vm.List + inc/ro\n"},
      {"inc/ro", "# old\n$anyvm $adminvm ask,default_target=dom0,user=u\n$include:inc/more\n"},
      {"inc/more", "mgmt @anyvm allow\n"}},
     false,
     0,
     0,
     "# inc/ro:2 (via 10.policy:1): $anyvm $adminvm ask,default_target=dom0,user=u\n"
     "  - service: \"admin.vm.List\"\n    argument: \"\"\n    source: \"@anyvm\"\n"
     "    target: \"@adminvm\"\n    action: ask\n    default_target: \"@adminvm\"\n",
     "# inc/more:1 (via inc/ro:3): mgmt @anyvm allow\n  - service: \"admin.vm.List\"",
     NULL,
     NULL},
    {{{"10.policy", "!include-service * +arg inc/ro\n"}, {"inc/ro", "@anyvm @anyvm deny\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: service * takes only the argument *"},
    {{{"10.policy", "!include-service a.B * inc/ro\n"}, {"inc/ro", "!include-dir x\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "inc/ro:1: invalid directive in an !include-service file (only !include): "
     "\"!include-dir\""},
    {{{"10.policy", "!include-service a.B * inc/ro\n"}, {"inc/ro", "work allow\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "inc/ro:1: expected SOURCE TARGET ACTION [PARAM=VALUE ...]"},
    {{{"10.policy", "!include-service a.B inc/ro\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: !include-service takes SERVICE ARGUMENT FILE, got 2 words"},
    {{{"10.policy", "!include\n!include a b\n"}},
     false,
     2,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:2: !include takes one path, got 2 words"},
    /* loops and escapes, at the FILE:LINE of the directive */
    {{{"10.policy", "!include 10.policy\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: include loop: 10.policy is already being read"},
    {{{"10.policy", "a.A * w v allow\n!include inc/a\n"},
      {"inc/a", "!include inc/b\n"},
      {"inc/b", "# b\n!include inc/../inc/a\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "inc/b:2: include loop: inc/a is already being read"},
    {{{"10.policy", "!include ../x\n!include-dir inc/../..\n!include /etc/passwd\n"}},
     false,
     3,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:3: !include \"/etc/passwd\": the path leaves the policy folder"},
    {{{"10.policy", "!include /etc/qubes/policy.d/inc/../inc/x\n"}, {"inc/x", "a.A * w v deny\n"}},
     false,
     0,
     0,
     "# inc/x:1: a.A * w v deny\n",
     NULL,
     NULL,
     NULL},
    {{{"10.policy", "!include /etc/qubes/policy.d/../x\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "the path leaves the policy folder"},
    /* what vrpc cannot express: strict fails, skip skips exactly those lines */
    {{{"10.policy", "a.A * w @dispvm allow\nb.B * w v allow\n!compat-4.0\n"}},
     false,
     2,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:3: cannot convert !compat-4.0"},
    {{{"10.policy", "a.A * w @dispvm allow\nb.B * w v allow\n!compat-4.0\n"}},
     true,
     0,
     2,
     "# skipped 10.policy:1: target: cannot convert \"@dispvm\"",
     "service: \"b.B\"",
     "# skipped 10.policy:3: cannot convert !compat-4.0",
     "10.policy:1: skipped: target:"},
    {{{"10.policy", "a.A * @dispvm:web v allow\n"}},
     true,
     0,
     1,
     "rules: []\n",
     NULL,
     NULL,
     "10.policy:1: skipped: source: cannot convert \"@dispvm:web\""},
    {{{"10.policy", "a.A * w v ask default_target=@dispvm\n"}},
     true,
     0,
     1,
     "rules: []",
     NULL,
     NULL,
     "10.policy:1: skipped: default_target=: cannot convert"},
    /* a broken line is never skipped, even with a @dispvm in it */
    {{{"10.policy", "a.A * w @dispvm permit\n"}},
     true,
     2,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: unknown action \"permit\""},
    {{{"10.policy", "!compat-4.0 x\n"}},
     true,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: !compat-4.0 takes no parameter"},
    /* dom0 and autostart */
    {{{"10.policy", "a.A * dom0 dom0 allow target=dom0\n"}},
     false,
     0,
     0,
     "  # note: source dom0 written as @adminvm; target dom0 written as @adminvm; target= dom0 "
     "written as @adminvm\n",
     "    source: \"@adminvm\"\n    target: \"@adminvm\"\n    action: allow\n"
     "    redirect: \"@adminvm\"\n",
     NULL,
     NULL},
    {{{"10.policy", "a.A * w v allow autostart=no\n"}},
     false,
     0,
     0,
     "  # note: autostart=no: vrpc never starts domains anyway\n  # 10.policy:1: ",
     NULL,
     NULL,
     NULL},
    {{{"10.policy", "a.A * w v ask autostart=yes\n"}},
     false,
     0,
     0,
     "# note: autostart=yes: vrpc never starts domains",
     "    action: ask\n",
     NULL,
     "10.policy:1: note: autostart=yes"},
    {{{"10.policy", "a.A * w v deny autostart=no\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: autostart= is not valid with deny"},
    {{{"10.policy", "a.A * w v allow autostart=maybe\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: autostart= must be yes or no"},
    {{{"10.policy", "* +arg w v allow\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: service * takes only the argument *"},
    {{{"10.policy", "!frob x\n"}},
     false,
     1,
     0,
     NULL,
     NULL,
     NULL,
     "10.policy:1: unknown directive \"!frob\""},
};

/* Convert TREE (the folder: top == NULL) into *OUTP / *ERRP. */
static int convert(const VrpcPolicyText *tree, size_t n, const PolicyImportOptions *opts,
                   char **outp, char **errp, PolicyImportStats *stats)
{
    size_t out_size = 0, err_size = 0;
    FILE *fout = open_memstream(outp, &out_size);
    FILE *ferr = open_memstream(errp, &err_size);
    int r;

    ck_assert(fout && ferr);
    r = policy_import_qubes_memory(tree, n, NULL, 0, opts, fout, ferr, stats);
    fclose(fout);
    fclose(ferr);
    return r;
}

static void assert_loads(const char *out)
{
    VrpcPolicy *policy = NULL;
    int r = vrpc_policy_load_texts(&(VrpcPolicyText){"out.yaml", out, strlen(out)}, 1, NULL,
                                   &policy);

    ck_assert_msg(r == 0, "converted YAML is invalid: %s\n%s", vrpc_policy_get_error(policy, 0),
                  out);
    vrpc_policy_unref(policy);
}

START_TEST(test_tree)
{
    const TreeCase *c = &tree_cases[_i];
    VrpcPolicyText tree[MAX_TREE];
    PolicyImportStats stats;
    size_t n = 0;
    char *out = NULL, *err = NULL;
    const char *pos;
    int r;

    for (; n < MAX_TREE && c->files[n].name; n++)
        tree[n] = (VrpcPolicyText){c->files[n].name, c->files[n].text, strlen(c->files[n].text)};
    r = convert(tree, n, &(PolicyImportOptions){.skip_unconvertible = c->skip}, &out, &err, &stats);
    ck_assert_msg(r == c->problems, "row %d: %d problems, want %d; stderr:\n%s", _i, r, c->problems,
                  err);
    ck_assert_int_eq(stats.problems, c->problems);
    ck_assert_msg(stats.skipped == c->skipped, "row %d: %d skipped, want %d", _i, stats.skipped,
                  c->skipped);
    if (c->err)
        ck_assert_msg(strstr(err, c->err), "row %d: '%s' not in stderr:\n%s", _i, c->err, err);
    else
        ck_assert_msg(!*err, "row %d: unexpected stderr:\n%s", _i, err);

    if (c->problems > 0) {
        ck_assert_msg(!*out, "row %d: output despite problems:\n%s", _i, out);
    } else {
        assert_loads(out);
        pos = out;
        for (int k = 0; k < 3; k++) {
            const char *want = k == 0 ? c->out : k == 1 ? c->out2 : c->out3;
            const char *hit;

            if (!want)
                continue;
            hit = strstr(pos, want);
            ck_assert_msg(hit, "row %d: '%s' not in (the rest of) the output:\n%s", _i, want, out);
            pos = hit + 1;
        }
    }
    free(out);
    free(err);
}
END_TEST

/* A line that is skipped gets no autostart note: only converted rules do. */
START_TEST(test_tree_no_note_when_skipped)
{
    static const char text[] = "a.A * w @dispvm allow autostart=yes\n";
    VrpcPolicyText tree[] = {{"10.policy", text, strlen(text)}};
    char *out = NULL, *err = NULL;
    PolicyImportStats stats;

    ck_assert_int_eq(
        convert(tree, 1, &(PolicyImportOptions){.skip_unconvertible = true}, &out, &err, &stats),
        0);
    ck_assert_int_eq(stats.skipped, 1);
    ck_assert_int_eq(stats.notes, 0);
    ck_assert_str_eq(err, "10.policy:1: skipped: target: cannot convert \"@dispvm\": vrpc has no "
                          "disposable domains\n");
    free(out);
    free(err);
}
END_TEST

/* A chain of includes deeper than the limit is refused, not followed. */
START_TEST(test_tree_depth)
{
    VrpcPolicyText tree[24];
    char names[24][16], texts[24][32];
    char *out = NULL, *err = NULL;
    PolicyImportStats stats;

    for (int i = 0; i < 24; i++) {
        snprintf(names[i], sizeof(names[i]), i ? "inc/%d" : "0.policy", i);
        snprintf(texts[i], sizeof(texts[i]), i < 23 ? "!include inc/%d\n" : "a.A * w v deny\n",
                 i + 1);
        tree[i] = (VrpcPolicyText){names[i], texts[i], strlen(texts[i])};
    }
    ck_assert_int_eq(convert(tree, 24, NULL, &out, &err, &stats), 1);
    ck_assert_msg(strstr(err, "inc/16:1: includes nested more than 16 deep"), "%s", err);
    free(out);
    free(err);
}
END_TEST

/* A small tree that includes one file many times stops at the byte budget. */
START_TEST(test_tree_budget)
{
    static const char top[] = "!include x\n!include x\n!include x\n!include x\n";
    static const char x[] = "a.A * w v allow\n"; /* 16 bytes */
    VrpcPolicyText tree[] = {{"10.policy", top, strlen(top)}, {"x", x, strlen(x)}};
    char *out = NULL, *err = NULL;

    /* 44 + 3 * 16 fit, the fourth inclusion does not */
    ck_assert_int_eq(
        convert(tree, 2, &(PolicyImportOptions){.max_bytes = 44 + 3 * 16 + 8}, &out, &err, NULL),
        1);
    ck_assert_msg(strstr(err, "10.policy:4: the include tree reads more than the limit"), "%s",
                  err);
    free(out);
    free(err);
}
END_TEST

/* ---- the fixture tree, from disk ---- */

typedef struct Call {
    const char *source, *target, *service, *argument;
    const char *decision; /* what qrexec decides: "allow", "deny" or "ask" */
    const char *to;       /* allow: the resolved target */
    const char *origin;   /* qrexec FILE:LINE of the deciding rule; NULL: no rule matched */
} Call;

/* Expected decisions, from qrexec's rules applied to the fixture by hand:
 * rules in the order 10-local.policy (with include/local-rules and, inside
 * it, include/nested-rules inlined), 30-user.policy (with local.d/10-a then
 * local.d/20-b), 50-admin.policy (include/admin-global-ro for two services,
 * with include/admin-extra inlined at its line 4; include/admin-local-rwx),
 * 90-default.policy; the first matching rule decides. @anyvm matches every
 * domain but dom0, and also a call that named no target. */
static const Call calls[] = {
    {"untrusted", "work", "qubes.Gpg", "", "deny", NULL, "10-local.policy:2"},
    {"work", "personal", "qubes.Filecopy", "", "allow", "personal", "include/local-rules:2"},
    {"work", "vault", "qubes.Filecopy", "", "ask", NULL, "include/nested-rules:1"},
    {"work", "sys-net", "qubes.Filecopy", "", "deny", NULL, "include/local-rules:4"},
    {"work", "@default", "qubes.Filecopy", "", "deny", NULL, "include/local-rules:4"},
    {"work", "work", "qubes.Filecopy", "", "deny", NULL, "include/local-rules:4"},
    {"personal", "work", "qubes.Filecopy", "", "ask", NULL, "90-default.policy:2"},
    {"work", "dom0", "qubes.GetDate", "", "allow", "dom0", "10-local.policy:4"},
    {"work", "@adminvm", "qubes.GetDate", "", "allow", "dom0", "10-local.policy:4"},
    {"work", "personal", "qubes.GetDate", "", "deny", NULL, "90-default.policy:3"},
    {"work", "personal", "qubes.StartApp", "firefox", "allow", "personal", "30-user.policy:1"},
    {"work", "personal", "qubes.StartApp", "mail", "allow", "personal", "30-user.policy:2"},
    {"work", "@default", "qubes.OpenInVM", "", "allow", "personal", "30-user.policy:4"},
    {"work", "dom0", "qubes.Backup", "", "allow", "dom0", "local.d/10-a.policy:1"},
    {"mgmt", "dom0", "admin.vm.List", "", "allow", "dom0",
     "include/admin-global-ro:2 (via 50-admin.policy:2)"},
    {"sys-net", "dom0", "admin.vm.List", "", "deny", NULL,
     "include/admin-global-ro:3 (via 50-admin.policy:2)"},
    {"auditor", "dom0", "admin.vm.List", "", "deny", NULL,
     "include/admin-global-ro:3 (via 50-admin.policy:2)"},
    {"auditor", "work", "admin.vm.List", "", "allow", "work",
     "include/admin-extra:2 (via include/admin-global-ro:4)"},
    {"mgmt", "dom0", "admin.vm.property.Get", "label", "allow", "dom0",
     "include/admin-global-ro:2 (via 50-admin.policy:3)"},
    {"mgmt", "dom0", "admin.vm.property.Get", "netvm", "deny", NULL, "90-default.policy:4"},
    {"mgmt", "dom0", "admin.vm.property.Get", "", "deny", NULL, "90-default.policy:4"},
    {"mgmt", "work", "admin.vm.Start", "", "allow", "work",
     "include/admin-local-rwx:1 (via 50-admin.policy:4)"},
    {"mgmt", "dom0", "admin.vm.Start", "", "deny", NULL, "90-default.policy:4"},
    {"work", "vault", "other.Service", "", "deny", NULL, "90-default.policy:5"},
    {"work", "@default", "other.Service", "", "deny", NULL, "90-default.policy:5"},
};

static char *fixture(const char *folder)
{
    char *path = NULL;

    ck_assert_int_ge(asprintf(&path, "%s/tests/policy/qubes-tree/%s", VRPC_SOURCE_DIR, folder), 0);
    return path;
}

/* Convert PATHS from disk; ROOT/ is removed from every message and comment. */
static int convert_paths(const char *const *paths, size_t n, bool skip, const char *root,
                         char **outp, char **errp, PolicyImportStats *stats)
{
    size_t out_size = 0, err_size = 0;
    FILE *fout = open_memstream(outp, &out_size);
    FILE *ferr = open_memstream(errp, &err_size);
    char *prefix = NULL;
    int r;

    ck_assert(fout && ferr);
    r = policy_import_qubes_paths(paths, n, &(PolicyImportOptions){.skip_unconvertible = skip},
                                  fout, ferr, stats);
    fclose(fout);
    fclose(ferr);
    ck_assert_int_ge(asprintf(&prefix, "%s/", root), 0);
    for (char **s = outp; s; s = s == outp ? errp : NULL) {
        char *hit;

        while ((hit = strstr(*s, prefix)))
            memmove(hit, hit + strlen(prefix), strlen(hit + strlen(prefix)) + 1);
    }
    free(prefix);
    return r;
}

/* The origin comment just above the rule at LINE (1-based) of YAML. */
static char *origin_of(const char *yaml, unsigned line)
{
    const char *p = yaml, *end;

    for (unsigned i = 1; i < line - 1 && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    ck_assert(p);
    p = strstr(p, "# ");
    ck_assert(p);
    p += 2;
    end = strstr(p, ": ");
    ck_assert(end);
    return strndup(p, (size_t)(end - p));
}

START_TEST(test_fixture_decisions)
{
    const Call *c = &calls[_i];
    _cleanup_free_ char *root = fixture("policy.d");
    const char *paths[] = {root};
    char *out = NULL, *err = NULL;
    VrpcPolicy *policy = NULL;
    VrpcPolicyDecision d;
    PolicyImportStats stats;

    ck_assert_int_eq(convert_paths(paths, 1, true, root, &out, &err, &stats), 0);
    ck_assert_int_eq(stats.skipped, 3);
    ck_assert_int_eq(
        vrpc_policy_load_texts(&(VrpcPolicyText){"out.yaml", out, strlen(out)}, 1, NULL, &policy),
        0);
    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = c->source,
                                                               .untrusted_target = c->target,
                                                               .untrusted_service = c->service,
                                                               .untrusted_argument = c->argument},
                                          &d),
                     0);
    ck_assert_msg(strcmp(vrpc_policy_action_to_string(d.action), c->decision) == 0,
                  "call %d (%s -> %s %s+%s): %s, qrexec decides %s", _i, c->source, c->target,
                  c->service, c->argument, vrpc_policy_action_to_string(d.action), c->decision);
    if (c->to)
        ck_assert_str_eq(d.target, c->to);
    if (!c->origin) {
        ck_assert_int_eq(d.rule_line, 0);
    } else {
        char *origin = origin_of(out, d.rule_line);

        ck_assert_msg(strcmp(origin, c->origin) == 0, "call %d: decided by %s, qrexec by %s", _i,
                      origin, c->origin);
        free(origin);
    }
    vrpc_policy_unref(policy);
    free(out);
    free(err);
}
END_TEST

/* Strict mode: each line vrpc cannot express, located; nothing written. */
START_TEST(test_fixture_strict)
{
    _cleanup_free_ char *root = fixture("policy.d");
    const char *paths[] = {root};
    char *out = NULL, *err = NULL;

    ck_assert_int_eq(convert_paths(paths, 1, false, root, &out, &err, NULL), 3);
    ck_assert_str_eq(out, "");
    ck_assert_str_eq(
        err, "include/nested-rules:2: target: cannot convert \"@dispvm\": vrpc has no disposable "
             "domains (--skip-unconvertible skips such lines)\n"
             "30-user.policy:2: note: autostart=yes: vrpc never starts domains: a call to a "
             "stopped target fails instead of starting it\n"
             "30-user.policy:3: target=: cannot convert \"@dispvm:web\": vrpc has no disposable "
             "domains (--skip-unconvertible skips such lines)\n"
             "90-default.policy:1: cannot convert !compat-4.0: it reads the R4.0 policy files of "
             "/etc/qubes-rpc/policy, which vrpc does not have (--skip-unconvertible skips such "
             "lines)\n");
    free(out);
    free(err);
}
END_TEST

START_TEST(test_fixture_broken)
{
    _cleanup_free_ char *root = fixture("broken.d");
    const char *paths[] = {root};
    char *out = NULL, *err = NULL;

    ck_assert_int_eq(convert_paths(paths, 1, true, root, &out, &err, NULL), 8);
    ck_assert_str_eq(out, "");
    ck_assert_str_eq(
        err, "include/loop-b:2: include loop: include/loop-a is already being read\n"
             "20-escape.policy:1: !include \"../policy.d/10-local.policy\": the path leaves the "
             "policy folder\n"
             "20-escape.policy:2: !include-dir \"..\": the path leaves the policy folder\n"
             "20-escape.policy:3: !include \"/etc/passwd\": the path leaves the policy folder\n"
             "20-escape.policy:4: !include-service "
             "\"include/../../policy.d/include/admin-extra\": the path leaves the policy folder\n"
             "30-missing.policy:1: cannot read include/no-such-file: No such file or directory\n"
             "30-missing.policy:2: cannot read include/no-such-folder: No such file or "
             "directory\n"
             "30-missing.policy:3: include is a folder (!include-dir reads a folder)\n");
    free(out);
    free(err);
}
END_TEST

/* Symbolic links are followed, but may not lead out of the folder; an
 * absolute path inside the folder is accepted; a single file's includes
 * resolve in its own folder. */
START_TEST(test_fs_links)
{
    _cleanup_free_ char *work = tu_mkdtemp();
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *abs_include = NULL;
    _cleanup_free_ char *link = NULL;
    _cleanup_free_ char *single = NULL;
    _cleanup_free_ char *real = NULL;
    char *out = NULL, *err = NULL;
    const char *paths[1];

    ck_assert_int_ge(asprintf(&root, "%s/policy.d", work), 0);
    tu_write(work, "outside", "a.A * w v allow\n");
    tu_write(work, "policy.d/inc/ok", "a.A * w v deny\n");
    /* the resolved path, in case $TMPDIR goes through a symbolic link */
    real = realpath(root, NULL);
    ck_assert_ptr_nonnull(real);
    ck_assert_int_ge(asprintf(&abs_include, "!include %s/inc/ok\n", real), 0);
    tu_write(work, "policy.d/10-a.policy", "!include inc/out\n!include inc/in\n");
    tu_write(work, "policy.d/20-b.policy", abs_include);
    ck_assert_int_ge(asprintf(&link, "%s/inc/out", root), 0);
    ck_assert_int_eq(symlink("../../outside", link), 0);
    free(link);
    ck_assert_int_ge(asprintf(&link, "%s/inc/in", root), 0);
    ck_assert_int_eq(symlink("ok", link), 0);

    paths[0] = root;
    ck_assert_int_eq(convert_paths(paths, 1, false, root, &out, &err, NULL), 1);
    ck_assert_str_eq(err, "10-a.policy:1: inc/out leads out of the policy folder (through a "
                          "symbolic link)\n");
    free(out);
    free(err);

    /* one file: its folder is the root */
    ck_assert_int_ge(asprintf(&single, "%s/20-b.policy", root), 0);
    paths[0] = single;
    ck_assert_int_eq(convert_paths(paths, 1, false, root, &out, &err, NULL), 0);
    ck_assert_str_eq(err, "");
    ck_assert_msg(strstr(out, "  # inc/ok:1: a.A * w v deny\n"), "%s", out);
    ck_assert_msg(strstr(out, "  # converted from 20-b.policy\n"), "%s", out);
    free(out);
    free(err);
    tu_rmrf(work);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy-import-tree");
    TCase *tc = tcase_create("import-qubes-tree");
    vt_leak_fixture(tc);

    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_tree, 0, sizeof(tree_cases) / sizeof(tree_cases[0]));
    tcase_add_test(tc, test_tree_no_note_when_skipped);
    tcase_add_test(tc, test_tree_depth);
    tcase_add_test(tc, test_tree_budget);
    tcase_add_loop_test(tc, test_fixture_decisions, 0, sizeof(calls) / sizeof(calls[0]));
    tcase_add_test(tc, test_fixture_strict);
    tcase_add_test(tc, test_fixture_broken);
    tcase_add_test(tc, test_fs_links);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
