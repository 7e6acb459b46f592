/* SPDX-License-Identifier: MIT */
/*
 * vrpc-policy: the administrator's tool for the policy folder. `check` lints
 * it, `explain` shows which rule decides one call and how, `graph` draws who
 * may call what, and `import-qubes` converts a qrexec policy tree. It uses
 * the same loader and evaluator as the dispatcher, so what it says is what
 * the dispatcher does. Options may come before or after the command. Exit
 * codes: 0 ok, 1 failure (invalid policy, unreadable input), 2 usage.
 */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/escape.h"
#include "common/cleanup.h"
#include "graph.h"
#include "import-qubes.h"
#include "loader.h"
#include "vrpc-policy.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char *const usage_text =
    "Usage: vrpc-policy [--etc DIR] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Commands:\n"
    "  check [--etc DIR] [DIR]                    validate the policy; print every error\n"
    "  explain [--etc DIR] SOURCE TARGET SERVICE[+ARG]\n"
    "                                             show the decision for one call\n"
    "                                             (SOURCE and TARGET may be NAME@HOST, a\n"
    "                                             domain of another host; TARGET may be\n"
    "                                             @default or @adminvm)\n"
    "  graph [--etc DIR] [DIR]                    print a Graphviz dot graph of allowed calls\n"
    "  import-qubes [--skip-unconvertible] PATH...\n"
    "                                             convert a qrexec policy.d folder or\n"
    "                                             .policy files to YAML (PATH - reads stdin)\n"
    "\n"
    "DIR is the configuration folder, or its policy.d folder (a path ending in\n"
    "policy.d): `check /etc/vrpc` and `check /etc/vrpc/policy.d` are the same.\n"
    "\n"
    "Options (before or after COMMAND):\n"
    "  -e, --etc DIR             configuration folder (default " VRPC_POLICY_DEFAULT_ETC ")\n"
    "  -s, --skip-unconvertible  import-qubes: skip the lines vrpc cannot express\n"
    "                            (@dispvm, !compat-4.0), reporting each, instead of failing\n"
    "  -h, --help                show this help\n"
    "  -V, --version             show the version\n"
    "\n"
    "Exit status: 0 ok (explain: whatever the decision), 1 invalid policy or input,\n"
    "2 bad usage.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr for bad usage, and the usage exit code. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vrpc-policy: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return EXIT_USAGE;
}

typedef struct Options {
    const char *etc; /* NULL: not given */
    bool skip_unconvertible;
} Options;

enum { TAKES_ETC = 1, TAKES_SKIP = 2 };

/*
 * Parse options up to the first argument. NAME is the command ("vrpc-policy"
 * for the options before it); ARGV[0] is skipped. Options given before the
 * command are in *O already; a later one wins. Returns -1 to go on, else an
 * exit code.
 */
static int parse_options(const char *name, int argc, char **argv, Options *o)
{
    static const struct option options[] = {
        {"etc", required_argument, NULL, 'e'},
        {"skip-unconvertible", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    int c;

    optind = 0; /* reinitialize getopt for the command's own argv */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:e:shV", options, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (!*optarg)
                return usage_error("--etc needs a folder");
            o->etc = optarg;
            break;
        case 's':
            o->skip_unconvertible = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case 'V':
            printf("vrpc-policy (vrpc) %s\n", VRPC_VERSION);
            return EXIT_OK;
        case ':':
            return usage_error("option '%s' needs an argument", VRPC_ESC(argv[optind - 1]));
        default:
            return usage_error("unknown option '%s'%s%s", VRPC_ESC(argv[optind - 1]),
                               strcmp(name, "vrpc-policy") ? " for " : "",
                               strcmp(name, "vrpc-policy") ? name : "");
        }
    }
    return -1;
}

/* Refuse the options COMMAND does not take. Returns -1 to go on. */
static int check_allowed(const char *command, const Options *o, unsigned takes)
{
    if (o->etc && !(takes & TAKES_ETC))
        return usage_error("%s does not take --etc", command);
    if (o->skip_unconvertible && !(takes & TAKES_SKIP))
        return usage_error("%s does not take --skip-unconvertible (only import-qubes does)",
                           command);
    return -1;
}

/*
 * The configuration folder for check and graph: --etc DIR, or a DIR
 * argument that is either the configuration folder or its policy.d (a path
 * whose last component is policy.d: its parent holds domains.yaml).
 * *ETCP is malloc'd. Returns -1 to go on, else an exit code.
 */
static int etc_folder(const char *command, int argc, char **argv, const Options *o, char **etcp)
{
    const char *arg;
    size_t len;
    char *etc;

    if (argc - optind > 1)
        return usage_error("%s takes at most one folder, got '%s' and '%s'", command,
                           VRPC_ESC(argv[optind]), VRPC_ESC(argv[optind + 1]));
    if (argc - optind == 1 && o->etc)
        return usage_error("%s: give the folder once, as --etc DIR or as DIR, not both", command);
    arg = argc - optind == 1 ? argv[optind] : o->etc ? o->etc : VRPC_POLICY_DEFAULT_ETC;
    if (!*arg)
        return usage_error("%s: the folder is an empty string", command);
    etc = strdup(arg);
    if (!etc) {
        fprintf(stderr, "vrpc-policy: out of memory\n");
        return EXIT_FAIL;
    }
    for (len = strlen(etc); len > 1 && etc[len - 1] == '/'; len--)
        etc[len - 1] = 0;
    if (argc - optind == 1 &&
        (strcmp(etc, "policy.d") == 0 || (len >= 9 && strcmp(etc + len - 9, "/policy.d") == 0))) {
        if (len == 8)
            strcpy(etc, ".");
        else if (len == 9)
            strcpy(etc, "/");
        else
            etc[len - 9] = 0;
    }
    *etcp = etc;
    return -1;
}

static void print_errors(const VrpcPolicy *policy, FILE *to)
{
    for (size_t i = 0; i < vrpc_policy_get_n_errors(policy); i++)
        fprintf(to, "%s\n", vrpc_policy_get_error(policy, i));
}

/* Load ETC; prints a one-line failure for system errors. Returns 0, E_INVALID or <0. */
static int load(const char *etc, VrpcPolicy **policyp)
{
    int r = vrpc_policy_load(etc, policyp);

    if (r < 0)
        fprintf(stderr, "vrpc-policy: cannot load %s: %s\n", VRPC_ESC(etc), strerror(-r));
    return r;
}

/*
 * The start of check and graph: options, the ETC folder (*etcp, the caller frees it), and
 * a load that must give a valid policy. Returns -1 with *policyp set, or the exit code to
 * return; an invalid policy's errors go to @errs (on stderr with the note that it denies).
 */
static int load_valid(int argc, char **argv, Options *o, FILE *errs, char **etcp,
                      VrpcPolicy **policyp)
{
    int r = parse_options(argv[0], argc, argv, o);

    if (r < 0)
        r = check_allowed(argv[0], o, TAKES_ETC);
    if (r < 0)
        r = etc_folder(argv[0], argc, argv, o, etcp);
    if (r >= 0)
        return r;
    r = load(*etcp, policyp);
    if (r < 0)
        return EXIT_FAIL;
    if (r == VRPC_POLICY_E_INVALID) {
        print_errors(*policyp, errs);
        if (errs == stderr)
            fprintf(stderr, "vrpc-policy: the policy is invalid, so every call is denied\n");
        vrpc_policy_unref(*policyp);
        *policyp = NULL;
        return EXIT_FAIL;
    }
    return -1;
}

static int cmd_check(int argc, char **argv, Options *o)
{
    _cleanup_free_ char *etc = NULL;
    VrpcPolicy *policy = NULL;
    size_t n_rules, n_files;
    int r = load_valid(argc, argv, o, stdout, &etc, &policy);

    if (r >= 0)
        return r;
    n_rules = vrpc_policy_get_n_rules(policy);
    n_files = vrpc_policy_get_n_files(policy);
    printf("%s: policy OK: %zu rule%s in %zu file%s\n", etc, n_rules, n_rules == 1 ? "" : "s",
           n_files, n_files == 1 ? "" : "s");
    vrpc_policy_unref(policy);
    return EXIT_OK;
}

static int cmd_explain(int argc, char **argv, Options *o)
{
    const char *etc;
    char service[VRPC_POLICY_NAME_MAX + 1], argument[VRPC_POLICY_NAME_MAX + 1];
    char line[8192];
    VrpcPolicy *policy = NULL;
    VrpcPolicyDecision decision;
    const char *source, *target;
    int r = parse_options(argv[0], argc, argv, o);
    bool valid;

    if (r < 0)
        r = check_allowed(argv[0], o, TAKES_ETC);
    if (r >= 0)
        return r;
    etc = o->etc ? o->etc : VRPC_POLICY_DEFAULT_ETC;
    if (argc - optind != 3)
        return usage_error("explain needs SOURCE TARGET SERVICE[+ARG]");
    source = argv[optind];
    target = argv[optind + 1];

    /* The same checks the dispatcher applies, before any policy is read. */
    if (strcmp(source, "@adminvm") != 0 && !vrpc_policy_qualified_domain_is_valid(source))
        return usage_error("invalid SOURCE '%s': expected a domain name, NAME@HOST or @adminvm",
                           VRPC_ESC(source));
    if (strcmp(target, "@default") != 0 && strcmp(target, "@adminvm") != 0 &&
        !vrpc_policy_qualified_domain_is_valid(target))
        return usage_error("invalid TARGET '%s': expected a domain name, NAME@HOST, @adminvm "
                           "or @default",
                           VRPC_ESC(target));
    r = vrpc_policy_split_call(argv[optind + 2], service, argument);
    if (r == VRPC_POLICY_E_SERVICE)
        return usage_error("invalid service in '%s': expected [A-Za-z0-9._-], 1 to 64 "
                           "characters",
                           VRPC_ESC(argv[optind + 2]));
    if (r == VRPC_POLICY_E_ARGUMENT)
        return usage_error("invalid argument in '%s': expected [A-Za-z0-9._+-], up to 64 "
                           "characters",
                           VRPC_ESC(argv[optind + 2]));

    r = load(etc, &policy);
    if (r < 0)
        return EXIT_FAIL;
    valid = r == 0;
    if (!valid)
        print_errors(policy, stderr);
    vrpc_policy_evaluate(policy,
                         &(VrpcPolicyRequest){
                             .source = source,
                             .untrusted_target = target,
                             .untrusted_service = service,
                             .untrusted_argument = argument,
                         },
                         &decision);
    vrpc_policy_decision_format(&decision, line, sizeof(line));
    printf("%s\n", line);
    vrpc_policy_unref(policy);
    if (!valid) {
        fprintf(stderr, "vrpc-policy: the policy is invalid, so every call is denied\n");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int cmd_graph(int argc, char **argv, Options *o)
{
    _cleanup_free_ char *etc = NULL;
    VrpcPolicy *policy = NULL;
    int r = load_valid(argc, argv, o, stderr, &etc, &policy);

    if (r >= 0)
        return r;
    r = policy_graph_write(policy, stdout);
    vrpc_policy_unref(policy);
    if (r < 0) {
        fprintf(stderr, "vrpc-policy: cannot write the graph: %s\n", strerror(-r));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int cmd_import_qubes(int argc, char **argv, Options *o)
{
    PolicyImportStats stats;
    int r = parse_options(argv[0], argc, argv, o);

    if (r < 0)
        r = check_allowed(argv[0], o, TAKES_SKIP);
    if (r >= 0)
        return r;
    if (optind == argc)
        return usage_error("import-qubes needs at least one PATH (a policy.d folder or a file)");
    r = policy_import_qubes_paths(
        (const char *const *)argv + optind, (size_t)(argc - optind),
        &(PolicyImportOptions){.skip_unconvertible = o->skip_unconvertible}, stdout, stderr,
        &stats);
    if (r < 0) {
        fprintf(stderr, "vrpc-policy: import failed: %s\n", strerror(-r));
        return EXIT_FAIL;
    }
    if (r > 0) {
        fprintf(stderr, "vrpc-policy: %d problem%s; nothing was written\n", r, r == 1 ? "" : "s");
        return EXIT_FAIL;
    }
    if (stats.skipped > 0)
        fprintf(stderr, "vrpc-policy: %zu rule%s converted, %d line%s skipped (listed above)\n",
                stats.rules, stats.rules == 1 ? "" : "s", stats.skipped,
                stats.skipped == 1 ? "" : "s");
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv, Options *o);
    } commands[] = {
        {"check", cmd_check},
        {"explain", cmd_explain},
        {"graph", cmd_graph},
        {"import-qubes", cmd_import_qubes},
    };
    Options o = {0};
    int r = parse_options("vrpc-policy", argc, argv, &o), first;

    if (r >= 0)
        return r;
    if (optind >= argc)
        return usage_error("missing COMMAND");
    first = optind;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[first], commands[i].name) == 0)
            return commands[i].fn(argc - first, argv + first, &o);
    return usage_error("unknown %s '%s'", argv[first][0] == '-' ? "option" : "command",
                       VRPC_ESC(argv[first]));
}
