/* SPDX-License-Identifier: MIT */
/*
 * loop.h - librpc's small epoll event loop, shared by vrpc-agent and vrpc-dispatcher.
 *
 * One RpcLoop owns an epoll fd. Sources are fds (with an epoll event mask), one-shot
 * monotonic timers (milliseconds, re-armable), signals (through one signalfd; the signals
 * are blocked in the calling thread) and deferred callbacks (run once at the start of the
 * next iteration, before polling). Every source is an RpcLoopSource handle owned by the
 * caller: rpc_loop_source_free() removes it, and is safe inside any callback, including the
 * source's own (a freed source's pending events are dropped). rpc_conn_attach() (rpc.h)
 * registers a connection's fd and timer.
 *
 * Not thread-safe: use a loop from one thread.
 *
 * Changelog of this interface:
 *   v1 (vrpc 0.1): initial API.
 *   v1.1: rpc_loop_add_prepare().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct RpcLoopSource RpcLoopSource;

/* @events: the epoll events that fired (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR...). */
typedef void (*RpcLoopFdFn)(RpcLoopSource *src, int fd, uint32_t events, void *userdata);
/* A timer expired (it is now disarmed; re-arm with rpc_loop_timer_set()). */
typedef void (*RpcLoopTimerFn)(RpcLoopSource *src, void *userdata);
/* A signal arrived; @si as read from the signalfd (ssi_signo, ssi_pid...). Several
 * deliveries of one signal may merge into one (reap children in a loop on SIGCHLD). */
typedef void (*RpcLoopSignalFn)(RpcLoopSource *src, const struct signalfd_siginfo *si,
                                void *userdata);
/* A deferred callback runs once, at the start of the next iteration. */
typedef void (*RpcLoopDeferFn)(RpcLoopSource *src, void *userdata);
/* A prepare callback runs before every poll of the loop. When @will_sleep, the loop is about
 * to sleep: arm whatever wake-up the source needs. Either way, look for work that no fd
 * would report and do it: return > 0 if there was some (then the loop does not sleep in
 * that iteration), 0 otherwise. */
typedef int (*RpcLoopPrepareFn)(RpcLoopSource *src, bool will_sleep, void *userdata);

/* Create a loop. Returns 0 and sets *@loopp, or -ENOMEM / -errno of epoll_create1(). */
RPC_EXPORT int rpc_loop_new(RpcLoop **loopp);

/* Free the loop and every source still registered (their handles become invalid; no
 * callbacks are called). Unblocks the signals it blocked. Accepts NULL. Returns NULL. */
RPC_EXPORT RpcLoop *rpc_loop_free(RpcLoop *loop);
RPC_EXPORT void rpc_loop_freep(RpcLoop **loopp);

/* Watch @fd (not owned; remove the source before closing it) for @events (EPOLLIN,
 * EPOLLOUT, ...; level-triggered). Returns 0 and sets *@srcp, or -EEXIST (fd already
 * watched by this loop), -EINVAL, -ENOMEM, -errno of epoll_ctl(). */
RPC_EXPORT int rpc_loop_add_fd(RpcLoop *loop, int fd, uint32_t events, RpcLoopFdFn fn,
                               void *userdata, RpcLoopSource **srcp);

/* Change the events of an fd source (0 = watch nothing for now). Returns 0, -EINVAL (not an
 * fd source) or -errno of epoll_ctl(). Cheap when unchanged. */
RPC_EXPORT int rpc_loop_fd_set_events(RpcLoopSource *src, uint32_t events);

/* A one-shot timer firing @delay_ms from now (-1: created disarmed). Returns 0 and sets
 * *@srcp, or -ENOMEM. */
RPC_EXPORT int rpc_loop_add_timer(RpcLoop *loop, int64_t delay_ms, RpcLoopTimerFn fn,
                                  void *userdata, RpcLoopSource **srcp);

/* (Re-)arm a timer @delay_ms from now (0: next iteration), or disarm it (-1).
 * Returns 0 or -EINVAL (not a timer source). */
RPC_EXPORT int rpc_loop_timer_set(RpcLoopSource *src, int64_t delay_ms);

/* Handle signal @signo (e.g. SIGTERM, SIGCHLD, SIGHUP) through the loop's signalfd; the
 * signal is blocked in the calling thread. One source per signal. Returns 0 and sets *@srcp
 * (@srcp may be NULL: the source then lives until the loop is freed), or -EEXIST (already
 * handled), -EINVAL (bad signo), -ENOMEM, -errno. */
RPC_EXPORT int rpc_loop_add_signal(RpcLoop *loop, int signo, RpcLoopSignalFn fn, void *userdata,
                                   RpcLoopSource **srcp);

/* Run @fn once at the start of the next iteration (the source is then inert until
 * rpc_loop_defer_again() or freed). Returns 0 and sets *@srcp, or -ENOMEM. @srcp may be
 * NULL: then the source frees itself after running. */
RPC_EXPORT int rpc_loop_add_defer(RpcLoop *loop, RpcLoopDeferFn fn, void *userdata,
                                  RpcLoopSource **srcp);
/* Schedule a deferred source again. Returns 0 or -EINVAL (not a defer source). */
RPC_EXPORT int rpc_loop_defer_again(RpcLoopSource *src);

/* Call @fn before every poll of the loop, after the deferred callbacks, with will_sleep true
 * when the poll may block. For fds whose readiness must be requested first, like a vchan's
 * (vchan_data_ready_notify()): armed only before a sleep, and looked at without arming
 * while the loop is busy, so that a busy loop never leaves such a source unserved. Returns 0
 * and sets *@srcp, or -EINVAL, -ENOMEM. */
RPC_EXPORT int rpc_loop_add_prepare(RpcLoop *loop, RpcLoopPrepareFn fn, void *userdata,
                                    RpcLoopSource **srcp);

/* Remove and free a source. Safe inside callbacks. Accepts NULL. Returns NULL. */
RPC_EXPORT RpcLoopSource *rpc_loop_source_free(RpcLoopSource *src);
RPC_EXPORT void rpc_loop_source_freep(RpcLoopSource **srcp);

RPC_EXPORT RpcLoop *rpc_loop_source_loop(const RpcLoopSource *src);

/* Monotonic time in milliseconds (CLOCK_MONOTONIC), as the timers use it. */
RPC_EXPORT int64_t rpc_loop_now_ms(void);

/* One iteration: run deferred callbacks, then the prepare callbacks; wait up to @timeout_ms
 * (-1: until something happens; capped by the nearest timer; 0 when deferred work is pending
 * or a prepare callback did work), dispatch fd, signal and timer events. Returns the number
 * of callbacks run (>= 0), or -errno of epoll_wait() (-EINTR is retried, never returned). */
RPC_EXPORT int rpc_loop_run_once(RpcLoop *loop, int timeout_ms);

/* Iterate until rpc_loop_quit(). Returns the code given to rpc_loop_quit(), or -errno. */
RPC_EXPORT int rpc_loop_run(RpcLoop *loop);

/* Make rpc_loop_run() return @code after the current iteration. */
RPC_EXPORT void rpc_loop_quit(RpcLoop *loop, int code);

/* In a child after fork(), before exec: restore the signal mask the process had before
 * the loop blocked signals, and reset those signals to their default disposition. */
RPC_EXPORT void rpc_loop_child_reset_signals(void);

#ifdef __cplusplus
}
#endif
