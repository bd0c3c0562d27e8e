/**
 * Backend selection on whatever machine runs the tests. The native packages
 * (@tensorflow/tfjs-node-gpu, @tensorflow/tfjs-node) are optional dependencies: absent here and on
 * CI (libtensorflow cannot be downloaded), installed on a user's machine with internet access. The
 * expectations are derived from what a fresh process can actually load, so the tests hold either
 * way: 'auto' takes the first loadable of tensorflow-gpu → tensorflow → wasm and names why each
 * better one was skipped; forced preferences work or fail by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { currentBackend, initBackend } from '../../pipeline/backend/select.js';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const child = fileURLToPath(new URL(`./fixtures/select-child${ext}`, import.meta.url));

function runChild(...args: string[]): Record<string, unknown> {
  const argv = [...process.execArgv.filter((a) => !a.startsWith('--test')), child, ...args];
  const out = execFileSync(process.execPath, argv, { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

const selectIn = (preference: string) => runChild(preference);

/** What each native package does when a fresh process imports it: 'ok', or why not. */
const natives = runChild('--probe') as Record<'tensorflow-gpu' | 'tensorflow', string>;
const PACKAGES = { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu', tensorflow: '@tensorflow/tfjs-node' } as const;
/** The reason select.ts gives for a native backend that cannot be used. */
const why = (name: keyof typeof PACKAGES) => (natives[name] === 'not installed' ? `${PACKAGES[name]} is not installed` : `${PACKAGES[name]} failed to load: ${natives[name]}`);
const usable = (['tensorflow-gpu', 'tensorflow'] as const).filter((n) => natives[n] === 'ok');

test("'auto' takes the best loadable backend and says why each better one was skipped", (t) => {
  t.diagnostic(`native packages here: ${JSON.stringify(natives)}`);
  const r = selectIn('auto');
  const expected = (usable[0] ?? 'wasm') as 'tensorflow-gpu' | 'tensorflow' | 'wasm';
  const skipped = (['tensorflow-gpu', 'tensorflow'] as const).slice(0, expected === 'wasm' ? 2 : expected === 'tensorflow' ? 1 : 0);
  assert.equal(r.name, expected);
  assert.equal(r.tfBackend, expected === 'wasm' ? 'wasm' : 'tensorflow');
  assert.equal(r.sum, 6, 'the chosen backend computes');
  assert.deepEqual(r.reasons, skipped.map((n) => `${n}: ${why(n)}`));
  if (expected === 'wasm') assert.match(String(r.summary), /^backend wasm \(SIMD, 1 thread\(s\)\); skipped: tensorflow-gpu: .+; tensorflow: .+$/);
  assert.match(String(r.getTfBeforeInit), /call `await initBackend\(\)`/);
});

test("forcing 'wasm' or 'cpu' uses that backend with nothing skipped", () => {
  for (const name of ['wasm', 'cpu']) {
    const r = selectIn(name);
    assert.equal(r.name, name);
    assert.equal(r.tfBackend, name);
    assert.equal(r.sum, 6);
    assert.deepEqual(r.reasons, []);
  }
});

test('forcing a native backend uses it where it loads, and is an error naming backend and cause where not', () => {
  for (const name of ['tensorflow-gpu', 'tensorflow'] as const) {
    const r = selectIn(name);
    if (natives[name] === 'ok') {
      assert.equal(r.name, name);
      assert.equal(r.sum, 6);
    } else {
      assert.equal(r.error, `compute backend '${name}' was requested but cannot be used: ${why(name)}`);
    }
  }
  assert.match(String(selectIn('tpu').error), /unknown compute backend 'tpu': expected auto, tensorflow-gpu, tensorflow, wasm, cpu/);
});

test('in one process: a failed forced choice leaves selection possible; the choice is then fixed', async () => {
  // A native backend this machine cannot load, or (where both load) a backend that does not exist.
  const unusable = (['tensorflow', 'tensorflow-gpu'] as const).find((n) => natives[n] !== 'ok') ?? 'tpu';
  await assert.rejects(initBackend(unusable as 'tensorflow'), unusable === 'tpu' ? /unknown compute backend 'tpu'/ : /cannot be used/);
  assert.equal(currentBackend(), undefined);
  const sel = await initBackend('wasm');
  assert.equal(sel.name, 'wasm');
  assert.equal(await initBackend('auto'), sel, 'auto after a choice returns that choice');
  await assert.rejects(initBackend('cpu'), /already initialised as 'wasm'; cannot switch to 'cpu'/);
});
