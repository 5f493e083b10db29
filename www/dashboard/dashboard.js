'use strict';
// The dashboard reads the collector's analytics API with the read key (kept in this browser).
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const NS = 'http://www.w3.org/2000/svg';

// A key in the address (?key=…) is read once and removed from it at once, so that it stays
// out of the history, bookmarks and the Referer of anything the page loads.
const KEY = 'maidian:readKey';
const params = new URLSearchParams(location.search);
const fromUrl = params.get('key');
if (fromUrl !== null) {
  params.delete('key');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
}
$('key').value = fromUrl || localStorage.getItem(KEY) || '';
$('forget').addEventListener('click', () => {
  localStorage.removeItem(KEY);
  $('key').value = '';
  document.body.dataset.loaded = '';
  $('error').textContent = 'read key forgotten';
});

// The admin key reads every site: it gets a site picker (its choice kept in this browser). A
// site's read key reads its own site, named beside the key.
const SITE = 'maidian:site';
let sites = [];
async function loadSites() {
  const list = await api('/api/sites');
  sites = list.sites;
  const picker = $('site');
  picker.replaceChildren(...sites.map((s) => {
    const o = document.createElement('option');
    o.value = s.id;
    o.textContent = `${s.name} (${s.id}, ${s.timezone})`;
    return o;
  }));
  const kept = localStorage.getItem(SITE);
  if (sites.some((s) => s.id === kept)) picker.value = kept;
  $('site-picker').hidden = !list.admin;
  const own = sites.find((s) => s.id === picker.value) || sites[0];
  $('site-name').textContent = !list.admin && own ? `${own.name} · days in ${own.timezone}` : '';
}

// `path` with the chosen site (for the admin key) and `params`.
function at(path, params = {}) {
  const q = new URLSearchParams(params);
  if (!$('site-picker').hidden && $('site').value) q.set('site', $('site').value);
  const rest = q.toString();
  return rest ? `${path}?${rest}` : path;
}

async function api(path) {
  const res = await fetch(path, { headers: { 'X-API-Key': $('key').value } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
  return body;
}

function cards(el, items) {
  el.innerHTML = items.map(([label, value]) => `<div class="card"><b>${esc(value)}</b>${esc(label)}</div>`).join('');
}

function rows(el, header, data) {
  el.innerHTML = `<tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>` +
    data.map((r) => `<tr>${r.map((c, i) => `<td${i ? ' class="n"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('');
}

function svg(w, h) {
  const s = document.createElementNS(NS, 'svg');
  s.setAttribute('viewBox', `0 0 ${w} ${h}`);
  s.setAttribute('width', '100%');
  return s;
}

function add(parent, tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}

function lineChart(el, labels, series) {
  const w = 1000, h = 220, pad = 30;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (i) => pad + (w - 2 * pad) * (labels.length > 1 ? i / (labels.length - 1) : 0.5);
  const y = (v) => h - pad - (h - 2 * pad) * v / max;
  const s = svg(w, h);
  add(s, 'line', { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: '#ccc' });
  for (const { values, color } of series) {
    add(s, 'polyline', { fill: 'none', stroke: color, 'stroke-width': 2, points: values.map((v, i) => `${x(i)},${y(v)}`).join(' ') });
    values.forEach((v, i) => add(add(s, 'circle', { cx: x(i), cy: y(v), r: 3, fill: color }), 'title', {}, `${labels[i]}: ${v}`));
  }
  labels.forEach((l, i) => { if (labels.length < 32 || i % 7 === 0) add(s, 'text', { x: x(i), y: h - 8, 'text-anchor': 'middle' }, l.slice(5)); });
  add(s, 'text', { x: pad, y: 14 }, `max ${max}`);
  el.replaceChildren(s);
}

function bars(el, data) {
  const max = Math.max(1, ...data.map((d) => d.value));
  const s = svg(1000, 26 * data.length + 10);
  data.forEach((d, i) => {
    const y = 5 + 26 * i;
    add(s, 'text', { x: 0, y: y + 15 }, d.label);
    add(s, 'rect', { x: 300, y, width: 600 * d.value / max, height: 18, fill: '#3b6fd8' });
    add(s, 'text', { x: 306 + 600 * d.value / max, y: y + 14 }, d.note);
  });
  el.replaceChildren(s);
}

function heatmap(el, r) {
  const cols = Math.max(1, r.retention_data.length);
  const cell = Math.min(40, 850 / cols);
  const s = svg(1000, 22 * r.cohorts.length + 30);
  for (let n = 0; n < cols; n++) add(s, 'text', { x: 120 + cell * (n + 0.5), y: 14, 'text-anchor': 'middle' }, n);
  r.cohorts.forEach((c, i) => {
    const y = 20 + 22 * i;
    add(s, 'text', { x: 0, y: y + 14 }, `${c.cohort} (${c.users})`);
    c.retained.forEach((kept, n) => {
      const share = c.users ? kept / c.users : 0;
      add(add(s, 'rect', { x: 120 + cell * n, y, width: cell - 2, height: 20, fill: 'rgb(59,111,216)', 'fill-opacity': 0.08 + 0.92 * share }),
        'title', {}, `day ${n}: ${kept} of ${c.users}`);
    });
  });
  if (!r.cohorts.length) add(s, 'text', { x: 0, y: 40 }, 'no visitors first seen in this period');
  el.replaceChildren(s);
}

// Core Web Vitals: one card per metric (p75, its rating, the shares), then p75 per page and
// per device type.
function vitals(v) {
  const p75 = (m) => (m.p75 == null ? '-' : `${m.p75}${m.unit}`);
  const el = $('vitals');
  cards(el, v.metrics.map((m) => [`${m.metric.toUpperCase()} · ${m.good}% good · ${m.needs_improvement}% ni · ${m.poor}% poor`, p75(m)]));
  el.querySelectorAll('.card').forEach((c, i) => { c.dataset.rating = v.metrics[i].rating || 'none'; });
  const head = ['views', ...v.metrics.map((m) => `${m.metric.toUpperCase()} p75`)];
  rows($('vitals-pages'), ['page', ...head], v.pages.map((g) => [g.name, g.page_views, ...g.metrics.map(p75)]));
  rows($('vitals-devices'), ['device', ...head], v.devices.map((g) => [g.name, g.page_views, ...g.metrics.map(p75)]));
}

async function loadFunnel() {
  const f = await api(at('/api/analytics/funnel', { steps: $('steps').value, window: $('window').value, days: $('days').value }));
  bars($('funnel'), f.funnel_steps.map((s) => ({
    label: s.step, value: s.users,
    note: `${s.users} users · ${s.conversion_rate}%` + (s.median_time_to_convert != null ? ` · median ${s.median_time_to_convert} s` : ''),
  })));
}

async function loadRealtime() {
  const r = await api(at('/api/analytics/realtime'));
  cards($('realtime'), [['events in the last hour', r.recent_events_1h], ['users online (5 min)', r.online_users]]);
  lineChart($('rt-chart'), r.events_per_minute.map((_, i) => `    -${29 - i}m`), [{ values: r.events_per_minute, color: '#3b6fd8' }]);
}

async function load() {
  $('error').textContent = '';
  localStorage.setItem(KEY, $('key').value);
  try {
    const days = $('days').value;
    await loadSites();
    const [s, r, v, h] = await Promise.all([api(at('/api/analytics/summary', { days })), api(at('/api/analytics/retention', { days })),
      api(at('/api/analytics/vitals', { days })), fetch('/api/health').then((res) => res.json()).catch(() => ({}))]);
    // Figures come from rollups that trail the stored events; say so when they trail by more
    // than a few seconds.
    const lag = h.rollup_lag_seconds;
    $('as-of').textContent = typeof lag === 'number' && lag > 5
      ? `figures as of ${new Date(Date.now() - lag * 1000).toLocaleTimeString()} (${Math.round(lag)} s behind the newest events)` : '';
    const o = s.overview;
    cards($('overview'), [['events', o.total_events], ['active users', o.active_users], ['sessions', o.sessions],
      ['page views', o.page_views], ['avg session (s)', o.avg_session_duration], ['bounce rate', `${o.bounce_rate}%`]]);
    lineChart($('trend'), s.daily.map((d) => d.day), [
      { values: s.daily.map((d) => d.events), color: '#3b6fd8' },
      { values: s.daily.map((d) => d.users), color: '#e07b39' },
    ]);
    rows($('pages'), ['page', 'views', 'users', 'avg s'], s.top_pages.map((p) => [p.page_url, p.views, p.unique_users, p.avg_time_on_page ?? '-']));
    rows($('events'), ['event', 'count'], s.top_events.map((e) => [e.name, e.count]));
    rows($('referrers'), ['referrer', 'visits'], s.top_referrers.map((e) => [e.name, e.count]));
    rows($('channels'), ['channel', 'sessions', 'visitors'], s.channels.map((c) => [c.channel, c.sessions, c.visitors]));
    rows($('campaigns'), ['source / medium / campaign', 'sessions', 'visitors'],
      s.campaigns.map((c) => [`${c.source} / ${c.medium} / ${c.campaign}`, c.sessions, c.visitors]));
    rows($('agents'), ['kind', 'count'], [
      ...s.browsers.map((e) => [`browser: ${e.name}`, e.count]),
      ...s.operating_systems.map((e) => [`os: ${e.name}`, e.count]),
      ...s.devices.map((e) => [`device: ${e.name}`, e.count]),
      // Bots are left out of every figure; say how many events that was.
      ...s.bots.map((b) => [`bot events left out: ${b.reason}`, b.events]),
    ]);
    heatmap($('retention'), r);
    vitals(v);
    await Promise.all([loadFunnel(), loadRealtime()]);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = 'true';
  } catch (e) {
    $('error').textContent = e.message;
  }
}

$('load').addEventListener('click', load);
$('days').addEventListener('change', load);
$('site').addEventListener('change', () => { localStorage.setItem(SITE, $('site').value); load(); });
$('funnel-form').addEventListener('submit', (e) => { e.preventDefault(); loadFunnel().catch((err) => { $('error').textContent = err.message; }); });
setInterval(() => { if ($('key').value) loadRealtime().catch(() => {}); }, 10000);
if ($('key').value) load();
