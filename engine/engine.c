#include "engine.h"

compiled_policy_t *engine_policy_acquire(engine_t *e)
{
	pthread_mutex_lock(&e->policy_lock);
	compiled_policy_t *p = policy_ref(e->policy);
	pthread_mutex_unlock(&e->policy_lock);
	return p;
}

void engine_policy_swap(engine_t *e, compiled_policy_t *p)
{
	pthread_mutex_lock(&e->policy_lock);
	compiled_policy_t *old = e->policy;
	e->policy = p;
	pthread_mutex_unlock(&e->policy_lock);
	policy_unref(old);
}
