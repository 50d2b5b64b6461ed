// The audit log: every admin action, who, when and what.
import { html } from 'htm/preact';
import { qs } from '../api.js';
import { Link, useLocation } from '../router.js';
import { Empty, ErrorBox, Loading, Time, useFetch } from '../ui.js';

export function Audit() {
	const { query } = useLocation();
	const cursor = query.get('cursor') || undefined;
	const { data, error, loading } = useFetch(`/api/v1/audit${qs({ cursor, limit: 100 })}`, [cursor]);
	const list = (data && data.audit) || [];
	return html`<main id="main" class="audit">
		<h1>Audit log</h1>
		<${ErrorBox} error=${error} />
		${loading && !data && html`<${Loading} />`}
		${data &&
		(list.length === 0
			? html`<${Empty}>No admin action yet.</${Empty}>`
			: html`<div class="table-wrap"><table class="events">
					<thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Detail</th></tr></thead>
					<tbody>
						${list.map(
							(a) => html`<tr>
								<td class="nowrap"><${Time} t=${a.time} /></td>
								<td class="nowrap"><code>${a.actor}</code></td>
								<td class="nowrap">${a.action}</td>
								<td><code class="detail">${typeof a.detail === 'string' ? a.detail : JSON.stringify(a.detail)}</code></td>
							</tr>`,
						)}
					</tbody>
				</table></div>`)}
		<nav class="pager" aria-label="Pages">
			${cursor && html`<${Link} href="/audit">Newest</${Link}>`}
			${data && data.next_cursor && html`<${Link} href=${`/audit${qs({ cursor: data.next_cursor })}`}>Older</${Link}>`}
		</nav>
	</main>`;
}
