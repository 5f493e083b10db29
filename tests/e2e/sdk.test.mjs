// The browser SDK end to end: real Chromium, real collector, real FerretDB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  WRITE_KEY, freshDbName, startCollector, startPageServer, launchBrowser, openDb, waitForEvents, countBy,
} from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function setup(name) {
  const db = freshDbName(name);
  const collector = await startCollector(db);
  const pages = await startPageServer(collector.url);
  const { client, events } = await openDb(db);
  const context = await browser.newContext();
  const errors = [];
  const cleanup = async () => {
    await context.close();
    await pages.close();
    await collector.stop();
    await client.close();
  };
  return { collector, pages, events, context, errors, cleanup };
}

test('script tag: auto-capture, SPA routes, form, scroll and leave arrive exactly once', async () => {
  const s = await setup('script');
  try {
    const page = await s.context.newPage();
    page.on('pageerror', (e) => s.errors.push(String(e)));
    await page.goto(`${s.pages.url}/demo/index.html?key=${WRITE_KEY}&batch=100&user=alice`);
    await page.evaluate(() => getTracking().ready);

    await page.click('#buy');
    await page.click('#secret'); // inside data-maidian-ignore
    await page.fill('#email', 'alice@private.example');
    await page.click('#submit'); // form submit (prevented, stays on page)
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.waitForTimeout(100);
    await page.click('#spa-products');
    await page.click('#spa-products'); // same URL again: no new page view
    await page.click('#spa-cart');
    await page.goBack(); // popstate back to /demo/products
    await page.evaluate(() => history.replaceState({}, '', location.href)); // same URL: nothing
    await page.close({ runBeforeUnload: true }); // pagehide: page_leave + beacon

    const docs = await waitForEvents(s.events, (d) => {
      assert.equal(d.filter((e) => e.event_type === 'page_leave').length, 4);
    });
    const types = countBy(docs, 'event_type');
    assert.deepEqual(types, {
      page_view: 4, demo_loaded: 1, click: 5, form_submit: 1, scroll: 4, page_leave: 4, web_vitals: 4,
    }, JSON.stringify(types));
    // Clicks: #buy, #submit and the three SPA link clicks; nothing inside the ignored element.
    const clicks = docs.filter((e) => e.event_type === 'click');
    assert.ok(!clicks.some((c) => c.element_id === 'secret'), 'ignored element was tracked');
    const buy = clicks.find((c) => c.element_id === 'buy');
    assert.equal(buy.element_text, 'Buy now');
    assert.equal(buy.element_class, 'btn primary');
    assert.ok(buy.x_position > 0 && buy.y_position > 0);
    // No input value anywhere.
    assert.ok(!JSON.stringify(docs).includes('alice@private.example'), 'an input value was sent');
    const form = docs.find((e) => e.event_type === 'form_submit');
    assert.equal(form.element_id, 'signup');
    assert.equal(form.custom_data.form_name, 'signup');

    const views = docs.filter((e) => e.event_type === 'page_view');
    assert.deepEqual(views.map((v) => new URL(v.page_url).pathname),
      ['/demo/index.html', '/demo/products', '/demo/cart', '/demo/products']);
    assert.ok(views[0].load_time >= 0, 'first page view has a load time');
    assert.equal(views[0].user_id, 'alice');
    assert.match(views[0].user_agent, /Chrome/);
    assert.match(views[0].screen_resolution, /^\d+x\d+$/);
    assert.equal(new URL(views[1].referrer).pathname, '/demo/index.html');
    const scrolls = docs.filter((e) => e.event_type === 'scroll').map((e) => e.scroll_depth);
    assert.deepEqual(scrolls.sort((a, b) => a - b), [25, 50, 75, 100]);
    // Each page view is left once, with its own id, duration and scroll depth.
    const leaves = docs.filter((e) => e.event_type === 'page_leave');
    assert.deepEqual(new Set(leaves.map((l) => l.page_view_id)), new Set(views.map((v) => v.page_view_id)));
    assert.equal(leaves.find((l) => l.page_view_id === views[0].page_view_id).scroll_depth, 100);
    assert.ok(leaves.every((l) => l.duration >= 0));
    // One session, one anonymous id, all events of this visitor.
    assert.equal(new Set(docs.map((d) => d.session_id)).size, 1);
    assert.equal(new Set(docs.map((d) => d.anonymous_id)).size, 1);
    assert.deepEqual(s.errors, []);
  } finally {
    await s.cleanup();
  }
});

test('ES module import: custom event with data, forceFlush resolves after storage', async () => {
  const s = await setup('esm');
  try {
    const page = await s.context.newPage();
    await page.goto(`${s.pages.url}/demo/esm.html?api=${encodeURIComponent(s.collector.url + '/api')}&key=${WRITE_KEY}`);
    await page.evaluate(() => window.maidianReady);
    await page.click('#signup');
    const stored = await page.evaluate(() => window.maidian.getTracking().forceFlush());
    assert.ok(stored >= 2, `forceFlush stored ${stored}`);
    const docs = await s.events.find({}).toArray();
    const signup = docs.find((d) => d.event_type === 'signup');
    assert.deepEqual(signup.custom_data, { plan: 'pro', seats: 3 });
    assert.equal(signup.user_id, 'esm-user');
    assert.equal(countBy(docs, 'event_type').page_view, 1);
  } finally {
    await s.cleanup();
  }
});

test('offline, leave, come back online: every event arrives exactly once', async () => {
  const s = await setup('offline');
  try {
    const page = await s.context.newPage();
    const url = `${s.pages.url}/demo/index.html?key=${WRITE_KEY}&batch=100`;
    await page.goto(url);
    await page.evaluate(() => getTracking().ready);
    await s.context.setOffline(true);
    for (let i = 0; i < 5; i++) await page.click('#buy');
    const sent = await page.evaluate(() => getTracking().forceFlush());
    assert.equal(sent, 0);
    assert.ok(await page.evaluate(() => getTracking().getQueueLength()) >= 7);
    await page.goto('about:blank'); // leaves while offline: pagehide saves the queue
    await s.context.setOffline(false);
    const next = page;
    await next.goto(url);
    await next.evaluate(() => getTracking().ready);
    await next.evaluate(() => getTracking().forceFlush());
    await next.evaluate(() => getTracking().forceFlush());
    const docs = await waitForEvents(s.events, (d) => {
      assert.equal(d.filter((e) => e.event_type === 'click').length, 5);
      assert.equal(d.filter((e) => e.event_type === 'page_view').length, 2);
    });
    assert.equal(new Set(docs.map((d) => d._id)).size, docs.length);
  } finally {
    await s.cleanup();
  }
});

test('a collector answering 500 for a while: events arrive after it recovers', async () => {
  const s = await setup('500');
  try {
    const page = await s.context.newPage();
    let failures = 0;
    await page.route('**/api/track/batch?*', (route) => {
      if (failures < 3) {
        failures += 1;
        return route.fulfill({ status: 500, body: '{"error":{"code":"boom","message":"boom"}}' });
      }
      return route.continue();
    });
    await page.goto(`${s.pages.url}/demo/index.html?key=${WRITE_KEY}&batch=1`);
    await page.evaluate(() => getTracking().ready);
    await page.click('#buy');
    const docs = await waitForEvents(s.events, (d) => {
      assert.ok(d.some((e) => e.event_type === 'click'), 'click not stored yet');
      assert.ok(d.some((e) => e.event_type === 'page_view'), 'page view not stored yet');
    }, 20000);
    assert.equal(failures, 3);
    assert.equal(new Set(docs.map((d) => d._id)).size, docs.length);
  } finally {
    await s.cleanup();
  }
});

test('a batch answered 5xx for over a day of page loads is dropped, and debug mode says so', async () => {
  const s = await setup('giveup');
  try {
    const page = await s.context.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(m.text()));
    let refused = 0;
    await page.route('**/api/track/batch?*', (route) => {
      refused += 1;
      return route.fulfill({ status: 503, body: '{"error":{"code":"store_unavailable","message":"x"}}' });
    });
    // This browser has already seen the queue's head fail 19 times, the first two days ago.
    await page.goto(`${s.pages.url}/demo/index.html?key=${WRITE_KEY}&batch=100`);
    await page.evaluate(() => localStorage.setItem('maidian:strikes', `19,${Date.now() - 2 * 86400000}`));
    await page.reload();
    await page.evaluate(() => getTracking().ready);
    await page.click('#buy');
    assert.equal(await page.evaluate(() => getTracking().forceFlush()), 0);
    assert.ok(refused >= 1);
    assert.equal(await page.evaluate(() => getTracking().getQueueLength()), 0, 'the failing batch was kept');
    assert.ok(logs.some((l) => l.includes('dropped')), logs.join('\n'));
    assert.equal(await page.evaluate(() => localStorage.getItem('maidian:strikes')), null);
    // The next event goes out as usual once the collector answers again.
    await page.unroute('**/api/track/batch?*');
    await page.click('#buy');
    assert.equal(await page.evaluate(() => getTracking().forceFlush()), 1);
  } finally {
    await s.cleanup();
  }
});

test('a page whose CSP refuses wasm keeps working, and debug mode says why', async () => {
  const s = await setup('csp');
  try {
    const page = await s.context.newPage();
    page.on('pageerror', (e) => s.errors.push(String(e)));
    const warnings = [];
    page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
    await page.goto(`${s.pages.url}/demo/csp.html`);
    await page.evaluate(() => getTracking().ready);
    await page.click('#go');
    assert.equal(await page.textContent('#status'), 'page script ran: yes');
    assert.equal(await page.evaluate(() => getTracking().forceFlush()), 0);
    assert.deepEqual(s.errors, []);
    assert.equal(warnings.filter((w) => w.includes('tracking disabled')).length, 1, warnings.join('\n'));
    assert.equal(await s.events.countDocuments(), 0);
  } finally {
    await s.cleanup();
  }
});

test('the collector serves the SDK with the right types and cache headers', async () => {
  const s = await setup('assets');
  try {
    const loader = await fetch(`${s.collector.url}/tracking_sdk.js`);
    assert.equal(loader.status, 200);
    assert.match(loader.headers.get('content-type'), /javascript/);
    assert.equal(loader.headers.get('cache-control'), 'public, max-age=300');
    const wasm = await fetch(`${s.collector.url}/maidian_sdk_bg.wasm`);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.equal(wasm.headers.get('cache-control'), 'public, max-age=3600');
    const bytes = new Uint8Array(await wasm.arrayBuffer());
    assert.deepEqual([...bytes.slice(0, 4)], [0, 0x61, 0x73, 0x6d]);
    const esm = await fetch(`${s.collector.url}/sdk/index.js`, { headers: { origin: 'https://shop.example' } });
    assert.equal(esm.status, 200);
    assert.equal(esm.headers.get('access-control-allow-origin'), 'https://shop.example');
  } finally {
    await s.cleanup();
  }
});

test('private by default: no text from editable regions, sensitive URL values redacted, key in the query', async () => {
  const s = await setup('privacy');
  try {
    const page = await s.context.newPage();
    const batches = [];
    const bodies = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/track/batch')) { batches.push(r.url()); bodies.push(r.postData() ?? ''); }
    });
    await page.goto(`${s.pages.url}/demo/index.html?key=${WRITE_KEY}&token=tok-123&utm_source=news#access_token=abc&state=s`);
    await page.evaluate(() => getTracking().ready);
    await page.click('#notes');
    await page.keyboard.type(' typed-by-visitor');
    await page.click('#notes-bold');
    await page.click('#note-card', { position: { x: 3, y: 3 } }); // the card itself, around an editable region
    await page.evaluate(() => getTracking().forceFlush());
    const docs = await waitForEvents(s.events, (d) => {
      assert.equal(d.filter((e) => e.event_type === 'click').length, 3);
    });
    const all = JSON.stringify(docs);
    for (const secret of ['typed-by-visitor', 'Private', 'typed secret', 'tok-123', 'abc&']) {
      assert.ok(!all.includes(secret), `${secret} was stored`);
    }
    const clicks = docs.filter((e) => e.event_type === 'click');
    assert.deepEqual(clicks.map((c) => c.element_text ?? null), [null, null, null]);
    const view = docs.find((e) => e.event_type === 'page_view');
    // The SDK redacts before sending...
    const sent = bodies.join('\n');
    assert.ok(sent.includes('token=[redacted]') && sent.includes('key=[redacted]'), sent);
    assert.ok(sent.includes('#access_token=[redacted]&state=s'), sent);
    // ...and the collector stores the page without its query and fragment; the campaign tag
    // fed the source first.
    const url = new URL(view.page_url);
    assert.equal(url.search, '');
    assert.equal(url.hash, '');
    assert.equal(view.utm_source, 'news');
    // The write key rides in the query, so the collector checks it before reading a body.
    assert.ok(batches.length > 0 && batches.every((u) => new URL(u).searchParams.get('api_key') === WRITE_KEY), batches.join());

    // A curl client's URLs are redacted by the collector itself.
    const res = await fetch(`${s.collector.url}/api/track/event`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': WRITE_KEY },
      body: JSON.stringify({ event_type: 'page_view', session_id: 'curl', page_url: 'https://x.example/r?password=hunter2&ref=a',
        referrer: 'https://y.example/?Email=a%40b.example', custom_data: { form_action: 'https://x.example/p?sid=9' } }),
    });
    assert.equal(res.status, 200);
    const curl = await s.events.findOne({ session_id: 'curl' });
    assert.equal(curl.page_url, 'https://x.example/r');
    assert.equal(curl.referrer, 'https://y.example/?Email=[redacted]');
    assert.equal(curl.custom_data.form_action, 'https://x.example/p?sid=[redacted]');
  } finally {
    await s.cleanup();
  }
});

test('a visit landing from a newsletter is tagged Email / newsletter; headless Chromium is flagged as a bot', async () => {
  const s = await setup('sources');
  try {
    const page = await s.context.newPage();
    await page.goto(`${s.pages.url}/demo/index.html?key=${WRITE_KEY}&utm_source=newsletter&utm_medium=email&utm_campaign=nov`);
    await page.evaluate(() => getTracking().ready);
    await page.click('#spa-products'); // a later page view of the same session, no tags
    await page.evaluate(() => getTracking().forceFlush());
    const docs = await waitForEvents(s.events, (d) => {
      assert.equal(d.filter((e) => e.event_type === 'page_view').length, 2);
    });
    const [landing, later] = docs.filter((e) => e.event_type === 'page_view')
      .sort((a, b) => a.timestamp - b.timestamp);
    assert.equal(landing.channel, 'Email');
    assert.equal(landing.source, 'newsletter');
    assert.equal(landing.utm_medium, 'email');
    assert.equal(landing.utm_campaign, 'nov');
    // The SPA view's referrer is the page itself: no outside source, so it would count as Direct.
    assert.equal(later.channel, 'Direct');
    assert.equal(later.session_id, landing.session_id);
    // This browser says HeadlessChrome in its user agent.
    assert.match(landing.user_agent, /HeadlessChrome/);
    assert.equal(landing.bot, 'user_agent');
    // Every event of that browser, clicks included (they carry no user agent of their own):
    // the request's User-Agent and the SDK's navigator.webdriver speak for them.
    assert.deepEqual(docs.filter((e) => !e.bot).map((e) => e.event_type), []);
    // The figures: bots are left out, so this headless visit shows only with include_bots.
    const get = async (q) => (await fetch(`${s.collector.url}/api/analytics/summary?days=1${q}`,
      { headers: { 'x-api-key': 'e2e-read-key' } })).json();
    // The rollups land chunk by chunk: wait until they hold every stored event.
    let summary;
    for (let i = 0; i < 100; i++) {
      summary = await get('&include_bots=true');
      const health = await (await fetch(`${s.collector.url}/api/health`)).json();
      if (summary.overview.total_events === docs.length && health.rollup_lag_seconds === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(summary.channels, [{ channel: 'Email', visitors: 1, sessions: 1 }]);
    assert.deepEqual(summary.campaigns, [{ source: 'newsletter', medium: 'email', campaign: 'nov', visitors: 1, sessions: 1 }]);
    const people = await get('');
    assert.deepEqual(people.channels, []);
    assert.ok(people.bots.some((b) => b.reason === 'user_agent' && b.events >= 3), JSON.stringify(people.bots));
  } finally {
    await s.cleanup();
  }
});

test('optOut stops tracking across reloads; optIn resumes it', async () => {
  const s = await setup('optout');
  try {
    const page = await s.context.newPage();
    const url = `${s.pages.url}/demo/index.html?key=${WRITE_KEY}`;
    await page.goto(url);
    await page.evaluate(() => getTracking().ready);
    await page.evaluate(() => getTracking().forceFlush());
    const before = await s.events.countDocuments();
    assert.ok(before >= 2); // page view + demo_loaded
    await page.evaluate(() => getTracking().optOut());
    await page.click('#buy');
    await page.reload();
    await page.evaluate(() => getTracking().ready);
    await page.click('#buy');
    assert.equal(await page.evaluate(() => getTracking().getQueueLength()), 0);
    await page.evaluate(() => getTracking().forceFlush());
    assert.equal(await s.events.countDocuments(), before, 'events were stored while opted out');
    await page.evaluate(() => getTracking().optIn());
    await page.click('#buy');
    assert.equal(await page.evaluate(() => getTracking().forceFlush()), 1);
    assert.equal(await s.events.countDocuments({ event_type: 'click' }), 1);
  } finally {
    await s.cleanup();
  }
});
