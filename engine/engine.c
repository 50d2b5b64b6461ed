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

compiled_policy_t *engine_shadow_acquire(engine_t *e, unsigned *sample_percent)
{
	pthread_mutex_lock(&e->policy_lock);
	compiled_policy_t *p = e->shadow ? policy_ref(e->shadow) : NULL;
	*sample_percent = e->shadow_sample_percent;
	pthread_mutex_unlock(&e->policy_lock);
	return p;
}

void engine_shadow_swap(engine_t *e, compiled_policy_t *p, unsigned sample_percent)
{
	pthread_mutex_lock(&e->policy_lock);
	compiled_policy_t *old = e->shadow;
	e->shadow = p;
	e->shadow_sample_percent = sample_percent > 100 ? 100 : sample_percent;
	pthread_mutex_unlock(&e->policy_lock);
	policy_unref(old);
}
