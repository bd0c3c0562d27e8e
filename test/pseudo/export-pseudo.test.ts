/**
 * `selftrain dataset export-pseudo`: a run's selected pseudo-labeled set as a standard labeled
 * WebDataset, read back with Python's tarfile (/usr/bin/python3, an independent reader): `.cls`
 * counts per class and in total equal select's summary (unique samples; with repeats materialised,
 * the pseudo-labeled total), every `.json` holds the soft target, and the images are the unlabeled
 * set's own bytes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { verifyDataset } from '../../pipeline/data/verify.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import type { SelectSummary } from '../../stages/select/select.js';
import { cliArgv } from '../helpers/cli.js';
import { needs } from '../helpers/extras.js';
import { testContext } from './context.js';
import { FMNIST_CLASSES, inferConfig, TEACHER_MODEL, writeTeacher, writeUnlabeled } from './fixtures.js';

const exec = promisify(execFile);
const NEEDS = needs('fashion-mnist');
let dir: string;
let root: FileStore;
let summary: SelectSummary;

/** Counts what a WebDataset directory holds, as a PyTorch user's tarfile-based loader sees it. */
const READER = `
import collections, glob, hashlib, json, sys, tarfile
out = {"cls": collections.Counter(), "samples": 0, "repeats": 0, "probs_ok": True, "images": {}}
for path in sorted(glob.glob(sys.argv[1] + "/shard-*.tar")):
    with tarfile.open(path) as tar:
        members = {}
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            members.setdefault(key, {})[ext] = tar.extractfile(m).read()
        for key, parts in members.items():
            out["samples"] += 1
            out["cls"][int(parts["cls"])] += 1
            meta = json.loads(parts["json"])
            out["repeats"] += meta["repeats"]
            out["probs_ok"] &= abs(sum(meta["probs"]) - 1) < 1e-6 and len(meta["probs"]) == len(meta["classes"])
            out["images"][key] = hashlib.sha256(parts["png"]).hexdigest()
out["cls"] = {str(k): v for k, v in sorted(out["cls"].items())}
print(json.dumps(out))
`;

interface Read {
  cls: Record<string, number>;
  samples: number;
  repeats: number;
  probs_ok: boolean;
  images: Record<string, string>;
}

async function readWithPython(path: string): Promise<Read> {
  return JSON.parse((await exec('/usr/bin/python3', ['-c', READER, path], { maxBuffer: 1 << 24 })).stdout) as Read;
}

before(async () => {
  if (NEEDS) return; // every test below skips
  dir = mkdtempSync(join(tmpdir(), 'export-pseudo-'));
  root = new FileStore(dir);
  await writeUnlabeled(root.sub('data/unlabeled'), { shards: [30, 30, 30, 20] });
  const run = root.sub('runs/exp');
  await run.put('import/datasets.json', JSON.stringify({ labeled: 'data/none', unlabeled: 'data/unlabeled', eval: 'data/none', classes: FMNIST_CLASSES }));
  await writeTeacher(run.sub('train-teacher-1/model'));
  const infer = await import('../../stages/infer/index.js');
  await infer.runStage({ ...testContext(run, root, 'infer-1/'), backend: 'wasm' }, { iteration: 1, infer: inferConfig({ workers: 1 }), seed: 0, model: { name: TEACHER_MODEL }, inputs: { data: 'import', teacher: 'train-teacher-1' } });
  const select = await import('../../stages/select/index.js');
  // The teacher is untrained (confidences near 1/10): a zero floor and a per-class target above the
  // candidates (110 images in all) make repeats > 1 appear, so materialising them shows in the counts.
  await select.runStage(testContext(run, root, 'select-1/'), { iteration: 1, select: { threshold: 0, perClass: 200, labels: 'soft', temperature: 1 }, seed: 0, inputs: { data: 'import', predictions: 'infer-1' } });
  summary = JSON.parse((await run.get('select-1/summary.json')).toString()) as SelectSummary;
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('export-pseudo: tarfile reads .cls counts equal to the select summary; repeats listed or materialised', { skip: NEEDS }, async () => {
  assert.ok(summary.pseudoLabeled > summary.unique, `some samples repeat (unique ${summary.unique}, with repeats ${summary.pseudoLabeled})`);
  const listed = join(dir, 'export-list');
  const out = await exec(...cliArgv('dataset', 'export-pseudo', `${root.uri}/runs/exp`, '--to', `file://${listed}`));
  assert.match(out.stdout, new RegExp(`${summary.unique} samples in \\d+ shards, .*: select-1's ${summary.unique} pseudo-labeled samples \\(${summary.pseudoLabeled} with repeats, listed in each \\.json\\), 10 classes`));
  const read = await readWithPython(listed);
  console.log(`select summary: ${summary.unique} unique, ${summary.pseudoLabeled} with repeats; tarfile: ${read.samples} samples, .cls per class ${JSON.stringify(read.cls)}, repeats in .json ${read.repeats}`);
  const perClass = Object.fromEntries(summary.classes.filter((c) => c.unique > 0).map((c) => [String(c.cls), c.unique]));
  assert.equal(read.samples, summary.unique);
  assert.deepEqual(read.cls, perClass);
  assert.equal(read.repeats, summary.pseudoLabeled);
  assert.ok(read.probs_ok, 'every .json holds a distribution over its classes');
  // The images are the unlabeled set's own bytes, under their keys.
  const { readDataset } = await import('../../pipeline/data/reader.js');
  const { createHash } = await import('node:crypto');
  let matched = 0;
  for await (const s of readDataset(root.sub('data/unlabeled'))) {
    const h = read.images[s.key];
    if (h === undefined) continue;
    assert.equal(h, createHash('sha256').update(s.image).digest('hex'), s.key);
    matched++;
  }
  assert.equal(matched, summary.unique);
  assert.deepEqual((await verifyDataset(`file://${listed}`)).problems, [], 'also a valid selftrain dataset');

  const materialised = join(dir, 'export-materialised');
  await exec(...cliArgv('dataset', 'export-pseudo', `${root.uri}/runs/exp`, '--to', `file://${materialised}`, '--repeats', 'materialise'));
  const m = await readWithPython(materialised);
  assert.equal(m.samples, summary.pseudoLabeled, 'one sample per repeat');
  assert.deepEqual(m.cls, Object.fromEntries(summary.classes.filter((c) => c.repeats > 0).map((c) => [String(c.cls), c.repeats])));
});

test('export-pseudo: a run without a finished select stage is a clear error', { skip: NEEDS }, async () => {
  const err = await exec(...cliArgv('dataset', 'export-pseudo', `${root.uri}/data`, '--to', `file://${join(dir, 'nothing')}`)).then(
    () => assert.fail('exported from a run without select'),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(err.code, 1);
  assert.match(err.stderr, /error: .*\/data: no finished select stage \(no select-<k>\/summary\.json\)/);
});
