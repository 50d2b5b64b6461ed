#include "sources/transparent.h"

#ifdef __linux__

#include "flow.h"
#include "net/worker.h"
#include "sources/appid.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h, which does not compile alone */
#endif

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return !memcmp(a, b, sizeof(struct sockaddr_in));
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr);
}

static void connected(flow_t *f, int status, const char *why)
{
	flow_deadline(f, 0, NULL);
	if (status) {
		/* the client sees what it would without us: the connection ends */
		flow_close(f, "connect-failed", "%s", why);
		return;
	}
	flow_tunnel_start(f);
}

typedef struct {
	uv_work_t req;
	flow_t *f;
	struct sockaddr_storage peer, orig;
} lookup_t;

static void lookup_work(uv_work_t *req)
{
	lookup_t *job = req->data;
	appid_lookup(&job->peer, &job->orig, job->f->appid);
}

/* Back on the loop: the app is known; connect to where the client meant. */
static void lookup_done(uv_work_t *req, int status)
{
	lookup_t *job = req->data;
	flow_t *f = job->f;
	struct sockaddr_storage orig = job->orig;
	free(job);
	if (f->closing) {
		flow_handle_released(f); /* it closed meanwhile: let it go */
		return;
	}
	f->handles--;
	if (status != 0) {
		flow_close(f, "error", "app lookup: %s", uv_strerror(status));
		return;
	}
	uint16_t port;
	char ip[64];
	if (orig.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&orig;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
		port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&orig;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
		port = ntohs(a->sin_port);
	}
	const appid_t *a = f->appid;
	f->facts.app = (flow_app_t){.pid = a->pid,
				    .uid = a->uid,
				    .path = a->path[0] ? a->path : NULL,
				    .cmdline = a->cmdline[0] ? a->cmdline : NULL,
				    .anchor = a->pid ? a->anchor : NULL};
	flow_set_destination(f, ip, port);
	int e = flow_dial(f, ip, port, connected);
	if (e < 0)
		flow_close(f, "connect-failed", "cannot connect to %s: %s", ip, uv_strerror(e));
}

void transparent_start(flow_t *f)
{
	uv_os_fd_t fd;
	struct sockaddr_storage local, orig;
	socklen_t len = sizeof local;
	if (uv_fileno((uv_handle_t *)f->client.stream, &fd) != 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &len) != 0) {
		flow_close(f, "error", "cannot read the connection's addresses");
		return;
	}
	len = sizeof orig;
	int r = local.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &len)
					    : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len);
	if (r != 0 || same_address(&orig, &local)) {
		f->mode = "refused";
		flow_close(f, "not-redirected",
			   "no original destination: the transparent port takes redirected connections only "
			   "(dlpgate redirect install)");
		return;
	}
	lookup_t *job = calloc(1, sizeof *job);
	f->appid = malloc(sizeof *f->appid);
	if (!job || !f->appid) {
		free(job);
		flow_close(f, "error", "out of memory");
		return;
	}
	len = sizeof job->peer;
	if (getpeername(fd, (struct sockaddr *)&job->peer, &len) != 0)
		memset(&job->peer, 0, sizeof job->peer); /* no family: the app stays unknown */
	job->orig = orig;
	job->f = f;
	job->req.data = job;
	flow_set_state(f, FLOW_DIAL);
	flow_idle(f, 0);
	flow_deadline(f, f->eng->cfg.connect_timeout_ms, "connect");
	/* Reading /proc can take a millisecond: the pool does it, not the loop
	 * every other flow of this worker runs on. The flow stays allocated
	 * while the job holds it (one more handle). */
	f->handles++;
	if (uv_queue_work(&f->w->loop, &job->req, lookup_work, lookup_done) != 0) {
		f->handles--;
		free(job);
		flow_close(f, "error", "cannot queue the app lookup");
	}
}

#else /* nftables and SO_ORIGINAL_DST are Linux's */

#include "flow.h"

void transparent_start(flow_t *f)
{
	flow_close(f, "refused", "transparent mode is Linux only");
}
#endif
