/* SPDX-License-Identifier: MIT */
/*
 * fuzz-dispatcher-config.c - libFuzzer harness for the dispatcher.yaml parser. The file is
 * dom0's, but a broken one must stop the dispatcher with a clear message, never crash it.
 * Checks: no crash or leak, a refusal always carries a message, and an accepted
 * configuration has every value inside its documented range.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[DISPATCHER_CONFIG_ERROR_MAX];
    DispatcherConfig cfg;
    int r;

    err[0] = '\0';
    dispatcher_config_init(&cfg);
    r = dispatcher_config_parse(&cfg, "fuzz.yaml", (const char *)data, size, err);
    if (r == 0) {
        assert(cfg.max_calls_per_guest >= 1 &&
               cfg.max_calls_per_guest <= DISPATCHER_MAX_CALLS_LIMIT);
        assert(cfg.max_buffer_per_guest == 0 ||
               (cfg.max_buffer_per_guest >= DISPATCHER_BUFFER_MIN &&
                cfg.max_buffer_per_guest <= DISPATCHER_BUFFER_MAX));
        assert(cfg.keepalive_ms >= -1);
        assert(cfg.ask_timeout_ms >= 100 && cfg.ask_timeout_ms <= 86400 * 1000);
        assert(!cfg.ask_program || cfg.ask_program[0] == '/');
        assert(!cfg.notify_program || cfg.notify_program[0] == '/');
    } else if (r == -EINVAL) {
        assert(err[0] != '\0');
    }
    dispatcher_config_deinit(&cfg);
    return 0;
}
