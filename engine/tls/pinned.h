/*
 * pinned: the clients that refused our certificate, and where.
 *
 * An app that pins its server's key aborts the handshake when it sees our
 * leaf. Retrying would fail the same way forever, so the pair (client
 * identity, server name) goes on this list for pinned_ttl_s and the next
 * connection is spliced untouched: the app sees the real certificate and
 * works, and the flow is reported as not inspected, with why. The list is
 * an LRU with a TTL, shared by workers.
 */
#ifndef DLPGATE_PINNED_H
#define DLPGATE_PINNED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pinned pinned_t;

pinned_t *pinned_new(size_t max_entries, uint32_t ttl_s);
void pinned_free(pinned_t *p);
void pinned_add(pinned_t *p, const char *client, const char *server);
bool pinned_check(pinned_t *p, const char *client, const char *server);
size_t pinned_count(pinned_t *p);

#endif
