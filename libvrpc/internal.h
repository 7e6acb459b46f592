/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what libvrpc's source files share. Only vrpc/vrpc.h is public; everything
 * else in the library (librpc, linked in statically) stays local to libvrpc.so through
 * -fvisibility=hidden and the version script libvrpc/libvrpc.map.
 */
#pragma once

#include <stdint.h>

#include "vrpc/vrpc.h"
