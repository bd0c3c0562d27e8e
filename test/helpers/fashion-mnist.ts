/**
 * Real Fashion-MNIST for tests and benches, read straight from the IDX gzip files where the
 * `fashion-mnist:` import finds them (SELFTRAIN_FASHION_MNIST_DIR, Debian's dataset-fashion-mnist,
 * the download cache) — no dataset code of the project involved, so tests of that code do not
 * depend on it. Tests that use it declare `{ skip: needs('fashion-mnist') }` (./extras.ts) and read
 * inside the test, never at module load, so a machine without the files skips them cleanly.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { locateFashionMnist } from '../../stages/import/fashion-mnist.js';
import { EXTRAS } from './extras.js';

export type Split = 'train' | 't10k';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** The directory holding the four files; throws saying how to get them. */
export function fashionMnistDir(): string {
  const dir = locateFashionMnist();
  if (!dir) throw new Error(`Fashion-MNIST not found: ${EXTRAS['fashion-mnist'].install}`);
  return dir;
}

/** Raw IDX content: images count×rows×cols uint8, labels count uint8. */
export interface FashionMnist {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

const cache = new Map<Split, FashionMnist>();

function readAll(split: Split): FashionMnist {
  let fm = cache.get(split);
  if (fm) return fm;
  const dir = fashionMnistDir();
  const read = (base: string) => {
    const gz = path.join(dir, `${base}.gz`);
    return existsSync(gz) ? gunzipSync(readFileSync(gz)) : readFileSync(path.join(dir, base));
  };
  const img = read(`${split}-images-idx3-ubyte`);
  const lab = read(`${split}-labels-idx1-ubyte`);
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049) throw new Error(`${dir}/${split}-*: not IDX image/label files`);
  const count = img.readUInt32BE(4);
  const rows = img.readUInt32BE(8);
  const cols = img.readUInt32BE(12);
  fm = { images: new Uint8Array(img.buffer, img.byteOffset + 16, count * rows * cols), labels: new Uint8Array(lab.buffer, lab.byteOffset + 8, count), count, rows, cols };
  cache.set(split, fm);
  return fm;
}

/** The first `limit` images and labels of a split (all by default). */
export function readFashionMnist(split: Split, limit = Infinity): FashionMnist {
  const all = readAll(split);
  const count = Math.min(all.count, limit);
  const px = all.rows * all.cols;
  return { images: all.images.subarray(0, count * px), labels: all.labels.subarray(0, count), count, rows: all.rows, cols: all.cols };
}

/** The first n images as float32 NHWC [n,28,28,1] scaled to [0,1], labels as int32 (model/backend tests). */
export function fashionMnistFloats(split: Split, n: number): { images: Float32Array; labels: Int32Array; n: number; size: number } {
  const fm = readFashionMnist(split, n);
  if (fm.count < n) throw new Error(`Fashion-MNIST ${split}: asked for ${n} images, the file holds ${fm.count}`);
  const images = new Float32Array(fm.images.length);
  for (let i = 0; i < images.length; i++) images[i] = fm.images[i]! / 255;
  return { images, labels: Int32Array.from(fm.labels), n, size: fm.rows };
}
