/** Reads real Fashion-MNIST images straight from the Debian package's IDX gzip files (test helper). */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const DIR = '/usr/share/datasets/fashion-mnist';

export interface Idx {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

export function readFashionMnist(split: 'train' | 't10k', limit = Infinity): Idx {
  const img = gunzipSync(readFileSync(`${DIR}/${split}-images-idx3-ubyte.gz`));
  const lab = gunzipSync(readFileSync(`${DIR}/${split}-labels-idx1-ubyte.gz`));
  const total = img.readUInt32BE(4);
  const rows = img.readUInt32BE(8);
  const cols = img.readUInt32BE(12);
  const count = Math.min(total, limit);
  return {
    images: new Uint8Array(img.buffer, img.byteOffset + 16, count * rows * cols),
    labels: new Uint8Array(lab.buffer, lab.byteOffset + 8, count),
    count,
    rows,
    cols,
  };
}
