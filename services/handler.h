/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * handler.h - vrpc_handler: run a resolved service for one incoming call and bridge it to its
 * librpc stream. Shared by vrpc-agent (guest services) and vrpc-dispatcher (dom0 services).
 *
 * Given an RpcStream we are the HANDLER of (from on_call, not yet answered), a VrpcService
 * from vrpc_service_resolve() and what the daemon knows about the call, vrpc_handler_start()
 * spawns the handler (vrpc_service_start()), accepts the stream and then, on the daemon's
 * RpcLoop, moves bytes both ways:
 *   - stream STDIN -> handler stdin: written non-blocking; on_data consumes only the bytes
 *     the pipe took (their credit goes back to the caller); the rest is re-delivered with
 *     rpc_stream_resume() once the pipe is writable again. Stdin EOF closes the pipe.
 *   - handler stdout/stderr -> stream: read only while rpc_stream_send_window() > 0;
 *     reading resumes from on_writable (backpressure reaches the handler's pipes).
 *   - when the handler exits (pidfd): stop feeding stdin, drain stdout and stderr to EOF,
 *     then send EXIT with its code or 128+signal. A socket service (pid 0) ends with exit 0
 *     once the server closes its side (stdout EOF).
 *   - service config: timeout => SIGKILL of the handler's process group and EXIT 125 with
 *     reason "vrpc: SERVICE timed out after N s"; exit-on-client-eof => on stdin EOF the call
 *     ends at once with EXIT 0 and the handler group gets SIGTERM; exit-on-service-eof => on
 *     stdout EOF the call ends at once (stderr not yet read is dropped) with the handler's
 *     code if it has already been reaped, else 0, and the handler group gets SIGTERM.
 *   - vrpc_handler_set_new() sets SIGPIPE to SIG_IGN (a handler closing its stdin must not
 *     kill the daemon); handlers start with default dispositions anyway.
 *   - the set keeps the pipes of the next executable's start made ahead (six fds, remade
 *     before the loop sleeps; vrpc_services_prepare_pipes()): a start does not wait for them.
 *   - stream reset (by the caller, the library, or the connection closing) => SIGKILL of the
 *     handler's process group; the handler is reaped in the background.
 *
 * Callbacks: vrpc_handler_start() gives the stream its own callbacks (rpc_stream_set_ops) with
 * the handler as its userdata, so the daemon's connection callbacks never see its events. A
 * stream passed to vrpc_handler_start() must not have ops or userdata of its own yet.
 *
 * Lifetime: every handler belongs to a VrpcHandlerSet (one per daemon, bound to its loop).
 * A handler frees itself once its stream is gone and its process is reaped. The completion
 * callback runs once per started handler: when EXIT was sent, or when the stream was
 * aborted. vrpc_handler_set_free() ends everything still running (SIGKILL, blocking reap),
 * without callbacks: call it at shutdown, before rpc_loop_free(), after or before freeing
 * the connections (both orders work).
 *
 * Threading: single-threaded, like the loop.
 */

#include <stdbool.h>
#include <stdint.h>

#include "librpc/loop.h"
#include "librpc/rpc.h"
#include "vrpc-services.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct VrpcHandler VrpcHandler;
typedef struct VrpcHandlerSet VrpcHandlerSet;

/* How a call ended, for the completion callback (audit logs, counters). */
typedef struct VrpcHandlerResult {
    /* The exit code sent in EXIT (handler's code, 128+signal, 125 on timeout or a framework
     * failure), or -1 when the stream was aborted (reset, connection closed). */
    int exit_code;
    /* True when the stream was aborted instead of completing. */
    bool aborted;
    /* True when the service's timeout ended the call. */
    bool timed_out;
    /* Microseconds from vrpc_handler_start() to the spawn returning, and to the first byte
     * of stdout/stderr sent (-1: none was). */
    int64_t spawn_us;
    int64_t first_byte_us;
    /* Microseconds from vrpc_handler_start() to the end. */
    int64_t duration_us;
    /* Bytes moved: caller -> handler stdin, handler stdout/stderr -> caller. */
    uint64_t stdin_bytes, stdout_bytes, stderr_bytes;
} VrpcHandlerResult;

/* Called once per handler when its call ends. @h is still valid during the call; do not
 * free it (it frees itself). Its stream may already be gone. */
typedef void (*VrpcHandlerDoneFn)(VrpcHandler *h, const VrpcHandlerResult *result, void *userdata);

/* What the daemon knows about the call. Strings are copied; NULL means "". */
typedef struct VrpcHandlerCall {
    /* The calling domain (from the transport, trusted): VRPC_REMOTE_DOMAIN. Required. */
    const char *source;
    /* The target the caller named: VRPC_REQUESTED_TARGET. */
    const char *requested_target;
    /* Run as this user unless the service config names one (e.g. policy's user=). */
    const char *user;
    /* The environment the handler starts from (VRPC_* dropped); NULL: the daemon's. */
    char *const *base_env;
    /* The socket of the daemon starting the handler: VRPC_SOCKET, so that the handler's
     * own calls (vrpc-call, libvrpc) reach it. NULL or "": not set. */
    const char *daemon_socket;
} VrpcHandlerCall;

/* Create the set of handlers of a daemon, bound to @loop. Returns 0 and sets *@setp, or
 * -EINVAL, -ENOMEM. */
int vrpc_handler_set_new(VrpcHandlerSet **setp, RpcLoop *loop);

/* Kill (SIGKILL to the process group) and reap every handler still running, blocking until
 * each is reaped; reset the streams still attached (RPC_RESET_CANCEL) and detach from them;
 * no completion callbacks. Accepts NULL. Returns NULL. */
VrpcHandlerSet *vrpc_handler_set_free(VrpcHandlerSet *set);

/* Handlers alive in the set (running or not yet reaped). */
size_t vrpc_handler_set_count(const VrpcHandlerSet *set);

/*
 * Start @service for the call on @s (we are HANDLER, not yet answered) and bridge it.
 * On success the stream is accepted, its userdata is the handler, *@hp (may be NULL) is set,
 * and @done (may be NULL) will be called once. On failure the stream is REFUSED (exit code
 * vrpc_services_error_exit_code(r), i.e. 125 or 127, with the reason in @err), nothing is
 * left running, and @done is not called.
 * Returns 0; VRPC_SERVICES_E_* (positive) with a reason in @err (VRPC_SERVICES_ERROR_MAX
 * bytes, may be NULL); -EINVAL (NULL argument, invalid source, @s not a fresh handler
 * stream), -ENOMEM, -EMFILE or another -errno (the stream is refused with 125 then too).
 */
int vrpc_handler_start(VrpcHandlerSet *set, RpcStream *s, const VrpcService *service,
                       const VrpcHandlerCall *call, VrpcHandlerDoneFn done, void *userdata,
                       VrpcHandler **hp, char *err);

/* One call to a service of a services folder, for vrpc_handler_serve(). */
typedef struct VrpcHandlerRequest {
    const char *services_dir;
    /* The service and argument asked for (validated by vrpc_service_resolve()); argument
     * NULL means none. */
    const char *service;
    const char *argument;
    /* Named in the not-found refusal: "vrpc: SERVICE+ARG not found in WHERE". */
    const char *where;
    VrpcHandlerCall call;
} VrpcHandlerRequest;

/* Why vrpc_handler_serve() refused a call, for the daemon's log and audit. */
typedef struct VrpcHandlerRefusal {
    int code;     /* the exit code of the REFUSE sent: 125 or 127 */
    bool started; /* the service was found; starting it failed */
    /* The entry found ("SERVICE+ARG" or "SERVICE"; "" when not found), and the reason
     * (from the services library, or strerror of a system error). */
    char entry[2 * VRPC_SERVICES_NAME_MAX + 2];
    char detail[VRPC_SERVICES_ERROR_MAX];
} VrpcHandlerRefusal;

/*
 * Resolve @req's service in its services folder and start it for the call on @s (we are
 * HANDLER, not yet answered) with vrpc_handler_start(): the one way both daemons serve a
 * call locally. When the service cannot be resolved the stream is refused with
 * vrpc_services_error_exit_code() and "vrpc: SERVICE+ARG not found in WHERE" (127) or
 * "vrpc: REASON" (125); when it cannot be started vrpc_handler_start() refuses it.
 * @resolve_usp (may be NULL) receives the microseconds spent resolving, before the
 * handler's own clock (VrpcHandlerResult) starts.
 * Returns 0 (started: @done, @userdata and *@hp as for vrpc_handler_start()), or the
 * non-zero return of vrpc_service_resolve() or vrpc_handler_start() (VRPC_SERVICES_E_* or
 * -errno) with @refusal (may be NULL) filled; the stream is refused then.
 */
int vrpc_handler_serve(VrpcHandlerSet *set, RpcStream *s, const VrpcHandlerRequest *req,
                       VrpcHandlerDoneFn done, void *userdata, VrpcHandler **hp,
                       int64_t *resolve_usp, VrpcHandlerRefusal *refusal);

/* Cancel the call: SIGKILL to the handler's group, RESET of the stream with
 * RPC_RESET_CANCEL and @reason; @done is called (aborted). No-op once the call ended. */
void vrpc_handler_cancel(VrpcHandler *h, const char *reason);

/* The handler's pid (0 for a socket service or once reaped). */
pid_t vrpc_handler_pid(const VrpcHandler *h);

/* The service's entry name ("SERVICE+ARG" or "SERVICE"), for logs. */
const char *vrpc_handler_service(const VrpcHandler *h);

#ifdef __cplusplus
}
#endif
