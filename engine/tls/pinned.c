#include "tls/pinned.h"

#include "core/lru.h"

#include <jansson.h>
#include <string.h>

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

bool pinned_app_key(const char *signing_id, const char *team_id, const char *path, int64_t uid, bool uid_known,
		    char out[PINNED_APP_MAX])
{
	int k;
	if (signing_id && *signing_id)
		k = snprintf(out, PINNED_APP_MAX, "team:%s:%s", team_id ? team_id : "", signing_id);
	else if (path && *path && uid_known)
		k = snprintf(out, PINNED_APP_MAX, "exe:%lld:%s", (long long)uid, path);
	else
		return false;
	return k > 0 && k < PINNED_APP_MAX; /* a cut identity could name another app */
}

/* "APP\nSERVER": neither holds a newline (identities and server names
 * never do), so the split is unambiguous. */
static size_t make_key(char *key, size_t n, const char *app, const char *server)
{
	int k = snprintf(key, n, "%s\n%s", app ? app : "", server ? server : "");
	return k < 0 ? 0 : (size_t)k >= n ? n - 1 : (size_t)k;
}

void pinned_add(pinned_t *p, const char *app, const char *server)
{
	if (p->ttl_s == 0 || !app || !*app)
		return; /* feature off, or nobody to remember */
	char key[1024];
	size_t k = make_key(key, sizeof key, app, server);
	pthread_mutex_lock(&p->lock);
	lru_put(p->entries, key, k, p, now_ms() + (uint64_t)p->ttl_s * 1000);
	pthread_mutex_unlock(&p->lock);
}

bool pinned_check(pinned_t *p, const char *app, const char *server)
{
	if (!app || !*app)
		return false;
	char key[1024];
	size_t k = make_key(key, sizeof key, app, server);
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

typedef struct {
	json_t *list;
	uint64_t now;
} list_ctx_t;

static void list_one(void *ud, const void *key, size_t klen, void *value, uint64_t expires_ms)
{
	(void)value;
	list_ctx_t *c = ud;
	const char *nl = memchr(key, '\n', klen);
	if (!nl)
		return;
	size_t app_len = (size_t)(nl - (const char *)key);
	json_t *o = json_pack("{s:s%, s:s%, s:I}", "app", key, app_len, "server", nl + 1, klen - app_len - 1,
			      "expires_in_s", (json_int_t)(expires_ms > c->now ? (expires_ms - c->now + 999) / 1000 : 0));
	if (o)
		json_array_append_new(c->list, o);
}

char *pinned_list_json(pinned_t *p)
{
	list_ctx_t c = {json_array(), now_ms()};
	pthread_mutex_lock(&p->lock);
	lru_foreach(p->entries, c.now, list_one, &c);
	pthread_mutex_unlock(&p->lock);
	char *text = json_dumps(c.list, JSON_COMPACT);
	json_decref(c.list);
	return text;
}

size_t pinned_clear(pinned_t *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = lru_clear(p->entries);
	pthread_mutex_unlock(&p->lock);
	return n;
}
