/**
 * Backend selection on this machine: no tfjs-node(-gpu) installed, so 'auto' must fall back to
 * wasm and say why the native backends were skipped; forced preferences work or fail by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { currentBackend, initBackend } from '../../pipeline/backend/select.js';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const child = fileURLToPath(new URL(`./fixtures/select-child${ext}`, import.meta.url));

function selectIn(preference: string): Record<string, unknown> {
  const args = [...process.execArgv.filter((a) => !a.startsWith('--test')), child, preference];
  const out = execFileSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

test("'auto' falls back past the missing native packages to wasm and says why", () => {
  const r = selectIn('auto');
  assert.equal(r.name, 'wasm');
  assert.equal(r.tfBackend, 'wasm');
  assert.equal(r.sum, 6);
  assert.deepEqual(r.reasons, [
    'tensorflow-gpu: @tensorflow/tfjs-node-gpu is not installed',
    'tensorflow: @tensorflow/tfjs-node is not installed',
  ]);
  assert.match(String(r.summary), /^backend wasm \(SIMD, 1 thread\(s\)\); skipped: tensorflow-gpu: .*not installed; tensorflow: .*not installed$/);
  assert.match(String(r.getTfBeforeInit), /call `await initBackend\(\)`/);
});

test("forcing 'cpu' uses the pure-JS backend with nothing skipped", () => {
  const r = selectIn('cpu');
  assert.equal(r.name, 'cpu');
  assert.equal(r.tfBackend, 'cpu');
  assert.equal(r.sum, 6);
  assert.deepEqual(r.reasons, []);
});

test('forcing an unavailable native backend is an error naming the backend and the cause', () => {
  assert.equal(selectIn('tensorflow').error, "compute backend 'tensorflow' was requested but cannot be used: @tensorflow/tfjs-node is not installed");
  assert.equal(
    selectIn('tensorflow-gpu').error,
    "compute backend 'tensorflow-gpu' was requested but cannot be used: @tensorflow/tfjs-node-gpu is not installed",
  );
  assert.match(String(selectIn('tpu').error), /unknown compute backend 'tpu': expected auto, tensorflow-gpu, tensorflow, wasm, cpu/);
});

test('in one process: a failed forced choice leaves selection possible; the choice is then fixed', async () => {
  await assert.rejects(initBackend('tensorflow'), /tfjs-node is not installed/);
  assert.equal(currentBackend(), undefined);
  const sel = await initBackend('wasm');
  assert.equal(sel.name, 'wasm');
  assert.equal(await initBackend('auto'), sel, 'auto after a choice returns that choice');
  await assert.rejects(initBackend('cpu'), /already initialised as 'wasm'; cannot switch to 'cpu'/);
});
