/*
 * splice: copy bytes both ways untouched (bypassed, pinned and non-HTTP
 * flows, and WebSocket after its 101). On a plain side a block read is the
 * block written: no copy. Half-close is carried across: EOF from one end
 * becomes FIN (after close_notify on TLS sides) to the other, and the flow
 * ends when both directions are done.
 */
#ifndef DLPGATE_SPLICE_H
#define DLPGATE_SPLICE_H

struct flow;

/* Sends the bytes held in f->peek upstream and f->early to the client,
 * then splices. mode is the log's name for why (static string). */
void splice_start(struct flow *f, const char *mode);

#endif
