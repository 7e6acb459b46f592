/* SPDX-License-Identifier: MIT */
/*
 * `vrpc-policy import-qubes`, the rule converter: one qrexec rule line in,
 * one vrpc YAML rule out. It is deliberately strict: a line is either
 * converted to a rule with the same meaning, or reported with its FILE:LINE
 * and the whole conversion fails, because a policy that silently lost a deny
 * line is worse than no policy. The only exception is what vrpc cannot
 * express at all (@dispvm), which the caller may ask to skip, each skipped
 * line being reported. Each rule keeps its origin (FILE:LINE and the original
 * text) in a comment just above it, so that `vrpc-policy explain` on the
 * result leads back to the Qubes line. The include directives are the tree
 * walker's business (import-tree.c).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "import-int.h"
#include "names.h"

void import_problem(ImportCtx *im, const char *fmt, ...)
{
    va_list ap;

    im->stats.problems++;
    fprintf(im->err, "%s:%u: ", im->file, im->line);
    va_start(ap, fmt);
    vfprintf(im->err, fmt, ap);
    va_end(ap);
    fputc('\n', im->err);
}

void import_unconvertible(ImportCtx *im, const char *why)
{
    if (im->skip_unconvertible) {
        im->stats.skipped++;
        fprintf(im->err, "%s:%u: skipped: %s\n", im->file, im->line, why);
        fprintf(im->rules, "  # skipped %s:%u: %s\n", im->file, im->line, why);
    } else {
        import_problem(im, "%s (--skip-unconvertible skips such lines)", why);
    }
}

static void note(ImportCtx *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Something converted that behaves differently in vrpc: not a failure. */
static void note(ImportCtx *im, const char *fmt, ...)
{
    va_list ap;

    im->stats.notes++;
    fprintf(im->err, "%s:%u: note: ", im->file, im->line);
    va_start(ap, fmt);
    vfprintf(im->err, fmt, ap);
    va_end(ap);
    fputc('\n', im->err);
}

/* Printable copy of untrusted text for messages and comments. */
static const char *printable(char *buf, size_t size, const char *s)
{
    return vrpc_quote(buf, size, s, strlen(s));
}

/* Make text safe to embed in a YAML comment or a one-line message: printable
 * ASCII only, since a stray byte that is not UTF-8 (or a control character)
 * would make the whole converted file unreadable or forge a line. */
void import_sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

void import_printable_line(char *buf, size_t size, const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    snprintf(buf, size, "%s", line);
    import_sanitize(buf);
}

bool import_check_service(ImportCtx *im, const char *service, const char *argument)
{
    char q[VRPC_QUOTE_MAX];
    bool ok = true;

    if (strcmp(service, "*") != 0 && !vrpc_name_valid_service(service, strlen(service))) {
        import_problem(im, "invalid service name %s", printable(q, sizeof(q), service));
        ok = false;
    }
    if (strcmp(argument, "*") == 0)
        return ok;
    if (argument[0] != '+' || !vrpc_name_valid_argument(argument + 1, strlen(argument + 1))) {
        import_problem(im, "invalid argument %s (expected *, + or +ARGUMENT)",
                       printable(q, sizeof(q), argument));
        return false;
    }
    if (strcmp(service, "*") == 0) {
        import_problem(im, "service * takes only the argument * (qrexec refuses %s)",
                       printable(q, sizeof(q), argument));
        return false;
    }
    return ok;
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
    char why[VRPC_QUOTE_MAX + 96]; /* first reason the line cannot be expressed */
    char notes[256];               /* for the comment above the rule */
    bool autostart_yes;            /* worth a note on stderr once converted */
} ImportRule;

static void add_note(ImportRule *r, const char *text)
{
    size_t len = strlen(r->notes);

    snprintf(r->notes + len, sizeof(r->notes) - len, "%s%s", len ? "; " : "", text);
}

/* Convert a qrexec domain token. COLUMN is "source", "target" or a parameter.
 * Returns the text to write (dom0 becomes @adminvm), or NULL. */
static const char *convert_token(ImportCtx *im, ImportRule *r, const char *column, const char *s,
                                 bool allow_default, bool single)
{
    char q[VRPC_QUOTE_MAX];
    const char *err = NULL;
    PolicyToken token;

    if (s[0] == '$') {
        import_problem(im, "%s: old-style token %s; the qrexec 4.1 format writes it with '@'",
                       column, printable(q, sizeof(q), s));
        return NULL;
    }
    if (strncmp(s, "@dispvm", 7) == 0) {
        if (!r->why[0])
            snprintf(r->why, sizeof(r->why),
                     "%s: cannot convert %s: vrpc has no disposable domains", column,
                     printable(q, sizeof(q), s));
        return NULL;
    }
    if (policy_token_parse(s, strlen(s), &token, &err) < 0) {
        import_problem(im, "%s: %s: %s", column, err, printable(q, sizeof(q), s));
        return NULL;
    }
    if (token.kind == POLICY_TOKEN_REMOTE_ANY || token.kind == POLICY_TOKEN_REMOTE_HOST ||
        (token.kind == POLICY_TOKEN_NAME && memchr(token.value, '@', token.len))) {
        import_problem(im, "%s: a qrexec policy names no domain of another host: %s", column,
                       printable(q, sizeof(q), s));
        return NULL;
    }
    if (token.kind == POLICY_TOKEN_DEFAULT && !allow_default) {
        import_problem(im, "%s: @default is only valid as a target", column);
        return NULL;
    }
    if (single && token.kind != POLICY_TOKEN_NAME && token.kind != POLICY_TOKEN_ADMINVM) {
        import_problem(im, "%s: expected a domain name or @adminvm, got %s", column,
                       printable(q, sizeof(q), s));
        return NULL;
    }
    if (strcmp(s, "dom0") == 0) {
        char text[64];

        snprintf(text, sizeof(text), "%s dom0 written as @adminvm", column);
        add_note(r, text);
        return "@adminvm";
    }
    return s;
}

static void convert_param(ImportCtx *im, ImportRule *r, const char *key, const char *value)
{
    char q[VRPC_QUOTE_MAX];
    bool deny = r->action && strcmp(r->action, "deny") == 0;

    if (strcmp(key, "target") == 0) {
        if (deny)
            import_problem(im, "target= is not valid with deny");
        else
            r->redirect = convert_token(im, r, "target=", value, false, true);
    } else if (strcmp(key, "default_target") == 0) {
        if (r->action && strcmp(r->action, "ask") != 0)
            import_problem(im, "default_target= is only valid with ask");
        else
            r->default_target = convert_token(im, r, "default_target=", value, false, true);
    } else if (strcmp(key, "user") == 0) {
        if (deny)
            import_problem(im, "user= is not valid with deny");
        else if (!vrpc_name_valid_user(value, strlen(value)))
            import_problem(im, "invalid user name %s", printable(q, sizeof(q), value));
        else
            r->user = value;
    } else if (strcmp(key, "notify") == 0) {
        if (strcmp(value, "yes") == 0)
            r->notify = "true";
        else if (strcmp(value, "no") == 0)
            r->notify = "false";
        else
            import_problem(im, "notify= must be yes or no, got %s", printable(q, sizeof(q), value));
    } else if (deny) { /* autostart */
        import_problem(im, "autostart= is not valid with deny");
    } else if (strcmp(value, "no") == 0) {
        /* qrexec refuses a call to a stopped target; vrpc never starts one. */
        add_note(r, "autostart=no: vrpc never starts domains anyway");
    } else if (strcmp(value, "yes") == 0) {
        add_note(r, "autostart=yes: vrpc never starts domains, so a stopped target fails");
        r->autostart_yes = true;
    } else {
        import_problem(im, "autostart= must be yes or no, got %s", printable(q, sizeof(q), value));
    }
}

static void write_rule(ImportCtx *im, const ImportRule *r, const char *original)
{
    FILE *o = im->rules;

    if (r->notes[0])
        fprintf(o, "  # note: %s\n", r->notes);
    if (im->via)
        fprintf(o, "  # %s:%u (via %s): %s\n", im->file, im->line, im->via, original);
    else
        fprintf(o, "  # %s:%u: %s\n", im->file, im->line, original);
    fprintf(o, "  - service: \"%s\"\n", r->service);
    fprintf(o, "    argument: \"%s\"\n", r->argument);
    fprintf(o, "    source: \"%s\"\n", r->source);
    fprintf(o, "    target: \"%s\"\n", r->target);
    fprintf(o, "    action: %s\n", r->action);
    if (r->redirect)
        fprintf(o, "    redirect: \"%s\"\n", r->redirect);
    if (r->default_target)
        fprintf(o, "    default_target: \"%s\"\n", r->default_target);
    if (r->user)
        fprintf(o, "    user: \"%s\"\n", r->user);
    if (r->notify)
        fprintf(o, "    notify: %s\n", r->notify);
    im->stats.rules++;
}

void import_convert_rule(ImportCtx *im, char **f, size_t n, const char *original)
{
    static const char *const known[] = {"target", "default_target", "user", "notify", "autostart"};
    ImportRule r = {0};
    unsigned seen = 0;
    char q[VRPC_QUOTE_MAX];
    int before = im->stats.problems;

    if (n < 5) {
        import_problem(im,
                       "expected SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...], got "
                       "%zu field%s (the pre-4.1 per-service format is read only through "
                       "!include-service)",
                       n, n == 1 ? "" : "s");
        return;
    }
    if (import_check_service(im, f[0], f[1])) {
        r.service = f[0];
        r.argument = strcmp(f[1], "*") == 0 ? "*" : f[1] + 1;
    }
    r.source = convert_token(im, &r, "source", f[2], false, false);
    r.target = convert_token(im, &r, "target", f[3], true, false);

    if (strcmp(f[4], "allow") == 0 || strcmp(f[4], "deny") == 0 || strcmp(f[4], "ask") == 0)
        r.action = f[4];
    else
        import_problem(im, "unknown action %s (expected allow, deny or ask)",
                       printable(q, sizeof(q), f[4]));

    for (size_t i = 5; i < n; i++) {
        char *eq = strchr(f[i], '=');
        unsigned bit = 0;

        if (!eq) {
            import_problem(im, "expected PARAM=VALUE, got %s", printable(q, sizeof(q), f[i]));
            continue;
        }
        *eq = 0;
        for (unsigned k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            if (strcmp(f[i], known[k]) == 0)
                bit = 1u << k;
        if (!bit)
            import_problem(im, "unknown parameter %s", printable(q, sizeof(q), f[i]));
        else if (seen & bit)
            import_problem(im, "duplicate parameter %s=", f[i]);
        else
            convert_param(im, &r, f[i], eq + 1);
        seen |= bit;
    }
    if (r.target && r.action && strcmp(r.action, "allow") == 0 &&
        strcmp(r.target, "@default") == 0 && !(seen & 1u))
        import_problem(im, "allow with target @default needs target=");

    if (im->stats.problems != before) {
        if (r.why[0]) /* a broken line is reported whole, never skipped */
            import_problem(im, "%s", r.why);
        return;
    }
    if (r.why[0]) {
        import_unconvertible(im, r.why);
        return;
    }
    if (r.autostart_yes)
        note(im, "autostart=yes: vrpc never starts domains: a call to a stopped target fails "
                 "instead of starting it");
    write_rule(im, &r, original);
}

int import_begin(ImportCtx *im, const PolicyImportOptions *opts, FILE *err, char **bodyp,
                 size_t *body_sizep)
{
    *im = (ImportCtx){.err = err, .skip_unconvertible = opts && opts->skip_unconvertible};
    im->rules = open_memstream(bodyp, body_sizep);
    return im->rules ? 0 : -ENOMEM;
}

int import_end(ImportCtx *im, int r, char **bodyp, size_t *body_sizep, FILE *out,
               PolicyImportStats *statsp)
{
    if (fclose(im->rules) != 0 && r >= 0)
        r = -ENOMEM;
    im->rules = NULL;
    if (r >= 0 && im->stats.problems == 0) {
        fprintf(out, "# vrpc policy converted by vrpc-policy import-qubes; review before use.\n");
        fprintf(out, "# Above each rule: the qrexec FILE:LINE it comes from, and its text.\n");
        fprintf(out, "rules:%s\n", im->stats.rules ? "" : " []");
        fwrite(*bodyp, 1, *body_sizep, out);
        if (fflush(out) != 0 || ferror(out))
            r = -EIO;
    }
    free(*bodyp);
    *bodyp = NULL;
    *body_sizep = 0;
    if (statsp)
        *statsp = im->stats;
    return r < 0 ? r : im->stats.problems;
}
