/**
 * The report's statistics and headline: Wilson intervals and exact McNemar p-values against
 * reference values (statsmodels 0.13 `proportion_confint(method='wilson')` and
 * `mcnemar(exact=True)`, scipy 1.10 `binomtest`, Debian bookworm), and the summary/report.md of
 * hand-built evaluations: a student below its teacher is stated first, the gap-closed figure only
 * appears when the all-labels bound is above the teacher, and the teacher counts as the labeled-only
 * control only with the student's architecture and at least its budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMarkdown } from '../../pipeline/report/markdown.js';
import { CorrectnessRecorder, decodeCorrectness } from '../../pipeline/report/per-image.js';
import { binomialHalfCdf, mcnemarExact, mcnemarExactP, wilsonInterval } from '../../pipeline/report/stats.js';
import { buildSummary, gapClosed, type EvaluatedModel } from '../../pipeline/report/summary.js';
import type { ModelEvaluation, ModelRole, Report } from '../../pipeline/report/types.js';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol * Math.max(1e-300, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('Wilson 95 % intervals equal statsmodels proportion_confint(method="wilson")', () => {
  const cases: [number, number, number, number][] = [
    [7917, 10000, 0.7836294611591803, 0.7995465141913669],
    [8613, 10000, 0.8543868550826181, 0.8679356676947307],
    [0, 20, 0.0, 0.1611251580528194],
    [20, 20, 0.8388748419471804, 1],
    [19, 20, 0.7638688065532577, 0.9911185511992044],
    [81, 100, 0.7222115462093562, 0.8748524849023126],
  ];
  for (const [k, n, lo, hi] of cases) {
    const r = wilsonInterval(k, n);
    assert.ok(Math.abs(r.low - lo) < 1e-12 && Math.abs(r.high - hi) < 1e-12, `${k}/${n}: ${r.low}..${r.high} vs ${lo}..${hi}`);
  }
  assert.throws(() => wilsonInterval(3, 0), /at least one trial/);
  assert.throws(() => wilsonInterval(5, 4), /outside 0\.\.4/);
});

test('exact McNemar p-values equal statsmodels mcnemar(exact=True) / scipy binomtest', () => {
  // Small ones by hand: 2 · P(X ≤ 2 | n=10) = 2 · (1 + 10 + 45) / 1024.
  close(mcnemarExactP(2, 8), 112 / 1024, 1e-12, '2/8');
  close(mcnemarExactP(0, 5), 2 / 32, 1e-12, '0/5');
  assert.equal(mcnemarExactP(5, 5), 1);
  assert.equal(mcnemarExactP(0, 0), 1);
  assert.equal(mcnemarExactP(1, 0), 1);
  close(mcnemarExactP(312, 369), 0.031803370858785214, 1e-9, '312/369');
  close(mcnemarExactP(120, 437), 2.6829715890009084e-43, 1e-9, '120/437');
  close(mcnemarExactP(1500, 1800), 1.9051549387656345e-7, 1e-9, '1500/1800');
  // Symmetric in the two models; the CDF is a distribution function.
  assert.equal(mcnemarExactP(437, 120), mcnemarExactP(120, 437));
  assert.equal(binomialHalfCdf(-1, 10), 0);
  assert.equal(binomialHalfCdf(10, 10), 1);
  close(binomialHalfCdf(5, 10), 638 / 1024, 1e-12, 'P(X<=5|10)');
  // Paired counts from per-image results.
  const r = mcnemarExact([1, 1, 0, 0, 1, 0], [1, 0, 1, 1, 1, 0]);
  assert.deepEqual({ ...r, pValue: undefined }, { n: 6, bothRight: 2, onlyFirst: 1, onlySecond: 2, bothWrong: 1, difference: 1 / 6, pValue: undefined });
  assert.equal(r.pValue, 1);
  assert.throws(() => mcnemarExact([1], [1, 0]), /same images/);
});

test('per-image correctness round-trips through its bitset; the image hash depends on order', () => {
  const bits = Array.from({ length: 37 }, (_, i) => (i * 7) % 3 === 0);
  const a = new CorrectnessRecorder();
  bits.forEach((b, i) => a.add(`shard-0/k${i}`, b));
  const r = a.result();
  assert.equal(r.count, 37);
  assert.deepEqual([...decodeCorrectness(r, 'x')], bits.map(Number));
  const b = new CorrectnessRecorder();
  [...bits.keys()].reverse().forEach((i) => b.add(`shard-0/k${i}`, bits[i]!));
  assert.notEqual(b.result().imagesSha256, r.imagesSha256);
  assert.throws(() => decodeCorrectness({ ...r, count: 100 }, 'models/x.json'), /models\/x\.json: .* expected 13 for 100 images/);
});

/** A model evaluation whose per-image results are `correct` (same image ids for every model). */
function evaluation(stage: string, role: ModelRole, iteration: number | null, correct: boolean[]): ModelEvaluation {
  const rec = new CorrectnessRecorder();
  correct.forEach((c, i) => rec.add(`shard-000000/e${i}`, c));
  const right = correct.filter(Boolean).length;
  return {
    format: 1,
    stage,
    role,
    iteration,
    modelId: `${stage}@0`,
    evalDataset: 'file:///eval',
    preprocessing: { imageSize: 28, channels: 1, cropFraction: 0.875, mean: [114.5], std: [57.6] },
    skipped: 0,
    seconds: 1,
    imagesPerSecond: 1,
    backend: 'wasm',
    metrics: { samples: correct.length, topK: { '1': right / correct.length }, top1: right / correct.length, perClass: [], confusion: [] },
    perImage: rec.result(),
  };
}

const N = 1000;
/** `right` of N images correct; the first `shared` of them shared with every other model built so. */
const pattern = (right: number, offset: number) => Array.from({ length: N }, (_, i) => (i + offset) % N < right);
const ARCH = '[26,[2,2,2,2],0.25,28,1,10,true,0.25]';
const model = (e: ModelEvaluation, images: number, extra: Partial<EvaluatedModel> = {}): EvaluatedModel => ({
  evaluation: e,
  budget: { steps: images / 128, imagesPerStep: 128, images },
  heldoutAcc: 0.8,
  heldoutImages: 20,
  teacher: e.role === 'student' ? 'train-teacher-1' : null,
  architecture: ARCH,
  ...extra,
});

function report(models: EvaluatedModel[]): Report {
  const parts = buildSummary(models, 1234.4);
  return {
    format: 2,
    run: 'file:///r',
    generatedAt: 't',
    backend: 'wasm',
    evalDataset: 'file:///eval',
    classes: ['a', 'b'],
    ...parts,
    pseudoLabelPrecision: 0.9,
    curves: [],
    models: models.map((m) => m.evaluation),
    pseudo: [],
    stages: [],
    charts: [],
  };
}

test('a student below its teacher is stated plainly at the top, with its p-value; no gap-closed figure when the bound is below the teacher', () => {
  // Teacher 80 %, student 70 % (images 100..799 right vs 0..699: 100 discordant each way... shifted), bound 75 %.
  const teacher = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000);
  const student = model(evaluation('train-student-1', 'student', 1, pattern(700, 50)), 128_000, { heldoutAcc: 0.7 });
  const bound = model(evaluation('train-baseline', 'baseline', null, pattern(750, 0)), 128_000);
  const r = report([teacher, student, bound]);
  const s = r.summary;
  assert.deepEqual(Object.keys(s).sort(), ['allLabelsTop1', 'controlTop1', 'pValueVsControl', 'pValueVsTeacher', 'studentMinusControl', 'studentMinusTeacher', 'studentTop1', 'teacherTop1', 'wallSeconds']);
  assert.equal(s.teacherTop1, 0.8);
  assert.equal(s.studentTop1, 0.7);
  assert.equal(s.allLabelsTop1, 0.75);
  close(s.studentMinusTeacher!, -0.1, 1e-12, 'difference');
  // Discordant: teacher-only right = images 650..799 minus ... computed from the patterns directly.
  const t = pattern(800, 0), st = pattern(700, 50);
  const b = t.filter((x, i) => x && !st[i]).length, c = t.filter((x, i) => !x && st[i]).length;
  assert.equal(s.pValueVsTeacher, mcnemarExactP(b, c));
  assert.ok(s.pValueVsTeacher! < 1e-10);
  // Same architecture and budget: the teacher is the control.
  assert.equal(r.control.kind, 'teacher');
  assert.equal(s.controlTop1, s.teacherTop1);
  assert.equal(s.pValueVsControl, s.pValueVsTeacher);
  assert.equal(s.wallSeconds, 1234);
  assert.equal(gapClosed(s), null);

  const md = renderMarkdown(r);
  const first = md.indexOf('**The student is below its teacher**');
  assert.ok(first > 0 && first < md.indexOf('## Summary'), 'stated before the summary table');
  assert.match(md, /below its teacher\*\*: −10\.00 points \(student 1 70\.00 %, teacher 1 80\.00 %; McNemar p = \d\.\de-\d+\)/);
  assert.match(md, /On the labeled hold-out \(20 images\) the student also ends below its teacher: 70\.00 % vs 80\.00 %/);
  assert.doesNotMatch(md, /Gap|closed by the student|success/i);
  assert.match(md, /\| teacher 1 \| `train-teacher-1` \| 80\.00 % \| 77\.41 % – 82\.36 % \| 1,000 steps × 128 = 128,000 images \| 80\.00 % \|/);
  assert.match(md, /\| student 1 − its teacher \(teacher 1\) \| −10\.00 points \| \d+ \| \d+ \| \d\.\de-\d+ \|/);
  assert.match(md, /Labeled-only control: the teacher \(`train-teacher-1`\)/);
});

test('the gap-closed figure appears only when the bound is above the teacher; a student that beats it says so', () => {
  const teacher = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000);
  const student = model(evaluation('train-student-1', 'student', 1, pattern(860, 0)), 128_000);
  const bound = model(evaluation('train-baseline', 'baseline', null, pattern(900, 0)), 128_000);
  const r = report([teacher, student, bound]);
  close(gapClosed(r.summary)!, 0.6, 1e-12, 'gap closed');
  const md = renderMarkdown(r);
  assert.match(md, /\| Gap teacher → all-labels bound closed by the student \| 60 % \|/);
  assert.match(md, /The student beats its teacher by \+6\.00 points/);
  // Without a bound: no allLabelsTop1 key at all, and no gap figure.
  const noBound = report([teacher, student]);
  assert.equal('allLabelsTop1' in noBound.summary, false);
  assert.doesNotMatch(renderMarkdown(noBound), /Gap/);
  assert.match(renderMarkdown(noBound), /not trained \(`evaluate.baseline: false`\)/);
});

test('over three rounds: each student against its own teacher, the last against the first teacher, and the gap closed from each', () => {
  const teacher = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000);
  const s1 = model(evaluation('train-student-1', 'student', 1, pattern(840, 0)), 128_000);
  const s2 = model(evaluation('train-student-2', 'student', 2, pattern(860, 0)), 128_000, { teacher: 'train-student-1' });
  const s3 = model(evaluation('train-student-3', 'student', 3, pattern(870, 0)), 128_000, { teacher: 'train-student-2' });
  const bound = model(evaluation('train-baseline', 'baseline', null, pattern(900, 0)), 128_000);
  const r = report([teacher, s1, s2, s3, bound]);
  assert.equal(r.summary.teacherTop1, 0.86, 'the last round\'s teacher');
  assert.equal(r.summary.firstTeacherTop1, 0.8);
  close(gapClosed(r.summary)!, 0.25, 1e-12, 'from its own teacher: 1 of 4 points');
  close(gapClosed(r.summary, 'first teacher')!, 0.7, 1e-12, 'from the first teacher: 7 of 10 points');
  assert.deepEqual(
    r.comparisons.map((c) => [c.first, c.second]),
    [['train-teacher-1', 'train-student-1'], ['train-student-1', 'train-student-2'], ['train-student-2', 'train-student-3'], ['train-teacher-1', 'train-student-3']],
  );
  const md = renderMarkdown(r);
  assert.match(md, /\| Gap teacher → all-labels bound closed by the student \| 25 % \|/);
  assert.match(md, /\| Gap first teacher → all-labels bound closed by the last student \| 70 % \|/);
  // One round: no first-teacher key, no second gap line.
  const one = report([teacher, s1, bound]);
  assert.equal('firstTeacherTop1' in one.summary, false);
  assert.doesNotMatch(renderMarkdown(one), /first teacher/);
});

test('the teacher is the control only with the student\'s architecture and at least its steps and images; a control stage wins', () => {
  const teacherSmall = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 64_000);
  const student = model(evaluation('train-student-1', 'student', 1, pattern(860, 0)), 128_000);
  let r = report([teacherSmall, student]);
  assert.equal(r.control.kind, 'none');
  assert.match(r.control.reason, /trained for 500 steps and 64,000 images, less than the student's 1,000 steps and 128,000 images: a labeled-only control needs at least the student's steps and images/);
  assert.equal(r.summary.controlTop1, null);
  assert.equal(r.summary.pValueVsControl, null);
  assert.ok(r.findings.some((f) => f.startsWith('No labeled-only control')));

  // The student's images in half its steps (batch 256): no control either.
  const teacherBigSteps = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000, { budget: { steps: 500, imagesPerStep: 256, images: 128_000 } });
  r = report([teacherBigSteps, student]);
  assert.equal(r.control.kind, 'none');
  assert.match(r.control.reason, /500 steps and 128,000 images, less than the student's 1,000 steps and 128,000 images/);
  r = report([model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000), student]);
  assert.equal(r.control.kind, 'teacher');
  assert.match(r.control.reason, /at least the student's budget \(1,000 steps and 128,000 images vs 1,000 steps and 128,000 images\)/);

  const wider = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 256_000, { architecture: '[26,[2,2,2,2],0.5,28,1,10,true,0.25]' });
  r = report([wider, student]);
  assert.equal(r.control.kind, 'none');
  assert.match(r.control.reason, /not the student's architecture/);

  const control = model(evaluation('train-control', 'control', null, pattern(820, 0)), 128_000);
  r = report([teacherSmall, student, control]);
  assert.equal(r.control.kind, 'stage');
  assert.equal(r.summary.controlTop1, 0.82);
  close(r.summary.studentMinusControl!, 0.04, 1e-12, 'vs control');
  assert.equal(r.summary.pValueVsControl, mcnemarExactP(0, 40));
  assert.ok(r.comparisons.some((c) => c.first === 'train-control' && c.second === 'train-student-1'));
});

test('iterations: the summary compares the last student with its own teacher (the previous student)', () => {
  const teacher = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000);
  const s1 = model(evaluation('train-student-1', 'student', 1, pattern(850, 0)), 128_000);
  const s2 = model(evaluation('train-student-2', 'student', 2, pattern(870, 0)), 128_000, { teacher: 'train-student-1' });
  const r = report([teacher, s1, s2]);
  assert.equal(r.summary.teacherTop1, 0.85);
  assert.equal(r.summary.studentTop1, 0.87);
  assert.equal(r.summary.controlTop1, 0.8);
  assert.deepEqual(r.comparisons.map((c) => [c.first, c.second]), [
    ['train-teacher-1', 'train-student-1'],
    ['train-student-1', 'train-student-2'],
    ['train-teacher-1', 'train-student-2'],
  ]);
  assert.equal(r.summary.pValueVsControl, mcnemarExactP(0, 70));
});

test('models scored on different images are not paired: the comparison says why and the p-value is null', () => {
  const teacher = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 128_000);
  const other = evaluation('train-student-1', 'student', 1, pattern(860, 0));
  other.perImage = { ...other.perImage, imagesSha256: 'f'.repeat(64) };
  const r = report([teacher, model(other, 128_000)]);
  assert.equal(r.summary.pValueVsTeacher, null);
  assert.equal(r.comparisons[0]!.note, 'not scored on the same eval images');
  assert.match(renderMarkdown(r), /not significantly better than its teacher: \+6\.00 points .*no paired test/);
});

test('a student that started from trained weights carries their images: an equal-budget teacher is then no control', () => {
  const teacher = model(evaluation('train-teacher-1', 'teacher', 1, pattern(800, 0)), 256_000);
  const s2 = model(evaluation('train-student-2', 'student', 2, pattern(870, 0)), 256_000, { teacher: 'train-student-1' });
  s2.budget = { ...s2.budget!, carriedImages: 256_000, carriedSteps: 2_000 };
  const r = report([teacher, s2]);
  assert.equal(r.control.kind, 'none');
  assert.match(r.control.reason, /2,000 steps and 256,000 images, less than the student's 4,000 steps and 512,000 images \(256,000 its own, the rest carried/);
  assert.equal(r.summary.controlTop1, null);
  assert.match(renderMarkdown(r), /256,000 images, started from weights trained on 256,000/);
});
