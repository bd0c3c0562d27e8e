/**
 * Reads the first `count` Fashion-MNIST images and labels straight from the Debian package's IDX
 * gzip files (no dataset code of the project involved, so backend tests do not depend on it).
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export const fashionMnistDir = '/usr/share/datasets/fashion-mnist';

export function readFashionMnist(count: number, split: 'train' | 't10k' = 'train'): { images: Float32Array; labels: Int32Array; size: number } {
  const images = gunzipSync(readFileSync(`${fashionMnistDir}/${split}-images-idx3-ubyte.gz`));
  const labels = gunzipSync(readFileSync(`${fashionMnistDir}/${split}-labels-idx1-ubyte.gz`));
  if (images.readUInt32BE(0) !== 2051 || labels.readUInt32BE(0) !== 2049) throw new Error(`${fashionMnistDir}: not IDX image/label files`);
  const n = Math.min(count, images.readUInt32BE(4));
  const rows = images.readUInt32BE(8);
  const cols = images.readUInt32BE(12);
  if (rows !== cols) throw new Error(`${fashionMnistDir}: expected square images, got ${rows}x${cols}`);
  const px = rows * cols;
  const out = new Float32Array(n * px);
  for (let i = 0; i < n * px; i++) out[i] = images[16 + i] / 255;
  return { images: out, labels: Int32Array.from(labels.subarray(8, 8 + n)), size: rows };
}
