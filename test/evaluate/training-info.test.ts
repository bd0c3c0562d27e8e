/**
 * What the report reads about each trained model from the train stage's own outputs (metrics.json,
 * metrics.jsonl, its stage record, model.json metadata): the budget as the trainer batches it, the
 * learning curve (a torn last line of an interrupted stage is skipped), its teacher and its
 * architecture; and the learning-curve chart renders to SVG.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { learningCurveSpec, renderSvg } from '../../pipeline/report/charts.js';
import { writeRecord } from '../../pipeline/runner/record.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { addCarriedBudgets, imagesPerStep, readTrainingInfo, type TrainingInfo } from '../../stages/evaluate/training-info.js';

const arch = { depth: 26, blocks: [2, 2, 2, 2], widthMultiplier: 0.25, imageSize: 28, inputChannels: 1, classes: 10, smallInput: true, seRatio: 0.25, dropoutRate: 0.3 };

test('budget, curve, teacher and architecture of a student stage; missing outputs give nulls', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'training-info-'));
  try {
    const run = new FileStore(dir);
    await writeRecord(run, {
      format: 1, stage: 'train-student-1', kind: 'train', status: 'done', fingerprint: 'f', version: '1',
      config: { role: 'student', train: { batchSize: 32 }, inputs: { data: 'import', pseudo: 'select-1', teacher: 'train-teacher-1' } },
      deps: {}, inputs: {}, outputs: [], host: 'h', pid: 1, attempts: 1, startedAt: '2026-01-01T00:00:00Z',
    });
    const out = run.sub('train-student-1');
    await out.put('metrics.json', JSON.stringify({ role: 'student', steps: 540, trainImages: 980, heldoutImages: 20, heldoutAcc: 0.85, pseudo: { ratio: 3 } }));
    await out.put('metrics.jsonl', [{ epoch: 1, step: 30, heldoutAcc: 0.5 }, { epoch: 2, step: 60, heldoutAcc: 0.7 }, { epoch: 3, step: 90, heldoutAcc: null }].map((e) => JSON.stringify(e)).join('\n') + '\n{"epoch": 4, "st');
    await out.put('model/model.json', JSON.stringify({ modelTopology: {}, userDefinedMetadata: { arch } }));
    const info = await readTrainingInfo(run, 'train-student-1');
    // 32 labeled + round(3 × 32) pseudo-labeled images per step.
    assert.deepEqual(info.budget, { steps: 540, imagesPerStep: 128, images: 540 * 128 });
    assert.deepEqual(info.curve, [{ step: 30, heldoutAcc: 0.5 }, { step: 60, heldoutAcc: 0.7 }]);
    assert.equal(info.teacher, 'train-teacher-1');
    assert.equal(info.startedFrom, null, 'student.init absent: from scratch');
    assert.equal(info.heldoutAcc, 0.85);
    assert.equal(info.heldoutImages, 20);
    // Regularisation is not part of the architecture: a teacher with other dropout compares equal.
    await run.sub('train-teacher-1').put('model/model.json', JSON.stringify({ userDefinedMetadata: { arch: { ...arch, dropoutRate: 0.1 } } }));
    const teacher = await readTrainingInfo(run, 'train-teacher-1');
    assert.equal(teacher.architecture, info.architecture);
    assert.deepEqual({ ...teacher, architecture: null }, { budget: null, heldoutAcc: null, heldoutImages: null, teacher: null, startedFrom: null, architecture: null, curve: [] });

    const svg = await renderSvg(learningCurveSpec([{ stage: 'train-student-1', label: 'student 1', points: info.curve }, { stage: 'train-teacher-1', label: 'teacher 1', points: [{ step: 10, heldoutAcc: 0.4 }] }]));
    assert.match(svg, /^<svg /);
    assert.match(svg, /student 1/);
    assert.match(svg, /optimizer step/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('images per step: the labeled batch is capped by the training images; pseudo-labeled images at least 1', () => {
  assert.equal(imagesPerStep(128, 980, null), 128);
  assert.equal(imagesPerStep(4096, 980, null), 980);
  assert.equal(imagesPerStep(32, 980, 3), 128);
  assert.equal(imagesPerStep(1, 980, 0.2), 2);
});

test('student.init previous-student: round 2 started from round 1, whose images it carries even when round 1 is not evaluated', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'training-info-'));
  try {
    const run = new FileStore(dir);
    const student = async (k: number) => {
      const stage = `train-student-${k}`;
      const teacher = k === 1 ? 'train-teacher-1' : `train-student-${k - 1}`;
      await writeRecord(run, {
        format: 1, stage, kind: 'train', status: 'done', fingerprint: 'f', version: '1',
        config: { role: 'student', iteration: k, train: { batchSize: 16, student: { init: 'previous-student' } }, inputs: { data: 'import', pseudo: `select-${k}`, teacher } },
        deps: {}, inputs: {}, outputs: [], host: 'h', pid: 1, attempts: 1, startedAt: '2026-01-01T00:00:00Z',
      });
      await run.sub(stage).put('metrics.json', JSON.stringify({ role: 'student', steps: 4000, trainImages: 980, pseudo: { ratio: 3 } }));
    };
    await student(1);
    await student(2);
    const infos = new Map<string, TrainingInfo>([['train-student-2', await readTrainingInfo(run, 'train-student-2')]]);
    assert.equal(infos.get('train-student-2')!.startedFrom, 'train-student-1');
    assert.equal((await readTrainingInfo(run, 'train-student-1')).startedFrom, null, 'round 1 starts from scratch');
    await addCarriedBudgets(run, infos);
    assert.deepEqual(infos.get('train-student-2')!.budget, { steps: 4000, imagesPerStep: 64, images: 256_000, carriedImages: 256_000, carriedSteps: 4000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
