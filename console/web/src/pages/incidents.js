// Incidents: every enforced block or redact opens one. Analysts triage
// them (status, assignee, notes); "false positive" feeds the list that
// admins tune detectors from (grouped by detector and rule).
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, post, qs } from '../api.js';
import { Link, navigate, useLocation } from '../router.js';
import { Empty, ErrorBox, Facts, Loading, Time, Verdict, detectorNames, num, shortRule, useFetch } from '../ui.js';

export const STATUSES = ['new', 'triaged', 'false_positive', 'resolved'];
const label = (s) => (s === 'false_positive' ? 'false positive' : s || '');

function Status({ s, testid }) {
	return html`<span class=${`status s-${s}`} data-testid=${testid}>${label(s)}</span>`;
}

function FalsePositives() {
	const { data, error, loading } = useFetch('/api/v1/incidents/false-positives');
	const groups = (data && data.groups) || [];
	return html`<main id="main" class="incidents">
		<p class="crumbs"><${Link} href="/incidents">Incidents</${Link}> › false positives</p>
		<h1>False positives, by detector and rule</h1>
		<p class="muted">Incidents analysts marked as false positives: where a detector or a rule needs tuning.</p>
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${data &&
		(groups.length === 0
			? html`<${Empty}>No incident is marked false positive.</${Empty}>`
			: html`<div class="table-wrap"><table class="events">
					<thead><tr><th>Detector</th><th>Rule</th><th>Count</th><th>Last</th><th>Incidents</th></tr></thead>
					<tbody>${groups.map(
						(g) => html`<tr>
							<td>${g.detector == null ? html`<span class="muted">no detector</span>` : g.detector}</td>
							<td><code title=${g.rule}>${shortRule(g.rule)}</code></td>
							<td>${num(g.count)}</td>
							<td class="nowrap"><${Time} t=${g.last_time} /></td>
							<td>${(g.incident_ids || []).map((id, i) => html`${i ? ' ' : ''}<${Link} href=${`/incidents/${encodeURIComponent(id)}`}>#${id}</${Link}>`)}</td>
						</tr>`,
					)}</tbody>
				</table></div>`)}
	</main>`;
}

export function Incidents() {
	const { query } = useLocation();
	if (query.get('view') === 'false-positives') return html`<${FalsePositives} />`;
	const status = query.get('status') || '';
	const cursor = query.get('cursor') || undefined;
	const { data, error, loading } = useFetch(`/api/v1/incidents${qs({ status, cursor, limit: 50 })}`, [status, cursor]);
	const list = (data && data.incidents) || [];
	return html`<main id="main" class="incidents">
		<div class="page-head">
			<h1>Incidents</h1>
			<label class="range">Status
				<select value=${status} onChange=${(e) => navigate(`/incidents${qs({ status: e.currentTarget.value })}`)}>
					<option value="">any</option>
					${STATUSES.map((s) => html`<option value=${s}>${label(s)}</option>`)}
				</select>
			</label>
			<${Link} href="/incidents?view=false-positives">False positives by detector</${Link}>
		</div>
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${data &&
		(list.length === 0
			? html`<${Empty}>No incident${status ? ` with status ${label(status)}` : ''}.</${Empty}>`
			: html`<div class="table-wrap"><table class="events">
					<thead><tr><th>Time</th><th>Status</th><th>Verdict</th><th>Host</th><th>Rule</th><th>Detectors</th><th>Assignee</th></tr></thead>
					<tbody>
						${list.map(
							(i) => html`<tr>
								<td class="nowrap"><${Link} href=${`/incidents/${encodeURIComponent(i.id)}`}><${Time} t=${i.time} /></${Link}></td>
								<td><${Status} s=${i.status} /></td>
								<td><${Verdict} v=${i.verdict} /></td>
								<td class="host">${i.host}</td>
								<td><code title=${i.rule}>${shortRule(i.rule)}</code></td>
								<td>${detectorNames(i.detectors).join(', ')}</td>
								<td>${i.assignee || html`<span class="muted">nobody</span>`}</td>
							</tr>`,
						)}
					</tbody>
				</table></div>`)}
		<nav class="pager" aria-label="Pages">
			${cursor && html`<${Link} href=${`/incidents${qs({ status })}`}>First page</${Link}>`}
			${data && data.next_cursor && html`<${Link} href=${`/incidents${qs({ status, cursor: data.next_cursor })}`}>Older incidents</${Link}>`}
		</nav>
	</main>`;
}

export function IncidentDetail({ id }) {
	const url = `/api/v1/incidents/${encodeURIComponent(id)}`;
	const { data: inc, error, loading, reload } = useFetch(url);
	const [draft, setDraft] = useState(null);
	const [note, setNote] = useState('');
	const [saving, setSaving] = useState(false);
	const [saveError, setSaveError] = useState(null);
	if (loading && !inc) return html`<main id="main"><${Loading} /></main>`;
	if (error) return html`<main id="main"><h1>Incident</h1><${ErrorBox} error=${error} /></main>`;
	const d = draft || { status: inc.status, assignee: inc.assignee || '' };
	const run = async (fn) => {
		setSaving(true);
		setSaveError(null);
		try {
			await fn();
			setDraft(null);
			reload();
		} catch (e) {
			setSaveError(e);
		} finally {
			setSaving(false);
		}
	};
	const save = (change) => run(() => api('PATCH', url, { status: change.status, assignee: change.assignee.trim() || null }));
	const addNote = () =>
		run(async () => {
			await post(`${url}/notes`, { text: note.trim() });
			setNote('');
		});
	const ev = inc.event || {};
	return html`<main id="main" class="incident">
		<p class="crumbs"><${Link} href="/incidents">Incidents</${Link}> › #${inc.id}</p>
		<h1>Incident #${inc.id} <${Status} s=${inc.status} testid="incident-status" /></h1>
		<section class="card">
			<${Facts} rows=${[
				['Event', html`<${Link} href=${`/events/${encodeURIComponent(inc.event_id)}`}>${ev.reason || shortRule(inc.rule) || 'open the event'}</${Link}>`],
				['Verdict', html`<${Verdict} v=${inc.verdict} />`],
				['Host', inc.host],
				['App', inc.app],
				['Rule', inc.rule && html`<code title=${inc.rule}>${shortRule(inc.rule)}</code>`],
				['Detectors', detectorNames(inc.detectors).join(', ')],
				['Time', html`<${Time} t=${inc.time} />`],
				['Assignee', inc.assignee || 'nobody'],
				['Last change', inc.updated_at && html`<${Time} t=${inc.updated_at} /> by ${inc.updated_by}`],
			]} />
		</section>
		<form class="card triage" onSubmit=${(e) => { e.preventDefault(); save(d); }} aria-label="Triage">
			<h2>Triage</h2>
			<div class="row">
				<div class="field"><label for="i-status">Status</label>
					<select id="i-status" value=${d.status} onChange=${(e) => setDraft({ ...d, status: e.currentTarget.value })}>
						${STATUSES.map((s) => html`<option value=${s}>${label(s)}</option>`)}
					</select></div>
				<div class="field"><label for="i-assignee">Assignee</label>
					<input id="i-assignee" value=${d.assignee} maxlength="128" onInput=${(e) => setDraft({ ...d, assignee: e.currentTarget.value })} /></div>
				<div class="field buttons">
					<button type="submit" class="primary" disabled=${saving}>Save</button>
					${inc.status !== 'false_positive' &&
					html`<button type="button" class="fp" disabled=${saving} onClick=${() => save({ ...d, status: 'false_positive' })}>Mark false positive</button>`}
				</div>
			</div>
			<${ErrorBox} error=${saveError} />
		</form>
		<section class="card" aria-labelledby="notes-h">
			<h2 id="notes-h">Notes</h2>
			${(inc.notes || []).length === 0
				? html`<${Empty}>No note yet.</${Empty}>`
				: html`<ol class="notes">
						${inc.notes.map((n) => html`<li><p class="meta"><${Time} t=${n.time} /> · ${n.author}</p><p class="text">${n.text}</p></li>`)}
					</ol>`}
			<form onSubmit=${(e) => { e.preventDefault(); addNote(); }} aria-label="Add a note">
				<div class="field"><label for="i-note">Add a note</label>
					<textarea id="i-note" rows="3" maxlength="4096" value=${note} onInput=${(e) => setNote(e.currentTarget.value)}></textarea></div>
				<div class="actions"><button type="submit" disabled=${saving || !note.trim()}>Add note</button></div>
			</form>
		</section>
	</main>`;
}
