/**
 * Preprocessing: the recipe's eval crop formula, EXIF orientation, seeded train augmentation,
 * batches (shape, labels, skipped samples), the small-PNG fast path agreeing with sharp, the JS
 * header reader agreeing with sharp's metadata, and the eval transform against the exact
 * crop-then-resize (equal, or within the stated tolerance where JPEGs decode at reduced scale).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { batches } from '../../pipeline/data/batches.js';
import { cropResizeSmall, decodeSmallPng } from '../../pipeline/data/png-fast.js';
import { encodePng } from '../../pipeline/data/png-encode.js';
import { uprightJpegSize, uprightPngSize } from '../../pipeline/data/image-header.js';
import { centerCrop, shrinkOnLoadGeometry, SHRINK_ON_LOAD_MIN_FACTOR, transformImage } from '../../pipeline/data/preprocess.js';
import type { Sample, SkippedSample } from '../../pipeline/data/types.js';
import { normaliseInto } from '../../stages/infer/shard-batches.js';
import { bombPng, photo, picture } from './fixtures.js';

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

  test('small-PNG fast path: image data truncated, longer than the header says or failing its Adler-32 is an error, under valid chunk CRCs', () => {
    const w = 5;
    const h = 4;
    const rows = Buffer.alloc(h * (w + 1)); // grey rows, each with filter byte 0 ("none")
    for (let i = 0; i < rows.length; i++) rows[i] = i % (w + 1) === 0 ? 0 : (i * 29) & 0xff;
    const chunk = (type: string, body: Buffer) => {
      const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(typed));
      return Buffer.concat([len, typed, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr[8] = 8; // bit depth; colour type 0 (grey), no interlace
    const png = (idat: Buffer) => Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
    const good = deflateSync(rows);
    assert.deepEqual([...decodeSmallPng(png(good), 1e9)!.data], [...rows].filter((_, i) => i % (w + 1) !== 0));
    const badAdler = Buffer.from(good);
    badAdler[badAdler.length - 1]! ^= 1;
    assert.throws(() => decodeSmallPng(png(badAdler), 1e9), /Adler-32 checksum mismatch/);
    assert.throws(() => decodeSmallPng(png(good.subarray(0, good.length - 6)), 1e9), /image data is corrupt/);
    assert.throws(() => decodeSmallPng(png(deflateSync(Buffer.concat([rows, Buffer.alloc(3)]))), 1e9), /longer than the 24 bytes its header gives/);
    assert.throws(() => decodeSmallPng(png(deflateSync(rows.subarray(0, rows.length - 1))), 1e9), /has 23 bytes, expected 24/);
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

  test('infer input normalisation: (v - mean) / std per channel as float32, bit for bit, at an offset', () => {
    for (const channels of [1, 3] as const) {
      const p = { imageSize: 16, channels, cropFraction: 0.875, mean: [123.675, 116.28, 103.53].slice(0, channels), std: [58.395, 57.12, 57.375].slice(0, channels) };
      const px = Buffer.from(Array.from({ length: 16 * 16 * channels }, (_, i) => (i * 37 + (i >> 4)) & 0xff));
      const out = new Float32Array(px.length + 5).fill(-1);
      normaliseInto(px, p, out, 5);
      assert.deepEqual([...out.subarray(0, 5)], [-1, -1, -1, -1, -1]);
      for (let i = 0; i < px.length; i++) assert.equal(out[5 + i], Math.fround((px[i]! - p.mean[i % channels]!) / p.std[i % channels]!), `x${channels} [${i}]`);
    }
  });

  test('JS header reader: sizes of upright JPEGs/PNGs agree with sharp; anything else is left to sharp', async () => {
    const base = () => sharp(photo(97, 61), { raw: { width: 97, height: 61, channels: 3 } });
    const upright: [string, Buffer][] = [
      ['baseline 4:2:0', await base().jpeg().toBuffer()],
      ['progressive 4:4:4', await base().jpeg({ progressive: true, chromaSubsampling: '4:4:4' }).toBuffer()],
      ['grey', await base().toColourspace('b-w').jpeg().toBuffer()],
      ['CMYK', await base().toColourspace('cmyk').jpeg().toBuffer()],
      ['EXIF orientation 1', await base().jpeg().withMetadata({ orientation: 1 }).toBuffer()],
      ['ICC profile', await base().jpeg().withIccProfile('p3').toBuffer()],
      ['png rgb', await base().png().toBuffer()],
      ['png rgba', await base().ensureAlpha(0.5).png().toBuffer()],
      ['png 16-bit', await base().toColourspace('rgb16').png().toBuffer()],
      ['png palette', await base().png({ palette: true }).toBuffer()],
    ];
    for (const [name, b] of upright) {
      const m = await sharp(b).metadata();
      assert.deepEqual(uprightJpegSize(b) ?? uprightPngSize(b), { width: m.width, height: m.height }, name);
    }
    const rotated = await base().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const exif = exifOrientationAt(rotated);
    const patched = (value: number, type = 3) => {
      const b = Buffer.from(rotated);
      b.writeUInt16LE(type, exif.entry + 2);
      b.writeUInt16LE(value, exif.entry + 8);
      return b;
    };
    assert.deepEqual(uprightJpegSize(patched(1)), { width: 97, height: 61 }, 'the patch itself is read');
    const app1 = rotated.subarray(exif.segment, exif.segment + 2 + rotated.readUInt16BE(exif.segment + 2));
    const unsure: [string, Buffer][] = [
      ['EXIF orientation 6', rotated],
      ['orientation 9 (invalid)', patched(9)],
      ['orientation stored as LONG', patched(1, 4)],
      ['two EXIF blocks', Buffer.concat([rotated.subarray(0, exif.segment), app1, patched(1).subarray(exif.segment)])],
      ['header cut short', (await base().jpeg().toBuffer()).subarray(0, 120)],
      ['png with eXIf', await base().png().withMetadata({ orientation: 1 }).toBuffer()],
      ['webp', await base().webp().toBuffer()],
      ['not an image', Buffer.from('GIF89a but not really')],
    ];
    for (const [name, b] of unsure) assert.equal(uprightJpegSize(b) ?? uprightPngSize(b), undefined, name);
    // Unsure inputs still come out right, through sharp's metadata.
    const viaSharp = await transformImage(rotated, { channels: 3, imageSize: 16, mode: 'eval' });
    assert.deepEqual(viaSharp, await exactEval(rotated, 16, 3));
  });

  test('eval transform equals the exact decode, orient, crop, bicubic resize (JPEG/PNG/WebP, grey/RGB/CMYK/alpha, EXIF 1-8)', async () => {
    const cases: [string, Buffer, number][] = [];
    for (const [w, h, S] of [[640, 480, 224], [333, 500, 160], [300, 200, 64], [1024, 768, 224]] as const) {
      const base = () => sharp(photo(w, h, w), { raw: { width: w, height: h, channels: 3 } });
      // 1024x768 -> 224 is a 3x crop: exact for everything but upright JPEGs (tested below).
      if (w !== 1024) {
        cases.push([`jpeg ${w}x${h}`, await base().jpeg({ quality: 90 }).toBuffer(), S]);
        cases.push([`jpeg grey ${w}x${h}`, await base().toColourspace('b-w').jpeg().toBuffer(), S]);
      }
      for (let orientation = 2; orientation <= 8; orientation++) cases.push([`jpeg EXIF ${orientation} ${w}x${h}`, await base().jpeg().withMetadata({ orientation }).toBuffer(), S]);
      cases.push([`png rgba ${w}x${h}`, await base().ensureAlpha(0.6).png().toBuffer(), S]);
      cases.push([`png grey+alpha ${w}x${h}`, await base().toColourspace('b-w').ensureAlpha(0.6).png().toBuffer(), S]);
      cases.push([`png 16-bit ${w}x${h}`, await base().toColourspace('rgb16').png().toBuffer(), S]);
      cases.push([`webp ${w}x${h}`, await base().webp().toBuffer(), S]);
    }
    cases.push(['jpeg CMYK', await sharp(photo(400, 300), { raw: { width: 400, height: 300, channels: 3 } }).toColourspace('cmyk').jpeg().toBuffer(), 224]);
    for (const [name, b, S] of cases) {
      for (const channels of [1, 3] as const) {
        const got = await transformImage(b, { channels, imageSize: S, mode: 'eval' });
        const exact = await exactEval(b, S, channels);
        if (decodeSmallPng(b, 1e9)?.channels === 2 || decodeSmallPng(b, 1e9)?.channels === 4) {
          // The small-PNG fast path drops alpha before resampling; sharp resamples premultiplied.
          // With translucent pixels the two differ by rounding: at most 3 levels.
          assert.ok(got.every((v, i) => Math.abs(v - exact[i]!) <= 3), `${name} -> ${S} x${channels}`);
        } else {
          assert.ok(got.equals(exact), `${name} -> ${S} x${channels}`);
        }
      }
    }
    // A grey JPEG for a 1-channel model: its pixels, and the same as the RGB output's first band.
    const grey = cases.find(([name]) => name === 'jpeg grey 640x480')![1];
    const one = await transformImage(grey, { channels: 1, imageSize: 224, mode: 'eval' });
    const three = await transformImage(grey, { channels: 3, imageSize: 224, mode: 'eval' });
    assert.ok(one.every((v, i) => v === three[i * 3] && v === three[i * 3 + 1]));
  });

  test('reduced-scale JPEG decode (upright, crop >= 3x output): within 0.5 px geometry and the stated pixel tolerance', async () => {
    // Geometry, over many sizes: the crop's corner lands within half an output pixel of where the
    // exact transform puts it, and the per-axis scale drifts by at most half a pixel over the crop.
    for (let i = 0; i < 2000; i++) {
      const W = 700 + ((i * 7919) % 5000);
      const H = 500 + ((i * 104729) % 4000);
      const S = [64, 160, 224, 320][i % 4]!;
      const crop = centerCrop(W, H, S);
      const g = shrinkOnLoadGeometry(W, H, crop, S);
      if (crop.width < SHRINK_ON_LOAD_MIN_FACTOR * S) {
        assert.equal(g, undefined);
        continue;
      }
      assert.ok(g, `${W}x${H} -> ${S}`);
      const sx = g.width / W;
      const sy = g.height / H;
      assert.ok(Math.abs(g.extract.left - crop.left * sx) <= 0.5 && Math.abs(g.extract.top - crop.top * sy) <= 0.5, `corner ${W}x${H} -> ${S}`);
      assert.ok(Math.abs(crop.width * sx - S) <= 0.5 && Math.abs(crop.height * sy - S) <= 0.5, `scale ${W}x${H} -> ${S}`);
    }
    // Pixels, on smooth photo-like content: mean |diff| <= 2 and max <= 8 grey levels (measured
    // 0.45-1.5 and 3-6). On detailed photos a sub-pixel shift moves edges: several levels on average.
    for (const [w, h, S] of [[1024, 768, 224], [2000, 1500, 224], [1000, 700, 64], [3000, 2000, 160]] as const) {
      const b = await sharp(smoothPhoto(w, h), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
      const got = await transformImage(b, { channels: 3, imageSize: S, mode: 'eval' });
      const exact = await exactEval(b, S, 3);
      let sum = 0;
      let max = 0;
      for (let i = 0; i < got.length; i++) {
        const d = Math.abs(got[i]! - exact[i]!);
        sum += d;
        max = Math.max(max, d);
      }
      assert.ok(sum / got.length <= 2 && max <= 8, `${w}x${h} -> ${S}: mean ${sum / got.length}, max ${max}`);
      assert.ok(!got.equals(exact), 'this path is not the exact one (else the test shows nothing)');
    }
  });
});

/** The eval transform by definition, from sharp's own metadata: orient, centre crop, bicubic. */
async function exactEval(image: Buffer, S: number, channels: 1 | 3): Promise<Buffer> {
  const m = await sharp(image).metadata();
  const swap = (m.orientation ?? 1) >= 5;
  const crop = centerCrop(swap ? m.height! : m.width!, swap ? m.width! : m.height!, S);
  let p = sharp(image).autoOrient().extract(crop).resize(S, S, { fit: 'fill', kernel: 'cubic' });
  if (channels === 1) p = p.greyscale();
  return p.removeAlpha().raw().toBuffer();
}

/** Where a JPEG's EXIF block (APP1 marker) and its Orientation IFD0 entry start (big-endian TIFF, as sharp writes it). */
function exifOrientationAt(jpeg: Buffer): { segment: number; entry: number } {
  let pos = 2;
  while (jpeg[pos] === 0xff && jpeg[pos + 1] !== 0xe1) pos += 2 + jpeg.readUInt16BE(pos + 2);
  assert.equal(jpeg.toString('latin1', pos + 4, pos + 8), 'Exif');
  const tiff = pos + 10;
  assert.equal(jpeg.toString('latin1', tiff, tiff + 2), 'II', 'sharp writes little-endian EXIF');
  const ifd = tiff + jpeg.readUInt32LE(tiff + 4);
  for (let i = 0; i < jpeg.readUInt16LE(ifd); i++) {
    if (jpeg.readUInt16LE(ifd + 2 + i * 12) === 0x0112) return { segment: pos, entry: ifd + 2 + i * 12 };
  }
  throw new Error('no Orientation entry');
}

/** Low-frequency colour fields: what a photo looks like at the output's scale, minus sharp edges. */
function smoothPhoto(w: number, h: number): Buffer {
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = x / w;
      const v = y / h;
      const i = (y * w + x) * 3;
      raw[i] = 128 + 100 * Math.sin(6.1 * u + 2.3 * v);
      raw[i + 1] = 128 + 90 * Math.cos(4.7 * v - 3.1 * u * u);
      raw[i + 2] = 60 + 150 * u * v;
    }
  }
  return raw;
}
