// Small shared pieces: data loading, formatting, the confirmation dialog.
// Everything an agent sent is rendered as a text node by Preact (never as
// markup: no dangerouslySetInnerHTML anywhere in this UI).
import { html } from 'htm/preact';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { get } from './api.js';

// Loads a URL (or runs fn) whenever deps change; stale answers are dropped.
export function useFetch(url, deps = [url]) {
	const [state, setState] = useState({ loading: true, data: null, error: null });
	const [tick, setTick] = useState(0);
	useEffect(() => {
		if (!url) {
			setState({ loading: false, data: null, error: null });
			return undefined;
		}
		let live = true;
		setState((s) => ({ ...s, loading: true, error: null }));
		(typeof url === 'function' ? url() : get(url)).then(
			(data) => live && setState({ loading: false, data, error: null }),
			(error) => live && setState({ loading: false, data: null, error }),
		);
		return () => {
			live = false;
		};
	}, [...deps, tick]);
	const reload = useCallback(() => setTick((t) => t + 1), []);
	return { ...state, reload };
}

export function Loading({ what = 'Loading' }) {
	return html`<p class="muted" role="status" aria-live="polite">${what}…</p>`;
}

export function ErrorBox({ error }) {
	if (!error) return null;
	return html`<p class="error" role="alert">${error.status === 403 ? 'Your role may not see this.' : error.message}</p>`;
}

export function Empty({ children }) {
	return html`<p class="empty muted">${children}</p>`;
}

const nf = new Intl.NumberFormat();
export const num = (n) => (n === undefined || n === null ? '—' : nf.format(n));

export function bytes(n) {
	if (n === undefined || n === null) return '—';
	if (n < 1024) return `${n} B`;
	const u = ['KiB', 'MiB', 'GiB', 'TiB'];
	let i = -1;
	do {
		n /= 1024;
		i++;
	} while (n >= 1024 && i < u.length - 1);
	return `${n.toFixed(n < 10 ? 1 : 0)} ${u[i]}`;
}

export function when(t) {
	if (!t) return '—';
	const d = new Date(t);
	if (Number.isNaN(d.getTime())) return String(t);
	return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function ago(t) {
	if (!t) return 'never';
	const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
	if (Number.isNaN(s)) return String(t);
	if (s < 60) return `${Math.max(s, 0)} s ago`;
	if (s < 3600) return `${Math.round(s / 60)} min ago`;
	if (s < 86400) return `${Math.round(s / 3600)} h ago`;
	return `${Math.round(s / 86400)} d ago`;
}

export function Time({ t }) {
	return html`<time datetime=${t} title=${t}>${when(t)}</time>`;
}

export const VERDICTS = ['block', 'redact', 'pass', 'bypass', 'inspect'];

export function Verdict({ v, monitor }) {
	return html`<span class=${`verdict v-${VERDICTS.includes(v) ? v : 'other'}`}>${v || '—'}${
		monitor ? html` <small>(monitor)</small>` : null
	}</span>`;
}

// Agents name a rule's file relative to the policy's folder ("policy.lua:6").
// Compatibility with older agents only, which sent their own path to their
// copy of a console bundle (".../policy/v3/bundle/policy.lua:6"): show the
// bundle's path.
export const shortRule = (rule) => (rule || '').replace(/^.*\/bundle\//, '');

// Detector names from a list of names or an event's {name: {...}} object.
export function detectorNames(d) {
	if (Array.isArray(d)) return d;
	return d && typeof d === 'object' ? Object.keys(d) : [];
}

// The detectors of an event as "card ×3, email".
export function detectorList(ev) {
	const d = ev && ev.detectors;
	if (!d || typeof d !== 'object') return '';
	return Object.entries(d)
		.map(([k, v]) => (v && v.count > 1 ? `${k} ×${v.count}` : k))
		.join(', ');
}

// A modal dialog: focus moves in and stays in (Tab cycles), Escape or
// Cancel closes it, focus goes back where it was. Focus moves in a layout
// effect, before the browser paints, and the keys are watched on the whole
// document: a Tab pressed the moment the dialog appears, or while focus sits
// outside it, still lands inside.
export function Dialog({ title, children, onClose, actions }) {
	const ref = useRef(null);
	const closeRef = useRef(onClose);
	closeRef.current = onClose;
	useLayoutEffect(() => {
		const before = document.activeElement;
		const el = ref.current;
		const focusables = () =>
			[...el.querySelectorAll('button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])')].filter(
				(n) => !n.disabled,
			);
		(focusables()[0] || el).focus();
		const onKey = (e) => {
			if (e.key === 'Escape') {
				e.preventDefault();
				closeRef.current();
			} else if (e.key === 'Tab') {
				const f = focusables();
				if (!f.length) {
					e.preventDefault();
					el.focus();
					return;
				}
				const first = f[0], last = f[f.length - 1];
				const inside = el.contains(document.activeElement);
				if (!inside || (e.shiftKey && document.activeElement === first)) {
					e.preventDefault();
					(e.shiftKey ? last : first).focus();
				} else if (!e.shiftKey && document.activeElement === last) {
					e.preventDefault();
					first.focus();
				}
			}
		};
		document.addEventListener('keydown', onKey, true);
		return () => {
			document.removeEventListener('keydown', onKey, true);
			if (before && before.focus) before.focus();
		};
	}, []);
	return html`<div class="backdrop" onClick=${(e) => e.target === e.currentTarget && onClose()}>
		<div class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-title" tabindex="-1" ref=${ref}>
			<h2 id="dialog-title">${title}</h2>
			<div class="dialog-body">${children}</div>
			<div class="actions">${actions}</div>
		</div>
	</div>`;
}

// A button that asks first: the dialog says what will happen (text from
// describe(), which may load data) and runs action() on confirmation.
export function ConfirmButton({ label, title, describe, action, danger, onDone, className }) {
	const [open, setOpen] = useState(false);
	const [text, setText] = useState(null);
	const [busy, setBusy] = useState(false);
	const [error, setError] = useState(null);
	const show = async () => {
		setOpen(true);
		setError(null);
		setText('…');
		try {
			setText(await describe());
		} catch (e) {
			setText(null);
			setError(e);
		}
	};
	const go = async () => {
		setBusy(true);
		setError(null);
		try {
			const r = await action();
			setOpen(false);
			onDone && onDone(r);
		} catch (e) {
			setError(e);
		} finally {
			setBusy(false);
		}
	};
	return html`<button type="button" class=${className || (danger ? 'danger' : '')} onClick=${show}>${label}</button>
		${open &&
		html`<${Dialog}
			title=${title}
			onClose=${() => setOpen(false)}
			actions=${html`<button type="button" onClick=${() => setOpen(false)}>Cancel</button>
				<button type="button" class=${danger ? 'danger' : 'primary'} disabled=${busy} onClick=${go}>
					${busy ? 'Working…' : label}
				</button>`}
		>
			<p class="confirm-text">${text}</p>
			<${ErrorBox} error=${error} />
		</${Dialog}>`}`;
}

// A labelled key/value list.
export function Facts({ rows }) {
	return html`<dl class="facts">
		${rows
			.filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== '')
			.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}
	</dl>`;
}
