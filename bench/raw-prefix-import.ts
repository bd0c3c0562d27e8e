/**
 * Raw-prefix import benchmark (prints numbers; never a timed test): a raw S3 prefix of N image
 * objects is imported by the real CLI (`selftrain dataset import s3://…/raw/ --to s3://…/ds`), for
 * several N. It prints, per N: ListObjectsV2 pages, import wall time and images/s, and the CLI
 * process's peak RSS (GNU time's %M). Target: the peak RSS stays flat as N grows (only the key list
 * grows, ~100 bytes per object; images are held one shard group at a time).
 *
 * Against the S3 endpoint of the tests (SELFTRAIN_TEST_S3_ENDPOINT / AWS_* variables, else a
 * private Swift server), or with `--local` a flat local directory (the same tree importer without
 * the network: quick to run at 16,000+ objects). Writing the objects is setup, not timed.
 *
 * Peak RSS includes garbage the collector has not reclaimed yet (V8 collects lazily), so it grows
 * sublinearly with N before it levels off; measured here (local, 4 MiB budget): 4,000 objects
 * 249 MB, 16,000 objects 292 MB; with a GC forced after every shard the resident set stayed at
 * ~160 MB from the fourth shard on.
 *
 * The import holds `--memory-mb` of images at once (the CLI's budget, default 64): with 64x64 test
 * images (~4 KB) the default budget holds ~8,000 of them, so below that the whole set is one load
 * group and the peak grows with N; a smaller budget shows the bound at small N.
 *
 *   npx tsx bench/raw-prefix-import.ts [--sizes 1000,4000] [--side 64] [--per-shard 500] [--memory-mb 64] [--local]
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import PQueue from 'p-queue';
import { encodePng } from '../pipeline/data/png-encode.js';
import { rng } from '../pipeline/data/rng.js';
import { S3Store } from '../pipeline/store/s3-store.js';
import { cliArgv } from '../test/helpers/cli.js';
import { createTestBucket, deleteTestBucket, s3TestEnv } from '../test/helpers/s3.js';

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,4000' },
    side: { type: 'string', default: '64' },
    'per-shard': { type: 'string', default: '500' },
    'memory-mb': { type: 'string', default: '64' },
    local: { type: 'boolean', default: false },
  },
});
const sizes = args.sizes.split(',').map(Number);
const side = Number(args.side);

/** Runs the CLI import under GNU time: wall seconds, listing pages, peak RSS in MB. */
async function importMeasured(from: string, to: string): Promise<{ seconds: number; pages: string; rssMb: number }> {
  const [node, argv] = cliArgv('dataset', 'import', from, '--to', to, '--samples-per-shard', args['per-shard'], '--memory-mb', args['memory-mb']);
  const t1 = Date.now();
  const out = await run('/usr/bin/time', ['-f', 'peak-rss-kb %M', node, ...argv], { maxBuffer: 1 << 26 });
  const pages = [...out.stderr.matchAll(/listed \d+ objects \((\d+) page\(s\)\)/g)].at(-1)?.[1] ?? '?';
  return { seconds: (Date.now() - t1) / 1000, pages, rssMb: Number(/peak-rss-kb (\d+)/.exec(out.stderr)?.[1]) / 1024 };
}

function image(random: () => number): Buffer {
  return encodePng(Uint8Array.from({ length: side * side }, () => Math.floor(random() * 256)), side, side, 1);
}

const row = (n: number, pages: string, setup: number, r: { seconds: number; rssMb: number }) =>
  console.log(`${String(n).padStart(7)}  ${pages.padStart(5)}  ${setup.toFixed(1).padStart(8)}  ${r.seconds.toFixed(1).padStart(8)}  ${(n / r.seconds).toFixed(0).padStart(12)}  ${r.rssMb.toFixed(0).padStart(11)}`);

console.log(`CPU: ${cpus()[0]?.model} x${cpus().length}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (numbers taken under load are not comparable)`);
console.log(`images: ${side}x${side} grey PNG (random pixels), ${args['per-shard']} per shard, import memory budget ${args['memory-mb']} MiB; ${args.local ? 'local directory' : 'S3'}`);
console.log('objects  pages   setup s  import s  import img/s  peak RSS MB');

if (args.local) {
  for (const n of sizes) {
    const dir = mkdtempSync(path.join(tmpdir(), 'raw-prefix-bench-'));
    try {
      const random = rng(n);
      const t0 = Date.now();
      mkdirSync(path.join(dir, 'raw'));
      for (let i = 0; i < n; i++) writeFileSync(path.join(dir, 'raw', `img-${i}.png`), image(random));
      const setup = (Date.now() - t0) / 1000;
      const r = await importMeasured(path.join(dir, 'raw'), `file://${dir}/ds`);
      row(n, r.pages, setup, r);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  process.exit(0);
}

const env = await s3TestEnv();
if (!env) throw new Error('no S3 endpoint (set SELFTRAIN_TEST_S3_ENDPOINT or install Swift)');
console.log(`endpoint ${env.endpoint}`);

for (const n of sizes) {
  const bucket = await createTestBucket(env);
  const store = new S3Store({ bucket, endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
  try {
    const random = rng(n);
    const queue = new PQueue({ concurrency: 16 });
    const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      // Uneven depth, as a bucket filled by several tools over time.
      const key = `raw/${['', `cam${i % 5}/`, `cam${i % 5}/d${i % 7}/`][i % 3]}img-${i}.png`;
      const body = image(random);
      void queue.add(() => store.put(key, body));
      if (queue.size > 64) await queue.onSizeLessThan(32);
    }
    await queue.onIdle();
    const r = await importMeasured(`s3://${bucket}/raw/`, `s3://${bucket}/ds`);
    row(n, r.pages, (Date.now() - t0) / 1000 - r.seconds, r);
  } finally {
    await store.close();
    await deleteTestBucket(env, bucket);
  }
}
