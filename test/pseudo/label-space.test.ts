/**
 * The run's label space is the labeled set's (the teacher's): an unlabeled pool imported from a
 * folder that happens to have 2 sub-directories must go through import, infer and select with the
 * teacher's 10 classes. (Before, the pool's folder names became its classes and select failed with
 * "class 8 out of range (dataset has 2 classes)".)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import type { SelectSummary } from '../../stages/select/select.js';
import { needs } from '../helpers/extras.js';
import { testContext } from './context.js';
import { fashionPngs, FMNIST_CLASSES, inferConfig, TEACHER_MODEL, writeTeacher } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'label-space-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('an unlabeled pool with 2 sub-directories: import, infer and select use the labeled set\'s 10 classes', { skip: needs('fashion-mnist') }, async () => {
  const root = new FileStore(join(dir, 'store'));
  const run = root.sub('runs/pool');
  const images = await fashionPngs(40);
  // The labeled set: an existing dataset with the 10 Fashion-MNIST classes.
  const labeled = new DatasetWriter(root.sub('data/labeled'), { classes: FMNIST_CLASSES, labeled: true, plan: 'labeled' });
  await labeled.begin();
  await labeled.writeShard(0, images.slice(0, 10).map((im, i) => ({ key: `l${i}`, ext: 'png' as const, image: im.png, label: im.label })));
  await labeled.finish(1);
  // The pool: 30 images in two folders that mean nothing.
  for (const [i, im] of images.slice(10).entries()) {
    const sub = join(dir, 'pool', i % 2 ? 'batch-2' : 'batch-1');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `${i}.png`), im.png);
  }

  const lines: string[] = [];
  const importStage = await import('../../stages/import/index.js');
  await importStage.runStage(testContext(run, root, 'import/', lines), {
    datasets: { labeled: 'data/labeled', unlabeled: `folder:${join(dir, 'pool')}`, eval: 'data/labeled', samplesPerShard: 16 },
    seed: 0,
  });
  const refs = JSON.parse((await run.get('import/datasets.json')).toString()) as { unlabeled: string; classes: string[] };
  assert.deepEqual(refs.classes, FMNIST_CLASSES, 'the run\'s classes are the labeled set\'s');
  const pool = await openDataset(root.sub(refs.unlabeled));
  assert.deepEqual([pool.index.labeled, pool.index.classes, pool.index.samples, pool.index.groundTruth], [false, [], 30, undefined]);
  assert.ok(lines.some((l) => /as an unlabeled set/.test(l)), lines.join('\n'));

  await writeTeacher(run.sub('train-teacher-1/model'));
  const infer = await import('../../stages/infer/index.js');
  await infer.runStage({ ...testContext(run, root, 'infer-1/'), backend: 'wasm' }, {
    iteration: 1,
    infer: inferConfig({ workers: 1 }),
    seed: 0,
    model: { name: TEACHER_MODEL },
    inputs: { data: 'import', teacher: 'train-teacher-1' },
  });
  const summary = await readInferSummary(run, 'infer-1');
  assert.equal(summary.numClasses, 10);
  assert.deepEqual(summary.classes, FMNIST_CLASSES);

  const select = await import('../../stages/select/index.js');
  await select.runStage(testContext(run, root, 'select-1/'), { iteration: 1, select: { threshold: 0, labels: 'soft', temperature: 1 }, seed: 0, inputs: { data: 'import', predictions: 'infer-1' } });
  const sel = JSON.parse((await run.get('select-1/summary.json')).toString()) as SelectSummary;
  assert.equal(sel.predicted, 30);
  assert.equal(sel.classes.length, 10);
  assert.equal(sel.accuracy, null, 'no ground truth: the pool carries none');
});
