/*
 * App identity (sources/appid.h) against real processes and real loopback
 * connections: which process holds the client socket, as which uid,
 * running which program and with which command line; a cached process
 * that exec'd another program is read afresh; a client that is gone is
 * unknown, not a guess. Then the same with the kernel's record of
 * connects (BPF), which names the process that connected, and falls back
 * to /proc when that process is gone. Linux only (sock_diag, /proc, BPF).
 */
#include "dlp.h"
#include "sources/appid.h"
#include "suites.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int listener(struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof *a;
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)a, sizeof *a) == 0 && listen(fd, 16) == 0 &&
		  getsockname(fd, (struct sockaddr *)a, &len) == 0);
	return fd;
}

/* Accepts the next connection and looks up who made it. */
static void lookup_next(int l, appid_t *id)
{
	struct sockaddr_storage peer, local;
	socklen_t pl = sizeof peer, ll = sizeof local;
	int c = accept(l, (struct sockaddr *)&peer, &pl);
	ck_assert(c >= 0 && getsockname(c, (struct sockaddr *)&local, &ll) == 0);
	appid_lookup(&peer, &local, id);
	close(c);
}

/* A child that connects to a (as uid, unless 0) and waits for a byte on
 * the returned pipe. Then it exits, or with exec_path it execs bash there,
 * which connects again and waits for the pipe to close. */
static pid_t client(const struct sockaddr_in *a, uid_t uid, const char *exec_path, int *release)
{
	int p[2];
	ck_assert(pipe(p) == 0);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		if (uid && setuid(uid) != 0) /* first: a socket belongs to the uid that made it */
			_exit(1);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		char ch, port[16], fd[16];
		if (connect(c, (const struct sockaddr *)a, sizeof *a) != 0 || read(p[0], &ch, 1) != 1 || !exec_path)
			_exit(0);
		snprintf(port, sizeof port, "%u", ntohs(a->sin_port));
		snprintf(fd, sizeof fd, "%d", p[0]);
		execl(exec_path, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$0; read -r -u $1 _", port, fd, (char *)NULL);
		_exit(1);
	}
	close(p[0]);
	*release = p[1];
	return pid;
}

static void release(pid_t pid, int fd)
{
	close(fd);
	int status;
	ck_assert(waitpid(pid, &status, 0) == pid);
}

START_TEST(finds_the_process_its_uid_program_and_arguments)
{
	struct sockaddr_in a;
	int l = listener(&a);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	ck_assert(n > 0);
	self[n] = '\0';
	for (int round = 0; round < 2; round++) { /* the second is answered from the cache */
		int go;
		pid_t pid = client(&a, 0, NULL, &go);
		appid_t id;
		lookup_next(l, &id);
		ck_assert_int_eq(id.pid, pid);
		ck_assert_int_eq(id.uid, (int64_t)getuid());
		ck_assert_str_eq(id.path, self);
		ck_assert_msg(strstr(id.cmdline, "integration-tests"), "cmdline: %s", id.cmdline);
		ck_assert_str_eq(id.anchor, "user"); /* a program under build/, not a system directory */
		release(pid, go);
	}
	close(l);
}
END_TEST

START_TEST(names_the_uid_of_the_socket)
{
	if (geteuid() != 0) {
		fprintf(stderr, "names_the_uid_of_the_socket: SKIPPED: needs root to run a client as uid 65534\n");
		return;
	}
	struct sockaddr_in a;
	int l = listener(&a);
	int go;
	pid_t pid = client(&a, 65534, NULL, &go);
	appid_t id;
	lookup_next(l, &id);
	ck_assert_int_eq(id.uid, 65534);
	ck_assert_int_eq(id.pid, pid);
	ck_assert_str_eq(id.anchor, "user"); /* not a root-owned system program */
	release(pid, go);
	close(l);
}
END_TEST

/* A process seen once is cached; if it then execs another program, its
 * next connection must name that program, not the cached one. */
START_TEST(a_process_that_execs_is_read_again)
{
	struct sockaddr_in a;
	int l = listener(&a);
	char bash[PATH_MAX];
	ck_assert_msg(realpath("/bin/bash", bash), "no /bin/bash");
	int go;
	pid_t pid = client(&a, 0, bash, &go);
	appid_t id;
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, pid);
	ck_assert_msg(strcmp(id.path, bash) != 0, "before exec: %s", id.path);
	ck_assert(write(go, "x", 1) == 1); /* now exec bash, which connects */
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, pid);
	ck_assert_str_eq(id.path, bash);
	ck_assert_msg(strstr(id.cmdline, "/dev/tcp/127.0.0.1"), "cmdline: %s", id.cmdline);
	release(pid, go);
	close(l);
}
END_TEST

START_TEST(a_client_already_gone_is_unknown)
{
	struct sockaddr_in a;
	int l = listener(&a);
	int go;
	pid_t pid = client(&a, 0, NULL, &go);
	release(pid, go); /* the connection is queued; its client end is gone */
	appid_t id;
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, 0);
	ck_assert_str_eq(id.anchor, "user");
	close(l);
}
END_TEST

/* ---- with the kernel's record of connects (appid_bpf.c) ---- */

static bool bpf_or_skip(const char *test)
{
	char why[512];
	if (appid_bpf_start(why, sizeof why))
		return true;
	fprintf(stderr, "%s: SKIPPED: the kernel keeps no record of connects here: %s\n", test, why);
	return false;
}

/* A child that connects and then forks: both hold the socket and wait for
 * the pipe to close, or (connector_exits) the child exits at once and only
 * the grandchild holds it. The grandchild's pid comes back on `holder`. */
static pid_t connect_then_fork(const struct sockaddr_in *a, bool connector_exits, pid_t *holder, int *release)
{
	int p[2], back[2];
	ck_assert(pipe(p) == 0 && pipe(back) == 0);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		close(back[0]);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (const struct sockaddr *)a, sizeof *a) != 0)
			_exit(1);
		pid_t g = fork();
		if (g == 0) {
			char ch;
			(void)!read(p[0], &ch, 1);
			_exit(0);
		}
		if (write(back[1], &g, sizeof g) != sizeof g)
			_exit(1);
		if (!connector_exits) {
			char ch;
			(void)!read(p[0], &ch, 1);
		}
		_exit(0);
	}
	close(p[0]);
	close(back[1]);
	ck_assert(read(back[0], holder, sizeof *holder) == sizeof *holder);
	close(back[0]);
	if (connector_exits)
		ck_assert(waitpid(pid, NULL, 0) == pid);
	*release = p[1];
	return pid;
}

/* Both hold the socket; walking /proc would name the newest (the
 * grandchild); the record names the process that connected. */
START_TEST(bpf_names_the_process_that_connected)
{
	if (!bpf_or_skip("bpf_names_the_process_that_connected"))
		return;
	struct sockaddr_in a;
	int l = listener(&a);
	pid_t holder;
	int go;
	pid_t pid = connect_then_fork(&a, false, &holder, &go);
	appid_t id;
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, pid);
	ck_assert_int_eq(id.uid, (int64_t)getuid());
	ck_assert_msg(strstr(id.cmdline, "integration-tests"), "cmdline: %s", id.cmdline);
	close(go);
	ck_assert(waitpid(pid, NULL, 0) == pid);
	close(l);
}
END_TEST

/* The process that connected has exited: whoever holds the socket now. */
START_TEST(bpf_connector_gone_falls_back_to_the_holder)
{
	if (!bpf_or_skip("bpf_connector_gone_falls_back_to_the_holder"))
		return;
	struct sockaddr_in a;
	int l = listener(&a);
	pid_t holder;
	int go;
	connect_then_fork(&a, true, &holder, &go);
	appid_t id;
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, holder);
	close(go);
	close(l);
}
END_TEST

/* The same questions as without the record: the process and its program,
 * twice (the second from the cache), and an exec noticed. */
START_TEST(bpf_answers_like_proc)
{
	if (!bpf_or_skip("bpf_answers_like_proc"))
		return;
	struct sockaddr_in a;
	int l = listener(&a);
	char self[PATH_MAX], bash[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	ck_assert(n > 0 && realpath("/bin/bash", bash));
	self[n] = '\0';
	int go;
	pid_t pid = client(&a, 0, bash, &go);
	appid_t id;
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, pid);
	ck_assert_str_eq(id.path, self);
	ck_assert(write(go, "x", 1) == 1); /* exec bash, which connects */
	lookup_next(l, &id);
	ck_assert_int_eq(id.pid, pid);
	ck_assert_str_eq(id.path, bash);
	release(pid, go);
	close(l);
}
END_TEST

/* The engine's choice, on its start line: bpf unless told proc (or the
 * kernel refuses, which the line then says). Transparent mode marks its
 * sockets, so this needs root. */
static char *start_line_of(const char *how)
{
	char listen[64], name[64], log_name[64];
	snprintf(name, sizeof name, "state-%s", how);
	snprintf(log_name, sizeof log_name, "engine-%s.log", how);
	char *state = th_path(name);
	mkdir(state, 0700);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", th_free_port());
	char *const argv[] = {(char *)dlp_bin(), "run", "--transparent", listen, "--state-dir", state, "--app-identity",
			      (char *)how, NULL};
	th_proc p = th_spawn(argv, log_name);
	char *log = NULL;
	for (int i = 0; i < 100; i++) {
		free(log);
		log = th_log(&p);
		if (strstr(log, "event=start") || !th_alive(&p))
			break;
		usleep(50000);
	}
	th_stop(&p);
	free(state);
	return log;
}

START_TEST(the_engine_says_how_it_names_apps)
{
	if (geteuid() != 0) {
		fprintf(stderr, "the_engine_says_how_it_names_apps: SKIPPED: transparent mode needs root\n");
		return;
	}
	char *log = start_line_of("proc");
	ck_assert_msg(strstr(log, "app_identity=proc"), "%s", log);
	free(log);
	log = start_line_of("bpf");
	char why[512];
	bool kernel_can = appid_bpf_start(why, sizeof why);
	ck_assert_msg(strstr(log, kernel_can ? "app_identity=bpf" : "event=app_identity"), "%s", log);
	free(log);
}
END_TEST

Suite *appid_suite(void)
{
	Suite *s = suite_create("appid");
	TCase *tc = tcase_create("appid");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, finds_the_process_its_uid_program_and_arguments);
	tcase_add_test(tc, names_the_uid_of_the_socket);
	tcase_add_test(tc, a_process_that_execs_is_read_again);
	tcase_add_test(tc, a_client_already_gone_is_unknown);
	tcase_add_test(tc, bpf_names_the_process_that_connected);
	tcase_add_test(tc, bpf_connector_gone_falls_back_to_the_holder);
	tcase_add_test(tc, bpf_answers_like_proc);
	tcase_add_test(tc, the_engine_says_how_it_names_apps);
	suite_add_tcase(s, tc);
	return s;
}
