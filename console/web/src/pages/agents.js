// Agents: who reports, what each runs, and what is stuck (spool depth,
// drops, errors). An agent's page shows its status over time.
import { html } from 'htm/preact';
import { useMemo } from 'preact/hooks';
import { qs } from '../api.js';
import { Link, navigate, useLocation } from '../router.js';
import { Empty, ErrorBox, Facts, Loading, Time, ago, num, useFetch } from '../ui.js';
import { StackedChart } from '../chart.js';

export const SILENT_MS = 10 * 60 * 1000;
const counters = (a) => (a.status && a.status.counters) || {};
const silent = (a) => a.silent ?? (!a.last_seen || Date.now() - new Date(a.last_seen).getTime() > SILENT_MS);
const policyOf = (a) => (a.policy_version != null ? `v${a.policy_version}` : (a.status && a.status.policy_version) || '—');
export const labelText = (labels) =>
	Object.entries(labels || {})
		.map(([k, v]) => `${k}=${v}`)
		.join(', ');

export function Agents() {
	const { query } = useLocation();
	const onlySilent = query.get('silent') === '1';
	const { data, error, loading } = useFetch('/api/v1/agents');
	const list = ((data && data.agents) || []).filter((a) => !onlySilent || silent(a));
	return html`<main id="main" class="agents">
		<div class="page-head">
			<h1>Agents</h1>
			<label class="check"><input type="checkbox" checked=${onlySilent} onChange=${(e) => navigate(`/agents${qs({ silent: e.currentTarget.checked ? 1 : '' })}`)} /> Only silent for over 10 minutes</label>
		</div>
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${data &&
		(list.length === 0
			? html`<${Empty}>${onlySilent ? 'Every agent reported in the last 10 minutes.' : 'No agent has enrolled yet.'}</${Empty}>`
			: html`<div class="table-wrap"><table class="events">
					<thead><tr><th>Host</th><th>Last seen</th><th>Engine</th><th>Policy</th><th>Labels</th><th>Spool</th><th>Drops</th><th>Last error</th></tr></thead>
					<tbody>
						${list.map((a) => {
							const errs = a.recent_errors || [];
							return html`<tr class=${silent(a) ? 'silent' : ''}>
								<td><${Link} href=${`/agents/${encodeURIComponent(a.agent_id)}`}>${a.hostname || a.agent_id}</${Link}> <small class="muted" title=${a.agent_id}>${a.agent_id.slice(-8)}</small></td>
								<td title=${a.last_seen || ''}>${ago(a.last_seen)}${silent(a) ? html` <span class="badge warn">silent</span>` : ''}</td>
								<td>${a.engine_version || a.version}</td>
								<td>${policyOf(a)}</td>
								<td>${labelText(a.labels)}</td>
								<td>${num(a.spool_depth)}</td>
								<td class=${a.drops ? 'bad' : ''}>${num(a.drops)}</td>
								<td class="err">${errs[errs.length - 1] || ''}</td>
							</tr>`;
						})}
					</tbody>
				</table></div>`)}
	</main>`;
}

export function AgentDetail({ id }) {
	const { data: a, error, loading } = useFetch(`/api/v1/agents/${encodeURIComponent(id)}`);
	const chart = useMemo(() => {
		const pts = (a && a.history) || [];
		if (pts.length < 2) return null;
		return {
			times: pts.map((p) => Math.floor(new Date(p.time).getTime() / 1000)),
			series: [
				{ name: 'spool depth', values: pts.map((p) => p.spool_depth || 0) },
				{ name: 'drops', values: pts.map((p) => p.drops || 0) },
				{ name: 'policy errors', values: pts.map((p) => p.policy_errors || 0) },
				{ name: 'errors', values: pts.map((p) => p.errors || 0) },
			],
			versions: [...new Set(pts.map((p) => p.policy_version).filter((v) => v != null))],
		};
	}, [a]);
	if (loading) return html`<main id="main"><${Loading} /></main>`;
	if (error) return html`<main id="main"><h1>Agent</h1><${ErrorBox} error=${error} /></main>`;
	const c = counters(a), errs = a.recent_errors || [];
	const pol = (a.status && a.status.policy) || {};
	return html`<main id="main" class="agent">
		<p class="crumbs"><${Link} href="/agents">Agents</${Link}> › ${a.hostname || a.agent_id}</p>
		<h1>${a.hostname || a.agent_id} ${silent(a) ? html`<span class="badge warn">silent since ${ago(a.last_seen)}</span>` : html`<span class="badge ok">reporting</span>`}</h1>
		<div class="grid2">
			<section class="card"><h2>Now</h2>
				<${Facts} rows=${[
					['Agent id', a.agent_id],
					['Last seen', html`<${Time} t=${a.last_seen} />`],
					['Enrolled', html`<${Time} t=${a.enrolled_at} />`],
					['Engine', a.engine_version || a.version],
					['Policy', policyOf(a)],
					['Policy source', pol.source],
					['Shadowing', pol.shadow_version ? `v${pol.shadow_version}` : null],
					['Refused version', pol.failed_version ? `v${pol.failed_version}: ${pol.last_error || ''}` : null],
					['Labels', labelText(a.labels)],
				]} />
			</section>
			<section class="card"><h2>Counters since the agent started</h2>
				<${Facts} rows=${[
					['Flows', num(c.flows)],
					['Blocked / redacted / passed', `${num(c.block)} / ${num(c.redact)} / ${num(c.pass)}`],
					['Policy errors', num(a.policy_errors)],
					['Uploaded', num(c.uploaded)],
					['Upload failures', num(c.upload_failures)],
					['Spool', `${num(a.spool_depth)} events`],
					['Dropped', num(a.drops)],
				]} />
			</section>
		</div>
		<section class="card"><h2>Status over time</h2>
			${chart
				? html`<${StackedChart} times=${chart.times} series=${chart.series} stacked=${false} label="The agent's spool depth, drops and errors over its status reports" />
					${chart.versions.length > 0 && html`<p class="muted">Policy versions in this period: ${chart.versions.map((v) => `v${v}`).join(', ')}</p>`}`
				: html`<${Empty}>Not enough status reports yet.</${Empty}>`}
		</section>
		<section class="card"><h2>Recent errors</h2>
			${errs.length === 0 ? html`<${Empty}>None.</${Empty}>` : html`<ul class="errors">${errs.map((e) => html`<li><code>${e}</code></li>`)}</ul>`}
		</section>
		<p><${Link} href=${`/events${qs({ agent: a.agent_id })}`}>This agent's events</${Link}></p>
	</main>`;
}
