// The console's web UI in Debian's Chromium, driven by playwright-core,
// against the real console the web_ui integration suite (tests/integration/
// test_web_ui.c) started and fed with real agents' traffic. It is told what was
// sent in a JSON file (argv[2]); it exits 0 when every step passed, else 1
// after printing the failed step (a screenshot of it is in the screens dir).
//
// Every page is also watched for what must never happen: a JavaScript
// dialog, window.__xss being set (each XSS attempt the suite planted sets
// it), an element carrying an event-handler attribute, a CSP violation, a
// page error, or a request to anything but the console.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const top = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(join(top, '.deps/node_modules/'));
const { chromium } = require('playwright-core');
const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const URL0 = cfg.url;
rmSync(cfg.screens, { recursive: true, force: true });
mkdirSync(cfg.screens, { recursive: true });

// Chromium accepts the console's self-signed certificate by its key, and
// nothing else: the page is still a secure context (Secure cookies).
const spki = createHash('sha256')
	.update(new X509Certificate(readFileSync(cfg.cert)).publicKey.export({ type: 'spki', format: 'der' }))
	.digest('base64');
const browser = await chromium.launch({
	executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${spki}`],
});

const t0 = Date.now();
let current = '';
let lastPage = null;
async function step(name, fn) {
	current = name;
	const t = Date.now();
	await fn();
	console.log(`ok   ${name} (${Date.now() - t} ms)`);
}

// A signed-out page of a new browser context, with the watchers on.
async function newPage({ width = 1280, height = 800, colorScheme = 'light' } = {}) {
	const context = await browser.newContext({ viewport: { width, height }, colorScheme });
	await context.addInitScript(() => {
		window.__csp = [];
		document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
	});
	const page = await context.newPage();
	page.setDefaultTimeout(8000);
	page.problems = [];
	page.on('dialog', (d) => {
		page.problems.push(`a ${d.type()} dialog fired: ${d.message()}`);
		d.dismiss().catch(() => {});
	});
	page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
	page.on('request', (r) => {
		const u = r.url();
		if (!u.startsWith(`${URL0}/`) && !u.startsWith('data:')) page.problems.push(`request outside the console: ${u}`);
	});
	lastPage = page;
	return page;
}

// Nothing injected ran or exists, and nothing broke the rules, on this page.
async function clean(page) {
	const s = await page.evaluate(() => ({
		xss: window.__xss,
		handlers: [...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => /^on/i.test(a.name))).length,
		imgs: document.querySelectorAll('img, svg:not(.uplot svg), script:not([src]), iframe, object').length,
		csp: window.__csp,
	}));
	assert.equal(s.xss, undefined, 'an injected script ran (window.__xss is set)');
	assert.equal(s.handlers, 0, 'an element carries an event-handler attribute');
	assert.equal(s.imgs, 0, 'an injected element (img, svg, inline script, iframe, object) exists');
	assert.deepEqual(s.csp, [], 'CSP violations');
	assert.deepEqual(page.problems, []);
}

async function signIn(page, token) {
	await page.goto(`${URL0}/`);
	await page.fill('#token', token);
	await page.click('button[type=submit]');
	await page.waitForSelector('header.top');
}

// GET/POST from inside the page, with the session cookie (and the given headers).
function pageFetch(page, method, path, { body, csrf } = {}) {
	return page.evaluate(
		async ([method, path, body, csrf]) => {
			const headers = { 'Content-Type': 'application/json' };
			if (csrf) headers['X-CSRF-Token'] = csrf;
			const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
			let json = null;
			try {
				json = await r.json();
			} catch (_) {
				/* 204 */
			}
			return { status: r.status, json };
		},
		[method, path, body, csrf],
	);
}
// A GET from inside the page: status, headers, body text.
function rawFetch(page, path) {
	return page.evaluate(async (path) => {
		const r = await fetch(path);
		return { status: r.status, headers: Object.fromEntries(r.headers), text: await r.text() };
	}, path);
}
const csrfOf = async (page) => (await pageFetch(page, 'GET', '/api/v1/session')).json.csrf;
const rows = (page) => page.locator('table.events tbody tr');

async function expectRows(page, n) {
	await page.waitForFunction((n) => document.querySelectorAll('table.events tbody tr').length === n, n).catch(async () => {
		throw new Error(`want ${n} rows, the table has ${await rows(page).count()}`);
	});
}

try {
	const page = await newPage();
	let sessionCookie;

	await step('headers: CSP, framing, nosniff on the page; no-store on the API', async () => {
		const res = await page.goto(`${URL0}/`);
		const h = res.headers();
		const csp = h['content-security-policy'] || '';
		assert.match(csp, /script-src 'self'(;|$)/);
		assert.match(csp, /style-src 'self'(;|$)/);
		assert.match(csp, /frame-ancestors 'none'/);
		assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
		assert.equal(h['x-content-type-options'], 'nosniff');
		const api = await rawFetch(page, '/api/v1/session');
		assert.equal(api.status, 401);
		assert.match(api.headers['cache-control'] || '', /no-store/);
	});

	await step('sign in: a bad token is refused, the admin token makes a session', async () => {
		await page.fill('#token', 'f'.repeat(64));
		await page.click('button[type=submit]');
		await page.waitForSelector('.error');
		await signIn(page, cfg.tokens.admin);
		const cookies = await page.context().cookies();
		sessionCookie = cookies.find((c) => c.name === 'dlpgate_session');
		assert.ok(sessionCookie, `no dlpgate_session cookie: ${cookies.map((c) => c.name)}`);
		assert.equal(sessionCookie.httpOnly, true);
		assert.equal(sessionCookie.secure, true);
		assert.equal(sessionCookie.sameSite, 'Strict');
		assert.ok(sessionCookie.expires > Date.now() / 1000, 'the cookie has no expiry');
		assert.equal(await page.evaluate(() => document.cookie), '', 'script can read the session cookie');
		await clean(page);
	});

	await step('dashboard: the counts that were sent', async () => {
		await page.waitForSelector('[data-testid=total-block]');
		assert.equal(await page.textContent('[data-testid=total-block]'), String(cfg.expect.block));
		assert.equal(await page.textContent('[data-testid=total-redact]'), String(cfg.expect.redact));
		await page.waitForSelector('.chart canvas');
		const tops = await page.textContent('.grid4');
		assert.ok(tops.includes('card') && tops.includes('localhost'), `top lists: ${tops}`);
		assert.ok(tops.includes(cfg.xss_detector), 'the markup detector name is shown as text');
		await clean(page);
	});

	await step('explorer: filter by detector, then host; the URL holds the filter; back works', async () => {
		await page.click('nav >> text=Events');
		await page.waitForSelector('#f-detector');
		await page.fill('#f-detector', 'card');
		await page.click('form.filters button[type=submit]');
		await page.waitForURL(/detector=card/);
		await expectRows(page, cfg.expect.card);
		await page.fill('#f-detector', '');
		await page.fill('#f-host', 'localhost');
		await page.click('form.filters button[type=submit]');
		await page.waitForURL((u) => u.searchParams.get('host') === 'localhost' && !u.searchParams.has('detector'));
		await expectRows(page, cfg.expect.host_localhost);
		await page.goBack();
		await page.waitForURL((u) => u.searchParams.get('detector') === 'card');
		await expectRows(page, cfg.expect.card);
		assert.equal(await page.inputValue('#f-detector'), 'card', 'the form follows the URL');
		// the same URL in a new tab is the same view
		const shared = await page.context().newPage();
		await shared.goto(page.url());
		await expectRows(shared, cfg.expect.card);
		await shared.close();
		const csv = await page.getAttribute('a:text("CSV")', 'href');
		assert.match(csv, /^\/api\/v1\/events\/export\?detector=card&format=csv$/);
		const res = await rawFetch(page, csv);
		assert.equal(res.status, 200);
		assert.equal(res.text.trim().split('\n').length, cfg.expect.card + 1, 'CSV: a header and one row per event');
		await clean(page);
	});

	let cardEventUrl;
	await step('event detail: the reason, the rule line in its source, the masked sample', async () => {
		await page.click('table.events tbody tr:first-child td:first-child a');
		await page.waitForSelector('[data-testid=reason]');
		cardEventUrl = page.url();
		assert.equal(await page.textContent('[data-testid=reason]'), 'card upload');
		assert.match(await page.textContent('[data-testid=rule]'), /policy\.lua:\d+$/);
		assert.equal((await page.textContent('.source .hit')).replace(/^\d+/, '').trimEnd(), cfg.card_line);
		assert.ok((await page.textContent('code.sample')).includes(cfg.masked), 'the masked sample is shown');
		assert.ok(!(await page.content()).includes('4111 1111 1111 1111'), 'the card number is on the page');
		await clean(page);
	});

	await step('XSS: every field an agent controls renders as text', async () => {
		// the policy's markup reason and detector name, a markup path
		await page.goto(`${URL0}/events?detector=${encodeURIComponent(cfg.xss_detector)}`);
		await expectRows(page, 1);
		assert.ok((await page.textContent('table.events')).includes('<svg/onload=window.__xss=3>'));
		await page.click('table.events tbody tr:first-child td:first-child a');
		await page.waitForSelector('[data-testid=reason]');
		assert.equal(await page.textContent('[data-testid=reason]'), cfg.xss_reason);
		const text = await page.textContent('main');
		for (const s of [cfg.xss_detector, '<svg/onload=window.__xss=3>'])
			assert.ok(text.includes(s), `"${s}" is not shown as text`);
		await clean(page);
		// the hostile agent's own event: host, path, app, rule, detector, sample, hostname
		await page.goto(`${URL0}/events?agent=${cfg.hostile_agent}`);
		await expectRows(page, 1);
		await clean(page);
		await page.click('table.events tbody tr:first-child td:first-child a');
		await page.waitForSelector('[data-testid=reason]');
		const hostile = await page.textContent('main');
		// hostname 5, rule 6, reason 7, detector 8, sample 9, app 10, host 11, path 12
		for (let i = 5; i <= 12; i++) assert.ok(hostile.includes(`window.__xss=${i}>`), `attempt ${i} is not on the page as text`);
		await clean(page);
		for (const path of ['/', '/agents', `/agents/${cfg.hostile_agent}`, '/incidents'])
			await page.goto(`${URL0}${path}`).then(() => page.waitForSelector('main h1')).then(() => page.waitForTimeout(150)).then(() => clean(page));
	});

	await step('incidents: mark one false positive; it is on the false-positive list', async () => {
		await page.goto(`${URL0}/incidents`);
		await page.waitForSelector('table.events tbody tr');
		assert.equal(await rows(page).count(), cfg.expect.block + cfg.expect.redact, 'one incident per enforced block or redact');
		await page.goto(`${URL0}/incidents?status=new`);
		await page.click('table.events tbody tr:first-child td:first-child a');
		await page.waitForSelector('[data-testid=incident-status]');
		await page.fill('#i-assignee', 'alice');
		await page.click('text=Mark false positive');
		await page.waitForFunction(() => document.querySelector('[data-testid=incident-status]').textContent === 'false positive');
		await page.fill('#i-note', 'test data from QA, not a real card');
		await page.click('text=Add note');
		await page.waitForSelector('.notes li');
		await page.click('nav >> text=Incidents');
		await page.click('text=False positives by detector');
		await page.waitForSelector('table.events tbody tr');
		await clean(page);
	});

	await step('policies: activate v2 and roll back, each confirmed with the agents it reaches', async () => {
		await page.goto(`${URL0}/policies/2`);
		// what changed from v1: email addresses now blocked
		await page.waitForSelector('.diff .add:has-text("email address")');
		await page.click('button:text("Activate v2")');
		await page.waitForSelector('[role=dialog]');
		// keyboard: focus moves into the dialog as it appears, is trapped
		// there, and Escape closes it
		assert.ok(await page.evaluate(() => document.querySelector('[role=dialog]').contains(document.activeElement)), 'focus did not move into the dialog');
		for (let i = 0; i < 4; i++) await page.keyboard.press('Tab');
		assert.ok(await page.evaluate(() => document.querySelector('[role=dialog]').contains(document.activeElement)), 'focus left the dialog');
		await page.keyboard.press('Escape');
		await page.waitForSelector('[role=dialog]', { state: 'detached' });
		await page.click('button:text("Activate v2")');
		await page.waitForFunction((n) => document.querySelector('.confirm-text').textContent.includes(`reaches ${n} of the ${n} enrolled agents`), cfg.expect.agents);
		await page.click('[role=dialog] button.primary');
		await page.waitForSelector(`.notice:text("targets ${cfg.expect.agents} agents")`);
		await page.goto(`${URL0}/policies`);
		await page.click('button:text("Roll back")');
		await page.waitForFunction((n) => document.querySelector('.confirm-text').textContent.includes(`reaches ${n} of the ${n}`), cfg.expect.agents);
		await page.click('[role=dialog] button.danger');
		await page.waitForSelector(`.notice:text("the content of v${cfg.rollback_to}")`);
		await clean(page);
	});

	await step('audit log: the UI\'s actions are there', async () => {
		await page.goto(`${URL0}/audit`);
		await page.waitForSelector('table.events tbody tr');
		const text = await page.textContent('table.events');
		for (const a of ['rollout.activate', 'policy.rollback', 'incident.update', 'incident.note']) assert.ok(text.includes(a), `${a} is not in the audit log`);
	});

	await step('CSRF: a state change without the session\'s token is refused', async () => {
		assert.equal((await pageFetch(page, 'POST', '/api/v1/policies/rollback')).status, 403);
		assert.equal((await pageFetch(page, 'POST', '/api/v1/policies/rollback', { csrf: '0'.repeat(64) })).status, 403);
		assert.equal((await pageFetch(page, 'POST', '/api/v1/rollouts/preview', { body: {}, csrf: await csrfOf(page) })).status, 200);
	});

	await step('screenshots: every page, 1280x800 and 390 wide, light and dark', async () => {
		const incident = (await pageFetch(page, 'GET', '/api/v1/incidents?limit=1')).json.incidents[0].id;
		const agent = (await pageFetch(page, 'GET', '/api/v1/agents')).json.agents.find((a) => a.agent_id !== cfg.hostile_agent).agent_id;
		const pages = [['dashboard', '/'], ['events', '/events'], ['event', new URL(cardEventUrl).pathname], ['incidents', '/incidents'],
			['incident', `/incidents/${incident}`], ['agents', '/agents'], ['agent', `/agents/${agent}`], ['policies', '/policies'],
			['policy', '/policies/2'], ['audit', '/audit']];
		for (const [w, h] of [[1280, 800], [390, 844]])
			for (const scheme of ['light', 'dark']) {
				await page.setViewportSize({ width: w, height: h });
				await page.emulateMedia({ colorScheme: scheme });
				for (const [name, path] of pages) {
					await page.goto(`${URL0}${path}`);
					await page.waitForSelector('main h1');
					await page.waitForFunction(() => !document.querySelector('main [role=status][aria-live]'));
					await page.screenshot({ path: join(cfg.screens, `${name}-${w}-${scheme}.png`), fullPage: w < 500 });
				}
			}
		await page.setViewportSize({ width: 1280, height: 800 });
		await page.emulateMedia({ colorScheme: 'light' });
	});

	await step('sign out ends the session on the server', async () => {
		await page.goto(`${URL0}/`);
		await page.click('button.signout');
		await page.waitForSelector('#token');
		await page.screenshot({ path: join(cfg.screens, 'signin-1280-light.png') });
		// the cookie as it was before sign-out, in a fresh browser
		const replay = await newPage();
		await replay.context().addCookies([sessionCookie]);
		await replay.goto(`${URL0}/`);
		assert.equal((await rawFetch(replay, '/api/v1/session')).status, 401, 'the old cookie still works');
		await replay.waitForSelector('#token');
		await replay.context().close();
	});

	await step('viewer: counts and events, no samples, no incidents, no policy actions', async () => {
		const v = await newPage();
		await signIn(v, cfg.tokens.viewer);
		assert.equal(await v.locator('nav >> text=Incidents').count(), 0);
		assert.equal(await v.locator('nav >> text=Audit log').count(), 0);
		await v.goto(cardEventUrl);
		await v.waitForSelector('[data-testid=reason]');
		assert.equal(await v.locator('code.sample').count(), 0);
		assert.ok((await v.textContent('td.samples')).includes('hidden for the viewer role'));
		assert.ok(!(await v.content()).includes(cfg.masked), 'a masked sample reached the viewer');
		await v.goto(`${URL0}/policies/2`);
		await v.waitForSelector('main h1');
		assert.equal(await v.locator('button:text("Activate v2")').count(), 0);
		await v.goto(`${URL0}/policies`);
		await v.waitForSelector('main h1');
		assert.equal(await v.locator('button:text("Roll back")').count(), 0);
		const csrf = await csrfOf(v);
		assert.equal((await pageFetch(v, 'GET', '/api/v1/incidents')).status, 403);
		assert.equal((await pageFetch(v, 'POST', '/api/v1/policies/rollback', { csrf })).status, 403);
		const ev = (await pageFetch(v, 'GET', '/api/v1/events?detector=card&limit=1')).json.events[0];
		assert.equal(ev.detectors.card.samples, undefined, 'the API sent the viewer samples');
		const dash = await rawFetch(v, '/api/v1/dashboard');
		assert.ok(dash.status === 200 && !dash.text.includes('****'), 'the dashboard sent the viewer samples');
		await clean(v);
		await v.context().close();
	});

	await step('analyst: samples and incidents, no policy actions', async () => {
		const a = await newPage();
		await signIn(a, cfg.tokens.analyst);
		assert.equal(await a.locator('nav >> text=Audit log').count(), 0);
		await a.goto(cardEventUrl);
		await a.waitForSelector('code.sample');
		await a.goto(`${URL0}/incidents?status=new`);
		await a.click('table.events tbody tr:first-child td:first-child a');
		await a.waitForSelector('#i-status');
		await a.selectOption('#i-status', 'triaged');
		await a.click('form.triage button[type=submit]');
		await a.waitForFunction(() => document.querySelector('[data-testid=incident-status]').textContent === 'triaged');
		await a.goto(`${URL0}/policies/2`);
		await a.waitForSelector('main h1');
		assert.equal(await a.locator('button:text("Activate v2")').count(), 0);
		const csrf = await csrfOf(a);
		assert.equal((await pageFetch(a, 'POST', '/api/v1/policies/2/activate', { body: {}, csrf })).status, 403);
		assert.equal((await pageFetch(a, 'GET', '/api/v1/audit')).status, 403);
		await clean(a);
		await a.context().close();
	});

	console.log(`all steps passed in ${Date.now() - t0} ms; screenshots in ${cfg.screens}`);
	await browser.close();
} catch (e) {
	console.log(`FAIL ${current}: ${e.stack || e}`);
	if (lastPage) {
		console.log(`page: ${lastPage.url()}; problems: ${JSON.stringify(lastPage.problems)}`);
		await lastPage.screenshot({ path: join(cfg.screens, 'FAILED.png') }).catch(() => {});
	}
	await browser.close();
	process.exit(1);
}
