/**
 * `selftrain verify <run-uri>`: reads every object of a run back and checks it, without running
 * anything. Each object is read whole through the store's verified reads (its bytes against the
 * sha256 recorded when it was written), then the run's own records of its outputs are checked
 * against the objects: done stages' declared outputs exist, every checkpoint's tensors match
 * its COMMIT.json, every model's weights match model.json (content-addressed name, byte count),
 * the infer and select summaries' shards all have their objects. The datasets the run's import
 * lists are verified too (every shard against dataset.json, tar structure, labels; image decoding
 * with `decode`). Every problem is listed (object, expected, actual); nothing stops at the first.
 */
import type { ObjectStore } from '../store/types.js';
import { Hasher } from '../store/digest.js';
import { stateDir, stageRecordSchema } from './record.js';

export interface RunVerification {
  run: string;
  objects: number;
  bytes: number;
  /** Objects whose bytes were checked against a digest recorded at write time. */
  recorded: number;
  /** Objects without a recorded digest (written by another tool, or a crash between a write's two steps). */
  unrecorded: string[];
  datasets: { name: string; uri: string; shards: number; samples: number; ok: boolean }[];
  problems: string[];
}

export interface VerifyRunOptions {
  /** Decode every image of the run's datasets (slow on big sets). Default false. */
  decode?: boolean;
  /** Called after each object, and after each dataset shard. */
  onProgress?: (what: string, done: number, total: number) => void;
}

/** JSON objects are kept for the cross-checks below; anything bigger is only hashed. */
const KEEP_BYTES = 16 * 1024 * 1024;

interface Seen {
  sha256: string;
  size: number;
  json?: unknown;
}

export async function verifyRun(run: ObjectStore, root: ObjectStore, o: VerifyRunOptions = {}): Promise<RunVerification> {
  const runUri = run.uri.replace(/\/+$/, '');
  const result: RunVerification = { run: runUri, objects: 0, bytes: 0, recorded: 0, unrecorded: [], datasets: [], problems: [] };
  const problem = (p: string) => result.problems.push(p);
  const listing = await run.list('');
  const seen = new Map<string, Seen>();
  // Objects that could not be read back (already reported): not reported again as missing below.
  const damaged = new Set<string>();

  for (const [i, info] of listing.entries()) {
    const where = `${runUri}/${info.key}`;
    try {
      const head = await run.head(info.key);
      if (!head) continue; // deleted since the listing (a runner is active)
      const hasher = new Hasher();
      const parts: Buffer[] = [];
      for await (const chunk of await run.getStream(info.key)) {
        hasher.update(chunk as Buffer);
        if (info.key.endsWith('.json') && hasher.size <= KEEP_BYTES) parts.push(chunk as Buffer);
      }
      const digest = hasher.digest();
      const entry: Seen = { ...digest };
      if (parts.length > 0 && digest.size <= KEEP_BYTES) {
        try {
          entry.json = JSON.parse(Buffer.concat(parts).toString('utf8'));
        } catch (err) {
          problem(`${where}: not valid JSON (${(err as Error).message})`);
        }
      }
      seen.set(info.key, entry);
      result.objects++;
      result.bytes += digest.size;
      if (head.sha256) result.recorded++;
      else if (info.key !== 'lease') result.unrecorded.push(info.key);
    } catch (err) {
      damaged.add(info.key);
      problem((err as Error).message.includes(info.key) ? (err as Error).message : `${where}: ${(err as Error).message}`);
    }
    o.onProgress?.('objects', i + 1, listing.length);
  }

  const missing = (key: string) => !seen.has(key) && !damaged.has(key);
  checkRecords(runUri, seen, missing, problem);
  checkCheckpoints(runUri, seen, missing, problem);
  checkModels(runUri, seen, missing, problem);
  checkSummaries(runUri, seen, missing, problem);
  await checkDatasets(root, seen, o, result);
  return result;
}

/** Done stages: their declared outputs exist. */
function checkRecords(runUri: string, seen: Map<string, Seen>, missing: (key: string) => boolean, problem: (p: string) => void): void {
  for (const [key, entry] of seen) {
    if (!key.startsWith(stateDir) || !key.endsWith('.json') || entry.json === undefined) continue;
    const parsed = stageRecordSchema.safeParse(entry.json);
    if (!parsed.success) {
      problem(`${runUri}/${key}: not a valid stage record (${parsed.error.issues[0]?.message ?? 'unknown'})`);
      continue;
    }
    const rec = parsed.data;
    if (rec.status !== 'done') continue;
    for (const out of rec.outputs) if (missing(out)) problem(`${runUri}/${out}: missing, but stage ${rec.stage} is done and declares it`);
  }
}

/** Every committed checkpoint: tensors.bin is what COMMIT.json says (size and sha256). */
function checkCheckpoints(runUri: string, seen: Map<string, Seen>, missing: (key: string) => boolean, problem: (p: string) => void): void {
  for (const [key, entry] of seen) {
    const m = /^(.*\/ckpt\/step-\d{9}\/)COMMIT\.json$/.exec(key);
    if (!m) continue;
    const meta = entry.json as { sha256?: unknown; bytes?: unknown } | undefined;
    const tensorsKey = `${m[1]}tensors.bin`;
    const tensors = seen.get(tensorsKey);
    if (!tensors) {
      if (missing(tensorsKey)) problem(`${runUri}/${tensorsKey}: missing, but ${key} commits it`);
      continue;
    }
    if (meta?.sha256 !== tensors.sha256 || meta?.bytes !== tensors.size) {
      problem(`${runUri}/${tensorsKey}: does not match ${key}: expected sha256 ${String(meta?.sha256)} (${String(meta?.bytes)} bytes), got sha256 ${tensors.sha256} (${tensors.size} bytes)`);
    }
  }
}

const BYTES_PER_DTYPE: Record<string, number> = { float32: 4, int32: 4, bool: 1, float16: 2, uint8: 1, uint16: 2, complex64: 8 };

/** Every model.json: its weights files exist, their content matches their content-addressed names, the byte count the specs imply. */
function checkModels(runUri: string, seen: Map<string, Seen>, missing: (key: string) => boolean, problem: (p: string) => void): void {
  for (const [key, entry] of seen) {
    if (!key.endsWith('/model.json') || entry.json === undefined) continue;
    const dir = key.slice(0, -'model.json'.length);
    const manifest = (entry.json as { weightsManifest?: { paths?: unknown[]; weights?: { shape: number[]; dtype: string }[] }[] }).weightsManifest;
    if (!Array.isArray(manifest)) {
      problem(`${runUri}/${key}: no weightsManifest`);
      continue;
    }
    let total = 0;
    let expected = 0;
    for (const group of manifest) {
      for (const s of group.weights ?? []) expected += s.shape.reduce((a, b) => a * b, 1) * (BYTES_PER_DTYPE[s.dtype] ?? NaN);
      for (const p of group.paths ?? []) {
        const w = seen.get(`${dir}${String(p)}`);
        if (!w) {
          if (missing(`${dir}${String(p)}`)) problem(`${runUri}/${dir}${String(p)}: missing, but ${key} names it`);
          total = NaN; // the byte count cannot be checked without it
          continue;
        }
        total += w.size;
        const named = /^weights-([0-9a-f]{16})\.bin$/.exec(String(p))?.[1];
        if (named && !w.sha256.startsWith(named)) problem(`${runUri}/${dir}${String(p)}: content sha256 ${w.sha256} does not match its name (sha256 ${named}…)`);
      }
    }
    if (Number.isFinite(expected) && Number.isFinite(total) && total !== expected) problem(`${runUri}/${key}: its weights hold ${total} bytes, the weight specs describe ${expected}`);
  }
}

/** The infer and select summaries: every shard they list has its object. */
function checkSummaries(runUri: string, seen: Map<string, Seen>, missing: (key: string) => boolean, problem: (p: string) => void): void {
  for (const [key, entry] of seen) {
    const m = /^([^/]+)\/summary\.json$/.exec(key);
    if (!m || entry.json === undefined) continue;
    const stage = m[1]!;
    const summary = entry.json as { shards?: unknown };
    if (!Array.isArray(summary.shards)) continue;
    for (const s of summary.shards as unknown[]) {
      // infer: shard names; select: { shard, key } with the key relative to the stage.
      const obj = typeof s === 'string' ? `${stage}/predictions/${s}.jsonl.gz` : typeof (s as { key?: unknown }).key === 'string' ? `${stage}/${(s as { key: string }).key}` : undefined;
      if (obj && missing(obj)) problem(`${runUri}/${obj}: missing, but ${key} lists it`);
    }
  }
}

/** The datasets import/datasets.json names: each verified in full against its dataset.json. */
async function checkDatasets(root: ObjectStore, seen: Map<string, Seen>, o: VerifyRunOptions, result: RunVerification): Promise<void> {
  const list = seen.get('import/datasets.json')?.json as Record<string, unknown> | undefined;
  if (!list) return;
  const { verifyDataset } = await import('../data/verify.js');
  const { openStore } = await import('../store/open.js');
  const done = new Set<string>();
  for (const name of ['labeled', 'unlabeled', 'eval']) {
    const ref = list[name];
    if (typeof ref !== 'string' || done.has(ref)) continue;
    done.add(ref);
    const store = ref.includes('://') ? openStore(ref) : root.sub(ref);
    try {
      const report = await verifyDataset(store, { skipDecode: !o.decode, onShard: (d, t) => o.onProgress?.(`${name} shards`, d, t) });
      result.datasets.push({ name, uri: report.uri, shards: report.shards, samples: report.samples, ok: report.ok });
      for (const p of report.problems) result.problems.push(p);
    } finally {
      if (store !== root && ref.includes('://')) await store.close();
    }
  }
  const truth = list['groundTruth'];
  if (typeof truth === 'string') {
    const slash = truth.lastIndexOf('/');
    const store = truth.includes('://') ? openStore(truth.slice(0, slash)) : root;
    const key = truth.includes('://') ? truth.slice(slash + 1) : truth;
    try {
      await store.get(key);
    } catch (err) {
      result.problems.push(`${truth}: ${(err as Error).message}`);
    } finally {
      if (store !== root) await store.close();
    }
  }
}
