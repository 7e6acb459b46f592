/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to import-qubes: the conversion state shared by the rule converter
 * (import-qubes.c), the tree walker that resolves qrexec's include directives
 * (import-tree.c) and the file-system source (import-fs.c).
 */

#include <stdbool.h>
#include <stdio.h>

#include "import-qubes.h"

#define IMPORT_MAX_FIELDS 16
#define IMPORT_MAX_LINE 4096

typedef struct ImportCtx {
    FILE *rules; /* converted YAML body, kept until we know there was no problem */
    FILE *err;
    bool skip_unconvertible;
    const char *file; /* printable name of the file being read */
    unsigned line;
    const char *via; /* printable "FILE:LINE" of the !include-service line, or NULL */
    PolicyImportStats stats;
} ImportCtx;

/*
 * ImportSource - where the tree walker reads files. Paths given to the
 * callbacks are relative to the source's root folder and already normalized
 * (no "", "." or ".." component, no leading '/'; "" is the root itself).
 */
typedef struct ImportSource {
    void *ctx;
    /* Prefix of printable file names ("" for none; no trailing '/'). */
    const char *display_root;
    /* The root folder as an absolute, resolved path, so that an absolute
     * include path inside it can be accepted; NULL: none (in memory). */
    const char *abs_root;
    /* Read the regular file PATH. *keyp (malloc'd) names the file so that two
     * ways to reach it compare equal. Returns 0, -ENOENT, -EISDIR, -EXDEV (a
     * symbolic link leads out of the root), -EFBIG or another -errno. */
    int (*read)(void *ctx, const char *path, char **datap, size_t *sizep, char **keyp);
    /* List the names of the regular files in the folder PATH (any order).
     * Returns 0, -ENOENT, -ENOTDIR, -EXDEV or another -errno. */
    int (*list)(void *ctx, const char *path, char ***namesp, size_t *np);
} ImportSource;

/* Report a problem at the current FILE:LINE; it makes the conversion fail. */
void import_problem(ImportCtx *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report a line that vrpc cannot express (WHY): a problem in strict mode,
 * else the line is skipped and reported as such. */
void import_unconvertible(ImportCtx *im, const char *why);

/* Replace every byte that is not printable ASCII by '?'. */
void import_sanitize(char *s);

/* Copy a line for comments: leading blanks removed, printable. */
void import_printable_line(char *buf, size_t size, const char *line);

/* Check a SERVICE ARGUMENT pair as qrexec does (a rule's first two columns,
 * or an !include-service line's). Reports problems; returns whether valid. */
bool import_check_service(ImportCtx *im, const char *service, const char *argument);

/* Convert one rule, F[0..N) = SERVICE ARGUMENT SOURCE TARGET ACTION [K=V...];
 * ORIGINAL is the printable source line for the origin comment. */
void import_convert_rule(ImportCtx *im, char **f, size_t n, const char *original);

/* One top-level input of import_walk(). */
typedef struct ImportTop {
    const char *path;    /* relative to the source's root; NULL: the root folder */
    const char *display; /* printable name instead of the one from the root, or NULL */
    const char *data;    /* its text when already read (standard input), else NULL */
    size_t size;
} ImportTop;

/* Convert TOP from SRC into IM, resolving includes with qrexec's rules.
 * *BUDGETP is the number of bytes still allowed to be read. Returns 0
 * (problems are counted in IM) or -ENOMEM. */
int import_walk(ImportCtx *im, const ImportSource *src, const ImportTop *top, size_t *budgetp);

/* Start a conversion: IM writes its YAML body into *BODYP (see
 * open_memstream()). Returns 0 or -ENOMEM. */
int import_begin(ImportCtx *im, const PolicyImportOptions *opts, FILE *err, char **bodyp,
                 size_t *body_sizep);

/* End it: close the body, write the whole YAML to OUT when there was no
 * problem, free the body, copy the counters to STATSP (may be NULL). R is the
 * walk's result so far. Returns the number of problems, or -ENOMEM / -EIO. */
int import_end(ImportCtx *im, int r, char **bodyp, size_t *body_sizep, FILE *out,
               PolicyImportStats *statsp);
