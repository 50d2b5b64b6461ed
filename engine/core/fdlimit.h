/*
 * fdlimit: the open-file limit a daemon starts with. systemd and most
 * shells hand out a low soft limit (1024, or whatever ulimit -n says) under
 * a much higher hard one; a proxy needs two descriptors per connection, so
 * both daemons raise the soft limit to the hard one before sizing anything
 * from it. Raising needs no privilege; going past the hard limit would.
 */
#ifndef DLPGATE_FDLIMIT_H
#define DLPGATE_FDLIMIT_H

#include <stdint.h>

#define FDLIMIT_UNLIMITED UINT64_MAX

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit
 * now in force (FDLIMIT_UNLIMITED if there is none). */
uint64_t fdlimit_raise(void);

#endif
