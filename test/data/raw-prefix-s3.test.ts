/**
 * A raw S3 prefix of images as an unlabeled pool, on the real S3 server: objects at uneven depths,
 * more than one ListObjectsV2 page at the service's own 1000-key page size (and many more with a
 * lowered page size), fetched with bounded concurrency, the import interrupted after two shards and
 * resumed from the CLI with the two kept. Every image object ends up in the dataset exactly once,
 * with its object key in its .json; non-image objects are skipped, not fetched.
 *
 * CI uses 1,200 images (two real listing pages): Swift here writes and deletes ~50 objects/s under
 * load, so every 1,000 objects cost about a minute of CI time. SELFTRAIN_RAW_PREFIX_IMAGES=5000
 * runs the same test at several thousand objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import PQueue from 'p-queue';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { encodePng } from '../../pipeline/data/png-encode.js';
import { readDataset } from '../../pipeline/data/reader.js';
import { rng } from '../../pipeline/data/rng.js';
import { verifyDataset } from '../../pipeline/data/verify.js';
import { openImportSource } from '../../stages/import/open-source.js';
import { importDataset } from '../../stages/import/run-import.js';
import { cliArgv } from '../helpers/cli.js';
import { s3TestEnv, s3TestStore, S3_SKIP_REASON } from '../helpers/s3.js';

const run = promisify(execFile);
const IMAGES = Number(process.env.SELFTRAIN_RAW_PREFIX_IMAGES ?? 1200);
const PER_SHARD = 200;
// The extension-less _SUCCESS object is a candidate too (skipped once fetched: 0 bytes).
const SHARDS = Math.ceil((IMAGES + 1) / PER_SHARD);
const env = await s3TestEnv();

/** Object key of image i: depth 1 to 4, like a bucket filled by several tools over time. */
function imageKey(i: number): string {
  const depth = ['', `cam${i % 5}/`, `cam${i % 5}/day${i % 3}/`, `cam${i % 5}/day${i % 3}/burst/`][i % 4]!;
  return `raw/${depth}img-${String(i).padStart(5, '0')}.png`;
}

test('raw S3 prefix: many objects, paginated listing, bounded fetches, resume after an interruption', { skip: env ? false : S3_SKIP_REASON, timeout: 10 * 60_000 }, async (t) => {
  const s3 = await s3TestStore(t);
  if (!s3) return;
  const bucket = /^s3:\/\/([^/]+)/.exec(s3.uri)![1]!;
  // Small, distinct images (8x8 grey PNGs from a seeded PRNG) uploaded 16 at a time.
  const t0 = Date.now();
  const random = rng(7);
  const queue = new PQueue({ concurrency: 16 });
  const expected = new Set<string>();
  for (let i = 0; i < IMAGES; i++) {
    const pixels = Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256));
    expected.add(imageKey(i));
    void queue.add(() => s3.put(imageKey(i), encodePng(pixels, 8, 8, 1), { contentType: 'image/png' }));
  }
  void queue.add(() => s3.put('raw/_SUCCESS', ''));
  void queue.add(() => s3.put('raw/cam1/captions.txt', 'not an image'));
  void queue.add(() => s3.put('raw/cam2/.hidden/x.png', 'ignored: hidden'));
  await queue.onIdle();
  const upload = `uploaded ${IMAGES + 3} objects in ${((Date.now() - t0) / 1000).toFixed(1)} s (16 in flight)`;
  t.diagnostic(upload);
  console.log(upload);

  // 1. In-process, listing 100 keys per page, interrupted once two shards are committed.
  let pages = 0;
  const source = await openImportSource(`s3://${bucket}/raw/`, { tree: { store: { listPageSize: 100 }, onListPage: (p) => (pages = p) } });
  assert.equal(source.kind, 'tree');
  assert.equal(pages, Math.ceil((IMAGES + 3) / 100), 'listed in pages of 100 keys');
  assert.equal(source.entries.length, IMAGES + 1, 'images and the extension-less _SUCCESS are candidates; captions.txt and hidden keys are not');
  const stop = new AbortController();
  await assert.rejects(
    importDataset(source, `s3://${bucket}/ds`, {
      samplesPerShard: PER_SHARD,
      // One shard per load group (these 8x8 images would otherwise fit every shard in one group).
      memoryBytes: 1,
      signal: stop.signal,
      onProgress: (_part, done) => {
        if (done === 2) stop.abort(new Error('interrupted for the test'));
      },
    }),
    /interrupted for the test/,
  );

  // 2. The CLI resumes it: the service's own page size (1000 keys), so several real pages.
  const t1 = Date.now();
  const [cmd, args] = cliArgv('dataset', 'import', `s3://${bucket}/raw/`, '--to', `s3://${bucket}/ds`, '--samples-per-shard', String(PER_SHARD));
  const out = await run(cmd, args, { maxBuffer: 1 << 24 });
  const listed = [...out.stderr.matchAll(/listed (\d+) objects \((\d+) page\(s\)\)/g)].at(-1)!;
  assert.equal(Number(listed[1]), IMAGES + 3);
  assert.equal(Number(listed[2]), Math.ceil((IMAGES + 3) / 1000), 'one ListObjectsV2 page per 1000 keys');
  assert.ok(Number(listed[2]) >= 2, 'more than one real listing page');
  assert.match(out.stdout, new RegExp(`importing ${IMAGES + 1} samples \\(tree, unlabeled\\)`));
  assert.match(out.stdout, new RegExp(`${IMAGES} samples in ${SHARDS} shards, .* \\(resumed, 2 shards kept\\)`));
  const resumed = `CLI resume: listed ${listed[1]} objects in ${listed[2]} pages, imported the remaining ${SHARDS - 2} of ${SHARDS} shards in ${((Date.now() - t1) / 1000).toFixed(1)} s`;
  t.diagnostic(resumed);
  console.log(resumed);

  // 3. Every image exactly once, with its object key; the rest skipped with a reason.
  const ds = await openDataset(`s3://${bucket}/ds`);
  try {
    assert.deepEqual([ds.index.labeled, ds.index.classes, ds.index.samples], [false, [], IMAGES]);
    const why = new Map(ds.index.skipped!.map((s) => [s.where, s.reason]));
    assert.match(why.get('_SUCCESS')!, /empty \(0 bytes\)/);
    assert.match(why.get('cam1/captions.txt')!, /not an image file name \(\.txt\)/);
    assert.equal(why.size, 2);
    const seen = new Set<string>();
    for await (const s of readDataset(ds.store)) {
      const key = (s.json as { key: string }).key;
      assert.ok(expected.has(key), `unexpected ${key}`);
      assert.ok(!seen.has(key), `${key} imported twice`);
      seen.add(key);
    }
    assert.equal(seen.size, IMAGES);
  } finally {
    await ds.close();
  }
  const v = await verifyDataset(`s3://${bucket}/ds`);
  assert.deepEqual(v.problems, []);
  assert.equal(v.decoded, IMAGES);

  // 4. A list file naming objects by URI (and one that does not exist), itself stored in the bucket.
  const listed5 = [0, 1, 2, 3, 4].map((i) => `s3://${bucket}/${imageKey(i * 7)}`);
  await s3.put('lists/pool.txt', [...listed5, `s3://${bucket}/raw/missing.png`].join('\n'));
  const fromList = await importDataset(await openImportSource(`s3://${bucket}/lists/pool.txt`, { format: 'list' }), s3.sub('from-list'));
  const idx = fromList.outputs[0]!.index;
  assert.equal(idx.samples, 5);
  assert.match(idx.skipped![0]!.reason, /cannot read: .*raw\/missing\.png/);
  const uris: string[] = [];
  for await (const smp of readDataset(s3.sub('from-list'))) uris.push((smp.json as { uri: string }).uri);
  assert.deepEqual(uris, listed5);
});
