/**
 * Writes a dataset shard by shard, resumably:
 *  - each shard is one atomic `put` of a deterministic tar, then its side index, then a small
 *    progress record `_progress/shard-NNNNNN.json` (entry, class counts, skipped samples);
 *  - on a re-run with the same plan hash, shards whose record exists and whose object still has
 *    the recorded size are kept; anything else is rewritten (a kill between the shard put and
 *    its record only costs that shard);
 *  - `dataset.json` is written last, only after every shard it lists has a record, so it never
 *    points at a missing or partial shard. A finished dataset with the same plan is a no-op; a
 *    finished dataset with a different plan is refused (never silently overwritten).
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { integrityErrorIn, isNotFoundError, type ObjectStore } from '../store/types.js';
import { DATASET_JSON, parseDatasetJson, shardIndexName, shardName } from './dataset-json.js';
import { packShard, type SampleToPack } from './tar.js';
import { DataError, type DatasetIndex, type SampleLocation, type ShardEntry, type ShardIndexFile } from './types.js';
import { trimUri } from '../store/uri.js';
import { getOrThrow } from '../checked.js';

const PROGRESS = '_progress/';
const progressKey = (n: number) => `${PROGRESS}shard-${String(n).padStart(6, '0')}.json`;

export interface SkippedAtImport {
  key: string;
  where: string;
  /** One line. */
  reason: string;
  /** The full message when it is longer than one line (libvips repeats its warnings). */
  detail?: string;
}

interface ProgressRecord {
  plan: string;
  entry: ShardEntry;
  classCounts: number[];
  skipped: SkippedAtImport[];
  /** Held-back labels of an unlabeled split: [key, label]. */
  truth?: [string, number][];
}

export interface DatasetWriterOptions {
  classes: string[];
  labeled: boolean;
  /** Identifies the import (source + options); see class comment. */
  plan: string;
  source?: Record<string, unknown>;
  /** Write `ground-truth.jsonl.gz` from the labels given to writeShard(…, truth). */
  groundTruth?: boolean;
}

export class DatasetWriter {
  private done = new Map<number, ProgressRecord>();
  constructor(
    readonly store: ObjectStore,
    readonly opts: DatasetWriterOptions,
  ) {}

  private get where(): string {
    return trimUri(this.store.uri);
  }

  /** Loads resume state. Returns 'complete' when dataset.json of this same plan already exists. */
  async begin(): Promise<'complete' | 'resume'> {
    const existing = await this.store.head(DATASET_JSON);
    if (existing) {
      const idx = parseDatasetJson((await this.store.get(DATASET_JSON)).toString('utf8'), this.where);
      if (idx.plan === this.opts.plan) return 'complete';
      throw new DataError(
        `${this.where} already holds a different dataset (plan ${idx.plan ?? 'unknown'}, this import ${this.opts.plan}); ` +
          `import to another prefix or delete it first`,
        { uri: this.where },
      );
    }
    for (const info of await this.store.list(PROGRESS)) {
      let rec: ProgressRecord;
      try {
        rec = JSON.parse((await this.store.get(info.key)).toString('utf8')) as ProgressRecord;
      } catch (err) {
        // Gone, damaged or unparsable: the shard is simply redone. Any other store error is a failure.
        if (isNotFoundError(err) || integrityErrorIn(err) || err instanceof SyntaxError) continue;
        throw err;
      }
      if (rec.plan !== this.opts.plan) continue;
      const n = Number(/shard-(\d+)\.json$/.exec(info.key)?.[1]);
      const head = await this.store.head(rec.entry.name);
      const idxHead = await this.store.head(rec.entry.index);
      if (head && head.size === rec.entry.bytes && idxHead) this.done.set(n, rec);
    }
    return 'resume';
  }

  isShardDone(n: number): boolean {
    return this.done.has(n);
  }

  get shardsDone(): number {
    return this.done.size;
  }

  /**
   * Packs and commits shard n. `skipped` are source samples of this shard left out (recorded in
   * dataset.json). `truth` holds labels withheld from the tar (unlabeled split).
   */
  async writeShard(n: number, samples: SampleToPack[], skipped: SkippedAtImport[] = [], truth?: [string, number][]): Promise<ShardEntry> {
    const { tarBytes, entry, indexFile, classCounts } = await this.buildShard(n, samples);
    await this.store.put(entry.name, tarBytes, { contentType: 'application/x-tar' });
    await this.store.put(entry.index, JSON.stringify(indexFile), { contentType: 'application/json' });
    const rec: ProgressRecord = { plan: this.opts.plan, entry, classCounts, skipped };
    if (truth) rec.truth = truth;
    await this.store.put(progressKey(n), JSON.stringify(rec), { contentType: 'application/json' });
    this.done.set(n, rec);
    return entry;
  }

  /**
   * Remakes shard n of a finished dataset (its tar or side index was damaged and deleted) from the
   * same samples: the bytes must be the ones dataset.json records, else the source changed since
   * the import and the shard cannot be remade (a DataError says so).
   */
  async remakeShard(n: number, samples: SampleToPack[], recorded: ShardEntry): Promise<void> {
    const { tarBytes, entry, indexFile } = await this.buildShard(n, samples);
    if (entry.sha256 !== recorded.sha256 || entry.bytes !== recorded.bytes) {
      throw new DataError(
        `${this.where}/${recorded.name}: cannot remake the shard: the source now gives sha256 ${entry.sha256} (${entry.bytes} bytes), ` +
          `dataset.json records ${recorded.sha256} (${recorded.bytes} bytes): the source changed since the import; import it again to another prefix`,
        { uri: this.where, shard: recorded.name },
      );
    }
    await this.store.put(entry.name, tarBytes, { contentType: 'application/x-tar' });
    await this.store.put(entry.index, JSON.stringify(indexFile), { contentType: 'application/json' });
  }

  /** Remakes a finished dataset's ground truth object from its lines (same order as finish()). */
  async remakeGroundTruth(key: string, lines: { key: string; shard: number; label: number }[]): Promise<void> {
    const text = lines.map((l) => JSON.stringify({ key: l.key, shard: l.shard, label: l.label })).join('\n');
    await this.store.put(key, gzipSync(text + (lines.length ? '\n' : '')), { contentType: 'application/gzip' });
  }

  private async buildShard(n: number, samples: SampleToPack[]): Promise<{ tarBytes: Buffer; entry: ShardEntry; indexFile: ShardIndexFile; classCounts: number[] }> {
    const name = shardName(n);
    const { tar: tarBytes, offsets } = await packShard(samples);
    const sha256 = createHash('sha256').update(tarBytes).digest('hex');
    const classCounts = new Array<number>(this.opts.classes.length).fill(0);
    const locations: SampleLocation[] = [];
    for (const s of samples) {
      if (s.label !== undefined && (!Number.isInteger(s.label) || s.label < 0 || s.label >= classCounts.length)) {
        throw new DataError(`${name}: sample "${s.key}": class index ${s.label} out of range (${classCounts.length} classes)`, { shard: name, key: s.key });
      }
      if (this.opts.labeled && s.label === undefined) throw new DataError(`${name}: sample "${s.key}" has no label in a labeled dataset`, { shard: name, key: s.key });
      const img = `${s.key}.${s.ext}`;
      const loc: SampleLocation = { key: s.key, ext: s.ext, image: [getOrThrow(offsets, img, `${name}: offsets of the packed tar`), s.image.byteLength] };
      if (s.label !== undefined) {
        loc.label = s.label;
        classCounts[s.label]!++;
      }
      if (s.json !== undefined) loc.json = [getOrThrow(offsets, `${s.key}.json`, `${name}: offsets of the packed tar`), Buffer.byteLength(JSON.stringify(s.json))];
      locations.push(loc);
    }
    const entry: ShardEntry = { name, samples: locations.length, bytes: tarBytes.length, sha256, index: shardIndexName(n) };
    const indexFile: ShardIndexFile = { shard: name, sha256, samples: locations };
    return { tarBytes, entry, indexFile, classCounts };
  }

  /** Writes ground truth (if any) and then dataset.json; removes the progress records. */
  async finish(shardCount: number): Promise<DatasetIndex> {
    const shards: ShardEntry[] = [];
    const classCounts = new Array<number>(this.opts.classes.length).fill(0);
    const skipped: SkippedAtImport[] = [];
    const truthLines: string[] = [];
    for (let n = 0; n < shardCount; n++) {
      const rec = this.done.get(n);
      if (!rec) throw new DataError(`${this.where}: cannot finish: ${shardName(n)} was not written`, { uri: this.where, shard: shardName(n) });
      shards.push(rec.entry);
      rec.classCounts.forEach((c, i) => (classCounts[i]! += c));
      skipped.push(...rec.skipped);
      for (const [key, label] of rec.truth ?? []) truthLines.push(JSON.stringify({ key, shard: n, label }));
    }
    const index: DatasetIndex = {
      format: 'selftrain-webdataset',
      version: 1,
      classes: this.opts.classes,
      labeled: this.opts.labeled,
      samples: shards.reduce((a, s) => a + s.samples, 0),
      bytes: shards.reduce((a, s) => a + s.bytes, 0),
      shards,
    };
    if (this.opts.labeled) index.classCounts = classCounts;
    if (this.opts.groundTruth) {
      index.groundTruth = 'ground-truth.jsonl.gz';
      // mtime 0 in the gzip header (Node writes none) keeps this object byte-identical across runs.
      await this.store.put(index.groundTruth, gzipSync(truthLines.join('\n') + (truthLines.length ? '\n' : '')), { contentType: 'application/gzip' });
    }
    if (this.opts.source) index.source = this.opts.source;
    index.plan = this.opts.plan;
    if (skipped.length) index.skipped = skipped;
    await this.store.put(DATASET_JSON, JSON.stringify(index, null, 1) + '\n', { contentType: 'application/json' });
    await this.store.deletePrefix(PROGRESS);
    return index;
  }
}
