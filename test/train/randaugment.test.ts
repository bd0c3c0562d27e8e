/**
 * Each RandAugment op on a real Fashion-MNIST image: pixel ops against Pillow (an independent
 * implementation, run through /usr/bin/python3 or SELFTRAIN_TEST_PYTHON), geometric ops against hand-checked pixel math.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { needs, testPython } from '../helpers/extras.js';
import { readFashionMnist } from '../helpers/fashion-mnist.js';
import {
  RANDAUGMENT_OPS, applyOp, randAugment, autoContrast, equalize, invert, posterize, solarize, solarizeAdd, contrast,
  brightness, sharpness, color, rotate, shearX, shearY, translateX, translateY, cutout, type RawImage,
} from '../../pipeline/train/randaugment.js';
import { Sfc32 } from '../../pipeline/train/rng.js';

const NEEDS = needs('fashion-mnist');
let W!: number, H!: number;
/** Test image 0 (an ankle boot), squeezed into [30, 200] so AutoContrast has something to stretch. */
let boot!: RawImage;
let raw!: RawImage;
before(() => {
  if (NEEDS) return; // every test below skips
  const fm = readFashionMnist('t10k', 2);
  W = fm.cols;
  H = fm.rows;
  boot = { width: W, height: H, channels: 1, data: Uint8Array.from(fm.images.subarray(0, W * H), (v) => 30 + Math.floor((v * 170) / 255)) };
  raw = { width: W, height: H, channels: 1, data: fm.images.slice(W * H, 2 * W * H) };
});
const opts = { translateConst: 100, cutoutConst: 40, fill: 128 };

function pillow(img: RawImage, ops: [string, number][]): Uint8Array[] {
  // The helper stays in the source tree; from dist/ (npm test) look it up there.
  let script = fileURLToPath(new URL('./pil_ops.py', import.meta.url));
  if (!existsSync(script)) script = path.resolve(path.dirname(script), '../../../test/train/pil_ops.py');
  const out = execFileSync(testPython(), [script], {
    input: JSON.stringify({ width: img.width, height: img.height, pixels: Array.from(img.data), ops }),
  });
  return (JSON.parse(out.toString()) as number[][]).map((p) => Uint8Array.from(p));
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
const at = (img: RawImage, x: number, y: number) => img.data[y * img.width + x]!;

test('pixel ops match Pillow on a real image', { skip: NEEDS || needs('pillow') }, () => {
  const cases: [string, number, (i: RawImage) => RawImage, number][] = [
    ['AutoContrast', 0, autoContrast, 0],
    ['Equalize', 0, equalize, 0],
    ['Invert', 0, invert, 0],
    ['Posterize', 4, (i) => posterize(i, 4), 0],
    ['Posterize', 2, (i) => posterize(i, 2), 0],
    ['Solarize', 128, (i) => solarize(i, 128), 0],
    ['Brightness', 1.9, (i) => brightness(i, 1.9), 0],
    ['Brightness', 0.4, (i) => brightness(i, 0.4), 0],
    ['Contrast', 1.9, (i) => contrast(i, 1.9), 0],
    ['Contrast', 0.4, (i) => contrast(i, 0.4), 0],
    ['Color', 1.9, (i) => color(i, 1.9), 0],
    // Pillow's smoothing filter rounds, TF's (which we follow) truncates: off by at most one level.
    ['Sharpness', 1.9, (i) => sharpness(i, 1.9), 2],
    ['Sharpness', 0.4, (i) => sharpness(i, 0.4), 1],
  ];
  for (const img of [boot, raw]) {
    const expected = pillow(img, cases.map(([n, a]) => [n, a]));
    cases.forEach(([name, arg, fn, tol], k) => {
      const got = fn(img);
      const d = maxDiff(got.data, expected[k]!);
      assert.ok(d <= tol, `${name}(${arg}): max |ours - Pillow| = ${d} > ${tol}`);
      if (!['Color'].includes(name) && !(name === 'AutoContrast' && img === raw)) {
        assert.ok(maxDiff(got.data, img.data) > 0, `${name}(${arg}) changed nothing`);
      }
    });
  }
});

test('grey images: Color is the identity, Invert inverts the one channel', { skip: NEEDS }, () => {
  assert.deepEqual(color(raw, 2.8).data, raw.data);
  assert.deepEqual(invert(raw).data, Uint8Array.from(raw.data, (v) => 255 - v));
});

test('SolarizeAdd adds to dark pixels only, saturating at 255', { skip: NEEDS }, () => {
  const out = solarizeAdd(boot, 110);
  for (let i = 0; i < boot.data.length; i++) {
    const v = boot.data[i]!;
    assert.equal(out.data[i], v < 128 ? Math.min(255, v + 110) : v);
  }
});

test('Rotate by 90 degrees is a counter-clockwise quarter turn; smaller angles fill corners with 128', { skip: NEEDS }, () => {
  const r = rotate(raw, 90, 128);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(at(r, x, y), at(raw, W - 1 - y, x));
  const r30 = rotate(raw, 30, 128);
  assert.equal(at(r30, 0, 0), 128);
  assert.equal(at(r30, W - 1, H - 1), 128);
  // Rotation by 0 degrees is the identity.
  assert.equal(at(rotate(raw, 0, 128), 5, 7), at(raw, 5, 7));
});

test('ShearX/ShearY sample (x + s*y, y) and (x, y + s*x), nearest, fill 128', { skip: NEEDS }, () => {
  const s = 0.3;
  const sx = shearX(raw, s, 128);
  const sy = shearY(raw, s, 128);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const srcX = Math.round(x + s * y);
      assert.equal(at(sx, x, y), srcX < W ? at(raw, srcX, y) : 128, `shearX at ${x},${y}`);
      const srcY = Math.round(y + s * x);
      assert.equal(at(sy, x, y), srcY < H ? at(raw, x, srcY) : 128, `shearY at ${x},${y}`);
    }
  }
});

test('TranslateX/TranslateY move content by the given pixels and fill the gap with 128', { skip: NEEDS }, () => {
  const tx = translateX(raw, 5, 128);
  const ty = translateY(raw, -4, 128);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      assert.equal(at(tx, x, y), x + 5 < W ? at(raw, x + 5, y) : 128);
      assert.equal(at(ty, x, y), y - 4 >= 0 ? at(raw, x, y - 4) : 128);
    }
  }
});

test('Cutout fills a clipped square of side 2*pad with 128', { skip: NEEDS }, () => {
  const c = cutout(raw, 6, 2, 20, 128);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const inside = y < 8 && x >= 14 && x < 26;
      assert.equal(at(c, x, y), inside ? 128 : at(raw, x, y));
    }
  }
});

test('magnitude scale: level args as in the official autoaugment.py', { skip: NEEDS }, () => {
  const rng = new Sfc32(1);
  // M=10: posterize keeps 4 bits, solarize threshold 256 (identity), brightness factor 1.9.
  assert.deepEqual(applyOp('Posterize', raw, 10, rng, opts).data, posterize(raw, 4).data);
  assert.deepEqual(applyOp('Solarize', raw, 10, rng, opts).data, raw.data);
  assert.deepEqual(applyOp('Solarize', raw, 5, rng, opts).data, solarize(raw, 128).data);
  assert.deepEqual(applyOp('Brightness', raw, 10, rng, opts).data, brightness(raw, 1.9).data);
  assert.deepEqual(applyOp('SolarizeAdd', raw, 10, rng, opts).data, solarizeAdd(raw, 110).data);
  // Translate at M=1 with the official 100 px constant: 10 px, either direction.
  const t = applyOp('TranslateX', raw, 1, rng, opts).data;
  assert.ok(maxDiff(t, translateX(raw, 10, 128).data) === 0 || maxDiff(t, translateX(raw, -10, 128).data) === 0);
  // Cutout at M=1: pad 4 -> at most an 8x8 square of 128.
  const c = applyOp('Cutout', raw, 1, rng, opts).data;
  const changed = c.filter((v, i) => v !== raw.data[i]).length;
  assert.ok(changed <= 64 && c.filter((v) => v === 128).length >= changed);
});

test('randAugment is deterministic per seed and uses all 16 ops', { skip: NEEDS }, () => {
  const o = { ...opts, layers: 2, magnitude: 9 };
  const a = randAugment(raw, o, new Sfc32(42));
  const b = randAugment(raw, o, new Sfc32(42));
  assert.deepEqual(a.data, b.data);
  const seen = new Set<string>();
  const rng = new Sfc32(7);
  for (let i = 0; i < 400; i++) seen.add(RANDAUGMENT_OPS[rng.int(RANDAUGMENT_OPS.length)]!);
  assert.equal(seen.size, 16);
});
