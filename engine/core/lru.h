/*
 * lru: a bounded map from byte-string keys to values, least recently used
 * evicted first, with an optional expiry per entry.
 *
 * The leaf-certificate cache, the upstream TLS session cache and the pinned-
 * client list are all this one structure. It does no locking: each owner
 * wraps it in its own mutex, because only the owner knows what a value's
 * reference count needs while the lock is held.
 *
 * Keys come from the network (server names), so buckets are chosen with a
 * hash keyed by a per-process random seed: chains cannot be made long on
 * purpose.
 */
#ifndef DLPGATE_LRU_H
#define DLPGATE_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lru lru_t;
typedef void (*lru_free_fn)(void *value);

lru_t *lru_new(size_t capacity, lru_free_fn free_value);
void lru_free(lru_t *c);

/* The value (borrowed) or NULL. An entry past its expiry is removed and
 * counts as a miss. A hit makes the entry the most recently used. */
void *lru_get(lru_t *c, const void *key, size_t klen, uint64_t now_ms);
/* Inserts or replaces; evicts the least recently used entry when full.
 * expires_ms = 0 means never. Returns false only when out of memory, in
 * which case the value has been freed. */
bool lru_put(lru_t *c, const void *key, size_t klen, void *value, uint64_t expires_ms);
bool lru_remove(lru_t *c, const void *key, size_t klen);
size_t lru_count(const lru_t *c);
size_t lru_capacity(const lru_t *c);
/* Calls fn for each live entry, most recently used first (expired ones
 * are removed on the way, without a call); fn must not change c. */
typedef void (*lru_visit_fn)(void *ud, const void *key, size_t klen, void *value, uint64_t expires_ms);
void lru_foreach(lru_t *c, uint64_t now_ms, lru_visit_fn fn, void *ud);
/* Removes every entry; returns how many there were. */
size_t lru_clear(lru_t *c);

/* A seeded 64-bit hash for other tables keyed by network input. */
uint64_t lru_hash(const void *key, size_t klen);

#endif
