// SDK benchmark: bytes on the wire (gzip -9) against the budget, and main-thread time per
// auto-captured click in headless Chromium, side by side with the same page without the SDK.
// Run through bench/sdk.sh. Exits 1 when the size budget is broken.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// MAIDIAN_BENCH_SDK_DIR: another build's dist, to compare the click cost of two builds.
const dist = process.env.MAIDIAN_BENCH_SDK_DIR || path.join(root, 'sdk-wasm/dist');
// 20 KiB until the privacy work of issue 8 (URL redaction in the SDK, no contenteditable text,
// a 128-bit id seed, giving up on a day of 5xx) added 2.2 KB; 19 KiB since issue 10's work
// (Core Web Vitals included), whose goal is 10 KiB; 15 KiB since the hand-written loader;
// 10 KiB, the goal, since the tracker works on bytes in its own buffer and allocator.
const BUDGET = 10 * 1024;
const GOAL = 10 * 1024;
const NAIVE = 37 * 1024; // the naive build of such an SDK, per the issue
const CLICKS = 1000;

function gz(file) {
  const raw = readFileSync(path.join(dist, file));
  return { file, raw: raw.length, gzip: gzipSync(raw, { level: 9 }).length };
}

// The script tag fetches the loader and the wasm; the npm entry is its module twin.
const files = ['maidian_sdk_bg.wasm', 'tracking_sdk.js'].map(gz);
const total = files.reduce((n, f) => n + f.gzip, 0);
console.log('SDK size (script tag: wasm + loader), gzip -9');
for (const f of files) console.log(`  ${f.file.padEnd(22)} ${String(f.raw).padStart(7)} B raw ${String(f.gzip).padStart(7)} B gzip`);
console.log(`  ${'total'.padEnd(22)} ${' '.repeat(15)} ${String(total).padStart(7)} B gzip`);
console.log(`  vs budget ${BUDGET / 1024} KiB: ${(total / BUDGET).toFixed(2)}x   vs goal 10 KiB: ${(total / GOAL).toFixed(2)}x   vs naive 37 KiB: ${(total / NAIVE).toFixed(2)}x`);
const npm = gz('index.js');
console.log(`  npm entry instead of the loader: index.js ${npm.gzip} (loader inside) + wasm = ${npm.gzip + files[0].gzip} B gzip`);

async function startCollector() {
  const data = mkdtempSync(path.join(os.tmpdir(), 'maidian-bench-'));
  const child = spawn(path.join(root, 'target/release/maidian-collector'), ['--listen', '127.0.0.1:0'], {
    env: {
      PATH: process.env.PATH, RUST_LOG: 'warn', MAIDIAN_READ_KEY: 'bench-read', MAIDIAN_DATA_DIR: data,
      MAIDIAN_SDK_DIR: dist, MAIDIAN_WWW_DIR: path.join(root, 'www'),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; const m = out.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); });
    child.on('exit', (c) => reject(new Error(`collector exited ${c}`)));
  });
  return { url, stop: () => { child.kill('SIGTERM'); rmSync(data, { recursive: true, force: true }); } };
}

// Dispatches CLICKS clicks on #buy and returns the mean synchronous main-thread time (µs):
// every listener runs inside dispatchEvent, the SDK's capture and its wasm call included.
// Clicks go in blocks of 20 (timed as a block: the page clock is coarse), and the page idles
// 5 ms between blocks, as between real clicks, so each block's batch goes out.
async function clickCost(page) {
  return page.evaluate(async (n) => {
    const el = document.getElementById('buy');
    const r = el.getBoundingClientRect();
    const init = { bubbles: true, cancelable: true, clientX: r.x + 5, clientY: r.y + 5 };
    for (let i = 0; i < 40; i++) el.dispatchEvent(new MouseEvent('click', init)); // warm up
    let busy = 0;
    for (let done = 0; done < n; done += 20) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) el.dispatchEvent(new MouseEvent('click', init));
      busy += performance.now() - t0;
    }
    return (busy * 1000) / n;
  }, CLICKS);
}

const collector = await startCollector();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const html = readFileSync(path.join(root, 'www/demo/index.html'), 'utf8');
  const bare = await browser.newPage();
  await bare.goto(`${collector.url}/api/health`);
  await bare.setContent(html.replace(/<script[\s\S]*?<\/script>/g, ''));
  const withSdk = await browser.newPage();
  await withSdk.goto(`${collector.url}/demo/index.html?key=&batch=20&interval=600000&debug=0`);
  await withSdk.evaluate(() => getTracking().ready);
  // Alternate the two so that neither gets a warmer machine.
  const a = []; const b = [];
  for (let round = 0; round < 3; round++) {
    a.push(await clickCost(bare));
    b.push(await clickCost(withSdk));
  }
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const base = mean(a); const sdk = mean(b);
  const sent = await withSdk.evaluate(() => getTracking().forceFlush());
  console.log(`\nmain-thread time per click, mean of ${CLICKS} x 3 rounds (headless Chromium)`);
  console.log(`  page without SDK   ${base.toFixed(1).padStart(8)} µs`);
  console.log(`  page with SDK      ${sdk.toFixed(1).padStart(8)} µs   (${(sdk / base).toFixed(2)}x)`);
  console.log(`  SDK cost per click ${(sdk - base).toFixed(1).padStart(8)} µs   (includes sending a batch of 20 by fetch every 20 clicks; the final flush stored ${sent})`);
} finally {
  await browser.close();
  collector.stop();
}

if (total > BUDGET) {
  console.error(`\nFAIL: SDK is ${total} B gzip, over the ${BUDGET} B budget`);
  process.exit(1);
}
console.log(`\nsize budget: OK (${total} <= ${BUDGET} B)`);
