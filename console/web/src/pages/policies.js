// Policies: the versions (message, author, tests), what runs where
// (rollouts, per-version status), the shadow report, the diff between two
// versions, and, for admins, activate / shadow / rollback behind a
// confirmation that says how many agents it reaches (the console's
// preview), then what the console's answer counted when it acted.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { get, post, qs } from '../api.js';
import { Link, navigate, useLocation } from '../router.js';
import { ConfirmButton, Empty, ErrorBox, Facts, Loading, Time, num, useFetch } from '../ui.js';
import { labelText } from './agents.js';

// How many agents a rollout would reach now: the console counts it with
// its own targeting rule and stores nothing.
export async function countTargets(labels, percent) {
	const r = await post('/api/v1/rollouts/preview', { labels, percent });
	return { n: r.targets, of: r.agents };
}

// "ring=canary, site=paris" -> {ring: "canary", site: "paris"}
function parseLabels(text) {
	const out = {};
	for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
		const eq = part.indexOf('=');
		if (eq < 1) throw new Error(`"${part}" is not key=value`);
		out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
	}
	return out;
}

const agentsText = ({ n, of }) => `${n} of the ${of} enrolled agent${of === 1 ? '' : 's'}`;
const scope = (labels, percent) =>
	`${Object.keys(labels).length ? `agents labelled ${labelText(labels)}` : 'every agent'}${percent < 100 ? `, ${percent}% of them` : ''}`;

export function Policies({ session }) {
	const { data, error, loading, reload } = useFetch('/api/v1/policies');
	const rollouts = useFetch('/api/v1/rollouts');
	const [done, setDone] = useState(null);
	const list = (data && data.policies) || [];
	const running = ((rollouts.data && rollouts.data.rollouts) || []).filter((r) => r.state === 'running');
	const newestActive = running.find((r) => r.kind === 'active');
	const admin = session.role === 'admin';
	const [a, setA] = useState(''), [b, setB] = useState('');
	return html`<main id="main" class="policies">
		<div class="page-head">
			<h1>Policies</h1>
			${admin && newestActive &&
			html`<${ConfirmButton}
				label="Roll back"
				title="Roll back the newest activation"
				danger
				describe=${async () => {
					const t = await countTargets(newestActive.labels || {}, newestActive.percent ?? 100);
					return `This undoes the activation of v${newestActive.version} (${scope(newestActive.labels || {}, newestActive.percent ?? 100)}): the version it replaced becomes a new version, activated for the same agents. It reaches ${agentsText(t)} now.`;
				}}
				action=${() => post('/api/v1/policies/rollback')}
				onDone=${(r) => {
					setDone(`Rolled back: v${r.version} (the content of v${r.content_of}) is active.`);
					reload();
					rollouts.reload();
				}}
			/>`}
		</div>
		${done && html`<p class="notice" role="status">${done}</p>`}
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${running.length > 0 &&
		html`<section class="card"><h2>Running rollouts</h2>
			<ul class="rollouts">${running.map(
				(r) => html`<li><strong>${r.kind}</strong> <${Link} href=${`/policies/${r.version}`}>v${r.version}</${Link}> for ${scope(r.labels || {}, r.percent ?? 100)}${r.kind === 'shadow' ? ` (sampling ${r.sample_percent}%)` : ''} <span class="muted">since <${Time} t=${r.created_at} /> by ${r.created_by}</span></li>`,
			)}</ul>
		</section>`}
		${data &&
		(list.length === 0
			? html`<${Empty}>No version pushed yet: <code>dlpgate-console policy push DIR</code>.</${Empty}>`
			: html`<div class="table-wrap"><table class="events">
					<thead><tr><th>Version</th><th>Message</th><th>Author</th><th>Pushed</th><th>Tests</th><th>Running</th></tr></thead>
					<tbody>${list.map((p) => {
						const r = running.filter((x) => x.version === p.version);
						return html`<tr>
							<td><${Link} href=${`/policies/${p.version}`}>v${p.version}</${Link}>${p.content_of ? html` <small class="muted">(content of v${p.content_of})</small>` : ''}</td>
							<td>${p.message}</td>
							<td>${p.author}</td>
							<td class="nowrap"><${Time} t=${p.created_at} /></td>
							<td class=${p.tests && p.tests.failed ? 'bad' : ''}>${p.tests ? `${p.tests.passed} passed${p.tests.failed ? `, ${p.tests.failed} failed` : ''}` : '—'}</td>
							<td>${r.map((x) => x.kind).join(', ')}</td>
						</tr>`;
					})}</tbody>
				</table></div>`)}
		${list.length > 1 &&
		html`<form class="card diffpick" onSubmit=${(e) => { e.preventDefault(); navigate(`/policies/${b}${qs({ diff: a })}`); }}>
			<h2>Compare two versions</h2>
			<div class="row">
				<div class="field"><label for="d-a">From</label><select id="d-a" value=${a} onChange=${(e) => setA(e.currentTarget.value)}><option value="">—</option>${list.map((p) => html`<option value=${p.version}>v${p.version}</option>`)}</select></div>
				<div class="field"><label for="d-b">To</label><select id="d-b" value=${b} onChange=${(e) => setB(e.currentTarget.value)}><option value="">—</option>${list.map((p) => html`<option value=${p.version}>v${p.version}</option>`)}</select></div>
				<div class="field buttons"><button type="submit" disabled=${!a || !b || a === b}>Show diff</button></div>
			</div>
		</form>`}
	</main>`;
}

function Diff({ a, b }) {
	const { data, error, loading } = useFetch(() => get(`/api/v1/policies/diff${qs({ a, b })}`, { text: true }), [a, b]);
	if (loading) return html`<${Loading} what="Diffing" />`;
	if (error) return html`<${ErrorBox} error=${error} />`;
	if (!data.trim()) return html`<${Empty}>The two versions have the same files.</${Empty}>`;
	return html`<pre class="diff"><code>${data.split('\n').map((l) => {
		const c = l.startsWith('+++') || l.startsWith('---') ? 'file' : l[0] === '+' ? 'add' : l[0] === '-' ? 'del' : l.startsWith('@@') ? 'hunk' : '';
		return html`<span class=${c}>${l}\n</span>`;
	})}</code></pre>`;
}

function RolloutForm({ version, kind, onDone }) {
	const [labels, setLabels] = useState('');
	const [percent, setPercent] = useState('100');
	const [sample, setSample] = useState('10');
	const body = () => {
		const out = {};
		const l = parseLabels(labels);
		if (Object.keys(l).length) out.labels = l;
		const p = Number(percent);
		if (!(p >= 1 && p <= 100)) throw new Error('Percent must be 1 to 100.');
		if (p !== 100) out.percent = p;
		if (kind === 'shadow') out.sample_percent = Number(sample);
		return out;
	};
	const id = `${kind}-${version}`;
	return html`<div class="rollout-form">
		<h3>${kind === 'shadow' ? 'Shadow: runs beside the active version; traffic is not changed' : 'Activate: enforced on the agents chosen'}</h3>
		<div class="row">
			<div class="field"><label for=${`${id}-labels`}>Labels (empty: all)</label><input id=${`${id}-labels`} placeholder="ring=canary" value=${labels} onInput=${(e) => setLabels(e.currentTarget.value)} /></div>
			<div class="field narrow"><label for=${`${id}-pct`}>Percent</label><input id=${`${id}-pct`} type="number" min="1" max="100" value=${percent} onInput=${(e) => setPercent(e.currentTarget.value)} /></div>
			${kind === 'shadow' && html`<div class="field narrow"><label for=${`${id}-sample`}>Sample %</label><input id=${`${id}-sample`} type="number" min="1" max="100" value=${sample} onInput=${(e) => setSample(e.currentTarget.value)} /></div>`}
			<div class="field buttons">
				<${ConfirmButton}
					label=${kind === 'shadow' ? `Shadow v${version}` : `Activate v${version}`}
					title=${kind === 'shadow' ? `Shadow v${version}` : `Activate v${version}`}
					className="primary"
					describe=${async () => {
						const b = body();
						const t = await countTargets(b.labels || {}, b.percent || 100);
						return kind === 'shadow'
							? `v${version} will run in shadow on ${scope(b.labels || {}, b.percent || 100)} (sampling ${b.sample_percent}% of messages; traffic is not changed). It reaches ${agentsText(t)} now.`
							: `v${version} will be enforced on ${scope(b.labels || {}, b.percent || 100)}. It reaches ${agentsText(t)} now.`;
					}}
					action=${() => post(`/api/v1/policies/${version}/${kind === 'shadow' ? 'shadow' : 'activate'}`, body())}
					onDone=${(r) => onDone(`${kind === 'shadow' ? 'Shadowing' : 'Activated'} v${version}: the console targets ${r.targets} agent${r.targets === 1 ? '' : 's'}.`)}
				/>
			</div>
		</div>
	</div>`;
}

export function PolicyDetail({ version, session }) {
	const { query } = useLocation();
	const diffWith = query.get('diff') || (version > 1 ? String(version - 1) : '');
	const { data: p, error, loading } = useFetch(`/api/v1/policies/${version}`);
	const status = useFetch(`/api/v1/policies/${version}/status`);
	const shadow = useFetch(`/api/v1/policies/${version}/shadow-report`);
	const [done, setDone] = useState(null);
	if (loading) return html`<main id="main"><${Loading} /></main>`;
	if (error) return html`<main id="main"><h1>Policy v${version}</h1><${ErrorBox} error=${error} /></main>`;
	const s = status.data, sh = shadow.data;
	const after = (msg) => {
		setDone(msg);
		status.reload();
	};
	return html`<main id="main" class="policy">
		<p class="crumbs"><${Link} href="/policies">Policies</${Link}> › v${version}</p>
		<h1>Policy v${version}${p.content_of ? html` <small class="muted">(content of v${p.content_of})</small>` : ''}</h1>
		${done && html`<p class="notice" role="status">${done}</p>`}
		<div class="grid2">
			<section class="card"><h2>Version</h2>
				<${Facts} rows=${[
					['Message', p.message],
					['Author', p.author],
					['Pushed', html`<${Time} t=${p.created_at} />`],
					['Tests', p.tests ? `${p.tests.passed} passed, ${p.tests.failed} failed` : null],
					['Entry', p.entry],
					['Signed by key', p.key_id],
					['SHA-256', html`<code class="hash">${p.sha256}</code>`],
					['Min engine', p.min_engine_version],
				]} />
				<h3>Files</h3>
				<ul class="files">${(p.files || []).map((f) => html`<li><code>${f.path}</code> <span class="muted">${f.role}, ${num(f.size)} B</span></li>`)}</ul>
			</section>
			<section class="card"><h2>Rollout status</h2>
				${status.error ? html`<${ErrorBox} error=${status.error} />` : !s ? html`<${Loading} />` : html`
				<div class="stats">
					<span class="stat"><strong data-testid="targeted">${num(s.targeted)}</strong> targeted</span>
					<span class="stat ok"><strong>${num(s.active)}</strong> running it</span>
					<span class=${`stat ${s.pending ? 'warn' : ''}`}><strong>${num(s.pending)}</strong> pending</span>
					<span class=${`stat ${s.failed ? 'bad' : ''}`}><strong>${num(s.failed)}</strong> failed</span>
				</div>
				${(s.failures || []).length > 0 && html`<h3>Failures</h3><ul class="errors">${s.failures.map((f) => html`<li><${Link} href=${`/agents/${encodeURIComponent(f.agent_id)}`}>${f.agent_id.slice(-8)}</${Link}>: <code>${f.error}</code></li>`)}</ul>`}
				${(s.pending_agents || []).length > 0 && html`<h3>Pending</h3><ul>${s.pending_agents.map((a) => html`<li><${Link} href=${`/agents/${encodeURIComponent(a.agent_id)}`}>${a.agent_id.slice(-8)}</${Link}> runs ${a.running || '—'}, seen <${Time} t=${a.last_seen} /></li>`)}</ul>`}
				${(s.rollouts || []).length > 0 && html`<h3>Rollouts of this version</h3><ul class="rollouts">${s.rollouts.map((r) => html`<li>${r.kind} for ${scope(r.labels || {}, r.percent ?? 100)}: <strong>${r.state}</strong>${r.halt_reason ? ` (${r.halt_reason})` : ''}</li>`)}</ul>`}`}
			</section>
		</div>
		${session.role === 'admin' &&
		html`<section class="card" aria-labelledby="act-h"><h2 id="act-h">Roll out</h2>
			<${RolloutForm} version=${version} kind="activate" onDone=${after} />
			<${RolloutForm} version=${version} kind="shadow" onDone=${after} />
		</section>`}
		<section class="card"><h2>Shadow report</h2>
			${shadow.error ? html`<${ErrorBox} error=${shadow.error} />` : !sh ? html`<${Loading} />` : sh.evaluated || sh.changed ? html`
				<p>${num(sh.changed)} of ${num(sh.evaluated)} evaluated messages would get another verdict.</p>
				<div class="grid4">${['transitions', 'by_detector', 'by_rule', 'by_host'].map((k) => html`<div><h3>${k.replace('by_', 'by ')}</h3><ul>${Object.entries(sh[k] || {}).map(([n, c]) => html`<li><code>${n}</code> ${num(c)}</li>`)}</ul></div>`)}</div>`
			: html`<${Empty}>No shadow evaluation of this version.</${Empty}>`}
		</section>
		${diffWith && html`<section class="card"><h2>Changes from v${diffWith}</h2><${Diff} a=${diffWith} b=${version} /></section>`}
	</main>`;
}
