/* SPDX-License-Identifier: MIT */
/*
 * Loading, table-driven: every kind of invalid policy or domains file, each
 * with the exact FILE:LINE:COL it must be reported at, and valid files that
 * must stay valid. Every row also loads "00-allow-all.yaml", which would
 * allow any call, to prove fail-closed behaviour: one bad file anywhere and
 * every call is denied as "invalid policy". A second case set loads real
 * folders: ordering by file name, ignored files, missing or odd entries, and
 * the shipped example configuration.
 */

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-util.h"

#define S64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define S65 S64 "m"
#define RULE(extra) "rules:\n  - service: a\n    source: work\n    target: dom0\n" extra
#define FLOW(body) "rules:\n  - {" body "}\n"

typedef struct LoadCase {
    const char *what;
    const char *text;    /* t.yaml */
    const char *text2;   /* u.yaml, NULL: none */
    const char *domains; /* domains.yaml, NULL: none */
    int n_errors;        /* -1: at least one */
    const char *error;   /* a prefix of one error line; NULL: valid */
} LoadCase;

static const LoadCase load_cases[] = {
    /* valid files */
    {"minimal", FLOW("service: a, source: b, target: c, action: allow"), NULL, NULL, 0, NULL},
    {"no rules", "rules: []\n", NULL, NULL, 0, NULL},
    {"number as string", RULE("    action: allow\n    user: 1000\n"), NULL, NULL, 0, NULL},
    {"every key",
     RULE("    argument: x+y\n    action: ask\n    redirect: vault\n"
          "    default_target: '@adminvm'\n    user: alice\n    notify: false\n"),
     NULL, NULL, 0, NULL},
    {"document markers and comments",
     "# policy\n---\nrules:  # list\n  - service: 'demo.*'  # prefix\n    source: '*'\n"
     "    target: '@anyvm'\n    action: deny\n    notify: True\n...\n",
     NULL, NULL, 0, NULL},
    {"64-char names",
     FLOW("service: " S64 ", argument: " S64 ", source: " S64 ", target: " S64 ", action: allow"),
     NULL, NULL, 0, NULL},
    {"empty argument", FLOW("service: a, argument: '', source: b, target: c, action: allow"), NULL,
     NULL, 0, NULL},
    {"valid domains", "rules: []\n", NULL,
     "domains:\n  dom0: {tags: [admin]}\n  work: {tags: [a, b, a], type: app}\n  x: {}\n", 0, NULL},
    {"allow @default with redirect", RULE("    target: '@default'\n"), NULL, NULL, -1,
     "t.yaml:5:5: duplicate key \"target\" (first at 4:5)"},
    /* unknown keys */
    {"unknown rule key", RULE("    action: allow\n    colour: red\n"), NULL, NULL, 1,
     "t.yaml:6:5: unknown key \"colour\" (expected service, argument"},
    {"unknown top key", "rules: []\nextra: 1\n", NULL, NULL, 1,
     "t.yaml:2:1: unknown key \"extra\" (expected \"rules\")"},
    {"misspelt key", RULE("    action: allow\n    redirects: vault\n"), NULL, NULL, 1,
     "t.yaml:6:5: unknown key \"redirects\""},
    /* wrong types */
    {"service is a list",
     "rules:\n  - service: [a]\n    source: b\n    target: c\n"
     "    action: allow\n",
     NULL, NULL, 1, "t.yaml:2:14: service: expected a string, got a list"},
    {"notify: yes", RULE("    action: allow\n    notify: yes\n"), NULL, NULL, 1,
     "t.yaml:6:13: notify: expected true or false, got \"yes\""},
    {"notify quoted", RULE("    action: allow\n    notify: 'true'\n"), NULL, NULL, 1,
     "t.yaml:6:13: notify: expected true or false"},
    {"notify list", RULE("    action: allow\n    notify: []\n"), NULL, NULL, 1,
     "t.yaml:6:13: notify: expected true or false, got a list"},
    {"argument null", RULE("    action: allow\n    argument: ~\n"), NULL, NULL, 1,
     "t.yaml:6:15: argument: expected a string, got null"},
    {"source mapping", FLOW("service: a, source: {x: y}, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: source: expected a string, got a mapping"},
    {"action boolean", RULE("    action: true\n"), NULL, NULL, 1,
     "t.yaml:5:13: action: expected a string, got a boolean"},
    {"rules is a mapping", "rules: {a: b}\n", NULL, NULL, 1,
     "t.yaml:1:8: rules: expected a list of rules, got a mapping"},
    {"rules is null", "rules:\n", NULL, NULL, 1,
     "t.yaml:1:7: rules: expected a list of rules, got null"},
    {"rule is a string", "rules:\n  - hello\n", NULL, NULL, 1,
     "t.yaml:2:5: a rule must be a mapping, got a string"},
    {"rule key not a string", FLOW("[k]: v, service: a, source: b, target: c, action: allow"), NULL,
     NULL, 1, "t.yaml:2:6: keys must be strings, got a list"},
    {"root is a string", "hello\n", NULL, NULL, 1,
     "t.yaml:1:1: expected a mapping with a \"rules:\" key, got a string"},
    {"root is a list", "- rules\n", NULL, NULL, 1,
     "t.yaml:1:1: expected a mapping with a \"rules:\" key, got a list"},
    /* missing required keys */
    {"missing action", RULE(""), NULL, NULL, 1,
     "t.yaml:2:5: rule is missing required key \"action\""},
    {"missing everything", "rules:\n  - {}\n", NULL, NULL, 4,
     "t.yaml:2:5: rule is missing required key \"service\""},
    {"missing target", FLOW("service: a, source: b, action: deny"), NULL, NULL, 1,
     "t.yaml:2:5: rule is missing required key \"target\""},
    {"missing rules", "other: 1\n", NULL, NULL, 2, "t.yaml:1:1: missing required key \"rules\""},
    /* unknown actions and tokens */
    {"unknown action", RULE("    action: permit\n"), NULL, NULL, 1,
     "t.yaml:5:13: unknown action \"permit\" (expected allow, deny or ask)"},
    {"@dispvm", FLOW("service: a, source: b, target: '@dispvm', action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: target: unknown token: @dispvm is not supported by vrpc"},
    {"unknown @token", FLOW("service: a, source: '@foo', target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: source: unknown token (expected @anyvm"},
    {"old $anyvm", FLOW("service: a, source: $anyvm, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: source: unknown token"},
    /* unquoted: YAML's own message, and what to do */
    {"unquoted @anyvm", FLOW("service: a, source: @anyvm, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: invalid YAML: found character that cannot start any token while scanning "
     "for the next token (quote a value that starts with @ or *: \"@anyvm\", \"*\")"},
    {"unquoted @anyvm after UTF-8",
     "# \xc3\xa9t\xc3\xa9\nrules:\n  - {service: a, source: @anyvm, target: c, action: allow}\n",
     NULL, NULL, 1,
     "t.yaml:3:26: invalid YAML: found character that cannot start any token while scanning "
     "for the next token (quote a value that starts with @ or *: \"@anyvm\", \"*\")"},
    {"unquoted *", RULE("    action: allow\n    argument: *\n"), NULL, NULL, 1,
     "t.yaml:6:16: invalid YAML: did not find expected alphabetic or numeric character while "
     "scanning an alias (quote a value that starts with @ or *: \"@anyvm\", \"*\")"},
    {"empty @tag:", FLOW("service: a, source: '@tag:', target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: source: @tag: needs a tag name"},
    {"bad @type:", FLOW("service: a, source: b, target: '@type:a b', action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: target: @type: needs a type name"},
    {"bad domain name", FLOW("service: a, source: -x, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: source: invalid domain name"},
    {"@default as source", FLOW("service: a, source: '@default', target: c, action: allow"), NULL,
     NULL, 1, "t.yaml:2:26: source: @default is only valid as a target"},
    /* constraints between keys */
    {"allow @default without redirect",
     FLOW("service: a, source: b, target: '@default', action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: an allow rule with target @default needs a redirect"},
    {"deny with redirect", RULE("    action: deny\n    redirect: vault\n"), NULL, NULL, 1,
     "t.yaml:6:5: redirect is not allowed with action deny"},
    {"deny with user", RULE("    action: deny\n    user: root\n"), NULL, NULL, 1,
     "t.yaml:6:5: user is not allowed with action deny"},
    {"allow with default_target", RULE("    action: allow\n    default_target: vault\n"), NULL,
     NULL, 1, "t.yaml:6:5: default_target is only allowed with action ask"},
    {"redirect to @anyvm", RULE("    action: allow\n    redirect: '@anyvm'\n"), NULL, NULL, 1,
     "t.yaml:6:15: redirect: expected a domain name, NAME@HOST or @adminvm, got \"@anyvm\""},
    {"default_target *", RULE("    action: ask\n    default_target: '*'\n"), NULL, NULL, 1,
     "t.yaml:6:21: default_target: expected a domain name, NAME@HOST or @adminvm"},
    /* remote tokens */
    {"remote tokens", FLOW("service: a, source: '*@*', target: vault@hostb, action: allow"), NULL,
     NULL, 0, NULL},
    {"remote host token",
     FLOW("service: a, source: '*@host-b.lan', target: dom0@hostb, action: allow"), NULL, NULL, 0,
     NULL},
    {"redirect to remote", RULE("    action: allow\n    redirect: vault@hostb\n"), NULL, NULL, 0,
     NULL},
    {"*@ without host", FLOW("service: a, source: '*@', target: b, action: allow"), NULL, NULL, 1,
     "t.yaml:2:26: source: *@ needs \"*\" or a host name"},
    {"*@ bad host", FLOW("service: a, source: b, target: '*@Host', action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: target: *@ needs \"*\" or a host name"},
    {"bad remote host", FLOW("service: a, source: work@-b, target: b, action: allow"), NULL, NULL,
     1, "t.yaml:2:26: source: invalid remote domain"},
    {"two @", FLOW("service: a, source: b, target: a@b@c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: target: invalid remote domain"},
    {"name@*", FLOW("service: a, source: b, target: 'a@*', action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: target: invalid remote domain"},
    {"@adminvm@host", FLOW("service: a, source: '@adminvm@hostb', target: b, action: allow"), NULL,
     NULL, 1, "t.yaml:2:26: source: a token such as @adminvm cannot name a host"},
    {"redirect to *@*", RULE("    action: allow\n    redirect: '*@*'\n"), NULL, NULL, 1,
     "t.yaml:6:15: redirect: expected a domain name, NAME@HOST or @adminvm, got \"*@*\""},
    /* names */
    {"service with /", FLOW("service: demo/x, source: b, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:15: service: service must be a name of [A-Za-z0-9._-]"},
    {"* inside service", FLOW("service: 'a*b', source: b, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:15: service: service must be a name"},
    {"65-char service", FLOW("service: " S65 ", source: b, target: c, action: allow"), NULL, NULL,
     1, "t.yaml:2:15: service: service name longer than 64 characters"},
    {"empty service", FLOW("service: '', source: b, target: c, action: allow"), NULL, NULL, 1,
     "t.yaml:2:15: service: empty service name"},
    {"argument with space", RULE("    action: allow\n    argument: a b\n"), NULL, NULL, 1,
     "t.yaml:6:15: argument: invalid argument \"a b\""},
    {"65-char argument", RULE("    action: allow\n    argument: " S65 "\n"), NULL, NULL, 1,
     "t.yaml:6:15: argument: invalid argument"},
    {"65-char domain", FLOW("service: a, source: b, target: " S65 ", action: allow"), NULL, NULL, 1,
     "t.yaml:2:37: target: invalid domain name"},
    {"bad user", RULE("    action: allow\n    user: -root\n"), NULL, NULL, 1,
     "t.yaml:6:11: user: invalid user name \"-root\""},
    {"33-char user", RULE("    action: allow\n    user: abcdefghijklmnopqrstuvwxyz0123456\n"), NULL,
     NULL, 1, "t.yaml:6:11: user: invalid user name"},
    {"NUL in a string", FLOW("service: \"a\\0b\", source: b, target: c, action: allow"), NULL, NULL,
     1, "t.yaml:2:15: service: string contains a NUL byte"},
    /* empty files */
    {"empty file", "", NULL, NULL, 1, "t.yaml:1:1: empty file (expected a \"rules:\" key)"},
    {"only comments", "# nothing here\n\n", NULL, NULL, 1, "t.yaml:1:1: empty file"},
    {"only a document marker", "---\n", NULL, NULL, 1, "t.yaml:1:1: empty file"},
    /* invalid YAML */
    {"unclosed flow list", "rules: [\n", NULL, NULL, 1, "t.yaml:2:1: invalid YAML: "},
    {"tab indentation", "rules:\n\t- a\n", NULL, NULL, 1, "t.yaml:2:1: invalid YAML: "},
    {"bad indentation", "rules:\n  - service: a\n   source: b\n", NULL, NULL, 1,
     "t.yaml:3:4: invalid YAML: did not find expected '-' indicator"},
    {"invalid UTF-8", "rules: []\n# \xff\n", NULL, NULL, 1,
     "t.yaml:2:3: invalid YAML: invalid leading UTF-8 octet"},
    {"too deep",
     "rules:\n  - {service: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]}\n",
     NULL, NULL, 1, "t.yaml:2:47: value nested too deeply"},
    /* duplicates and YAML features a policy does not use */
    {"duplicate rule key", RULE("    action: allow\n    service: b\n"), NULL, NULL, 1,
     "t.yaml:6:5: duplicate key \"service\" (first at 2:5)"},
    {"duplicate top key", "rules: []\nrules: []\n", NULL, NULL, 1,
     "t.yaml:2:1: duplicate key \"rules\" (first at 1:1)"},
    {"anchor", "rules:\n  - &r {service: a, source: b, target: c, action: allow}\n  - *r\n", NULL,
     NULL, 1, "t.yaml:2:5: YAML anchors are not supported"},
    {"alias", "rules:\n  - {service: a, source: b, target: c, action: *x}\n", NULL, NULL, 1,
     "t.yaml:2:"},
    {"tag", "rules: !!seq []\n", NULL, NULL, 1, "t.yaml:1:8: YAML tags are not supported"},
    {"two documents", "rules: []\n---\nrules: []\n", NULL, NULL, 1,
     "t.yaml:2:1: only one YAML document is allowed per file"},
    /* errors in several files are all reported */
    {"two bad files", "rules: {}\n", "", NULL, 2,
     "u.yaml:1:1: empty file (expected a \"rules:\" key)"},
    {"bad file after a good one", "rules: []\n", "rules:\n  - nope\n", NULL, 1,
     "u.yaml:2:5: a rule must be a mapping"},
    /* domains.yaml */
    {"domains: unknown key", "rules: []\n", NULL, "domains:\n  work: {tags: [a], colour: red}\n", 1,
     "domains.yaml:2:21: unknown key \"colour\" (expected tags or type)"},
    {"domains: duplicate domain", "rules: []\n", NULL, "domains:\n  work: {}\n  work: {}\n", 1,
     "domains.yaml:3:3: duplicate domain \"work\" (first at 2:3)"},
    {"domains: bad name", "rules: []\n", NULL, "domains:\n  -x: {}\n", 1,
     "domains.yaml:2:3: invalid domain name \"-x\""},
    {"domains: tags not a list", "rules: []\n", NULL, "domains:\n  work: {tags: a}\n", 1,
     "domains.yaml:2:16: tags: expected a list of tag names, got a string"},
    {"domains: type is a list", "rules: []\n", NULL, "domains:\n  work: {type: [app]}\n", 1,
     "domains.yaml:2:16: type: expected a string, got a list"},
    {"domains: bad tag", "rules: []\n", NULL, "domains:\n  work: {tags: [a b]}\n", 1,
     "domains.yaml:2:17: tags: invalid tag name \"a b\""},
    {"domains: duplicate tags key", "rules: []\n", NULL,
     "domains:\n  work:\n    tags: [a]\n    tags: [b]\n", 1,
     "domains.yaml:4:5: duplicate key \"tags\" (first at 3:5)"},
    {"domains: value is a string", "rules: []\n", NULL, "domains:\n  work: app\n", 1,
     "domains.yaml:2:9: work: expected a mapping with tags and/or type, got a string"},
    {"domains: empty", "rules: []\n", NULL, "", 1,
     "domains.yaml:1:1: empty file (expected a \"domains:\" key)"},
    {"domains: unknown top key", "rules: []\n", NULL, "doms: {}\n", 2,
     "domains.yaml:1:1: unknown key \"doms\" (expected \"domains\")"},
    {"domains: is a list", "rules: []\n", NULL, "domains: [work]\n", 1,
     "domains.yaml:1:10: domains: expected a mapping of domain names, got a list"},
};

static const char allow_all[] =
    "rules:\n  - {service: '*', source: '*', target: '*', action: allow}\n";

START_TEST(test_load)
{
    const LoadCase *c = &load_cases[_i];
    const char *names[] = {"00-allow-all.yaml", "t.yaml", "u.yaml"};
    const char *texts[] = {allow_all, c->text, c->text2};
    VrpcPolicy *policy = NULL;
    VrpcPolicyDecision d;
    size_t n;
    bool found = false;
    int r;

    r = tu_load(&policy, names, texts, c->text2 ? 3 : 2, c->domains);
    ck_assert_ptr_nonnull(policy);
    n = vrpc_policy_get_n_errors(policy);
    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = "work",
                                                               .untrusted_target = "dom0",
                                                               .untrusted_service = "any.Thing"},
                                          &d),
                     0);
    if (!c->error) {
        ck_assert_msg(r == 0 && n == 0, "%s: unexpected error %s", c->what,
                      vrpc_policy_get_error(policy, 0));
        ck_assert(vrpc_policy_is_valid(policy));
        ck_assert_int_eq(d.action, VRPC_POLICY_ALLOW);
        vrpc_policy_unref(policy);
        return;
    }
    ck_assert_msg(r == VRPC_POLICY_E_INVALID, "%s: loaded as valid", c->what);
    ck_assert(!vrpc_policy_is_valid(policy));
    /* fail closed: the allow-all rule in 00-allow-all.yaml must not apply */
    ck_assert_int_eq(d.action, VRPC_POLICY_DENY);
    ck_assert_str_eq(d.reason, "invalid policy");
    ck_assert_ptr_null(d.rule_file);
    for (size_t i = 0; i < n; i++)
        if (strncmp(vrpc_policy_get_error(policy, i), c->error, strlen(c->error)) == 0)
            found = true;
    if (!found)
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%s: got: %s\n", c->what, vrpc_policy_get_error(policy, i));
    ck_assert_msg(found, "%s: no error starts with '%s'", c->what, c->error);
    if (c->n_errors >= 0)
        ck_assert_msg(n == (size_t)c->n_errors, "%s: %zu errors, want %d", c->what, n, c->n_errors);
    vrpc_policy_unref(policy);
}
END_TEST

/* A broken file with very many errors reports a bounded number of lines. */
START_TEST(test_error_cap)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    VrpcPolicy *policy = NULL;
    size_t n;

    fputs("rules:\n", f);
    for (int i = 0; i < 1000; i++)
        fputs("  - {service: a, source: b, target: c, action: permit}\n", f);
    fclose(f);
    ck_assert_int_eq(
        vrpc_policy_load_texts(&(VrpcPolicyText){"t.yaml", text, size}, 1, NULL, &policy),
        VRPC_POLICY_E_INVALID);
    n = vrpc_policy_get_n_errors(policy);
    ck_assert_uint_eq(n, 201);
    ck_assert_str_eq(vrpc_policy_get_error(policy, 200),
                     "t.yaml: too many errors, not reporting any more");
    ck_assert_ptr_null(vrpc_policy_get_error(policy, 201));
    vrpc_policy_unref(policy);
    free(text);
}
END_TEST

/* ---- real folders ---- */

static char *etc;

static void etc_setup(void)
{
    vt_leak_setup();
    etc = tu_mkdtemp();
}

static void etc_teardown(void)
{
    tu_rmrf(etc);
    free(etc);
    etc = NULL;
    vt_leak_teardown();
}

static void explain(VrpcPolicy *policy, const char *source, const char *target, const char *service,
                    char *line, size_t size)
{
    VrpcPolicyDecision d;

    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = source,
                                                               .untrusted_target = target,
                                                               .untrusted_service = service},
                                          &d),
                     0);
    vrpc_policy_decision_format(&d, line, size);
}

START_TEST(test_dir_order_and_ignored_files)
{
    VrpcPolicy *policy = NULL;
    char line[1024], want[1024];

    tu_write(etc, "policy.d/2-second.yaml",
             "rules:\n  - {service: s, source: '*', target: '*', action: allow}\n");
    tu_write(etc, "policy.d/10-first.yaml",
             "rules:\n  - {service: t, source: '*', target: '*', action: allow}\n"
             "  - {service: s, source: '*', target: '*', action: deny}\n");
    /* none of these is read: hidden, other suffixes, no suffix */
    tu_write(etc, "policy.d/.00-hidden.yaml", "garbage: [\n");
    tu_write(etc, "policy.d/00-old.yml", "garbage: [\n");
    tu_write(etc, "policy.d/README", "garbage: [\n");
    tu_write(etc, "policy.d/00.yaml~", "garbage: [\n");
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), 0);
    ck_assert_uint_eq(vrpc_policy_get_n_files(policy), 2);
    ck_assert_uint_eq(vrpc_policy_get_n_rules(policy), 3);
    /* strcmp order: "10-first.yaml" < "2-second.yaml" */
    explain(policy, "work", "dom0", "s", line, sizeof(line));
    snprintf(want, sizeof(want), "deny rule=%s/policy.d/10-first.yaml:3", etc);
    ck_assert_str_eq(line, want);
    vrpc_policy_unref(policy);
}
END_TEST

START_TEST(test_dir_trailing_slash)
{
    VrpcPolicy *policy = NULL;
    char *dir = NULL;
    char line[1024], want[1024];

    tu_write(etc, "policy.d/50.yaml",
             "rules:\n  - {service: t, source: '*', target: '*', action: allow}\n");
    ck_assert_int_ge(asprintf(&dir, "%s//", etc), 0);
    ck_assert_int_eq(vrpc_policy_load(dir, &policy), 0);
    explain(policy, "work", "dom0", "t", line, sizeof(line));
    snprintf(want, sizeof(want), "allow target=dom0 rule=%s/policy.d/50.yaml:2", etc);
    ck_assert_str_eq(line, want);
    vrpc_policy_unref(policy);
    free(dir);
}
END_TEST

START_TEST(test_dir_missing_policy_d)
{
    VrpcPolicy *policy = NULL;
    char want[1024];

    ck_assert_int_eq(vrpc_policy_load(etc, &policy), VRPC_POLICY_E_INVALID);
    snprintf(want, sizeof(want), "%s/policy.d: cannot open folder: No such file or directory", etc);
    ck_assert_uint_eq(vrpc_policy_get_n_errors(policy), 1);
    ck_assert_str_eq(vrpc_policy_get_error(policy, 0), want);
    vrpc_policy_unref(policy);
}
END_TEST

START_TEST(test_dir_empty_policy_d)
{
    VrpcPolicy *policy = NULL;
    char line[1024];

    tu_mkdir(etc, "policy.d");
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), 0);
    ck_assert_uint_eq(vrpc_policy_get_n_rules(policy), 0);
    explain(policy, "work", "dom0", "t", line, sizeof(line));
    ck_assert_str_eq(line, "deny rule=default");
    vrpc_policy_unref(policy);
}
END_TEST

START_TEST(test_dir_odd_entries)
{
    VrpcPolicy *policy = NULL;
    char *link = NULL, want[1024];

    tu_mkdir(etc, "policy.d");
    tu_mkdir(etc, "policy.d/sub.yaml");
    ck_assert_int_ge(asprintf(&link, "%s/policy.d/zz.yaml", etc), 0);
    ck_assert_int_eq(symlink("/nonexistent/vrpc-policy-test", link), 0);
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), VRPC_POLICY_E_INVALID);
    ck_assert_uint_eq(vrpc_policy_get_n_errors(policy), 2);
    snprintf(want, sizeof(want), "%s/policy.d/sub.yaml: not a regular file", etc);
    ck_assert_str_eq(vrpc_policy_get_error(policy, 0), want);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", link);
    ck_assert_str_eq(vrpc_policy_get_error(policy, 1), want);
    vrpc_policy_unref(policy);
    free(link);
}
END_TEST

START_TEST(test_dir_domains_file)
{
    VrpcPolicy *policy = NULL;
    char line[1024];

    tu_write(etc, "policy.d/50.yaml",
             "rules:\n  - {service: t, source: '@tag:ok', target: '*', action: allow}\n");
    tu_write(etc, "domains.yaml", "domains:\n  work: {tags: [ok]}\n");
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), 0);
    explain(policy, "work", "dom0", "t", line, sizeof(line));
    ck_assert(strncmp(line, "allow target=dom0 rule=", 23) == 0);
    vrpc_policy_unref(policy);

    tu_write(etc, "domains.yaml", "domains: [\n");
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), VRPC_POLICY_E_INVALID);
    explain(policy, "work", "dom0", "t", line, sizeof(line));
    ck_assert_str_eq(line, "deny rule=default reason=\"invalid policy\"");
    vrpc_policy_unref(policy);
}
END_TEST

/* A valid policy file of exactly SIZE bytes: one rule for service T, then
 * comment lines. Caller frees. */
static char *padded_policy(size_t size)
{
    static const char head[] =
        "rules:\n  - {service: t, source: '*', target: '*', action: allow}\n";
    char *text = malloc(size + 1);

    ck_assert_ptr_nonnull(text);
    ck_assert_uint_ge(size, sizeof(head) + 2);
    memcpy(text, head, sizeof(head) - 1);
    memset(text + sizeof(head) - 1, 'x', size - (sizeof(head) - 1));
    /* comment lines of up to 80 bytes */
    for (size_t at = sizeof(head) - 1; at < size; at += 80) {
        text[at] = '#';
        text[(at + 79 < size ? at + 79 : size - 1)] = '\n';
    }
    text[size] = 0;
    return text;
}

/* Loading ETC fails with exactly one error, "ETC/REL: MESSAGE"; the policy
 * fails closed: a call that a valid file allows (service u) is denied. */
static void expect_one_error(const char *rel, const char *message)
{
    VrpcPolicy *policy = NULL;
    char want[1024], line[1024];

    ck_assert_int_eq(vrpc_policy_load(etc, &policy), VRPC_POLICY_E_INVALID);
    ck_assert_uint_eq(vrpc_policy_get_n_errors(policy), 1);
    snprintf(want, sizeof(want), "%s/%s: %s", etc, rel, message);
    ck_assert_str_eq(vrpc_policy_get_error(policy, 0), want);
    explain(policy, "work", "dom0", "u", line, sizeof(line));
    ck_assert_str_eq(line, "deny rule=default reason=\"invalid policy\"");
    vrpc_policy_unref(policy);
}

static const char allow_u[] = "rules:\n  - {service: u, source: '*', target: '*', action: allow}\n";

/* Regression (review finding 3): a policy file of any size was read and
 * parsed, stalling the dispatcher on every reload. Over 1 MiB a file is
 * refused with a located error, and the whole policy fails closed. */
START_TEST(test_dir_file_cap)
{
    VrpcPolicy *policy = NULL;
    char *text = padded_policy(1024 * 1024);

    tu_write(etc, "policy.d/50.yaml", text);
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), 0);
    ck_assert_uint_eq(vrpc_policy_get_n_rules(policy), 1);
    vrpc_policy_unref(policy);
    free(text);

    text = padded_policy(1024 * 1024 + 1);
    tu_write(etc, "policy.d/50.yaml", text);
    tu_write(etc, "policy.d/60.yaml", allow_u);
    expect_one_error("policy.d/50.yaml", "file too large (over 1048576 bytes, the limit per file)");
    /* domains.yaml has the same cap */
    tu_write(etc, "policy.d/50.yaml", "rules: []\n");
    tu_write(etc, "domains.yaml", text);
    expect_one_error("domains.yaml", "file too large (over 1048576 bytes, the limit per file)");
    free(text);
}
END_TEST

/* All files together: at most 4 MiB; the file that goes over is named. */
START_TEST(test_dir_total_cap)
{
    VrpcPolicy *policy = NULL;
    for (int i = 0; i < 4; i++) {
        /* 3 MiB, then 1 MiB less the last file */
        char name[64], *text = padded_policy(1024 * 1024 - (i == 3 ? strlen(allow_u) : 0));

        snprintf(name, sizeof(name), "policy.d/%d0.yaml", i + 1);
        tu_write(etc, name, text);
        free(text);
    }
    tu_write(etc, "policy.d/50.yaml", allow_u);
    ck_assert_int_eq(vrpc_policy_load(etc, &policy), 0); /* exactly 4 MiB */
    ck_assert_uint_eq(vrpc_policy_get_n_files(policy), 5);
    vrpc_policy_unref(policy);

    tu_write(etc, "domains.yaml", "domains: {}\n"); /* counted too */
    expect_one_error("policy.d/50.yaml", "policy too large: with this file the files read come "
                                         "to over 4194304 bytes (the limit for all files "
                                         "together)");
}
END_TEST

START_TEST(test_bad_arguments)
{
    VrpcPolicy *policy = NULL;

    ck_assert_int_eq(vrpc_policy_load(NULL, &policy), -EINVAL);
    ck_assert_int_eq(vrpc_policy_load("", &policy), -EINVAL);
    ck_assert_int_eq(vrpc_policy_load(etc, NULL), -EINVAL);
    ck_assert_int_eq(vrpc_policy_load_texts(NULL, 1, NULL, &policy), -EINVAL);
    ck_assert_ptr_null(policy);
    ck_assert(!vrpc_policy_is_valid(NULL));
    ck_assert_uint_eq(vrpc_policy_get_n_errors(NULL), 0);
    ck_assert_ptr_null(vrpc_policy_get_error(NULL, 0));
    {
        VrpcPolicyDecision d;

        ck_assert_int_eq(vrpc_policy_evaluate(NULL, &(VrpcPolicyRequest){0}, &d), -EINVAL);
        ck_assert_int_eq(d.action, VRPC_POLICY_DENY);
    }
}
END_TEST

/* The shipped example configuration must pass its own checker. */
START_TEST(test_shipped_config)
{
    VrpcPolicy *policy = NULL;
    char line[1024];
    int r = vrpc_policy_load(VRPC_SOURCE_DIR "/services/etc", &policy);

    ck_assert_msg(r == 0, "shipped config invalid: %s", vrpc_policy_get_error(policy, 0));
    explain(policy, "work", "dom0", "demo.Echo", line, sizeof(line));
    ck_assert(strncmp(line, "allow target=dom0 rule=", 23) == 0);
    explain(policy, "work", "personal", "vrpc.Ping", line, sizeof(line));
    ck_assert(strncmp(line, "allow target=personal rule=", 27) == 0);
    explain(policy, "work", "dom0", "demo.Secret", line, sizeof(line));
    ck_assert(strncmp(line, "deny rule=", 10) == 0);
    ck_assert(strstr(line, "rule=default") == NULL);
    explain(policy, "work", "dom0", "other.Service", line, sizeof(line));
    ck_assert_str_eq(line, "deny rule=default");
    vrpc_policy_unref(policy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy-load");
    TCase *tc = tcase_create("files");
    TCase *dirs = tcase_create("folders");

    vt_leak_fixture(tc);
    tcase_add_loop_test(tc, test_load, 0, sizeof(load_cases) / sizeof(load_cases[0]));
    tcase_add_test(tc, test_error_cap);
    tcase_add_test(tc, test_shipped_config);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(dirs, etc_setup, etc_teardown);
    tcase_add_test(dirs, test_dir_order_and_ignored_files);
    tcase_add_test(dirs, test_dir_trailing_slash);
    tcase_add_test(dirs, test_dir_missing_policy_d);
    tcase_add_test(dirs, test_dir_empty_policy_d);
    tcase_add_test(dirs, test_dir_odd_entries);
    tcase_add_test(dirs, test_dir_domains_file);
    tcase_add_test(dirs, test_bad_arguments);
    tcase_add_test(dirs, test_dir_file_cap);
    tcase_add_test(dirs, test_dir_total_cap);
    suite_add_tcase(s, dirs);
    return tu_run_suite(s);
}
