/**
 * `datasets.maxSamples` (added for the CI-sized manifest): the importer keeps the first N samples
 * of the seeded order of each output — labeled and unlabeled sides of a split, or a plain import —
 * so a CI run can use a seeded subset of Fashion-MNIST instead of all 60,000 + 10,000 images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { openStore } from '../../pipeline/store/open.js';
import { openIdxSource } from '../../stages/import/idx-source.js';
import { importDataset } from '../../stages/import/run-import.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistDir } from '../helpers/fashion-mnist.js';

test('maxSamples caps each side of a split and a plain import to a seeded subset', { skip: needs('fashion-mnist') }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-e2e-max-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = openStore(`file://${dir}`);
  const source = () => openIdxSource(fashionMnistDir(), { split: 'test' });

  const split = await importDataset(await source(), root.sub('split'), { seed: 3, labeledPerClass: 5, limit: { labeled: 20, unlabeled: 30 }, samplesPerShard: 16 });
  const [labeled, unlabeled] = split.outputs;
  assert.equal(labeled!.index.samples, 20);
  assert.equal(unlabeled!.index.samples, 30);
  assert.deepEqual(unlabeled!.index.shards.map((s) => s.samples), [16, 14]);
  // The unlabeled side keeps its held-back labels for exactly the kept samples.
  const truth = (await openDataset(root.sub('split/unlabeled'))).index.groundTruth;
  assert.ok(truth, 'ground truth written');

  // The same plan without the cap keeps more, and a capped plain import is a prefix of the uncapped one.
  const full = await importDataset(await source(), root.sub('full'), { seed: 3, samplesPerShard: 100 });
  const capped = await importDataset(await source(), root.sub('capped'), { seed: 3, limit: { '': 100 }, samplesPerShard: 100 });
  assert.equal(full.outputs[0]!.index.samples, 10000);
  assert.equal(capped.outputs[0]!.index.samples, 100);
  assert.equal(capped.outputs[0]!.index.shards[0]!.sha256, full.outputs[0]!.index.shards[0]!.sha256, 'the cap keeps the first samples of the same seeded order');
  assert.notEqual(capped.outputs[0]!.index.plan, full.outputs[0]!.index.plan, 'a capped import is a different plan');
  await root.close();
});
