/**
 * Reads the first n Fashion-MNIST images and labels straight from the Debian package's IDX gzip
 * files (dataset-fashion-mnist), as float32 NHWC [n,28,28,1] scaled to [0,1]. Test/bench helper.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export interface FashionBatch {
  images: Float32Array;
  labels: Int32Array;
  n: number;
}

export function readFashionMnist(n: number, split: 'train' | 't10k' = 't10k', dir = FASHION_MNIST_DIR): FashionBatch {
  const img = gunzipSync(readFileSync(`${dir}/${split}-images-idx3-ubyte.gz`));
  const lab = gunzipSync(readFileSync(`${dir}/${split}-labels-idx1-ubyte.gz`));
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049) throw new Error(`${dir}/${split}-*: not IDX image/label files`);
  const count = img.readUInt32BE(4);
  if (n > count) throw new Error(`${dir}/${split}: asked for ${n} images, file holds ${count}`);
  const size = img.readUInt32BE(8) * img.readUInt32BE(12);
  const images = new Float32Array(n * size);
  for (let i = 0; i < n * size; i++) images[i] = img[16 + i]! / 255;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = lab[8 + i]!;
  return { images, labels, n };
}
