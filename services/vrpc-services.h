/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * vrpc-services: find and start service handlers.
 *
 * A services folder (the daemons use ETC/services, default /etc/vrpc/services)
 * holds one entry per service: an executable file or a Unix socket named
 * SERVICE or SERVICE+ARG, and optionally SERVICE.yaml / SERVICE+ARG.yaml with
 * per-service settings. vrpc_service_resolve() validates the (untrusted)
 * names, finds the entry (SERVICE+ARG first, then SERVICE) and parses its
 * configuration; vrpc_service_start() runs it: an executable is spawned with
 * fresh pipes for stdin, stdout and stderr, a socket is connected and sent a
 * one-line descriptor. Nothing here waits for a handler: the daemons watch the
 * returned fds and the pid (vrpc_service_pidfd_open()) in their own loop.
 * docs/services.md describes the rules for service authors.
 *
 * Return conventions: 0 on success, negative errno for system errors, and the
 * positive VRPC_SERVICES_E_* codes below for outcomes the daemon reports to
 * the caller (vrpc_services_error_exit_code() maps them to 125 or 127). Every
 * non-zero return also leaves a one-line, printable reason in the ERR buffer
 * (VRPC_SERVICES_ERROR_MAX bytes) that the daemon may log and send to the
 * caller; it never contains unescaped bytes from the caller.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/names.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VRPC_SERVICES_EXPORT __attribute__((visibility("default")))

/* The default services folder. */
#define VRPC_SERVICES_DEFAULT_DIR "/etc/vrpc/services"
/* Longest service name and argument, in bytes (common/names.h). */
#define VRPC_SERVICES_NAME_MAX VRPC_NAME_MAX
/* Longest user name in a service configuration. */
#define VRPC_SERVICES_USER_MAX VRPC_USER_MAX
/* Largest SERVICE.yaml accepted, in bytes. */
#define VRPC_SERVICES_CONFIG_MAX (64 * 1024)
/* Largest timeout accepted in SERVICE.yaml, in seconds. */
#define VRPC_SERVICES_TIMEOUT_MAX 1000000.0
/* Size of the error buffers. */
#define VRPC_SERVICES_ERROR_MAX 512
/* Longest descriptor line, '\n' included: "SERVICE+ARG SOURCE\n". */
#define VRPC_SERVICES_DESCRIPTOR_MAX (2 * VRPC_SERVICES_NAME_MAX + 2 + VRPC_SERVICES_NAME_MAX + 1)

/* Exit codes the daemons report for calls that never reach a handler. */
#define VRPC_SERVICES_EXIT_FRAMEWORK 125
#define VRPC_SERVICES_EXIT_REFUSED 126
#define VRPC_SERVICES_EXIT_NOT_FOUND 127

enum {
    /* The service or argument can never name a service (bad characters,
     * length, leading '.', or a ".yaml" suffix). Reported as not found. */
    VRPC_SERVICES_E_NAME = 1,
    /* Neither SERVICE+ARG nor SERVICE exists in the folder (127). */
    VRPC_SERVICES_E_NOT_FOUND,
    /* The entry exists but is not an executable regular file or a Unix
     * socket: a folder, a file without x permission, a dangling symlink, a
     * device or a FIFO (125). */
    VRPC_SERVICES_E_KIND,
    /* SERVICE.yaml is invalid; the reason is "FILE:LINE:COL: message" (125). */
    VRPC_SERVICES_E_CONFIG,
    /* The handler cannot run as the requested user: unknown user, or vrpc is
     * not root and the user is not the current one (125). */
    VRPC_SERVICES_E_USER,
    /* The executable could not be started (exec failed, e.g. ENOEXEC) (125). */
    VRPC_SERVICES_E_EXEC,
    /* The socket service refused the connection, its listen queue is full, or
     * the descriptor could not be written at once (125). */
    VRPC_SERVICES_E_CONNECT,
};

typedef enum VrpcServiceKind {
    VRPC_SERVICE_EXECUTABLE = 1,
    VRPC_SERVICE_SOCKET,
} VrpcServiceKind;

/* Settings from SERVICE.yaml; all zero when there is no configuration. The
 * daemons enforce timeout and the exit-on-* flags (see docs/services.md). */
typedef struct VrpcServiceConfig {
    char user[VRPC_SERVICES_USER_MAX + 1]; /* "" when not set */
    bool exit_on_client_eof;
    bool exit_on_service_eof;
    bool skip_service_descriptor;
    double timeout; /* seconds, 0 when not set */
} VrpcServiceConfig;

/* A resolved service; all fields are trusted copies, read-only for callers. */
typedef struct VrpcService {
    VrpcServiceKind kind;
    char service[VRPC_SERVICES_NAME_MAX + 1];
    char argument[VRPC_SERVICES_NAME_MAX + 1]; /* "" for none */
    /* The entry found: "SERVICE+ARG" or "SERVICE". */
    char entry[2 * VRPC_SERVICES_NAME_MAX + 2];
    char *path;        /* services folder + "/" + entry, made absolute */
    char *config_path; /* the configuration file read; NULL for none */
    VrpcServiceConfig config;
} VrpcService;

/* What the daemon knows about one call, for vrpc_service_start(). */
typedef struct VrpcServiceCall {
    /* The calling domain (from the transport): VRPC_REMOTE_DOMAIN and the
     * descriptor. Must be a valid domain name. */
    const char *source;
    /* The target the caller asked for (e.g. "@default", "dom0"):
     * VRPC_REQUESTED_TARGET. NULL is taken as "". */
    const char *requested_target;
    /* Run as this user unless the service configuration names one (the
     * configuration wins, like qrexec's force-user); NULL or "": the daemon's
     * own user. Typically the policy decision's user=. */
    const char *user;
    /* The environment to start from (VRPC_* entries are dropped); NULL: the
     * daemon's environ. */
    char *const *base_env;
    /* The socket of the daemon starting the handler: VRPC_SOCKET, so that calls the
     * handler makes (vrpc-call, libvrpc) reach that daemon. NULL or "": not set (they
     * use the default socket); only an absolute path is passed (a handler runs in /). */
    const char *daemon_socket;
} VrpcServiceCall;

/*
 * A started handler. The fds are the daemon's ends, O_NONBLOCK and
 * O_CLOEXEC; -1 where there is none. Executables: three pipes, pid > 0, the
 * handler leads its own session and process group (pgid == pid). Sockets:
 * stdin_fd and stdout_fd are two descriptors of one connected socket,
 * stderr_fd is -1 and pid is 0.
 */
typedef struct VrpcServiceProcess {
    pid_t pid;
    int stdin_fd;  /* the daemon writes the caller's stdin here */
    int stdout_fd; /* the daemon reads the handler's stdout here */
    int stderr_fd; /* the daemon reads the handler's stderr here */
    bool is_socket;
} VrpcServiceProcess;

/*
 * vrpc_services_validate() - check an untrusted service name and argument
 * (explicit lengths; embedded NULs are rejected). Service: [A-Za-z0-9._-],
 * 1..64 bytes, not starting with '.'. Argument: [A-Za-z0-9._+-], 0..64 bytes
 * (the policy's rule: '+' may appear in it, the first '+' of SERVICE+ARG is
 * the separator). Neither may end in ".yaml". ARGUMENT may be NULL when
 * ARGUMENT_LEN is 0. Returns 0 or VRPC_SERVICES_E_NAME with a reason in ERR
 * (ERR may be NULL).
 */
VRPC_SERVICES_EXPORT int vrpc_services_validate(const char *untrusted_service, size_t service_len,
                                                const char *untrusted_argument, size_t argument_len,
                                                char *err);

/*
 * vrpc_service_resolve() - find SERVICE+ARG, else SERVICE (only SERVICE when
 * the argument is empty) in SERVICES_DIR and read its configuration
 * (SERVICE+ARG.yaml, else SERVICE.yaml). Only the first existing entry is
 * considered: a broken SERVICE+ARG does not fall back to SERVICE. Symlinks in
 * the folder are followed (the folder belongs to the administrator; names
 * from callers can never contain '/').
 * Returns 0 and a new VrpcService in *SERVICEP; VRPC_SERVICES_E_NAME,
 * _NOT_FOUND (also when SERVICES_DIR does not exist), _KIND or _CONFIG with
 * a reason in ERR; -EINVAL (NULL argument), -ENOMEM, or another -errno when
 * the folder cannot be read. *SERVICEP is untouched on error.
 */
VRPC_SERVICES_EXPORT int vrpc_service_resolve(const char *services_dir,
                                              const char *untrusted_service, size_t service_len,
                                              const char *untrusted_argument, size_t argument_len,
                                              VrpcService **servicep, char *err);

/* vrpc_service_free() - free SERVICE; NULL is allowed. Returns NULL. */
VRPC_SERVICES_EXPORT VrpcService *vrpc_service_free(VrpcService *service);

/*
 * vrpc_service_start() - start SERVICE for CALL and fill *PROCP.
 * Executables: spawned without a shell, argv = {SERVICE, ARG} (no ARG when
 * the argument is empty), cwd "/", a new session, default signal dispositions,
 * an empty signal mask, no fds but 0, 1 and 2, and the environment of
 * docs/services.md; as another user (setgroups, setgid, setuid) when one
 * applies. Sockets: connected without blocking, then sent the descriptor
 * unless skip-service-descriptor is set.
 * Returns 0; VRPC_SERVICES_E_USER, _EXEC or _CONNECT with a reason in ERR;
 * -EINVAL (NULL argument, invalid source or requested target), -ENOMEM,
 * -EMFILE and other -errno from creating pipes or the process. On error
 * nothing is left open or running and *PROCP holds pid 0 and fds -1.
 */
VRPC_SERVICES_EXPORT int vrpc_service_start(const VrpcService *service, const VrpcServiceCall *call,
                                            VrpcServiceProcess *procp, char *err);

/*
 * vrpc_services_prepare_pipes() - make the pipes of the next vrpc_service_start() of an
 * executable now, while the daemon has nothing else to do, so that the start does not wait
 * for them. One set is kept (six O_CLOEXEC fds); a no-op when it exists. The next start
 * takes it if it has the pipe size that start gets, else closes it and makes its own.
 * Returns 0 or -errno (-EMFILE, -ENFILE, -ENOMEM) with nothing kept.
 */
VRPC_SERVICES_EXPORT int vrpc_services_prepare_pipes(void);

/*
 * vrpc_services_drop_pipes() - close the set vrpc_services_prepare_pipes() made, if any.
 */
VRPC_SERVICES_EXPORT void vrpc_services_drop_pipes(void);

/*
 * vrpc_services_prepare_signals() - list now, for the next vrpc_service_start() of an
 * executable, the signals whose disposition is not SIG_DFL (handled or ignored), so that its
 * child resets just those instead of every signal, while the caller waits for its exec. The
 * list is used by that one start; a no-op while one is kept. The caller must not change a
 * disposition between this call and that start (else: vrpc_services_drop_signals(), or
 * prepare after the change); a start without a list resets every signal.
 */
VRPC_SERVICES_EXPORT void vrpc_services_prepare_signals(void);

/*
 * vrpc_services_drop_signals() - forget the list vrpc_services_prepare_signals() made.
 */
VRPC_SERVICES_EXPORT void vrpc_services_drop_signals(void);

/*
 * vrpc_service_process_close_stdin() - signal EOF to the handler's stdin: close
 * the pipe, or shut the socket down for writing and close that descriptor.
 * Sets stdin_fd to -1; a no-op when it already is. No error return.
 */
VRPC_SERVICES_EXPORT void vrpc_service_process_close_stdin(VrpcServiceProcess *proc);

/*
 * vrpc_service_process_deinit() - close whatever fds PROC still holds and set
 * them to -1. It neither signals nor reaps the handler. NULL is allowed.
 */
VRPC_SERVICES_EXPORT void vrpc_service_process_deinit(VrpcServiceProcess *proc);

/*
 * vrpc_service_process_kill() - send SIG to the handler's whole process group.
 * Returns 0, -ESRCH when the group is gone, -EINVAL for a socket service
 * (pid 0) or another -errno from kill(2). Do it before reaping the handler so
 * that its pid cannot have been reused.
 */
VRPC_SERVICES_EXPORT int vrpc_service_process_kill(const VrpcServiceProcess *proc, int sig);

/*
 * vrpc_service_pidfd_open() - a pidfd (O_CLOEXEC, poll-able: readable when the
 * handler exits) for PID, race-free as long as PID has not been reaped.
 * Returns the fd, or -ENOSYS on kernels before 5.3 (then watch SIGCHLD with a
 * signalfd and call vrpc_service_reap() for each handler), or another -errno.
 */
VRPC_SERVICES_EXPORT int vrpc_service_pidfd_open(pid_t pid);

/*
 * vrpc_service_reap() - reap PID without blocking. Returns 0 and the handler's
 * exit code (vrpc_service_exit_code()) in *EXIT_CODEP (may be NULL); -EAGAIN
 * when it is still running; -ECHILD or another -errno from waitpid(2).
 */
VRPC_SERVICES_EXPORT int vrpc_service_reap(pid_t pid, int *exit_codep);

/* vrpc_service_exit_code() - a waitpid(2) status as an exit code: the
 * handler's own code, or 128 + the signal that killed it. No error return. */
VRPC_SERVICES_EXPORT int vrpc_service_exit_code(int wait_status);

/* vrpc_services_error_exit_code() - the exit code for a return value of this
 * library: 0 for 0, 127 for VRPC_SERVICES_E_NAME and _NOT_FOUND, 125 for
 * everything else. */
VRPC_SERVICES_EXPORT int vrpc_services_error_exit_code(int r);

/* vrpc_services_strerror() - a short static text for a VRPC_SERVICES_E_*
 * code or a negative errno. Never NULL. */
VRPC_SERVICES_EXPORT const char *vrpc_services_strerror(int r);

/*
 * vrpc_service_descriptor_format() - the descriptor line for a socket service,
 * "SERVICE+ARG SOURCE\n" (the '+' is always there, ARG may be empty), into
 * BUF of SIZE bytes (VRPC_SERVICES_DESCRIPTOR_MAX + 1 is always enough),
 * NUL-terminated. Returns the line length without the NUL, or -EINVAL for an
 * invalid name or source, -ENOBUFS when SIZE is too small.
 */
VRPC_SERVICES_EXPORT int vrpc_service_descriptor_format(const char *service, const char *argument,
                                                        const char *source, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
