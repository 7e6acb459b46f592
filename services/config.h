/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * SERVICE.yaml: the per-service settings (private to the services library).
 */

#include "vrpc-services.h"

/*
 * service_config_load() - read ENTRY.yaml, else SERVICE.yaml when ENTRY
 * ("SERVICE+ARG") differs from SERVICE, from the folder DIRFD (named DIR in
 * messages). Neither existing leaves *CONFIGP zeroed and *PATHP NULL.
 * Returns 0; VRPC_SERVICES_E_CONFIG with "FILE[:LINE:COL]: message" in ERR;
 * -ENOMEM.
 */
int service_config_load(int dirfd, const char *dir, const char *entry, const char *service,
                        VrpcServiceConfig *configp, char **pathp, char *err);

/*
 * service_config_parse() - parse DATA (SIZE bytes) named FILE into *CONFIGP.
 * An empty file or an empty document is a valid, empty configuration.
 * Returns 0, VRPC_SERVICES_E_CONFIG (reason in ERR) or -ENOMEM.
 */
int service_config_parse(const char *file, const char *data, size_t size,
                         VrpcServiceConfig *configp, char *err);
