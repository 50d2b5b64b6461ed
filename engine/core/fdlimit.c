/* Raising the open-file limit; see fdlimit.h. */
#include "core/fdlimit.h"

#include <sys/resource.h>

uint64_t fdlimit_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024; /* the traditional default: size conservatively */
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? FDLIMIT_UNLIMITED : (uint64_t)rl.rlim_cur;
}
