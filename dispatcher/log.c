/* SPDX-License-Identifier: MIT */
/*
 * log.c - the dispatcher's side of the one logger: its program name, and the libraries'
 * sinks (librpc and vchan never print; they hand their lines to common/log.c).
 */
#include "log.h"

#include "librpc/rpc.h"
#include "vchan/vchan.h"

void dlog_install_library_sinks(void)
{
    vrpc_log_init("vrpc-dispatcher");
    rpc_set_log(vrpc_log_sink, NULL);
    vchan_set_log(vrpc_log_sink, NULL);
}
