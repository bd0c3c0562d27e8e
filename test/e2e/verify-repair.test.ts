/**
 * Verified reads end to end, on a minute-long run of the whole chain (test/e2e/fixtures/mini.yaml)
 * through the real CLI on file://:
 * - `selftrain verify` passes a clean run, and names every damaged object of a damaged one (a
 *   flipped byte in a checkpoint, a prediction object and a dataset shard) with its expected and
 *   actual sha256, exiting 1;
 * - `run` recovers: a second run is stopped at chosen points (pipeline/store/kill-point.ts) and
 *   damaged there — the newest teacher checkpoint, an unlabeled shard before infer reads it, a
 *   prediction object before select reads it. Each is detected with its name, the unit is redone
 *   (the trainer resumes from the checkpoint before; the import remakes the shard; infer remakes
 *   the predictions, and since they come out the same, nothing made from them re-runs), and the
 *   finished run equals the clean one object for object (bench/compare-runs.ts with the timing
 *   and attempt rules);
 * - where a unit cannot be redone (its source is gone) the run stops naming the damaged object and
 *   the reason.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compareStores, parseIgnoreRule, parseTextIgnoreRule, readRules, realDifferences, formatResult } from '../../bench/compare-runs.js';
import { openStore } from '../../pipeline/store/open.js';
import { needs } from '../helpers/extras.js';
import { repoRoot } from '../helpers/s3.js';
import { startCli } from './helpers.js';

const NEEDS = needs('fashion-mnist');
const MANIFEST = path.join(repoRoot(), 'test', 'e2e', 'fixtures', 'mini.yaml');
let work = '';

before(async () => {
  if (NEEDS) return;
  work = mkdtempSync(path.join(tmpdir(), 'selftrain-repair-'));
  const clean = await cli(['run', MANIFEST, '--store', `file://${work}/clean`]);
  assert.equal(clean.code, 0, clean.stderr);
});
after(() => work && rmSync(work, { recursive: true, force: true }));

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return startCli(work, args, { ...process.env, ...env }).done;
}

/** Flips one byte in place (same inode: as disk damage would); returns [sha256 before, after]. */
function flipByte(file: string, at = 700): [string, string] {
  const bytes = readFileSync(file);
  const before = createHash('sha256').update(bytes).digest('hex');
  bytes[Math.min(at, bytes.length - 1)]! ^= 0x01;
  writeFileSync(file, bytes, { flag: 'r+' });
  return [before, createHash('sha256').update(bytes).digest('hex')];
}

/** The one file under `dir` whose path matches `re`. */
function find(dir: string, re: RegExp): string {
  const hits = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) => re.test(p) && !path.basename(p).startsWith('.'));
  assert.equal(hits.length, 1, `${re}: ${hits.join(', ')}`);
  return path.join(dir, hits[0]!);
}

test('selftrain verify passes a clean run', { skip: NEEDS, timeout: 300_000 }, async () => {
  const ok = await cli(['verify', `file://${work}/clean/mini`]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /ok: no problems/);
  assert.match(ok.stdout, /(\d+) objects .*, \1 checked against their recorded sha256/);
});

test('run recovers: a damaged checkpoint, shard and prediction are each named and redone; the result equals the clean run', { skip: NEEDS, timeout: 600_000 }, async () => {
  const root = path.join(work, 'recovered');
  const store = ['--store', `file://${root}`];
  // 1. Stop right after the teacher's second checkpoint (steps 2 and 4 committed; 6 to go).
  const a = await cli(['run', MANIFEST, ...store], { SELFTRAIN_KILL_AFTER_PUT: '**/train-teacher-1/ckpt/step-000000004/COMMIT.json' });
  assert.equal(a.signal, 'SIGKILL', a.stderr);
  const [ckptExpected, ckptActual] = flipByte(find(path.join(root, 'mini', 'train-teacher-1', 'ckpt'), /step-000000004\/tensors\.bin$/));
  const [shardExpected, shardActual] = flipByte(find(path.join(root, 'datasets'), /unlabeled\/shard-000001\.tar$/));

  // 2. Resume up to the end of infer: the teacher resumes from step 2; infer meets the damaged shard,
  //    the import remakes it (the same bytes), infer runs again.
  const b = await cli(['run', MANIFEST, ...store], { SELFTRAIN_KILL_AFTER_PUT: '**/infer-1/summary.json' });
  assert.equal(b.signal, 'SIGKILL', b.stderr);
  assert.match(b.stderr, new RegExp(`\\[train-teacher-1\\] warn: checkpoint .*step-000000004/tensors\\.bin is corrupted: expected sha256 ${ckptExpected} .*got sha256 ${ckptActual}.*resuming from the checkpoint before it`));
  assert.match(b.stderr, /resuming from checkpoint .*step-000000002/);
  assert.match(b.stderr, new RegExp(`\\[infer-1\\] .*unlabeled/shard-000001\\.tar is corrupted: expected sha256 ${shardExpected} .*got sha256 ${shardActual}.*: deleting it and running import again to remake it`));
  assert.match(b.stderr, /\[import\] remade .*unlabeled\/shard-000001\.tar: the same bytes as before/);

  // 3. A prediction object damaged before select reads it: infer remakes it, select goes on.
  const [predExpected, predActual] = flipByte(find(path.join(root, 'mini', 'infer-1'), /predictions\/shard-000002\.jsonl\.gz$/));
  const c = await cli(['run', MANIFEST, ...store]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stderr, new RegExp(`\\[select-1\\] .*infer-1/predictions/shard-000002\\.jsonl\\.gz is corrupted: expected sha256 ${predExpected} .*got sha256 ${predActual}.*running infer-1 again to remake it`));
  assert.match(c.stderr, /\[infer-1\] remade infer-1\/predictions\/shard-000002\.jsonl\.gz: the same bytes as before/);

  // 4. Everything made equals the undisturbed run, object for object; and it verifies.
  const rules = ['run-timings.rules', 'torture.rules'].map((f) => readRules(path.join(repoRoot(), 'bench', f)));
  const cmp = await compareStores(openStore(`file://${work}/clean`), openStore(`file://${root}`), {
    ignore: rules.flatMap((r) => r.ignore).map(parseIgnoreRule),
    ignoreText: rules.flatMap((r) => r['ignore-text']).map(parseTextIgnoreRule),
    skip: rules.flatMap((r) => r.skip),
    normalizeRoots: true,
  });
  assert.deepEqual(realDifferences(cmp), [], formatResult(cmp));
  const v = await cli(['verify', `file://${root}/mini`]);
  assert.equal(v.code, 0, v.stdout);
});

test('selftrain verify names each damaged object (a checkpoint, a prediction, a shard) with both hashes, exit 1', { skip: NEEDS, timeout: 300_000 }, async () => {
  const damaged = path.join(work, 'recovered'); // the previous test's run, finished and verified
  const ckpt = find(path.join(damaged, 'mini', 'train-teacher-1', 'ckpt'), /step-000000006\/tensors\.bin$/);
  const pred = find(path.join(damaged, 'mini', 'infer-1'), /predictions\/shard-000001\.jsonl\.gz$/);
  const shard = find(path.join(damaged, 'datasets'), /unlabeled\/shard-000002\.tar$/);
  const hashes = [ckpt, pred, shard].map((f) => flipByte(f));
  const res = await cli(['verify', `file://${damaged}/mini`]);
  assert.equal(res.code, 1, res.stdout);
  assert.match(res.stdout, /FAILED: 3 problem\(s\)/);
  for (const [i, rel] of ['mini/train-teacher-1/ckpt/step-000000006/tensors.bin', 'mini/infer-1/predictions/shard-000001.jsonl.gz', 'unlabeled/shard-000002.tar'].entries()) {
    const line = res.stdout.split('\n').find((l) => l.startsWith('problem:') && l.includes(rel));
    assert.ok(line, `${rel} named:\n${res.stdout}`);
    const [expected, actual] = hashes[i]!;
    assert.ok(line.includes(expected) && line.includes(actual), `${rel}: expected ${expected} and actual ${actual} named:\n${line}`);
  }
});

test('a damaged object that cannot be remade (its source is gone) stops the run, naming the object and why', { skip: NEEDS, timeout: 300_000 }, async () => {
  const root = path.join(work, 'clean');
  // The eval set is read again by evaluate; its source files are not where the import finds them now.
  const [expected] = flipByte(find(path.join(root, 'datasets'), /test-[0-9a-f]+\/shard-000001\.tar$/));
  rmSync(path.join(root, 'mini', 'evaluate', 'report.json'));
  const res = await cli(['run', MANIFEST, '--store', `file://${root}`], { SELFTRAIN_FASHION_MNIST_DIR: path.join(work, 'no-such-dir') });
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, new RegExp(`\\[evaluate\\] .*shard-000001\\.tar is corrupted: expected sha256 ${expected}.*running import again to remake it`));
  assert.match(res.stderr, /\[import\] error: failed: .*SELFTRAIN_FASHION_MNIST_DIR=.*no-such-dir: no Fashion-MNIST files there/);
});
