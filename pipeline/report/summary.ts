/**
 * The report's headline: every model's top-1 with its 95 % interval, the labeled-only control, the
 * student's gains with paired exact McNemar tests on the same eval images, and plain findings (a
 * student below its teacher is said first, never dressed up). A pure function of the evaluations
 * and what the train stages recorded, so it is tested without training anything.
 */
import { coversBudget } from '../train/step-plan.js';
import { modelLabel } from './charts.js';
import { decodeCorrectness } from './per-image.js';
import { mcnemarExact, wilsonInterval, type PairedTest } from './stats.js';
import type { Comparison, ControlInfo, ModelEvaluation, ModelRow, Report, ReportSummary, TrainingBudget } from './types.js';

export interface EvaluatedModel {
  evaluation: ModelEvaluation;
  budget: TrainingBudget | null;
  heldoutAcc: number | null;
  heldoutImages: number | null;
  /** The stage whose pseudo-labels a student learned from. */
  teacher: string | null;
  architecture: string | null;
}

export type SummaryParts = Pick<Report, 'summary' | 'findings' | 'control' | 'table' | 'comparisons'>;

/** Significance level the findings use to call a difference real. */
export const ALPHA = 0.01;

export const points = (d: number) => `${d >= 0 ? '+' : '−'}${Math.abs(d * 100).toFixed(2)} points`;
export const formatP = (p: number) => (p === 0 ? '< 1e-300' : p < 1e-4 ? p.toExponential(1) : p < 0.01 ? p.toPrecision(2) : p.toFixed(3));
const pct = (v: number) => `${(v * 100).toFixed(2)} %`;
/** Every training image and step behind a model's weights: its own and those its starting weights carried. */
const totalImages = (b: TrainingBudget) => b.images + (b.carriedImages ?? 0);
const totalSteps = (b: TrainingBudget) => b.steps + (b.carriedSteps ?? 0);
const budgetText = (b: TrainingBudget) =>
  `${totalSteps(b).toLocaleString('en-US')} steps and ${totalImages(b).toLocaleString('en-US')} images${b.carriedImages ? ` (${b.images.toLocaleString('en-US')} its own, the rest carried by the weights it started from)` : ''}`;

function paired(a: EvaluatedModel, b: EvaluatedModel): { test: PairedTest | null; note?: string } {
  const pa = a.evaluation.perImage, pb = b.evaluation.perImage;
  if (!pa || !pb) return { test: null, note: 'per-image results missing (evaluated by an older version)' };
  if (pa.imagesSha256 !== pb.imagesSha256 || pa.count !== pb.count) return { test: null, note: 'not scored on the same eval images' };
  return { test: mcnemarExact(decodeCorrectness(pa, a.evaluation.stage), decodeCorrectness(pb, b.evaluation.stage)) };
}

function chooseControl(models: EvaluatedModel[], firstTeacher: EvaluatedModel | undefined, student: EvaluatedModel | undefined): { info: ControlInfo; model?: EvaluatedModel } {
  const stage = models.find((m) => m.evaluation.role === 'control');
  if (stage) return { info: { kind: 'stage', stage: stage.evaluation.stage, reason: 'a separate labeled-only train stage' }, model: stage };
  if (!firstTeacher || !student) return { info: { kind: 'none', stage: null, reason: 'no teacher and student to compare' } };
  const t = firstTeacher, s = student;
  if (!t.architecture || !s.architecture || t.architecture !== s.architecture) {
    return { info: { kind: 'none', stage: null, reason: t.architecture && s.architecture ? 'the teacher is not the student\'s architecture' : 'the architectures could not be read' } };
  }
  if (!t.budget || !s.budget) return { info: { kind: 'none', stage: null, reason: 'the training budgets could not be read' } };
  const total = (b: TrainingBudget) => ({ steps: totalSteps(b), images: totalImages(b) });
  if (!coversBudget(total(t.budget), total(s.budget))) {
    return {
      info: {
        kind: 'none',
        stage: null,
        reason: `the teacher trained for ${budgetText(t.budget)}, less than the student's ${budgetText(s.budget)}: a labeled-only control needs at least the student's steps and images`,
      },
    };
  }
  return {
    info: { kind: 'teacher', stage: t.evaluation.stage, reason: `same architecture and at least the student's budget (${budgetText(t.budget)} vs ${budgetText(s.budget)})` },
    model: t,
  };
}

export function buildSummary(models: EvaluatedModel[], wallSeconds: number): SummaryParts {
  const byIteration = (a: EvaluatedModel, b: EvaluatedModel) => (a.evaluation.iteration ?? 0) - (b.evaluation.iteration ?? 0);
  const firstTeacher = models.filter((m) => m.evaluation.role === 'teacher').sort(byIteration)[0];
  const students = models.filter((m) => m.evaluation.role === 'student').sort(byIteration);
  const student = students[students.length - 1];
  const bound = models.find((m) => m.evaluation.role === 'baseline');
  const find = (stage: string | null) => models.find((m) => m.evaluation.stage === stage);
  // A student's teacher: the stage it recorded, else the chain's convention (round k learns from round k-1).
  const teacherOf = (s: EvaluatedModel): EvaluatedModel | undefined => {
    const k = s.evaluation.iteration ?? 1;
    return find(s.teacher) ?? (k > 1 ? students.find((x) => x.evaluation.iteration === k - 1) : firstTeacher);
  };
  const lastTeacher = student ? teacherOf(student) : firstTeacher;
  const control = chooseControl(models, firstTeacher, student);

  const table: ModelRow[] = models.map((m) => {
    const e = m.evaluation;
    const correct = Math.round(e.metrics.top1 * e.metrics.samples);
    return {
      stage: e.stage,
      label: modelLabel(e),
      role: e.role,
      iteration: e.iteration,
      top1: e.metrics.top1,
      interval95: e.metrics.samples > 0 ? wilsonInterval(correct, e.metrics.samples) : { low: 0, high: 1 },
      samples: e.metrics.samples,
      budget: m.budget,
      heldoutAcc: m.heldoutAcc,
    };
  });

  const comparisons: Comparison[] = [];
  const compare = (label: string, first: EvaluatedModel, second: EvaluatedModel) => {
    const r = paired(first, second);
    const c: Comparison = { label, first: first.evaluation.stage, second: second.evaluation.stage, test: r.test, ...(r.note ? { note: r.note } : {}) };
    comparisons.push(c);
    return c;
  };
  for (const s of students) {
    const t = teacherOf(s);
    if (t) compare(`${modelLabel(s.evaluation)} − its teacher (${modelLabel(t.evaluation)})`, t, s);
  }
  if (student && firstTeacher && lastTeacher !== firstTeacher) compare(`${modelLabel(student.evaluation)} − the first teacher`, firstTeacher, student);
  const vsTeacher = student && lastTeacher ? comparisons.find((c) => c.first === lastTeacher.evaluation.stage && c.second === student.evaluation.stage) : undefined;
  let vsControl: Comparison | undefined;
  const controlModel = control.model;
  if (student && controlModel) {
    vsControl = comparisons.find((c) => c.first === controlModel.evaluation.stage && c.second === student.evaluation.stage);
    vsControl ??= compare(`${modelLabel(student.evaluation)} − the labeled-only control`, controlModel, student);
  }

  const top1 = (m: EvaluatedModel | undefined) => (m ? m.evaluation.metrics.top1 : null);
  const diff = (a: EvaluatedModel | undefined, b: EvaluatedModel | undefined) => (a && b ? a.evaluation.metrics.top1 - b.evaluation.metrics.top1 : null);
  const summary: ReportSummary = {
    teacherTop1: top1(lastTeacher),
    studentTop1: top1(student),
    controlTop1: top1(control.model),
    ...(bound ? { allLabelsTop1: bound.evaluation.metrics.top1 } : {}),
    ...(firstTeacher && lastTeacher !== firstTeacher ? { firstTeacherTop1: firstTeacher.evaluation.metrics.top1 } : {}),
    studentMinusTeacher: diff(student, lastTeacher),
    studentMinusControl: diff(student, control.model),
    pValueVsTeacher: vsTeacher?.test?.pValue ?? null,
    pValueVsControl: vsControl?.test?.pValue ?? null,
    wallSeconds: Math.round(wallSeconds),
  };

  const findings: string[] = [];
  if (student && lastTeacher) {
    const d = summary.studentMinusTeacher!;
    const p = summary.pValueVsTeacher;
    const pText = p === null ? 'no paired test' : `McNemar p = ${formatP(p)}`;
    const names = `${modelLabel(student.evaluation)} ${pct(student.evaluation.metrics.top1)}, ${modelLabel(lastTeacher.evaluation)} ${pct(lastTeacher.evaluation.metrics.top1)}`;
    if (d < 0) findings.push(`**The student is below its teacher**: ${points(d)} (${names}; ${pText}). Self-training made the model worse in this run.`);
    else if (d === 0 || p === null || p >= ALPHA) findings.push(`The student is not significantly better than its teacher: ${points(d)} (${names}; ${pText}, threshold ${ALPHA}).`);
    else findings.push(`The student beats its teacher by ${points(d)} (${names}; ${pText}).`);
    if (student.heldoutAcc !== null && lastTeacher.heldoutAcc !== null && student.heldoutAcc < lastTeacher.heldoutAcc) {
      const n = student.heldoutImages ? ` (${student.heldoutImages} images)` : '';
      findings.push(`On the labeled hold-out${n} the student also ends below its teacher: ${pct(student.heldoutAcc)} vs ${pct(lastTeacher.heldoutAcc)}.`);
    }
  }
  if (student && control.model && control.info.kind === 'stage') {
    const d = summary.studentMinusControl!;
    const p = summary.pValueVsControl;
    const verdict = d < 0 ? '**The student is below the labeled-only control**' : p !== null && p < ALPHA ? 'The student beats the labeled-only control' : 'The student is not significantly better than the labeled-only control';
    findings.push(`${verdict}: ${points(d)}${p === null ? '' : ` (McNemar p = ${formatP(p)})`}.`);
  }
  if (control.info.kind === 'teacher') findings.push(`The teacher is the labeled-only control: ${control.info.reason}.`);
  if (control.info.kind === 'none' && student) findings.push(`No labeled-only control: ${control.info.reason}. The gain over the teacher mixes pseudo-labels with extra training.`);
  return { summary, findings, control: control.info, table, comparisons };
}

/**
 * Share of the teacher → all-labels gap the (last) student closed, from its own teacher or, over
 * several rounds, from the first teacher; only meaningful (and only given) when the all-labels model
 * is above that teacher. Null otherwise.
 */
export function gapClosed(s: ReportSummary, from: 'teacher' | 'first teacher' = 'teacher'): number | null {
  const { studentTop1: st, allLabelsTop1: b } = s;
  const t = from === 'teacher' ? s.teacherTop1 : (s.firstTeacherTop1 ?? null);
  if (t === null || st === null || b === undefined || !(b > t)) return null;
  return (st - t) / (b - t);
}
