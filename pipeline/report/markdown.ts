/** `report.md`: the report a person reads — headline table, stage wall times, charts, details. */
import { modelLabel } from './charts.js';
import { formatP, gapClosed, points } from './summary.js';
import type { Report } from './types.js';

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(2)} %`);

export function formatDuration(ms: number | null): string {
  if (ms === null) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min ${String(s % 60).padStart(2, '0')} s`;
}

const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;

export function renderMarkdown(r: Report): string {
  const out: string[] = [];
  out.push(`# selftrain report`, '');
  // Training runs on the tfjs backend; inference may run on another engine (ONNX Runtime).
  const engines = [...new Set(r.models.map((m) => m.backend).filter((b): b is string => !!b))];
  const inference = engines.length > 0 ? `; models evaluated with **${engines.join('**, **')}**` : '';
  out.push(`Run \`${r.run}\` — evaluated ${r.generatedAt} on backend **${r.backend ?? 'unknown'}**${inference}.`);
  const n = r.models[0]?.metrics.samples;
  out.push(`Eval set \`${r.evalDataset}\`${n !== undefined ? ` (${n} images, ${r.classes.length} classes)` : ''}.`, '');

  if (r.findings.length) {
    out.push('**Findings**', '');
    for (const f of r.findings) out.push(`- ${f}`);
    out.push('');
  }

  out.push('## Summary', '');
  out.push(row(['model', 'stage', 'top-1', '95 % interval', 'training budget', 'held-out (labeled)']), row(['---', '---', '---:', '---', '---', '---:']));
  for (const m of r.table) {
    const budget = m.budget
      ? `${m.budget.steps.toLocaleString('en-US')} steps × ${m.budget.imagesPerStep} = ${m.budget.images.toLocaleString('en-US')} images` +
        (m.budget.carriedImages ? `, started from weights trained on ${m.budget.carriedImages.toLocaleString('en-US')}` : '')
      : '–';
    out.push(row([m.label, `\`${m.stage}\``, pct(m.top1), `${pct(m.interval95.low)} – ${pct(m.interval95.high)}`, budget, pct(m.heldoutAcc)]));
  }
  const control = r.control.kind === 'stage' ? `\`${r.control.stage}\`` : r.control.kind === 'teacher' ? `the teacher (\`${r.control.stage}\`)` : 'none';
  out.push('', `Labeled-only control: ${control} — ${r.control.reason}.`, '');
  if (r.comparisons.length) {
    out.push(row(['comparison (paired, same eval images)', 'difference', 'only first right', 'only second right', 'McNemar exact p']), row(['---', '---:', '---:', '---:', '---:']));
    for (const c of r.comparisons) {
      if (!c.test) out.push(row([c.label, '–', '–', '–', c.note ?? '–']));
      else out.push(row([c.label, points(c.test.difference), c.test.onlyFirst, c.test.onlySecond, formatP(c.test.pValue)]));
    }
    out.push('');
  }
  out.push(row(['', 'value']), row(['---', '---']));
  out.push(row(['All-labels bound top-1', r.summary.allLabelsTop1 === undefined ? 'not trained (`evaluate.baseline: false`)' : pct(r.summary.allLabelsTop1)]));
  out.push(row(['Pseudo-label precision (last round)', pct(r.pseudoLabelPrecision)]));
  const gap = gapClosed(r.summary);
  if (gap !== null) out.push(row(['Gap teacher → all-labels bound closed by the student', `${(gap * 100).toFixed(0)} %`]));
  // Over several rounds, what the whole loop bought: from the first teacher to the last student.
  const loopGap = gapClosed(r.summary, 'first teacher');
  if (loopGap !== null) out.push(row(['Gap first teacher → all-labels bound closed by the last student', `${(loopGap * 100).toFixed(0)} %`]));
  // Every attempt's time (a killed attempt's up to its record's last update), not only the last one's.
  const attempts = r.stages.reduce((a, s) => a + s.attempts, 0);
  const tries = attempts > r.stages.length ? ` over ${attempts} attempts of ${r.stages.length} stages` : '';
  out.push(row(['Wall time (whole run, all attempts)', `${formatDuration(r.summary.wallSeconds * 1000)}${tries}`]), row(['Backend', r.backend ?? 'unknown']), '');

  out.push('## Models', '');
  const ks = [...new Set(r.models.flatMap((m) => Object.keys(m.metrics.topK)))].sort((a, b) => Number(a) - Number(b));
  out.push(row(['model', 'stage', ...ks.map((k) => `top-${k}`), 'eval images', 'skipped', 'eval time', 'model id']));
  out.push(row(['---', '---', ...ks.map(() => '---:'), '---:', '---:', '---:', '---']));
  for (const m of r.models) {
    out.push(row([modelLabel(m), `\`${m.stage}\``, ...ks.map((k) => pct(m.metrics.topK[k])), m.metrics.samples, m.skipped, formatDuration(m.seconds * 1000), `\`${m.modelId}\``]));
  }
  out.push('');

  out.push('## Stage wall times', '');
  out.push(row(['stage', 'status', 'attempts', 'last attempt', 'total', 'backend']), row(['---', '---', '---:', '---:', '---:', '---']));
  if (r.stages.length === 0) out.push('_No stage records were found in the run._');
  for (const s of r.stages) out.push(row([`\`${s.stage}\``, s.status, s.attempts, formatDuration(s.durationMs), formatDuration(s.totalMs), s.backend ?? '–']));
  out.push('');

  if (r.charts.length) {
    out.push('## Charts', '');
    for (const c of r.charts) out.push(`### ${c.title}`, '', `![${c.title}](${c.file})`, '');
  }

  const compared = r.models.filter((m) => m.role !== 'model');
  if (compared.length) {
    out.push('## Per-class accuracy', '');
    out.push(row(['class', ...compared.map(modelLabel)]), row(['---', ...compared.map(() => '---:')]));
    r.classes.forEach((name, cls) => out.push(row([name, ...compared.map((m) => pct(m.metrics.perClass[cls]?.accuracy))])));
    out.push('');
  }

  for (const p of r.pseudo) {
    out.push(`## Pseudo-labels: ${p.stage} (from ${p.infer})`, '');
    out.push(
      `Target ${p.target} per class, floor ${p.floor}; ${p.unique} unique samples kept, ${p.pseudoLabeled} with repeats.` +
        (p.groundTruth
          ? ` Precision against the held-back labels: ${pct(p.precision)} (weighted by repeats: ${pct(p.weightedPrecision)}).`
          : ' The unlabeled set has no held-back labels, so precision is not measured.'),
      '',
    );
    out.push(row(['class', 'candidates', 'threshold', 'above threshold', 'kept (unique)', 'with repeats', 'precision']), row(['---', '---:', '---:', '---:', '---:', '---:', '---:']));
    for (const t of p.thresholds) out.push(row([t.name, t.candidates, t.threshold.toFixed(2), t.kept, t.unique, t.repeats, pct(p.perClass[t.cls]?.precision)]));
    out.push('');
    if (p.thresholdCurve.length) {
      out.push('Teacher top-1 accuracy vs confidence threshold (all unlabeled predictions):', '');
      out.push(row(['threshold', 'share kept', 'accuracy']), row(['---:', '---:', '---:']));
      for (const t of p.thresholdCurve.filter((_, i) => i % 2 === 0)) out.push(row([t.threshold.toFixed(2), pct(t.coverage), pct(t.accuracy)]));
      out.push('');
    }
  }
  return out.join('\n');
}
