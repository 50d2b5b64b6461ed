// Every request the UI makes goes through api(): same origin only, the
// session cookie (HttpOnly: script never sees it), and the CSRF token on
// every state-changing request. A 401 anywhere means the session ended:
// the app goes back to sign-in.
let csrf = null;
let onUnauthorized = () => {};

export const CSRF_HEADER = 'X-CSRF-Token';

export function setCsrf(token) {
	csrf = token || null;
}

export function whenUnauthorized(fn) {
	onUnauthorized = fn;
}

export class ApiError extends Error {
	constructor(status, code, detail) {
		super(detail || code || `HTTP ${status}`);
		this.status = status;
		this.code = code;
	}
}

export async function api(method, path, body, { text = false, quiet401 = false, retried = false } = {}) {
	const headers = { Accept: text ? 'text/plain, text/x-diff' : 'application/json' };
	if (body !== undefined) headers['Content-Type'] = 'application/json';
	if (method !== 'GET' && method !== 'HEAD' && csrf) headers[CSRF_HEADER] = csrf;
	const res = await fetch(path, {
		method,
		headers,
		body: body === undefined ? undefined : JSON.stringify(body),
		credentials: 'same-origin',
		cache: 'no-store',
	});
	if (res.status === 401 && !quiet401) onUnauthorized();
	if (!res.ok) {
		let code = '', detail = '';
		try {
			const j = await res.json();
			code = j.error || '';
			detail = j.detail || '';
		} catch (_) {
			/* not JSON: the status says it */
		}
		if (res.status === 403 && code === 'csrf_refused' && !retried) {
			// The token this page holds is not the session's (not loaded
			// yet, or cleared by a request that raced the session's
			// answer): ask the session for it, once, and send again.
			const session = await api('GET', '/api/v1/session', undefined, { quiet401 });
			setCsrf(session.csrf);
			return api(method, path, body, { text, quiet401, retried: true });
		}
		throw new ApiError(res.status, code, detail || `${res.status} ${res.statusText}`);
	}
	if (res.status === 204) return null;
	return text ? res.text() : res.json();
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body === undefined ? {} : body, opts);

// Query string from an object, leaving out empty values.
export function qs(params) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
	const s = q.toString();
	return s ? `?${s}` : '';
}
