/* SPDX-License-Identifier: MIT */
/*
 * vrpc-policy: the administrator's tool for the policy folder. `check` lints
 * it, `explain` shows which rule decides one call and how, `graph` draws who
 * may call what, and `import-qubes` converts qrexec policy files. It uses the
 * same loader and evaluator as the dispatcher, so what it says is what the
 * dispatcher does. Exit codes: 0 ok, 1 failure (invalid policy, unreadable
 * input), 2 usage.
 */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "graph.h"
#include "import-qubes.h"
#include "loader.h"
#include "vrpc-policy.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char *const usage_text =
    "Usage: vrpc-policy COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Commands:\n"
    "  check [--etc DIR]                          validate the policy; print every error\n"
    "  explain [--etc DIR] SOURCE TARGET SERVICE[+ARG]\n"
    "                                             show the decision for one call\n"
    "                                             (TARGET may be @default or @adminvm)\n"
    "  graph [--etc DIR]                          print a Graphviz dot graph of allowed calls\n"
    "  import-qubes FILE...                       convert qrexec .policy files to YAML\n"
    "                                             (FILE - reads stdin)\n"
    "\n"
    "Options:\n"
    "  -e, --etc DIR    configuration folder (default " VRPC_POLICY_DEFAULT_ETC ")\n"
    "  -h, --help       show this help\n"
    "  -V, --version    show the version\n"
    "\n"
    "Exit status: 0 ok (explain: whatever the decision), 1 invalid policy or input,\n"
    "2 bad usage.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr for bad usage, and the usage exit code. */
static int usage_error(const char *fmt, ...) {
    va_list ap;

    fprintf(stderr, "vrpc-policy: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try 'vrpc-policy --help')\n");
    return EXIT_USAGE;
}

/* Parse the options shared by all commands; returns -1 to go on, else an exit code. */
static int parse_options(int argc, char **argv, const char **etcp, bool takes_etc) {
    static const struct option options[] = {
        {"etc", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    int c;

    optind = 0; /* reinitialize getopt for the command's own argv */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:e:hV", options, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (!takes_etc)
                return usage_error("%s does not take --etc", argv[0]);
            if (!*optarg)
                return usage_error("--etc needs a folder");
            *etcp = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case 'V':
            printf("vrpc-policy %s\n", VRPC_VERSION);
            return EXIT_OK;
        case ':':
            return usage_error("option %s needs an argument", argv[optind - 1]);
        default:
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    return -1;
}

static void print_errors(const VrpcPolicy *policy, FILE *to) {
    for (size_t i = 0; i < vrpc_policy_get_n_errors(policy); i++)
        fprintf(to, "%s\n", vrpc_policy_get_error(policy, i));
}

/* Load ETC; prints a one-line failure for system errors. Returns 0, E_INVALID or <0. */
static int load(const char *etc, VrpcPolicy **policyp) {
    int r = vrpc_policy_load(etc, policyp);

    if (r < 0)
        fprintf(stderr, "vrpc-policy: cannot load %s: %s\n", etc, strerror(-r));
    return r;
}

static int cmd_check(int argc, char **argv) {
    const char *etc = VRPC_POLICY_DEFAULT_ETC;
    VrpcPolicy *policy = NULL;
    size_t n_rules, n_files;
    int r = parse_options(argc, argv, &etc, true);

    if (r >= 0)
        return r;
    if (optind != argc)
        return usage_error("check takes no arguments, got '%s'", argv[optind]);
    r = load(etc, &policy);
    if (r < 0)
        return EXIT_FAIL;
    if (r == VRPC_POLICY_E_INVALID) {
        print_errors(policy, stdout);
        vrpc_policy_unref(policy);
        return EXIT_FAIL;
    }
    n_rules = vrpc_policy_get_n_rules(policy);
    n_files = vrpc_policy_get_n_files(policy);
    printf("%s: policy OK: %zu rule%s in %zu file%s\n", etc, n_rules, n_rules == 1 ? "" : "s",
           n_files, n_files == 1 ? "" : "s");
    vrpc_policy_unref(policy);
    return EXIT_OK;
}

static int cmd_explain(int argc, char **argv) {
    const char *etc = VRPC_POLICY_DEFAULT_ETC;
    char service[VRPC_POLICY_NAME_MAX + 1], argument[VRPC_POLICY_NAME_MAX + 1];
    char line[8192];
    VrpcPolicy *policy = NULL;
    VrpcPolicyDecision decision;
    const char *source, *target;
    int r = parse_options(argc, argv, &etc, true);
    bool valid;

    if (r >= 0)
        return r;
    if (argc - optind != 3)
        return usage_error("explain needs SOURCE TARGET SERVICE[+ARG]");
    source = argv[optind];
    target = argv[optind + 1];

    /* The same checks the dispatcher applies, before any policy is read. */
    if (strcmp(source, "@adminvm") != 0 && !vrpc_policy_domain_is_valid(source))
        return usage_error("invalid SOURCE '%s': expected a domain name or @adminvm", source);
    if (strcmp(target, "@default") != 0 && strcmp(target, "@adminvm") != 0 &&
        !vrpc_policy_domain_is_valid(target))
        return usage_error("invalid TARGET '%s': expected a domain name, @adminvm or @default",
                           target);
    r = vrpc_policy_split_call(argv[optind + 2], service, argument);
    if (r == VRPC_POLICY_E_SERVICE)
        return usage_error("invalid service in '%s': expected [A-Za-z0-9._-], 1 to 64 "
                           "characters",
                           argv[optind + 2]);
    if (r == VRPC_POLICY_E_ARGUMENT)
        return usage_error("invalid argument in '%s': expected [A-Za-z0-9._+-], up to 64 "
                           "characters",
                           argv[optind + 2]);

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

static int cmd_graph(int argc, char **argv) {
    const char *etc = VRPC_POLICY_DEFAULT_ETC;
    VrpcPolicy *policy = NULL;
    int r = parse_options(argc, argv, &etc, true);

    if (r >= 0)
        return r;
    if (optind != argc)
        return usage_error("graph takes no arguments, got '%s'", argv[optind]);
    r = load(etc, &policy);
    if (r < 0)
        return EXIT_FAIL;
    if (r == VRPC_POLICY_E_INVALID) {
        print_errors(policy, stderr);
        fprintf(stderr, "vrpc-policy: the policy is invalid, so every call is denied\n");
        vrpc_policy_unref(policy);
        return EXIT_FAIL;
    }
    r = policy_graph_write(policy, stdout);
    vrpc_policy_unref(policy);
    if (r < 0) {
        fprintf(stderr, "vrpc-policy: cannot write the graph: %s\n", strerror(-r));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Read a whole input file for import-qubes ("-" is stdin). */
static int read_input(const char *path, char **datap, size_t *sizep) {
    _cleanup_fclose_ FILE *f = NULL;
    FILE *in = stdin;
    char *data = NULL;
    size_t size = 0;
    FILE *mem;
    char buf[65536];
    size_t n;

    if (strcmp(path, "-") != 0) {
        f = fopen(path, "re");
        if (!f)
            return -errno;
        in = f;
    }
    mem = open_memstream(&data, &size);
    if (!mem)
        return -ENOMEM;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (size + n > POLICY_FILE_MAX) {
            fclose(mem);
            free(data);
            return -EFBIG;
        }
        fwrite(buf, 1, n, mem);
    }
    if (ferror(in)) {
        fclose(mem);
        free(data);
        return -EIO;
    }
    if (fclose(mem) != 0) {
        free(data);
        return -ENOMEM;
    }
    *datap = data;
    *sizep = size;
    return 0;
}

static int cmd_import_qubes(int argc, char **argv) {
    VrpcPolicyText *files = NULL;
    size_t n = 0;
    int r = parse_options(argc, argv, NULL, false), status = EXIT_OK;

    if (r >= 0)
        return r;
    if (optind == argc)
        return usage_error("import-qubes needs at least one FILE");
    files = calloc((size_t)(argc - optind), sizeof(*files));
    if (!files) {
        fprintf(stderr, "vrpc-policy: out of memory\n");
        return EXIT_FAIL;
    }
    for (int i = optind; i < argc; i++, n++) {
        char *data = NULL;
        size_t size = 0;

        r = read_input(argv[i], &data, &size);
        if (r < 0) {
            fprintf(stderr, "vrpc-policy: cannot read %s: %s\n", argv[i], strerror(-r));
            status = EXIT_FAIL;
            goto out;
        }
        files[n] = (VrpcPolicyText){.name = argv[i], .data = data, .size = size};
    }
    r = policy_import_qubes(files, n, stdout, stderr);
    if (r < 0)
        fprintf(stderr, "vrpc-policy: import failed: %s\n", strerror(-r));
    else if (r > 0)
        fprintf(stderr, "vrpc-policy: %d line%s could not be converted; nothing was written\n", r,
                r == 1 ? "" : "s");
    status = r == 0 ? EXIT_OK : EXIT_FAIL;
out:
    for (size_t i = 0; i < n; i++)
        free((char *)files[i].data);
    free(files);
    return status;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } commands[] = {
        {"check", cmd_check},
        {"explain", cmd_explain},
        {"graph", cmd_graph},
        {"import-qubes", cmd_import_qubes},
    };
    int r;

    if (argc < 2)
        return usage_error("missing COMMAND");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);

    r = parse_options(argc, argv, NULL, false);
    if (r >= 0)
        return r;
    return usage_error("unknown command '%s'", argv[optind < argc ? optind : 1]);
}
