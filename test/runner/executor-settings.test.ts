/**
 * Where infer workers run (pseudo.infer.executor and its slurm/external settings) never changes
 * what they compute, so it is not part of the infer stage's fingerprint: the CI manifest with
 * `executor: slurm` has the same chain configs and fingerprints as without, and the settings still
 * reach the stage (beside its config). A manifest that names the executor badly is a manifest error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseManifest } from '../../pipeline/manifest/load.js';
import { buildChain } from '../../pipeline/runner/chain.js';
import { canonicalJson, stageFingerprint } from '../../pipeline/runner/fingerprint.js';
import { repoRoot } from '../helpers/s3.js';

const CI = path.join(repoRoot(), 'manifests', 'fashion-mnist-ci.yaml');
const text = readFileSync(CI, 'utf8');
const LINE = '  infer: { topK: 5, batchSize: 250 }';

function withInfer(extra: string) {
  assert.ok(text.includes(LINE));
  return parseManifest(text.replace(LINE, `  infer: { topK: 5, batchSize: 250, ${extra} }`), CI);
}

test('executor settings: same configs and fingerprints, settings passed beside the config', () => {
  const local = buildChain(parseManifest(text, CI));
  const slurm = buildChain(withInfer('executor: slurm, slurm: { tasks: 8, partition: gpu, extraArgs: ["--qos=low"] }'));
  const fingerprints = (chain: typeof local) => {
    const fp: Record<string, string> = {};
    for (const s of chain) fp[s.id] = stageFingerprint(s, Object.fromEntries(s.deps.map((d) => [d, fp[d]!])));
    return fp;
  };
  assert.deepEqual(slurm.map((s) => canonicalJson(s.config)), local.map((s) => canonicalJson(s.config)));
  assert.deepEqual(fingerprints(slurm), fingerprints(local));
  const infer = slurm.find((s) => s.id === 'infer-1')!;
  assert.ok(!('executor' in (infer.config as { infer: object }).infer), 'not in the hashed config');
});

test('executor settings: a bad executor or a bad slurm field is a manifest error naming the field', () => {
  assert.throws(() => withInfer('executor: kubernetes'), /pseudo\.infer\.executor/);
  assert.throws(() => withInfer('executor: slurm, slurm: { tasks: 0 }'), /pseudo\.infer\.slurm\.tasks/);
  assert.throws(() => withInfer('executor: slurm, slurm: { partiton: gpu }'), /pseudo\.infer\.slurm/);
});
