// One event, answering "why": the verdict and its reason first, then the
// rule that decided it with that policy version's own source lines around
// it, the detectors that fired (masked samples, role permitting), and the
// app, flow, agent and policy version it happened on.
import { html } from 'htm/preact';
import { get, qs } from '../api.js';
import { Link } from '../router.js';
import { ErrorBox, Facts, Loading, Time, Verdict, bytes, num, useFetch } from '../ui.js';

const CONTEXT = 4;

// "policy.lua:12" (or a path ending so) in a console version "v7".
export function ruleLocation(ev) {
	const m = /^(.+):(\d+)$/.exec(ev.rule || '');
	const v = /^v(\d+)$/.exec(ev.policy_version || '');
	if (!m) return null;
	return { file: m[1], line: Number(m[2]), version: v ? Number(v[1]) : null };
}

function RuleSource({ loc }) {
	const url = loc.version ? `/api/v1/policies/${loc.version}/files/${loc.file.split('/').map(encodeURIComponent).join('/')}` : null;
	const { data, error, loading } = useFetch(url && (() => get(url, { text: true })), [url]);
	if (!loc.version) return html`<p class="muted">This agent ran a local policy file, not a console version: its source is not stored here.</p>`;
	if (loading) return html`<${Loading} what="Loading the rule's source" />`;
	if (error) return html`<p class="muted">Source not available${error.status === 403 ? ' to your role' : `: ${error.message}`}.</p>`;
	const lines = data.split('\n');
	const from = Math.max(1, loc.line - CONTEXT), to = Math.min(lines.length, loc.line + CONTEXT);
	const shown = [];
	for (let n = from; n <= to; n++) shown.push(n);
	return html`<figure class="source">
		<figcaption>${loc.file} in <${Link} href=${`/policies/${loc.version}`}>policy v${loc.version}</${Link}></figcaption>
		<pre><code>${shown.map(
			(n) => html`<span class=${n === loc.line ? 'line hit' : 'line'} data-line=${n}><span class="ln" aria-hidden="true">${n}</span>${lines[n - 1]}\n</span>`,
		)}</code></pre>
	</figure>`;
}

function Detectors({ detectors, session }) {
	const entries = Object.entries(detectors || {});
	if (entries.length === 0) return html`<p class="muted">No detector fired: the policy decided from the flow alone.</p>`;
	const hidden = session.role === 'viewer';
	return html`<table class="detectors">
		<thead><tr><th>Detector</th><th>Matches</th><th>Severity</th><th>Masked samples</th></tr></thead>
		<tbody>
			${entries.map(
				([name, d]) => html`<tr>
					<td><${Link} href=${`/events${qs({ detector: name })}`}>${name}</${Link}></td>
					<td>${num(d.count)}${d.timed_out ? ' (scan timed out)' : ''}</td>
					<td>${d.severity || '—'}</td>
					<td class="samples">${
						hidden || !d.samples
							? html`<span class="muted">hidden for the viewer role</span>`
							: d.samples.length === 0
								? html`<span class="muted">none kept</span>`
								: d.samples.map((s) => html`<code class="sample">${s}</code> `)
					}</td>
				</tr>`,
			)}
		</tbody>
	</table>`;
}

const verb = { block: 'Blocked', redact: 'Redacted', pass: 'Passed', bypass: 'Bypassed', inspect: 'Inspected' };

export function EventDetail({ id, session }) {
	const { data: ev, error, loading } = useFetch(`/api/v1/events/${encodeURIComponent(id)}`);
	if (loading) return html`<main id="main"><${Loading} /></main>`;
	if (error) return html`<main id="main"><h1>Event</h1><${ErrorBox} error=${error} /></main>`;
	const f = ev.flow || {}, app = ev.app || {};
	const loc = ruleLocation(ev);
	const shadow = ev.event === 'shadow';
	return html`<main id="main" class="event">
		<p class="crumbs"><${Link} href="/events">Events</${Link}> › ${ev.id}</p>
		<section class=${`card why v-${ev.verdict}`} aria-labelledby="why">
			<h1 id="why">
				<${Verdict} v=${ev.verdict} monitor=${ev.monitor} />
				${' '}${shadow ? 'Shadow policy would have ' + (ev.verdict || '') : (verb[ev.verdict] || ev.event)}${f.host ? html` · <span class="host">${f.host}</span>` : ''}
			</h1>
			${ev.reason && html`<p class="reason" data-testid="reason">${ev.reason}</p>`}
			${ev.monitor && html`<p class="muted">Monitor mode: reported, not enforced.</p>`}
			${shadow && html`<p class="muted">The active policy (${ev.active_policy_version}) decided <${Verdict} v=${ev.active_verdict} />; the shadow version ${ev.policy_version} would have decided this.</p>`}
			${ev.note && html`<p class="note">Note: ${ev.note}</p>`}
			${ev.policy_error && html`<p class="error">The policy failed on this message (policy error): the configured fallback decided.</p>`}
			<p class="rule">Decided by <code data-testid="rule">${ev.rule || '—'}</code>${ev.stage ? ` at the ${ev.stage} stage` : ''}, policy ${ev.policy_version || '—'}.</p>
			${loc && html`<${RuleSource} loc=${loc} />`}
		</section>
		<section class="card" aria-labelledby="det-h">
			<h2 id="det-h">What was found</h2>
			<${Detectors} detectors=${ev.detectors} session=${session} />
		</section>
		<div class="grid2">
			<section class="card" aria-labelledby="flow-h">
				<h2 id="flow-h">Flow</h2>
				<${Facts} rows=${[
					['Host', f.host],
					['Request', f.method || f.path ? `${f.method || ''} ${f.path || ''}` : null],
					['SNI', f.sni !== f.host ? f.sni : null],
					['Destination', f.dst_ip ? `${f.dst_ip}:${f.dst_port}` : f.dst_port],
					['Status', f.status],
					['Body', f.body_bytes !== undefined ? bytes(f.body_bytes) : null],
					['Sent / received', f.bytes_up !== undefined ? `${bytes(f.bytes_up)} / ${bytes(f.bytes_down)}` : null],
					['TLS (client / upstream)', f.tls ? `${f.tls} / ${f.upstream_tls || '—'}` : null],
					['Source', f.source],
					['Client', f.client],
				]} />
			</section>
			<section class="card" aria-labelledby="app-h">
				<h2 id="app-h">App and agent</h2>
				<${Facts} rows=${[
					['App', app.path],
					['Signing id', app.signing_id],
					['Team id', app.team_id],
					['Anchor', app.anchor],
					['PID / UID', app.pid !== undefined ? `${app.pid} / ${app.uid ?? '—'}` : null],
					['Agent', html`<${Link} href=${`/agents/${encodeURIComponent(ev.agent_id)}`}>${ev.hostname || ev.agent_id}</${Link}>`],
					['Time', html`<${Time} t=${ev.time} />`],
					['Held for', ev.latency_us !== undefined ? `${num(ev.latency_us)} µs` : null],
					['Event id', ev.id],
				]} />
			</section>
		</div>
		${ev.incident_id && html`<p><${Link} href=${`/incidents/${ev.incident_id}`}>Open the incident for this event</${Link}></p>`}
	</main>`;
}
