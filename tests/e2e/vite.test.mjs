// "npm install maidian" in a Vite app: pack the package, install the tarball into a fresh app,
// bundle it with Vite, serve the bundle on its own origin, and check what reached MongoDB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { WRITE_KEY, freshDbName, startCollector, launchBrowser, openDb, waitForEvents } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

function serve(dir) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const server = http.createServer((req, res) => {
    const file = path.join(dir, new URL(req.url, 'http://x').pathname.replace(/\/$/, '/index.html'));
    if (!file.startsWith(dir) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

test('a Vite app that imports "maidian" tracks into the collector', async () => {
  const app = mkdtempSync(path.join(os.tmpdir(), 'maidian-vite-'));
  const db = freshDbName('vite');
  const collector = await startCollector(db);
  const { client, events } = await openDb(db);
  let server;
  try {
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', app],
      { cwd: root, encoding: 'utf8' }))[0].filename;
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'shop', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', path.join(app, packed)], { cwd: app });
    writeFileSync(path.join(app, 'index.html'),
      '<!DOCTYPE html><html><body><button id="buy">Buy</button><script type="module" src="/main.js"></script></body></html>');
    writeFileSync(path.join(app, 'main.js'), `
      import { initTracking, getTracking } from 'maidian';
      initTracking({ apiUrl: ${JSON.stringify(collector.url + '/api')}, apiKey: ${JSON.stringify(WRITE_KEY)} });
      window.tracking = getTracking();
    `);
    await build({ root: app, logLevel: 'silent', build: { outDir: path.join(app, 'dist') } });
    server = await serve(path.join(app, 'dist'));
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.evaluate(() => window.tracking.ready);
    await page.click('#buy');
    await page.evaluate(() => window.tracking.forceFlush());
    const docs = await waitForEvents(events, (d) => {
      assert.deepEqual(d.map((e) => e.event_type).sort(), ['click', 'page_view']);
    });
    assert.equal(docs.find((e) => e.event_type === 'click').element_id, 'buy');
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    server?.close();
    await collector.stop();
    await client.close();
    rmSync(app, { recursive: true, force: true });
  }
});
