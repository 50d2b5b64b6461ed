/*
 * appid_bpf: who connected, recorded by the kernel at connect() (see
 * appid.h).
 *
 * Finding the process behind a socket through /proc means reading the fd
 * directory of candidate processes, a readlink per descriptor: 25-35 us
 * for a small process, more for a big one. Instead, a cgroup/connect4 and
 * cgroup/connect6 program on the root of the cgroup v2 hierarchy records,
 * for every connect on the machine, the socket's cookie -> (pid, boot-time
 * ns) in an LRU hash map. sock_diag already hands us the client socket's
 * cookie, so the lookup is one map read.
 *
 * The program only records: it returns 1 (allow) whatever happens, so it
 * cannot refuse a connection. It is attached through a bpf_link whose
 * only reference the engine holds, so the kernel detaches it when the
 * engine exits, by crash too. It is a dozen instructions assembled here,
 * so the build needs neither a BPF compiler nor libbpf. Where the kernel
 * or our privileges refuse any step, appid falls back to /proc.
 */
#include "sources/appid.h"

#include <stdio.h>

#ifdef __linux__

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ENTRIES 65536 /* connects remembered; the oldest go first */

typedef struct {
	uint64_t pid;
	uint64_t boot_ns; /* CLOCK_BOOTTIME of the connect */
} record_t;

static int map_fd = -1;

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, (f))
#define STORE_DW(d, o, s) INSN(BPF_STX | BPF_DW | BPF_MEM, (d), (s), (o), 0)

static int load(int map, enum bpf_attach_type type, char *log, size_t log_len)
{
	const struct bpf_insn prog[] = {
		/* key = bpf_get_socket_cookie(ctx), at fp-8 (r1 is ctx) */
		CALL(BPF_FUNC_get_socket_cookie),
		STORE_DW(BPF_REG_10, -8, BPF_REG_0),
		/* record = {pid, boot ns}, at fp-24 */
		CALL(BPF_FUNC_get_current_pid_tgid),
		INSN(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_0, 0, 0, 32), /* tgid: the process */
		STORE_DW(BPF_REG_10, -24, BPF_REG_0),
		CALL(BPF_FUNC_ktime_get_boot_ns),
		STORE_DW(BPF_REG_10, -16, BPF_REG_0),
		/* bpf_map_update_elem(map, &key, &record, BPF_ANY) */
		INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map),
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -8),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_3, 0, 0, -24),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, BPF_ANY),
		CALL(BPF_FUNC_map_update_elem),
		/* return 1: the connect goes ahead, always */
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
	a.expected_attach_type = type;
	a.insns = (uint64_t)(uintptr_t)prog;
	a.insn_cnt = sizeof prog / sizeof prog[0];
	a.license = (uint64_t)(uintptr_t)"Proprietary"; /* no GPL-only helper is used */
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = (uint32_t)log_len;
	a.log_level = 1;
	snprintf(a.prog_name, sizeof a.prog_name, "dlpgate_appid");
	log[0] = '\0';
	return (int)bpf(BPF_PROG_LOAD, &a);
}

/* The root of the cgroup v2 hierarchy: where it is mounted, or, on a
 * machine that mounts cgroup v1 only, through a mount of our own that is
 * detached again at once (the descriptor keeps the hierarchy). */
static int cgroup2_root(char *why, size_t n)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], root[1024], point[1024], fstype[64];
	while (f && fgets(line, sizeof line, f)) {
		const char *dash = strstr(line, " - ");
		if (dash && sscanf(dash, " - %63s", fstype) == 1 && !strcmp(fstype, "cgroup2") &&
		    sscanf(line, "%*s %*s %*s %1023s %1023s", root, point) == 2 && !strcmp(root, "/")) {
			fclose(f);
			int fd = open(point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				snprintf(why, n, "cgroup v2 at %s: %s", point, strerror(errno));
			return fd;
		}
	}
	if (f)
		fclose(f);
	char dir[] = "/tmp/dlpgate-cgroup2-XXXXXX";
	if (!mkdtemp(dir)) {
		snprintf(why, n, "no cgroup v2 mount, and no directory for one: %s", strerror(errno));
		return -1;
	}
	int fd = -1;
	if (mount("none", dir, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
		snprintf(why, n, "no cgroup v2 mount, and mounting one failed: %s", strerror(errno));
	} else {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			snprintf(why, n, "cgroup v2: %s", strerror(errno));
		umount2(dir, MNT_DETACH);
	}
	rmdir(dir);
	return fd;
}

bool appid_bpf_start(char *why, size_t n)
{
	if (map_fd >= 0)
		return true;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = BPF_MAP_TYPE_LRU_HASH;
	a.key_size = sizeof(uint64_t);
	a.value_size = sizeof(record_t);
	a.max_entries = ENTRIES;
	snprintf(a.map_name, sizeof a.map_name, "dlpgate_appid");
	int map = (int)bpf(BPF_MAP_CREATE, &a);
	if (map < 0) {
		snprintf(why, n, "bpf map: %s", strerror(errno));
		return false;
	}
	int cg = cgroup2_root(why, n);
	if (cg < 0) {
		close(map);
		return false;
	}
	static const enum bpf_attach_type types[] = {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT};
	int links[2] = {-1, -1};
	bool ok = true;
	for (size_t i = 0; ok && i < 2; i++) {
		char log[2048];
		int prog = load(map, types[i], log, sizeof log);
		if (prog < 0) {
			snprintf(why, n, "bpf program: %s%s%.200s", strerror(errno), log[0] ? ": " : "", log);
			ok = false;
			break;
		}
		memset(&a, 0, sizeof a);
		a.link_create.prog_fd = (uint32_t)prog;
		a.link_create.target_fd = (uint32_t)cg;
		a.link_create.attach_type = types[i];
		links[i] = (int)bpf(BPF_LINK_CREATE, &a);
		if (links[i] < 0) {
			snprintf(why, n, "bpf link to cgroup v2: %s", strerror(errno));
			ok = false;
		}
		close(prog); /* the link holds it */
	}
	close(cg);
	if (!ok) {
		for (size_t i = 0; i < 2; i++)
			if (links[i] >= 0)
				close(links[i]);
		close(map);
		return false;
	}
	/* the links stay open, unnamed, for the life of the process */
	map_fd = map;
	return true;
}

bool appid_bpf_connector(uint64_t cookie, int64_t *pid, uint64_t *boot_ns)
{
	if (map_fd < 0 || !cookie)
		return false;
	record_t r;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (uint32_t)map_fd;
	a.key = (uint64_t)(uintptr_t)&cookie;
	a.value = (uint64_t)(uintptr_t)&r;
	if (bpf(BPF_MAP_LOOKUP_ELEM, &a) != 0 || !r.pid)
		return false;
	*pid = (int64_t)r.pid;
	*boot_ns = r.boot_ns;
	return true;
}

#else

bool appid_bpf_start(char *why, size_t n)
{
	snprintf(why, n, "Linux only");
	return false;
}

bool appid_bpf_connector(uint64_t cookie, int64_t *pid, uint64_t *boot_ns)
{
	(void)cookie, (void)pid, (void)boot_ns;
	return false;
}
#endif
