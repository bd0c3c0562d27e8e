/**
 * A student that starts from trained weights (student.init) carries their training images: the
 * chain gives the labeled-only control and the all-labels bound that budget, and the teacher is the
 * control only when it trained for at least as many steps and images. Checked on the shipped
 * manifests' chains.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startsFromTeacher } from '../../pipeline/contracts/train.js';
import { parseManifest } from '../../pipeline/manifest/load.js';
import { buildChain, teacherIsControl } from '../../pipeline/runner/chain.js';
import { repoRoot } from '../helpers/s3.js';

const DEMO = path.join(repoRoot(), 'manifests', 'fashion-mnist.yaml');
const FULL = path.join(repoRoot(), 'manifests', 'fashion-mnist-full.yaml');
const INIT_LINE = 'student: { ratio: 3, targets: as-selected, init: scratch }';

/** The demo manifest with `iterations` rounds, the given student.init, and the control and bound on. */
function demoWith(init: string, iterations: number) {
  const text = readFileSync(DEMO, 'utf8');
  assert.ok(text.includes(INIT_LINE) && text.includes('iterations: 1\n') && text.includes('baseline: false'));
  const edited = text
    .replace(INIT_LINE, INIT_LINE.replace('scratch', init))
    .replace('iterations: 1\n', `iterations: ${iterations}\n`)
    .replace('baseline: false', 'baseline: true');
  return parseManifest(edited, DEMO);
}

type TrainConfig = { role: string; iteration?: number; budgetOf?: { steps?: number }; train: { student: { init: string } } };
const trainStages = (m: ReturnType<typeof demoWith>) =>
  Object.fromEntries(buildChain(m).filter((s) => s.kind === 'train').map((s) => [s.id, s.config as unknown as TrainConfig]));

test('student init: from scratch, the control and the bound get one student budget and the teacher is the control', () => {
  const m = demoWith('scratch', 3);
  const stages = trainStages(m);
  assert.equal(teacherIsControl(m), true);
  assert.equal(stages['train-control'], undefined, 'no control stage: the teacher is the control');
  assert.equal(stages['train-baseline']!.budgetOf!.steps, 4000);
  for (const k of [1, 2, 3]) assert.equal(startsFromTeacher(stages[`train-student-${k}`]!), false);
});

test('student init previous-student: rounds 2+ start from their teacher; control and bound carry every round', () => {
  const m = demoWith('previous-student', 3);
  const stages = trainStages(m);
  assert.deepEqual([1, 2, 3].map((k) => startsFromTeacher(stages[`train-student-${k}`]!)), [false, true, true]);
  // 3 rounds of 4,000 steps x 64 images = 768,000 images; the teacher's 256,000 do not qualify.
  assert.equal(teacherIsControl(m), false);
  assert.equal(stages['train-control']!.budgetOf!.steps, 12_000);
  assert.equal(stages['train-baseline']!.budgetOf!.steps, 12_000);
});

test('student init teacher: every round starts from its teacher, and the first teacher\'s images count too', () => {
  const m = demoWith('teacher', 1);
  const stages = trainStages(m);
  assert.equal(startsFromTeacher(stages['train-student-1']!), true);
  assert.equal(teacherIsControl(m), false, 'a student that continues its teacher has more training than the teacher');
  // 4,000 own steps + the teacher's 4,000 x 64 images in steps of 64.
  assert.equal(stages['train-control']!.budgetOf!.steps, 4000 + 4000);
});

test('fashion-mnist-full: three rounds continuing the previous student, the control and the bound on 768,000 images', () => {
  const m = parseManifest(readFileSync(FULL, 'utf8'), FULL);
  const stages = trainStages(m);
  assert.equal(m.iterations, 3);
  // The last student carries three rounds' training: the teacher (one round's) cannot be its control.
  assert.equal(teacherIsControl(m), false);
  assert.equal(stages['train-control']!.budgetOf!.steps, 12_000);
  assert.equal(stages['train-baseline']!.budgetOf!.steps, 12_000);
  assert.deepEqual([1, 2, 3].map((k) => startsFromTeacher(stages[`train-student-${k}`]!)), [false, true, true]);
});

test('student.continuedLrScale: absent, the stage configs are as before; set, only the students it changes carry it', () => {
  // Absent (the demo): no key anywhere, so the stages of runs made before the setting keep their fingerprints.
  const before = trainStages(demoWith('previous-student', 2));
  for (const cfg of Object.values(before)) assert.equal('continuedLrScale' in cfg.train.student, false);
  const text = readFileSync(DEMO, 'utf8').replace(INIT_LINE, INIT_LINE.replace('init: scratch', 'init: previous-student, continuedLrScale: 0.3')).replace('baseline: false', 'baseline: true');
  const stages = trainStages(parseManifest(text.replace('iterations: 1\n', 'iterations: 2\n'), DEMO));
  const scaleOf = (id: string) => (stages[id]!.train.student as { continuedLrScale?: number }).continuedLrScale;
  assert.equal(scaleOf('train-student-2'), 0.3);
  // Round 1 starts from scratch: the setting does not change it, so it is not in its config either.
  assert.equal(scaleOf('train-student-1'), undefined);
  assert.deepEqual(stages['train-student-1'], before['train-student-1']);
  // The bound's budget comes from the student's images alone: the same config as without the setting.
  assert.deepEqual(stages['train-baseline'], before['train-baseline']);
  assert.deepEqual(stages['train-control'], before['train-control']);
});
