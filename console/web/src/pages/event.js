// One event, answering "why": the verdict and its reason first, then the
// rule that decided it with that policy version's own source lines around
// it, the detectors that fired (masked samples, role permitting), and the
// app, flow, agent and policy version it happened on.
import { html } from 'htm/preact';
import { qs } from '../api.js';
import { Link } from '../router.js';
import { ErrorBox, Facts, Loading, Time, Verdict, bytes, num, shortRule, useFetch } from '../ui.js';

const UNAVAILABLE = {
	built_in: "the agent ran its built-in default policy, which the console does not store",
	not_stored: "this policy version is not stored on the console (a local policy file)",
	no_rule_line: "the decision names no policy line (a configuration key decided)",
	file_not_in_bundle: "the rule's file is not in that version's bundle",
};

function RuleSource({ x }) {
	const src = x.source;
	if (!src)
		return x.source_unavailable ? html`<p class="muted">No source shown: ${UNAVAILABLE[x.source_unavailable] || x.source_unavailable}.</p>` : null;
	return html`<figure class="source">
		<figcaption>${src.path}, line ${src.highlight}, in <${Link} href=${`/policies/${src.version}`}>policy v${src.version}</${Link}></figcaption>
		<pre><code>${src.lines.map((text, i) => {
			const n = src.first_line + i;
			return html`<span class=${n === src.highlight ? 'line hit' : 'line'} data-line=${n}><span class="ln" aria-hidden="true">${n}</span>${text}\n</span>`;
		})}</code></pre>
	</figure>`;
}

function Detectors({ detectors, session }) {
	const entries = (detectors || []).map((d) => [d.name, d]);
	if (entries.length === 0) return html`<p class="muted">No detector fired: the policy decided from the flow alone.</p>`;
	const hidden = session.role === 'viewer';
	return html`<div class="scroll"><table class="detectors">
		<thead><tr><th>Detector</th><th>Matches</th><th>Severity</th><th>Masked samples</th></tr></thead>
		<tbody>
			${entries.map(
				([name, d]) => html`<tr>
					<td><${Link} href=${`/events${qs({ detector: name })}`}>${name}</${Link}></td>
					<td>${num(d.count)}${d.timed_out ? ' (scan timed out)' : ''}</td>
					<td>${d.severity || '—'}</td>
					<td class="samples">${
						hidden || !Array.isArray(d.samples)
							? html`<span class="muted">hidden for the viewer role</span>`
							: d.samples.length === 0
								? html`<span class="muted">none kept</span>`
								: d.samples.map((s) => html`<code class="sample">${s}</code> `)
					}</td>
				</tr>`,
			)}
		</tbody>
	</table></div>`;
}

const verb = { block: 'Blocked', redact: 'Redacted', pass: 'Passed', bypass: 'Bypassed', inspect: 'Inspected' };

export function EventDetail({ id, session }) {
	const { data, error, loading } = useFetch(`/api/v1/events/${encodeURIComponent(id)}/detail`);
	if (loading) return html`<main id="main"><${Loading} /></main>`;
	if (error) return html`<main id="main"><h1>Event</h1><${ErrorBox} error=${error} /></main>`;
	const ev = data.event, x = data.explain;
	const f = x.flow || {}, app = x.app || {}, agent = x.agent || { agent_id: ev.agent_id };
	const shadow = ev.event === 'shadow';
	return html`<main id="main" class="event">
		<p class="crumbs"><${Link} href="/events">Events</${Link}> › ${ev.id}</p>
		<section class=${`card why why-${x.verdict}`} aria-labelledby="why">
			<h1 id="why">
				<span class=${`v-${x.verdict}`}>${shadow ? `Shadow policy would ${x.verdict || ''}` : verb[x.verdict] || ev.event}</span>${x.monitor ? html` <small class="muted">(monitor only)</small>` : ''}${f.host ? html` · <span class="host">${f.host}</span>` : ''}
			</h1>
			${x.reason && html`<p class="reason" data-testid="reason">${x.reason}</p>`}
			${x.monitor && html`<p class="muted">Monitor mode: reported, not enforced.</p>`}
			${shadow && html`<p class="muted">The active policy (${ev.active_policy_version}) decided <${Verdict} v=${ev.active_verdict} />; the shadow version ${ev.policy_version} would have decided this.</p>`}
			${ev.note && html`<p class="note">Note: ${ev.note}</p>`}
			${ev.policy_error && html`<p class="error">The policy failed on this message (policy error): the configured fallback decided.</p>`}
			<p class="rule">Decided by <code data-testid="rule" title=${x.rule}>${shortRule(x.rule) || '—'}</code>${x.stage ? ` at the ${x.stage} stage` : ''}, policy ${x.policy_version || '—'}.</p>
			<${RuleSource} x=${x} />
		</section>
		<section class="card" aria-labelledby="det-h">
			<h2 id="det-h">What was found</h2>
			<${Detectors} detectors=${x.detectors} session=${session} />
		</section>
		<div class="grid2">
			<section class="card" aria-labelledby="flow-h">
				<h2 id="flow-h">Flow</h2>
				<${Facts} rows=${[
					['Host', f.host],
					['Request', f.method || f.path ? `${f.method || ''} ${f.path || ''}` : null],
					['Port', f.dst_port],
					['Body', f.body_bytes != null ? bytes(f.body_bytes) : null],
					['Sent / received', f.bytes_up != null ? `${bytes(f.bytes_up)} / ${bytes(f.bytes_down)}` : null],
					['TLS (client / upstream)', f.tls ? `${f.tls} / ${f.upstream_tls || '—'}` : null],
					['Source', f.source],
				]} />
			</section>
			<section class="card" aria-labelledby="app-h">
				<h2 id="app-h">App and agent</h2>
				<${Facts} rows=${[
					['App', app.path],
					['Signing id', app.signing_id],
					['Team id', app.team_id],
					['Anchor', app.anchor],
					['Agent', html`<${Link} href=${`/agents/${encodeURIComponent(agent.agent_id)}`}>${agent.hostname || agent.agent_id}</${Link}>`],
					['Time', html`<${Time} t=${ev.time} />`],
					['Held for', ev.latency_us != null ? `${num(ev.latency_us)} µs` : null],
					['Event id', ev.id],
					['Incident', x.incident && (session.role === 'viewer' ? x.incident.status : html`<${Link} href=${`/incidents/${encodeURIComponent(x.incident.id)}`}>${x.incident.status.replace('_', ' ')}</${Link}>`)],
				]} />
			</section>
		</div>
	</main>`;
}
