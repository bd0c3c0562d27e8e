/**
 * The training images and steps behind a model's weights follow its chain of starting points
 * (student.init): a student that continued the previous student carries that student's own and
 * carried images and steps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainingBudget } from '../../pipeline/report/types.js';
import { carryBudgets } from '../../stages/evaluate/training-info.js';

type Info = { budget: TrainingBudget | null; startedFrom: string | null };
const own = (images: number): TrainingBudget => ({ steps: images / 64, imagesPerStep: 64, images });

test('carried images: three rounds that each continue the previous student', () => {
  const infos = new Map<string, Info>([
    ['train-teacher-1', { budget: own(256_000), startedFrom: null }],
    ['train-student-3', { budget: own(256_000), startedFrom: 'train-student-2' }],
    ['train-student-1', { budget: own(256_000), startedFrom: null }],
    ['train-student-2', { budget: own(256_000), startedFrom: 'train-student-1' }],
    ['train-baseline', { budget: own(768_000), startedFrom: null }],
  ]);
  carryBudgets(infos);
  const carried = (s: string) => infos.get(s)!.budget?.carriedImages;
  assert.deepEqual(['train-teacher-1', 'train-student-1', 'train-student-2', 'train-student-3', 'train-baseline'].map(carried), [undefined, undefined, 256_000, 512_000, undefined]);
  assert.deepEqual(['train-student-2', 'train-student-3'].map((s) => infos.get(s)!.budget?.carriedSteps), [4_000, 8_000]);
  assert.equal(infos.get('train-student-3')!.budget!.images, 256_000, 'its own images stay its own');
});

test('carried images: an unreadable budget down the chain leaves the budget unknown, not a part of it', () => {
  const infos = new Map<string, Info>([
    ['train-student-1', { budget: null, startedFrom: 'train-teacher-1' }],
    ['train-student-2', { budget: own(256_000), startedFrom: 'train-student-1' }],
    ['train-student-9', { budget: own(256_000), startedFrom: 'train-missing' }],
  ]);
  carryBudgets(infos);
  assert.equal(infos.get('train-student-2')!.budget, null);
  assert.equal(infos.get('train-student-9')!.budget, null);
});

test('carried images: a cycle of starting points is an error naming the stages', () => {
  const infos = new Map<string, Info>([
    ['a', { budget: own(64), startedFrom: 'b' }],
    ['b', { budget: own(64), startedFrom: 'a' }],
  ]);
  assert.throws(() => carryBudgets(infos), /a → b → a/);
});
