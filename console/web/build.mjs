// Bundles the console's web UI into OUT (make: $(BUILD)/web): one script
// and one stylesheet with content-hashed names, so the console can let
// browsers cache them forever, and index.html, which names them and is
// never cached. Nothing inline: the console's CSP is script-src 'self';
// style-src 'self'. The npm packages come from the lockfile, installed by
// the Makefile under .deps/web (never global, never in the repository).
//
// usage: node console/web/build.mjs NODE_MODULES_DIR OUT_DIR
import { mkdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [modules, out] = process.argv.slice(2).map((p) => p && resolve(p));
if (!modules || !out) {
	console.error('usage: node build.mjs NODE_MODULES_DIR OUT_DIR');
	process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const esbuild = await import(pathToFileURL(join(modules, 'esbuild', 'lib', 'main.js')).href);

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await esbuild.build({
	entryPoints: [join(here, 'src', 'main.js')],
	bundle: true,
	minify: true,
	sourcemap: false,
	format: 'iife',
	target: ['chrome110', 'firefox110', 'safari16'],
	nodePaths: [modules],
	outdir: out,
	entryNames: 'app-[hash]',
	metafile: true,
	legalComments: 'none',
	logLevel: 'warning',
	// No eval, no Function(): the bundle must run under script-src 'self'.
	supported: { 'dynamic-import': false },
});
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`esbuild gave ${outputs.join(', ')}`);
for (const f of outputs) {
	const text = await readFile(join(out, f), 'utf8');
	if (/\beval\s*\(|new Function\s*\(/.test(text)) throw new Error(`${f} calls eval or Function()`);
}
const icon = await readFile(join(here, 'src', 'icon.svg'));
const iconName = `icon-${createHash('sha256').update(icon).digest('hex').slice(0, 8)}.svg`;
await copyFile(join(here, 'src', 'icon.svg'), join(out, iconName));

const index = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>dlpgate console</title>
<link rel="icon" href="/${iconName}" type="image/svg+xml">
<link rel="stylesheet" href="/${css}">
<script defer src="/${js}"></script>
</head>
<body>
<noscript>The dlpgate console needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;
await writeFile(join(out, 'index.html'), index);
console.log(`web: ${out}/index.html, ${js}, ${css}`);
