/*
 * pinned: the apps that refused our certificate, and where.
 *
 * An app that pins its server's key aborts the handshake when it sees our
 * leaf. Retrying would fail the same way forever, so the pair (app
 * identity, server name) goes on this list for pinned_ttl_s, and the next
 * flow of that app to that server goes to the policy as uninspectable
 * ("pinned"): the policy says whether it may pass untouched.
 *
 * The memory is the app's alone: the key is its signing identity (system
 * extension: team id and signing id) or its executable and user (Linux
 * transparent mode). A flow with no identity (the explicit proxy, where a
 * client is just an address) is never remembered, so one program aborting
 * a handshake, on purpose or not, can never make another's flows pass
 * uninspected. The list is an LRU with a TTL, shared by workers; admins
 * list and clear it (`dlpgate pinned`), and SIGHUP clears it.
 */
#ifndef DLPGATE_PINNED_H
#define DLPGATE_PINNED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pinned pinned_t;

#define PINNED_APP_MAX 600

pinned_t *pinned_new(size_t max_entries, uint32_t ttl_s);
void pinned_free(pinned_t *p);
/* The identity an entry is kept under: "team:TEAM_ID:SIGNING_ID" or
 * "exe:UID:PATH"; false when the flow has none (never remembered). */
bool pinned_app_key(const char *signing_id, const char *team_id, const char *path, int64_t uid, bool uid_known,
		    char out[PINNED_APP_MAX]);
void pinned_add(pinned_t *p, const char *app, const char *server);
bool pinned_check(pinned_t *p, const char *app, const char *server);
size_t pinned_count(pinned_t *p);
/* The entries, as a JSON array of {"app", "server", "expires_in_s"}
 * (malloc'd text, most recent first). */
char *pinned_list_json(pinned_t *p);
/* Forgets every entry; returns how many there were. */
size_t pinned_clear(pinned_t *p);

#endif
