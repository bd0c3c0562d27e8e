/**
 * Reads a manifest file (YAML or JSON), validates it against the zod schema and reports EVERY
 * problem at once, one line each: `<file>: <field.path>: <expected>, <found> (line L)`.
 *
 * Both formats go through the `yaml` parser (JSON is YAML 1.2) because it keeps source
 * positions: syntax errors and schema errors alike can name the line. Node's JSON.parse no
 * longer reports positions in its messages.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { manifestSchema, type Manifest } from './schema.js';
import { redactText } from '../log/redact.js';

export interface ManifestProblem {
  /** Dotted field path (`teacher.train.epochs`, `datasets.eval`), or '' for the file itself. */
  path: string;
  message: string;
  line?: number;
  col?: number;
}

/** All problems of one manifest; `message` is the printable multi-line report. */
export class ManifestError extends Error {
  constructor(readonly file: string, readonly problems: ManifestProblem[]) {
    super(problems.map((p) => formatProblem(file, p)).join('\n'));
    this.name = 'ManifestError';
  }
}

export function formatProblem(file: string, p: ManifestProblem): string {
  const where = p.line !== undefined ? ` (line ${p.line}${p.col !== undefined ? `, col ${p.col}` : ''})` : '';
  return p.path ? `${file}: ${p.path}: ${p.message}${where}` : `${file}${p.line !== undefined ? `:${p.line}:${p.col ?? 1}` : ''}: ${p.message}`;
}

export interface LoadedManifest {
  manifest: Manifest;
  /** The path as given (used in messages). */
  file: string;
}

/** Reads and validates `file`; throws ManifestError listing every problem. */
export async function loadManifest(file: string): Promise<LoadedManifest> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, expected a manifest file' : String((err as Error).message);
    throw new ManifestError(file, [{ path: '', message: `cannot read manifest: ${why}` }]);
  }
  return { manifest: parseManifest(text, file), file };
}

/** Validates manifest text; `file` names it in messages and picks nothing else (format is sniffed). */
export function parseManifest(text: string, file: string): Manifest {
  // merge: YAML 1.1 merge keys (`<<: *recipe`) so teacher and student can share one recipe block.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const at = (offset: number | undefined) => (offset === undefined ? {} : lineCounter.linePos(offset));
  if (doc.errors.length > 0) {
    const kind = path.extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML';
    throw new ManifestError(
      file,
      doc.errors.map((e) => ({ path: '', message: `${kind} syntax error: ${firstLine(e.message)}`, ...at(e.pos[0]) })),
    );
  }
  // YAML accepts things JSON does not (trailing commas, bare words): hold .json files to JSON.
  if (path.extname(file).toLowerCase() === '.json') {
    const jsonProblem = strictJsonProblem(text);
    if (jsonProblem) throw new ManifestError(file, [{ path: '', message: `JSON syntax error: ${jsonProblem.message}`, ...at(jsonProblem.offset) }]);
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) {
    throw new ManifestError(file, [{ path: '', message: 'empty manifest: expected a mapping with at least "name", "datasets", "teacher", "student", "pseudo"' }]);
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ManifestError(file, [{ path: '', message: `expected a mapping at the top level, found ${describeValue(data)}` }]);
  }
  const result = manifestSchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => problemsOf(issue)).map((p) => ({ ...p, ...at(locate(doc.contents, p.segments)) }));
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  throw new ManifestError(
    file,
    problems.map(({ segments: _segments, ...p }) => p),
  );
}

type Problem = ManifestProblem & { segments: PropertyKey[] };

/** One zod issue → one or more problems (an unrecognized_keys issue names several keys). */
function problemsOf(issue: z.core.$ZodIssue): Problem[] {
  const segments = issue.path;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(segments);
      return issue.keys.map((key) => {
        const hint = allowed.length > 0 ? closest(key, allowed) : undefined;
        const list = allowed.length > 0 ? `; allowed here: ${allowed.join(', ')}` : '';
        return {
          segments: [...segments, key],
          path: formatPath([...segments, key]),
          message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}${list}`,
        };
      });
    }
    case 'invalid_type':
      if (issue.input === undefined) {
        return [{ segments, path: formatPath(segments), message: `missing required field (expected ${issue.expected})` }];
      }
      return [{ segments, path: formatPath(segments), message: `expected ${issue.expected}, found ${describeValue(issue.input)}` }];
    case 'invalid_value':
      return [
        {
          segments,
          path: formatPath(segments),
          message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, found ${describeValue(issue.input)}`,
        },
      ];
    case 'too_small':
    case 'too_big': {
      const op = issue.code === 'too_small' ? (issue.inclusive === false ? '>' : '>=') : issue.inclusive === false ? '<' : '<=';
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const what = issue.origin === 'string' ? 'length' : issue.origin === 'array' || issue.origin === 'set' ? 'number of items' : issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint' ? 'a value' : 'size';
      return [{ segments, path: formatPath(segments), message: `expected ${what} ${op} ${String(bound)}, found ${describeValue(issue.input)}` }];
    }
    case 'invalid_union': {
      // Report the branch that got furthest (most specific), else zod's summary.
      const branches = issue.errors.map((errs) => errs.flatMap((e) => problemsOf({ ...e, path: [...segments, ...e.path] } as z.core.$ZodIssue)));
      const best = branches.sort((a, b) => maxDepth(b) - maxDepth(a))[0];
      if (best && best.length > 0 && maxDepth(best) > segments.length) return best;
      return [{ segments, path: formatPath(segments), message: `${issue.message}, found ${describeValue(issue.input)}` }];
    }
    default: {
      // custom refinements (e.g. store URIs) already say what was expected and found
      const message = 'input' in issue && issue.input !== undefined && !issue.message.includes('found') ? `${issue.message}, found ${describeValue(issue.input)}` : issue.message;
      return [{ segments, path: formatPath(segments), message }];
    }
  }
}

function maxDepth(problems: Problem[]): number {
  return Math.max(0, ...problems.map((p) => p.segments.length));
}

/** `a.b[2].c`; the root is '(root)'. */
export function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += (out ? '.' : '') + String(s);
  }
  return out || '(root)';
}

/** A short, secret-free rendering of a found value for messages. */
function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object') return 'a mapping';
  const text = typeof v === 'string' ? JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v) : String(v);
  return `${typeof v} ${redactText(text)}`;
}

/** The keys the schema accepts at an object path (for "unknown key" hints). */
function allowedKeys(segments: readonly PropertyKey[]): string[] {
  let schema: z.core.$ZodType | undefined = manifestSchema;
  for (const seg of segments) {
    schema = unwrap(schema);
    const shape = shapeOf(schema);
    if (shape && typeof seg === 'string') schema = shape[seg];
    else if (schema instanceof z.ZodArray && typeof seg === 'number') schema = schema.element;
    else return [];
  }
  const shape = shapeOf(unwrap(schema));
  return shape ? Object.keys(shape) : [];
}

function unwrap(schema: z.core.$ZodType | undefined): z.core.$ZodType | undefined {
  let s = schema;
  for (let i = 0; i < 10 && s; i++) {
    const inner = (s as { _zod: { def: { innerType?: z.core.$ZodType; in?: z.core.$ZodType } } })._zod.def;
    const next = inner.innerType ?? inner.in;
    if (!next) break;
    s = next;
  }
  return s;
}

function shapeOf(schema: z.core.$ZodType | undefined): Record<string, z.core.$ZodType> | undefined {
  return schema instanceof z.ZodObject ? (schema.shape as Record<string, z.core.$ZodType>) : undefined;
}

/** The allowed key within edit distance 2 of a typo, if any. */
function closest(key: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = 3;
  for (const a of allowed) {
    const d = editDistance(key.toLowerCase(), a.toLowerCase());
    if (d < bestDist) [best, bestDist] = [a, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/**
 * Source offset of the deepest node on `segments` (the key itself for the last segment when it
 * exists, so "unknown key" points at the key; the parent mapping when a field is missing).
 */
function locate(root: unknown, segments: readonly PropertyKey[]): number | undefined {
  let node = root as YamlNode | null | undefined;
  let offset = node?.range?.[0];
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) break;
      offset = (pair.key as YamlNode | undefined)?.range?.[0] ?? offset;
      node = pair.value as YamlNode | null;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg] as YamlNode | null;
      offset = node?.range?.[0] ?? offset;
    } else break;
  }
  return offset;
}

/**
 * JSON.parse's verdict with a source offset. V8 puts "at position N" in most messages but not in
 * "Unexpected token" ones (which quote the whole input instead): then the offending offset is
 * found by bisecting for the shortest prefix that fails for a reason other than being cut short.
 */
function strictJsonProblem(text: string): { message: string; offset: number } | undefined {
  const verdict = (t: string): { message: string; position?: number } | undefined => {
    try {
      JSON.parse(t);
      return undefined;
    } catch (err) {
      const message = (err as Error).message;
      const pos = /at position (\d+)/.exec(message)?.[1];
      return { message, position: pos === undefined ? undefined : Number(pos) };
    }
  };
  const full = verdict(text);
  if (!full) return undefined;
  // Never echo the input (it may be long, or hold secrets): keep the message up to the quote.
  const message = full.message.replace(/, (\.\.\.)?".*$/s, '').replace(/ in JSON at position \d+.*$/s, '');
  if (full.position !== undefined) return { message, offset: full.position };
  const realError = (len: number) => {
    const v = verdict(text.slice(0, len));
    if (!v || /end of JSON input/.test(v.message)) return false;
    return v.position === undefined || v.position < len;
  };
  let lo = 1;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (realError(mid)) hi = mid;
    else lo = mid + 1;
  }
  return { message, offset: lo - 1 };
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
