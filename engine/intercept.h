/*
 * intercept: the TLS stages of a flow, from a parsed ClientHello to HTTP.
 *
 *   decide   on_flow with the SNI; pinned clients and clients that cannot
 *            speak HTTP/1.1 are spliced; blocks and bypasses as told.
 *   TLS_UP   eager upstream handshake (SNI, ALPN http/1.1), verified
 *            against the system store + --upstream-ca and the name. A
 *            failure is never hidden: the client gets a page saying why.
 *   mint     a leaf mirroring the upstream certificate's names.
 *   TLS_DOWN client handshake with that leaf. A client that aborts it
 *            after seeing our certificate is remembered (pinned.h).
 *   then     HTTP (http/relay.c).
 */
#ifndef DLPGATE_INTERCEPT_H
#define DLPGATE_INTERCEPT_H

#include "tls/clienthello.h"

struct flow;

void intercept_decide(struct flow *f, const clienthello_t *ch);

/* Completes a client handshake with a leaf for the flow's name and answers
 * the client's first request with status (403 for a block, 502 for an
 * upstream failure) naming title and detail. */
void intercept_report(struct flow *f, int status, const char *code, const char *title, const char *detail);

#endif
