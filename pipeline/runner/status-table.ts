/**
 * `selftrain status` for people: one line per stage (status, tries, time, backend and a few key
 * numbers from its summary) that fits a 120-column terminal. The full records are `--json`.
 */
import { formatDuration } from '../log/format.js';
import type { StageRecord } from './record.js';

export const STATUS_WIDTH = 120;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumSignificantDigits: 3 });
/** Exact below 100,000 (5,000), compact above (1.28M): a glance, not a record. */
const count = (v: unknown) => (num(v) === undefined ? '?' : num(v)! < 100_000 ? num(v)!.toLocaleString('en-US') : compact.format(num(v)!));
const pct = (v: unknown) => (num(v) === undefined ? '-' : `${(num(v)! * 100).toFixed(1)}%`);
const rate = (v: unknown) => (num(v) === undefined ? '?' : `${Math.round(num(v)!)} img/s`);

/** The numbers worth a glance, per stage kind; other kinds show their summary's first numbers. */
export function keyNumbers(r: Pick<StageRecord, 'kind' | 'summary'>): string {
  const s = r.summary;
  if (!s) return '';
  switch (r.kind) {
    case 'import':
      return (['labeled', 'unlabeled', 'eval'] as const)
        .filter((n) => s[n] && typeof s[n] === 'object')
        .map((n) => `${n} ${count((s[n] as Record<string, unknown>)['samples'])}`)
        .join(', ');
    case 'train': {
      const pseudo = s['pseudo'] as { unique?: unknown } | undefined;
      return [
        `${count(s['steps'])}/${count(s['totalSteps'])} steps`,
        `${count(s['trainImages'])}${pseudo ? `+${count(pseudo.unique)} pseudo` : ''} images`,
        `held-out ${pct(s['heldoutAcc'])}`,
        rate(s['imagesPerSec']),
      ].join(', ');
    }
    case 'infer':
      return [`${count(s['samples'])} images`, `${count(s['skipped'])} skipped`, rate(s['imagesPerSecond'])].join(', ');
    case 'select':
      return [`kept ${count(s['unique'])} of ${count(s['predicted'])}`, `${count(s['pseudoLabeled'])} with repeats`, `accuracy ${pct(s['accuracy'])}`].join(', ');
    case 'evaluate':
      return (
        ['teacher', 'student', 'baseline']
          .filter((role) => num(s[role]) !== undefined)
          .map((role, i) => `${i === 0 ? 'top-1 ' : ''}${role} ${pct(s[role])}`)
          .join(', ') + `; precision ${pct(s['pseudoLabelPrecision'])}`
      );
    default:
      return Object.entries(s)
        .filter(([, v]) => num(v) !== undefined)
        .slice(0, 4)
        .map(([k, v]) => `${k} ${count(v)}`)
        .join(', ');
  }
}

/** Cuts a line to `width` characters, marking the cut. */
export function fit(line: string, width = STATUS_WIDTH): string {
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`;
}

/** The stage table (header + one line per record, + a line for an error), each at most `width` wide. */
export function statusTable(records: readonly StageRecord[], width = STATUS_WIDTH): string[] {
  const rows = records.map((r) => {
    const time = r.totalMs !== undefined ? formatDuration(r.totalMs) : r.status === 'running' ? `since ${r.startedAt.slice(11, 19)}` : '-';
    return { r, cells: [r.stage, r.status, String(r.attempts), time, r.backend ?? '-'] };
  });
  const header = ['STAGE', 'STATUS', 'TRIES', 'TIME', 'BACKEND'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row.cells[i]!.length)));
  const line = (cells: string[], rest: string) => fit(`  ${cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')}  ${rest}`.trimEnd(), width);
  const out = [line(header, 'KEY NUMBERS')];
  for (const { r, cells } of rows) {
    out.push(line(cells, keyNumbers(r)));
    if (r.error) {
      const [first, ...more] = r.error.split('\n');
      out.push(fit(`  ${' '.repeat(widths[0]!)}  error: ${first}${more.length ? ` (+${more.length} lines: --json)` : ''}`, width));
    }
  }
  return out;
}
