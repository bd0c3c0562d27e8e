/**
 * The training input path's crop options: the default (Inception crop + flip + RandAugment) draws
 * exactly what it drew before the pad crop and random erasing existed (a digest of 200 augmented
 * Fashion-MNIST images, taken with the earlier code), pad-and-window shifts pixels exactly and
 * fills with padFill, `flip: false` never mirrors, and random erasing writes one rectangle of the
 * configured area. Manifests that do not name the new options resolve to the same config (and so
 * keep their stage fingerprints).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { trainSection } from '../../pipeline/manifest/sections/train.js';
import { augmentImage, padCrop, randAugmentOptions, randomErase } from '../../pipeline/train/augment.js';
import type { RawImage } from '../../pipeline/train/randaugment.js';
import { Sfc32, mix } from '../../pipeline/train/rng.js';
import { needs } from '../helpers/extras.js';
import { readFashionMnist } from '../helpers/fashion-mnist.js';

const NEEDS = needs('fashion-mnist');
/** Test image i of Fashion-MNIST t10k (read on first use, inside a test: skipped without the files). */
const image = (i: number): RawImage => ({ width: 28, height: 28, channels: 1, data: readFashionMnist('t10k', 20).images.slice(i * 784, (i + 1) * 784) });

function digest(cfg: ReturnType<typeof trainSection.parse>): string {
  const ra = randAugmentOptions(cfg, 5, 28);
  const h = createHash('sha256');
  for (let step = 0; step < 10; step++) for (let i = 0; i < 20; i++) h.update(augmentImage(image(i), cfg, ra, new Sfc32(mix(0, 0xa06, step, i))).data);
  return h.digest('hex');
}

test('the default crop path (the demo teacher recipe) is unchanged: same pixels as before the new options', { skip: NEEDS }, () => {
  const cfg = trainSection.parse({ randAugment: { scaleWithImage: true }, crop: { minArea: 0.35 } });
  assert.equal(digest(cfg), 'f862b8c20964195c4d2f83265f9e79ae65aec915cae53eddaa095d4ac169e0cb');
});

test('manifests without the new options resolve to the same train config (no new keys, same fingerprints)', () => {
  const demo = parse(readFileSync(new URL('../../../manifests/fashion-mnist-ci.yaml', import.meta.url), 'utf8')) as { teacher: { train: unknown } };
  const c = trainSection.parse(demo.teacher.train);
  assert.deepEqual(Object.keys(c.crop).sort(), ['aspect', 'flip', 'minArea', 'type']);
  assert.equal('erasing' in c, false);
  assert.equal('exclude' in c.randAugment, false);
});

test('randAugment.exclude reaches the op choice: the options list the other ops; without it, all 16 (no list)', () => {
  const cfg = trainSection.parse({ randAugment: { exclude: ['Invert', 'Posterize', 'Solarize', 'SolarizeAdd'] } });
  assert.deepEqual(randAugmentOptions(cfg, 5, 28).ops, ['AutoContrast', 'Equalize', 'Rotate', 'Color', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout']);
  assert.equal(randAugmentOptions(trainSection.parse({}), 5, 28).ops, undefined);
});

test('pad crop: output (x, y) = input (x + dx − pad, y + dy − pad), padFill outside; flip mirrors the window', () => {
  const img: RawImage = { width: 4, height: 3, channels: 1, data: Uint8Array.from({ length: 12 }, (_, i) => 10 + i) };
  // pad 2, window offset (3, 1): shift left by 1, down by 1.
  assert.deepEqual([...padCrop(img, 2, 3, 1, false, 0).data], [0, 0, 0, 0, 11, 12, 13, 0, 15, 16, 17, 0]);
  assert.deepEqual([...padCrop(img, 2, 3, 1, true, 7).data], [7, 7, 7, 7, 7, 13, 12, 11, 7, 17, 16, 15]);
  assert.deepEqual([...padCrop(img, 2, 2, 2, false, 0).data], [...img.data]);
  // Three channels move together.
  const rgb: RawImage = { width: 2, height: 1, channels: 3, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
  assert.deepEqual([...padCrop(rgb, 1, 0, 1, false, 9).data], [9, 9, 9, 1, 2, 3]);
});

test('pad crop through augmentImage: shifts within ±padding, every shift reached, no mirror with flip: false', { skip: NEEDS }, () => {
  const cfg = trainSection.parse({ randAugment: { enabled: false }, crop: { type: 'pad', padding: 2, flip: false } });
  const ra = randAugmentOptions(cfg, 5, 28);
  const src = image(0);
  const seen = new Set<string>();
  for (let s = 0; s < 400; s++) {
    const out = augmentImage(src, cfg, ra, new Sfc32(mix(1, s))).data;
    let found = '';
    for (let dx = 0; dx <= 4 && !found; dx++) for (let dy = 0; dy <= 4 && !found; dy++) {
      if (Buffer.from(padCrop(src, 2, dx, dy, false, 0).data).equals(Buffer.from(out))) found = `${dx},${dy}`;
    }
    assert.ok(found, `sample ${s} is an unmirrored shift of at most 2 pixels`);
    seen.add(found);
  }
  assert.equal(seen.size, 25);
  // With flip on, about half are mirrored.
  const flipCfg = trainSection.parse({ randAugment: { enabled: false }, crop: { type: 'pad', padding: 0 } });
  const mirrored = Array.from({ length: 400 }, (_, s) => augmentImage(src, flipCfg, ra, new Sfc32(mix(2, s)))).filter((o) => !Buffer.from(o.data).equals(Buffer.from(src.data))).length;
  assert.ok(mirrored > 150 && mirrored < 250, `${mirrored} of 400 mirrored`);
});

test('random erasing: one rectangle of fill within the area range; absent section = off', { skip: NEEDS }, () => {
  const e = { probability: 1, area: [0.1, 0.2] as [number, number], aspect: [0.5, 2] as [number, number], fill: 250 };
  const src: RawImage = { width: 28, height: 28, channels: 1, data: new Uint8Array(784) };
  for (let s = 0; s < 100; s++) {
    const out = randomErase(src, e, new Sfc32(s)).data;
    const idx = [...out.keys()].filter((i) => out[i] === 250);
    const ys = idx.map((i) => Math.floor(i / 28)), xs = idx.map((i) => i % 28);
    const h = Math.max(...ys) - Math.min(...ys) + 1, w = Math.max(...xs) - Math.min(...xs) + 1;
    assert.equal(idx.length, h * w, 'one filled rectangle');
    assert.ok(idx.length >= 0.1 * 784 * 0.8 && idx.length <= 0.2 * 784 * 1.25, `area ${idx.length}`);
  }
  const off = trainSection.parse({ randAugment: { enabled: false }, crop: { type: 'none', flip: false } });
  assert.deepEqual(augmentImage(image(3), off, randAugmentOptions(off, 5, 28), new Sfc32(1)).data, image(3).data);
  const on = trainSection.parse({ randAugment: { enabled: false }, crop: { type: 'none', flip: false }, erasing: { probability: 1, fill: 255 } });
  assert.ok(augmentImage(image(3), on, randAugmentOptions(on, 5, 28), new Sfc32(1)).data.some((v, i) => v !== image(3).data[i]));
});
