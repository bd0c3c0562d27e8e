/**
 * One image through sharp: decode (EXIF orientation applied), convert to grey or RGB, then
 *  - eval:  centre crop of side min(H,W)·S/(S+round(S·(1/f−1))) (the recipe's crop-padding
 *           formula, f = 0.875 → 32 px padding at 224), bicubic resize to S×S (when shrinking
 *           2x or more: shorter side to S+pad, then centre S×S — same geometry, lets JPEGs
 *           decode at reduced scale);
 *  - train: Inception random-resized crop (area 8–100 %, aspect 3/4–4/3 log-uniform, 10 tries,
 *           else the eval centre crop), bicubic resize to S×S, horizontal flip with p = 0.5;
 * and returns raw HWC uint8 pixels. `limitInputPixels` makes sharp refuse decompression bombs
 * before decoding them.
 */
import sharp, { type OutputInfo } from 'sharp';
import { cropResizeSmall, decodeSmallPng, toChannels } from './png-fast.js';
import { rng, seedFrom } from './rng.js';

export const DEFAULT_LIMIT_INPUT_PIXELS = 64 * 1024 * 1024;

// Many small jobs: sharp's own cache only helps repeated identical inputs, and its thread pool
// would oversubscribe the cores we already fill with parallel jobs.
sharp.cache(false);

export interface Crop {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The recipe's eval centre crop (square) for an oriented W×H image and output side S. */
export function centerCrop(width: number, height: number, size: number, fraction = 0.875): Crop {
  const side = fraction >= 1 ? Math.min(width, height) : Math.max(1, Math.floor((size / (size + Math.round(size * (1 / fraction - 1)))) * Math.min(width, height)));
  return { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), width: side, height: side };
}

/** Inception-style random crop (TF sample_distorted_bounding_box semantics, simplified). */
export function inceptionCrop(width: number, height: number, random: () => number, size: number, fraction = 0.875): Crop {
  const area = width * height;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (0.08 + random() * (1 - 0.08));
    const logRatio = Math.log(3 / 4) + random() * (Math.log(4 / 3) - Math.log(3 / 4));
    const ratio = Math.exp(logRatio);
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w >= 1 && h >= 1 && w <= width && h <= height) {
      const left = Math.floor(random() * (width - w + 1));
      const top = Math.floor(random() * (height - h + 1));
      return { left, top, width: w, height: h };
    }
  }
  return centerCrop(width, height, size, fraction);
}

export interface TransformOptions {
  channels: 1 | 3;
  imageSize: number;
  mode: 'eval' | 'train';
  /** Train mode: per-sample randomness is derived from (seed, epoch, key). */
  seed?: number;
  epoch?: number;
  key?: string;
  cropFraction?: number;
  limitInputPixels?: number;
}

function cropFor(W: number, H: number, o: TransformOptions): { crop: Crop; flip: boolean } {
  if (o.mode === 'train') {
    const random = rng(seedFrom('aug', o.seed ?? 0, o.epoch ?? 0, o.key ?? ''));
    const crop = inceptionCrop(W, H, random, o.imageSize, o.cropFraction);
    return { crop, flip: random() < 0.5 };
  }
  return { crop: centerCrop(W, H, o.imageSize, o.cropFraction), flip: false };
}

const isFull = (c: Crop, W: number, H: number) => c.left === 0 && c.top === 0 && c.width === W && c.height === H;

/** Decodes and transforms one encoded image into S×S×C uint8 pixels. Throws on bad input. */
export async function transformImage(image: Buffer, o: TransformOptions): Promise<Buffer> {
  const limit = o.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  const S = o.imageSize;
  if (image.length === 0) throw new Error('empty image (0 bytes)');
  // Small plain PNGs: decode without sharp (see png-fast.ts); sharp only for the resample step.
  const small = decodeSmallPng(image, limit);
  const px = small && toChannels(small, o.channels);
  if (small && px) {
    const { crop, flip } = cropFor(small.width, small.height, o);
    if (isFull(crop, small.width, small.height) && small.width === S && small.height === S && !flip) return px;
    // Upscaling/same size (FMNIST-sized inputs): crop, bicubic and flip in JS, microseconds.
    const js = cropResizeSmall(px, small.width, small.height, o.channels, crop, S, flip);
    if (js) return js;
    // Shrinking: sharp, for its anti-aliased reduce. Raw 1-channel input would come back as
    // sRGB (3 channels) unless told to stay grey.
    let p = sharp(px, { raw: { width: small.width, height: small.height, channels: o.channels } });
    if (!isFull(crop, small.width, small.height)) p = p.extract(crop);
    p = p.resize(S, S, { fit: 'fill', kernel: 'cubic' });
    if (flip) p = p.flop();
    if (o.channels === 1) p = p.toColourspace('b-w');
    return checked(await p.raw().toBuffer({ resolveWithObject: true }), S, o.channels);
  }
  // failOn 'error': a truncated JPEG is a failure, not a half-grey picture fed to training.
  const input = sharp(image, { limitInputPixels: limit, failOn: 'error' });
  const meta = await input.metadata();
  if (!meta.width || !meta.height) throw new Error('image has no dimensions');
  // EXIF orientations 5-8 swap width and height once applied.
  const swap = (meta.orientation ?? 1) >= 5;
  const W = swap ? meta.height : meta.width;
  const H = swap ? meta.width : meta.height;
  const { crop, flip } = cropFor(W, H, o);
  // Only the operations this image needs: each extra libvips op costs on every image.
  let p = (meta.orientation ?? 1) > 1 ? input.autoOrient() : input;
  if (o.mode === 'eval' && crop.width >= 2 * S) {
    // Shrinking by 2x or more: same geometry as crop-then-resize, done as resize-then-crop
    // (shorter side to S·side/crop, then the centre S×S), because a pre-resize extract stops
    // libvips from decoding JPEGs at a reduced scale (shrink-on-load), the big win here.
    const scale = S / crop.width;
    const rw = Math.max(S, Math.round(W * scale));
    const rh = Math.max(S, Math.round(H * scale));
    p = p.resize(rw, rh, { fit: 'fill', kernel: 'cubic' }).extract({ left: Math.floor((rw - S) / 2), top: Math.floor((rh - S) / 2), width: S, height: S });
  } else {
    // Smaller factors: cropping first means fewer pixels to resample (measured faster).
    if (!isFull(crop, W, H)) p = p.extract(crop);
    if (crop.width !== S || crop.height !== S) p = p.resize(S, S, { fit: 'fill', kernel: 'cubic' });
  }
  if (flip) p = p.flop();
  const inChannels = (meta.channels ?? 3) - (meta.hasAlpha ? 1 : 0);
  if (o.channels === 1) {
    if (inChannels !== 1) p = p.greyscale();
  } else if (inChannels !== 3 || (meta.space && meta.space !== 'srgb')) {
    p = p.toColourspace('srgb');
  }
  // removeAlpha: RGBA/grey+alpha inputs must still produce exactly C channels.
  if (meta.hasAlpha) p = p.removeAlpha();
  return checked(await p.raw().toBuffer({ resolveWithObject: true }), S, o.channels);
}

/** Guards the batch layout: a wrong-sized buffer would silently shift every later image. */
function checked(r: { data: Buffer; info: OutputInfo }, S: number, channels: number): Buffer {
  const { data, info } = r;
  if (info.width !== S || info.height !== S || info.channels !== channels || data.length !== S * S * channels) {
    throw new Error(`unexpected output ${info.width}x${info.height}x${info.channels}, wanted ${S}x${S}x${channels}`);
  }
  return data;
}
