/* SPDX-License-Identifier: MIT */
/*
 * `vrpc-policy import-qubes`, the tree walker: reads a qrexec policy folder
 * the way qrexec does and feeds every rule, in qrexec's order, to the rule
 * converter. A folder is its NAME.policy files in byte order of their names;
 * `!include FILE` and `!include-dir DIR` inline a file or a folder at their
 * position; `!include-service SERVICE ARGUMENT FILE` inlines a file in the
 * pre-4.1 format (SOURCE TARGET ACTION[,PARAMS] lines, '$' for '@', nested
 * `!include` or `$include:`) for that one service and argument. Every
 * include path is resolved against the policy folder, as qrexec does, and
 * must stay inside it; include loops, missing files and paths leaving the
 * folder are reported at the FILE:LINE of the directive. Files come from an
 * ImportSource (memory here, the file system in import-fs.c), and each read
 * counts against a byte budget, since a tree can include one file many times.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "import-int.h"
#include "loader.h"
#include "names.h"

#define MAX_DEPTH 16
#define QUBES_POLICY_DIR "/etc/qubes/policy.d"

typedef struct Walker {
    ImportCtx *im;
    const ImportSource *src;
    size_t *budget;
    bool over_budget;
    char *open_keys[MAX_DEPTH + 1]; /* the files being read, outermost first */
    size_t depth;
} Walker;

typedef enum { MODE_RULES, MODE_SERVICE } WalkMode;

static int walk_file(Walker *w, const char *rel, WalkMode mode, const char *service,
                     const char *argument);

static void path_problem(ImportCtx *im, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A problem that belongs to a file or folder rather than to a line. */
static void path_problem(ImportCtx *im, const char *path, const char *fmt, ...)
{
    va_list ap;

    im->stats.problems++;
    fprintf(im->err, "%s: ", path);
    va_start(ap, fmt);
    vfprintf(im->err, fmt, ap);
    va_end(ap);
    fputc('\n', im->err);
}

/* Printable name of REL for messages and comments (malloc'd). */
static char *display_name(const ImportSource *src, const char *rel)
{
    char *s = NULL;

    if (!src->display_root[0])
        s = strdup(rel[0] ? rel : ".");
    else if (!rel[0])
        s = strdup(src->display_root);
    else if (asprintf(&s, "%s/%s", src->display_root, rel) < 0)
        s = NULL;
    if (s)
        import_sanitize(s);
    return s;
}

/*
 * Turn an include path from a policy file into a path relative to the root:
 * relative paths are taken from the root (qrexec resolves them against the
 * policy folder, whichever file they appear in); absolute paths are accepted
 * inside /etc/qubes/policy.d (mapped onto the root, so that a copied tree
 * works) or inside the root itself. Returns 0 and *RELP (malloc'd),
 * -EXDEV when the path leaves the root, -EINVAL or -ENOMEM.
 */
static int resolve_path(const ImportSource *src, const char *untrusted_path, char **relp)
{
    const char *p = untrusted_path;
    size_t len = strlen(QUBES_POLICY_DIR);
    _cleanup_free_ char *rel = NULL;
    size_t n = 0;

    if (!*p)
        return -EINVAL;
    if (p[0] == '/') {
        if (strncmp(p, QUBES_POLICY_DIR, len) == 0 && (p[len] == '/' || !p[len]))
            p += len;
        else if (src->abs_root && strcmp(src->abs_root, "/") == 0)
            p += 1;
        else if (src->abs_root && strncmp(p, src->abs_root, strlen(src->abs_root)) == 0 &&
                 (p[strlen(src->abs_root)] == '/' || !p[strlen(src->abs_root)]))
            p += strlen(src->abs_root);
        else
            return -EXDEV;
    }
    rel = malloc(strlen(p) + 1);
    if (!rel)
        return -ENOMEM;
    /* Lexical normalization: "." and empty components vanish, ".." removes
     * the previous component and may not climb above the root. */
    while (*p) {
        size_t clen = strcspn(p, "/");

        if ((clen == 1 && p[0] == '.') || clen == 0) {
            /* nothing */
        } else if (clen == 2 && p[0] == '.' && p[1] == '.') {
            if (n == 0)
                return -EXDEV;
            while (n > 0 && rel[n - 1] != '/')
                n--;
            if (n > 0)
                n--; /* the '/' before the removed component */
        } else {
            if (n > 0)
                rel[n++] = '/';
            memcpy(rel + n, p, clen);
            n += clen;
        }
        p += clen;
        if (*p == '/')
            p++;
    }
    rel[n] = 0;
    *relp = TAKE_PTR(rel);
    return 0;
}

/* Message for a failed read or listing of an include's target, SHOWN
 * being its printable name. */
static void source_problem(ImportCtx *im, const char *shown, int r)
{
    if (r == -EXDEV)
        import_problem(im, "%s leads out of the policy folder (through a symbolic link)", shown);
    else if (r == -EISDIR)
        import_problem(im, "%s is a folder (!include-dir reads a folder)", shown);
    else if (r == -ENOTDIR)
        import_problem(im, "%s is not a folder", shown);
    else if (r == -EFBIG)
        import_problem(im, "%s is larger than %u bytes", shown, POLICY_FILE_MAX);
    else
        import_problem(im, "cannot read %s: %s", shown, strerror(-r));
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* What qrexec reads from a folder: NAME.policy, NAME not starting with '.'. */
static bool is_policy_name(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && len > 7 && strcmp(name + len - 7, ".policy") == 0;
}

/* Read the folder REL (qrexec's order and name rules). *LIST_ERRORP gets
 * the error of listing it, for the caller to report (0: listed). */
static int walk_folder(Walker *w, const char *rel, int *list_errorp)
{
    char **names = NULL;
    size_t n = 0, kept = 0;
    int r = w->src->list(w->src->ctx, rel, &names, &n);
    bool bad_name = false;

    *list_errorp = r == -ENOMEM ? 0 : r;
    if (r < 0)
        return r == -ENOMEM ? r : 0;
    for (size_t i = 0; i < n; i++) {
        if (is_policy_name(names[i]))
            names[kept++] = names[i];
        else
            free(names[i]);
    }
    n = kept;
    qsort(names, n, sizeof(*names), compare_names);
    /* qrexec refuses the whole policy for one badly named file: say so
     * before converting anything from this folder. */
    for (size_t i = 0; i < n; i++) {
        if (strspn(names[i], "0123456789abcdefghijklmnopqrstuvwxyz_.-") != strlen(names[i])) {
            _cleanup_free_ char *path = NULL;
            _cleanup_free_ char *shown = NULL;

            if (asprintf(&path, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) < 0 ||
                !(shown = display_name(w->src, path))) {
                free_names(names, n);
                return -ENOMEM;
            }
            path_problem(w->im, shown,
                         "invalid file name: qrexec reads only names made of [0-9a-z_.-] "
                         "and refuses the whole policy otherwise");
            bad_name = true;
        }
    }
    for (size_t i = 0; i < n && !bad_name && r >= 0; i++) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) < 0)
            r = -ENOMEM;
        else
            r = walk_file(w, path, MODE_RULES, NULL, NULL);
    }
    free_names(names, n);
    return r;
}

/* Handle a directive line (already split into F[0..N)). */
static int directive(Walker *w, char **f, size_t n, WalkMode mode, const char *service,
                     const char *argument)
{
    ImportCtx *im = w->im;
    char q[VRPC_QUOTE_MAX];
    _cleanup_free_ char *rel = NULL;
    size_t want;
    int r;

    if (strcmp(f[0], "!compat-4.0") == 0 && mode == MODE_RULES) {
        if (n != 1)
            import_problem(im, "!compat-4.0 takes no parameter");
        else
            import_unconvertible(im, "cannot convert !compat-4.0: it reads the R4.0 policy "
                                     "files of /etc/qubes-rpc/policy, which vrpc does not have");
        return 0;
    }
    if (strcmp(f[0], "!include") == 0)
        want = 2;
    else if (mode == MODE_RULES && strcmp(f[0], "!include-dir") == 0)
        want = 2;
    else if (mode == MODE_RULES && strcmp(f[0], "!include-service") == 0)
        want = 4;
    else {
        import_problem(im, "%s %s",
                       mode == MODE_SERVICE ? "invalid directive in an "
                                              "!include-service file (only !include):"
                                            : "unknown directive",
                       vrpc_quote(q, sizeof(q), f[0], strlen(f[0])));
        return 0;
    }
    if (n != want) {
        import_problem(im, "%s takes %s, got %zu word%s", f[0],
                       want == 4 ? "SERVICE ARGUMENT FILE" : "one path", n - 1, n == 2 ? "" : "s");
        return 0;
    }
    if (want == 4 && !import_check_service(im, f[1], f[2]))
        return 0;
    r = resolve_path(w->src, f[n - 1], &rel);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        import_problem(im, "%s %s: %s", f[0], vrpc_quote(q, sizeof(q), f[n - 1], strlen(f[n - 1])),
                       r == -EXDEV ? "the path leaves the policy folder" : "empty path");
        return 0;
    }
    if (strcmp(f[0], "!include-dir") == 0) {
        int list_error = 0;

        r = walk_folder(w, rel, &list_error);
        if (r >= 0 && list_error < 0) {
            _cleanup_free_ char *shown = display_name(w->src, rel);

            if (!shown)
                return -ENOMEM;
            source_problem(im, shown, list_error);
        }
        return r;
    }
    if (want == 4)
        return walk_file(w, rel, MODE_SERVICE, f[1], f[2]);
    return walk_file(w, rel, mode, service, argument);
}

static void split(char *p, char **f, size_t *np, bool *overflowp)
{
    char *save = NULL;

    *np = 0;
    *overflowp = false;
    for (char *tok = strtok_r(p, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (*np == IMPORT_MAX_FIELDS) {
            *overflowp = true;
            return;
        }
        f[(*np)++] = tok;
    }
}

/* qrexec's substitutions for the pre-4.1 format, in place (same lengths). */
static void old_format_substitutions(char *p)
{
    for (char *hit; (hit = strstr(p, "$include:"));)
        memcpy(hit, "!include ", 9);
    for (; *p; p++)
        if (*p == '$')
            *p = '@';
        else if (*p == ',')
            *p = ' ';
}

static int walk_line(Walker *w, char *line, WalkMode mode, const char *service,
                     const char *argument)
{
    ImportCtx *im = w->im;
    char original[IMPORT_MAX_LINE + 1];
    char *f[IMPORT_MAX_FIELDS + 2];
    char *p = line;
    size_t n;
    bool overflow;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == 0)
        return 0;
    import_printable_line(original, sizeof(original), p);
    if (*p == '#') {
        fprintf(im->rules, "  %s\n", original);
        return 0;
    }
    if (mode == MODE_SERVICE)
        old_format_substitutions(p);
    split(p, f + 2, &n, &overflow);
    if (n == 0)
        return 0; /* only separators: "," in the pre-4.1 format */
    if (overflow) {
        import_problem(im, "too many fields (more than %d)", IMPORT_MAX_FIELDS);
        return 0;
    }
    if (f[2][0] == '!') {
        fprintf(im->rules, "  # %s:%u: %s\n", im->file, im->line, original);
        return directive(w, f + 2, n, mode, service, argument);
    }
    if (mode == MODE_RULES) {
        import_convert_rule(im, f + 2, n, original);
        return 0;
    }
    if (n < 3) {
        import_problem(im,
                       "expected SOURCE TARGET ACTION [PARAM=VALUE ...] (the format of an "
                       "!include-service file), got %zu field%s",
                       n, n == 1 ? "" : "s");
        return 0;
    }
    f[0] = (char *)service;
    f[1] = (char *)argument;
    import_convert_rule(im, f, n + 2, original);
    return 0;
}

/* Convert the text of one file. IM's location is saved and restored around
 * it, so that the includer's messages keep their FILE:LINE. */
static int walk_text(Walker *w, const char *display, const char *data, size_t size, WalkMode mode,
                     const char *service, const char *argument)
{
    ImportCtx *im = w->im;
    const char *saved_file = im->file, *saved_via = im->via;
    unsigned saved_line = im->line;
    _cleanup_free_ char *via = NULL;
    size_t off = 0;
    int r = 0;

    if (mode == MODE_SERVICE && asprintf(&via, "%s:%u", saved_file, saved_line) < 0)
        return -ENOMEM;
    if (mode == MODE_SERVICE)
        im->via = via;
    im->file = display;
    im->line = 0;
    fprintf(im->rules, "  # converted from %s%s%s%s%s\n", display, service ? " for " : "",
            service ? service : "", service ? " " : "", argument ? argument : "");
    while (off < size && r >= 0) {
        const char *start = data + off;
        const char *nl = memchr(start, '\n', size - off);
        size_t len = nl ? (size_t)(nl - start) : size - off;
        char *line;

        off += len + (nl ? 1 : 0);
        im->line++;
        if (len > 0 && start[len - 1] == '\r')
            len--;
        if (memchr(start, 0, len)) {
            import_problem(im, "line contains a NUL byte");
            continue;
        }
        if (len > IMPORT_MAX_LINE) {
            import_problem(im, "line longer than %d bytes", IMPORT_MAX_LINE);
            continue;
        }
        line = strndup(start, len);
        if (!line)
            return -ENOMEM;
        r = walk_line(w, line, mode, service, argument);
        free(line);
    }
    im->file = saved_file;
    im->line = saved_line;
    im->via = saved_via;
    return r;
}

static int walk_file(Walker *w, const char *rel, WalkMode mode, const char *service,
                     const char *argument)
{
    ImportCtx *im = w->im;
    _cleanup_free_ char *data = NULL;
    _cleanup_free_ char *key = NULL;
    _cleanup_free_ char *display = NULL;
    size_t size = 0;
    int r;

    if (w->over_budget)
        return 0;
    r = w->src->read(w->src->ctx, rel, &data, &size, &key);
    if (r == -ENOMEM)
        return r;
    display = display_name(w->src, rel);
    if (!display)
        return -ENOMEM;
    if (r < 0) {
        if (w->depth == 0)
            path_problem(im, display, "cannot read: %s", strerror(-r));
        else
            source_problem(im, display, r);
        return 0;
    }
    for (size_t i = 0; i < w->depth; i++)
        if (strcmp(w->open_keys[i], key) == 0) {
            import_problem(im, "include loop: %s is already being read", display);
            return 0;
        }
    if (w->depth > MAX_DEPTH) {
        import_problem(im, "includes nested more than %d deep", MAX_DEPTH);
        return 0;
    }
    if (size > *w->budget) {
        import_problem(im, "the include tree reads more than the limit of %zu bytes in total",
                       *w->budget);
        w->over_budget = true;
        return 0;
    }
    *w->budget -= size;
    w->open_keys[w->depth++] = key;
    r = walk_text(w, display, data, size, mode, service, argument);
    w->depth--;
    return r;
}

int import_walk(ImportCtx *im, const ImportSource *src, const ImportTop *top, size_t *budgetp)
{
    Walker w = {.im = im, .src = src, .budget = budgetp};
    int list_error = 0, r;

    if (top->data) {
        if (top->size > *budgetp) {
            path_problem(im, top->display, "larger than the limit of %zu bytes", *budgetp);
            return 0;
        }
        *budgetp -= top->size;
        return walk_text(&w, top->display, top->data, top->size, MODE_RULES, NULL, NULL);
    }
    if (top->path)
        return walk_file(&w, top->path, MODE_RULES, NULL, NULL);
    r = walk_folder(&w, "", &list_error);
    if (r >= 0 && list_error < 0)
        path_problem(im, src->display_root[0] ? src->display_root : ".", "cannot read folder: %s",
                     strerror(-list_error));
    return r;
}

/* ---- the in-memory source ---- */

typedef struct MemoryTree {
    const VrpcPolicyText *files;
    size_t n;
} MemoryTree;

/* Whether NAME lies inside folder DIR ("" is the root). */
static const char *inside(const char *name, const char *dir)
{
    size_t len = strlen(dir);

    if (!len)
        return name;
    if (strncmp(name, dir, len) == 0 && name[len] == '/')
        return name + len + 1;
    return NULL;
}

static int memory_read(void *ctx, const char *path, char **datap, size_t *sizep, char **keyp)
{
    const MemoryTree *t = ctx;

    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->files[i].name, path) != 0)
            continue;
        *datap = malloc(t->files[i].size + 1);
        *keyp = strdup(path);
        if (!*datap || !*keyp) {
            free(*datap);
            free(*keyp);
            return -ENOMEM;
        }
        memcpy(*datap, t->files[i].data, t->files[i].size);
        *sizep = t->files[i].size;
        return 0;
    }
    for (size_t i = 0; i < t->n; i++)
        if (inside(t->files[i].name, path))
            return -EISDIR;
    return -ENOENT;
}

static int memory_list(void *ctx, const char *path, char ***namesp, size_t *np)
{
    const MemoryTree *t = ctx;
    char **names = calloc(t->n + 1, sizeof(*names));
    bool exists = !path[0];
    size_t n = 0;

    if (!names)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        const char *rest = inside(t->files[i].name, path);

        if (strcmp(t->files[i].name, path) == 0) {
            free_names(names, n);
            return -ENOTDIR;
        }
        if (!rest)
            continue;
        exists = true;
        if (strchr(rest, '/'))
            continue;
        names[n] = strdup(rest);
        if (!names[n]) {
            free_names(names, n);
            return -ENOMEM;
        }
        n++;
    }
    if (!exists) {
        free_names(names, n);
        return -ENOENT;
    }
    *namesp = names;
    *np = n;
    return 0;
}

int policy_import_qubes_memory(const VrpcPolicyText *tree, size_t n_tree, const char *const *top,
                               size_t n_top, const PolicyImportOptions *opts, FILE *out, FILE *err,
                               PolicyImportStats *statsp)
{
    MemoryTree t = {tree, n_tree};
    ImportSource src = {.ctx = &t, .display_root = "", .read = memory_read, .list = memory_list};
    size_t budget = opts && opts->max_bytes ? opts->max_bytes : POLICY_FILE_MAX;
    char *body = NULL;
    size_t body_size = 0;
    ImportCtx im;
    int r = import_begin(&im, opts, err, &body, &body_size);

    if (r < 0)
        return r;
    if (!top)
        r = import_walk(&im, &src, &(ImportTop){0}, &budget);
    for (size_t i = 0; top && i < n_top && r >= 0; i++)
        r = import_walk(&im, &src, &(ImportTop){.path = top[i]}, &budget);
    return import_end(&im, r, &body, &body_size, out, statsp);
}
