/**
 * The report's charts: vega-lite specs compiled by vega-lite and rendered headless to SVG by vega
 * (renderer 'none': no DOM or canvas needed). Each chart is a pure function of report data, so the
 * same report always draws the same pictures.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import type { ChartRef, LearningCurve, ModelEvaluation, PseudoEvaluation } from './types.js';

const pct = (v: number | null) => (v === null ? null : Math.round(v * 10000) / 100);

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Full legend labels: the default 160 px limit truncates names like "baseline (all labels)".
  const withConfig = { ...spec, config: { legend: { labelLimit: 0 }, ...spec.config } } as TopLevelSpec;
  const view = new vega.View(vega.parse(vl.compile(withConfig).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export const modelLabel = (m: Pick<ModelEvaluation, 'role' | 'iteration' | 'stage'>) =>
  m.role === 'baseline'
    ? 'baseline (all labels)'
    : m.role === 'control'
      ? 'labeled-only control'
      : m.role === 'model'
        ? m.stage
        : `${m.role} ${m.iteration ?? ''}`.trim();

/** Top-1 and top-k accuracy of every model, grouped bars. */
export function accuracySpec(models: ModelEvaluation[]): TopLevelSpec {
  const values = models.flatMap((m) =>
    Object.entries(m.metrics.topK).map(([k, acc]) => ({ model: modelLabel(m), metric: `top-${k}`, accuracy: pct(acc) })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Accuracy on the eval set',
    width: Math.max(240, 90 * models.length),
    height: 260,
    data: { values },
    encoding: {
      x: { field: 'model', type: 'nominal', sort: null, title: null, axis: { labelAngle: 0 } },
      xOffset: { field: 'metric' },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { domain: [0, 100] } },
      color: { field: 'metric', type: 'nominal', title: null },
    },
    layer: [
      { mark: 'bar' },
      { mark: { type: 'text', dy: -6, fontSize: 10 }, encoding: { text: { field: 'accuracy', type: 'quantitative', format: '.1f' } } },
    ],
  } as TopLevelSpec;
}

/** Per-class top-1 accuracy of the given models side by side (teacher vs student, and baseline). */
export function perClassSpec(models: ModelEvaluation[]): TopLevelSpec {
  const values = models.flatMap((m) => m.metrics.perClass.map((c) => ({ class: c.name, model: modelLabel(m), accuracy: pct(c.accuracy) })));
  const classes = models[0]?.metrics.perClass.map((c) => c.name) ?? [];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Per-class accuracy',
    width: Math.max(320, 24 * models.length * classes.length),
    height: 260,
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'class', type: 'nominal', sort: classes, title: null, axis: { labelAngle: -30 } },
      xOffset: { field: 'model', sort: models.map(modelLabel) },
      y: { field: 'accuracy', type: 'quantitative', title: 'top-1 accuracy (%)', scale: { domain: [0, 100] } },
      color: { field: 'model', type: 'nominal', sort: models.map(modelLabel), title: null },
    },
  } as TopLevelSpec;
}

/** Teacher confidence histogram of one round, with the per-class thresholds select chose as rules. */
export function confidenceSpec(p: PseudoEvaluation): TopLevelSpec {
  const bins = p.confidenceHistogram.length || 1;
  const bars = p.confidenceHistogram.map((count, i) => ({ from: i / bins, to: (i + 1) / bins, count }));
  // One rule per distinct threshold, labelled with the classes that share it.
  const byThreshold = new Map<number, string[]>();
  for (const t of p.thresholds) byThreshold.set(t.threshold, [...(byThreshold.get(t.threshold) ?? []), t.name]);
  const rules = [...byThreshold].map(([threshold, names]) => ({
    threshold,
    label: `${threshold.toFixed(2)}: ${names.length > 3 ? `${names.length} classes` : names.join(', ')}`,
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Teacher confidence on the unlabeled set (${p.stage}) and chosen thresholds`,
    width: 480,
    height: 260,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar', color: '#4c78a8' },
        encoding: {
          x: { field: 'from', type: 'quantitative', bin: { binned: true, step: 1 / bins }, title: 'top-1 probability', scale: { domain: [0, 1] } },
          x2: { field: 'to' },
          y: { field: 'count', type: 'quantitative', title: 'samples' },
        },
      },
      {
        data: { values: rules },
        mark: { type: 'rule', color: '#e45756', strokeDash: [4, 3], strokeWidth: 1.5 },
        encoding: { x: { field: 'threshold', type: 'quantitative' } },
      },
      {
        data: { values: rules },
        mark: { type: 'text', color: '#e45756', angle: 270, align: 'left', dx: 4, dy: -4, fontSize: 9 },
        encoding: { x: { field: 'threshold', type: 'quantitative' }, y: { value: 250 }, text: { field: 'label' } },
      },
    ],
  } as TopLevelSpec;
}

/** Accuracy of the teacher's top-1 vs confidence threshold, with the share of samples kept. */
export function thresholdSpec(pseudo: PseudoEvaluation[]): TopLevelSpec {
  const values = pseudo.flatMap((p) =>
    p.thresholdCurve.flatMap((t) => [
      { round: p.stage, threshold: t.threshold, measure: 'accuracy of kept', value: pct(t.accuracy) },
      { round: p.stage, threshold: t.threshold, measure: 'share kept', value: pct(t.coverage) },
    ]),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Teacher top-1 accuracy vs confidence threshold (unlabeled set, ground truth)',
    width: 480,
    height: 260,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'threshold', type: 'quantitative', title: 'confidence threshold', scale: { domain: [0, 1] } },
      y: { field: 'value', type: 'quantitative', title: '%', scale: { domain: [0, 100] } },
      color: { field: 'measure', type: 'nominal', title: null },
      strokeDash: { field: 'round', type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}

/** Confusion matrix heatmap with counts (rows: true class, columns: predicted). */
export function confusionSpec(m: ModelEvaluation): TopLevelSpec {
  const names = m.metrics.perClass.map((c) => c.name);
  const values = m.metrics.confusion.flatMap((row, t) => row.map((count, p) => ({ true: names[t], predicted: names[p], count })));
  const max = Math.max(1, ...values.map((v) => v.count));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Confusion matrix — ${modelLabel(m)} (${m.stage})`,
    width: Math.max(240, 34 * names.length),
    height: Math.max(240, 34 * names.length),
    data: { values },
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: names, title: 'predicted', axis: { labelAngle: -40 } },
      y: { field: 'true', type: 'nominal', sort: names, title: 'true class' },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'count', type: 'quantitative', scale: { scheme: 'blues' }, title: 'samples' } } },
      {
        mark: { type: 'text', fontSize: names.length > 20 ? 6 : 10 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.count > ${max / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  } as TopLevelSpec;
}

/** Held-out accuracy against optimizer step, one line per trained model (from its metrics.jsonl). */
export function learningCurveSpec(curves: LearningCurve[]): TopLevelSpec {
  const values = curves.flatMap((c) => c.points.map((p) => ({ model: c.label, step: p.step, accuracy: pct(p.heldoutAcc) })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Learning curves: held-out accuracy (labeled hold-out, EMA weights) vs step',
    width: 480,
    height: 260,
    data: { values },
    mark: { type: 'line', point: { size: 12 } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: { field: 'accuracy', type: 'quantitative', title: 'held-out accuracy (%)', scale: { domain: [0, 100] } },
      color: { field: 'model', type: 'nominal', sort: curves.map((c) => c.label), title: null },
    },
  } as TopLevelSpec;
}

/** The charts a report has, given what was evaluated (a chart without data is left out). */
export function reportCharts(models: ModelEvaluation[], pseudo: PseudoEvaluation[], curves: LearningCurve[] = []): { ref: ChartRef; spec: TopLevelSpec }[] {
  const out: { ref: ChartRef; spec: TopLevelSpec }[] = [];
  const add = (name: string, title: string, spec: TopLevelSpec) => out.push({ ref: { name, title, file: `charts/${name}.svg` }, spec });
  if (models.length) add('accuracy', 'Accuracy per model', accuracySpec(models));
  const drawn = curves.filter((c) => c.points.length > 0);
  if (drawn.length) add('learning-curves', 'Learning curves (held-out accuracy vs step)', learningCurveSpec(drawn));
  const teacher = models.find((m) => m.role === 'teacher');
  const students = models.filter((m) => m.role === 'student');
  const student = students[students.length - 1];
  const baseline = models.find((m) => m.role === 'baseline');
  const compared = [teacher, student, baseline].filter((m): m is ModelEvaluation => !!m);
  if (compared.length) add('per-class', 'Per-class accuracy: teacher vs student', perClassSpec(compared));
  for (const p of pseudo) if (p.confidenceHistogram.length) add(`confidence-${p.stage}`, `Confidence histogram and thresholds (${p.stage})`, confidenceSpec(p));
  const withTruth = pseudo.filter((p) => p.groundTruth && p.thresholdCurve.length);
  if (withTruth.length) add('threshold-accuracy', 'Pseudo-label accuracy vs confidence threshold', thresholdSpec(withTruth));
  const final = student ?? models[models.length - 1];
  if (final) add('confusion', `Confusion matrix (${modelLabel(final)})`, confusionSpec(final));
  return out;
}
