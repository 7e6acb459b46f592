/* SPDX-License-Identifier: MIT */
/*
 * Internals of the vrpc-sim program: the instance daemon (hv.c), the
 * per-guest xenbus process (xenbus.c), the domain table and process
 * helpers (instance.c) and the command line (vrpc-sim.c).
 */
#ifndef VRPC_SIM_SIM_H
#define VRPC_SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "simcore.h"

#define SIM_NAME_MAX 64

typedef enum SimDomState {
    SIM_DOM_RUNNING,
    SIM_DOM_DEAD,
} SimDomState;

typedef struct SimDomain {
    uint32_t domid;
    char name[SIM_NAME_MAX + 1];
    SimDomState state;
} SimDomain;

typedef struct SimTable {
    SimDomain dom[SIM_MAX_DOMAINS];
    unsigned int n;
} SimTable;

/* Instance folder for namespace @ns into buf (VRPCSIM_ROOT/ns). -errno. */
int sim_instance_for(const char *ns, char *buf, size_t len);
/* Valid namespace: [A-Za-z0-9_-]{1,32}. */
bool sim_ns_valid(const char *ns);
/* Valid guest name: [A-Za-z0-9_.-]{1,64}, not dom0 / Domain-0 / a number. */
bool sim_name_valid(const char *name);

int sim_table_load(SimTable *t);
int sim_table_save(const SimTable *t);
SimDomain *sim_table_find(SimTable *t, const char *name_or_id);

/* Is the daemon of the current instance answering? */
bool sim_instance_up(void);
/* Send a control command to the daemon and wait for its reply. */
int sim_control(uint32_t type, uint32_t a, uint32_t b, char *reply, size_t len);

/*
 * Processes started in the current instance (by environment), optionally
 * only those of @domid (SIM_DOMID_INVALID: all). Signals them with @sig,
 * skipping @spare and its ancestors. Returns how many were signalled.
 */
int sim_kill_instance_procs(uint32_t domid, int sig, pid_t spare);
int sim_count_instance_procs(uint32_t domid);
/* Live processes of the instance whose folder is @inst (any instance, not only the current). */
int sim_count_procs_of(const char *inst);
/* VRPCSIM_KEEP=1 (that value only): what a failed, killed or downed instance leaves is kept
 * for inspection. */
bool sim_keep_remains(void);
/* Remove the instance folder recursively. */
int sim_remove_tree(const char *dir);

/* The daemon: runs until `down`. @ready_fd gets "ok\n" or an error line. */
int sim_daemon_main(char **guests, unsigned int nguests, int ready_fd);
/* The per-guest xenbus process. */
int sim_xenbus_main(uint32_t domid, int ready_fd);

/* vrpcd.c: `up --vrpc`: start vrpc-dispatcher in dom0 and vrpc-agent in each of the @n
 * guests of instance @ns (already up), configured from @etc (NULL: the shipped example),
 * and wait until every agent is connected. Returns 0, or -1 with a one-line reason in
 * @err. */
int sim_vrpc_start(const char *ns, const char *etc, const char *const *guests, int n, char *err,
                   size_t errlen);

/* vrpcd.c: where vrpc's own programs are for `exec` (vrpc-call, vrpc-ctl, vrpc-policy,
 * vchan-cat): $VRPCSIM_VRPC_BINDIR, or the build tree's agent/, dispatcher/, policy/ and vchan/
 * next to sim/, as a
 * PATH prefix ("DIR:DIR:DIR") in @buf. Returns 0, or -1 when there is none (an installed
 * layout, whose programs are on PATH already). */
int sim_vrpc_path(char *buf, size_t len);

/* Folder holding the drop-in libraries and shims. */
const char *sim_libdir(void);
/* Path of the real xenstored to run. */
const char *sim_xenstored_path(void);

void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
