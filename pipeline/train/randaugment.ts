/**
 * RandAugment on raw uint8 HWC pixel arrays (1 or 3 channels), following the official TF
 * implementation (https://github.com/tensorflow/tpu/blob/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/efficientnet/autoaugment.py,
 * which resnet/resnet_preprocessing.py imports for RandAugment):
 * N layers, each picks one of 16 ops uniformly and applies it at magnitude M on the 0..10 scale
 * (`_MAX_LEVEL = 10`, M may exceed 10); rotate/shear/translate get a random sign; geometric ops use
 * nearest-neighbour sampling and fill uncovered pixels with 128, as TF's wrap/unwrap does.
 *
 * Deviations, on purpose: Contrast uses the true grey-level mean like PIL (TF's version divides the
 * pixel count by 256 instead, a known bug that turns it into a darkening op). Color on a grey image is
 * the identity (the grey image is its own grey version) and Invert inverts the single channel.
 * Working on raw arrays keeps it independent of the tensor backend and cheap for small images.
 */
import type { Sfc32 } from './rng.js';

export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

export const RANDAUGMENT_OPS = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'Color', 'Contrast',
  'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout', 'SolarizeAdd',
] as const;
export type RandAugmentOp = (typeof RANDAUGMENT_OPS)[number];

export interface RandAugmentOptions {
  layers: number;
  magnitude: number;
  /** Translation in pixels at level 10 (official: 100, for 224-px images). */
  translateConst: number;
  /** Cutout half-size in pixels at level 10 (official: 40). */
  cutoutConst: number;
  fill: number;
  /** The ops to choose from (default: all 16, as the official policy). */
  ops?: readonly RandAugmentOp[];
}

const MAX_LEVEL = 10;
const f32 = Math.fround;

function like(img: RawImage): RawImage {
  return { ...img, data: new Uint8Array(img.data.length) };
}

function mapLut(img: RawImage, lutFor: (channel: number) => Uint8Array | undefined): RawImage {
  const out = like(img);
  const { data, channels } = img;
  for (let c = 0; c < channels; c++) {
    const lut = lutFor(c);
    for (let i = c; i < data.length; i += channels) out.data[i] = lut ? lut[data[i]!]! : data[i]!;
  }
  return out;
}

function histogram(img: RawImage, c: number): Uint32Array {
  const h = new Uint32Array(256);
  for (let i = c; i < img.data.length; i += img.channels) h[img.data[i]!]!++;
  return h;
}

/** TF `blend`: image1 + factor*(image2-image1) in float32, truncated; clipped when extrapolating. */
export function blend(image1: Uint8Array, image2: Uint8Array, factor: number): Uint8Array {
  if (factor === 0) return image1.slice();
  if (factor === 1) return image2.slice();
  const out = new Uint8Array(image1.length);
  const fac = f32(factor);
  for (let i = 0; i < out.length; i++) {
    const a = image1[i]!;
    const temp = f32(a + f32(fac * (image2[i]! - a)));
    out[i] = temp <= 0 ? 0 : temp >= 255 ? 255 : Math.trunc(temp);
  }
  return out;
}

/** PIL's "L" conversion: ITU-R 601-2 luma in 16-bit fixed point. Grey images are returned as is. */
export function luma(img: RawImage): Uint8Array {
  if (img.channels === 1) return img.data.slice();
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const r = img.data[p * 3]!, g = img.data[p * 3 + 1]!, b = img.data[p * 3 + 2]!;
    out[p] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
  }
  return out;
}

function broadcastGrey(grey: Uint8Array, channels: number): Uint8Array {
  if (channels === 1) return grey;
  const out = new Uint8Array(grey.length * channels);
  for (let p = 0; p < grey.length; p++) for (let c = 0; c < channels; c++) out[p * channels + c] = grey[p]!;
  return out;
}

export function autoContrast(img: RawImage): RawImage {
  return mapLut(img, (c) => {
    let lo = 255, hi = 0;
    for (let i = c; i < img.data.length; i += img.channels) {
      const v = img.data[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (hi <= lo) return undefined;
    const scale = f32(255 / (hi - lo));
    const offset = f32(-lo * scale);
    const lut = new Uint8Array(256);
    for (let v = 0; v < 256; v++) {
      const x = f32(f32(v * scale) + offset);
      lut[v] = x <= 0 ? 0 : x >= 255 ? 255 : Math.trunc(x);
    }
    return lut;
  });
}

export function equalize(img: RawImage): RawImage {
  return mapLut(img, (c) => {
    const hist = histogram(img, c);
    let last = 0, total = 0;
    for (let v = 0; v < 256; v++) if (hist[v]) { last = hist[v]!; total += hist[v]!; }
    const step = Math.floor((total - last) / 255);
    if (step === 0) return undefined;
    const lut = new Uint8Array(256);
    let n = Math.floor(step / 2);
    for (let v = 0; v < 256; v++) {
      lut[v] = Math.min(255, Math.floor(n / step));
      n += hist[v]!;
    }
    return lut;
  });
}

export function invert(img: RawImage): RawImage {
  const out = like(img);
  for (let i = 0; i < img.data.length; i++) out.data[i] = 255 - img.data[i]!;
  return out;
}

export function posterize(img: RawImage, bits: number): RawImage {
  const shift = 8 - bits;
  const out = like(img);
  for (let i = 0; i < img.data.length; i++) out.data[i] = ((img.data[i]! >> shift) << shift) & 255;
  return out;
}

export function solarize(img: RawImage, threshold: number): RawImage {
  const out = like(img);
  for (let i = 0; i < img.data.length; i++) {
    const v = img.data[i]!;
    out.data[i] = v < threshold ? v : 255 - v;
  }
  return out;
}

export function solarizeAdd(img: RawImage, addition: number, threshold = 128): RawImage {
  const out = like(img);
  for (let i = 0; i < img.data.length; i++) {
    const v = img.data[i]!;
    out.data[i] = v < threshold ? Math.min(255, Math.max(0, v + addition)) : v;
  }
  return out;
}

export function color(img: RawImage, factor: number): RawImage {
  return { ...img, data: blend(broadcastGrey(luma(img), img.channels), img.data, factor) };
}

export function contrast(img: RawImage, factor: number): RawImage {
  const grey = luma(img);
  let sum = 0;
  for (const v of grey) sum += v;
  const mean = Math.trunc(sum / grey.length + 0.5);
  return { ...img, data: blend(new Uint8Array(img.data.length).fill(mean), img.data, factor) };
}

export function brightness(img: RawImage, factor: number): RawImage {
  return { ...img, data: blend(new Uint8Array(img.data.length), img.data, factor) };
}

/** TF sharpness: 3x3 smoothing kernel [[1,1,1],[1,5,1],[1,1,1]]/13 inside, border kept, then blend. */
export function sharpness(img: RawImage, factor: number): RawImage {
  const { width: w, height: h, channels: ch, data } = img;
  const smooth = data.slice();
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let c = 0; c < ch; c++) {
        let s = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) s += data[((y + dy) * w + (x + dx)) * ch + c]! * (dx === 0 && dy === 0 ? 5 : 1);
        }
        smooth[(y * w + x) * ch + c] = Math.min(255, Math.trunc(f32(s / 13)));
      }
    }
  }
  return { ...img, data: blend(smooth, data, factor) };
}

/**
 * TF contrib `image.transform` with a projective matrix [a0,a1,a2,b0,b1,b2] (c0=c1=0): output pixel
 * (x,y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2), nearest neighbour (round half away from
 * zero, like std::round), `fill` outside.
 */
export function affine(img: RawImage, m: [number, number, number, number, number, number], fill: number): RawImage {
  const { width: w, height: h, channels: ch, data } = img;
  const out = like(img);
  const [a0, a1, a2, b0, b1, b2] = m;
  const rnd = (v: number) => Math.sign(v) * Math.round(Math.abs(v));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = rnd(f32(a0 * x + a1 * y + a2));
      const sy = rnd(f32(b0 * x + b1 * y + b2));
      const o = (y * w + x) * ch;
      if (sx >= 0 && sx < w && sy >= 0 && sy < h) {
        const i = (sy * w + sx) * ch;
        for (let c = 0; c < ch; c++) out.data[o + c] = data[i + c]!;
      } else {
        for (let c = 0; c < ch; c++) out.data[o + c] = fill;
      }
    }
  }
  return out;
}

/** Counter-clockwise rotation about the image centre (TF contrib `angles_to_projective_transforms`). */
export function rotate(img: RawImage, degrees: number, fill: number): RawImage {
  const a = (degrees * Math.PI) / 180;
  const cos = Math.cos(a), sin = Math.sin(a);
  const w1 = img.width - 1, h1 = img.height - 1;
  const xOff = (w1 - (cos * w1 - sin * h1)) / 2;
  const yOff = (h1 - (sin * w1 + cos * h1)) / 2;
  return affine(img, [cos, -sin, xOff, sin, cos, yOff], fill);
}

export const shearX = (img: RawImage, level: number, fill: number) => affine(img, [1, level, 0, 0, 1, 0], fill);
export const shearY = (img: RawImage, level: number, fill: number) => affine(img, [1, 0, 0, level, 1, 0], fill);
/** TF translate_x(image, pixels) = transform by [-pixels, 0]: content moves left by `pixels`. */
export const translateX = (img: RawImage, pixels: number, fill: number) => affine(img, [1, 0, pixels, 0, 1, 0], fill);
export const translateY = (img: RawImage, pixels: number, fill: number) => affine(img, [1, 0, 0, 0, 1, pixels], fill);

/** Square of side up to 2*pad centred at (cy, cx), clipped to the image, filled with `fill`. */
export function cutout(img: RawImage, pad: number, cy: number, cx: number, fill: number): RawImage {
  const { width: w, height: h, channels: ch } = img;
  const out = { ...img, data: img.data.slice() };
  const y0 = Math.max(0, cy - pad), y1 = Math.min(h, cy + pad);
  const x0 = Math.max(0, cx - pad), x1 = Math.min(w, cx + pad);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) for (let c = 0; c < ch; c++) out.data[(y * w + x) * ch + c] = fill;
  return out;
}

/** Applies one op at magnitude `m` exactly as RandAugment would (random sign/centre from `rng`). */
export function applyOp(op: RandAugmentOp, img: RawImage, m: number, rng: Sfc32, o: Omit<RandAugmentOptions, 'layers' | 'magnitude'>): RawImage {
  const level = m / MAX_LEVEL;
  const sign = () => (rng.next() < 0.5 ? -1 : 1);
  const enhance = level * 1.8 + 0.1;
  switch (op) {
    case 'AutoContrast': return autoContrast(img);
    case 'Equalize': return equalize(img);
    case 'Invert': return invert(img);
    case 'Rotate': return rotate(img, sign() * level * 30, o.fill);
    case 'Posterize': return posterize(img, Math.trunc(level * 4));
    case 'Solarize': return solarize(img, Math.trunc(level * 256));
    case 'SolarizeAdd': return solarizeAdd(img, Math.trunc(level * 110));
    case 'Color': return color(img, enhance);
    case 'Contrast': return contrast(img, enhance);
    case 'Brightness': return brightness(img, enhance);
    case 'Sharpness': return sharpness(img, enhance);
    case 'ShearX': return shearX(img, sign() * level * 0.3, o.fill);
    case 'ShearY': return shearY(img, sign() * level * 0.3, o.fill);
    case 'TranslateX': return translateX(img, sign() * level * o.translateConst, o.fill);
    case 'TranslateY': return translateY(img, sign() * level * o.translateConst, o.fill);
    case 'Cutout': {
      const cy = rng.int(img.height), cx = rng.int(img.width);
      return cutout(img, Math.trunc(level * o.cutoutConst), cy, cx, o.fill);
    }
  }
}

/**
 * Full RandAugment: `layers` ops, each chosen uniformly among `opts.ops` (default the 16; repeats
 * allowed). `onOp` sees each op chosen, in order (tests check the choice through it).
 */
export function randAugment(img: RawImage, opts: RandAugmentOptions, rng: Sfc32, onOp?: (op: RandAugmentOp) => void): RawImage {
  const ops = opts.ops ?? RANDAUGMENT_OPS;
  let out = img;
  for (let l = 0; l < opts.layers; l++) {
    const op = ops[rng.int(ops.length)]!;
    onOp?.(op);
    out = applyOp(op, out, opts.magnitude, rng, opts);
  }
  return out;
}
