// The one place that knows the shapes of the console's UI API
// (schemas/console-api.md, "Web UI API"): pages work on what these return.
import { qs } from './api.js';

export function dashboardUrl(since, until, bucket) {
	return `/api/v1/dashboard${qs({ since: since.toISOString(), until: until.toISOString(), bucket })}`;
}

const asRows = (list) =>
	(list || []).map((r) => ({ key: r.key ?? r.name ?? r.host ?? r.app ?? r.agent_id, label: r.label ?? r.hostname, count: r.count ?? 0 }));

export function normalizeDashboard(d) {
	// time series: [{time, verdict, count}] or {times:[...], verdicts:{v:[...]}}
	let times = [], verdicts = {};
	const ts = d.over_time || d.series || d.time || [];
	if (Array.isArray(ts)) {
		const idx = new Map();
		for (const p of ts) {
			const t = Math.floor(new Date(p.time || p.bucket || p.key).getTime() / 1000);
			if (!idx.has(t)) idx.set(t, idx.size);
		}
		times = [...idx.keys()].sort((a, b) => a - b);
		const pos = new Map(times.map((t, i) => [t, i]));
		for (const p of ts) {
			const t = Math.floor(new Date(p.time || p.bucket || p.key).getTime() / 1000);
			const counts = p.counts || { [p.verdict]: p.count };
			for (const [v, n] of Object.entries(counts)) {
				verdicts[v] = verdicts[v] || new Array(times.length).fill(0);
				verdicts[v][pos.get(t)] += n;
			}
		}
	} else {
		times = (ts.times || ts.buckets || []).map((t) => (typeof t === 'number' ? t : Math.floor(new Date(t).getTime() / 1000)));
		verdicts = ts.verdicts || ts.counts || {};
	}
	const totals = {};
	if (d.totals && !Array.isArray(d.totals)) Object.assign(totals, d.totals);
	else for (const [v, arr] of Object.entries(verdicts)) totals[v] = arr.reduce((a, b) => a + b, 0);
	const top = d.top || {};
	return {
		times,
		verdicts,
		totals,
		top: {
			detectors: asRows(top.detectors || d.top_detectors),
			hosts: asRows(top.hosts || d.top_hosts),
			apps: asRows(top.apps || d.top_apps),
			agents: asRows(top.agents || d.top_agents),
		},
		fleet: d.fleet || d.fleet_health || null,
		latest_blocks: d.latest_blocks || [],
	};
}

// The explorer's filters: URL parameter = API parameter.
export const FILTERS = ['verdict', 'detector', 'host', 'app', 'agent', 'policy_version', 'mode', 'since', 'until'];

export function eventsUrl(filters, cursor, limit = 50) {
	return `/api/v1/events${qs({ ...filters, cursor, limit })}`;
}

export function exportUrl(filters, format) {
	return `/api/v1/events/export${qs({ ...filters, format })}`;
}
