// Page-usable time of the console's web UI in Chromium (tests/bench/
// ui_pages.sh runs it against a console holding the 1M-event bench store).
// "Usable": from the start of the navigation to the moment the page shows
// its data (the dashboard's totals and chart, the explorer's rows, the
// event's rule line), warm (the assets cached, as for a user who comes
// back), median and worst of RUNS runs each.
// usage: node ui_pages.mjs URL CERT TOKEN [RUNS]
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const top = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = createRequire(join(top, '.deps/node_modules/'))('playwright-core');
const [url, cert, token, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 5);
const spki = createHash('sha256')
	.update(new X509Certificate(readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' }))
	.digest('base64');
const browser = await chromium.launch({
	executablePath: '/usr/bin/chromium',
	args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${spki}`],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
// When each awaited element first appears, by the page's own clock (ms
// since the navigation started): what a user sees, without the driver's
// polling and round trips, which the wall-clock column includes.
await context.addInitScript(() => {
	const want = ['[data-testid=total-events]', '.chart canvas', 'table.events tbody tr', '[data-testid=rule]'];
	window.__seen = {};
	new MutationObserver(() => {
		for (const s of want) if (!(s in window.__seen) && document.querySelector(s)) window.__seen[s] = Math.round(performance.now());
	}).observe(document, { childList: true, subtree: true });
});
const page = await context.newPage();
page.setDefaultTimeout(30000);
await page.goto(`${url}/`);
await page.fill('#token', token);
await page.click('button[type=submit]');
await page.waitForSelector('header.top');

// what to filter on: the store's own top detector, host, app and agent
const dash = await page.evaluate(async () => (await fetch('/api/v1/dashboard')).json());
const first = (k) => encodeURIComponent((dash.top[k][0] || {}).key || '');
const ev = await page.evaluate(async () => (await (await fetch('/api/v1/events?verdict=block&limit=1')).json()).events[0]);
const cases = [
	['dashboard, 24 h', '/', '[data-testid=total-events]'],
	['dashboard, 7 d', '/?range=7d', '[data-testid=total-events]'],
	['explorer, no filter', '/events', 'table.events tbody tr'],
	['explorer, verdict=block', '/events?verdict=block', 'table.events tbody tr'],
	['explorer, detector', `/events?detector=${first('detectors')}`, 'table.events tbody tr'],
	['explorer, host', `/events?host=${first('hosts')}`, 'table.events tbody tr'],
	['explorer, app', `/events?app=${first('apps')}`, 'table.events tbody tr'],
	['explorer, agent', `/events?agent=${first('agents')}`, 'table.events tbody tr'],
	['event detail', `/events/${ev.id}`, '[data-testid=rule]'],
];
console.log(`ms, median / worst of ${runs}, warm cache, 1280x800: usable = navigation start to the data on screen (the page's clock);`);
console.log('api = the page\'s data request; wall = the driver\'s goto to its selector (adds its own round trips)');
const LIMIT = 30000;
for (const [name, path, selector] of cases) {
	const times = [], walls = [], apis = [];
	for (let i = 0; i < runs; i++) {
		await page.goto('about:blank');
		const t = Date.now();
		await page.goto(`${url}${path}`);
		try {
			await page.waitForSelector(selector, { timeout: LIMIT });
			if (path === '/' || path.startsWith('/?')) await page.waitForSelector('.chart canvas, .empty', { timeout: LIMIT });
		} catch (_) {
			times.push(Infinity);
			walls.push(Infinity);
			apis.push(Infinity);
			break; // one timeout says enough; the next case
		}
		walls.push(Date.now() - t);
		times.push(await page.evaluate((sels) => Math.max(...sels.map((x) => window.__seen[x] ?? Infinity)),
			path === '/' || path.startsWith('/?') ? [selector, '.chart canvas'] : [selector]));
		// the page's own data request (not the session check)
		apis.push(await page.evaluate(() => Math.round(Math.max(0, ...performance.getEntriesByType('resource')
			.filter((e) => e.name.includes('/api/v1/') && !e.name.endsWith('/api/v1/session')).map((e) => e.duration)))));
	}
	const show = (xs) => {
		xs.sort((a, b) => a - b);
		const f = (v) => (v === Infinity ? `>${LIMIT}` : String(v));
		return `${f(xs[xs.length >> 1]).padStart(7)} ${f(xs[xs.length - 1]).padStart(7)}`;
	};
	console.log(`${name.padEnd(26)} usable ${show(times)}   api ${show(apis)}   wall ${show(walls)}`);
}
await browser.close();
