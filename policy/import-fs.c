/* SPDX-License-Identifier: MIT */
/*
 * `vrpc-policy import-qubes`, the file-system side: each path the user gives
 * (a policy.d folder, one file, or "-" for standard input) becomes a source
 * rooted at that folder (or the file's folder, or the current one), and the
 * tree walker reads through it. Every file read is resolved with realpath()
 * and must lie inside the root: a symbolic link that leads elsewhere is
 * refused like a "../" path, so that converting a copied tree never reads
 * unrelated files of the machine doing the conversion.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "import-int.h"
#include "loader.h"

typedef struct FsRoot {
    char *abs; /* realpath() of the root folder */
} FsRoot;

/* realpath() of ROOT/REL, which must stay inside ROOT. */
static int fs_resolve(const FsRoot *root, const char *rel, char **realp)
{
    _cleanup_free_ char *joined = NULL;
    char *real;
    size_t len = strlen(root->abs);

    if (asprintf(&joined, "%s/%s", root->abs, rel) < 0)
        return -ENOMEM;
    real = realpath(joined, NULL);
    if (!real)
        return -errno;
    if (strcmp(root->abs, "/") != 0 &&
        !(strncmp(real, root->abs, len) == 0 && (real[len] == '/' || !real[len]))) {
        free(real);
        return -EXDEV;
    }
    *realp = real;
    return 0;
}

/* Read FD (at most POLICY_FILE_MAX bytes) into a malloc'd buffer. */
static int read_all(int fd, char **datap, size_t *sizep)
{
    char *data = NULL;
    size_t size = 0, cap = 0;

    for (;;) {
        ssize_t n;

        if (size == cap) {
            char *bigger;

            if (cap > POLICY_FILE_MAX) {
                free(data);
                return -EFBIG;
            }
            cap = cap ? cap * 2 : 65536;
            bigger = realloc(data, cap);
            if (!bigger) {
                free(data);
                return -ENOMEM;
            }
            data = bigger;
        }
        n = read(fd, data + size, cap - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int r = -errno;

            free(data);
            return r;
        }
        if (n == 0)
            break;
        size += (size_t)n;
    }
    if (size > POLICY_FILE_MAX) {
        free(data);
        return -EFBIG;
    }
    *datap = data;
    *sizep = size;
    return 0;
}

static int fs_read(void *ctx, const char *path, char **datap, size_t *sizep, char **keyp)
{
    _cleanup_free_ char *real = NULL;
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r = fs_resolve(ctx, path, &real);

    if (r < 0)
        return r;
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (st.st_size > (off_t)POLICY_FILE_MAX)
        return -EFBIG;
    r = read_all(fd, datap, sizep);
    if (r < 0)
        return r;
    *keyp = TAKE_PTR(real);
    return 0;
}

static int fs_list(void *ctx, const char *path, char ***namesp, size_t *np)
{
    _cleanup_free_ char *real = NULL;
    _cleanup_closedir_ DIR *d = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int r = fs_resolve(ctx, path, &real);

    if (r < 0)
        return r;
    d = opendir(real);
    if (!d)
        return -errno;
    while ((errno = 0, e = readdir(d))) {
        struct stat st;

        /* Only names the walker may read: skip the rest without a stat. */
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            char **bigger = reallocarray(names, cap ? cap * 2 : 16, sizeof(*names));

            if (!bigger)
                goto nomem;
            names = bigger;
            cap = cap ? cap * 2 : 16;
        }
        names[n] = strdup(e->d_name);
        if (!names[n])
            goto nomem;
        n++;
    }
    if (errno) {
        r = -errno;
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return r;
    }
    *namesp = names;
    *np = n;
    return 0;
nomem:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return -ENOMEM;
}

/* Convert one user-given PATH. Returns 0 (problems are counted) or -ENOMEM. */
static int import_path(ImportCtx *im, const char *path, size_t *budgetp)
{
    _cleanup_free_ char *folder = NULL;
    _cleanup_free_ char *shown = NULL;
    _cleanup_free_ char *stdin_data = NULL;
    FsRoot root = {0};
    ImportSource src = {.ctx = &root, .read = fs_read, .list = fs_list};
    ImportTop top = {0};
    struct stat st;
    size_t len;
    int r;

    shown = strdup(path);
    if (!shown)
        return -ENOMEM;
    import_sanitize(shown);
    if (strcmp(path, "-") == 0) {
        size_t size = 0;

        r = read_all(STDIN_FILENO, &stdin_data, &size);
        if (r == -ENOMEM)
            return r;
        if (r < 0) {
            im->stats.problems++;
            fprintf(im->err, "-: cannot read standard input: %s\n", strerror(-r));
            return 0;
        }
        folder = strdup(".");
        top = (ImportTop){.display = shown, .data = stdin_data ? stdin_data : "", .size = size};
    } else if (stat(path, &st) < 0) {
        im->stats.problems++;
        fprintf(im->err, "%s: cannot read: %s\n", shown, strerror(errno));
        return 0;
    } else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        im->stats.problems++;
        fprintf(im->err, "%s: cannot read: not a file or folder\n", shown);
        return 0;
    } else if (S_ISDIR(st.st_mode)) {
        folder = strdup(path);
        /* "policy.d/" prints as "policy.d/30-user.policy", not "policy.d//..." */
        for (len = folder ? strlen(folder) : 0; len > 1 && folder[len - 1] == '/'; len--)
            folder[len - 1] = 0;
    } else {
        const char *slash = strrchr(path, '/');

        folder = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        top = (ImportTop){.path = slash ? slash + 1 : path, .display = shown};
    }
    if (!folder)
        return -ENOMEM;
    root.abs = realpath(folder, NULL);
    if (!root.abs) {
        r = -errno;
        if (r == -ENOMEM)
            return r;
        im->stats.problems++;
        fprintf(im->err, "%s: cannot resolve %s: %s\n", shown, folder, strerror(-r));
        return 0;
    }
    src.abs_root = root.abs;
    /* Names of files in the folder print as FOLDER/NAME; a folder the user
     * did not name (".") is left out. */
    src.display_root = strcmp(folder, ".") == 0 ? "" : folder;
    import_sanitize(folder);
    r = import_walk(im, &src, &top, budgetp);
    free(root.abs);
    return r;
}

int policy_import_qubes_paths(const char *const *paths, size_t n_paths,
                              const PolicyImportOptions *opts, FILE *out, FILE *err,
                              PolicyImportStats *statsp)
{
    size_t budget = opts && opts->max_bytes ? opts->max_bytes : POLICY_FILE_MAX;
    char *body = NULL;
    size_t body_size = 0;
    ImportCtx im;
    int r = import_begin(&im, opts, err, &body, &body_size);

    if (r < 0)
        return r;
    for (size_t i = 0; i < n_paths && r >= 0; i++)
        r = import_path(&im, paths[i], &budget);
    return import_end(&im, r, &body, &body_size, out, statsp);
}
