// Sign-in: an admin token (dlpgate-console admin token create) is traded
// for a session; the token itself is never stored by the browser.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { post } from '../api.js';
import { ErrorBox } from '../ui.js';

export function SignIn({ onSignedIn }) {
	const [token, setToken] = useState('');
	const [busy, setBusy] = useState(false);
	const [error, setError] = useState(null);
	const submit = async (e) => {
		e.preventDefault();
		setBusy(true);
		setError(null);
		try {
			const s = await post('/api/v1/session', { token: token.trim() }, { quiet401: true });
			setToken('');
			onSignedIn(s);
		} catch (err) {
			setError(err.status === 401 ? new Error('That token is not valid (or was revoked).') : err);
		} finally {
			setBusy(false);
		}
	};
	return html`<main id="main" class="signin">
		<form class="card" onSubmit=${submit}>
			<h1>dlpgate console</h1>
			<p class="muted">Sign in with an admin token. An admin makes one with${' '}
				<code>dlpgate-console admin token create --role viewer|analyst|admin</code>.</p>
			<label for="token">Token</label>
			<input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required
				value=${token} onInput=${(e) => setToken(e.currentTarget.value)} />
			<button type="submit" class="primary" disabled=${busy || !token.trim()}>${busy ? 'Signing in…' : 'Sign in'}</button>
			<${ErrorBox} error=${error} />
		</form>
	</main>`;
}
