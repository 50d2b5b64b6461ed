/*
 * sysext: flows handed over by the macOS system extension (or by anything
 * that speaks its protocol, like the Linux test client), one unix-socket
 * connection per flow, framed as in sources/frame.h.
 *
 * Who may connect is checked first: the socket is mode 0600, and the
 * peer's credentials must be root's or the configured --sysext-uid's. The
 * header frame then says where the flow goes and which program opened
 * it, and the policy's on_flow decides on that alone: a bypass is
 * answered at once (the extension passes the flow through itself, so the
 * engine never sees its bytes) and so is a block (reject). Otherwise the
 * upstream is dialled at the address the OS gave, not re-resolved, and
 * only a connected upstream earns "accept"; a failure is a reject naming
 * the cause. From there the flow is a tunnel like a CONNECT one: its
 * first bytes decide between interception and splicing.
 */
#ifndef DLPGATE_SYSEXT_H
#define DLPGATE_SYSEXT_H

struct flow;

void sysext_start(struct flow *f);

#endif
