/*
 * platform: the few calls that differ between Linux and macOS, kept here
 * so the engine's logic carries no #ifdef for them. Features that exist
 * on one system only (transparent mode, sock_diag, the BPF connect record)
 * are not shimmed: their own files compile to refusals elsewhere.
 */
#ifndef DLPGATE_PLATFORM_H
#define DLPGATE_PLATFORM_H

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* Data on stable storage. On macOS fsync() stops at the drive's cache;
 * F_FULLFSYNC is the barrier fdatasync() is on Linux (some file systems
 * refuse it, and then fsync is the best there is). */
static inline int platform_datasync(int fd)
{
#ifdef __APPLE__
	return fcntl(fd, F_FULLFSYNC) == 0 ? 0 : fsync(fd);
#else
	return fdatasync(fd);
#endif
}

/* A condition variable whose timed waits ignore wall-clock jumps. */
static inline void platform_cond_init(pthread_cond_t *c)
{
#ifdef __APPLE__
	pthread_cond_init(c, NULL); /* waits are relative there: see below */
#else
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
#endif
}

/* Waits on c (m held) for at most ms milliseconds. */
static inline void platform_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
#ifdef __APPLE__
	pthread_cond_timedwait_relative_np(c, m, &ts);
#else
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ts.tv_sec += now.tv_sec;
	ts.tv_nsec += now.tv_nsec;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(c, m, &ts);
#endif
}

#endif
