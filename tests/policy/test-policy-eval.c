/* SPDX-License-Identifier: MIT */
/*
 * Evaluation semantics, table-driven: every token in both columns, every
 * action and parameter, first match across files, @default and redirects,
 * argument matching, and requests refused before the policy is consulted.
 * Each row names the exact one-line decision `vrpc-policy explain` prints.
 */

#include <string.h>

#include "test-util.h"

#define S64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define S65 S64 "m"

static const char domains_yaml[] = "domains:\n"
                                   "  work: {tags: [trusted, office], type: app}\n"
                                   "  vault: {tags: [secrets], type: app}\n"
                                   "  personal: {tags: [], type: app}\n"
                                   "  sys-net: {tags: [net], type: service}\n"
                                   "  dom0: {tags: [admin]}\n"
                                   "  tmpl: {type: template}\n";

/* Line numbers matter: rows below refer to FILE:LINE. */
static const char first_yaml[] =
    "rules:\n"                                                                          /* 1 */
    "  - {service: first.Match, source: work, target: dom0, action: deny}\n"            /* 2 */
    "  - {service: tok.Any, source: '*', target: '*', action: allow}\n"                 /* 3 */
    "  - {service: tok.AnyVm, source: '@anyvm', target: '@anyvm', action: allow}\n"     /* 4 */
    "  - {service: tok.Admin, source: '@adminvm', target: '@adminvm', action: allow}\n" /* 5 */
    "  - {service: tok.Dom0, source: dom0, target: dom0, action: allow}\n"              /* 6 */
    "  - {service: tok.Tag, source: '@tag:trusted', target: '@tag:secrets', action: allow}\n"
    "  - {service: tok.Type, source: '@type:app', target: '@type:service', action: allow}\n"
    "  - {service: tok.Name, source: work, target: vault, action: allow}\n"     /* 9 */
    "  - {service: 'pre.*', source: '@anyvm', target: dom0, action: allow}\n"   /* 10 */
    "  - {service: pre.Denied, source: '@anyvm', target: dom0, action: deny}\n" /* 11 */
    "  - {service: arg.Svc, argument: '', source: '*', target: '*', action: allow, user: noarg}\n"
    "  - {service: arg.Svc, argument: x, source: '*', target: '*', action: allow, user: argx}\n"
    "  - {service: arg.Svc, argument: a+b, source: '*', target: '*', action: ask}\n"  /* 14 */
    "  - {service: arg.Svc, source: '*', target: '*', action: deny, notify: false}\n" /* 15 */
    "  - {service: def.Redir, source: '@anyvm', target: '@default', action: allow,"
    " redirect: vault}\n" /* 16 */
    "  - {service: def.Ask, source: '@anyvm', target: '@default', action: ask,"
    " default_target: vault}\n"                                                     /* 17 */
    "  - {service: def.Allow, source: '@anyvm', target: '@anyvm', action: allow}\n" /* 18 */
    "  - {service: redir.Any, source: work, target: '@anyvm', action: allow,"
    " redirect: '@adminvm'}\n" /* 19 */
    "  - {service: ask.Full, source: work, target: '@anyvm', action: ask, redirect: vault,"
    " default_target: personal, user: alice, notify: true}\n" /* 20 */
    "  - {service: allow.User, source: '@anyvm', target: dom0, action: allow, user: root,"
    " notify: true}\n"                                                            /* 21 */
    "  - {service: deny.Notify, source: '@anyvm', target: dom0, action: deny}\n"  /* 22 */
    "  - {service: ask.Plain, source: '@anyvm', target: '@anyvm', action: ask}\n" /* 23 */
    "  - {service: rem.AnyAny, source: '*@*', target: vault, action: allow}\n"    /* 24 */
    "  - {service: rem.Host, source: '*@hosta', target: '*', action: allow}\n"    /* 25 */
    "  - {service: rem.Name, source: work, target: vault@hostb, action: allow}\n" /* 26 */
    "  - {service: rem.Redir, source: work, target: '@default', action: allow,"
    " redirect: vault@hostb}\n"                                                  /* 27 */
    "  - {service: rem.Out, source: '*', target: '*@*', action: allow}\n"        /* 28 */
    "  - {service: rem.In, source: work@hosta, target: vault, action: allow}\n"; /* 29 */

static const char main_yaml[] = "rules:\n"                   /* 1 */
                                "  - service: first.Match\n" /* 2 */
                                "    source: work\n"
                                "    target: dom0\n"
                                "    action: allow\n"
                                "  - service: first.Match\n" /* 6 */
                                "    source: '@anyvm'\n"
                                "    target: dom0\n"
                                "    action: allow\n"
                                "  - service: second.File\n" /* 10 */
                                "    source: '@anyvm'\n"
                                "    target: '@adminvm'\n"
                                "    action: ask\n";

static const char last_yaml[] =
    "rules:\n"                                                                    /* 1 */
    "  - {service: second.File, source: '@anyvm', target: dom0, action: allow}\n" /* 2 */
    "  - {service: '*', source: work, target: '*', action: deny}\n"               /* 3 */
    "  - {service: '*', source: '*', target: dom0, action: ask}\n";               /* 4 */

typedef struct EvalCase {
    const char *source;
    const char *target; /* NULL: no target named */
    const char *service;
    const char *argument; /* NULL: none */
    int rc;
    const char *line;   /* vrpc_policy_decision_format(), NULL: don't care */
    const char *reason; /* NULL: don't care */
} EvalCase;

#define F "10-first.yaml:"
#define M "50-main.yaml:"
#define L "90-last.yaml:"

static const EvalCase eval_cases[] = {
    /* first match wins, across files in name order */
    {"work", "dom0", "first.Match", NULL, 0, "deny rule=" F "2", "denied by rule"},
    {"personal", "dom0", "first.Match", NULL, 0, "allow target=dom0 rule=" M "6", NULL},
    {"work", "@adminvm", "first.Match", NULL, 0, "deny rule=" F "2", NULL},
    {"personal", "dom0", "second.File", NULL, 0, "ask target=dom0 rule=" M "10", NULL},
    /* "*" matches every domain, dom0 included, and a call without target */
    {"work", "vault", "tok.Any", NULL, 0, "allow target=vault rule=" F "3", "allowed by rule"},
    {"dom0", "work", "tok.Any", NULL, 0, "allow target=work rule=" F "3", NULL},
    {"work", "dom0", "tok.Any", NULL, 0, "allow target=dom0 rule=" F "3", NULL},
    {"work", "@default", "tok.Any", NULL, 0,
     "deny rule=" F "3 reason=\"allow rule matched a call naming no target, and has no redirect\"",
     NULL},
    /* @anyvm: every domain but dom0 */
    {"work", "vault", "tok.AnyVm", NULL, 0, "allow target=vault rule=" F "4", NULL},
    {"dom0", "work", "tok.AnyVm", NULL, 0, "deny rule=default", "no matching rule"},
    {"work", "dom0", "tok.AnyVm", NULL, 0, "deny rule=" L "3", NULL},
    {"personal", "dom0", "tok.AnyVm", NULL, 0, "ask target=dom0 rule=" L "4", NULL},
    /* @adminvm and dom0 are the same domain, in both columns */
    {"dom0", "dom0", "tok.Admin", NULL, 0, "allow target=dom0 rule=" F "5", NULL},
    {"@adminvm", "@adminvm", "tok.Admin", NULL, 0, "allow target=dom0 rule=" F "5", NULL},
    {"work", "dom0", "tok.Admin", NULL, 0, "deny rule=" L "3", NULL},
    {"dom0", "@adminvm", "tok.Dom0", NULL, 0, "allow target=dom0 rule=" F "6", NULL},
    {"@adminvm", "dom0", "tok.Dom0", NULL, 0, "allow target=dom0 rule=" F "6", NULL},
    /* @tag: and @type: come from domains.yaml only */
    {"work", "vault", "tok.Tag", NULL, 0, "allow target=vault rule=" F "7", NULL},
    {"personal", "vault", "tok.Tag", NULL, 0, "deny rule=default", NULL},
    {"work", "personal", "tok.Tag", NULL, 0, "deny rule=" L "3", NULL},
    {"stranger", "vault", "tok.Tag", NULL, 0, "deny rule=default", NULL},
    {"work", "sys-net", "tok.Type", NULL, 0, "allow target=sys-net rule=" F "8", NULL},
    {"tmpl", "sys-net", "tok.Type", NULL, 0, "deny rule=default", NULL},
    {"dom0", "sys-net", "tok.Type", NULL, 0, "deny rule=default", NULL},
    {"personal", "work", "tok.Type", NULL, 0, "deny rule=default", NULL},
    /* exact names */
    {"work", "vault", "tok.Name", NULL, 0, "allow target=vault rule=" F "9", NULL},
    {"vault", "work", "tok.Name", NULL, 0, "deny rule=default", NULL},
    {"work2", "vault", "tok.Name", NULL, 0, "deny rule=default", NULL},
    {"work", "vault2", "tok.Name", NULL, 0, "deny rule=" L "3", NULL},
    /* service prefixes; an earlier prefix beats a later exact rule */
    {"personal", "dom0", "pre.Something", NULL, 0, "allow target=dom0 rule=" F "10", NULL},
    {"personal", "dom0", "pre.Denied", NULL, 0, "allow target=dom0 rule=" F "10", NULL},
    {"personal", "dom0", "pre", NULL, 0, "ask target=dom0 rule=" L "4", NULL},
    {"personal", "dom0", "prex.Y", NULL, 0, "ask target=dom0 rule=" L "4", NULL},
    /* arguments: "" = none, exact, '+' inside, "*" */
    {"personal", "vault", "arg.Svc", NULL, 0, "allow target=vault rule=" F "12 user=noarg", NULL},
    {"personal", "vault", "arg.Svc", "", 0, "allow target=vault rule=" F "12 user=noarg", NULL},
    {"personal", "vault", "arg.Svc", "x", 0, "allow target=vault rule=" F "13 user=argx", NULL},
    {"personal", "vault", "arg.Svc", "a+b", 0, "ask target=vault rule=" F "14", NULL},
    {"personal", "vault", "arg.Svc", "y", 0, "deny rule=" F "15 notify=no", NULL},
    {"personal", "vault", "arg.Svc", "X", 0, "deny rule=" F "15 notify=no", NULL},
    {"personal", "vault", "arg.Svc", S64, 0, "deny rule=" F "15 notify=no", NULL},
    /* @default and redirects */
    {"work", "@default", "def.Redir", NULL, 0, "allow target=vault rule=" F "16", NULL},
    {"work", NULL, "def.Redir", NULL, 0, "allow target=vault rule=" F "16", NULL},
    {"personal", "vault", "def.Redir", NULL, 0, "deny rule=default", NULL},
    {"personal", "@default", "def.Ask", NULL, 0,
     "ask target=@default rule=" F "17 default_target=vault", NULL},
    {"personal", "@default", "def.Allow", NULL, 0,
     "deny rule=" F "18 reason=\"allow rule matched a call naming no target, and has no redirect\"",
     NULL},
    {"personal", "vault", "def.Allow", NULL, 0, "allow target=vault rule=" F "18", NULL},
    {"work", "personal", "redir.Any", NULL, 0, "allow target=dom0 rule=" F "19", NULL},
    {"work", "@default", "redir.Any", NULL, 0, "allow target=dom0 rule=" F "19", NULL},
    /* ask and allow with every parameter; deny notifies by default */
    {"work", "personal", "ask.Full", NULL, 0,
     "ask target=vault rule=" F "20 user=alice default_target=personal notify=yes",
     "ask rule: needs an answer"},
    {"personal", "work", "ask.Plain", NULL, 0, "ask target=work rule=" F "23", NULL},
    {"personal", "@default", "ask.Plain", NULL, 0, "ask target=@default rule=" F "23", NULL},
    {"personal", "dom0", "allow.User", NULL, 0,
     "allow target=dom0 rule=" F "21 user=root notify=yes", NULL},
    {"personal", "dom0", "deny.Notify", NULL, 0, "deny rule=" F "22", NULL},
    /* catch-all rules in the last file */
    {"personal", "dom0", "unknown.Svc", NULL, 0, "ask target=dom0 rule=" L "4", NULL},
    {"personal", "vault", "unknown.Svc", NULL, 0, "deny rule=default", NULL},
    {"work", "vault", "unknown.Svc", NULL, 0, "deny rule=" L "3", NULL},
    {"personal", "dom0", S64, NULL, 0, "ask target=dom0 rule=" L "4", NULL},
    /* remote (qualified) names: only *@*, *@HOST and the exact name match them; "*",
     * @anyvm, @adminvm, dom0, tags and types never do */
    {"work@hosta", "vault", "tok.Any", NULL, 0, "deny rule=default", NULL},
    {"work", "vault@hostb", "tok.Any", NULL, 0, "deny rule=default", NULL},
    {"personal", "vault@hostb", "tok.Any", NULL, 0, "deny rule=default", NULL},
    {"work@hosta", "vault", "tok.AnyVm", NULL, 0, "deny rule=default", NULL},
    {"personal", "vault@hostb", "tok.AnyVm", NULL, 0, "deny rule=default", NULL},
    {"dom0@hostb", "dom0", "tok.Admin", NULL, 0, "deny rule=default", NULL},
    {"dom0", "dom0@hostb", "tok.Dom0", NULL, 0, "deny rule=default", NULL},
    {"work@hosta", "vault", "tok.Tag", NULL, 0, "deny rule=default", NULL},
    {"work", "vault@hostb", "tok.Tag", NULL, 0, "deny rule=default", NULL},
    {"work@hosta", "sys-net", "tok.Type", NULL, 0, "deny rule=default", NULL},
    {"personal", "dom0@hosta", "unknown.Svc", NULL, 0, "deny rule=default", NULL},
    {"work@hosta", "vault", "rem.AnyAny", NULL, 0, "allow target=vault rule=" F "24", NULL},
    {"dom0@hostb", "vault", "rem.AnyAny", NULL, 0, "allow target=vault rule=" F "24", NULL},
    {"work", "vault", "rem.AnyAny", NULL, 0, "deny rule=" L "3", NULL},
    {"personal", "vault", "rem.AnyAny", NULL, 0, "deny rule=default", NULL},
    {"work@hosta", "vault", "rem.Host", NULL, 0, "allow target=vault rule=" F "25", NULL},
    {"x@hosta", "dom0", "rem.Host", NULL, 0, "allow target=dom0 rule=" F "25", NULL},
    {"work@hosta", "vault@hostb", "rem.Host", NULL, 0, "deny rule=default", NULL},
    {"work@hostab", "vault", "rem.Host", NULL, 0, "deny rule=default", NULL},
    {"work@b.hosta", "vault", "rem.Host", NULL, 0, "deny rule=default", NULL},
    {"work", "vault@hostb", "rem.Name", NULL, 0, "allow target=vault@hostb rule=" F "26", NULL},
    {"work", "vault", "rem.Name", NULL, 0, "deny rule=" L "3", NULL},
    {"work", "vault@hostc", "rem.Name", NULL, 0, "deny rule=default", NULL},
    {"work", "@default", "rem.Redir", NULL, 0, "allow target=vault@hostb rule=" F "27", NULL},
    {"personal", "x@hostc", "rem.Out", NULL, 0, "allow target=x@hostc rule=" F "28", NULL},
    {"personal", "x", "rem.Out", NULL, 0, "deny rule=default", NULL},
    {"personal", "@default", "rem.Out", NULL, 0, "deny rule=default", NULL},
    {"a@hosta", "x@hostc", "rem.Out", NULL, 0, "deny rule=default", NULL},
    {"work@hosta", "vault", "rem.In", NULL, 0, "allow target=vault rule=" F "29", NULL},
    {"work", "vault", "rem.In", NULL, 0, "deny rule=" L "3", NULL},
    {"work@hostb", "vault", "rem.In", NULL, 0, "deny rule=default", NULL},
    /* malformed requests: refused before the policy is consulted */
    {"work@Hosta", "dom0", "tok.Any", NULL, VRPC_POLICY_E_SOURCE, NULL, NULL},
    {"work@", "dom0", "tok.Any", NULL, VRPC_POLICY_E_SOURCE, NULL, NULL},
    {"a@b@c", "dom0", "tok.Any", NULL, VRPC_POLICY_E_SOURCE, NULL, NULL},
    {"work", "a@-b", "tok.Any", NULL, VRPC_POLICY_E_TARGET, NULL, NULL},
    {"work", "@adminvm@x", "tok.Any", NULL, VRPC_POLICY_E_TARGET, NULL, NULL},
    {"work", "*@*", "tok.Any", NULL, VRPC_POLICY_E_TARGET, NULL, NULL},
    {"bad name", "dom0", "tok.Any", NULL, VRPC_POLICY_E_SOURCE,
     "deny rule=default reason=\"invalid source\"", "invalid source"},
    {"", "dom0", "tok.Any", NULL, VRPC_POLICY_E_SOURCE, NULL, NULL},
    {NULL, "dom0", "tok.Any", NULL, VRPC_POLICY_E_SOURCE, NULL, NULL},
    {"work", "@anyvm", "tok.Any", NULL, VRPC_POLICY_E_TARGET,
     "deny rule=default reason=\"invalid target\"", "invalid target"},
    {"work", "@dispvm", "tok.Any", NULL, VRPC_POLICY_E_TARGET, NULL, NULL},
    {"work", "-x", "tok.Any", NULL, VRPC_POLICY_E_TARGET, NULL, NULL},
    {"work", "", "tok.Any", NULL, VRPC_POLICY_E_TARGET, NULL, NULL},
    {"work", "dom0", "bad/svc", NULL, VRPC_POLICY_E_SERVICE, NULL, "invalid service name"},
    {"work", "dom0", "", NULL, VRPC_POLICY_E_SERVICE, NULL, NULL},
    {"work", "dom0", S65, NULL, VRPC_POLICY_E_SERVICE, NULL, NULL},
    {"work", "dom0", "tok.*", NULL, VRPC_POLICY_E_SERVICE, NULL, NULL},
    {"work", "dom0", NULL, NULL, VRPC_POLICY_E_SERVICE, NULL, NULL},
    {"work", "dom0", "arg.Svc", S65, VRPC_POLICY_E_ARGUMENT, NULL, "invalid argument"},
    {"work", "dom0", "arg.Svc", "a b", VRPC_POLICY_E_ARGUMENT, NULL, NULL},
    {"work", "dom0", "arg.Svc", "*", VRPC_POLICY_E_ARGUMENT, NULL, NULL},
};

static VrpcPolicy *load_fixture(void)
{
    static const char *const names[] = {"10-first.yaml", "50-main.yaml", "90-last.yaml"};
    const char *const texts[] = {first_yaml, main_yaml, last_yaml};
    VrpcPolicy *policy = NULL;
    int r = tu_load(&policy, names, texts, 3, domains_yaml);

    ck_assert_msg(r == 0, "fixture invalid: %s", vrpc_policy_get_error(policy, 0));
    return policy;
}

START_TEST(test_eval)
{
    const EvalCase *c = &eval_cases[_i];
    VrpcPolicy *policy = load_fixture();
    VrpcPolicyDecision d;
    char line[1024];
    int rc;

    rc = vrpc_policy_evaluate(policy,
                              &(VrpcPolicyRequest){
                                  .source = c->source,
                                  .untrusted_target = c->target,
                                  .untrusted_service = c->service,
                                  .untrusted_argument = c->argument,
                              },
                              &d);
    vrpc_policy_decision_format(&d, line, sizeof(line));
    ck_assert_msg(rc == c->rc, "row %d: rc %d, want %d (%s)", _i, rc, c->rc, line);
    if (rc != 0)
        ck_assert_int_eq(d.action, VRPC_POLICY_DENY);
    if (c->line)
        ck_assert_msg(strcmp(line, c->line) == 0, "row %d: got '%s', want '%s'", _i, line, c->line);
    if (c->reason)
        ck_assert_msg(strcmp(d.reason, c->reason) == 0, "row %d: reason '%s', want '%s'", _i,
                      d.reason, c->reason);
    vrpc_policy_unref(policy);
}
END_TEST

/* ask without an ask program is a deny that keeps its rule and says why. */
typedef struct AskCase {
    const char *program;
    bool still_ask;
    const char *line;
} AskCase;

static const AskCase ask_cases[] = {
    {NULL, false, "deny rule=" F "20 reason=\"ask: no ask program configured\""},
    {"", false, "deny rule=" F "20 reason=\"ask: no ask program configured\""},
    {"/usr/libexec/vrpc-ask", true,
     "ask target=vault rule=" F "20 user=alice default_target=personal notify=yes"},
};

START_TEST(test_ask_resolution)
{
    const AskCase *c = &ask_cases[_i];
    VrpcPolicy *policy = load_fixture();
    VrpcPolicyDecision d;
    char line[1024];

    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){
                                              .source = "work",
                                              .untrusted_target = "personal",
                                              .untrusted_service = "ask.Full",
                                          },
                                          &d),
                     0);
    ck_assert_int_eq(vrpc_policy_decision_resolve_ask(&d, c->program), c->still_ask);
    vrpc_policy_decision_format(&d, line, sizeof(line));
    ck_assert_str_eq(line, c->line);
    if (!c->still_ask)
        ck_assert_str_eq(d.reason, "ask: no ask program configured");
    vrpc_policy_unref(policy);
}
END_TEST

/* Decisions point into the snapshot: they stay valid while a reference is held. */
START_TEST(test_decision_outlives_other_refs)
{
    VrpcPolicy *policy = load_fixture();
    VrpcPolicy *extra = vrpc_policy_ref(policy);
    VrpcPolicyDecision d;

    ck_assert_ptr_eq(extra, policy);
    ck_assert_int_eq(vrpc_policy_evaluate(policy,
                                          &(VrpcPolicyRequest){.source = "personal",
                                                               .untrusted_target = "dom0",
                                                               .untrusted_service = "allow.User"},
                                          &d),
                     0);
    vrpc_policy_unref(policy);
    ck_assert_str_eq(d.user, "root");
    ck_assert_str_eq(d.rule_file, "10-first.yaml");
    ck_assert_uint_eq(d.rule_line, 21);
    ck_assert_ptr_null(vrpc_policy_unref(extra));
    ck_assert_ptr_null(vrpc_policy_unref(NULL));
    ck_assert_ptr_null(vrpc_policy_ref(NULL));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy-eval");
    TCase *tc = tcase_create("eval");
    vt_leak_fixture(tc);

    tcase_add_loop_test(tc, test_eval, 0, sizeof(eval_cases) / sizeof(eval_cases[0]));
    tcase_add_loop_test(tc, test_ask_resolution, 0, sizeof(ask_cases) / sizeof(ask_cases[0]));
    tcase_add_test(tc, test_decision_outlives_other_refs);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
