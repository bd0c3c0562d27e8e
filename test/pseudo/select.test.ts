import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { FileStore } from '../../pipeline/store/file-store.js';
import { encodeJsonlGz, decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import { gridIndex, thresholdIndex } from '../../pipeline/pseudo/grid.js';
import { predictionKey } from '../../pipeline/pseudo/predictions-reader.js';
import type { PredictionRecord, PseudoLabelRecord } from '../../pipeline/pseudo/records.js';
import { selectPseudoLabels, pseudoLabelKey, type SelectOptions } from '../../stages/select/select.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { needs, testPython } from '../helpers/extras.js';

function tempStore(t: { after(fn: () => void): void }): FileStore {
  const dir = mkdtempSync(join(tmpdir(), 'select-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new FileStore(dir);
}

/** A prediction with top-1 `cls` at confidence `p`, the rest spread over two other classes. */
function pred(shard: string, key: string, cls: number, p: number, numClasses = 3): PredictionRecord {
  const others = [...Array(numClasses).keys()].filter((c) => c !== cls).slice(0, 2);
  const rest = (1 - p) * 0.9; // 10% of the remaining mass falls outside the stored top-3
  return { key, shard, teacher: 't', classes: [cls, ...others], probs: [p, rest * 0.7, rest * 0.3], maxProb: p };
}

async function writeShard(store: ObjectStore, shard: string, records: PredictionRecord[]): Promise<void> {
  await store.put(predictionKey(shard), encodeJsonlGz(records));
}

async function readOut(store: ObjectStore, shard: string): Promise<PseudoLabelRecord[]> {
  const out: PseudoLabelRecord[] = [];
  for await (const { value } of decodeJsonlGz(await store.getStream(pseudoLabelKey(shard)), shard)) out.push(value as PseudoLabelRecord);
  return out;
}

function options(store: ObjectStore, over: Partial<SelectOptions>): SelectOptions {
  return {
    predictions: store.sub('infer'),
    out: store.sub('select'),
    shards: ['shard-000000', 'shard-000001'],
    numClasses: 3,
    floor: 0.3,
    labels: 'soft',
    temperature: 1,
    seed: 7,
    ...over,
  };
}

/**
 * class 0: 10 at 0.95 and 5 at 0.5 -> target 8 reached at 0.95 (kept 10, rate 0.8, subsampled);
 * class 1: 0.9, 0.6 and 0.2 -> never reaches 8: floor 0.3, kept 2 (0.2 dropped), rate 4 (duplicated);
 * class 2: no candidates at all.
 */
async function constructed(store: ObjectStore): Promise<void> {
  const a: PredictionRecord[] = [];
  const b: PredictionRecord[] = [];
  for (let i = 0; i < 10; i++) (i % 2 ? a : b).push(pred(i % 2 ? 'shard-000000' : 'shard-000001', `hi${i}`, 0, 0.95));
  for (let i = 0; i < 5; i++) a.push(pred('shard-000000', `lo${i}`, 0, 0.5));
  a.push(pred('shard-000000', 'c1-a', 1, 0.9), pred('shard-000000', 'c1-b', 1, 0.6));
  b.push(pred('shard-000001', 'c1-c', 1, 0.2));
  b.push({ key: 'broken', shard: 'shard-000001', teacher: 't', error: 'decode failed: corrupt PNG' });
  await writeShard(store.sub('infer'), 'shard-000000', a);
  await writeShard(store.sub('infer'), 'shard-000001', b);
}

test('grid index agrees with float thresholds at grid points', () => {
  assert.equal(gridIndex(0.57), 57); // 0.57 * 100 = 56.99999999999999
  assert.equal(gridIndex(0.5699999), 56);
  assert.equal(gridIndex(1), 100);
  assert.equal(gridIndex(0.3), 30);
  assert.equal(gridIndex(0), 0);
  assert.equal(thresholdIndex(0.3), 30);
  for (let t = 0; t <= 100; t++) assert.equal(gridIndex(t / 100), t, `grid point ${t}`);
});

test('per-class thresholds, repeat rates and a class with no candidates', async (t) => {
  const store = tempStore(t);
  await constructed(store);
  const s = await selectPseudoLabels(options(store, { perClass: 8 }));
  assert.equal(s.predicted, 18);
  assert.equal(s.failed, 1);
  const [c0, c1, c2] = s.classes;
  assert.deepEqual([c0!.candidates, c0!.threshold, c0!.kept], [15, 0.95, 10]);
  assert.deepEqual([c1!.candidates, c1!.threshold, c1!.kept], [3, 0.3, 2]);
  assert.deepEqual([c2!.candidates, c2!.threshold, c2!.kept, c2!.repeats, c2!.unique], [0, 0.3, 0, 0, 0]);
  // Rate 4 is whole: both class-1 samples are duplicated exactly 4 times.
  const out = [...(await readOut(store.sub('select'), 'shard-000000')), ...(await readOut(store.sub('select'), 'shard-000001'))];
  const c1out = out.filter((r) => r.label === 1);
  assert.deepEqual(c1out.map((r) => [r.key, r.repeats]).sort(), [['c1-a', 4], ['c1-b', 4]]);
  assert.equal(c1!.repeats, 8);
  // Rate 0.8: each kept class-0 sample is kept once or dropped; low-confidence ones never appear.
  const c0out = out.filter((r) => r.label === 0);
  assert.ok(c0out.every((r) => r.repeats === 1 && r.key.startsWith('hi')));
  assert.equal(c0!.unique, c0out.length);
  assert.ok(c0out.length >= 5 && c0out.length <= 10, `kept ${c0out.length} of 10 at rate 0.8`);
  // The failed sample is not a candidate and is not labeled.
  assert.ok(!out.some((r) => r.key === 'broken'));
  assert.deepEqual(s.shards.map((x) => x.shard), ['shard-000000', 'shard-000001']);
});

test('target reached exactly at a threshold picks the highest such grid point', async (t) => {
  const store = tempStore(t);
  const recs = [0.99, 0.98, 0.57, 0.57, 0.4].map((p, i) => pred('shard-000000', `k${i}`, 0, p));
  await writeShard(store.sub('infer'), 'shard-000000', recs);
  const s = await selectPseudoLabels(options(store, { shards: ['shard-000000'], perClass: 4 }));
  assert.equal(s.classes[0]!.threshold, 0.57);
  assert.equal(s.classes[0]!.kept, 4);
  assert.equal(s.classes[0]!.repeats, 4); // rate exactly 1
});

test('stochastic rounding: fixed seed reproduces, another seed differs, totals track the target', async (t) => {
  const store = tempStore(t);
  const recs: PredictionRecord[] = [];
  // 1000 samples of class 0 (target 300 -> rate 0.3), 100 of class 1 (target 300 -> rate 3), 40 of class 2 (rate 7.5).
  for (let i = 0; i < 1000; i++) recs.push(pred('shard-000000', `a${i}`, 0, 0.9));
  for (let i = 0; i < 100; i++) recs.push(pred('shard-000000', `b${i}`, 1, 0.9));
  for (let i = 0; i < 40; i++) recs.push(pred('shard-000000', `c${i}`, 2, 0.9));
  await writeShard(store.sub('infer'), 'shard-000000', recs);
  const run = async (seed: number, out: string) => {
    const s = await selectPseudoLabels(options(store, { shards: ['shard-000000'], perClass: 300, seed, out: store.sub(out) }));
    return { s, records: await readOut(store.sub(out), 'shard-000000') };
  };
  const first = await run(1, 'sel-a');
  const again = await run(1, 'sel-b');
  const other = await run(2, 'sel-c');
  assert.deepEqual(again.records, first.records);
  assert.notDeepEqual(other.records.map((r) => r.key), first.records.map((r) => r.key));
  const [c0, c1, c2] = first.s.classes;
  // Binomial(1000, 0.3): sd 14.5; 5 sd bounds make a false failure practically impossible.
  assert.ok(Math.abs(c0!.repeats - 300) < 73, `class 0 repeats ${c0!.repeats}`);
  assert.equal(c1!.repeats, 300); // whole rate 3
  assert.ok(first.records.filter((r) => r.label === 2).every((r) => r.repeats === 7 || r.repeats === 8));
  assert.ok(Math.abs(c2!.repeats - 300) <= 20, `class 2 repeats ${c2!.repeats}`);
  const eights = first.records.filter((r) => r.label === 2 && r.repeats === 8).length;
  assert.ok(eights > 5 && eights < 35, `${eights} of 40 rounded up at p=0.5`);
});

test('soft labels renormalise the stored top-k, temperature sharpens, hard labels are one-hot', async (t) => {
  const store = tempStore(t);
  const rec: PredictionRecord = { key: 'x', shard: 'shard-000000', teacher: 't', classes: [2, 0, 1], probs: [0.6, 0.2, 0.1], maxProb: 0.6 };
  await writeShard(store.sub('infer'), 'shard-000000', [rec]);
  const label = async (labels: 'soft' | 'hard', temperature: number, out: string) => {
    const s = await selectPseudoLabels(options(store, { shards: ['shard-000000'], perClass: 1, labels, temperature, out: store.sub(out) }));
    const [r] = await readOut(store.sub(out), 'shard-000000');
    return { s, r: r! };
  };
  const soft = await label('soft', 1, 's1');
  assert.deepEqual(soft.r.classes, [2, 0, 1]);
  assertClose(soft.r.probs, [0.6 / 0.9, 0.2 / 0.9, 0.1 / 0.9]);
  assert.equal(soft.r.label, 2);
  assert.equal(soft.r.confidence, 0.6);
  assertClose([soft.s.classes[2]!.meanTruncatedMass!], [0.1]);
  const sharp = await label('soft', 0.5, 's05');
  assertClose(sharp.r.probs, [0.36 / 0.41, 0.04 / 0.41, 0.01 / 0.41]);
  const flat = await label('soft', 2, 's2');
  const z = Math.sqrt(0.6) + Math.sqrt(0.2) + Math.sqrt(0.1);
  assertClose(flat.r.probs, [Math.sqrt(0.6) / z, Math.sqrt(0.2) / z, Math.sqrt(0.1) / z]);
  const hard = await label('hard', 1, 'h');
  assert.deepEqual([hard.r.classes, hard.r.probs], [[2], [1]]);
});

test('pseudo-label accuracy per class from held-back ground truth', async (t) => {
  const store = tempStore(t);
  await constructed(store);
  const truth = [{ key: 'c1-a', label: 1 }, { key: 'c1-b', label: 0 }, { key: 'lo1', label: 0 }];
  const s = await selectPseudoLabels(options(store, { perClass: 8, groundTruth: async function* () { yield* truth; } }));
  assert.equal(s.classes[1]!.accuracy, 0.5);
  assert.equal(s.classes[1]!.withGroundTruth, 2);
  assert.equal(s.classes[2]!.accuracy, null);
});

test('resume: a missing shard output is rewritten identically, present ones are kept', async (t) => {
  const store = tempStore(t);
  await constructed(store);
  const opts = options(store, { perClass: 8 });
  await selectPseudoLabels(opts);
  const before = await store.sub('select').get(pseudoLabelKey('shard-000001'));
  const kept = await store.sub('select').head(pseudoLabelKey('shard-000000'));
  await store.sub('select').delete(pseudoLabelKey('shard-000001'));
  const s = await selectPseudoLabels(opts);
  assert.deepEqual(await store.sub('select').get(pseudoLabelKey('shard-000001')), before);
  assert.equal((await store.sub('select').head(pseudoLabelKey('shard-000000')))!.mtimeMs, kept!.mtimeMs);
  assert.equal(s.classes[1]!.repeats, 8);
});

test('a damaged prediction object fails naming the object and line', async (t) => {
  const store = tempStore(t);
  await store.sub('infer').put(predictionKey('shard-000000'), encodeJsonlGz([pred('shard-000000', 'ok', 0, 0.9), { key: 'bad', shard: 'shard-000000', teacher: 't', classes: [0], probs: [1.5], maxProb: 1 }]));
  await assert.rejects(selectPseudoLabels(options(store, { shards: ['shard-000000'] })), /predictions\/shard-000000\.jsonl\.gz: line 2 is not a prediction record: probs\.0/);
  await store.sub('infer').put(predictionKey('shard-000000'), encodeJsonlGz([pred('shard-000000', 'ok', 7, 0.9)]));
  await assert.rejects(selectPseudoLabels(options(store, { shards: ['shard-000000'] })), /line 1: class 7 out of range \(dataset has 3 classes\)/);
  await store.sub('infer').put(predictionKey('shard-000000'), 'not gzip');
  await assert.rejects(selectPseudoLabels(options(store, { shards: ['shard-000000'] })), /shard-000000\.jsonl\.gz: not a valid gzip stream/);
  await assert.rejects(selectPseudoLabels(options(store, { shards: ['shard-000009'] })), /not found: .*predictions\/shard-000009\.jsonl\.gz/);
  assert.equal(await store.sub('select').head('summary.json'), undefined, 'no summary after a failure');
});

test('pandas reads pseudo-label and prediction objects directly', { skip: needs('pandas') }, async (t) => {
  const store = tempStore(t);
  await constructed(store);
  await selectPseudoLabels(options(store, { perClass: 8 }));
  const script = `
import sys, pandas as pd
p = pd.read_json(sys.argv[1], lines=True, compression='gzip')
q = pd.read_json(sys.argv[2], lines=True, compression='gzip')
print(len(p), int(p.repeats.sum()), sorted(p.columns.tolist()))
print(len(q), int(q.error.notna().sum()))
`;
  const root = (store as FileStore).root;
  const out = execFileSync(testPython(), ['-c', script, join(root, 'select', pseudoLabelKey('shard-000000')), join(root, 'infer', predictionKey('shard-000001'))], { encoding: 'utf8' });
  const mine = await readOut(store.sub('select'), 'shard-000000');
  const [l1, l2] = out.trim().split('\n');
  assert.equal(l1, `${mine.length} ${mine.reduce((a, r) => a + r.repeats, 0)} ['classes', 'confidence', 'key', 'label', 'probs', 'repeats', 'shard']`);
  assert.equal(l2, '7 1');
});

function assertClose(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) < 1e-12, `${a} vs ${expected[i]} at ${i}`));
}
