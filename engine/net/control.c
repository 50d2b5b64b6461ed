/* The local control socket; see control.h. */
#include "net/control.h"

#include "core/bytebuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONTROL_MAX_ANSWER (1 << 20)
#define CONTROL_TIMEOUT_S 5

struct control {
	uv_pipe_t pipe;
	control_answer_fn fn;
	void *ud;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

#define CONTROL_COMMAND_WAIT_MS 1000

typedef struct {
	uv_pipe_t pipe;
	uv_timer_t timer;          /* the command must come within a second */
	uv_write_t wr;
	control_t *ctl;
	char *answer;
	char command[CONTROL_MAX_COMMAND + 1];
	size_t n;
	int open_handles;
	bool answered;
} control_client_t;

static void client_closed(uv_handle_t *h)
{
	control_client_t *c = h->data;
	if (--c->open_handles > 0)
		return;
	free(c->answer);
	free(c);
}

static void client_close(control_client_t *c)
{
	uv_close((uv_handle_t *)&c->timer, client_closed);
	uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void written(uv_write_t *wr, int status)
{
	(void)status;
	client_close(wr->data);
}

/* Answers the command read so far (once), then closes. */
static void answer(control_client_t *c)
{
	if (c->answered)
		return;
	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	uv_timer_stop(&c->timer);
	c->command[c->n] = '\0';
	char *nl = strchr(c->command, '\n');
	if (nl)
		*nl = '\0';
	if (nl && nl > c->command && nl[-1] == '\r')
		nl[-1] = '\0';
	c->answer = c->ctl->fn(c->ctl->ud, c->command[0] ? c->command : "status");
	if (!c->answer) {
		client_close(c);
		return;
	}
	uv_buf_t b = uv_buf_init(c->answer, (unsigned)strlen(c->answer));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, written) != 0)
		client_close(c);
}

static void alloc_command(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	control_client_t *c = h->data;
	/* one byte at most past the limit: enough to know it was passed */
	*buf = uv_buf_init(c->command + c->n, (unsigned)(CONTROL_MAX_COMMAND + 1 - c->n));
}

static void on_command(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	control_client_t *c = s->data;
	if (nread > 0)
		c->n += (size_t)nread;
	if (c->n > CONTROL_MAX_COMMAND) {
		c->n = 0;
		snprintf(c->command, sizeof c->command, "%s", "(too long)");
		c->n = strlen(c->command);
		answer(c);
	} else if (nread < 0 || memchr(c->command, '\n', c->n)) {
		answer(c);
	}
}

static void command_late(uv_timer_t *t)
{
	answer(t->data);
}

static void on_client(uv_stream_t *server, int status)
{
	control_t *ctl = server->data;
	if (status < 0)
		return;
	control_client_t *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->ctl = ctl;
	c->open_handles = 2;
	uv_pipe_init(server->loop, &c->pipe, 0);
	uv_timer_init(server->loop, &c->timer);
	c->pipe.data = c->timer.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, alloc_command, on_command) != 0) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->timer, command_late, CONTROL_COMMAND_WAIT_MS, 0);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* SOCK_CLOEXEC is Linux's */
	if (fd < 0)
		return -1;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void control_closed(uv_handle_t *h)
{
	free(h->data);
}

control_t *control_start(uv_loop_t *loop, const char *path, control_answer_fn fn, void *ud, char *err,
			 size_t errlen)
{
	control_t *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (strlen(path) >= sizeof c->path) {
		snprintf(err, errlen, "%s: path longer than %zu bytes (a unix socket's limit)", path, sizeof c->path - 1);
		free(c);
		return NULL;
	}
	snprintf(c->path, sizeof c->path, "%s", path);
	int fd = connect_unix(path);
	if (fd >= 0) {
		close(fd);
		snprintf(err, errlen, "%s answers: another dlpgate runs with this state dir", path);
		free(c);
		return NULL;
	}
	unlink(path); /* stale: its daemon is gone */
	c->fn = fn;
	c->ud = ud;
	uv_pipe_init(loop, &c->pipe, 0);
	c->pipe.data = c;
	mode_t old = umask(0177); /* born 0600: no window where others could connect */
	int r = uv_pipe_bind(&c->pipe, path);
	umask(old);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&c->pipe, 16, on_client);
	if (r != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", path, uv_strerror(r));
		uv_close((uv_handle_t *)&c->pipe, control_closed);
		return NULL;
	}
	return c;
}

void control_stop(control_t *c)
{
	if (!c)
		return;
	unlink(c->path);
	uv_close((uv_handle_t *)&c->pipe, control_closed);
}

char *control_ask(const char *path, const char *command, char *err, size_t errlen)
{
	int fd = connect_unix(path);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char line[CONTROL_MAX_COMMAND + 2];
	int len = snprintf(line, sizeof line, "%s\n", command);
	if (len < 0 || (size_t)len >= sizeof line || write(fd, line, (size_t)len) != len) {
		snprintf(err, errlen, "%s: cannot send the command: %s", path, len < 0 || (size_t)len >= sizeof line ? "too long" : strerror(errno));
		close(fd);
		return NULL;
	}
	struct timeval tv = {.tv_sec = CONTROL_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	bytebuf_t answer;
	bytebuf_init(&answer, CONTROL_MAX_ANSWER);
	char chunk[4096];
	ssize_t n;
	do
		n = read(fd, chunk, sizeof chunk);
	while ((n > 0 && bytebuf_append(&answer, chunk, (size_t)n)) || (n < 0 && errno == EINTR));
	int e = errno;
	close(fd);
	if (n == 0 && bytebuf_cstr(&answer))
		return answer.data;
	snprintf(err, errlen, "%s: %s", path,
		 n >= 0 ? "answer larger than 1 MiB" : e == EAGAIN ? "no answer within 5 s" : strerror(e));
	bytebuf_free(&answer);
	return NULL;
}
