/* SPDX-License-Identifier: MIT */
/*
 * serve.c - resolve a service and start its handler for one call: what the agent does for
 * every call the dispatcher opens and the dispatcher for every allowed call to dom0, with
 * one wording of the refusals ("vrpc: SERVICE+ARG not found in WHERE").
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "handler.h"

static int64_t serve_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int vrpc_handler_serve(VrpcHandlerSet *set, RpcStream *s, const VrpcHandlerRequest *req,
                       VrpcHandlerDoneFn done, void *userdata, VrpcHandler **hp,
                       int64_t *resolve_usp, VrpcHandlerRefusal *refusal)
{
    VrpcHandlerRefusal scratch;
    VrpcHandlerRefusal *rf = refusal ? refusal : &scratch;
    const char *arg = req->argument ? req->argument : "";
    char reason[RPC_REASON_MAX + 1];
    VrpcService *svc = NULL;
    int64_t t0 = serve_now_us();
    int r;

    memset(rf, 0, sizeof(*rf));
    r = vrpc_service_resolve(req->services_dir, req->service, strlen(req->service), arg,
                             strlen(arg), &svc, rf->detail);
    if (resolve_usp)
        *resolve_usp = serve_now_us() - t0;
    if (r != 0) {
        rf->code = r > 0 ? vrpc_services_error_exit_code(r) : VRPC_SERVICES_EXIT_FRAMEWORK;
        if (r < 0 || !rf->detail[0])
            snprintf(rf->detail, sizeof(rf->detail), "%s",
                     r < 0 ? strerror(-r) : vrpc_services_strerror(r));
        /* worded for the caller: what was asked of whom */
        if (rf->code == VRPC_SERVICES_EXIT_NOT_FOUND)
            snprintf(reason, sizeof(reason), "vrpc: %s%s%s not found in %s", req->service,
                     arg[0] ? "+" : "", arg, req->where);
        else
            snprintf(reason, sizeof(reason), "vrpc: %.240s", rf->detail);
        (void)rpc_stream_refuse(s, rf->code, reason);
        return r;
    }
    snprintf(rf->entry, sizeof(rf->entry), "%s", svc->entry);
    r = vrpc_handler_start(set, s, svc, &req->call, done, userdata, hp, rf->detail);
    vrpc_service_free(svc);
    if (r != 0) {
        /* vrpc_handler_start() has refused the stream itself. */
        rf->started = true;
        rf->code = r > 0 ? vrpc_services_error_exit_code(r) : VRPC_SERVICES_EXIT_FRAMEWORK;
        if (r < 0 || !rf->detail[0])
            snprintf(rf->detail, sizeof(rf->detail), "%s",
                     r < 0 ? strerror(-r) : vrpc_services_strerror(r));
    }
    return r;
}
