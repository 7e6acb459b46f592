/* SPDX-License-Identifier: MIT */
/*
 * simcore: the shared state of one emulated Xen host ("instance").
 *
 * An instance lives in a folder (VRPCSIM_INSTANCE, default
 * /dev/shm/vrpc-sim/default). It holds:
 *   domains           text table "DOMID NAME STATE" written by the daemon
 *   dom.<N>           per-domain shared page table: event-channel ports and
 *                     the grant-ref allocation hint (mmap'ed by everyone)
 *   gnt/<N>/<REF>     one granted page each: 4 KiB of data, then a
 *                     SimGrantMeta record (grantee, flags)
 *   hv.sock           the hypervisor daemon: every gnttab/gntshr/evtchn
 *                     handle holds a connection so the daemon can do what the
 *                     kernel does when a process dies (unmap-notify, free
 *                     grants and ports)
 * Event delivery is peer to peer: each evtchn handle owns an abstract
 * datagram socket, and a notify is one datagram carrying the port number.
 *
 * This is not a security boundary: any process of the same uid can open
 * these files. The checks catch bugs, not attacks.
 */
#ifndef VRPC_SIM_SIMCORE_H
#define VRPC_SIM_SIMCORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SIM_PAGE_SIZE 4096u
#define SIM_MAX_PORTS 4096u /* per domain */
#define SIM_MAX_DOMAINS 256u
#define SIM_FIRST_FREE_REF 8u /* refs 0-7 are reserved, as in Xen */
#define SIM_MAX_REF 65535u
#define SIM_XENSTORE_REF 1u /* GNTTAB_RESERVED_XENSTORE */
#define SIM_DOMID_INVALID 0xFFFFFFFFu
#define SIM_VIRQ_DOM_EXC 3u

enum SimPortState {
    SIM_PORT_FREE = 0,
    SIM_PORT_RESERVED, /* being set up */
    SIM_PORT_UNBOUND,
    SIM_PORT_BINDING, /* remote end being connected */
    SIM_PORT_INTERDOMAIN,
    SIM_PORT_VIRQ,
};

#define SIM_PORT_PENDING 0x1u
#define SIM_PORT_MASKED 0x2u
#define SIM_PORT_LOST 0x4u /* a datagram was dropped on a full queue */

/* One event-channel port, in a shared page table of the owning domain. */
typedef struct SimPort {
    _Atomic uint32_t state;
    _Atomic uint32_t flags; /* SIM_PORT_PENDING | SIM_PORT_MASKED */
    _Atomic uint32_t remote_dom;
    _Atomic uint32_t remote_port;
    _Atomic uint32_t virq;
    _Atomic uint32_t owner_pid; /* the handle that receives its events */
    _Atomic uint32_t owner_serial;
    uint32_t pad;
} SimPort;

#define SIM_DOMFILE_MAGIC 0x56534431u /* "VSD1" */

typedef struct SimDomFile {
    uint32_t magic;
    uint32_t domid;
    _Atomic uint32_t next_ref; /* grant-ref allocation hint */
    uint32_t pad;
    SimPort ports[SIM_MAX_PORTS];
} SimDomFile;

#define SIM_GRANT_MAGIC 0x56534731u /* "VSG1" */
#define SIM_GRANT_WRITABLE 0x1u

/* Stored right after the page in each grant file. */
typedef struct SimGrantMeta {
    uint32_t magic;
    uint32_t owner;
    uint32_t grantee;
    uint32_t flags;
    uint32_t owner_pid;
    uint32_t pad;
} SimGrantMeta;

/* Messages on hv.sock (SOCK_SEQPACKET, one struct per packet). */
enum SimMsgType {
    SIM_MSG_HELLO = 1,    /* a = handle kind, b = pid, c = serial, dom */
    SIM_MSG_SHARE,        /* a = ref (shared by this handle) */
    SIM_MSG_UNSHARE,      /* a = ref */
    SIM_MSG_NOTIFY_SET,   /* a = owner dom, b = ref, c = offset|flags, d = port */
    SIM_MSG_NOTIFY_CLEAR, /* a = owner dom, b = ref */
    SIM_MSG_CMD_STATUS = 100,
    SIM_MSG_CMD_DESTROY, /* a = domid */
    SIM_MSG_CMD_DOWN,
    SIM_MSG_REPLY = 200, /* a = 0 or errno, text = message */
};

enum SimHandleKind {
    SIM_KIND_GNTTAB = 1,
    SIM_KIND_GNTSHR,
    SIM_KIND_EVTCHN,
    SIM_KIND_CONTROL,
};

/* unmap-notify flags, same values as Linux gntdev/gntalloc */
#define SIM_NOTIFY_CLEAR_BYTE 0x1u
#define SIM_NOTIFY_SEND_EVENT 0x2u

typedef struct SimMsg {
    uint32_t type;
    uint32_t dom;
    uint32_t a, b, c, d;
    char text[1024];
} SimMsg;

/* --- the instance ------------------------------------------------------ */

/* Folder of the current process's instance (from the environment). */
const char *sim_instance_dir(void);
/* Domain id of the current process (VRPCSIM_DOMID, default 0). */
uint32_t sim_self_domid(void);
/* snprintf into buf a path below the instance folder; -ENAMETOOLONG. */
int sim_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Map domain @domid's shared table (cached for the process); NULL+errno. */
SimDomFile *sim_domfile(uint32_t domid);
/* Create (or reset) the table file of @domid. Daemon only. */
int sim_domfile_create(uint32_t domid);

/* Connect a socket to the hypervisor daemon's hv.sock. Returns fd, -ENAMETOOLONG, or
 * -errno; a failed connect (no daemon) gives @absent_err instead when it is non-zero. */
int sim_hv_dial(int absent_err);
/* Connect to the hypervisor daemon and say hello. Returns fd or -errno. */
int sim_hv_connect(enum SimHandleKind kind, uint32_t serial);
/* Fire-and-forget message to the daemon on @fd. */
void sim_hv_send(int fd, uint32_t type, uint32_t a, uint32_t b, uint32_t c, uint32_t d);
/* A process-unique serial for a handle. */
uint32_t sim_next_serial(void);

/* --- event channels ---------------------------------------------------- */

/* Abstract socket name of the receiving handle (pid, serial). */
int sim_evtchn_addr(uint32_t pid, uint32_t serial, void *sun, socklen_t *lenp);
/* Raise an event on port @port of domain @dom (the receiving end). */
void sim_evtchn_deliver(uint32_t dom, uint32_t port);
/* Send from local port (@dom, @port): delivers to its remote end. -errno. */
int sim_evtchn_send(uint32_t dom, uint32_t port);
/* Close port (@dom, @port): the remote end becomes unbound. */
void sim_evtchn_close_port(uint32_t dom, uint32_t port);
/* Allocate a port in @dom's table in state RESERVED; -ENOSPC. */
int sim_evtchn_alloc(SimDomFile *df);

/* --- grants ------------------------------------------------------------ */

/* Create a grant file for (@owner, @ref) granted to @grantee; -EEXIST. */
int sim_grant_create(uint32_t owner, uint32_t ref, uint32_t grantee, bool writable, int *fdp);
/* Allocate a fresh ref for @owner and create its file; returns ref or -errno. */
int sim_grant_alloc(uint32_t owner, uint32_t grantee, bool writable, int *fdp);
/* Open (@owner, @ref) for mapping by @mapper; checks access. fd or -errno. */
int sim_grant_open(uint32_t owner, uint32_t ref, uint32_t mapper, bool write);
/* Remove the grant file. */
void sim_grant_remove(uint32_t owner, uint32_t ref);
/* Execute an unmap-notify registration from outside the process. */
void sim_notify_execute(uint32_t owner, uint32_t ref, uint32_t offset_flags, uint32_t notifier_dom,
                        uint32_t port);

#endif
