// Incidents: every block or redact opens one. Analysts triage them
// (status, assignee, notes); "false positive" feeds the list admins tune
// detectors from. Viewers read; the console refuses their changes anyway.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, qs } from '../api.js';
import { Link, navigate, useLocation } from '../router.js';
import { Empty, ErrorBox, Facts, Loading, Time, Verdict, detectorList, useFetch } from '../ui.js';

export const STATUSES = ['new', 'triaged', 'false_positive', 'resolved'];
const label = (s) => (s === 'false_positive' ? 'false positive' : s);
export const canWork = (session) => session.role === 'analyst' || session.role === 'admin';

export function Incidents({ session }) {
	const { query } = useLocation();
	const status = query.get('status') || '';
	const cursor = query.get('cursor') || undefined;
	const { data, error, loading } = useFetch(`/api/v1/incidents${qs({ status, cursor, limit: 50 })}`, [status, cursor]);
	const list = (data && data.incidents) || [];
	return html`<main id="main" class="incidents">
		<div class="page-head">
			<h1>${status === 'false_positive' ? 'False positives' : 'Incidents'}</h1>
			<label>Status
				<select value=${status} onChange=${(e) => navigate(`/incidents${qs({ status: e.currentTarget.value })}`)}>
					<option value="">open (new and triaged)</option>
					${STATUSES.map((s) => html`<option value=${s}>${label(s)}</option>`)}
					<option value="all">all</option>
				</select>
			</label>
			${session.role === 'admin' && status !== 'false_positive' &&
			html`<${Link} href="/incidents?status=false_positive">False-positive list (for tuning)</${Link}>`}
		</div>
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${data &&
		(list.length === 0
			? html`<${Empty}>No incident with this status.</${Empty}>`
			: html`<div class="table-wrap"><table class="events">
					<thead><tr><th>Opened</th><th>Status</th><th>Verdict</th><th>Host</th><th>Reason</th><th>Detectors</th><th>Assignee</th></tr></thead>
					<tbody>
						${list.map((i) => {
							const ev = i.event || {};
							return html`<tr>
								<td class="nowrap"><${Link} href=${`/incidents/${encodeURIComponent(i.id)}`}><${Time} t=${i.created_at || ev.time} /></${Link}></td>
								<td><span class=${`status s-${i.status}`}>${label(i.status)}</span></td>
								<td><${Verdict} v=${i.verdict || ev.verdict} /></td>
								<td class="host">${i.host || (ev.flow && ev.flow.host)}</td>
								<td>${i.reason || ev.reason}</td>
								<td>${i.detectors ? [].concat(i.detectors).join(', ') : detectorList(ev)}</td>
								<td>${i.assignee || html`<span class="muted">nobody</span>`}</td>
							</tr>`;
						})}
					</tbody>
				</table></div>`)}
		<nav class="pager" aria-label="Pages">
			${cursor && html`<${Link} href=${`/incidents${qs({ status })}`}>First page</${Link}>`}
			${data && data.next_cursor && html`<${Link} href=${`/incidents${qs({ status, cursor: data.next_cursor })}`}>Older incidents</${Link}>`}
		</nav>
	</main>`;
}

export function IncidentDetail({ id, session }) {
	const url = `/api/v1/incidents/${encodeURIComponent(id)}`;
	const { data: inc, error, loading, reload } = useFetch(url);
	const [draft, setDraft] = useState(null);
	const [saving, setSaving] = useState(false);
	const [saveError, setSaveError] = useState(null);
	if (loading && !inc) return html`<main id="main"><${Loading} /></main>`;
	if (error) return html`<main id="main"><h1>Incident</h1><${ErrorBox} error=${error} /></main>`;
	const d = draft || { status: inc.status, assignee: inc.assignee || '', note: '' };
	const save = async (change) => {
		setSaving(true);
		setSaveError(null);
		try {
			const body = { status: change.status, assignee: change.assignee };
			if (change.note && change.note.trim()) body.note = change.note.trim();
			await api('PATCH', url, body);
			setDraft(null);
			reload();
		} catch (e) {
			setSaveError(e);
		} finally {
			setSaving(false);
		}
	};
	const ev = inc.event || {};
	const work = canWork(session);
	return html`<main id="main" class="incident">
		<p class="crumbs"><${Link} href="/incidents">Incidents</${Link}> › ${inc.id}</p>
		<h1>Incident <span class=${`status s-${inc.status}`} data-testid="incident-status">${label(inc.status)}</span></h1>
		<section class="card">
			<${Facts} rows=${[
				['Event', html`<${Link} href=${`/events/${encodeURIComponent(inc.event_id || ev.id)}`}>${(ev.reason || inc.reason || 'open the event')}</${Link}>`],
				['Verdict', html`<${Verdict} v=${inc.verdict || ev.verdict} />`],
				['Host', inc.host || (ev.flow && ev.flow.host)],
				['Opened', html`<${Time} t=${inc.created_at} />`],
				['Updated', inc.updated_at && html`<${Time} t=${inc.updated_at} />`],
				['Assignee', inc.assignee || 'nobody'],
			]} />
		</section>
		${work &&
		html`<form class="card triage" onSubmit=${(e) => { e.preventDefault(); save(d); }} aria-label="Triage">
			<h2>Triage</h2>
			<div class="row">
				<div class="field"><label for="i-status">Status</label>
					<select id="i-status" value=${d.status} onChange=${(e) => setDraft({ ...d, status: e.currentTarget.value })}>
						${STATUSES.map((s) => html`<option value=${s}>${label(s)}</option>`)}
					</select></div>
				<div class="field"><label for="i-assignee">Assignee</label>
					<input id="i-assignee" value=${d.assignee} maxlength="128" onInput=${(e) => setDraft({ ...d, assignee: e.currentTarget.value })} /></div>
			</div>
			<div class="field"><label for="i-note">Add a note</label>
				<textarea id="i-note" rows="3" maxlength="4000" value=${d.note} onInput=${(e) => setDraft({ ...d, note: e.currentTarget.value })}></textarea></div>
			<div class="actions">
				<button type="submit" class="primary" disabled=${saving}>Save</button>
				${inc.status !== 'false_positive' &&
				html`<button type="button" class="fp" disabled=${saving} onClick=${() => save({ ...d, status: 'false_positive' })}>Mark false positive</button>`}
			</div>
			<${ErrorBox} error=${saveError} />
		</form>`}
		<section class="card" aria-labelledby="notes-h">
			<h2 id="notes-h">Notes and history</h2>
			${(inc.notes || []).length === 0
				? html`<${Empty}>No note yet.</${Empty}>`
				: html`<ol class="notes">
						${inc.notes.map((n) => html`<li><p class="meta"><${Time} t=${n.time} /> · ${n.author || n.actor}</p><p class="text">${n.text || n.note}</p></li>`)}
					</ol>`}
		</section>
	</main>`;
}
