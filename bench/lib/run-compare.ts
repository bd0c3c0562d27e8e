/**
 * Compares two store roots object by object (the datasets and the runs under them): the same keys,
 * and the same bytes — except, in JSON, JSON-lines and report.md objects, the fields listed in
 * EXCLUDED that record *when* or *how many times* something ran rather than *what* it produced,
 * and the store root's own URI (the two runs live under different roots). Everything else, models,
 * checkpoint tensors, shards, predictions and pseudo-labels included, must be byte-identical.
 *
 *   const r = await compareRoots(refRoot, otherRoot);
 *   // r.compared, r.differ: [{ key, why }], r.onlyLeft, r.onlyRight
 *
 * Used by bench/torture.ts (an undisturbed run vs one killed and faulted); reusable for any two runs
 * of the same manifest that should agree.
 */
import type { ObjectStore } from '../../pipeline/store/types.js';

/** Field names dropped from JSON objects anywhere in the tree, with why they may differ. */
export const EXCLUDED: Record<string, string> = {
  startedAt: 'timing (stage records)',
  endedAt: 'timing (stage records)',
  durationMs: 'timing (stage records, report)',
  totalMs: 'timing (stage records, report)',
  createdAt: 'timing (checkpoint COMMIT.json)',
  generatedAt: 'timing (report.json)',
  heartbeatAt: 'timing (lease)',
  seconds: 'timing (infer shard stats, epoch metrics, model evaluations)',
  wallSeconds: 'timing (infer summary)',
  forwardSeconds: 'timing (infer worker stats)',
  imagesPerSec: 'timing (train metrics)',
  imagesPerSecond: 'timing (infer summary, model evaluations)',
  'img/s': 'timing (progress fields)',
  attempts: 'attempt bookkeeping (stage records, report)',
  resumedFrom: 'attempt bookkeeping (train metrics: the step a resume started from)',
  restarts: 'attempt bookkeeping (infer: worker processes restarted)',
  workers: 'attempt bookkeeping (infer: processes started by the attempt that finished; 0 when a kill left nothing to do)',
  runId: 'attempt bookkeeping (stage records: a fresh UUID per completion)',
  inputs: 'attempt bookkeeping (stage records: the upstream runIds)',
  pid: 'attempt bookkeeping (stage records, lease)',
  host: 'attempt bookkeeping (stage records, lease)',
};

/** Objects not compared at all: they exist only while a runner is active. */
export const SKIPPED_KEYS = [/(^|\/)lease$/];

/** report.md table columns and summary rows that are timings or attempt counts. */
const MASKED_COLUMNS = new Set(['attempts', 'last attempt', 'total', 'eval time']);
const MASKED_ROWS = [/^Wall time\b/];

export interface Difference {
  key: string;
  why: string;
}

export interface Comparison {
  compared: number;
  differ: Difference[];
  onlyLeft: string[];
  onlyRight: string[];
}

function normalizeJson(value: unknown, roots: string[]): unknown {
  if (typeof value === 'string') return roots.reduce((s, r) => s.split(r).join('<store>'), value);
  if (Array.isArray(value)) return value.map((v) => normalizeJson(v, roots));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) if (!(k in EXCLUDED)) out[k] = normalizeJson((value as Record<string, unknown>)[k], roots);
    return out;
  }
  return value;
}

/** report.md with timestamps, and the timing/attempt cells of its tables, masked. */
export function normalizeMarkdown(text: string, roots: string[]): string {
  let masked: Set<number> = new Set();
  return roots
    .reduce((s, r) => s.split(r).join('<store>'), text)
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .split('\n')
    .map((line) => {
      if (!line.startsWith('|')) {
        masked = new Set();
        return line;
      }
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      if (cells.every((c) => /^-+:?$/.test(c))) return line;
      if (masked.size === 0 && cells.some((c) => MASKED_COLUMNS.has(c))) {
        masked = new Set(cells.flatMap((c, i) => (MASKED_COLUMNS.has(c) ? [i] : [])));
        return line;
      }
      if (MASKED_ROWS.some((re) => re.test(cells[0] ?? ''))) return `| ${cells[0]} | <masked> |`;
      return `| ${cells.map((c, i) => (masked.has(i) ? '<masked>' : c)).join(' | ')} |`;
    })
    .join('\n');
}

function firstDifference(a: unknown, b: unknown, path = ''): string {
  if (JSON.stringify(a) === JSON.stringify(b)) return '';
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}${Array.isArray(a) ? `[${k}]` : `.${k}`}`);
      if (d) return d;
    }
  }
  const show = (v: unknown) => {
    const s = JSON.stringify(v) ?? 'undefined';
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  };
  return `${path || '(root)'}: ${show(a)} vs ${show(b)}`;
}

/** Why two objects differ after normalization, or '' when they agree. */
export function compareObject(key: string, a: Buffer, b: Buffer, roots: string[]): string {
  if (a.equals(b)) return '';
  if (key.endsWith('.json')) {
    try {
      return firstDifference(normalizeJson(JSON.parse(a.toString('utf8')), roots), normalizeJson(JSON.parse(b.toString('utf8')), roots));
    } catch {
      return 'bytes differ (not valid JSON on one side)';
    }
  }
  if (key.endsWith('.jsonl')) {
    const la = a.toString('utf8').split('\n');
    const lb = b.toString('utf8').split('\n');
    if (la.length !== lb.length) return `${la.length} vs ${lb.length} lines`;
    for (let i = 0; i < la.length; i++) {
      if (la[i] === lb[i]) continue;
      try {
        const d = firstDifference(normalizeJson(JSON.parse(la[i]!), roots), normalizeJson(JSON.parse(lb[i]!), roots));
        if (d) return `line ${i + 1}: ${d}`;
      } catch {
        return `line ${i + 1}: bytes differ`;
      }
    }
    return '';
  }
  if (key.endsWith('.md')) {
    const na = normalizeMarkdown(a.toString('utf8'), roots).split('\n');
    const nb = normalizeMarkdown(b.toString('utf8'), roots).split('\n');
    const i = na.findIndex((l, j) => l !== nb[j]);
    if (i < 0 && na.length === nb.length) return '';
    return `line ${i < 0 ? na.length + 1 : i + 1}: ${JSON.stringify(na[i] ?? '')} vs ${JSON.stringify(nb[i] ?? '')}`;
  }
  const at = a.findIndex((byte, i) => byte !== b[i]);
  return a.length !== b.length ? `${a.length} vs ${b.length} bytes` : `bytes differ from offset ${at}`;
}

/**
 * Compares every object under two roots. `onObject` reports progress. Objects are read through the
 * stores' verified reads, so a corrupted object fails the comparison loudly rather than differing.
 */
export async function compareRoots(left: ObjectStore, right: ObjectStore, onObject?: (done: number, total: number) => void): Promise<Comparison> {
  const skip = (key: string) => SKIPPED_KEYS.some((re) => re.test(key));
  const keysA = (await left.list('')).map((o) => o.key).filter((k) => !skip(k));
  const keysB = new Set((await right.list('')).map((o) => o.key).filter((k) => !skip(k)));
  const roots = [left.uri.replace(/\/+$/, ''), right.uri.replace(/\/+$/, '')];
  const result: Comparison = { compared: 0, differ: [], onlyLeft: [], onlyRight: [] };
  for (const [i, key] of keysA.entries()) {
    onObject?.(i + 1, keysA.length);
    if (!keysB.delete(key)) {
      result.onlyLeft.push(key);
      continue;
    }
    const why = compareObject(key, await left.get(key), await right.get(key), roots);
    result.compared++;
    if (why) result.differ.push({ key, why });
  }
  result.onlyRight = [...keysB].sort();
  return result;
}
