// Shared by the browser tests: the real collector binary on FerretDB (fresh database per
// test), a page server on another origin (so CORS is real), Debian's Chromium via
// playwright-core, and direct reads of what MongoDB stored.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { MongoClient } from 'mongodb';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WRITE_KEY = 'e2e-write-key';

let counter = 0;
export function freshDbName(prefix) {
  counter += 1;
  return `e2e_${prefix}_${process.pid}_${counter}_${Date.now() % 1e6}`;
}

/** Starts the collector binary; resolves to { url, stop() }. */
export async function startCollector(db, extraEnv = {}) {
  const uri = process.env.MAIDIAN_TEST_MONGODB_URI;
  if (!uri) throw new Error('MAIDIAN_TEST_MONGODB_URI is not set: run through tests/run.sh');
  const bin = process.env.MAIDIAN_COLLECTOR_BIN || path.join(root, 'target/debug/maidian-collector');
  const env = {
    PATH: process.env.PATH,
    RUST_LOG: 'warn',
    MAIDIAN_MONGODB_URI: uri,
    MAIDIAN_DATABASE: db,
    MAIDIAN_API_KEY: WRITE_KEY,
    MAIDIAN_READ_KEY: 'e2e-read-key',
    MAIDIAN_SDK_DIR: path.join(root, 'sdk-wasm/dist'),
    MAIDIAN_WWW_DIR: path.join(root, 'www'),
    MAIDIAN_WRITER_INSERT_TIMEOUT_MS: '1000',
    MAIDIAN_ROLLUP_SAFETY_LAG_MS: '1500',
    MAIDIAN_ROLLUP_POLL_MS: '50',
    ...extraEnv,
  };
  const child = spawn(bin, ['--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`collector exited ${code}: ${stderr}`)));
  });
  return {
    url,
    stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); }),
  };
}

/** Serves www/demo on its own origin, pointing its SDK script at the collector. */
export async function startPageServer(collectorUrl) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const name = path.basename(url.pathname) || 'index.html';
    // Every route of the demo SPA is the same page, as a real SPA server does.
    const file = name.endsWith('.html') ? name : 'index.html';
    try {
      let html = await readFile(path.join(root, 'www/demo', file), 'utf8');
      // The vitals page's server takes its time, so its time to first byte is not 0 ms.
      if (file === 'vitals.html') await new Promise((r) => setTimeout(r, 60));
      html = html.replaceAll('src="/tracking_sdk.js"', `src="${collectorUrl}/tracking_sdk.js"`)
        .replaceAll("from '/sdk/index.js'", `from '${collectorUrl}/sdk/index.js'`);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    } catch {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

/** Debian's Chromium, headless. `vitals`: as Core Web Vitals need it, with the back/forward
 * cache (which Playwright turns off by default) and frames drawn without waiting for a vsync
 * that headless never gives (else an interaction's paint, hence its entry, waits for the next
 * input). */
export async function launchBrowser({ vitals = false } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    ignoreDefaultArgs: vitals ? ['--disable-back-forward-cache'] : [],
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      ...(vitals ? ['--disable-gpu-vsync', '--disable-frame-rate-limit'] : [])],
  });
}

export async function openDb(name) {
  const client = await MongoClient.connect(process.env.MAIDIAN_TEST_MONGODB_URI);
  return { client, events: client.db(name).collection('events') };
}

/** Polls until `check(events)` holds (or throws the last mismatch after `ms`). */
export async function waitForEvents(events, check, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    const docs = await events.find({}).sort({ timestamp: 1 }).toArray();
    try {
      check(docs);
      return docs;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function countBy(docs, field) {
  const out = {};
  for (const d of docs) out[d[field]] = (out[d[field]] || 0) + 1;
  return out;
}
