// The one place that knows the shapes of the console's UI API
// (schemas/console-api.md, "Web UI API"): pages work on what these return.
import { qs } from './api.js';

export function dashboardUrl(since, until) {
	return `/api/v1/dashboard${qs({ since: since.toISOString(), until: until.toISOString() })}`;
}

// The series has only buckets with events: fill the gaps with zeros, so a
// quiet hour reads as a zero and not as a line across it.
export function normalizeDashboard(d) {
	const step = d.bucket_ms || 3600000;
	const start = Math.floor(new Date(d.since).getTime() / step) * step;
	const end = new Date(d.until).getTime();
	const times = [];
	for (let t = start; t < end && times.length < 20000; t += step) times.push(t / 1000);
	const index = new Map(times.map((t, i) => [t, i]));
	const verdicts = {};
	for (const p of d.series || []) {
		const i = index.get(Math.floor(new Date(p.t).getTime() / step) * (step / 1000));
		if (i === undefined) continue;
		for (const [v, n] of Object.entries(p.counts || {})) {
			if (!n) continue;
			verdicts[v] = verdicts[v] || new Array(times.length).fill(0);
			verdicts[v][i] += n;
		}
	}
	// one more point where the last bucket ends: a step is drawn from each
	// bucket's start to the next point, so the current bucket gets its width
	if (times.length) {
		times.push(times[times.length - 1] + step / 1000);
		for (const v of Object.keys(verdicts)) verdicts[v].push(0);
	}
	const top = d.top || {};
	// agents: "laptop-7 · 01a243f7" (host names are not unique)
	const rows = (list) =>
		(list || []).map((r) => ({ key: r.key, label: r.hostname ? `${r.hostname} · ${String(r.key).slice(-8)}` : r.key, count: r.count }));
	return {
		times,
		verdicts,
		totals: d.totals || {},
		top: { detectors: rows(top.detectors), hosts: rows(top.hosts), apps: rows(top.apps), agents: rows(top.agents) },
		fleet: d.fleet || null,
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
