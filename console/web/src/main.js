// The console's web UI: a session (cookie + CSRF token) from an admin
// token, then pages routed by path. Views are Preact + htm (4 KB + 1 KB,
// no compiler: the tagged templates build elements, never HTML strings).
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { html, render } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, get, setCsrf, whenUnauthorized } from './api.js';
import { Link, navigate, useLocation } from './router.js';
import { Loading } from './ui.js';
import { SignIn } from './pages/signin.js';
import { Dashboard } from './pages/dashboard.js';
import { Explorer } from './pages/explorer.js';
import { EventDetail } from './pages/event.js';
import { Incidents, IncidentDetail } from './pages/incidents.js';
import { Agents, AgentDetail } from './pages/agents.js';
import { Policies, PolicyDetail } from './pages/policies.js';
import { Audit } from './pages/audit.js';

export const SESSION = '/api/v1/session';

const NAV = [
	['/', 'Dashboard'],
	['/events', 'Events'],
	['/incidents', 'Incidents', 'analyst'],
	['/agents', 'Agents'],
	['/policies', 'Policies'],
	['/audit', 'Audit log', 'admin'],
];

function route(path, session) {
	const m = (re) => path.match(re);
	let r;
	if (path === '/' || path === '/dashboard') return html`<${Dashboard} session=${session} />`;
	if (path === '/events') return html`<${Explorer} session=${session} />`;
	if ((r = m(/^\/events\/([^/]+)$/))) return html`<${EventDetail} id=${decodeURIComponent(r[1])} session=${session} />`;
	if (path === '/incidents') return html`<${Incidents} session=${session} />`;
	if ((r = m(/^\/incidents\/([^/]+)$/))) return html`<${IncidentDetail} id=${decodeURIComponent(r[1])} session=${session} />`;
	if (path === '/agents') return html`<${Agents} session=${session} />`;
	if ((r = m(/^\/agents\/([^/]+)$/))) return html`<${AgentDetail} id=${decodeURIComponent(r[1])} session=${session} />`;
	if (path === '/policies') return html`<${Policies} session=${session} />`;
	if ((r = m(/^\/policies\/(\d+)$/))) return html`<${PolicyDetail} version=${Number(r[1])} session=${session} />`;
	if (path === '/audit') return html`<${Audit} session=${session} />`;
	return html`<main id="main"><h1>Not found</h1><p>No page at this address. <${Link} href="/">Dashboard</${Link}></p></main>`;
}

// Roles in order of what they may do (schemas/console-api.md "Roles"):
// the UI hides what a role may not do; the console refuses it anyway.
const RANK = { viewer: 0, analyst: 1, admin: 2 };
export function allowed(session, role) {
	return !role || (RANK[session.role] ?? -1) >= RANK[role];
}

function current(path, href) {
	return href === '/' ? path === '/' || path === '/dashboard' : path === href || path.startsWith(`${href}/`);
}

// Who this tab signed in as (token id and role, nothing secret), so a
// reload draws the page and asks for its data at once, while the console
// confirms the session (and hands the CSRF token) in parallel. The role
// only decides what is shown; the console decides what is allowed.
const KEY = 'dlpgate.session';
function remembered() {
	try {
		const s = JSON.parse(sessionStorage.getItem(KEY));
		return s && typeof s.role === 'string' ? s : undefined;
	} catch (_) {
		return undefined;
	}
}
function remember(s) {
	if (s) sessionStorage.setItem(KEY, JSON.stringify({ token_id: s.token_id, role: s.role }));
	else sessionStorage.removeItem(KEY);
}

function App() {
	const [session, setSessionState] = useState(remembered);
	const setSession = (s) => {
		remember(s);
		setSessionState(s);
	};
	const { path } = useLocation();
	useEffect(() => {
		whenUnauthorized(() => {
			setCsrf(null);
			setSession(null);
		});
		get(SESSION, { quiet401: true }).then(
			(s) => {
				setCsrf(s.csrf);
				setSession(s);
			},
			() => setSession(null),
		);
	}, []);
	useEffect(() => {
		const title = (NAV.find(([href]) => current(path, href)) || [])[1];
		document.title = `${title ? `${title} · ` : ''}dlpgate console`;
	}, [path]);

	if (session === undefined) return html`<${Loading} />`;
	if (session === null)
		return html`<${SignIn}
			onSignedIn=${(s) => {
				setCsrf(s.csrf);
				setSession(s);
			}}
		/>`;
	const signOut = async () => {
		try {
			await api('DELETE', SESSION);
		} catch (e) {
			if (!(e instanceof ApiError) || e.status !== 401) throw e;
		}
		setCsrf(null);
		setSession(null);
		navigate('/', { replace: true });
	};
	return html`<a class="skip" href="#main">Skip to content</a>
		<header class="top">
			<${Link} class="brand" href="/">dlpgate</${Link}>
			<nav aria-label="Main">
				${NAV.filter(([, , role]) => allowed(session, role)).map(
					([href, label]) =>
						html`<${Link} href=${href} aria-current=${current(path, href) ? 'page' : undefined}>${label}</${Link}>`,
				)}
			</nav>
			<span class="who" title="Signed in as">${session.token_id || ''} <span class="role">${session.role}</span></span>
			<button type="button" class="signout" onClick=${signOut}>Sign out</button>
		</header>
		${route(path, session)}`;
}

render(html`<${App} />`, document.getElementById('app'));
