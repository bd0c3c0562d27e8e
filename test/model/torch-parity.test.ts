/**
 * The tfjs ResNet-RS and the PyTorch one in bench/model_torch.py are the same network: the same
 * random weights (BN statistics included) loaded into both give the same logits on real images.
 * This pins down the conventions that parameter counts cannot see — fixed padding of stride-2 convs
 * (= PyTorch padding 1), ResNet-D average pool on odd sizes (TF 'same' = ceil_mode without padding
 * in the count), SE placement, BN ε — and it makes the bench's torch comparison like-for-like.
 * Uses 28x28 inputs so the stages see odd sizes (7 -> 4).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { countResNetRS } from '../../pipeline/model/count.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { buildResNetRS } from '../../pipeline/model/resnet-rs.js';
import { needs, testPython } from '../helpers/extras.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';
import { randomizeWeights } from './random-weights.js';

/** bench/model_torch.py in the repo (tsc does not copy .py files into dist/, so walk up to it). */
function findTorchScript(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'bench', 'model_torch.py');
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`bench/model_torch.py not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
const torchScript = findTorchScript();

test('tfjs and PyTorch builds give the same logits for the same weights', { skip: needs('torch', 'fashion-mnist') }, async (t) => {
  await initBackend('wasm');
  const tf = getTf();
  const { arch } = resolveModel({ name: 'resnet-rs-26-w0.25-small', classes: 7, stochasticDepthRate: 0.1 });
  const model = buildResNetRS(arch);
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-parity-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  // Random weights everywhere (random-weights.ts), exported with tfjs names.
  randomizeWeights(model, 100);
  const index: Array<{ name: string; shape: number[]; offset: number }> = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      const data = w.read().dataSync() as Float32Array;
      index.push({ name: w.originalName, shape: w.shape as number[], offset });
      chunks.push(data);
      offset += data.length;
    }
  }
  const blob = new Float32Array(offset);
  let o = 0;
  for (const c of chunks) {
    blob.set(c, o);
    o += c.length;
  }
  const batch = 4;
  const images = fashionMnistFloats('t10k', batch);
  const input = new Float32Array(images.images.map((v) => (v - 0.286) / 0.353));
  writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(blob.buffer));
  writeFileSync(path.join(dir, 'input.bin'), Buffer.from(input.buffer));
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ arch, blocks: arch.blocks, inputShape: [batch, 28, 28, 1], weights: index }));

  const expected = tf.tidy(() => Array.from((model.predict(tf.tensor4d(input, [batch, 28, 28, 1])) as ReturnType<typeof tf.zeros>).dataSync()));
  const { stdout } = await promisify(execFile)(testPython(), [torchScript, '--threads', '1', '--parity', dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const torch = JSON.parse(stdout.trim().split('\n').pop()!) as { params: number; logits: number[] };
  assert.equal(torch.params, countResNetRS(arch).params);
  assert.equal(torch.logits.length, expected.length);
  const scale = Math.max(...expected.map(Math.abs));
  const maxDiff = Math.max(...expected.map((v, i) => Math.abs(v - torch.logits[i]!)));
  t.diagnostic(`max |logit| ${scale.toFixed(3)}, max |tfjs - torch| ${maxDiff.toExponential(2)}`);
  assert.ok(scale > 1e-2, 'non-trivial logits');
  assert.ok(maxDiff <= 1e-4 * Math.max(1, scale), `tfjs vs torch logits differ by ${maxDiff}`);
  model.dispose();
});
