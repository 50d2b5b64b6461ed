// Event explorer: the filter lives in the URL (a link shares it, the back
// button undoes it), pages are cursors, and every row opens the event's
// "why". Export takes the same filter.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { qs } from '../api.js';
import { Link, navigate, useLocation } from '../router.js';
import { Empty, ErrorBox, Loading, Time, VERDICTS, Verdict, detectorList, useFetch } from '../ui.js';
import { FILTERS, eventsUrl, exportUrl } from '../model.js';

const TEXT_FILTERS = [
	['detector', 'Detector', 'e.g. card'],
	['host', 'Host', 'e.g. pastebin.com'],
	['app', 'App', 'path or signing id'],
	['agent', 'Agent', 'agent id'],
	['policy_version', 'Policy version', 'e.g. v3'],
];

// datetime-local speaks local time without a zone; the URL holds RFC 3339.
const toLocal = (iso) => {
	if (!iso) return '';
	const d = new Date(iso);
	if (Number.isNaN(d.getTime())) return '';
	const p = (n) => String(n).padStart(2, '0');
	return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};
const fromLocal = (v) => (v ? new Date(v).toISOString() : '');

function filtersOf(query) {
	const f = {};
	for (const k of FILTERS) if (query.get(k)) f[k] = query.get(k);
	return f;
}

function FilterForm({ filters }) {
	const [draft, setDraft] = useState(filters);
	const set = (k) => (e) => setDraft({ ...draft, [k]: e.currentTarget.value });
	const submit = (e) => {
		e.preventDefault();
		navigate(`/events${qs(draft)}`);
	};
	const preset = (seconds) => {
		const f = { ...draft, since: new Date(Date.now() - seconds * 1000).toISOString(), until: '' };
		setDraft(f);
		navigate(`/events${qs(f)}`);
	};
	return html`<form class="card filters" onSubmit=${submit} aria-label="Filters">
		<div class="field">
			<label for="f-verdict">Verdict</label>
			<select id="f-verdict" value=${draft.verdict || ''} onChange=${set('verdict')}>
				<option value="">any</option>
				${VERDICTS.map((v) => html`<option value=${v}>${v}</option>`)}
			</select>
		</div>
		${TEXT_FILTERS.map(
			([k, label, ph]) => html`<div class="field">
				<label for=${`f-${k}`}>${label}</label>
				<input id=${`f-${k}`} name=${k} value=${draft[k] || ''} placeholder=${ph} onInput=${set(k)} autocomplete="off" spellcheck="false" />
			</div>`,
		)}
		<div class="field">
			<label for="f-mode">Mode</label>
			<select id="f-mode" value=${draft.mode || ''} onChange=${set('mode')}>
				<option value="">enforced and monitor</option>
				<option value="enforced">enforced only</option>
				<option value="monitor">monitor only</option>
				<option value="shadow">shadow (candidate policy)</option>
			</select>
		</div>
		<div class="field">
			<label for="f-since">From</label>
			<input id="f-since" type="datetime-local" value=${toLocal(draft.since)} onChange=${(e) => setDraft({ ...draft, since: fromLocal(e.currentTarget.value) })} />
		</div>
		<div class="field">
			<label for="f-until">To</label>
			<input id="f-until" type="datetime-local" value=${toLocal(draft.until)} onChange=${(e) => setDraft({ ...draft, until: fromLocal(e.currentTarget.value) })} />
		</div>
		<div class="field buttons">
			<button type="submit" class="primary">Apply</button>
			<button type="button" onClick=${() => preset(3600)}>1 h</button>
			<button type="button" onClick=${() => preset(86400)}>24 h</button>
			<button type="button" onClick=${() => preset(7 * 86400)}>7 d</button>
			<button type="button" onClick=${() => { setDraft({}); navigate('/events'); }}>Clear</button>
		</div>
	</form>`;
}

// On a phone the filter form folds away once a filter is set: the rows matter more.
const wide = matchMedia('(min-width: 701px)').matches;

export function Explorer() {
	const { query } = useLocation();
	const filters = filtersOf(query);
	const cursor = query.get('cursor') || undefined;
	const key = qs(filters) + (cursor || '');
	const { data, error, loading } = useFetch(eventsUrl(filters, cursor), [key]);
	const events = (data && data.events) || [];
	const next = data && data.next_cursor;
	return html`<main id="main" class="explorer">
		<div class="page-head">
			<h1>Events</h1>
			<span class="exports">Export:
				<a href=${exportUrl(filters, 'csv')} download>CSV</a>
				<a href=${exportUrl(filters, 'ndjson')} download>NDJSON</a>
			</span>
		</div>
		<details class="filter-box" open=${wide || Object.keys(filters).length === 0}>
			<summary>Filters${Object.keys(filters).length ? ` · ${Object.keys(filters).length} set` : ''}</summary>
			<${FilterForm} filters=${filters} key=${qs(filters)} />
		</details>
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${data &&
		(events.length === 0
			? html`<${Empty}>No event matches this filter.</${Empty}>`
			: html`<div class="table-wrap"><table class="events" aria-busy=${loading ? 'true' : 'false'}>
					<thead><tr><th>Time</th><th>Verdict</th><th>Host and path</th><th>Reason</th><th>Detectors</th><th>App</th><th>Agent</th><th>Policy</th></tr></thead>
					<tbody>
						${events.map(
							(e) => html`<tr>
								<td class="nowrap"><${Link} href=${`/events/${encodeURIComponent(e.id)}`}><${Time} t=${e.time} /></${Link}></td>
								<td class="nowrap"><${Verdict} v=${e.verdict} monitor=${e.monitor} />${e.event === 'shadow' ? html` <small class="muted">shadow</small>` : null}</td>
								<td class="host"><span>${e.flow && e.flow.host}</span><small>${e.flow && e.flow.method ? `${e.flow.method} ` : ''}${e.flow && e.flow.path}</small></td>
								<td>${e.reason || e.note || (e.event !== 'verdict' ? e.event : '')}</td>
								<td>${detectorList(e)}</td>
								<td class="app" title=${e.app && e.app.path}>${e.app && (e.app.signing_id || (e.app.path || '').split('/').pop())}</td>
								<td class="nowrap" title=${e.agent_id}>${e.hostname || (e.agent_id || '').slice(-8)}</td>
								<td class="nowrap">${e.policy_version}</td>
							</tr>`,
						)}
					</tbody>
				</table></div>`)}
		<nav class="pager" aria-label="Pages">
			${cursor && html`<${Link} href=${`/events${qs(filters)}`}>First page</${Link}>`}
			${next && html`<${Link} href=${`/events${qs({ ...filters, cursor: next })}`} rel="next">Older events</${Link}>`}
		</nav>
	</main>`;
}
