/* SPDX-License-Identifier: MIT */
/*
 * fuzz-service-config.c - libFuzzer harness for the SERVICE.yaml parser of the services
 * library. The file is written by the administrator, not by another domain, but a bad one
 * must refuse calls with a clear error and never crash or hang the daemon that reads it.
 * Checks: no crash or leak, a refusal always carries a message, and an accepted
 * configuration has values inside their documented ranges.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[VRPC_SERVICES_ERROR_MAX];
    VrpcServiceConfig cfg;
    int r;

    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    r = service_config_parse("fuzz.yaml", (const char *)data, size, &cfg, err);
    if (r == 0) {
        assert(cfg.timeout >= 0 && cfg.timeout <= 1000000);
        assert(memchr(cfg.user, '\0', sizeof(cfg.user)) != NULL);
    } else if (r > 0) {
        assert(err[0] != '\0');
    }
    return 0;
}
