/* Raising the open-file limit; see fdlimit.h. */
#include "core/fdlimit.h"

#include <limits.h>
#include <sys/resource.h>

uint64_t fdlimit_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024; /* the traditional default: size conservatively */
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
#ifdef OPEN_MAX
			/* macOS: the hard limit says unlimited, but setrlimit takes at
			 * most OPEN_MAX (launchd's soft default is 256) */
			rl.rlim_cur = OPEN_MAX;
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
#endif
				getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	return rl.rlim_cur == RLIM_INFINITY ? FDLIMIT_UNLIMITED : (uint64_t)rl.rlim_cur;
}
