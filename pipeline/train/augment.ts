/**
 * The training-time input path on raw uint8 pixels: a crop — Inception-style random-resized crop
 * (area and aspect ranges from the manifest, 10 attempts, else the whole image) with bilinear resize
 * back to S×S as the released ResNet-RS preprocessing (tensorflow/tpu resnet_preprocessing.py), or
 * pad-and-random-window (the CIFAR-style shift without rescaling, for small images) — then random
 * horizontal flip, then RandAugment, then optional random erasing (Zhong et al. 2020).
 * All randomness comes from the per-sample generator passed in, so a batch is a pure function of
 * (seed, step, position); with the defaults (inception crop, no erasing) the draws are the same as
 * before the pad and erasing options existed.
 */
import { PAD_DEFAULTS, type TrainConfig } from '../manifest/sections/train.js';
import { RANDAUGMENT_OPS, randAugment, type RandAugmentOptions, type RawImage } from './randaugment.js';
import type { Sfc32 } from './rng.js';

export interface CropBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function randomCrop(width: number, height: number, minArea: number, aspect: [number, number], rng: Sfc32): CropBox {
  const area = width * height;
  const [lo, hi] = [Math.log(aspect[0]), Math.log(aspect[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(minArea, 1);
    const ratio = Math.exp(rng.uniform(lo, hi));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w >= 1 && h >= 1 && w <= width && h <= height) {
      return { x: rng.int(width - w + 1), y: rng.int(height - h + 1), w, h };
    }
  }
  return { x: 0, y: 0, w: width, h: height };
}

/** Bilinear resize of a crop to S×S (half-pixel centres, like tf.image.resize / sharp). Optional flip. */
export function cropResize(img: RawImage, box: CropBox, size: number, flip: boolean): RawImage {
  const { channels: ch, width: W, data } = img;
  const out = new Uint8Array(size * size * ch);
  const sx = box.w / size, sy = box.h / size;
  for (let oy = 0; oy < size; oy++) {
    const fy = Math.min(Math.max((oy + 0.5) * sy - 0.5, 0), box.h - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, box.h - 1), wy = fy - y0;
    const row0 = (box.y + y0) * W + box.x, row1 = (box.y + y1) * W + box.x;
    for (let ox = 0; ox < size; ox++) {
      const fx = Math.min(Math.max((ox + 0.5) * sx - 0.5, 0), box.w - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, box.w - 1), wx = fx - x0;
      const o = (oy * size + (flip ? size - 1 - ox : ox)) * ch;
      const a = (row0 + x0) * ch, b = (row0 + x1) * ch, c = (row1 + x0) * ch, d = (row1 + x1) * ch;
      for (let k = 0; k < ch; k++) {
        const top = data[a + k]! + wx * (data[b + k]! - data[a + k]!);
        const bottom = data[c + k]! + wx * (data[d + k]! - data[c + k]!);
        out[o + k] = Math.round(top + wy * (bottom - top));
      }
    }
  }
  return { data: out, width: size, height: size, channels: ch };
}

export function randAugmentOptions(cfg: TrainConfig, modelMagnitude: number, imageSize: number): RandAugmentOptions {
  const ra = cfg.randAugment;
  const scale = ra.scaleWithImage ? imageSize / 224 : 1;
  return {
    layers: ra.enabled ? ra.layers : 0,
    magnitude: ra.magnitude ?? modelMagnitude,
    translateConst: ra.translateConst * scale,
    cutoutConst: ra.cutoutConst * scale,
    fill: ra.fill,
    ...(ra.exclude?.length ? { ops: RANDAUGMENT_OPS.filter((op) => !ra.exclude!.includes(op)) } : {}),
  };
}

/**
 * The S×S window at offset (dx, dy) of the image padded by `pad` pixels of `fill` on every side,
 * optionally mirrored: output (x, y) = input (x + dx − pad, y + dy − pad).
 */
export function padCrop(img: RawImage, pad: number, dx: number, dy: number, flip: boolean, fill: number): RawImage {
  const { channels: ch, width: W, height: H, data } = img;
  const out = new Uint8Array(data.length).fill(fill);
  for (let y = 0; y < H; y++) {
    const sy = y + dy - pad;
    if (sy < 0 || sy >= H) continue;
    for (let x = 0; x < W; x++) {
      const sx = x + dx - pad;
      if (sx < 0 || sx >= W) continue;
      const o = (y * W + (flip ? W - 1 - x : x)) * ch, i = (sy * W + sx) * ch;
      for (let k = 0; k < ch; k++) out[o + k] = data[i + k]!;
    }
  }
  return { data: out, width: W, height: H, channels: ch };
}

/** One random rectangle of area/aspect in the configured ranges set to `fill` (10 tries, else none). */
export function randomErase(img: RawImage, e: NonNullable<TrainConfig['erasing']>, rng: Sfc32): RawImage {
  const { width: W, height: H, channels: ch } = img;
  const [lo, hi] = [Math.log(e.aspect[0]), Math.log(e.aspect[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = W * H * rng.uniform(e.area[0], e.area[1]);
    const ratio = Math.exp(rng.uniform(lo, hi));
    const h = Math.round(Math.sqrt(area * ratio)), w = Math.round(Math.sqrt(area / ratio));
    if (h < 1 || w < 1 || h >= H || w >= W) continue;
    const y0 = rng.int(H - h + 1), x0 = rng.int(W - w + 1);
    const out = img.data.slice();
    for (let y = y0; y < y0 + h; y++) out.fill(e.fill, (y * W + x0) * ch, (y * W + x0 + w) * ch);
    return { ...img, data: out };
  }
  return img;
}

/** Crop + flip + RandAugment (+ random erasing) of one S×S image. */
export function augmentImage(img: RawImage, cfg: TrainConfig, ra: RandAugmentOptions, rng: Sfc32): RawImage {
  let out = img;
  const { crop, erasing } = cfg;
  if (crop.type === 'pad') {
    const pad = crop.padding ?? PAD_DEFAULTS.padding;
    const dx = rng.int(2 * pad + 1), dy = rng.int(2 * pad + 1);
    const flip = crop.flip && rng.next() < 0.5;
    if (dx !== pad || dy !== pad || flip) out = padCrop(img, pad, dx, dy, flip, crop.padFill ?? PAD_DEFAULTS.fill);
  } else {
    const box = crop.type === 'inception' ? randomCrop(img.width, img.height, crop.minArea, crop.aspect, rng) : { x: 0, y: 0, w: img.width, h: img.height };
    const flip = crop.flip && rng.next() < 0.5;
    if (box.w !== img.width || box.h !== img.height || flip) out = cropResize(img, box, img.width, flip);
  }
  if (ra.layers > 0) out = randAugment(out, ra, rng);
  if (erasing && erasing.probability > 0 && rng.next() < erasing.probability) out = randomErase(out, erasing, rng);
  return out;
}
