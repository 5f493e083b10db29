// The dashboard in Chromium against the real collector: it renders, its charts have data, and
// nothing goes to the console as an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WRITE_KEY, freshDbName, startCollector, launchBrowser, openDb } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const DAY = 86_400_000;

test('the dashboard shows overview, trend, tables, funnel, retention and real time', async () => {
  const db = freshDbName('dashboard');
  const collector = await startCollector(db);
  const { client } = await openDb(db);
  try {
    const now = Date.now();
    const events = [];
    for (const [user, age] of [['a', 2], ['a', 0], ['b', 1], ['c', 0]]) {
      const ts = now - age * DAY;
      const session = `${user}-${age}`;
      events.push({ event_id: randomUUID(), event_type: 'page_view', user_id: user, session_id: session,
        page_url: 'https://shop.example/', referrer: 'https://search.example/', timestamp: ts,
        user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36' });
      events.push({ event_id: randomUUID(), event_type: 'click', user_id: user, session_id: session,
        page_url: 'https://shop.example/', timestamp: ts + 1000 });    }
    // One page view's Core Web Vitals (a phone's, from the request's agent).
    events.push({ event_id: randomUUID(), event_type: 'web_vitals', user_id: 'c', session_id: 'c-0',
      page_view_id: 'pv-c', page_url: 'https://shop.example/', timestamp: now, lcp: 3100, inp: 90, cls: 0.3,
      user_agent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1' });
    const res = await fetch(`${collector.url}/api/track/batch`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': WRITE_KEY },
      body: JSON.stringify({ events }),
    });
    assert.equal(res.status, 200);
    // The rollup consumer trails ingest by its safety lag (1.5 s here) and lands one chunk at a time:
    // wait until they count every event and stop changing.
    let last = '';
    for (let i = 0; i < 100; i++) {
      const s = await (await fetch(`${collector.url}/api/analytics/summary`, { headers: { 'x-api-key': 'e2e-read-key' } })).text();
      if (JSON.parse(s).overview.total_events === events.length && s === last) break;
      last = s;
      await new Promise((r) => setTimeout(r, 100));
    }

    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.goto(`${collector.url}/dashboard?key=e2e-read-key`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });

    const overview = await page.textContent('#overview');
    assert.match(overview, /9\s*events/);
    assert.match(overview, /3\s*active users/);
    assert.equal(await page.locator('#trend circle').count(), 6); // 3 days × 2 series
    assert.equal(await page.locator('#pages tr').count(), 2); // header + one page
    assert.match(await page.textContent('#referrers'), /search\.example/);
    assert.match(await page.textContent('#agents'), /Chrome/);
    assert.equal(await page.locator('#funnel rect').count(), 3);
    assert.ok(await page.locator('#retention rect').count() >= 3);
    assert.match(await page.textContent('#realtime'), /\d+\s*events in the last hour/);
    assert.equal(await page.textContent('#as-of'), ''); // caught up: no "as of" line
    // Core Web Vitals: p75 per metric, coloured by rating; the page and the device type.
    const vitals = page.locator('#vitals .card');
    assert.equal(await vitals.count(), 5);
    assert.match(await vitals.nth(0).textContent(), /^\d+ms\s*LCP · 0% good · 100% ni · 0% poor$/);
    assert.equal(await vitals.nth(0).getAttribute('data-rating'), 'needs_improvement');
    assert.equal(await vitals.nth(2).getAttribute('data-rating'), 'poor'); // CLS 0.3
    assert.equal(await vitals.nth(3).getAttribute('data-rating'), 'none'); // no FCP measured
    assert.match(await page.textContent('#vitals-pages'), /shop\.example/);
    assert.match(await page.textContent('#vitals-devices'), /smartphone/);

    // A funnel built in the page.
    await page.fill('#steps', 'page_view,click');
    await page.click('#funnel-form button');
    await page.waitForFunction(() => document.querySelectorAll('#funnel rect').length === 2);
    assert.match(await page.textContent('#funnel'), /click/);
    assert.deepEqual(problems, []);
  } finally {
    await collector.stop();
    await client.close();
  }
});

test('the read key leaves the address bar and can be forgotten; the page runs under a strict CSP and escapes visitor strings', async () => {
  const db = freshDbName('dashboard_hygiene');
  const collector = await startCollector(db);
  try {
    const hostile = '/<img src=x onerror="window.__xss=1">';
    const res = await fetch(`${collector.url}/api/track/batch`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': WRITE_KEY },
      body: JSON.stringify({ events: [{ event_type: 'page_view', session_id: 's1', page_url: hostile,
        referrer: 'https://r.example/<script>window.__xss=2</script>' }] }),
    });
    assert.equal(res.status, 200);
    for (let i = 0; i < 100; i++) {
      const s = await (await fetch(`${collector.url}/api/analytics/summary`, { headers: { 'x-api-key': 'e2e-read-key' } })).json();
      if (s.overview.total_events === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    const head = await fetch(`${collector.url}/dashboard`);
    assert.match(head.headers.get('content-security-policy'), /script-src 'self'/);
    assert.doesNotMatch(head.headers.get('content-security-policy'), /unsafe-inline/);
    assert.equal(head.headers.get('x-frame-options'), 'DENY');
    assert.equal(head.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(head.headers.get('x-content-type-options'), 'nosniff');
    const report = await fetch(`${collector.url}/api/report`, { headers: { 'x-api-key': 'e2e-read-key' } });
    assert.equal(report.status, 200);
    assert.match(report.headers.get('content-security-policy'), /default-src 'none'/);
    assert.equal(report.headers.get('x-frame-options'), 'DENY');
    assert.ok(!(await report.text()).includes('<img src=x'), 'the report escapes visitor strings');

    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.goto(`${collector.url}/dashboard?days=7&key=e2e-read-key#top`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
    assert.equal(new URL(page.url()).search, '?days=7', 'the key is gone from the address');
    assert.equal(new URL(page.url()).hash, '#top');
    assert.match(await page.textContent('#pages'), /<img src=x/, 'shown as text');
    assert.equal(await page.locator('#pages img').count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.evaluate(() => localStorage.getItem('maidian:readKey')), 'e2e-read-key');
    assert.deepEqual(problems, [], 'nothing of the page itself is blocked by its CSP');

    await page.click('#forget');
    assert.equal(await page.evaluate(() => localStorage.getItem('maidian:readKey')), null);
    assert.equal(await page.inputValue('#key'), '');
    await page.reload();
    assert.equal(await page.inputValue('#key'), '', 'a reload does not bring it back');
  } finally {
    await collector.stop();
  }
});

test('a wrong read key shows a clear error, not a broken page', async () => {
  const db = freshDbName('dashboard_key');
  const collector = await startCollector(db);
  try {
    const page = await browser.newPage();
    await page.goto(`${collector.url}/dashboard?key=wrong`);
    await page.waitForFunction(() => document.getElementById('error').textContent.length > 0);
    assert.match(await page.textContent('#error'), /read key/);
  } finally {
    await collector.stop();
  }
});

test('when the rollups trail the stored events, the dashboard says as of when', async () => {
  const db = freshDbName('dashboard_lag');
  // A long safety lag: the event below stays un-rolled-up for 20 s.
  const collector = await startCollector(db, { MAIDIAN_ROLLUP_SAFETY_LAG_MS: '20000' });
  try {
    const res = await fetch(`${collector.url}/api/track/event`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': WRITE_KEY },
      body: JSON.stringify({ event_type: 'page_view', user_id: 'late', page_url: 'https://shop.example/' }),
    });
    assert.equal(res.status, 200);
    let lag = 0;
    for (let i = 0; i < 100 && lag <= 5; i++) {
      lag = (await (await fetch(`${collector.url}/api/health`)).json()).rollup_lag_seconds;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(lag > 5, `health reports a lag of ${lag} s`);
    const page = await browser.newPage();
    await page.goto(`${collector.url}/dashboard?key=e2e-read-key`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
    assert.match(await page.textContent('#as-of'), /figures as of .* behind the newest events/);
    assert.match(await page.textContent('#overview'), /0\s*events/);
  } finally {
    await collector.stop();
  }
});

test('the admin key gets a site picker; a site key sees its own site only', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'maidian-sites-'));
  const config = join(dir, 'maidian.toml');
  writeFileSync(config, '[[sites]]\nid = "shop"\nname = "Shop"\nwrite_key = "wk-shop"\nread_key = "rk-shop"\ntimezone = "Asia/Shanghai"\n');
  const db = freshDbName('dashboard_sites');
  const collector = await startCollector(db, { MAIDIAN_CONFIG: config, MAIDIAN_ADMIN_KEY: 'ak-all' });
  const { client } = await openDb(db);
  try {
    const send = async (key, n, page) => {
      const events = Array.from({ length: n }, (_, i) => ({ event_id: randomUUID(), event_type: 'page_view',
        user_id: `${page}-${i}`, page_url: `https://${page}.example/`, timestamp: Date.now() - 1000 }));
      const res = await fetch(`${collector.url}/api/track/batch`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ events }),
      });
      assert.equal(res.status, 200);
    };
    await send(WRITE_KEY, 2, 'blog');
    await send('wk-shop', 3, 'shop');
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${collector.url}/api/sites`, { headers: { 'x-api-key': 'ak-all' } });
      const counts = (await res.json()).sites.map((s) => s.events);
      if (counts.join() === '2,3') break;
      await new Promise((r) => setTimeout(r, 100));
    }

    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.goto(`${collector.url}/dashboard?key=ak-all`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
    assert.equal(await page.isVisible('#site-picker'), true);
    assert.deepEqual(await page.locator('#site option').allTextContents(),
      ['Default (default, UTC)', 'Shop (shop, Asia/Shanghai)']);
    assert.match(await page.textContent('#overview'), /2\s*events/);
    await page.evaluate(() => { document.body.dataset.loaded = ''; });
    await page.selectOption('#site', 'shop');
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
    assert.match(await page.textContent('#overview'), /3\s*events/);
    assert.match(await page.textContent('#pages'), /shop\.example/);

    await page.goto(`${collector.url}/dashboard?key=rk-shop`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
    assert.equal(await page.isVisible('#site-picker'), false);
    assert.match(await page.textContent('#site-name'), /Shop · days in Asia\/Shanghai/);
    assert.match(await page.textContent('#overview'), /3\s*events/);
    assert.deepEqual(problems, []);
  } finally {
    await collector.stop();
    await client.close();
  }
});
