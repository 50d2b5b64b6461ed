/*
 * Processes: spawn daemons (th_spawn), run commands to completion (th_run, th_curl), and
 * make sure none outlives the test that started it.
 *
 * Every child is forked into its own process group so a stop reaches everything it forked
 * (nginx workers, shells' children). After fork the child only calls async-signal-safe
 * functions (setpgid, sigaction, dup2, close_range, execvpe, write, _exit): the test
 * process has threads (the upstream), and anything else could deadlock on a lock another
 * thread held at fork time. The environment is built before fork for the same reason.
 * A failed exec is reported through a close-on-exec pipe: the child writes errno into it;
 * a successful exec closes it, so the parent reads either errno or EOF.
 *
 * The registry keeps one entry per spawned process, tagged with the pid of the process
 * that spawned it. It owns log_path strings (th_proc only borrows them) and records exit
 * codes, so th_wait/th_stop/th_alive can be called in any order and more than once. An
 * entry is matched by pid and log_path pointer together, so a stale th_proc whose pid was
 * reused never reaches the new process. Processes inherited from a parent (a fixture that
 * started nginx before Check forked the test) can be used but not stopped: stopping them
 * would break the next tests.
 *
 * The guardian covers what atexit cannot: Check ends a failing test with _exit(), and
 * kills a test that times out. It is /bin/sh running a short script, with the read end of
 * a pipe as stdin, in its own process group (Check kills the test's group right after the
 * test, which would take the guardian with it). We write "add PGID", "del PGID" and
 * "dir PATH" lines; when the pipe reaches EOF, i.e. when the test process is gone however
 * it died, the script sends SIGTERM to the remaining groups, waits up to 5 s, sends
 * SIGKILL, and removes the temp dir. On a normal exit the atexit handler has already done
 * all of it, closes the pipe and reaps the guardian.
 */
#include "harness/harness.h"
#include "harness/harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- Child setup (runs between fork and exec: async-signal-safe calls only) ---------- */

static void child_move_fd(int from, int to)
{
	if (from == to) {
		int flags = fcntl(from, F_GETFD);
		if (flags >= 0) fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
	} else {
		dup2(from, to);
	}
}

static void child_setup(int in_fd, int out_fd, int err_fd)
{
	setpgid(0, 0);
	/* Undo the test process's SIGPIPE=SIG_IGN (ignored dispositions survive exec). */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGPIPE, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	child_move_fd(in_fd, 0);
	child_move_fd(out_fd, 1);
	child_move_fd(err_fd, 2);
	/* Descriptors the test opened without O_CLOEXEC (sockets, pipes) must not leak into
	 * a daemon: it would keep connections open and hide EOFs. CLOEXEC rather than close
	 * so the exec-error pipe still works until exec. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
		for (int fd = 3; fd < 4096; fd++) {
			int flags = fcntl(fd, F_GETFD);
			if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
		}
	}
}

/* ---- Environment -------------------------------------------------------------------- */

static size_t env_name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool env_overridden(const char *entry, char *const extra[])
{
	size_t n = env_name_len(entry);
	for (size_t i = 0; extra && extra[i]; i++)
		if (env_name_len(extra[i]) == n && strncmp(entry, extra[i], n) == 0) return true;
	return false;
}

/* environ minus the names in extra, plus extra's "NAME=value" entries. The strings are
 * borrowed; only the array is allocated. */
static char **build_env(char *const extra[])
{
	size_t n_env = 0, n_extra = 0;
	while (environ && environ[n_env]) n_env++;
	while (extra && extra[n_extra]) n_extra++;
	char **env = th_xcalloc(n_env + n_extra + 1, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n_env; i++)
		if (!env_overridden(environ[i], extra)) env[k++] = environ[i];
	for (size_t i = 0; i < n_extra; i++)
		if (strchr(extra[i], '=')) env[k++] = extra[i];
	env[k] = NULL;
	return env;
}

/* ---- Guardian ----------------------------------------------------------------------- */

static const char guardian_script[] =
    "# dash's kill takes no \"--\"; \"kill -SIG -PGID\" is how it signals a group.\n"
    "# A group counts as alive while it has a member that is not a zombie: killed\n"
    "# orphans stay zombies until init reaps them, and kill -0 would still see them.\n"
    "group_alive() {\n"
    "  want=$1\n"
    "  for f in /proc/[0-9]*/stat; do\n"
    "    read -r l 2>/dev/null < \"$f\" || continue\n"
    "    l=${l##*\\) }; set -- $l\n"
    "    [ \"$3\" = \"$want\" ] && [ \"$1\" != Z ] && return 0\n"
    "  done\n"
    "  return 1\n"
    "}\n"
    "groups=; dir=\n"
    "while read -r cmd arg; do\n"
    "  case \"$cmd\" in\n"
    "    add) groups=\"$groups $arg\" ;;\n"
    "    del) keep=; for g in $groups; do [ \"$g\" = \"$arg\" ] || keep=\"$keep $g\"; done\n"
    "         groups=$keep ;;\n"
    "    dir) dir=$arg ;;\n"
    "  esac\n"
    "done\n"
    "if [ -n \"$groups\" ]; then\n"
    "  for g in $groups; do kill -TERM \"-$g\" 2>/dev/null; done\n"
    "  n=0\n"
    "  while [ $n -lt 50 ]; do\n"
    "    alive=\n"
    "    for g in $groups; do group_alive \"$g\" && alive=1; done\n"
    "    [ -z \"$alive\" ] && break\n"
    "    sleep 0.1; n=$((n+1))\n"
    "  done\n"
    "  for g in $groups; do kill -KILL \"-$g\" 2>/dev/null; done\n"
    "fi\n"
    "[ -n \"$dir\" ] && rm -rf -- \"$dir\"\n"
    "exit 0\n";

static struct {
	pid_t owner;   /* process whose death the guardian watches */
	pid_t pid;
	int fd;        /* write end of its stdin pipe */
} guardian = {0, 0, -1};

static void guardian_say(const char *line)
{
	if (guardian.owner != getpid() || guardian.fd < 0) return;
	size_t len = strlen(line);
	/* One write of < PIPE_BUF bytes is atomic; EPIPE only if the guardian died. */
	while (write(guardian.fd, line, len) < 0 && errno == EINTR) {}
}

void th_guardian_ensure(void)
{
	th_process_init();
	pid_t me = getpid();
	if (guardian.owner == me) return;
	if (guardian.fd >= 0) close(guardian.fd); /* our copy of an ancestor's pipe */
	guardian.fd = -1;
	guardian.pid = 0;

	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) th_fail("guardian: pipe: %s", strerror(errno));
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) th_fail("guardian: open /dev/null: %s", strerror(errno));
	char *const argv[] = {"sh", "-c", (char *)guardian_script, "th-guardian", NULL};
	char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
	pid_t pid = fork();
	if (pid < 0) th_fail("guardian: fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(p[0], devnull, devnull);
		/* Ignore terminal signals: the guardian must outlive whatever kills the test. */
		struct sigaction ign = {.sa_handler = SIG_IGN};
		sigemptyset(&ign.sa_mask);
		sigaction(SIGINT, &ign, NULL);
		sigaction(SIGHUP, &ign, NULL);
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	setpgid(pid, pid);
	close(p[0]);
	close(devnull);
	guardian.owner = me;
	guardian.pid = pid;
	guardian.fd = p[1];
}

void th_guardian_watch_group(pid_t pgid)
{
	char line[64];
	snprintf(line, sizeof line, "add %ld\n", (long)pgid);
	guardian_say(line);
}

void th_guardian_forget_group(pid_t pgid)
{
	char line[64];
	snprintf(line, sizeof line, "del %ld\n", (long)pgid);
	guardian_say(line);
}

void th_guardian_watch_dir(const char *dir)
{
	if (th_keep_tmpdir() || strchr(dir, '\n')) return;
	char *line = th_xasprintf("dir %s\n", dir);
	if (strlen(line) < 512) guardian_say(line); /* PIPE_BUF: keep the write atomic */
	free(line);
}

void th_guardian_close(void)
{
	if (guardian.owner != getpid() || guardian.fd < 0) return;
	close(guardian.fd);
	guardian.fd = -1;
	/* Everything was cleaned already, so it exits at once; reap it (bounded wait). */
	int64_t deadline = th_now_ms() + 2000;
	while (waitpid(guardian.pid, NULL, WNOHANG) == 0 && th_now_ms() < deadline) th_sleep_ms(10);
	guardian.pid = 0;
	guardian.owner = 0;
}

/* ---- Registry ----------------------------------------------------------------------- */

typedef struct {
	pid_t pid;        /* also its process group id */
	pid_t owner;      /* the process that spawned it */
	char *log_path;   /* owned here */
	bool reaped;
	bool stopped;     /* th_stop done: group swept, guardian told */
	int exit_code;    /* valid once reaped */
} proc_entry;

static proc_entry *procs;
static size_t n_procs, cap_procs;

static proc_entry *register_proc(pid_t pid, char *log_path)
{
	if (n_procs == cap_procs) {
		cap_procs = cap_procs ? cap_procs * 2 : 16;
		procs = th_xrealloc(procs, cap_procs * sizeof *procs);
	}
	proc_entry *e = &procs[n_procs++];
	*e = (proc_entry){.pid = pid, .owner = getpid(), .log_path = log_path};
	return e;
}

static proc_entry *find_proc(const th_proc *p, const char *what)
{
	for (size_t i = n_procs; i-- > 0;)
		if (procs[i].pid == p->pid && procs[i].log_path == p->log_path) return &procs[i];
	th_fail("%s: pid %ld was not started by th_spawn", what, (long)p->pid);
}

static proc_entry *find_own_proc(const th_proc *p, const char *what)
{
	proc_entry *e = find_proc(p, what);
	if (e->owner != getpid())
		th_fail("%s: pid %ld (log %s) was spawned by process %ld, not by this one (%ld); "
		        "stop it where it was started", what, (long)e->pid, e->log_path,
		        (long)e->owner, (long)getpid());
	return e;
}

static int status_to_code(int status)
{
	if (WIFEXITED(status)) return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
	return -1;
}

/* Reap without blocking; true once the process is reaped (now or before). */
static bool try_reap(proc_entry *e)
{
	if (e->reaped) return true;
	int status;
	pid_t r;
	do r = waitpid(e->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == e->pid) {
		e->reaped = true;
		e->exit_code = status_to_code(status);
		return true;
	}
	if (r < 0) {
		/* ECHILD: someone else reaped it (e.g. a test's own waitpid(-1)). */
		e->reaped = true;
		e->exit_code = -1;
		return true;
	}
	return false;
}

static bool wait_reaped(proc_entry *e, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	for (;;) {
		if (try_reap(e)) return true;
		int64_t left = deadline - th_now_ms();
		if (left <= 0) return false;
		th_sleep_ms(left < 10 ? (int)left : 10);
	}
}

static void signal_group(pid_t pgid, int sig)
{
	killpg(pgid, sig); /* ESRCH just means the group is already empty */
}

/* SIGTERM, grace period, SIGKILL, reap, then SIGKILL whatever is left in the group. */
static void stop_entry(proc_entry *e)
{
	if (e->stopped) return;
	if (!e->reaped) {
		signal_group(e->pid, SIGTERM);
		kill(e->pid, SIGTERM); /* in case it left its group */
		if (!wait_reaped(e, 5000)) {
			fprintf(stderr, "harness: pid %ld ignored SIGTERM for 5 s, sending SIGKILL\n",
			        (long)e->pid);
			signal_group(e->pid, SIGKILL);
			kill(e->pid, SIGKILL);
			wait_reaped(e, 5000);
		}
	}
	signal_group(e->pid, SIGKILL); /* stragglers, e.g. workers of a killed master */
	th_guardian_forget_group(e->pid);
	e->stopped = true;
}

void th_proc_stop_all(void)
{
	pid_t me = getpid();
	/* TERM everyone first, then wait, so shutdowns overlap instead of adding up. */
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].owner == me && !procs[i].reaped) signal_group(procs[i].pid, SIGTERM);
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].owner == me) stop_entry(&procs[i]);
	for (size_t i = 0; i < n_procs; i++) free(procs[i].log_path);
	free(procs);
	procs = NULL;
	n_procs = cap_procs = 0;
}

/* ---- Spawn -------------------------------------------------------------------------- */

/* fork + execvpe with fds 0/1/2 set up. Returns the pid, or 0 with *exec_errno set. */
static pid_t spawn_child(char *const argv[], char **envp, int in_fd, int out_fd, int err_fd,
                         int *exec_errno)
{
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) != 0) th_fail("spawn %s: pipe: %s", argv[0], strerror(errno));
	pid_t pid = fork();
	if (pid < 0) th_fail("spawn %s: fork: %s", argv[0], strerror(errno));
	if (pid == 0) {
		child_setup(in_fd, out_fd, err_fd);
		execvpe(argv[0], argv, envp);
		int e = errno;
		while (write(errpipe[1], &e, sizeof e) < 0 && errno == EINTR) {}
		_exit(127);
	}
	setpgid(pid, pid); /* also from here, so the group exists before we signal it */
	th_guardian_watch_group(pid);
	close(errpipe[1]);
	int e = 0;
	ssize_t n;
	do n = read(errpipe[0], &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof e) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
		th_guardian_forget_group(pid);
		*exec_errno = e;
		return 0;
	}
	return pid;
}

static void check_argv(char *const argv[], const char *what)
{
	if (!argv || !argv[0] || !argv[0][0]) th_fail("%s: empty argv", what);
}

th_proc th_spawn_env(char *const argv[], char *const extra_env[], const char *log_name)
{
	check_argv(argv, "th_spawn");
	th_guardian_ensure();
	char *log_path = th_path(log_name);
	int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		int e = errno;
		char *msg = th_xasprintf("th_spawn %s: cannot open log %s: %s", argv[0], log_path, strerror(e));
		free(log_path);
		th_fail("%s", msg);
	}
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0) th_fail("th_spawn %s: open /dev/null: %s", argv[0], strerror(errno));
	char **envp = build_env(extra_env);
	int exec_errno = 0;
	pid_t pid = spawn_child(argv, envp, null_fd, log_fd, log_fd, &exec_errno);
	free(envp);
	close(null_fd);
	close(log_fd);
	if (pid == 0) {
		free(log_path);
		th_fail("th_spawn: cannot execute '%s': %s", argv[0], strerror(exec_errno));
	}
	register_proc(pid, log_path);
	return (th_proc){.pid = pid, .log_path = log_path};
}

th_proc th_spawn(char *const argv[], const char *log_name)
{
	return th_spawn_env(argv, NULL, log_name);
}

int th_wait(th_proc *p, int timeout_ms)
{
	if (!p || p->pid <= 0) th_fail("th_wait: process was already stopped (pid 0)");
	proc_entry *e = find_own_proc(p, "th_wait");
	if (!wait_reaped(e, timeout_ms < 0 ? 0 : timeout_ms)) return -1;
	return e->exit_code;
}

void th_stop(th_proc *p)
{
	if (!p || p->pid <= 0) return;
	stop_entry(find_own_proc(p, "th_stop"));
	p->pid = 0;
}

bool th_alive(const th_proc *p)
{
	if (!p || p->pid <= 0) return false;
	proc_entry *e = find_proc(p, "th_alive");
	if (e->owner != getpid()) return kill(e->pid, 0) == 0; /* an ancestor's: cannot reap */
	return !try_reap(e);
}

char *th_log(const th_proc *p)
{
	if (!p || !p->log_path) return th_xstrdup("(no log)");
	char *text = th_read_file(p->log_path, NULL);
	return text ? text : th_xstrdup("");
}

/* ---- Run to completion -------------------------------------------------------------- */

static void set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Read what is available; false at EOF or error (then the fd is closed and set to -1). */
static bool drain_fd(int *fd, th_buf *into)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = read(*fd, chunk, sizeof chunk);
		if (n > 0) {
			th_buf_put(into, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
		close(*fd);
		*fd = -1;
		return false;
	}
}

static int run_env(char *const argv[], char *const extra_env[], const void *stdin_data,
                   size_t stdin_len, char **out, size_t *out_len, char **err, int timeout_ms)
{
	check_argv(argv, "th_run");
	th_guardian_ensure();
	int in_pipe[2] = {-1, -1}, out_pipe[2], err_pipe[2];
	int child_in;
	if (stdin_data) {
		if (pipe2(in_pipe, O_CLOEXEC) != 0) th_fail("th_run %s: pipe: %s", argv[0], strerror(errno));
		child_in = in_pipe[0];
	} else {
		child_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (child_in < 0) th_fail("th_run %s: open /dev/null: %s", argv[0], strerror(errno));
	}
	if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
		th_fail("th_run %s: pipe: %s", argv[0], strerror(errno));

	char **envp = build_env(extra_env);
	int exec_errno = 0;
	pid_t pid = spawn_child(argv, envp, child_in, out_pipe[1], err_pipe[1], &exec_errno);
	free(envp);
	close(child_in);
	close(out_pipe[1]);
	close(err_pipe[1]);
	if (pid == 0) {
		if (in_pipe[1] >= 0) close(in_pipe[1]);
		close(out_pipe[0]);
		close(err_pipe[0]);
		th_fail("th_run: cannot execute '%s': %s", argv[0], strerror(exec_errno));
	}

	int in_fd = in_pipe[1], out_fd = out_pipe[0], err_fd = err_pipe[0];
	if (in_fd >= 0) set_nonblocking(in_fd);
	set_nonblocking(out_fd);
	set_nonblocking(err_fd);
	size_t in_done = 0;
	if (in_fd >= 0 && stdin_len == 0) {
		close(in_fd);
		in_fd = -1;
	}
	th_buf out_buf = {0}, err_buf = {0};
	int64_t deadline = th_now_ms() + timeout_ms;
	bool timed_out = false;

	/* Feed stdin and drain both outputs together: a child blocked writing a full stdout
	 * pipe never reads more stdin, so doing them one after the other can deadlock. */
	while (in_fd >= 0 || out_fd >= 0 || err_fd >= 0) {
		struct pollfd pfd[3];
		int n = 0, in_i = -1, out_i = -1, err_i = -1;
		if (in_fd >= 0) in_i = n, pfd[n++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
		if (out_fd >= 0) out_i = n, pfd[n++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
		if (err_fd >= 0) err_i = n, pfd[n++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
		int64_t left = deadline - th_now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		int r = poll(pfd, (nfds_t)n, (int)left);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) th_fail("th_run %s: poll: %s", argv[0], strerror(errno));
		if (in_i >= 0 && pfd[in_i].revents) {
			ssize_t w = write(in_fd, (const char *)stdin_data + in_done, stdin_len - in_done);
			if (w > 0) in_done += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_done == stdin_len) {
				/* done, or the child closed its stdin (EPIPE): either way, no more input */
				close(in_fd);
				in_fd = -1;
			}
		}
		if (out_i >= 0 && pfd[out_i].revents) drain_fd(&out_fd, &out_buf);
		if (err_i >= 0 && pfd[err_i].revents) drain_fd(&err_fd, &err_buf);
	}

	int status = 0;
	bool reaped = false;
	while (!timed_out) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			reaped = true;
			break;
		}
		if (r < 0 && errno != EINTR) th_fail("th_run %s: waitpid: %s", argv[0], strerror(errno));
		if (th_now_ms() >= deadline) timed_out = true;
		else th_sleep_ms(10);
	}
	if (in_fd >= 0) close(in_fd);
	if (out_fd >= 0) close(out_fd);
	if (err_fd >= 0) close(err_fd);
	if (!reaped) {
		killpg(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
	}
	killpg(pid, SIGKILL); /* anything it left behind in its group */
	th_guardian_forget_group(pid);
	if (timed_out) {
		char *tail = th_xstrdup(err_buf.data ? th_tail(err_buf.data, 2000) : "");
		th_buf_free(&out_buf);
		th_buf_free(&err_buf);
		char *msg = th_xasprintf("th_run: '%s' did not finish within %d ms (killed); stderr: %s",
		                         argv[0], timeout_ms, tail);
		free(tail);
		th_fail("%s", msg);
	}
	if (out) *out = th_buf_take(&out_buf, out_len);
	else th_buf_free(&out_buf);
	if (err) *err = th_buf_take(&err_buf, NULL);
	else th_buf_free(&err_buf);
	return status_to_code(status);
}

int th_run(char *const argv[], const void *stdin_data, size_t stdin_len, char **out,
           size_t *out_len, char **err, int timeout_ms)
{
	return run_env(argv, NULL, stdin_data, stdin_len, out, out_len, err, timeout_ms);
}

int th_curl(const char *const args[], char **out, size_t *out_len, char **err)
{
	size_t n = 0;
	while (args && args[n]) n++;
	/* -q first: ignore ~/.curlrc. Proxy variables removed: only an explicit --proxy counts. */
	const char **argv = th_xcalloc(n + 4, sizeof *argv);
	argv[0] = "curl";
	argv[1] = "-q";
	argv[2] = "-sS";
	for (size_t i = 0; i < n; i++) argv[3 + i] = args[i];
	static char *const no_proxy_env[] = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
	                                     "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
	                                     "CURL_HOME", NULL};
	/* argv strings are never written to; the cast only matches exec's historical type */
	int code = run_env((char *const *)argv, no_proxy_env, NULL, 0, out, out_len, err, 30000);
	free(argv);
	return code;
}

/* ---- Memory of a process ------------------------------------------------------------ */

static long status_field_kib(pid_t pid, const char *field)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	char *text = th_read_file(path, NULL);
	if (!text) th_fail("%s of pid %ld: %s does not exist (process gone?)", field, (long)pid, path);
	size_t flen = strlen(field);
	long kib = -1;
	for (char *line = text; *line;) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			kib = strtol(line + flen + 1, NULL, 10); /* "VmRSS:\t  1234 kB" */
			break;
		}
		char *next = strchr(line, '\n');
		if (!next) break;
		line = next + 1;
	}
	free(text);
	if (kib < 0) th_fail("%s of pid %ld: no such field in %s (zombie or kernel thread?)", field, (long)pid, path);
	return kib;
}

long th_rss_peak_kib(pid_t pid) { return status_field_kib(pid, "VmHWM"); }
long th_rss_kib(pid_t pid) { return status_field_kib(pid, "VmRSS"); }
