// Headless Chromium (Debian's, driven by playwright-core from .deps/) opens
// a WebSocket through dlpgate's explicit proxy, as a page would, sends a
// card, a clean text and a binary message, and reports what came back as
// one JSON line. Certificate errors are ignored: the test is about the
// WebSocket, not about trusting dlpgate's CA.
//   node ws_chromium.js PROXY_PORT WSS_URL USER_DATA_DIR
const path = require('path');
const { chromium } = require(path.join(process.env.DLPGATE_TOP, '.deps/node_modules/playwright-core'));

(async () => {
	const [proxyPort, url, userData] = process.argv.slice(2);
	const ctx = await chromium.launchPersistentContext(userData, {
		executablePath: '/usr/bin/chromium',
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--ignore-certificate-errors',
			`--proxy-server=http://127.0.0.1:${proxyPort}`, '--proxy-bypass-list=<-loopback>'],
	});
	try {
		const page = await ctx.newPage();
		const result = await page.evaluate(async (url) => {
			const ws = new WebSocket(url);
			ws.binaryType = 'arraybuffer';
			const got = [];
			const next = () => new Promise((ok, fail) => {
				ws.onmessage = (e) => ok(typeof e.data === 'string' ? e.data
					: 'binary:' + String.fromCharCode(...new Uint8Array(e.data)));
				ws.onclose = (e) => fail(new Error('closed ' + e.code + ' ' + e.reason));
			});
			await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('no open')); });
			const extensions = ws.extensions;
			ws.send('card 4111 1111 1111 1111 from the page');
			got.push(await next());
			ws.send('hello from the page');
			got.push(await next());
			ws.send(new TextEncoder().encode('bin 4111111111111111'));
			got.push(await next());
			const closed = new Promise((ok) => { ws.onclose = (e) => ok(e.code); });
			ws.close(1000, 'bye');
			return { extensions, got, close: await closed };
		}, url);
		console.log(JSON.stringify(result));
	} finally {
		await ctx.close();
	}
})().catch((e) => { console.error(String(e)); process.exit(1); });
