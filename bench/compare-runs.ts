/**
 * Compares every object of two stores (two runs of the same manifest, or two copies of a run) and
 * prints the objects that differ. Generic: two store URIs in, a list of differing objects out.
 *
 *   npx tsx bench/compare-runs.ts <store-uri-a> <store-uri-b> [--ignore '<key glob>:<field path>']...
 *                                 [--ignore-text '<key glob>:<regex>']... [--skip '<key glob>']...
 *                                 [--rules <file>] [--normalize-roots] [--json]
 *
 * - Every object is compared byte for byte first. Objects present on one side only are listed.
 * - An object that is not byte-identical and is JSON (`.json`) or JSON lines (`.jsonl`, `.jsonl.gz`)
 *   is parsed and compared field by field, so the report names the fields that differ.
 * - `--ignore 'state/*.json:startedAt'` leaves a field out of that comparison: the key glob
 *   (`*` = any characters but `/`, `**` = any characters) selects the objects, the field path is
 *   dot-separated with `*` for any one key or array index (`epochs.*.seconds`). An object whose
 *   only differences are ignored fields counts as equal, and the ignored fields that did differ
 *   are printed next to it, so nothing is left out silently.
 * - `--ignore-text '<key glob>:<regex>'`: in a text object that is not byte-identical (e.g. a
 *   rendered report), text matching the regex is blanked on both sides before comparing; an object
 *   equal after that counts as equal, and the rules that changed it are printed next to it.
 * - `--skip '<key glob>'` leaves objects out entirely (e.g. `*\/lease`, held only while running).
 * - `--rules <file>`: rules from a file, one per line (`ignore <key glob>:<field path>`,
 *   `ignore-text <key glob>:<regex>`, `skip <key glob>`; `#` starts a comment), e.g.
 *   bench/run-timings.rules: the fields of a selftrain run that are timings, timestamps, process
 *   ids or random run ids, i.e. all that may differ between two runs of the same manifest.
 * - `--normalize-roots`: in JSON strings and text objects, each store's own root URI is replaced by
 *   `<root>` before comparing (two runs written to different places record their own locations).
 *   Off by default.
 *
 * Exit code 0 when nothing differs (beyond the ignored fields), 1 otherwise, 2 on bad arguments.
 * Store settings (S3 endpoint, region) come from --endpoint / --region or the AWS environment.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { openStore } from '../pipeline/store/open.js';
import type { ObjectStore } from '../pipeline/store/types.js';
import { globToRegExp } from '../pipeline/store/key-glob.js';
import { trimUri } from '../pipeline/store/uri.js';

export interface IgnoreRule {
  /** Glob over object keys (relative to the store roots). */
  key: string;
  /** Dot-separated field path, `*` for any one segment. */
  field: string;
}

/** Text matching `pattern` (a regex source) is blanked in objects whose keys match `key`. */
export interface TextIgnoreRule {
  key: string;
  pattern: string;
}

export interface CompareOptions {
  ignore?: IgnoreRule[];
  ignoreText?: TextIgnoreRule[];
  skip?: string[];
  normalizeRoots?: boolean;
}

export type ObjectDifference =
  | { key: string; kind: 'only-in-a' | 'only-in-b' }
  | { key: string; kind: 'bytes'; sizeA: number; sizeB: number }
  | { key: string; kind: 'fields'; fields: string[] }
  /** Equal except for ignored fields (listed), reported so the exclusions stay visible. */
  | { key: string; kind: 'ignored-only'; fields: string[] };

export interface CompareResult {
  a: string;
  b: string;
  objects: number;
  identical: number;
  differences: ObjectDifference[];
}

export { globToRegExp };

/** Parses `<key glob>:<field path>` (the last `:` separates them, so globs may not contain one). */
export function parseIgnoreRule(text: string): IgnoreRule {
  const i = text.lastIndexOf(':');
  if (i <= 0 || i === text.length - 1) throw new Error(`--ignore "${text}": expected <key glob>:<field path>`);
  return { key: text.slice(0, i), field: text.slice(i + 1) };
}

/** Parses `<key glob>:<regex>` (the first `:` separates them: the regex may contain one). */
export function parseTextIgnoreRule(text: string): TextIgnoreRule {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) throw new Error(`--ignore-text "${text}": expected <key glob>:<regex>`);
  const pattern = text.slice(i + 1);
  new RegExp(pattern); // a bad regex fails here, with its own message
  return { key: text.slice(0, i), pattern };
}

function isJsonKey(key: string): 'json' | 'jsonl' | 'jsonl.gz' | undefined {
  if (key.endsWith('.json')) return 'json';
  if (key.endsWith('.jsonl')) return 'jsonl';
  if (key.endsWith('.jsonl.gz')) return 'jsonl.gz';
  return undefined;
}

function parseJsonObject(bytes: Buffer, kind: 'json' | 'jsonl' | 'jsonl.gz'): unknown {
  if (kind === 'json') return JSON.parse(bytes.toString('utf8'));
  const text = (kind === 'jsonl.gz' ? gunzipSync(bytes) : bytes).toString('utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

function replaceRoot(value: unknown, root: string): unknown {
  if (typeof value === 'string') return value.split(root).join('<root>');
  if (Array.isArray(value)) return value.map((v) => replaceRoot(v, root));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceRoot(v, root)]));
  return value;
}

function fieldMatches(pattern: string[], path: string[]): boolean {
  return pattern.length === path.length && pattern.every((p, i) => p === '*' || p === path[i]);
}

/** Leaf paths where a and b differ (whole subtrees when their shapes differ). */
function diffPaths(a: unknown, b: unknown, path: string[], out: string[][]): void {
  const objA = a !== null && typeof a === 'object';
  const objB = b !== null && typeof b === 'object';
  if (objA && objB && Array.isArray(a) === Array.isArray(b)) {
    const keys = Array.isArray(a) ? [...Array(Math.max(a.length, (b as unknown[]).length)).keys()].map(String) : [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
    for (const k of keys) diffPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [...path, k], out);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path);
}

export async function compareStores(a: ObjectStore, b: ObjectStore, o: CompareOptions = {}): Promise<CompareResult> {
  const skip = (o.skip ?? []).map(globToRegExp);
  const ignore = (o.ignore ?? []).map((r) => ({ key: globToRegExp(r.key), field: r.field.split('.') }));
  const ignoreText = (o.ignoreText ?? []).map((r) => ({ key: globToRegExp(r.key), re: new RegExp(r.pattern, 'g'), pattern: r.pattern }));
  const keep = (key: string) => !skip.some((re) => re.test(key));
  const [listA, listB] = await Promise.all([a.list(''), b.list('')]);
  const sizesA = new Map(listA.filter((x) => keep(x.key)).map((x) => [x.key, x.size]));
  const sizesB = new Map(listB.filter((x) => keep(x.key)).map((x) => [x.key, x.size]));
  const keys = [...new Set([...sizesA.keys(), ...sizesB.keys()])].sort();
  const differences: ObjectDifference[] = [];
  let identical = 0;
  for (const key of keys) {
    if (!sizesB.has(key)) {
      differences.push({ key, kind: 'only-in-a' });
      continue;
    }
    if (!sizesA.has(key)) {
      differences.push({ key, kind: 'only-in-b' });
      continue;
    }
    const [bytesA, bytesB] = await Promise.all([a.get(key), b.get(key)]);
    if (bytesA.equals(bytesB)) {
      identical++;
      continue;
    }
    const kind = isJsonKey(key);
    const textRules = ignoreText.filter((r) => r.key.test(key));
    if (!kind && (textRules.length > 0 || o.normalizeRoots)) {
      // Text (a rendered report): the roots replaced (when asked), then the ignored text blanked.
      const roots = (b: Buffer, root: string) => (o.normalizeRoots ? b.toString('utf8').split(root).join('<root>') : b.toString('utf8'));
      const blank = (t: string) => textRules.reduce((acc, r) => acc.replace(r.re, '<ignored>'), t);
      const [textA, textB] = [roots(bytesA, trimUri(a.uri)), roots(bytesB, trimUri(b.uri))];
      if (blank(textA) === blank(textB)) {
        const fields = textRules.filter((r) => new RegExp(r.pattern).test(textA)).map((r) => `text /${r.pattern}/`);
        differences.push({ key, kind: 'ignored-only', fields: textA !== bytesA.toString('utf8') ? ['(store root URIs)', ...fields] : fields });
      } else differences.push({ key, kind: 'bytes', sizeA: bytesA.length, sizeB: bytesB.length });
      continue;
    }
    let valueA: unknown, valueB: unknown;
    try {
      if (!kind) throw new Error('not JSON');
      valueA = parseJsonObject(bytesA, kind);
      valueB = parseJsonObject(bytesB, kind);
    } catch {
      differences.push({ key, kind: 'bytes', sizeA: bytesA.length, sizeB: bytesB.length });
      continue;
    }
    if (o.normalizeRoots) {
      valueA = replaceRoot(valueA, trimUri(a.uri));
      valueB = replaceRoot(valueB, trimUri(b.uri));
    }
    const paths: string[][] = [];
    diffPaths(valueA, valueB, [], paths);
    // JSON lines: the line number is not part of a field path (`epochs.*.seconds` style rules
    // are written per record), so drop it before matching.
    const rules = ignore.filter((r) => r.key.test(key)).map((r) => r.field);
    const recordPath = (p: string[]) => (kind === 'json' ? p : p.slice(1));
    const ignored = paths.filter((p) => rules.some((r) => fieldMatches(r, recordPath(p))));
    const real = paths.filter((p) => !ignored.includes(p));
    const names = (ps: string[][]) => [...new Set(ps.map((p) => (p.length ? p.join('.') : '(whole object)')))];
    if (real.length > 0) differences.push({ key, kind: 'fields', fields: names(real) });
    else if (ignored.length > 0) differences.push({ key, kind: 'ignored-only', fields: names(ignored) });
    // Same values, different bytes: only the store roots differed (normalised), or the formatting.
    else if (o.normalizeRoots) differences.push({ key, kind: 'ignored-only', fields: ['(store root URIs)'] });
    else differences.push({ key, kind: 'bytes', sizeA: bytesA.length, sizeB: bytesB.length });
  }
  return { a: a.uri, b: b.uri, objects: keys.length, identical, differences };
}

/** Differences that count (everything but objects equal up to ignored fields). */
export function realDifferences(r: CompareResult): ObjectDifference[] {
  return r.differences.filter((d) => d.kind !== 'ignored-only');
}

export function formatResult(r: CompareResult, maxFields = 8): string {
  const lines = [`a: ${r.a}`, `b: ${r.b}`];
  const show = (fields: string[]) => fields.slice(0, maxFields).join(', ') + (fields.length > maxFields ? `, … (${fields.length} fields)` : '');
  for (const d of r.differences) {
    if (d.kind === 'only-in-a' || d.kind === 'only-in-b') lines.push(`  ${d.kind.padEnd(12)}  ${d.key}`);
    else if (d.kind === 'bytes') lines.push(`  ${'DIFFERS'.padEnd(12)}  ${d.key}  (bytes: ${d.sizeA} vs ${d.sizeB})`);
    else if (d.kind === 'fields') lines.push(`  ${'DIFFERS'.padEnd(12)}  ${d.key}  fields: ${show(d.fields)}`);
    else if (d.kind === 'ignored-only') lines.push(`  ${'ignored'.padEnd(12)}  ${d.key}  ignored fields that differ: ${show(d.fields)}`);
  }
  const real = realDifferences(r).length;
  const ignoredOnly = r.differences.length - real;
  lines.push(`${r.objects} objects: ${r.identical} byte-identical, ${ignoredOnly} equal except ignored fields, ${real} different`);
  return lines.join('\n');
}

/** Rules from a file: `ignore|ignore-text|skip <rule>` per line, `#` comments. */
export function readRules(file: string): { ignore: string[]; 'ignore-text': string[]; skip: string[] } {
  const out = { ignore: [] as string[], 'ignore-text': [] as string[], skip: [] as string[] };
  for (const [i, raw] of readFileSync(file, 'utf8').split('\n').entries()) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    const m = /^(ignore|ignore-text|skip)\s+(.+)$/.exec(line);
    if (!m) throw new Error(`${file}:${i + 1}: expected "ignore <glob>:<path>", "ignore-text <glob>:<regex>" or "skip <glob>"`);
    out[m[1] as keyof typeof out].push(m[2]!);
  }
  return out;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      ignore: { type: 'string', multiple: true, default: [] },
      'ignore-text': { type: 'string', multiple: true, default: [] },
      skip: { type: 'string', multiple: true, default: [] },
      rules: { type: 'string' },
      'normalize-roots': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      endpoint: { type: 'string' },
      region: { type: 'string' },
    },
  });
  if (positionals.length !== 2) {
    process.stderr.write('usage: compare-runs <store-uri-a> <store-uri-b> [--ignore <key glob>:<field path>]... [--ignore-text <key glob>:<regex>]... [--skip <key glob>]... [--rules <file>] [--normalize-roots] [--json]\n');
    process.exit(2);
  }
  let ignore: IgnoreRule[];
  let ignoreText: TextIgnoreRule[];
  const skip = [...values.skip];
  try {
    const fromFile = values.rules ? readRules(values.rules) : { ignore: [], 'ignore-text': [], skip: [] };
    ignore = [...fromFile.ignore, ...values.ignore].map(parseIgnoreRule);
    ignoreText = [...fromFile['ignore-text'], ...values['ignore-text']].map(parseTextIgnoreRule);
    skip.push(...fromFile.skip);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  const settings = { endpoint: values.endpoint, region: values.region };
  const [a, b] = positionals.map((uri) => openStore(uri, settings)) as [ObjectStore, ObjectStore];
  try {
    const result = await compareStores(a, b, { ignore, ignoreText, skip, normalizeRoots: values['normalize-roots'] });
    if (values.json) process.stdout.write(JSON.stringify({ ...result, ignore, ignoreText, skip }, null, 2) + '\n');
    else {
      for (const r of ignore) process.stdout.write(`ignoring field ${r.field} in ${r.key}\n`);
      for (const r of ignoreText) process.stdout.write(`ignoring text /${r.pattern}/ in ${r.key}\n`);
      for (const s of skip) process.stdout.write(`skipping objects ${s}\n`);
      process.stdout.write(formatResult(result) + '\n');
    }
    process.exitCode = realDifferences(result).length > 0 ? 1 : 0;
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
