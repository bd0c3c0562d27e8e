/** Shared bits for the datasets tests: temp dirs, the Debian Fashion-MNIST files, IDX reading. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FMNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** A temp dir removed when the test (or suite) ends. */
export function tempDir(t: { after(fn: () => void): void }, name = 'selftrain-data-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), name));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Raw IDX images (n × rows × cols bytes) and labels of one Fashion-MNIST split. */
export function readIdx(split: 'train' | 't10k'): { images: Buffer; labels: Buffer; rows: number; cols: number; count: number } {
  const img = gunzipSync(readFileSync(path.join(FMNIST_DIR, `${split}-images-idx3-ubyte.gz`)));
  const lab = gunzipSync(readFileSync(path.join(FMNIST_DIR, `${split}-labels-idx1-ubyte.gz`)));
  return { images: img.subarray(16), labels: lab.subarray(8), rows: img.readUInt32BE(8), cols: img.readUInt32BE(12), count: img.readUInt32BE(4) };
}
