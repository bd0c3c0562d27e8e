/**
 * Each RandAugment op on real Fashion-MNIST images, grey and RGB (three test images as the three
 * channels): pixel and colour ops against Pillow's ImageOps/ImageEnhance, Rotate/Shear/Translate
 * against Pillow's affine transforms (an independent implementation, run through /usr/bin/python3
 * or SELFTRAIN_TEST_PYTHON);
 * SolarizeAdd and Cutout, which Pillow lacks, against their definitions; the op choice of
 * randAugment itself observed through its op callback.
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
const PILLOW = NEEDS || needs('pillow');
let W!: number, H!: number;
/** Test image 0 (an ankle boot), squeezed into [30, 200] so AutoContrast has something to stretch. */
let boot!: RawImage;
let raw!: RawImage;
/** An RGB image: Fashion-MNIST test images 2, 3 and 4 as its red, green and blue channels. */
let rgb!: RawImage;
before(() => {
  if (NEEDS) return; // every test below skips
  const fm = readFashionMnist('t10k', 5);
  W = fm.cols;
  H = fm.rows;
  boot = { width: W, height: H, channels: 1, data: Uint8Array.from(fm.images.subarray(0, W * H), (v) => 30 + Math.floor((v * 170) / 255)) };
  raw = { width: W, height: H, channels: 1, data: fm.images.slice(W * H, 2 * W * H) };
  rgb = { width: W, height: H, channels: 3, data: Uint8Array.from({ length: W * H * 3 }, (_, i) => fm.images[(2 + (i % 3)) * W * H + Math.floor(i / 3)]!) };
});
const opts = { translateConst: 100, cutoutConst: 40, fill: 128 };

function pillow(img: RawImage, ops: [string, number][]): Uint8Array[] {
  // The helper stays in the source tree; from dist/ (npm test) look it up there.
  let script = fileURLToPath(new URL('./pil_ops.py', import.meta.url));
  if (!existsSync(script)) script = path.resolve(path.dirname(script), '../../../test/train/pil_ops.py');
  const out = execFileSync(testPython(), [script], {
    input: JSON.stringify({ width: img.width, height: img.height, channels: img.channels, pixels: Array.from(img.data), ops }),
  });
  return (JSON.parse(out.toString()) as number[][]).map((p) => Uint8Array.from(p));
}

/** Pixels (not channel values) that differ. */
function pixelsDiffering(a: RawImage, b: Uint8Array): number {
  let n = 0;
  for (let p = 0; p < a.width * a.height; p++) {
    for (let c = 0; c < a.channels; c++) {
      if (a.data[p * a.channels + c] !== b[p * a.channels + c]) {
        n++;
        break;
      }
    }
  }
  return n;
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
const at = (img: RawImage, x: number, y: number) => img.data[y * img.width + x]!;

test('pixel and colour ops match Pillow on real grey and RGB images', { skip: PILLOW }, () => {
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
  for (const img of [boot, raw, rgb]) {
    const expected = pillow(img, cases.map(([n, a]) => [n, a]));
    cases.forEach(([name, arg, fn, tol], k) => {
      const got = fn(img);
      const d = maxDiff(got.data, expected[k]!);
      const which = `${name}(${arg}) on the ${img.channels === 3 ? 'RGB' : 'grey'} image`;
      assert.ok(d <= tol, `${which}: max |ours - Pillow| = ${d} > ${tol}`);
      // Colour is the identity on grey images; the raw image already spans 0..255.
      const identity = (name === 'Color' && img.channels === 1) || (name === 'AutoContrast' && img === raw);
      if (!identity) assert.ok(maxDiff(got.data, img.data) > 0, `${which} changed nothing`);
    });
  }
});

test('Rotate, ShearX/Y and TranslateX/Y match Pillow\'s affine transforms on grey and RGB images', { skip: PILLOW }, () => {
  const cases: [string, number, (i: RawImage) => RawImage][] = [
    ['Rotate', 30, (i) => rotate(i, 30, 128)],
    ['Rotate', -17, (i) => rotate(i, -17, 128)],
    ['Rotate', 90, (i) => rotate(i, 90, 128)],
    ['ShearX', 0.3, (i) => shearX(i, 0.3, 128)],
    ['ShearX', -0.21, (i) => shearX(i, -0.21, 128)],
    ['ShearY', 0.3, (i) => shearY(i, 0.3, 128)],
    ['ShearY', -0.27, (i) => shearY(i, -0.27, 128)],
    ['TranslateX', 5, (i) => translateX(i, 5, 128)],
    // Not -7.5: at an exact half TF (std::round) rounds away from zero and Pillow (floor of x + 0.5)
    // up, so a tie at -0.5 picks different pixels; RandAugment's offsets are rarely exact halves.
    ['TranslateX', -7.25, (i) => translateX(i, -7.25, 128)],
    ['TranslateY', 4, (i) => translateY(i, 4, 128)],
    ['TranslateY', -9, (i) => translateY(i, -9, 128)],
  ];
  for (const img of [raw, rgb]) {
    const expected = pillow(img, cases.map(([n, a]) => [n, a]));
    cases.forEach(([name, arg, fn], k) => {
      const got = fn(img);
      const n = pixelsDiffering(got, expected[k]!);
      assert.equal(n, 0, `${name}(${arg}) on the ${img.channels === 3 ? 'RGB' : 'grey'} image: ${n} pixels differ from Pillow`);
      assert.ok(maxDiff(got.data, img.data) > 0, `${name}(${arg}) changed nothing`);
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
});

test('Cutout through applyOp: an 8x8 square of 128 at M=1 (clipped at the border), at a random centre, nothing else touched', { skip: NEEDS }, () => {
  // No pixel of the source is 128, so the 128s are exactly the cut-out square.
  const src: RawImage = { ...rgb, data: Uint8Array.from(rgb.data, (v) => (v === 128 ? 127 : v)) };
  const rng = new Sfc32(3);
  const centres = new Set<string>();
  for (let trial = 0; trial < 20; trial++) {
    const out = applyOp('Cutout', src, 1, rng, opts);
    const cut: [number, number][] = [];
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = (y * W + x) * 3;
        const filled = out.data[p] === 128 && out.data[p + 1] === 128 && out.data[p + 2] === 128;
        if (filled) cut.push([x, y]);
        else for (let c = 0; c < 3; c++) assert.equal(out.data[p + c], src.data[p + c], `pixel ${x},${y} outside the square changed`);
      }
    }
    assert.ok(cut.length > 0, 'Cutout cut nothing out');
    const xs = cut.map(([x]) => x), ys = cut.map(([, y]) => y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    assert.equal(cut.length, (x1 - x0 + 1) * (y1 - y0 + 1), 'the cut-out region is a filled rectangle');
    // pad = trunc(1/10 * 40) = 4: [c-4, c+4) in each axis, clipped to the image.
    for (const [lo, hi] of [[x0, x1], [y0, y1]] as const) assert.ok(hi - lo + 1 === 8 || lo === 0 || hi === W - 1, `side ${hi - lo + 1} is 8 unless clipped`);
    centres.add(`${x0},${y0}`);
  }
  assert.ok(centres.size > 10, `the square moves with the random centre (${centres.size} places in 20 trials)`);
});

test('randAugment is deterministic per seed, applies `layers` ops, and picks all 16 ops about evenly', { skip: NEEDS }, () => {
  const o = { ...opts, layers: 2, magnitude: 9 };
  const a = randAugment(rgb, o, new Sfc32(42));
  const b = randAugment(rgb, o, new Sfc32(42));
  assert.deepEqual(a.data, b.data);
  const counts = new Map<string, number>();
  const rng = new Sfc32(7);
  const images = 800;
  for (let i = 0; i < images; i++) {
    const ops: string[] = [];
    randAugment(raw, o, rng, (op) => ops.push(op));
    assert.equal(ops.length, 2, 'two layers, two ops');
    for (const op of ops) counts.set(op, (counts.get(op) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), [...RANDAUGMENT_OPS].sort(), 'every one of the 16 ops is chosen');
  // 1,600 uniform draws over 16 ops: 100 each on average; 50..150 is more than 5 standard deviations.
  for (const [op, n] of counts) assert.ok(n >= 50 && n <= 150, `${op} chosen ${n} times of ${2 * images}`);
});

test('randAugment picks only among `ops` when given (the manifest\'s randAugment.exclude), about evenly', { skip: NEEDS }, () => {
  const mild = RANDAUGMENT_OPS.filter((op) => !['Invert', 'Posterize', 'Solarize', 'SolarizeAdd'].includes(op));
  const o = { ...opts, layers: 2, magnitude: 5, ops: mild };
  const counts = new Map<string, number>();
  const rng = new Sfc32(11);
  const images = 600;
  for (let i = 0; i < images; i++) randAugment(raw, o, rng, (op) => counts.set(op, (counts.get(op) ?? 0) + 1));
  assert.deepEqual([...counts.keys()].sort(), [...mild].sort(), 'the 12 remaining ops, and only those');
  // 1,200 uniform draws over 12 ops: 100 each on average; 50..150 is more than 5 standard deviations.
  for (const [op, n] of counts) assert.ok(n >= 50 && n <= 150, `${op} chosen ${n} times of ${2 * images}`);
});
