// Verdicts over time, stacked by verdict: uPlot (canvas, ~50 KB, draws a
// 1,000-bucket series in a few milliseconds). Stacking is done here: each
// series is the running sum of the ones below it, filled down to the next.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

const COLORS = { block: '#dc2626', redact: '#d97706', pass: '#16a34a', bypass: '#64748b', inspect: '#2563eb', other: '#7c3aed',
	'spool depth': '#2563eb', drops: '#dc2626', errors: '#d97706', 'policy errors': '#7c3aed' };

// times: seconds since epoch; series: [{name, values}] bottom first.
// stacked=false draws plain lines (an agent's spool depth, drops, errors).
export function StackedChart({ times, series, label, stacked = true }) {
	const box = useRef(null);
	useEffect(() => {
		const el = box.current;
		if (!el) return undefined;
		const sums = [];
		let acc = times.map(() => 0);
		for (const s of series) {
			acc = stacked ? acc.map((a, i) => a + (s.values[i] || 0)) : s.values;
			sums.push(acc);
		}
		const dark = matchMedia('(prefers-color-scheme: dark)').matches;
		const axis = { stroke: dark ? '#cbd5e1' : '#334155', grid: { stroke: dark ? '#334155' : '#e2e8f0' } };
		const opts = {
			width: Math.max(el.clientWidth, 280),
			height: 220,
			legend: { show: true },
			cursor: { drag: { x: false, y: false } },
			// at least ten minutes wide, so a short history (an agent that
			// reported for seconds) is not labelled in milliseconds
			scales: { x: { time: true, range: (u, lo, hi) => (hi - lo >= 600 ? [lo, hi] : [(lo + hi) / 2 - 300, (lo + hi) / 2 + 300]) } },
			// counts: whole-number ticks only
			axes: [axis, { ...axis, size: 50, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7] }],
			series: [
				{},
				...series.map((s, i) => ({
					label: s.name,
					stroke: COLORS[s.name] || COLORS.other,
					fill: stacked ? `${COLORS[s.name] || COLORS.other}99` : undefined,
					width: stacked ? 1 : 2,
					points: { show: false },
					// the legend shows each verdict's own count, not the stack
					value: (u, v, si, di) => (di == null ? '—' : String(series[i].values[di] || 0)),
					paths: stacked ? uPlot.paths.stepped({ align: 1 }) : undefined,
				})),
			],
			bands: stacked ? series.slice(1).map((_, i) => ({ series: [i + 2, i + 1] })) : [],
		};
		const plot = new uPlot(opts, [times, ...sums], el);
		const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 280), height: 220 }));
		ro.observe(el);
		return () => {
			ro.disconnect();
			plot.destroy();
		};
	}, [times, series, stacked]);
	return html`<div class="chart" ref=${box} role="img" aria-label=${label}></div>`;
}
