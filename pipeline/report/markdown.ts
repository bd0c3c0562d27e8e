/** `report.md`: the report a person reads — headline table, stage wall times, charts, details. */
import { modelLabel } from './charts.js';
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
  out.push(`Run \`${r.run}\` — evaluated ${r.generatedAt} on backend **${r.backend ?? 'unknown'}**.`);
  const n = r.models[0]?.metrics.samples;
  out.push(`Eval set \`${r.evalDataset}\`${n !== undefined ? ` (${n} images, ${r.classes.length} classes)` : ''}.`, '');

  out.push('## Summary', '');
  out.push(row(['', 'value']), row(['---', '---']));
  out.push(row(['Teacher top-1', pct(r.summary.teacher)]));
  for (const m of r.models.filter((m) => m.role === 'student')) out.push(row([`Student ${m.iteration ?? ''} top-1`, pct(m.metrics.top1)]));
  out.push(row(['Supervised baseline (all labels) top-1', r.summary.baseline === null ? 'not trained (`evaluate.baseline: false`)' : pct(r.summary.baseline)]));
  out.push(row(['Pseudo-label precision (last round)', pct(r.summary.pseudoLabelPrecision)]));
  const { teacher, student, baseline } = r.summary;
  if (teacher !== null && student !== null && baseline !== null && baseline !== teacher) {
    out.push(row(['Gap teacher → baseline closed by the student', `${(((student - teacher) / (baseline - teacher)) * 100).toFixed(0)} %`]));
  }
  // Every attempt's time (a killed attempt's up to its record's last update), not only the last one's.
  const done = r.stages.filter((s) => s.totalMs !== null);
  const total = done.reduce((a, s) => a + (s.totalMs ?? 0), 0);
  const attempts = done.reduce((a, s) => a + s.attempts, 0);
  const tries = attempts > done.length ? ` over ${attempts} attempts of ${done.length} stages` : '';
  out.push(row(['Wall time (stages before evaluate, all attempts)', `${formatDuration(total)}${tries}`]), row(['Backend', r.backend ?? 'unknown']), '');

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
