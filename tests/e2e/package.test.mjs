// `npm pack` at the root gives the SDK's npm package: the ES module, its types, the glue and
// the wasm, the script-tag loader and the README; nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('npm pack contains exactly the SDK files', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  const [pack] = JSON.parse(out);
  assert.equal(pack.name, 'maidian');
  const files = pack.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    'README.md',
    'package.json',
    'sdk-wasm/dist/index.d.ts',
    'sdk-wasm/dist/index.js',
    'sdk-wasm/dist/maidian_sdk_bg.wasm',
    'sdk-wasm/dist/tracking_sdk.js',
  ].sort());
});

test('the ES module entry exports initTracking and getTracking', async () => {
  const src = (await import('node:fs')).readFileSync(path.join(root, 'sdk-wasm/dist/index.js'), 'utf8');
  assert.match(src, /export const initTracking=/);
  assert.match(src, /export const getTracking=/);
});
