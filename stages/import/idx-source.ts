/**
 * MNIST / Fashion-MNIST IDX files (gzip or raw), e.g. Debian's dataset-fashion-mnist in
 * /usr/share/datasets/fashion-mnist/. Images are stored as greyscale PNG. The images file is
 * streamed (gunzip → IDX parser); each load() is one streaming pass that keeps only the
 * requested images, so memory is bounded by what the caller asks for, never the whole file.
 * PNGs come from png-encode.ts (zlib), not sharp: see there for the measured reason.
 */
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { createGunzip, gunzipSync } from 'node:zlib';
import { encodePng } from '../../pipeline/data/png-encode.js';
import { DataError } from '../../pipeline/data/types.js';
import type { ImportSource, LoadedSample, SourceEntry } from './source.js';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

const PREFIX = { train: 'train', test: 't10k' } as const;

/** Whether `p` exists; only "no such file" means no (a permission problem is an error naming the file). */
async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new DataError(`${p}: cannot access: ${(err as Error).message}`, { uri: p }, { cause: err });
  }
}

async function findFile(dir: string, base: string): Promise<string> {
  // torchvision/Kaggle spell it with a dot: train-images.idx3-ubyte
  const dotted = base.replace(/-(idx\d-ubyte)$/, '.$1');
  for (const name of [`${base}.gz`, base, `${dotted}.gz`, dotted]) {
    const p = path.join(dir, name);
    if (await exists(p)) return p;
  }
  throw new DataError(`${dir}: no ${base}[.gz] (IDX source needs ${base} and its labels file)`, { uri: dir });
}

async function readMaybeGzip(file: string): Promise<Buffer> {
  const buf = await fs.readFile(file);
  return buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
}

export async function isIdxDir(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false; // not a directory of IDX files
    throw new DataError(`${dir}: cannot list: ${(err as Error).message}`, { uri: dir }, { cause: err });
  }
  return names.some((n) => /images[-.]idx3-ubyte(\.gz)?$/.test(n));
}

export interface IdxOptions {
  split: 'train' | 'test';
  classes?: string[];
}

export async function openIdxSource(dir: string, o: IdxOptions): Promise<ImportSource> {
  const imagesFile = await findFile(dir, `${PREFIX[o.split]}-images-idx3-ubyte`);
  const labelsFile = await findFile(dir, `${PREFIX[o.split]}-labels-idx1-ubyte`);
  const labels = await readMaybeGzip(labelsFile);
  if (labels.length < 8 || labels.readUInt32BE(0) !== 0x801) throw new DataError(`${labelsFile}: not an IDX label file (magic ${labels.subarray(0, 4).toString('hex')}, expected 00000801)`, { uri: labelsFile });
  const count = labels.readUInt32BE(4);
  if (labels.length !== 8 + count) throw new DataError(`${labelsFile}: header says ${count} labels but the file holds ${labels.length - 8}`, { uri: labelsFile });
  const classes = o.classes ?? (/fashion/i.test(dir) ? FASHION_MNIST_CLASSES : MNIST_CLASSES);
  const entries: SourceEntry[] = [];
  for (let i = 0; i < count; i++) {
    const label = labels[8 + i]!;
    if (label >= classes.length) throw new DataError(`${labelsFile}: label ${label} of item ${i} out of range (${classes.length} classes)`, { uri: labelsFile, key: String(i) });
    entries.push({ key: `${o.split}-${String(i).padStart(6, '0')}`, label, ref: i });
  }
  const stats = await Promise.all([fs.stat(imagesFile), fs.stat(labelsFile)]);
  return {
    kind: 'idx',
    classes,
    entries,
    identity: { kind: 'idx', images: imagesFile, labels: labelsFile, sizes: stats.map((s) => s.size), split: o.split },
    bytesPerEntry: 2048,
    problems: [],
    load: (wanted) => loadImages(imagesFile, count, wanted),
    close: async () => undefined,
  };
}

/** One streaming pass over the images file, PNG-encoding the wanted items (the yielded PNG
 * owns its bytes, so the stream's chunks are not retained). */
async function* loadImages(file: string, count: number, wanted: SourceEntry[]): AsyncGenerator<LoadedSample> {
  const byIndex = new Map(wanted.map((e) => [e.ref, e]));
  const head = Buffer.alloc(2);
  const fh = await fs.open(file);
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const raw = createReadStream(file);
  const stream = head[0] === 0x1f && head[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (e) => stream.destroy(e));
  let pending: Buffer = Buffer.alloc(0);
  let rows = 0;
  let cols = 0;
  let next = 0; // index of the next image in the stream
  let headerDone = false;
  let remaining = byIndex.size;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      if (!headerDone) {
        if (pending.length < 16) continue;
        if (pending.readUInt32BE(0) !== 0x803) throw new DataError(`${file}: not an IDX image file (magic ${pending.subarray(0, 4).toString('hex')}, expected 00000803)`, { uri: file });
        const n = pending.readUInt32BE(4);
        if (n !== count) throw new DataError(`${file}: ${n} images but the labels file has ${count}`, { uri: file });
        rows = pending.readUInt32BE(8);
        cols = pending.readUInt32BE(12);
        pending = pending.subarray(16);
        headerDone = true;
      }
      const size = rows * cols;
      let off = 0;
      while (pending.length - off >= size && next < count) {
        const e = byIndex.get(next);
        if (e) {
          yield { entry: e, image: encodePng(pending.subarray(off, off + size), cols, rows, 1), ext: 'png' };
          remaining--;
        }
        off += size;
        next++;
      }
      pending = pending.subarray(off);
      if (remaining === 0) break;
    }
    if (remaining > 0) throw new DataError(`${file}: ends after ${next} of ${count} images (truncated)`, { uri: file });
  } finally {
    raw.destroy();
  }
}
