#include "tls/pinned.h"

#include "core/lru.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct pinned {
	pthread_mutex_t lock;
	lru_t *entries; /* values are unused: presence is the fact */
	uint32_t ttl_s;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

pinned_t *pinned_new(size_t max_entries, uint32_t ttl_s)
{
	pinned_t *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->entries = lru_new(max_entries, NULL);
	if (!p->entries) {
		free(p);
		return NULL;
	}
	p->ttl_s = ttl_s;
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void pinned_free(pinned_t *p)
{
	if (!p)
		return;
	lru_free(p->entries);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static size_t make_key(char *key, size_t n, const char *client, const char *server)
{
	int k = snprintf(key, n, "%s\n%s", client ? client : "", server ? server : "");
	return k < 0 ? 0 : (size_t)k >= n ? n - 1 : (size_t)k;
}

void pinned_add(pinned_t *p, const char *client, const char *server)
{
	if (p->ttl_s == 0)
		return; /* feature off */
	char key[768];
	size_t k = make_key(key, sizeof key, client, server);
	pthread_mutex_lock(&p->lock);
	lru_put(p->entries, key, k, p, now_ms() + (uint64_t)p->ttl_s * 1000);
	pthread_mutex_unlock(&p->lock);
}

bool pinned_check(pinned_t *p, const char *client, const char *server)
{
	char key[768];
	size_t k = make_key(key, sizeof key, client, server);
	pthread_mutex_lock(&p->lock);
	bool hit = lru_get(p->entries, key, k, now_ms()) != NULL;
	pthread_mutex_unlock(&p->lock);
	return hit;
}

size_t pinned_count(pinned_t *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = lru_count(p->entries);
	pthread_mutex_unlock(&p->lock);
	return n;
}
