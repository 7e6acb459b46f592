/* SPDX-License-Identifier: MIT */
/*
 * vrpc.h - the public C API of vrpc (libvrpc.so, pkg-config name "vrpc").
 *
 * Callers: vrpc_call_buffer() makes one blocking call. The streaming API connects once to
 * the local vrpc daemon (a VrpcClient: the agent in a guest, the dispatcher in dom0) and
 * runs any number of calls (VrpcCall) at once on that one connection; it never blocks and
 * fits any event loop: poll vrpc_client_fd() for readability, call vrpc_client_dispatch()
 * when it is readable or when vrpc_client_timeout_ms() expires, and read and write each
 * call's stdout, stderr and stdin with non-blocking functions.
 *
 * Services: a long-running service daemon listens on a Unix socket in the services folder
 * (VrpcServer), accepts one connection per call and reads the descriptor the vrpc daemon
 * writes first (VrpcServerCall), then talks to the caller over that connection.
 *
 * Conventions: functions returning int give 0 (or a count) on success and -errno on
 * failure; objects are freed by *_free(), which accepts NULL and returns NULL. Objects
 * are not thread-safe: use a VrpcClient and its calls from one thread at a time.
 * vrpc_call_buffer() uses a private connection and may run in several threads at once.
 *
 * See docs/api.md and vrpc(3). ABI: symbols are only added within one SONAME
 * (libvrpc.so.0); the layout of the opaque types may change at any time.
 *
 * Changelog of this interface:
 *   v1 (vrpc 0.1, libvrpc.so.0): initial API.
 */
#ifndef VRPC_VRPC_H
#define VRPC_VRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VRPC_EXPORT __attribute__((visibility("default")))
#else
#define VRPC_EXPORT
#endif

/* The interface version of this header (the changelog above). */
#define VRPC_API_VERSION 1

/* Exit codes of the framework (the handler's own codes are 0..255, 128+N for signal N). */
#define VRPC_EXIT_FRAMEWORK 125 /* framework error: no daemon, lost connection, broken service */
#define VRPC_EXIT_REFUSED 126   /* refused by policy (or an unknown target: the same) */
#define VRPC_EXIT_NOT_FOUND 127 /* no such service in the target */

/* Default sockets of the local daemon. */
#define VRPC_AGENT_SOCKET "/run/vrpc/agent.sock"
#define VRPC_DISPATCHER_SOCKET "/run/vrpc/dispatcher.sock"

/* Largest stdout vrpc_call_buffer() collects (64 MiB). */
#define VRPC_CALL_BUFFER_MAX ((size_t)64 << 20)

/* The library's version ("0.1.0"). */
VRPC_EXPORT const char *vrpc_version(void);

/* The socket a caller uses: $VRPC_SOCKET if set and not empty, else VRPC_AGENT_SOCKET if it
 * exists, else VRPC_DISPATCHER_SOCKET. The string is static or the environment's. */
VRPC_EXPORT const char *vrpc_default_socket(void);

/* True if @service is a valid "NAME" or "NAME+ARG" for a call: NAME [A-Za-z0-9._-]{1,64}
 * not starting with '.', ARG [A-Za-z0-9._+-]{0,64} (the first '+' separates them), neither
 * ending in ".yaml" (docs/services.md: such a name never names a service). */
VRPC_EXPORT bool vrpc_service_valid(const char *service);

/* True if @target is a valid target: [A-Za-z0-9._:@-]{1,64} ("dom0", "work", "@default",
 * "@dispvm:work"...). */
VRPC_EXPORT bool vrpc_target_valid(const char *target);

/* ---- blocking ------------------------------------------------------------------------------ */

/*
 * Calls SERVICE ("NAME" or "NAME+ARG") in TARGET (a domain name, "dom0", "@default", ...),
 * sending IN (IN_LEN bytes, then EOF; IN may be NULL when IN_LEN is 0). On return *OUT
 * (malloc'd, NUL-terminated after *OUT_LEN bytes, caller frees) holds the handler's stdout,
 * *EXIT_CODE its exit status (128+N if signal N killed it) or 125/126/127 as vrpc-call(1)
 * documents. The handler's stderr is discarded (use the streaming API to get it). Uses the
 * socket of vrpc_default_socket(). OUT_LEN may be NULL.
 * Returns 0, or -errno when no call could be made, then *OUT is NULL and *EXIT_CODE 125:
 * -EINVAL (bad arguments or names), -ENOENT / -ECONNREFUSED / -EACCES (no daemon at the
 * socket), -EFBIG (stdout exceeded VRPC_CALL_BUFFER_MAX; the call was cancelled), -ENOMEM.
 */
VRPC_EXPORT int vrpc_call_buffer(const char *target, const char *service, const void *in,
                                 size_t in_len, char **out, size_t *out_len, int *exit_code);

/* ---- streaming: the connection -------------------------------------------------------------- */

typedef struct VrpcClient VrpcClient;
typedef struct VrpcCall VrpcCall;

/* The byte channels of a call, as seen by the caller. */
typedef enum VrpcChannel {
    VRPC_STDIN = 0,  /* we write it: the handler's stdin */
    VRPC_STDOUT = 1, /* we read it */
    VRPC_STDERR = 2, /* we read it */
} VrpcChannel;

/*
 * Connect to the local vrpc daemon at @socket_path (NULL or "": vrpc_default_socket()).
 * The connect does not wait for the daemon to answer; calls may be opened at once.
 * Returns 0 and sets *@clientp, or -ENAMETOOLONG, -errno of connect(2) (-ENOENT,
 * -ECONNREFUSED, -EACCES: no daemon there), -ENOMEM, -EMFILE.
 */
VRPC_EXPORT int vrpc_client_new(VrpcClient **clientp, const char *socket_path);

/* Close the connection. Every call still open is cancelled and ends (exit 125, reason
 * "client freed"); its VrpcCall stays valid until vrpc_call_free(). Not from a notify
 * callback. Accepts NULL. Returns NULL. */
VRPC_EXPORT VrpcClient *vrpc_client_free(VrpcClient *client);

/* The fd to watch for readability (POLLIN / EPOLLIN, level-triggered). It stays the same
 * for the life of the client; there is never a need to watch for writability. */
VRPC_EXPORT int vrpc_client_fd(const VrpcClient *client);

/* Milliseconds after which vrpc_client_dispatch() must run even if the fd stayed quiet
 * (0: now), or -1 if no timer is pending. */
VRPC_EXPORT int vrpc_client_timeout_ms(const VrpcClient *client);

/*
 * Do all pending work without blocking: send and receive, then run the notify callbacks of
 * the calls that changed. Returns 0 while connected, -ENOTCONN once the connection to the
 * daemon is gone (then every call has ended with 125 and its reason).
 */
VRPC_EXPORT int vrpc_client_dispatch(VrpcClient *client);

/* Block up to @timeout_ms (-1: no limit) until the fd is readable or a timer is due, then
 * dispatch. For programs without an event loop of their own. Returns as
 * vrpc_client_dispatch() (at once -ENOTCONN when the connection is gone and nothing is
 * pending), or -errno of poll(2). */
VRPC_EXPORT int vrpc_client_wait(VrpcClient *client, int timeout_ms);

/* ---- streaming: calls ------------------------------------------------------------------------ */

/*
 * Open a call of @service ("NAME" or "NAME+ARG") in @target on @client. Stdin may be
 * written once the daemon's greeting is in (the call's first notify; before it,
 * vrpc_call_write() returns -EAGAIN). Returns 0 and sets *@callp, or -EINVAL (a name
 * breaks the rules of vrpc-call(1)), -ENOTCONN (the connection is gone), -EBUSY (as many
 * calls open as the daemon allows), -ENOMEM.
 */
VRPC_EXPORT int vrpc_call_open(VrpcClient *client, const char *target, const char *service,
                               VrpcCall **callp);

/* Called from vrpc_client_dispatch() when @call has news: output to read, an EOF, room to
 * write stdin again, or its end. Any API call is allowed inside, including
 * vrpc_call_free(@call), but not vrpc_client_free(). */
typedef void (*VrpcNotifyFn)(VrpcCall *call, void *userdata);
VRPC_EXPORT void vrpc_call_set_notify(VrpcCall *call, VrpcNotifyFn fn, void *userdata);
VRPC_EXPORT void *vrpc_call_get_userdata(const VrpcCall *call);

/*
 * Write stdin bytes. Returns the number accepted (1..@len; 0 for @len 0), -EAGAIN when the
 * handler's window is full (the notify callback fires when there is room again), -EPIPE
 * (stdin closed, or the handler no longer reads it: stop writing), -ENOTCONN (the call ended).
 */
VRPC_EXPORT ssize_t vrpc_call_write(VrpcCall *call, const void *buf, size_t len);

/* How many bytes vrpc_call_write() would accept now: > 0, 0 (full: the notify callback fires
 * when there is room), or -errno as vrpc_call_write(). */
VRPC_EXPORT ssize_t vrpc_call_write_space(VrpcCall *call);

/* Half-close stdin: the handler reads EOF once the bytes written before have arrived.
 * Idempotent. Returns 0, or -ENOTCONN (the call ended; nothing to close). */
VRPC_EXPORT int vrpc_call_close_stdin(VrpcCall *call);

/*
 * Read from VRPC_STDOUT or VRPC_STDERR. Returns the bytes copied (> 0), 0 at the channel's
 * EOF, -EAGAIN (nothing yet; the notify callback fires when there is), -EINVAL (bad
 * channel). Each channel buffers at most 64 KiB; beyond that the handler is held back
 * (on both channels), so read both channels, as with pipes. Data that arrived before the
 * call ended is still readable after it ended.
 */
VRPC_EXPORT ssize_t vrpc_call_read(VrpcCall *call, VrpcChannel ch, void *buf, size_t len);

/* True once the call has ended (its exit code is known). Output may still be buffered. */
VRPC_EXPORT bool vrpc_call_done(const VrpcCall *call);

/* The exit code once the call ended: the handler's status, 128+N for signal N, or 125,
 * 126, 127. Returns 0 and sets *@exit_codep, or -EAGAIN while the call runs. */
VRPC_EXPORT int vrpc_call_exit_code(const VrpcCall *call, int *exit_codep);

/* A one-line reason when the framework ended or refused the call (as vrpc-call prints it
 * after "vrpc-call: "), e.g. "test.Denied to vault refused"; NULL if there is none (the
 * handler exited on its own, or the call still runs). Valid until vrpc_call_free(). */
VRPC_EXPORT const char *vrpc_call_reason(const VrpcCall *call);

/* Abort the call: the handler is stopped, buffered output is dropped and the call ends
 * with 125 and @reason (NULL: "call cancelled"). Returns 0, or -EALREADY (already ended). */
VRPC_EXPORT int vrpc_call_cancel(VrpcCall *call, const char *reason);

/* Free the call (cancelling it if it still runs). Accepts NULL. Returns NULL. */
VRPC_EXPORT VrpcCall *vrpc_call_free(VrpcCall *call);

/* ---- services: socket servers ----------------------------------------------------------------- */

typedef struct VrpcServer VrpcServer;
typedef struct VrpcServerCall VrpcServerCall;

/* Longest descriptor line the daemons write, newline included. */
#define VRPC_DESCRIPTOR_MAX 195

/*
 * Listen for calls on the Unix socket @path (usually /etc/vrpc/services/NAME), created with
 * permissions @mode (0600 or 0660 is right: whoever can connect can claim any source). A
 * stale socket file is replaced, a live one is an error (found by connecting to it: that
 * server's vrpc_server_accept() drops the probe with -EPROTO). The fd is non-blocking.
 * Returns 0 and sets *@serverp, or -EADDRINUSE (another server listens there),
 * -ENAMETOOLONG, -ENOMEM, -errno of socket/bind/listen.
 */
VRPC_EXPORT int vrpc_server_listen(VrpcServer **serverp, const char *path, mode_t mode);

/* Serve on an fd that already listens (e.g. from systemd socket activation); the server
 * owns it from now on and makes it non-blocking. Returns 0, -EINVAL, -ENOMEM. */
VRPC_EXPORT int vrpc_server_new_fd(VrpcServer **serverp, int listen_fd);

/* Close the listening socket (and remove its file if vrpc_server_listen created it).
 * Accepted calls stay valid. Accepts NULL. Returns NULL. */
VRPC_EXPORT VrpcServer *vrpc_server_free(VrpcServer *server);

/* The listening fd: readable when a call waits to be accepted. */
VRPC_EXPORT int vrpc_server_fd(const VrpcServer *server);

/*
 * Accept one call and read its descriptor, waiting at most @timeout_ms for it (-1: no limit;
 * 0: only if it is there already: the daemons write it before the first byte of the
 * caller's stdin, right after connecting). Returns 0 and sets *@callp, -EAGAIN (no call
 * waiting, or its descriptor not complete within @timeout_ms: the connection was dropped),
 * -EPROTO (the descriptor is malformed or missing: the connection was dropped),
 * -ENOMEM, -errno of accept4(2).
 */
VRPC_EXPORT int vrpc_server_accept(VrpcServer *server, int timeout_ms, VrpcServerCall **callp);

/*
 * The same for an fd that is already connected (e.g. from an Accept=yes systemd socket, or
 * inetd style on fd 0): reads the descriptor from @fd, which the call then owns. Returns 0,
 * -EAGAIN, -EPROTO (then @fd is closed), -ENOMEM.
 */
VRPC_EXPORT int vrpc_server_call_from_fd(int fd, int timeout_ms, VrpcServerCall **callp);

/* The connection to the caller (non-blocking): read the caller's stdin (EOF when the caller
 * closed it), write what the caller gets as stdout. Socket services have no stderr and no
 * exit code: the call ends with status 0 when the connection is closed. */
VRPC_EXPORT int vrpc_server_call_fd(const VrpcServerCall *call);

/* The calling domain: written by the vrpc daemon from the transport the call came on, never
 * taken from the caller's message. Trustworthy as far as the socket's permissions keep
 * everyone but the daemon out. */
VRPC_EXPORT const char *vrpc_server_call_source(const VrpcServerCall *call);

/* The service name the call was routed by (the entry in the services folder, or the NAME
 * part when NAME+ARG named this socket). Checked by the daemon against the folder. */
VRPC_EXPORT const char *vrpc_server_call_service(const VrpcServerCall *call);

/* The caller's argument (the text after '+', "" if none). It comes from another domain:
 * only its charset [A-Za-z0-9._+-]{0,64} is guaranteed. Validate it before use; never
 * pass it to a shell or use it as a path or an option. */
VRPC_EXPORT const char *vrpc_server_call_untrusted_argument(const VrpcServerCall *call);

/* End the call: closes the connection (the caller gets EOF on stdout and status 0).
 * Accepts NULL. Returns NULL. */
VRPC_EXPORT VrpcServerCall *vrpc_server_call_free(VrpcServerCall *call);

#ifdef __cplusplus
}
#endif

#endif
