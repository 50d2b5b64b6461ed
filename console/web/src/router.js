// Path routing over the History API: the console answers index.html for
// every path that is not /api/ or an asset, so /events?verdict=block is a
// link one can share, and the back button walks the filters one used.
import { useEffect, useState } from 'preact/hooks';
import { html } from 'htm/preact';

const listeners = new Set();
function notify() {
	for (const fn of listeners) fn();
}
window.addEventListener('popstate', notify);

export function navigate(url, { replace = false } = {}) {
	if (url === location.pathname + location.search) return;
	history[replace ? 'replaceState' : 'pushState'](null, '', url);
	notify();
	if (!replace) window.scrollTo(0, 0);
}

export function useLocation() {
	const [, setTick] = useState(0);
	useEffect(() => {
		const fn = () => setTick((t) => t + 1);
		listeners.add(fn);
		return () => listeners.delete(fn);
	}, []);
	return { path: location.pathname, query: new URLSearchParams(location.search) };
}

// A link the router follows in place (a modified click opens a new tab as usual).
export function Link({ href, children, ...rest }) {
	const onClick = (e) => {
		if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
		e.preventDefault();
		navigate(href);
	};
	return html`<a href=${href} onClick=${onClick} ...${rest}>${children}</a>`;
}
