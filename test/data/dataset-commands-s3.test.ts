/**
 * Managing datasets in a store, through the CLI, on the real S3 server:
 * - `dataset cp` file:// → s3:// is SIGKILLed mid-copy and resumed (the verified shards are kept),
 *   then s3:// → file://; the round trip gives shards with identical sha256 and the same dataset.json;
 * - `dataset ls <store>/datasets/` lists several datasets (labeled, unlabeled, a split);
 * - `dataset rm` is refused for a dataset a run uses (naming the run), removes an unused one, and
 *   removes a used one with --force.
 * The kill lands at a known point: one source shard is a FIFO while the first copy runs, so that
 * shard's read blocks until the process is killed, while every other shard completes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import { encodePng } from '../../pipeline/data/png-encode.js';
import { rng } from '../../pipeline/data/rng.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { cliArgv } from '../helpers/cli.js';
import { s3TestEnv, s3TestStore, S3_SKIP_REASON } from '../helpers/s3.js';
import { startCli, waitUntil } from '../e2e/helpers.js';
import { testContext } from '../pseudo/context.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const env = await s3TestEnv();
const SHARDS = 12;
const BLOCKED = 'shard-000005.tar';

/** A small dataset: `shards` shards of 25 random 32x32 grey PNGs; labeled with 3 classes, or not. */
async function writeDataset(store: ObjectStore, shards: number, labeled: boolean, seed: number): Promise<void> {
  const random = rng(seed);
  const writer = new DatasetWriter(store, { classes: labeled ? ['a', 'b', 'c'] : [], labeled, plan: `test-${seed}` });
  await writer.begin();
  for (let n = 0; n < shards; n++) {
    const samples = Array.from({ length: 25 }, (_, i) => ({
      key: `s${n}-${i}`,
      ext: 'png' as const,
      image: encodePng(Uint8Array.from({ length: 1024 }, () => Math.floor(random() * 256)), 32, 32, 1),
      ...(labeled ? { label: i % 3 } : {}),
    }));
    await writer.writeShard(n, samples);
  }
  await writer.finish(shards);
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

test('dataset cp (killed, resumed, round trip), ls of several datasets, rm refused while a run uses one', { skip: env ? false : S3_SKIP_REASON, timeout: 10 * 60_000 }, async (t) => {
  const s3 = await s3TestStore(t);
  if (!s3) return;
  const bucket = /^s3:\/\/([^/]+)/.exec(s3.uri)![1]!;
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  await writeDataset(new FileStore(src), SHARDS, true, 1);
  const copy = `s3://${bucket}/datasets/copy`;

  // 1. file:// → s3://, killed while one shard's read is blocked (the others all get copied).
  renameSync(path.join(src, BLOCKED), path.join(dir, BLOCKED));
  execFileSync('mkfifo', [path.join(src, BLOCKED)]);
  const first = startCli(dir, ['dataset', 'cp', `file://${src}`, copy]);
  t.after(() => first.killAll());
  await waitUntil(async () => (await s3.list('datasets/copy/_copy/')).length === SHARDS - 1, 5 * 60_000, 'every shard but the blocked one copied', first);
  first.killAll();
  assert.equal((await first.done).signal, 'SIGKILL');
  assert.equal(await s3.head('datasets/copy/dataset.json'), undefined, 'no dataset.json before every shard is there');
  rmSync(path.join(src, BLOCKED));
  renameSync(path.join(dir, BLOCKED), path.join(src, BLOCKED));

  // 2. The re-run keeps the verified shards and copies the one left.
  const [cmd, args] = cliArgv('dataset', 'cp', `file://${src}`, copy);
  const resumed = await run(cmd, args);
  assert.match(resumed.stdout, /300 samples in 12 shards; copied 1 shard\(s\), .* each sha256-checked \(resumed: 11 shard\(s\) already copied and verified\)/);
  assert.deepEqual(await s3.list('datasets/copy/_copy/'), [], 'progress markers removed at the end');
  const again = await run(...cliArgv('dataset', 'cp', `file://${src}`, copy));
  assert.match(again.stdout, /already a complete copy/);

  // 3. s3:// → file://: the same shards, byte for byte, and the same dataset.json.
  const back = path.join(dir, 'back');
  await run(...cliArgv('dataset', 'cp', copy, `file://${back}`));
  for (let n = 0; n < SHARDS; n++) {
    const name = `shard-${String(n).padStart(6, '0')}.tar`;
    assert.equal(sha(path.join(back, name)), sha(path.join(src, name)), name);
  }
  assert.equal(readFileSync(path.join(back, 'dataset.json'), 'utf8'), readFileSync(path.join(src, 'dataset.json'), 'utf8'));
  const verified = await run(...cliArgv('dataset', 'verify', `file://${back}`));
  assert.match(verified.stdout, /^OK .*: 12 shards, 300 samples, 300 images decoded/);

  // 4. Several datasets in the store: ls lists each.
  await writeDataset(s3.sub('datasets/pool'), 2, false, 2);
  await writeDataset(s3.sub('datasets/split/labeled'), 1, true, 3);
  await writeDataset(s3.sub('datasets/split/unlabeled'), 3, false, 4);
  const ls = await run(...cliArgv('dataset', 'ls', `s3://${bucket}/datasets/`));
  console.log(`$ selftrain dataset ls s3://${bucket}/datasets/\n${ls.stdout}`);
  const rows = ls.stdout.trim().split('\n');
  assert.match(rows[0]!, /^name\s+samples\s+classes\s+bytes\s+created$/);
  const byName = new Map(rows.slice(1).map((r) => [r.split(/\s+/)[0]!, r.split(/\s{2,}/)]));
  assert.deepEqual([...byName.keys()], ['copy', 'pool', 'split/labeled', 'split/unlabeled']);
  assert.deepEqual(byName.get('copy')!.slice(1, 3), ['300', '3']);
  assert.deepEqual(byName.get('pool')!.slice(1, 3), ['50', 'unlabeled']);
  assert.deepEqual(byName.get('split/unlabeled')!.slice(1, 3), ['75', 'unlabeled']);
  for (const r of byName.values()) assert.match(r[4]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'created');

  // 5. rm: a run (its real import stage) uses copy and pool.
  const importStage = await import('../../stages/import/index.js');
  await importStage.runStage(testContext(s3.sub('runs/exp'), s3.sub('runs'), 'import/'), {
    datasets: { labeled: copy, unlabeled: `s3://${bucket}/datasets/pool`, eval: copy, samplesPerShard: 25 },
    seed: 0,
  });
  const refused = await run(...cliArgv('dataset', 'rm', copy)).then(
    () => assert.fail('rm of a used dataset succeeded'),
    (err: { code: number; stderr: string }) => err,
  );
  console.log(`$ selftrain dataset rm ${copy}\n${refused.stderr}`);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`error: s3://${bucket}/datasets/copy is used by 1 run\\(s\\) in s3://${bucket}:\\n {2}s3://${bucket}/runs/exp \\(labeled: ${copy}\\)\\n {2}s3://${bucket}/runs/exp \\(eval: ${copy}\\)\\nnothing removed; pass --force`));
  assert.ok(await s3.head('datasets/copy/dataset.json'), 'still there');
  const unused = await run(...cliArgv('dataset', 'rm', `s3://${bucket}/datasets/split`));
  assert.match(unused.stdout, /datasets\/split: removed 2 dataset\(s\), 10 object\(s\)/);
  assert.deepEqual(await s3.list('datasets/split/'), []);
  const forced = await run(...cliArgv('dataset', 'rm', copy, '--force'));
  assert.match(forced.stdout, /warning: --force: removed although 1 run\(s\) use it/);
  assert.deepEqual(await s3.list('datasets/copy/'), []);
});
