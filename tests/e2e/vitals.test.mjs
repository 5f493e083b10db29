// Core Web Vitals end to end: Chromium measures a page with a late large image, a layout shift
// and a slow click handler; the SDK sends one web_vitals event per page view as it ends (SPA
// routes and back/forward-cache restores start a new page view's measurements); the collector
// stores them and the vitals endpoint reads them back from rollups.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  WRITE_KEY, freshDbName, startCollector, startPageServer, launchBrowser, openDb, waitForEvents,
} from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser({ vitals: true }); });
after(async () => { await browser?.close(); });

test('one web_vitals event per page view: LCP, CLS, FCP, TTFB, INP after a slow click; SPA routes and bfcache restores measure afresh', async () => {
  const db = freshDbName('vitals');
  const collector = await startCollector(db);
  const pages = await startPageServer(collector.url);
  const { client, events } = await openDb(db);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${pages.url}/demo/vitals.html?key=${WRITE_KEY}`);
    await page.evaluate(() => getTracking().ready);
    await page.waitForFunction(() => window.painted === true);
    // Each slow click (~300 ms of handler) waits until the browser has reported it.
    const slowClick = async (n) => {
      await page.click('#slow');
      await page.waitForFunction((k) => window.reported >= k, n, { timeout: 10000 });
    };
    await slowClick(1); // the page's INP
    await page.click('#route'); // SPA route: the first view ends, a second starts
    await slowClick(2);
    // Away and back: restored from the back/forward cache, a third page view.
    await page.goto('about:blank');
    await page.goBack({ waitUntil: 'commit' }); // a restored page fires no load event
    await page.waitForFunction(() => window.restored === true, null, { timeout: 5000 });
    await slowClick(3);
    await page.close({ runBeforeUnload: true });

    const docs = await waitForEvents(events, (d) => {
      assert.equal(d.filter((e) => e.event_type === 'web_vitals').length, 3);
      assert.equal(d.filter((e) => e.event_type === 'page_leave').length, 3);
    });
    const views = docs.filter((e) => e.event_type === 'page_view');
    const vitals = docs.filter((e) => e.event_type === 'web_vitals');
    assert.equal(views.length, 3);
    // Exactly one per page view, naming it.
    assert.deepEqual(vitals.map((v) => v.page_view_id).sort(), views.map((v) => v.page_view_id).sort());
    const of = (view) => vitals.find((v) => v.page_view_id === view.page_view_id);
    const [first, spa, restored] = views.map(of);
    // The loaded page: every metric, the slow click as its INP.
    assert.ok(first.lcp > 0 && first.fcp > 0 && first.ttfb > 0, JSON.stringify(first));
    assert.ok(first.lcp >= first.fcp, 'the late image is the largest paint');
    assert.ok(first.cls > 0, `the image moved the text: ${JSON.stringify(first)}`);
    // At least the handler's 300 ms; the upper bound only refuses nonsense: on a loaded
    // machine (a CI run beside a benchmark) the same click measured 7.9 s.
    assert.ok(first.inp >= 250 && first.inp < 60_000, `INP ${first.inp}`);
    assert.equal(new URL(first.page_url).pathname, '/demo/vitals.html');
    assert.match(first.user_agent, /Chrome/, 'the device type comes from the request');
    // The SPA route: no paint or request of its own, its own interactions and shifts.
    assert.equal(new URL(spa.page_url).pathname, '/demo/vitals-next');
    assert.ok(!('lcp' in spa) && !('fcp' in spa) && !('ttfb' in spa), JSON.stringify(spa));
    assert.equal(spa.cls, 0);
    assert.ok(spa.inp >= 250, `INP ${spa.inp}`);
    // The restored page: no request (TTFB 0), painted at the next frames, a fresh INP.
    assert.equal(restored.ttfb, 0);
    assert.ok(restored.fcp >= 0 && restored.lcp >= 0, JSON.stringify(restored));
    assert.ok(restored.inp >= 250, `INP ${restored.inp}`);
    assert.deepEqual(errors, []);

    // Read back from rollups (headless Chromium is flagged as a bot, so include bots).
    let v;
    for (let tries = 0; ; tries++) {
      const res = await fetch(`${collector.url}/api/analytics/vitals?days=1&include_bots=true`, {
        headers: { 'X-API-Key': 'e2e-read-key' },
      });
      assert.equal(res.status, 200);
      v = await res.json();
      if (v.page_views === 3 || tries > 75) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(v.page_views, 3, JSON.stringify(v));
    const m = Object.fromEntries(v.metrics.map((x) => [x.metric, x]));
    assert.deepEqual([m.lcp.samples, m.fcp.samples, m.ttfb.samples, m.cls.samples, m.inp.samples], [2, 2, 2, 3, 3]);
    // ~300 ms of handler: needs improvement (200–500 ms), or poor on a very busy machine.
    assert.ok(['needs_improvement', 'poor'].includes(m.inp.rating), JSON.stringify(m.inp));
    assert.equal(m.inp.good, 0);
    assert.ok(Math.abs(m.inp.p75 - Math.max(first.inp, spa.inp, restored.inp)) <= 0.05 * m.inp.p75, JSON.stringify(m.inp));
    assert.equal(v.devices[0].name, 'pc');
    assert.deepEqual(v.pages.map((p) => new URL(p.name).pathname).sort(), ['/demo/vitals-next', '/demo/vitals.html']);
  } finally {
    await context.close();
    await pages.close();
    await collector.stop();
    await client.close();
  }
});
