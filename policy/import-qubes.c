/* SPDX-License-Identifier: MIT */
/*
 * `vrpc-policy import-qubes`: a line-by-line translator from qrexec policy
 * files to vrpc YAML. It is deliberately strict: a line is either converted
 * to a rule with the same meaning, or reported with its FILE:LINE and the
 * whole conversion fails, because a policy that silently lost a deny line is
 * worse than no policy. Comments are carried over so that the result stays
 * readable; the original line is kept above each rule for review.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "import-qubes.h"
#include "names.h"

#define MAX_FIELDS 16
#define MAX_LINE 4096

typedef struct Importer {
    const char *file;
    unsigned line;
    FILE *rules; /* converted rules, kept until we know there was no problem */
    FILE *err;
    int n_problems;
    size_t n_rules;
} Importer;

static void problem(Importer *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(Importer *im, const char *fmt, ...) {
    va_list ap;

    im->n_problems++;
    fprintf(im->err, "%s:%u: ", im->file, im->line);
    va_start(ap, fmt);
    vfprintf(im->err, fmt, ap);
    va_end(ap);
    fputc('\n', im->err);
}

/* Printable copy of untrusted text for messages and comments. */
static const char *printable(char *buf, size_t size, const char *s) {
    return policy_quote(buf, size, s, strlen(s));
}

/* Convert a qrexec domain token. COLUMN is "source", "target" or a parameter. */
static bool convert_token(Importer *im, const char *column, const char *s, bool allow_default,
                          bool single, PolicyToken *tokenp) {
    char q[POLICY_QUOTE_MAX];
    const char *err = NULL;

    if (s[0] == '$') {
        problem(im, "%s: old-style token %s; the qrexec 4.1 format writes it with '@'", column,
                printable(q, sizeof(q), s));
        return false;
    }
    if (strncmp(s, "@dispvm", 7) == 0) {
        problem(im, "%s: cannot convert %s: vrpc has no disposable domains", column,
                printable(q, sizeof(q), s));
        return false;
    }
    if (policy_token_parse(s, strlen(s), tokenp, &err) < 0) {
        problem(im, "%s: %s: %s", column, err, printable(q, sizeof(q), s));
        return false;
    }
    if (tokenp->kind == POLICY_TOKEN_DEFAULT && !allow_default) {
        problem(im, "%s: @default is only valid as a target", column);
        return false;
    }
    if (single && tokenp->kind != POLICY_TOKEN_NAME && tokenp->kind != POLICY_TOKEN_ADMINVM) {
        problem(im, "%s: expected a domain name or @adminvm, got %s", column,
                printable(q, sizeof(q), s));
        return false;
    }
    return true;
}

typedef struct ImportRule {
    const char *service;
    const char *argument;
    const char *source;
    const char *target;
    const char *action;
    const char *redirect;
    const char *default_target;
    const char *user;
    const char *notify;
} ImportRule;

static void convert_rule(Importer *im, char **f, size_t n, const char *original) {
    ImportRule r = {0};
    PolicyToken source = {0}, target = {0}, tok;
    unsigned seen = 0;
    bool ok = true;
    char q[POLICY_QUOTE_MAX];
    int before = im->n_problems;

    if (n < 5) {
        problem(im, "expected SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...], got %zu "
                    "field%s (the pre-4.1 per-service format is not supported)",
                n, n == 1 ? "" : "s");
        return;
    }
    r.service = f[0];
    if (strcmp(f[0], "*") != 0 && !policy_service_valid(f[0], strlen(f[0])))
        problem(im, "invalid service name %s", printable(q, sizeof(q), f[0]));

    if (strcmp(f[1], "*") == 0)
        r.argument = "*";
    else if (f[1][0] == '+' && policy_argument_valid(f[1] + 1, strlen(f[1] + 1)))
        r.argument = f[1] + 1;
    else
        problem(im, "invalid argument %s (expected *, + or +ARGUMENT)",
                printable(q, sizeof(q), f[1]));

    ok = convert_token(im, "source", f[2], false, false, &source);
    r.source = f[2];
    if (convert_token(im, "target", f[3], true, false, &target))
        r.target = f[3];
    else
        ok = false;

    if (strcmp(f[4], "allow") == 0 || strcmp(f[4], "deny") == 0 || strcmp(f[4], "ask") == 0)
        r.action = f[4];
    else
        problem(im, "unknown action %s (expected allow, deny or ask)",
                printable(q, sizeof(q), f[4]));

    for (size_t i = 5; i < n; i++) {
        static const char *const known[] = {"target", "default_target", "user", "notify",
                                            "autostart"};
        char *eq = strchr(f[i], '=');
        const char *key = f[i], *value;
        unsigned bit = 0;

        if (!eq) {
            problem(im, "expected PARAM=VALUE, got %s", printable(q, sizeof(q), f[i]));
            continue;
        }
        *eq = 0;
        value = eq + 1;
        for (unsigned k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            if (strcmp(key, known[k]) == 0)
                bit = 1u << k;
        if (!bit) {
            problem(im, "unknown parameter %s", printable(q, sizeof(q), key));
            continue;
        }
        if (seen & bit) {
            problem(im, "duplicate parameter %s=", key);
            continue;
        }
        seen |= bit;
        if (strcmp(key, "target") == 0) {
            if (r.action && strcmp(r.action, "deny") == 0)
                problem(im, "target= is not valid with deny");
            else if (convert_token(im, "target=", value, false, true, &tok))
                r.redirect = value;
        } else if (strcmp(key, "default_target") == 0) {
            if (r.action && strcmp(r.action, "ask") != 0)
                problem(im, "default_target= is only valid with ask");
            else if (convert_token(im, "default_target=", value, false, true, &tok))
                r.default_target = value;
        } else if (strcmp(key, "user") == 0) {
            if (r.action && strcmp(r.action, "deny") == 0)
                problem(im, "user= is not valid with deny");
            else if (!policy_user_valid(value, strlen(value)))
                problem(im, "invalid user name %s", printable(q, sizeof(q), value));
            else
                r.user = value;
        } else if (strcmp(key, "notify") == 0) {
            if (strcmp(value, "yes") == 0)
                r.notify = "true";
            else if (strcmp(value, "no") == 0)
                r.notify = "false";
            else
                problem(im, "notify= must be yes or no, got %s", printable(q, sizeof(q), value));
        } else {
            problem(im, "cannot convert autostart=%s: vrpc never starts domains",
                    printable(q, sizeof(q), value));
        }
    }
    if (ok && r.action && strcmp(r.action, "allow") == 0 && target.kind == POLICY_TOKEN_DEFAULT &&
        !(seen & 1u))
        problem(im, "allow with target @default needs target=");

    if (im->n_problems != before)
        return;

    fprintf(im->rules, "  # line %u: %s\n", im->line, original);
    fprintf(im->rules, "  - service: \"%s\"\n", r.service);
    fprintf(im->rules, "    argument: \"%s\"\n", r.argument);
    fprintf(im->rules, "    source: \"%s\"\n", r.source);
    fprintf(im->rules, "    target: \"%s\"\n", r.target);
    fprintf(im->rules, "    action: %s\n", r.action);
    if (r.redirect)
        fprintf(im->rules, "    redirect: \"%s\"\n", r.redirect);
    if (r.default_target)
        fprintf(im->rules, "    default_target: \"%s\"\n", r.default_target);
    if (r.user)
        fprintf(im->rules, "    user: \"%s\"\n", r.user);
    if (r.notify)
        fprintf(im->rules, "    notify: %s\n", r.notify);
    im->n_rules++;
}

/* Make text safe to embed in a YAML comment: printable ASCII only, since a
 * stray byte that is not UTF-8 (or a control character) would make the whole
 * converted file unreadable. */
static void sanitize(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static void convert_line(Importer *im, char *line) {
    char original[MAX_LINE + 1];
    char *fields[MAX_FIELDS];
    size_t n = 0;
    char *p = line, *save = NULL, *tok;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == 0)
        return;
    snprintf(original, sizeof(original), "%s", p);
    sanitize(original);
    if (*p == '#') {
        fprintf(im->rules, "  %s\n", original);
        return;
    }
    if (*p == '!') {
        size_t len = strcspn(p, " \t");

        if ((len == 8 && strncmp(p, "!include", len) == 0) ||
            (len == 12 && strncmp(p, "!include-dir", len) == 0) ||
            (len == 16 && strncmp(p, "!include-service", len) == 0))
            problem(im, "cannot convert %.*s: vrpc has no includes; convert the included files "
                        "and place them in policy.d",
                    (int)len, p);
        else if (len == 11 && strncmp(p, "!compat-4.0", len) == 0)
            problem(im, "cannot convert !compat-4.0: the R4.0 policy format is not supported");
        else
            problem(im, "unknown directive %.*s", (int)(len > 40 ? 40 : len), original);
        return;
    }
    for (tok = strtok_r(p, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == MAX_FIELDS) {
            problem(im, "too many fields (more than %d)", MAX_FIELDS);
            return;
        }
        fields[n++] = tok;
    }
    convert_rule(im, fields, n, original);
}

static int convert_file(Importer *im, const VrpcPolicyText *file) {
    size_t off = 0;

    char *name = strdup(file->name);

    if (!name)
        return -ENOMEM;
    sanitize(name);
    im->file = file->name;
    im->line = 0;
    fprintf(im->rules, "  # converted from %s\n", name);
    while (off < file->size) {
        const char *start = file->data + off;
        const char *nl = memchr(start, '\n', file->size - off);
        size_t len = nl ? (size_t)(nl - start) : file->size - off;
        char *line;

        off += len + (nl ? 1 : 0);
        im->line++;
        if (len > 0 && start[len - 1] == '\r')
            len--;
        if (memchr(start, 0, len)) {
            problem(im, "line contains a NUL byte");
            continue;
        }
        if (len > MAX_LINE) {
            problem(im, "line longer than %d bytes", MAX_LINE);
            continue;
        }
        line = strndup(start, len);
        if (!line) {
            free(name);
            return -ENOMEM;
        }
        convert_line(im, line);
        free(line);
    }
    free(name);
    return 0;
}

int policy_import_qubes(const VrpcPolicyText *files, size_t n_files, FILE *out, FILE *err) {
    Importer im = {.err = err};
    char *body = NULL;
    size_t body_size = 0;
    int r = 0;

    im.rules = open_memstream(&body, &body_size);
    if (!im.rules)
        return -ENOMEM;
    for (size_t i = 0; i < n_files && r >= 0; i++)
        r = convert_file(&im, &files[i]);
    if (fclose(im.rules) != 0 && r >= 0)
        r = -ENOMEM;
    if (r < 0) {
        free(body);
        return r;
    }
    if (im.n_problems == 0) {
        fprintf(out, "# vrpc policy converted by vrpc-policy import-qubes; review before use.\n");
        fprintf(out, "rules:%s\n", im.n_rules ? "" : " []");
        fwrite(body, 1, body_size, out);
        if (fflush(out) != 0 || ferror(out))
            r = -EIO;
    }
    free(body);
    return r < 0 ? r : im.n_problems;
}
