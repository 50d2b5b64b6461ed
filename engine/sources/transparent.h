/*
 * transparent: Linux transparent mode. nftables (dlpgate redirect) sends
 * outbound TCP of the chosen scope to this listener; the original
 * destination comes from SO_ORIGINAL_DST (IPv4 and IPv6) and the program
 * behind the connection from appid.h, looked up on libuv's thread pool
 * (reading /proc can take a millisecond the loop's other flows should not
 * wait for). The upstream is dialled at that
 * address with the engine's socket mark, which the redirect rules skip,
 * so the engine never intercepts itself; the flow is then a tunnel like
 * a CONNECT one (SNI from the ClientHello, Host from the request).
 *
 * A connection made to the listener directly (no original destination,
 * or one that is the listener itself) is refused: it would loop.
 */
#ifndef DLPGATE_TRANSPARENT_H
#define DLPGATE_TRANSPARENT_H

struct flow;

void transparent_start(struct flow *f);

#endif
