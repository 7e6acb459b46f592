/* SPDX-License-Identifier: MIT */
/*
 * Service lookup. The service name and argument come from another domain, so
 * they are validated (explicit lengths, the policy's character rules plus no
 * leading '.' and no ".yaml" suffix) and copied into trusted buffers before
 * any of them reaches the filesystem; after that a name can only ever denote
 * one entry directly inside the services folder. The folder itself and what
 * it holds (symlinks included) belong to the administrator and are trusted.
 * Lookup is a handful of *at() calls on a folder fd, so it never blocks for
 * long and never opens anything that could hang (FIFOs are rejected by type).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/escape.h"
#include "common/names.h"
#include "config.h"
#include "errbuf.h"
#include "vrpc-services.h"

int vrpc_services_validate(const char *untrusted_service, size_t service_len,
                           const char *untrusted_argument, size_t argument_len, char *err)
{
    char q[VRPC_QUOTE_MAX];

    if (!untrusted_service || !vrpc_name_valid_service(untrusted_service, service_len)) {
        services_err(err, "invalid service name %s",
                     untrusted_service ? vrpc_quote(q, sizeof(q), untrusted_service, service_len)
                                       : "(null)");
        return VRPC_SERVICES_E_NAME;
    }
    if (!vrpc_name_can_name_service(untrusted_service, service_len, false)) {
        services_err(err, "service name %s cannot name a service",
                     vrpc_quote(q, sizeof(q), untrusted_service, service_len));
        return VRPC_SERVICES_E_NAME;
    }
    if (argument_len > 0 &&
        (!untrusted_argument || !vrpc_name_valid_argument(untrusted_argument, argument_len))) {
        services_err(err, "invalid service argument %s",
                     untrusted_argument ? vrpc_quote(q, sizeof(q), untrusted_argument, argument_len)
                                        : "(null)");
        return VRPC_SERVICES_E_NAME;
    }
    if (argument_len > 0 && !vrpc_name_can_name_service(untrusted_argument, argument_len, true)) {
        services_err(err, "service argument %s cannot name a service",
                     vrpc_quote(q, sizeof(q), untrusted_argument, argument_len));
        return VRPC_SERVICES_E_NAME;
    }
    return 0;
}

VrpcService *vrpc_service_free(VrpcService *service)
{
    if (!service)
        return NULL;
    free(service->path);
    free(service->config_path);
    free(service);
    return NULL;
}

DEFINE_CLEANUP_FUNC(VrpcService, vrpc_service_free)

/* Classify the entry NAME found by lstat in *ST. Returns 0 with the kind, or
 * VRPC_SERVICES_E_KIND / -errno with a reason. */
static int classify(int dirfd, const char *path, const char *name, struct stat *st,
                    VrpcServiceKind *kindp, char *err)
{
    if (S_ISLNK(st->st_mode)) {
        /* The administrator's link, possibly out of the folder: follow it. */
        if (fstatat(dirfd, name, st, 0) < 0) {
            if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) {
                services_err(err, "%s: dangling symlink", path);
                return VRPC_SERVICES_E_KIND;
            }
            services_err(err, "%s: %s", path, strerror(errno));
            return -errno;
        }
    }
    if (S_ISREG(st->st_mode)) {
        if (!(st->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) {
            services_err(err, "%s: not executable", path);
            return VRPC_SERVICES_E_KIND;
        }
        *kindp = VRPC_SERVICE_EXECUTABLE;
        return 0;
    }
    if (S_ISSOCK(st->st_mode)) {
        *kindp = VRPC_SERVICE_SOCKET;
        return 0;
    }
    services_err(err, "%s: %s", path,
                 S_ISDIR(st->st_mode) ? "is a folder, not an executable or a socket"
                                      : "not an executable file or a Unix socket");
    return VRPC_SERVICES_E_KIND;
}

int vrpc_service_resolve(const char *services_dir, const char *untrusted_service,
                         size_t service_len, const char *untrusted_argument, size_t argument_len,
                         VrpcService **servicep, char *err)
{
    __attribute__((cleanup(vrpc_service_freep))) VrpcService *s = NULL;
    char asked[sizeof(s->entry)];
    _cleanup_close_ int dirfd = -1;
    const char *candidates[2];
    size_t n_candidates;
    struct stat st;
    int r;

    if (!services_dir || !servicep) {
        services_err(err, "invalid arguments");
        return -EINVAL;
    }
    r = vrpc_services_validate(untrusted_service, service_len, untrusted_argument, argument_len,
                               err);
    if (r != 0)
        return r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    /* Validated above: from here on only trusted copies are used. */
    memcpy(s->service, untrusted_service, service_len);
    s->service[service_len] = '\0';
    if (argument_len > 0)
        memcpy(s->argument, untrusted_argument, argument_len);
    s->argument[argument_len] = '\0';

    dirfd = open(services_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            services_err(err, "service %s not found (no services folder %s)", s->service,
                         services_dir);
            return VRPC_SERVICES_E_NOT_FOUND;
        }
        r = -errno;
        services_err(err, "cannot open the services folder %s: %s", services_dir, strerror(-r));
        return r;
    }

    snprintf(asked, sizeof(asked), "%s%s%s", s->service, argument_len ? "+" : "", s->argument);
    candidates[0] = asked;
    candidates[1] = s->service;
    n_candidates = argument_len ? 2 : 1;
    for (size_t i = 0;; i++) {
        if (i == n_candidates) {
            services_err(err, "service %s not found", asked);
            return VRPC_SERVICES_E_NOT_FOUND;
        }
        if (fstatat(dirfd, candidates[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            snprintf(s->entry, sizeof(s->entry), "%s", candidates[i]);
            break;
        }
        if (errno != ENOENT) {
            r = -errno;
            services_err(err, "%s/%s: %s", services_dir, candidates[i], strerror(-r));
            return r;
        }
    }
    /* Absolute, because the handler is started in "/". */
    if (services_dir[0] != '/') {
        _cleanup_free_ char *cwd = get_current_dir_name();

        if (!cwd) {
            r = -errno;
            services_err(err, "cannot find the current folder: %s", strerror(-r));
            return r;
        }
        r = asprintf(&s->path, "%s/%s/%s", cwd, services_dir, s->entry);
    } else {
        r = asprintf(&s->path, "%s/%s", services_dir, s->entry);
    }
    if (r < 0) {
        s->path = NULL;
        return -ENOMEM;
    }
    r = classify(dirfd, s->path, s->entry, &st, &s->kind, err);
    if (r != 0)
        return r;
    /* The configuration follows the name asked for, not the entry found:
     * SERVICE+ARG.yaml may configure a generic SERVICE for one argument. */
    r = service_config_load(dirfd, services_dir, asked, s->service, &s->config, &s->config_path,
                            err);
    if (r != 0)
        return r;
    *servicep = TAKE_PTR(s);
    return 0;
}

int vrpc_services_error_exit_code(int r)
{
    if (r == 0)
        return 0;
    if (r == VRPC_SERVICES_E_NAME || r == VRPC_SERVICES_E_NOT_FOUND)
        return VRPC_SERVICES_EXIT_NOT_FOUND;
    return VRPC_SERVICES_EXIT_FRAMEWORK;
}

const char *vrpc_services_strerror(int r)
{
    switch (r) {
    case 0:
        return "success";
    case VRPC_SERVICES_E_NAME:
        return "invalid service name";
    case VRPC_SERVICES_E_NOT_FOUND:
        return "service not found";
    case VRPC_SERVICES_E_KIND:
        return "service is not an executable or a socket";
    case VRPC_SERVICES_E_CONFIG:
        return "invalid service configuration";
    case VRPC_SERVICES_E_USER:
        return "cannot run the service as the requested user";
    case VRPC_SERVICES_E_EXEC:
        return "cannot execute the service";
    case VRPC_SERVICES_E_CONNECT:
        return "cannot connect to the service socket";
    default:
        return r < 0 ? strerror(-r) : "unknown error";
    }
}
