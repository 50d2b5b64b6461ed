/*
 * lru: chained hash table + intrusive doubly linked recency list. The table
 * is sized once (a power of two, at least twice the capacity), so there is
 * never a rehash pause on a worker.
 */
#include "core/lru.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct lru_entry {
	struct lru_entry *hnext;          /* bucket chain */
	struct lru_entry *prev, *next;    /* recency list, head = most recent */
	void *value;
	uint64_t hash;
	uint64_t expires_ms;
	size_t klen;
	unsigned char key[];
} entry_t;

struct lru {
	entry_t **buckets;
	size_t nbuckets; /* power of two */
	size_t count, capacity;
	entry_t *head, *tail;
	lru_free_fn free_value;
};

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
	if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
		seed = (uint64_t)(uintptr_t)&seed ^ 0x9e3779b97f4a7c15ull;
}

uint64_t lru_hash(const void *key, size_t klen)
{
	pthread_once(&seed_once, seed_init);
	/* FNV-1a over the bytes from a secret offset, then a strong finaliser
	 * (splitmix64) so every key bit reaches the bucket index. */
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	const unsigned char *p = key;
	for (size_t i = 0; i < klen; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

lru_t *lru_new(size_t capacity, lru_free_fn free_value)
{
	if (capacity == 0)
		capacity = 1;
	lru_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	size_t n = 16;
	while (n < capacity * 2)
		n *= 2;
	c->buckets = calloc(n, sizeof *c->buckets);
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->nbuckets = n;
	c->capacity = capacity;
	c->free_value = free_value;
	return c;
}

static void list_unlink(lru_t *c, entry_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void list_push_front(lru_t *c, entry_t *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static entry_t **find_slot(lru_t *c, const void *key, size_t klen, uint64_t h)
{
	entry_t **pp = &c->buckets[h & (c->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->hnext) {
		entry_t *e = *pp;
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return pp;
	}
	return pp;
}

static void destroy(lru_t *c, entry_t **slot)
{
	entry_t *e = *slot;
	*slot = e->hnext;
	list_unlink(c, e);
	c->count--;
	if (c->free_value)
		c->free_value(e->value);
	free(e);
}

void *lru_get(lru_t *c, const void *key, size_t klen, uint64_t now_ms)
{
	uint64_t h = lru_hash(key, klen);
	entry_t **slot = find_slot(c, key, klen, h);
	entry_t *e = *slot;
	if (!e)
		return NULL;
	if (e->expires_ms && now_ms >= e->expires_ms) {
		destroy(c, slot);
		return NULL;
	}
	list_unlink(c, e);
	list_push_front(c, e);
	return e->value;
}

bool lru_remove(lru_t *c, const void *key, size_t klen)
{
	uint64_t h = lru_hash(key, klen);
	entry_t **slot = find_slot(c, key, klen, h);
	if (!*slot)
		return false;
	destroy(c, slot);
	return true;
}

bool lru_put(lru_t *c, const void *key, size_t klen, void *value, uint64_t expires_ms)
{
	uint64_t h = lru_hash(key, klen);
	entry_t **slot = find_slot(c, key, klen, h);
	if (*slot) {
		entry_t *e = *slot;
		if (c->free_value && e->value != value)
			c->free_value(e->value);
		e->value = value;
		e->expires_ms = expires_ms;
		list_unlink(c, e);
		list_push_front(c, e);
		return true;
	}
	entry_t *e = malloc(sizeof *e + klen);
	if (!e) {
		if (c->free_value)
			c->free_value(value);
		return false;
	}
	memcpy(e->key, key, klen);
	e->klen = klen;
	e->hash = h;
	e->value = value;
	e->expires_ms = expires_ms;
	e->hnext = NULL;
	*slot = e;
	list_push_front(c, e);
	c->count++;
	if (c->count > c->capacity) {
		entry_t *old = c->tail;
		destroy(c, find_slot(c, old->key, old->klen, old->hash));
	}
	return true;
}

size_t lru_count(const lru_t *c)
{
	return c->count;
}

size_t lru_capacity(const lru_t *c)
{
	return c->capacity;
}

void lru_foreach(lru_t *c, uint64_t now_ms, lru_visit_fn fn, void *ud)
{
	for (entry_t *e = c->head, *next; e; e = next) {
		next = e->next;
		if (e->expires_ms && now_ms >= e->expires_ms)
			destroy(c, find_slot(c, e->key, e->klen, e->hash));
		else
			fn(ud, e->key, e->klen, e->value, e->expires_ms);
	}
}

size_t lru_clear(lru_t *c)
{
	size_t n = c->count;
	while (c->head) {
		entry_t *e = c->head;
		destroy(c, find_slot(c, e->key, e->klen, e->hash));
	}
	return n;
}

void lru_free(lru_t *c)
{
	if (!c)
		return;
	lru_clear(c);
	free(c->buckets);
	free(c);
}
