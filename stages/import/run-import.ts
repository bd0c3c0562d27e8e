/**
 * `importDataset`: source → dataset(s) in a store.
 *
 * 1. The source lists its samples (keys, labels) — metadata only.
 * 2. Order: source order, or a seeded shuffle (`seed`), fixed before anything is loaded.
 * 3. Optional split (`labeledPerClass` K): walking that order, the first K samples of each class
 *    go to `<to>/labeled/`, the rest to `<to>/unlabeled/` (no `.cls` members; their labels go to
 *    `ground-truth.jsonl.gz`, for measuring pseudo-label quality only). Or `unlabeled`: the whole
 *    source becomes an unlabeled set (no class list), its labels, if any, dropped or kept apart as
 *    ground truth in the same way.
 * 4. Each output is cut into shards of `samplesPerShard` in that order, so which sample lands in
 *    which shard is a pure function of (source, options): the plan hash. Shards are loaded in
 *    groups that fit `memoryBytes`, packed and committed one by one (see DatasetWriter), so a
 *    re-run resumes at shard granularity and memory stays flat.
 */
import { createHash } from 'node:crypto';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { DatasetWriter, type SkippedAtImport } from '../../pipeline/data/dataset-writer.js';
import { rng, seedFrom, shuffleInPlace } from '../../pipeline/data/rng.js';
import type { SampleToPack } from '../../pipeline/data/tar.js';
import { DataError, type DatasetIndex, type ShardIndexFile } from '../../pipeline/data/types.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { firstLine, type ImportSource, type LoadedSample, type SourceEntry } from './source.js';
import { trimUri } from '../../pipeline/store/uri.js';

/** Bumped when the shard layout an import produces changes (invalidates old plans). */
const LAYOUT_VERSION = 1;

export interface ImportOptions {
  samplesPerShard?: number;
  /** Shuffle with this seed before sharding; undefined = source order. */
  seed?: number;
  /** Split into labeled (K per class) + unlabeled. */
  labeledPerClass?: number;
  /**
   * Import as an unlabeled set whatever the source carries. `groundTruth`: keep the source's labels
   * apart (`ground-truth.jsonl.gz`, for reporting only; the class names stay in dataset.json to
   * interpret them); otherwise they are dropped and the set has no class list.
   */
  unlabeled?: { groundTruth: boolean };
  /** Keep only the first N samples of each output (after the shuffle and the split): a seeded
   * random subset, for CI-sized runs. Per output prefix ('' for a plain import). */
  limit?: Partial<Record<'' | 'labeled' | 'unlabeled', number>>;
  /** Bytes of loaded images held at once (default 64 MiB). */
  memoryBytes?: number;
  signal?: AbortSignal;
  onProgress?: (part: string, shardsDone: number, shardsTotal: number) => void;
}

export interface ImportResult {
  /** Output prefix ('' for a plain import, 'labeled'/'unlabeled' for a split) → its index. */
  outputs: { prefix: string; uri: string; index: DatasetIndex; resumedShards: number; alreadyComplete: boolean; remade?: number }[];
}

interface Part {
  prefix: string;
  entries: SourceEntry[];
  labeled: boolean;
  groundTruth: boolean;
}

export function splitLabeled(order: SourceEntry[], classes: string[], k: number): { labeled: SourceEntry[]; unlabeled: SourceEntry[] } {
  const taken = new Array<number>(classes.length).fill(0);
  const labeled: SourceEntry[] = [];
  const unlabeled: SourceEntry[] = [];
  for (const e of order) {
    if (e.label === undefined) throw new DataError(`cannot split by class: sample "${e.key}" has no label`, { key: e.key });
    if (taken[e.label]! < k) {
      taken[e.label]!++;
      labeled.push(e);
    } else {
      unlabeled.push(e);
    }
  }
  const short = taken.map((t, c) => [t, c] as const).filter(([t]) => t < k);
  if (short.length) {
    throw new DataError(`labeledPerClass ${k}: not enough samples in class ${short.map(([t, c]) => `"${classes[c]}" (${t})`).join(', ')}`);
  }
  return { labeled, unlabeled };
}

type Assemble = (g: number, loaded: Map<number, LoadedSample>) => { samples: SampleToPack[]; truth: [string, number][] };

/**
 * A finished dataset whose shard tars or side indexes (or ground truth) went missing — deleted by
 * the runner because they were found damaged — gets them remade from the source, byte for byte
 * the ones dataset.json records (else the source changed and the import says so). Returns how many
 * objects were remade.
 */
async function remakeMissing(writer: DatasetWriter, store: ObjectStore, index: DatasetIndex, shards: SourceEntry[][], source: ImportSource, assemble: Assemble, signal?: AbortSignal): Promise<number> {
  let remade = 0;
  for (const [n, entry] of index.shards.entries()) {
    signal?.throwIfAborted();
    if ((await store.head(entry.name)) && (await store.head(entry.index))) continue;
    if (!shards[n]) throw new DataError(`${trimUri(store.uri)}/${entry.name}: cannot remake the shard: the source has fewer shards now`, { uri: store.uri, shard: entry.name });
    const loaded = new Map<number, LoadedSample>();
    for await (const l of source.load(shards[n])) loaded.set(l.entry.ref, l);
    await writer.remakeShard(n, assemble(n, loaded).samples, entry);
    remade++;
  }
  if (index.groundTruth && !(await store.head(index.groundTruth))) {
    // The held-back labels need no image: the labels of the samples each shard kept.
    const kept = new Set<string>();
    for (const entry of index.shards) {
      const file = JSON.parse((await store.get(entry.index)).toString('utf8')) as ShardIndexFile;
      for (const l of file.samples) kept.add(l.key);
    }
    const lines = shards.flatMap((entries, n) => entries.filter((e) => kept.has(e.key) && e.label !== undefined).map((e) => ({ key: e.key, shard: n, label: e.label! })));
    await writer.remakeGroundTruth(index.groundTruth, lines);
    remade++;
  }
  return remade;
}

/** A skipped sample's record: a one-line reason, and libvips' many-line message in full as detail. */
function skippedSample(key: string, where: string, reason: string): SkippedAtImport {
  const short = firstLine(reason);
  return short === reason.trim() ? { key, where, reason } : { key, where, reason: short, detail: reason };
}

export async function importDataset(source: ImportSource, to: ObjectStore | string, o: ImportOptions = {}): Promise<ImportResult> {
  const perShard = o.samplesPerShard ?? 2000;
  if (!Number.isInteger(perShard) || perShard < 1) throw new DataError(`samplesPerShard must be a positive integer (got ${perShard})`);
  const memory = o.memoryBytes ?? 64 * 1024 * 1024;
  const root = typeof to === 'string' ? openStore(to) : to;
  try {
    const order = [...source.entries];
    if (o.seed !== undefined) shuffleInPlace(order, rng(seedFrom('import-order', o.seed)));
    const parts: Part[] = [];
    if (o.labeledPerClass !== undefined) {
      const { labeled, unlabeled } = splitLabeled(order, source.classes, o.labeledPerClass);
      parts.push({ prefix: 'labeled', entries: labeled, labeled: true, groundTruth: false });
      parts.push({ prefix: 'unlabeled', entries: unlabeled, labeled: false, groundTruth: true });
    } else if (o.unlabeled) {
      if (o.labeledPerClass !== undefined) throw new DataError('an unlabeled import cannot also be split by labeledPerClass');
      const truth = o.unlabeled.groundTruth && order.length > 0 && order.every((e) => e.label !== undefined);
      parts.push({ prefix: '', entries: order, labeled: false, groundTruth: truth });
    } else {
      parts.push({ prefix: '', entries: order, labeled: order.length > 0 && order.every((e) => e.label !== undefined), groundTruth: false });
    }
    // An unlabeled set has no label space of its own, unless it keeps ground truth to interpret.
    const classes = o.unlabeled && !parts[0]!.groundTruth ? [] : source.classes;
    const result: ImportResult = { outputs: [] };
    for (const part of parts) {
      const store = part.prefix ? root.sub(part.prefix) : root;
      const limit = o.limit?.[part.prefix as '' | 'labeled' | 'unlabeled'];
      if (limit !== undefined) part.entries = part.entries.slice(0, limit);
      // `limit` joins the plan only when set, so uncapped imports keep their existing plan hash.
      const options = {
        samplesPerShard: perShard,
        seed: o.seed ?? null,
        labeledPerClass: o.labeledPerClass ?? null,
        part: part.prefix,
        ...(limit !== undefined ? { limit } : {}),
        ...(o.unlabeled ? { unlabeled: part.groundTruth ? 'ground-truth' : 'no-labels' } : {}),
      };
      const plan = createHash('sha256').update(JSON.stringify({ v: LAYOUT_VERSION, source: source.identity, options })).digest('hex').slice(0, 32);
      const writer = new DatasetWriter(store, {
        classes,
        labeled: part.labeled,
        plan,
        groundTruth: part.groundTruth,
        source: { importer: source.kind, ...source.identity, ...options },
      });
      const state = await writer.begin();
      const uri = trimUri(store.uri);
      const shards: SourceEntry[][] = [];
      for (let i = 0; i < part.entries.length; i += perShard) shards.push(part.entries.slice(i, i + perShard));
      // Source problems found while indexing belong to no shard: record them with shard 0.
      const indexProblems: SkippedAtImport[] = source.problems.map((p) => skippedSample(p.key, p.where, p.reason));
      if (shards.length === 0) shards.push([]);
      /** Shard g's samples from the loaded images: failed loads are skipped (recorded), as always. */
      const assemble = (g: number, loaded: Map<number, LoadedSample>) => {
        const samples: SampleToPack[] = [];
        const skipped: SkippedAtImport[] = g === 0 ? [...indexProblems] : [];
        const truth: [string, number][] = [];
        for (const e of shards[g]!) {
          const l = loaded.get(e.ref);
          if (!l || l.error || !l.image || !l.ext) {
            skipped.push(skippedSample(e.key, l?.where ?? '', l?.error ?? 'not loaded'));
            continue;
          }
          const s: SampleToPack = { key: e.key, ext: l.ext, image: l.image };
          if (part.labeled) s.label = e.label;
          else if (part.groundTruth && e.label !== undefined) truth.push([e.key, e.label]);
          if (l.json !== undefined) s.json = l.json;
          samples.push(s);
        }
        return { samples, skipped, truth };
      };
      if (state === 'complete') {
        const ds = await openDataset(store);
        const remade = await remakeMissing(writer, store, ds.index, shards, source, assemble, o.signal);
        result.outputs.push({ prefix: part.prefix, uri, index: ds.index, resumedShards: ds.index.shards.length, alreadyComplete: true, remade });
        continue;
      }
      const resumed = writer.shardsDone;
      let n = 0;
      while (n < shards.length) {
        o.signal?.throwIfAborted();
        if (writer.isShardDone(n)) {
          n++;
          continue;
        }
        // A group of consecutive pending shards whose images fit the memory budget.
        const group: number[] = [n];
        let bytes = shards[n]!.length * source.bytesPerEntry;
        for (let m = n + 1; m < shards.length && !writer.isShardDone(m); m++) {
          const b = shards[m]!.length * source.bytesPerEntry;
          if (bytes + b > memory) break;
          group.push(m);
          bytes += b;
        }
        const loaded = new Map<number, LoadedSample>();
        const wanted = group.flatMap((g) => shards[g]!);
        for await (const l of source.load(wanted)) loaded.set(l.entry.ref, l);
        for (const g of group) {
          const { samples, skipped, truth } = assemble(g, loaded);
          await writer.writeShard(g, samples, skipped, part.groundTruth ? truth : undefined);
          o.onProgress?.(part.prefix, writer.shardsDone, shards.length);
          o.signal?.throwIfAborted();
        }
        loaded.clear();
        n = group[group.length - 1]! + 1;
      }
      const index = await writer.finish(shards.length);
      result.outputs.push({ prefix: part.prefix, uri, index, resumedShards: resumed, alreadyComplete: false });
    }
    return result;
  } finally {
    if (typeof to === 'string') await root.close();
    await source.close();
  }
}
