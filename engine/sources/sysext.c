#include "sources/sysext.h"

#include "core/log.h"
#include "flow.h"
#include "sources/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* The peer's uid from the kernel, not from anything it sent. */
static bool peer_uid(flow_t *f, int64_t *uid)
{
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)f->client.stream, &fd) != 0)
		return false;
#ifdef SO_PEERCRED
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return false;
	*uid = cred.uid;
#else
	uid_t u;
	gid_t g;
	if (getpeereid(fd, &u, &g) != 0)
		return false;
	*uid = u;
#endif
	return true;
}

static void reply(flow_t *f, frame_verdict_t v, const char *reason)
{
	frame_reply_t r = {.verdict = v};
	snprintf(r.reason, sizeof r.reason, "%s", reason ? reason : "");
	snprintf(r.policy_version, sizeof r.policy_version, "%s", f->policy->version_text);
	bytebuf_t out;
	bytebuf_init(&out, 0);
	if (frame_reply_encode(&r, &out))
		side_write(&f->client, out.data, out.len);
	bytebuf_free(&out);
}

static void connected(flow_t *f, int status, const char *why)
{
	flow_deadline(f, 0, NULL);
	if (status) {
		reply(f, FRAME_REJECT, why);
		flow_finish(f, "connect-failed", "%s", why);
		return;
	}
	reply(f, FRAME_ACCEPT, NULL);
	flow_tunnel_start(f);
}

/* The header is in: the facts it gives, the decision on them. */
static void start_flow(flow_t *f)
{
	frame_request_t *h = f->sysext;
	snprintf(f->client_ip, sizeof f->client_ip, "pid:%lld", (long long)h->app.pid);
	f->facts.app = (flow_app_t){
		.pid = h->app.pid,
		.uid = h->app.uid,
		.path = h->app.path,
		.signing_id = h->app.signing_id[0] ? h->app.signing_id : NULL,
		.team_id = h->app.team_id[0] ? h->app.team_id : NULL,
		.anchor = frame_anchor_name(h->app.anchor),
	};
	flow_set_destination(f, h->hostname[0] ? h->hostname : h->dst_ip, h->dst_port);
	flow_decide(f);
	if (f->verdict.kind == VERDICT_BYPASS) {
		f->mode = "bypass";
		reply(f, FRAME_BYPASS, f->verdict.reason);
		flow_finish(f, "bypass", "%s", f->verdict.reason);
		return;
	}
	if (f->verdict.kind == VERDICT_BLOCK) {
		f->mode = "refused";
		reply(f, FRAME_REJECT, f->verdict.reason);
		flow_finish(f, "blocked", "%s", f->verdict.reason);
		return;
	}
	side_read(&f->client, false); /* the flow's own bytes wait for the upstream */
	flow_set_state(f, FLOW_DIAL);
	flow_deadline(f, f->eng->cfg.connect_timeout_ms, "connect");
	int e = flow_dial(f, h->dst_ip, h->dst_port, connected);
	if (e < 0) {
		char why[200];
		snprintf(why, sizeof why, "cannot connect to %s: %s", h->dst_ip, uv_strerror(e));
		reply(f, FRAME_REJECT, why);
		flow_finish(f, "connect-failed", "%s", why);
	}
}

/* A control connection: {"get": "bypass_table"} is answered with the
 * table of the policy this connection started under, then closed. */
static void control(flow_t *f)
{
	const char *json;
	size_t len, used;
	char err[200];
	frame_status_t st = frame_control_decode((const uint8_t *)f->peek.data, f->peek.len, &json, &len, &used, err,
						 sizeof err);
	if (st == FRAME_NEED_MORE)
		return;
	f->mode = "control";
	static const char want[] = "{\"get\":\"bypass_table\"}";
	if (st == FRAME_BAD || len != sizeof want - 1 || memcmp(json, want, len)) {
		flow_finish(f, "bad-frame", "control: %s", st == FRAME_BAD ? err : "the one request is {\"get\":\"bypass_table\"}");
		return;
	}
	char empty[128];
	const char *table = f->policy->static_bypass_json;
	if (!table) { /* the policy states none: an empty table, with the version to compare */
		snprintf(empty, sizeof empty, "{\"policy_version\":\"%s\",\"apple_platform\":false}", f->policy->version_text);
		table = empty;
	}
	bytebuf_t out;
	bytebuf_init(&out, 0);
	if (frame_control_encode(table, strlen(table), &out))
		side_write(&f->client, out.data, out.len);
	bytebuf_free(&out);
	flow_finish(f, "control", "bypass table sent");
}

static void header_data(side_t *s, iobuf_t *b)
{
	flow_t *f = side_flow(s);
	bool ok = bytebuf_append(&f->peek, b->data, b->len);
	iobuf_put(b);
	if (!ok) { /* cannot happen with a valid frame: the cap holds the largest one */
		flow_close(f, "bad-frame", "header frame larger than allowed");
		return;
	}
	if (f->peek.len >= 4 && !memcmp(f->peek.data, FRAME_CONTROL_MAGIC, 4)) {
		control(f);
		return;
	}
	char err[200];
	size_t used = 0;
	frame_status_t st = frame_request_decode((const uint8_t *)f->peek.data, f->peek.len, f->sysext, &used, err,
						 sizeof err);
	if (st == FRAME_NEED_MORE)
		return;
	if (st == FRAME_BAD) {
		f->mode = "refused";
		reply(f, FRAME_REJECT, err);
		flow_finish(f, "bad-frame", "%s", err);
		return;
	}
	bytebuf_consume(&f->peek, used); /* what follows is the flow's first bytes */
	flow_deadline(f, 0, NULL);
	start_flow(f);
}

static void header_eof(side_t *s)
{
	flow_finish(side_flow(s), "bad-frame", "the extension closed before its header frame was complete");
}

static void header_error(side_t *s, const char *why)
{
	flow_close(side_flow(s), "error", "%s: %s", s->name, why);
}

static void no_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t header_ops = {header_data, header_eof, header_error, no_handshake};

void sysext_start(flow_t *f)
{
	snprintf(f->client_ip, sizeof f->client_ip, "sysext");
	int64_t uid = -1;
	if (!peer_uid(f, &uid) || (uid != 0 && uid != f->eng->sysext_uid)) {
		f->mode = "refused";
		flow_close(f, "refused", "unix peer uid %lld may not use the system extension socket (root%s)",
			   (long long)uid, f->eng->sysext_uid >= 0 ? " or --sysext-uid" : " only");
		return;
	}
	f->sysext = calloc(1, sizeof *f->sysext);
	if (!f->sysext) {
		flow_close(f, "error", "out of memory");
		return;
	}
	f->peek.cap += FRAME_PREFIX + FRAME_MAX_JSON;
	f->client.ops = &header_ops;
	flow_set_state(f, FLOW_REQUEST);
	flow_deadline(f, f->eng->cfg.header_timeout_ms, "flow header");
	side_read(&f->client, true);
}
