/* SPDX-License-Identifier: MIT */
/* log.h - private: librpc's process-wide log sink (rpc_set_log). */
#pragma once

#include <syslog.h>

void rpc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
