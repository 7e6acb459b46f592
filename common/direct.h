/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * direct.h - what the dispatcher and the agents share about the direct guest<->guest data
 * path (docs/protocol.md, "Direct channels"): the xenstore directory of a channel, the
 * redirect a source agent receives instead of an answer, the control calls between the
 * dispatcher and the agents, and the CALL flag bits of a fallback.
 *
 * Every parser here takes untrusted text: it checks the whole string and every number's
 * range, and fails on anything else.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* REFUSE code the dispatcher answers a CALL with when the call is to go on a direct channel
 * (reason: vrpc_direct_format_redirect()); also the code a target agent refuses a direct
 * CALL with when it will not take it there (the source then falls back to the relay). Out of
 * the range of process exit codes, so never confused with a service's status. */
#define VRPC_DIRECT_REDIRECT_CODE 1024

/* CALL.flags bits (application-defined for librpc). */
#define VRPC_CALL_F_NO_DIRECT 0x1u   /* source agent -> dispatcher: relay this one */
#define VRPC_CALL_F_CONTROL 0x2u     /* a control call between the dispatcher and an agent */
#define VRPC_CALL_F_DIRECT_OK 0x4u   /* source agent -> dispatcher: may be redirected (the
                                      * agent holds the caller's stdin until the answer) */
#define VRPC_CALL_FALLBACK_SHIFT 8   /* NO_DIRECT: why, a VrpcDirectFallback in bits 8..15 */
#define VRPC_CALL_FALLBACK_MASK 0xff00u

typedef enum VrpcDirectFallback {
    VRPC_DIRECT_FB_NONE = 0,
    VRPC_DIRECT_FB_CONNECT = 1, /* the source agent could not connect the direct vchan */
    VRPC_DIRECT_FB_REFUSED = 2, /* the target agent refused the call on the direct vchan */
    VRPC_DIRECT_FB_LOST = 3,    /* the direct vchan closed before the call was accepted */
} VrpcDirectFallback;

/* The control services (CALL.service with VRPC_CALL_F_CONTROL). */
#define VRPC_DIRECT_SVC_SERVE "vrpc-direct.serve" /* dispatcher -> target: serve, token */
#define VRPC_DIRECT_SVC_CLOSE "vrpc-direct.close" /* dispatcher -> target: close channel */
#define VRPC_DIRECT_SVC_EXIT "vrpc-direct.exit"   /* target or source -> dispatcher: a call
                                                    * ended (each end reports it) */
#define VRPC_DIRECT_SVC_REVOKE "vrpc-direct.revoke" /* dispatcher -> target: drop a token */

/* Most channels one agent serves at once, and most tokens it keeps. */
#define VRPC_DIRECT_CHANNELS_MAX 256
#define VRPC_DIRECT_TOKENS_MAX 4096
/* A target agent drops a token not used within this long (and reports it). */
#define VRPC_DIRECT_TOKEN_TTL_MS 30000

/* "/local/domain/T/vrpc-direct" and "/local/domain/T/vrpc-direct/CH". Return the length or
 * -1 if @size is too small. */
int vrpc_direct_base_path(char *buf, size_t size, int target_domid);
int vrpc_direct_path(char *buf, size_t size, int target_domid, unsigned ch);

/* The redirect's reason: "direct T CH TOKEN CALLID" (decimal, TOKEN 16 hex digits). */
int vrpc_direct_format_redirect(char *buf, size_t size, int target_domid, unsigned ch,
                                uint64_t token, uint64_t call_id);
/* Parse it back. Returns 0, or -EINVAL for anything but that exact form. */
int vrpc_direct_parse_redirect(const char *untrusted, int *target_domidp, unsigned *chp,
                               uint64_t *tokenp, uint64_t *call_idp);

/* The serve request (stdin of VRPC_DIRECT_SVC_SERVE, one line):
 * "CH PEERDOMID SOURCE TOKEN CALLID SERVICE ARG USER" (ARG and USER "-" for none). */
typedef struct VrpcDirectServe {
    unsigned ch;
    int peer_domid;
    char source[65];
    char user[33];
    uint64_t token;
    uint64_t call_id;
    char service[65];
    char argument[65];
} VrpcDirectServe;

int vrpc_direct_format_serve(char *buf, size_t size, const VrpcDirectServe *req);
/* Returns 0, or -EINVAL (malformed, a name breaking its rule). */
int vrpc_direct_parse_serve(const char *untrusted, size_t len, VrpcDirectServe *req);

/* Exit reports (CALL.argument of VRPC_DIRECT_SVC_EXIT, from the target and from the source
 * agent; the source never sends "expired", the target never "cancelled"): the exit code
 * "0".."255", or "refused-CODE" (the target refused the call, e.g. 127 for no such service:
 * the handler never ran), or "aborted" (the call's stream was reset or its channel lost),
 * "expired" (the token was never used) or "cancelled" (the source's caller went away
 * before the end). Parse: returns the code >= 0 (*@refused tells which of the first two;
 * @refused may be NULL), -1 for aborted, -2 for expired, -3 for cancelled, or -EINVAL. */
#define VRPC_DIRECT_EXIT_ABORTED (-1)
#define VRPC_DIRECT_EXIT_EXPIRED (-2)
#define VRPC_DIRECT_EXIT_CANCELLED (-3)
#define VRPC_DIRECT_REFUSED_PREFIX "refused-"
int vrpc_direct_parse_exit(const char *untrusted, bool *refused);
/* The report for @code (as vrpc_direct_parse_exit() returns it; @refused for a code >= 0)
 * into @buf (VRPC_DIRECT_EXIT_WORD_MAX bytes suffice); returns @buf, "" for an unknown code. */
#define VRPC_DIRECT_EXIT_WORD_MAX 16
const char *vrpc_direct_format_exit(char *buf, size_t size, int code, bool refused);

/* A word for a fallback reason ("connect-failed", ...). */
const char *vrpc_direct_fallback_name(unsigned reason);
