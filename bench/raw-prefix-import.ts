/**
 * Raw-prefix import benchmark (prints numbers; never a timed test): a raw S3 prefix of N image
 * objects is imported by the real CLI (`selftrain dataset import s3://…/raw/ --to s3://…/ds`), for
 * several N. It prints, per N: ListObjectsV2 pages, import wall time and images/s, and the CLI
 * process's peak RSS (GNU time's %M). Target: the peak RSS stays flat as N grows (only the key list
 * grows, ~100 bytes per object; images are held one shard group at a time).
 *
 * Against the S3 endpoint of the tests (SELFTRAIN_TEST_S3_ENDPOINT / AWS_* variables, else a
 * private Swift server). Uploading is part of the setup and not timed as the import.
 *
 *   npx tsx bench/raw-prefix-import.ts [--sizes 1000,4000] [--side 64] [--per-shard 500]
 */
import { execFile } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
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
  },
});
const sizes = args.sizes.split(',').map(Number);
const side = Number(args.side);

const env = await s3TestEnv();
if (!env) throw new Error('no S3 endpoint (set SELFTRAIN_TEST_S3_ENDPOINT or install Swift)');
console.log(`CPU: ${cpus()[0]?.model} x${cpus().length}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (numbers taken under load are not comparable)`);
console.log(`images: ${side}x${side} grey PNG (random pixels), ${args['per-shard']} per shard; endpoint ${env.endpoint}`);
console.log('objects  pages  upload s  import s  import img/s  peak RSS MB');

for (const n of sizes) {
  const bucket = await createTestBucket(env);
  const store = new S3Store({ bucket, endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
  try {
    const random = rng(n);
    const queue = new PQueue({ concurrency: 16 });
    const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      const pixels = Uint8Array.from({ length: side * side }, () => Math.floor(random() * 256));
      // Uneven depth, as a bucket filled by several tools over time.
      const key = `raw/${['', `cam${i % 5}/`, `cam${i % 5}/d${i % 7}/`][i % 3]}img-${i}.png`;
      void queue.add(() => store.put(key, encodePng(pixels, side, side, 1)));
      if (queue.size > 64) await queue.onSizeLessThan(32);
    }
    await queue.onIdle();
    const upload = (Date.now() - t0) / 1000;
    const [node, argv] = cliArgv('dataset', 'import', `s3://${bucket}/raw/`, '--to', `s3://${bucket}/ds`, '--samples-per-shard', args['per-shard']);
    const t1 = Date.now();
    const out = await run('/usr/bin/time', ['-f', 'peak-rss-kb %M', node, ...argv], { maxBuffer: 1 << 26 });
    const seconds = (Date.now() - t1) / 1000;
    const pages = [...out.stderr.matchAll(/listed \d+ objects \((\d+) page\(s\)\)/g)].at(-1)?.[1] ?? '?';
    const rss = Number(/peak-rss-kb (\d+)/.exec(out.stderr)?.[1]) / 1024;
    console.log(`${String(n).padStart(7)}  ${pages.padStart(5)}  ${upload.toFixed(1).padStart(8)}  ${seconds.toFixed(1).padStart(8)}  ${(n / seconds).toFixed(0).padStart(12)}  ${rss.toFixed(0).padStart(11)}`);
  } finally {
    await store.close();
    await deleteTestBucket(env, bucket);
  }
}
