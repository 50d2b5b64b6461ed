#include "sources/transparent.h"

#ifdef __linux__

#include "flow.h"
#include "net/dial.h"
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

void transparent_start(flow_t *f)
{
	uv_os_fd_t fd;
	struct sockaddr_storage local, orig, peer;
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
	len = sizeof peer;
	if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
		memset(&peer, 0, sizeof peer); /* no family: appid finds nothing, the app stays unknown */
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
	f->appid = malloc(sizeof *f->appid);
	if (!f->appid) {
		flow_close(f, "error", "out of memory");
		return;
	}
	appid_lookup(&peer, &orig, f->appid);
	const appid_t *a = f->appid;
	f->facts.app = (flow_app_t){.pid = a->pid,
				    .uid = a->uid,
				    .path = a->path[0] ? a->path : NULL,
				    .cmdline = a->cmdline[0] ? a->cmdline : NULL,
				    .anchor = a->pid ? a->anchor : NULL};
	flow_set_destination(f, ip, port);
	flow_set_state(f, FLOW_DIAL);
	flow_idle(f, 0);
	flow_deadline(f, f->eng->cfg.connect_timeout_ms, "connect");
	int e = dial_start(f, ip, port, connected);
	if (e < 0)
		flow_close(f, "connect-failed", "cannot connect to %s: %s", ip, uv_strerror(e));
}

#else /* nftables and SO_ORIGINAL_DST are Linux's */

#include "flow.h"

void transparent_start(flow_t *f)
{
	flow_close(f, "refused", "transparent mode is Linux only");
}
#endif
