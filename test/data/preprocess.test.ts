/**
 * Preprocessing: the recipe's eval crop formula, EXIF orientation, seeded train augmentation,
 * batches (shape, labels, skipped samples), and the small-PNG fast path agreeing with sharp.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { batches } from '../../pipeline/data/batches.js';
import { cropResizeSmall, decodeSmallPng } from '../../pipeline/data/png-fast.js';
import { encodePng } from '../../pipeline/data/png-encode.js';
import { centerCrop, transformImage } from '../../pipeline/data/preprocess.js';
import type { Sample, SkippedSample } from '../../pipeline/data/types.js';
import { bombPng, picture } from './fixtures.js';

describe('preprocessing', () => {
  test('eval centre crop follows S/(S+round(S(1/0.875-1))) of the shorter side', () => {
    assert.deepEqual(centerCrop(256, 256, 224), { left: 16, top: 16, width: 224, height: 224 }); // 224/(224+32)
    assert.equal(centerCrop(300, 200, 160).width, Math.floor((160 / 183) * 200)); // round(22.86) = 23
    assert.deepEqual(centerCrop(300, 200, 160, 1), { left: 50, top: 0, width: 200, height: 200 });
  });

  test('EXIF orientation is applied before cropping', async () => {
    const upright = await picture(30, 60, 'png'); // what the camera saw: 30 wide, 60 tall
    const raw = await sharp(upright).rotate(-90).raw().toBuffer({ resolveWithObject: true }); // stored sideways
    const stored = await sharp(raw.data, { raw: raw.info }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(stored).metadata()).width, 60);
    const o = { channels: 3 as const, imageSize: 24, mode: 'eval' as const, cropFraction: 1 };
    const a = await transformImage(stored, o);
    const b = await transformImage(upright, o);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff += Math.abs(a[i]! - b[i]!);
    assert.ok(diff / a.length < 6, `mean abs difference ${diff / a.length}`);
  });

  test('train augmentation is seeded per (seed, epoch, key), flips about half the time', async () => {
    const img = await picture(64, 48, 'jpeg');
    const o = { channels: 3 as const, imageSize: 32, mode: 'train' as const, seed: 4 };
    assert.deepEqual(await transformImage(img, { ...o, key: 'k1', epoch: 0 }), await transformImage(img, { ...o, key: 'k1', epoch: 0 }));
    const outs = await Promise.all(Array.from({ length: 24 }, (_, i) => transformImage(img, { ...o, key: `k${i}`, epoch: 1 })));
    assert.ok(new Set(outs.map((b) => b.toString('base64'))).size > 20, 'crops differ between keys');
    // Left half of the picture is red-ish (R=220): after a flip the right edge is.
    const flipped = outs.filter((b) => b[0]! < b[(32 - 1) * 3]!).length;
    assert.ok(flipped > 3 && flipped < 21, `flipped ${flipped} of 24`);
  });

  test('batches: NHWC shape, labels, float normalisation; a bad sample is skipped with shard and key', async () => {
    const good = await picture(40, 40, 'png');
    const samples: Sample[] = [
      { key: 'a', shard: 0, image: good, ext: 'png', label: 1 },
      { key: 'bad', shard: 2, image: Buffer.from('not an image'), ext: 'jpg', label: 0 },
      { key: 'b', shard: 0, image: await picture(50, 30, 'webp'), ext: 'webp', label: 2 },
      { key: 'bomb', shard: 3, image: await bombPng(20000), ext: 'png' },
      { key: 'c', shard: 1, image: await picture(20, 20, 'jpeg'), ext: 'jpg' },
    ];
    const seen: SkippedSample[] = [];
    const out = [];
    for await (const b of batches(samples, { size: 2, channels: 1, imageSize: 16, mode: 'eval', dtype: 'float32', normalize: { mean: [100], std: [50] }, onSkip: (s) => seen.push(s) })) out.push(b);
    assert.deepEqual(out.map((b) => b.keys), [['a', 'b'], ['c']]);
    assert.deepEqual(out.map((b) => [...b.labels]), [[1, 2], [-1]]);
    assert.deepEqual(out[0]!.shape, [2, 16, 16, 1]);
    assert.ok(out[0]!.pixels instanceof Float32Array && out[0]!.pixels.length === 2 * 256);
    const skipped = out.flatMap((b) => b.skipped);
    assert.deepEqual(skipped.map((s) => [s.shard, s.key]), [[2, 'bad'], [3, 'bomb']]);
    assert.deepEqual(seen, skipped);
    assert.match(skipped[1]!.reason, /pixel limit/);
    const px = (await transformImage(good, { channels: 1, imageSize: 16, mode: 'eval' }))[0]!;
    assert.ok(Math.abs(out[0]!.pixels[0]! - (px - 100) / 50) < 1e-6);
  });

  test('small-PNG fast path decodes exactly like sharp; other PNGs go to sharp', async () => {
    for (const [channels, palette] of [[1, false], [3, false], [4, false]] as const) {
      const raw = Buffer.alloc(29 * 31 * channels);
      for (let i = 0; i < raw.length; i++) raw[i] = (i * 37 + (i >> 5) * 11) & 0xff;
      const png = await sharp(raw, { raw: { width: 29, height: 31, channels } }).png({ adaptiveFiltering: true, palette }).toBuffer();
      const fast = decodeSmallPng(png, 1e9)!;
      assert.ok(fast, `fast path handles ${channels}-channel PNG`);
      const ref = await sharp(png).raw().toBuffer();
      assert.deepEqual(fast.data, ref);
    }
    const pal = await sharp(await picture(10, 10, 'png')).png({ palette: true }).toBuffer();
    assert.equal(decodeSmallPng(pal, 1e9), undefined);
    const deep = await sharp(await picture(10, 10, 'png')).png().toColourspace('rgb16').toBuffer();
    assert.equal(decodeSmallPng(deep, 1e9), undefined);
    const broken = Buffer.from(await picture(10, 10, 'png'));
    broken[40] = broken[40]! ^ 0xff; // inside IHDR/IDAT: CRC must catch it
    assert.throws(() => decodeSmallPng(broken, 1e9), /CRC mismatch|corrupt/);
  });

  test('small images: JS crop+bicubic is exact on ramps, flips, and sharp shrinks keep 1 channel', async () => {
    const ramp = Buffer.alloc(28 * 28);
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) ramp[y * 28 + x] = x * 9;
    assert.deepEqual(cropResizeSmall(ramp, 28, 28, 1, { left: 0, top: 0, width: 28, height: 28 }, 28, false), ramp);
    // Cubic (Catmull-Rom) reproduces linear functions: centre-aligned samples of a ramp are exact.
    const crop = { left: 2, top: 3, width: 24, height: 21 };
    const out = cropResizeSmall(ramp, 28, 28, 1, crop, 28, false)!;
    const flipped = cropResizeSmall(ramp, 28, 28, 1, crop, 28, true)!;
    for (let x = 0; x < 28; x++) {
      const fx = crop.left + ((x + 0.5) * crop.width) / 28 - 0.5;
      assert.equal(out[10 * 28 + x], Math.round(9 * fx));
      assert.equal(flipped[10 * 28 + 27 - x], out[10 * 28 + x]);
    }
    assert.equal(cropResizeSmall(ramp, 28, 28, 1, { left: 0, top: 0, width: 28, height: 28 }, 16, false), undefined, 'shrinking goes to sharp');
    const png = encodePng(ramp, 28, 28, 1);
    for (const [size, mode] of [[16, 'eval'], [16, 'train'], [28, 'train'], [32, 'eval']] as const) {
      const px = await transformImage(png, { channels: 1, imageSize: size, mode, key: 'k' });
      assert.equal(px.length, size * size, `${mode} ${size}`);
      const rgb = await transformImage(png, { channels: 3, imageSize: size, mode, key: 'k' });
      assert.equal(rgb.length, size * size * 3);
    }
  });
});
