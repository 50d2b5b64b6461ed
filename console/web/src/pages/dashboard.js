// Dashboard: what the fleet decided over a range (stacked by verdict),
// who and what is behind it (top detectors, hosts, apps, agents), whether
// every agent reports, and the latest blocks, each a link to its "why".
// One request: the console computes it all for the range.
import { html } from 'htm/preact';
import { useMemo } from 'preact/hooks';
import { qs } from '../api.js';
import { StackedChart } from '../chart.js';
import { Link, navigate, useLocation } from '../router.js';
import { Empty, ErrorBox, Loading, Time, VERDICTS, Verdict, ago, detectorNames, num, useFetch } from '../ui.js';
import { dashboardUrl, normalizeDashboard } from '../model.js';

export const RANGES = [
	['1h', 'Last hour', 3600, 'minute'],
	['24h', 'Last 24 hours', 86400, 'hour'],
	['7d', 'Last 7 days', 7 * 86400, 'hour'],
	['30d', 'Last 30 days', 30 * 86400, 'day'],
];

export function rangeOf(key) {
	return RANGES.find((r) => r[0] === key) || RANGES[1];
}

function Top({ title, rows, param }) {
	const max = Math.max(1, ...rows.map((r) => r.count));
	return html`<section class="card top-list" aria-labelledby=${`top-${param}`}>
		<h2 id=${`top-${param}`}>${title}</h2>
		${rows.length === 0
			? html`<${Empty}>Nothing in this range.</${Empty}>`
			: html`<ol>
					${rows.map(
						(r) => html`<li>
							<${Link} href=${`/events${qs({ [param]: r.key, range: undefined })}`} title=${r.key}>${r.label || r.key}</${Link}>
							<span class="bar" aria-hidden="true" ref=${(el) => el && el.style.setProperty('--w', `${(100 * r.count) / max}%`)}></span>
							<span class="count">${num(r.count)}</span>
						</li>`,
					)}
				</ol>`}
	</section>`;
}

function Fleet({ fleet }) {
	if (!fleet) return null;
	const f = fleet;
	return html`<section class="card fleet" aria-labelledby="fleet-h">
		<h2 id="fleet-h">Fleet health</h2>
		<div class="stats">
			<${Link} href="/agents" class="stat"><strong>${num(f.reporting)}</strong> of ${num(f.agents)} agents reporting</${Link}>
			<${Link} href="/agents?silent=1" class=${`stat ${f.silent ? 'warn' : ''}`}><strong>${num(f.silent)}</strong> silent for over 10 min</${Link}>
			<span class=${`stat ${f.spool_backlog ? 'warn' : ''}`}><strong>${num(f.spool_backlog)}</strong> events in spools</span>
			<span class=${`stat ${f.drops ? 'bad' : ''}`}><strong>${num(f.drops)}</strong> events dropped</span>
			<span class=${`stat ${f.policy_errors ? 'bad' : ''}`}><strong>${num(f.policy_errors)}</strong> policy errors</span>
			<span class=${`stat ${f.failed_activations ? 'bad' : ''}`}><strong>${num(f.failed_activations)}</strong> failed activations</span>
		</div>
		${(f.policy_versions || []).length > 0 &&
		html`<p class="versions">Policy versions running:${' '}
			${f.policy_versions.map(
				(v, i) => html`${i ? ', ' : ''}${
					v.version == null
						? html`<span>${v.source || 'none'}</span>`
						: html`<${Link} href=${`/policies/${v.version}`}>v${v.version}</${Link}>`
				} on ${num(v.agents)}`,
			)}
		</p>`}
		${(f.silent_agents || []).length > 0 &&
		html`<p class="versions">Silent:${' '}${f.silent_agents.map(
			(a, i) => html`${i ? ', ' : ''}<${Link} href=${`/agents/${encodeURIComponent(a.agent_id)}`}>${a.hostname || a.agent_id.slice(-8)}</${Link}> (${ago(a.last_seen)})`,
		)}</p>`}
	</section>`;
}

export function Dashboard() {
	const { query } = useLocation();
	const range = rangeOf(query.get('range'));
	// "now" is taken once per range choice, so a re-render does not refetch
	const until = useMemo(() => new Date(), [range[0]]);
	const since = new Date(until.getTime() - range[2] * 1000);
	const { data, error, loading } = useFetch(dashboardUrl(since, until), [range[0]]);
	const d = useMemo(() => data && normalizeDashboard(data), [data]);
	const series = useMemo(() => d && VERDICTS.filter((v) => d.verdicts[v]).map((v) => ({ name: v, values: d.verdicts[v] })), [d]);
	const total = d ? Object.values(d.totals).reduce((a, b) => a + b, 0) : 0;
	return html`<main id="main" class="dashboard">
		<div class="page-head">
			<h1>Dashboard</h1>
			<label class="range">Range
				<select value=${range[0]} onChange=${(e) => navigate(`/${qs({ range: e.currentTarget.value })}`)}>
					${RANGES.map(([k, label]) => html`<option value=${k}>${label}</option>`)}
				</select>
			</label>
		</div>
		<${ErrorBox} error=${error} />
		${loading && !d && html`<${Loading} />`}
		${d &&
		html`<section class="card" aria-labelledby="over-time">
				<h2 id="over-time">Verdicts over time</h2>
				<ul class="totals" aria-label="Totals for the range">
					<li><strong data-testid="total-events">${num(total)}</strong> events</li>
					${VERDICTS.filter((v) => d.totals[v]).map(
						(v) => html`<li><${Link} href=${`/events${qs({ verdict: v, since: since.toISOString(), until: until.toISOString() })}`}>
							<${Verdict} v=${v} /> <strong data-testid=${`total-${v}`}>${num(d.totals[v])}</strong></${Link}></li>`,
					)}
				</ul>
				${d.times.length > 0
					? html`<${StackedChart} times=${d.times} series=${series} label="Verdicts over time, stacked by verdict" />`
					: html`<${Empty}>No events in this range.</${Empty}>`}
			</section>
			<div class="grid4">
				<${Top} title="Top detectors" rows=${d.top.detectors} param="detector" />
				<${Top} title="Top hosts" rows=${d.top.hosts} param="host" />
				<${Top} title="Top apps" rows=${d.top.apps} param="app" />
				<${Top} title="Top agents" rows=${d.top.agents} param="agent" />
			</div>
			<${Fleet} fleet=${d.fleet} />
			<section class="card" aria-labelledby="latest-blocks">
				<h2 id="latest-blocks">Latest blocks</h2>
				${d.latest_blocks.length === 0
					? html`<${Empty}>No block in this range.</${Empty}>`
					: html`<table class="events">
							<thead><tr><th>Time</th><th>Host</th><th>Reason</th><th>Detectors</th><th>Agent</th></tr></thead>
							<tbody>
								${d.latest_blocks.map(
									(e) => html`<tr>
										<td><${Link} href=${`/events/${encodeURIComponent(e.id)}`}><${Time} t=${e.time} /></${Link}></td>
										<td class="host">${e.host ?? (e.flow && e.flow.host)}</td>
										<td>${e.reason}</td>
										<td>${detectorNames(e.detectors).join(', ')}</td>
										<td><${Link} href=${`/agents/${encodeURIComponent(e.agent_id)}`}>${e.agent_id.slice(-8)}</${Link}></td>
									</tr>`,
								)}
							</tbody>
						</table>`}
			</section>`}
	</main>`;
}
