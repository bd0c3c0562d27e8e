/**
 * One image through sharp: decode (EXIF orientation applied), convert to grey or RGB, then
 *  - eval:  centre crop of side min(H,W)·S/(S+round(S·(1/f−1))) (the recipe's crop-padding
 *           formula, f = 0.875 → 32 px padding at 224), bicubic resize to S×S (upright JPEGs
 *           whose crop is 3x the output or more: resize-then-crop, to let them decode at reduced
 *           scale; see shrinkOnLoadGeometry);
 *  - train: Inception random-resized crop (area 8–100 %, aspect 3/4–4/3 log-uniform, 10 tries,
 *           else the eval centre crop), bicubic resize to S×S, horizontal flip with p = 0.5;
 * and returns raw HWC uint8 pixels. `limitInputPixels` makes sharp refuse decompression bombs
 * before decoding them.
 */
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { uprightJpegSize, uprightPngSize } from './image-header.js';
import { cropResizeSmall, decodeSmallPng, toChannels } from './png-fast.js';
import { rng, seedFrom } from './rng.js';

export const DEFAULT_LIMIT_INPUT_PIXELS = 64 * 1024 * 1024;

// Many small jobs: sharp's own cache only helps repeated identical inputs. Parallelism comes from
// several images in flight (batches, infer workers) and from processes, one image per thread: a
// libvips pool per image on top would oversubscribe the cores. sharp defaults to 1 thread only on
// glibc without jemalloc, so it is set here for every platform.
sharp.cache(false);
sharp.concurrency(1);

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

const isJpeg = (b: Buffer) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/**
 * sharp decodes a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) only when the resize
 * shrinks it by 3x or more (it keeps some of the reduction for its resampling kernel).
 */
export const SHRINK_ON_LOAD_MIN_FACTOR = 3;

/**
 * The eval transform as resize-then-crop, for JPEG crops SHRINK_ON_LOAD_MIN_FACTOR or more times
 * the output side, where decoding at reduced scale saves 1.2x (3x) to 2.7x (12x) of the CPU time.
 * The price is geometry: the whole image is resized to integer W'×H', so the crop lands on whole
 * output pixels and its scale is rounded per axis — up to ±0.5 output pixel of misregistration
 * (a sub-pixel shift; the pixels themselves differ by several grey levels at sharp edges).
 * Undefined where shrink-on-load would not happen: then the exact crop-then-resize is as fast.
 */
export function shrinkOnLoadGeometry(W: number, H: number, crop: Crop, size: number): { width: number; height: number; extract: Crop } | undefined {
  if (Math.min(crop.width, crop.height) < SHRINK_ON_LOAD_MIN_FACTOR * size) return undefined;
  const width = Math.max(size, Math.round((W * size) / crop.width));
  const height = Math.max(size, Math.round((H * size) / crop.height));
  // The crop's own corner, scaled: centring in W'×H' would add up to another half pixel.
  const left = Math.min(width - size, Math.round((crop.left * width) / W));
  const top = Math.min(height - size, Math.round((crop.top * height) / H));
  return { width, height, extract: { left, top, width: size, height: size } };
}

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
  const { width: W, height: H, orientation } = await orientedSize(image, input);
  const { crop, flip } = cropFor(W, H, o);
  // Only the operations this image needs: each extra libvips op costs on every image.
  let p = orientation > 1 ? input.autoOrient() : input;
  const shrink = o.mode === 'eval' && orientation === 1 && isJpeg(image) ? shrinkOnLoadGeometry(W, H, crop, S) : undefined;
  if (shrink) {
    // A pre-resize extract would stop libvips from decoding at reduced scale: resize the whole
    // image, then cut the crop out of it (see shrinkOnLoadGeometry for the price).
    p = p.resize(shrink.width, shrink.height, { fit: 'fill', kernel: 'cubic' }).extract(shrink.extract);
  } else {
    // The exact transform: crop, then resample only the crop's pixels.
    if (!isFull(crop, W, H)) p = p.extract(crop);
    if (crop.width !== S || crop.height !== S) p = p.resize(S, S, { fit: 'fill', kernel: 'cubic' });
  }
  if (flip) p = p.flop();
  // Colour needs no per-image decision: sharp's output is sRGB unless told otherwise (grey, CMYK,
  // 16-bit and ICC-tagged inputs are converted), greyscale() of a grey image changes nothing, and
  // removeAlpha() of an image without alpha is no operation at all. RGBA/grey+alpha inputs must
  // still produce exactly C channels.
  if (o.channels === 1) p = p.greyscale();
  return checked(await p.removeAlpha().raw().toBuffer({ resolveWithObject: true }), S, o.channels);
}

/**
 * Width and height as displayed (EXIF orientation applied) and the orientation. Upright JPEGs and
 * PNGs (the common case) from their headers in JS; anything else from sharp's metadata(), a
 * second libvips call.
 */
async function orientedSize(image: Buffer, input: Sharp): Promise<{ width: number; height: number; orientation: number }> {
  const upright = uprightJpegSize(image) ?? uprightPngSize(image);
  if (upright) return { ...upright, orientation: 1 };
  const meta = await input.metadata();
  if (!meta.width || !meta.height) throw new Error('image has no dimensions');
  const orientation = meta.orientation ?? 1;
  // EXIF orientations 5-8 swap width and height once applied.
  return orientation >= 5 ? { width: meta.height, height: meta.width, orientation } : { width: meta.width, height: meta.height, orientation };
}

/** Guards the batch layout: a wrong-sized buffer would silently shift every later image. */
function checked(r: { data: Buffer; info: OutputInfo }, S: number, channels: number): Buffer {
  const { data, info } = r;
  if (info.width !== S || info.height !== S || info.channels !== channels || data.length !== S * S * channels) {
    throw new Error(`unexpected output ${info.width}x${info.height}x${info.channels}, wanted ${S}x${S}x${channels}`);
  }
  return data;
}
