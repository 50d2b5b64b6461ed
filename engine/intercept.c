#include "intercept.h"

#include "core/log.h"
#include "core/stats.h"
#include "flow.h"
#include "http/relay.h"
#include "net/worker.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

static const char *server_name(const flow_t *f)
{
	return f->sni[0] ? f->sni : f->host;
}

/* ---- client side while the upstream handshake runs ---- */

static void hold_client_data(side_t *s, iobuf_t *b)
{
	/* A client does not send after its hello before our reply; if one
	 * does, keep the bytes (bounded) for the handshake. */
	flow_t *f = side_flow(s);
	bool ok = bytebuf_append(&f->peek, b->data, b->len);
	iobuf_put(b);
	if (!ok)
		flow_close(f, "error", "client sent too much during the TLS handshake");
}

static void hold_upstream_data(side_t *s, iobuf_t *b)
{
	flow_t *f = side_flow(s);
	bool ok = bytebuf_append(&f->early, b->data, b->len);
	iobuf_put(b);
	if (!ok)
		flow_close(f, "error", "upstream sent too much before the first request");
}

static void client_eof_early(side_t *s)
{
	flow_finish(side_flow(s), "client-eof", "client closed during the upstream TLS handshake");
}

static void side_error(side_t *s, const char *why)
{
	flow_close(side_flow(s), "error", "%s: %s", s->name, why);
}

static void no_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t client_waiting_ops = {hold_client_data, client_eof_early, side_error, no_handshake};

/* ---- client handshake ---- */

/* The app behind the flow, as the pinned list knows apps; false when the
 * source cannot tell (the explicit proxy). */
static bool pinned_app(const flow_t *f, char out[PINNED_APP_MAX])
{
	const flow_app_t *a = &f->facts.app;
	return pinned_app_key(a->signing_id, a->team_id, a->path, a->uid, a->pid > 0, out);
}

static void pinned_client(flow_t *f, const char *how)
{
	metrics_add(stats_handshakes, 1, "client", "rejected_certificate", NULL);
	const char *name = server_name(f);
	char app[PINNED_APP_MAX];
	bool known = pinned_app(f, app);
	if (known)
		pinned_add(f->eng->pinned, app, name);
	log_line_t l;
	log_begin(&l, LOG_WARN, "client_rejected_cert");
	log_kv_u64(&l, "flow", f->id);
	log_kv_str(&l, "src", f->client_ip);
	log_kv_str(&l, "app", known ? app : NULL);
	log_kv_str(&l, "server", name);
	log_kv_str(&l, "how", how);
	log_kv_u64(&l, "remembered_s", known ? f->eng->cfg.pinned_ttl_s : 0);
	log_end(&l);
	if (known)
		flow_close(f, "client-rejected-cert",
			   "%s; for %us this app's flows to %s go to the policy as uninspectable (pinned)", how,
			   f->eng->cfg.pinned_ttl_s, name);
	else
		flow_close(f, "client-rejected-cert", "%s; not remembered: the client has no identity to remember", how);
}

static void client_handshake_done(side_t *s)
{
	flow_t *f = side_flow(s);
	metrics_add(stats_handshakes, 1, "client", "ok", NULL);
	bytebuf_free(&f->peek);
	flow_deadline(f, 0, NULL);
	if (f->report.status) {
		relay_start_report(f);
		return;
	}
	relay_start_tls(f);
}

static void client_handshake_error(side_t *s, const char *why)
{
	flow_t *f = side_flow(s);
	if (s->tls_error && tlsctx_client_rejected_cert(s->tls_error)) {
		char how[160];
		snprintf(how, sizeof how, "client aborted the handshake: %s", ERR_reason_error_string(s->tls_error));
		pinned_client(f, how);
		return;
	}
	metrics_add(stats_handshakes, 1, "client", "error", NULL);
	flow_close(f, "client-tls-error", "%s: %s", why,
		   s->tls_error ? ERR_reason_error_string(s->tls_error) : "no detail");
}

static void client_handshake_eof(side_t *s)
{
	flow_t *f = side_flow(s);
	/* Closing right after our certificate went out, having sent nothing
	 * since the hello, is how many pinned apps say no; closing before we
	 * sent anything is not, nor is closing in the middle of a flight of
	 * its own (an aborted or broken handshake, not a verdict on us). */
	if (s->bytes_out > 0 && s->bytes_in == f->client_bytes_at_hello) {
		pinned_client(f, "client closed the connection after seeing our certificate");
		return;
	}
	metrics_add(stats_handshakes, 1, "client", "closed", NULL);
	flow_finish(f, "client-eof", "client closed during the TLS handshake");
}

static void upstream_eof_idle(side_t *s)
{
	/* Upstream closed while the client handshake runs; the relay sees the
	 * side's EOF flag and answers the first request accordingly. */
	(void)s;
}

static const side_ops_t client_tls_ops = {hold_client_data, client_handshake_eof, client_handshake_error,
					  client_handshake_done};
static const side_ops_t upstream_idle_ops = {hold_upstream_data, upstream_eof_idle, side_error, no_handshake};

static void start_client_tls(flow_t *f, X509 *upstream_cert)
{
	X509 *leaf = mint_leaf(f->eng->mint, upstream_cert, server_name(f));
	SSL *ssl = leaf ? tlsctx_new_server(&f->eng->tls, leaf, mint_leaf_key(f->eng->mint)) : NULL;
	X509_free(leaf);
	if (!ssl) {
		flow_close(f, "error", "cannot mint a certificate for %s", server_name(f));
		return;
	}
	flow_set_state(f, FLOW_TLS_DOWN);
	flow_deadline(f, f->eng->cfg.handshake_timeout_ms, "client TLS handshake");
	f->client.ops = &client_tls_ops;
	/* The hello was parsed from these bytes; OpenSSL now reads the same. */
	f->client_bytes_at_hello = f->client.bytes_in;
	side_tls_start(&f->client, ssl, f->peek.data, f->peek.len);
	if (!f->closing && f->state == FLOW_TLS_DOWN) {
		f->peek.len = 0;
		side_read(&f->client, true);
	}
}

/* ---- upstream handshake ---- */

static void upstream_handshake_done(side_t *s)
{
	flow_t *f = side_flow(s);
	s->ops = &upstream_idle_ops;
	metrics_add(stats_handshakes, 1, "upstream", "ok", NULL);
	start_client_tls(f, SSL_get0_peer_certificate(s->ssl));
}

static void upstream_handshake_error(side_t *s, const char *why)
{
	flow_t *f = side_flow(s);
	tlsctx_forget_session(&f->eng->tls, f->session_key);
	const char *verify = tlsctx_verify_error(s->ssl);
	metrics_add(stats_handshakes, 1, "upstream", verify ? "certificate_rejected" : "error", NULL);
	char detail[600];
	if (verify)
		snprintf(detail, sizeof detail, "the certificate of %s failed verification: %s", server_name(f),
			 verify);
	else
		snprintf(detail, sizeof detail, "TLS with %s failed: %s", server_name(f),
			 s->tls_error ? ERR_reason_error_string(s->tls_error) : why);
	log_line_t l;
	log_begin(&l, LOG_WARN, "upstream_tls_error");
	log_kv_u64(&l, "flow", f->id);
	log_kv_str(&l, "server", server_name(f));
	log_kv_u64(&l, "port", f->port);
	log_kv_str(&l, "error", detail);
	log_end(&l);
	f->mode = "refused";
	intercept_report(f, 502, "upstream-tls", "Upstream TLS failed", detail);
}

static void upstream_handshake_eof(side_t *s)
{
	upstream_handshake_error(s, "the server closed the connection during the handshake");
}

static const side_ops_t upstream_tls_ops = {hold_upstream_data, upstream_handshake_eof, upstream_handshake_error,
					    upstream_handshake_done};

static void start_upstream_tls(flow_t *f)
{
	const char *name = server_name(f);
	snprintf(f->session_key, sizeof f->session_key, "%s:%u|%s", f->host, f->port, f->sni);
	SSL *ssl = tlsctx_new_upstream(&f->eng->tls, name, f->sni[0] ? f->sni : f->host, f->session_key);
	if (!ssl) {
		flow_close(f, "error", "cannot set up TLS to %s", name);
		return;
	}
	f->mode = "inspect";
	flow_set_state(f, FLOW_TLS_UP);
	flow_deadline(f, f->eng->cfg.handshake_timeout_ms, "upstream TLS handshake");
	f->client.ops = &client_waiting_ops;
	side_read(&f->client, false);
	f->upstream.ops = &upstream_tls_ops;
	side_tls_start(&f->upstream, ssl, NULL, 0);
	if (!f->closing)
		side_read(&f->upstream, true);
}

/* The policy refused a flow it cannot inspect: the client gets the block
 * page if it will take our certificate, and the connection ends. */
static void refuse_uninspectable(flow_t *f)
{
	f->mode = "blocked";
	intercept_report(f, 403, "blocked", "Blocked by policy", f->verdict.reason);
}

void intercept_decide(flow_t *f, const clienthello_t *ch)
{
	if (ch->has_sni)
		snprintf(f->sni, sizeof f->sni, "%s", ch->sni);
	f->facts.tls = true;
	f->facts.alpn_http11 = !ch->has_alpn || ch->alpn_http11;
	flow_decide(f);
	switch (f->verdict.kind) {
	case VERDICT_BYPASS:
		flow_splice(f, "bypass");
		return;
	case VERDICT_BLOCK:
		f->mode = "blocked";
		flow_report_decision(f, NULL); /* the page names its event */
		intercept_report(f, 403, "blocked", "Blocked by policy", f->verdict.reason);
		return;
	default:
		break;
	}
	const char *name = server_name(f);
	/* what the client chose must not decide what leaves uninspected: the
	 * policy does (on_uninspectable) */
	char app[PINNED_APP_MAX];
	if (pinned_app(f, app) && pinned_check(f->eng->pinned, app, name)) {
		if (flow_uninspectable(f, UNINSPECTABLE_PINNED, "this client refused dlpgate's certificate for %s earlier",
				       name))
			flow_splice(f, "pinned");
		else
			refuse_uninspectable(f);
		return;
	}
	if (!f->facts.alpn_http11) {
		if (flow_uninspectable(f, UNINSPECTABLE_ALPN, "the client offers ALPN %s%s but not http/1.1",
				       ch->n_alpn ? ch->alpn[0] : "?", ch->n_alpn > 1 ? ",..." : ""))
			flow_splice(f, "not-http");
		else
			refuse_uninspectable(f);
		return;
	}
	start_upstream_tls(f);
}

void intercept_report(flow_t *f, int status, const char *code, const char *title, const char *detail)
{
	f->report.status = status;
	f->report.code = code;
	f->report.title = title;
	str_copy(f->report.detail, sizeof f->report.detail, detail);
	side_close(&f->upstream); /* nothing will be sent there */
	start_client_tls(f, NULL);
}
