/* SPDX-License-Identifier: MIT */
/*
 * log.h - the dispatcher's names for the one logger (common/log.h): one line per event
 * with a level, "vrpc-dispatcher: LEVEL: message".
 */
#pragma once

#include "common/log.h"

#define dlog(...) vrpc_log(__VA_ARGS__)
#define dlog_set_level vrpc_log_set_level
#define dlog_get_level vrpc_log_get_level
#define dlog_enabled vrpc_log_enabled
#define dlog_level_from_string vrpc_log_level_from_string
#define dlog_library_quiet vrpc_log_library_quiet

/* Names the dispatcher in every line and points librpc's and vchan's log sinks here. */
void dlog_install_library_sinks(void);
