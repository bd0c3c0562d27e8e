/**
 * Shared data types for datasets in the store. Train, infer, evaluate and select code against
 * these; the implementations live beside this file:
 *
 *  - `dataset-json.ts`  the `dataset.json` schema (zod) + `loadDataset(store|uri)`
 *  - `reader.ts`        `readDataset(source, ReadOptions)` → `AsyncIterable<Sample>` (streaming,
 *                       prefetching, shard subset for workers, shuffle buffer, backpressure)
 *  - `random-access.ts` `SampleFetcher`: fetch one sample by (shard, key) with a ranged GET,
 *                       via the per-shard side index (`shard-NNNNNN.idx.json`)
 *  - `batches.ts`       `batches(samples, BatchOptions)` → `AsyncIterable<Batch>` (sharp decode,
 *                       grey/RGB, eval centre crop or train Inception crop + flip, NHWC tensors)
 *
 * Layout of a dataset (a prefix in any ObjectStore), WebDataset convention:
 *
 *   <prefix>/dataset.json              DatasetIndex (written last: never points at a missing shard)
 *   <prefix>/shard-000000.tar          POSIX tar, members `<key>.png|jpg|jpeg|webp`, `<key>.cls`
 *                                      (decimal class index; absent in unlabeled sets), `<key>.json`
 *   <prefix>/shard-000000.idx.json     ShardIndexFile: member byte offsets for random access
 *   <prefix>/ground-truth.jsonl.gz     unlabeled sets made by a split only: held-back labels,
 *                                      one `{"key","shard","label"}` per line; the reader never
 *                                      opens it, so training cannot see it by accident
 */

/** Image member extensions we read and write (lower case; `jpeg` is accepted as an alias). */
export const IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'webp'] as const;
export type ImageExt = (typeof IMAGE_EXTENSIONS)[number];

/** One shard as listed in dataset.json. */
export interface ShardEntry {
  /** Object name relative to the dataset prefix, e.g. `shard-000000.tar`. */
  name: string;
  /** Number of samples (keys) in the shard. */
  samples: number;
  /** Size of the tar object in bytes. */
  bytes: number;
  /** Hex sha256 of the tar object. */
  sha256: string;
  /** Side index object name (member offsets), e.g. `shard-000000.idx.json`. */
  index: string;
}

/** Contents of `<prefix>/dataset.json`. */
export interface DatasetIndex {
  format: 'selftrain-webdataset';
  version: 1;
  /** Class names; a label is an index into this array. */
  classes: string[];
  /** True when every sample carries a `.cls` label. Unlabeled sets: false. */
  labeled: boolean;
  /** Total number of samples. */
  samples: number;
  /** Samples per class (labeled sets only; same length as `classes`). */
  classCounts?: number[];
  /** Total bytes of all shards. */
  bytes: number;
  shards: ShardEntry[];
  /** Object name of the held-back ground truth (unlabeled side of a split), if any. */
  groundTruth?: string;
  /** Where it came from and how (importer, source, split, seed): informational. */
  source?: Record<string, unknown>;
  /** Hash of the import plan; a re-run with the same plan is a no-op, a different plan is refused. */
  plan?: string;
  /** Source samples left out at import (corrupt, not an image, unpaired members...). */
  skipped?: { key: string; where: string; reason: string; detail?: string }[];
}

/** One sample read from a shard. */
export interface Sample {
  /** Sample key (tar member name without extension); unique within a dataset. */
  key: string;
  /** Index of the shard in `DatasetIndex.shards`. */
  shard: number;
  /** Encoded image bytes (png/jpeg/webp), not decoded. */
  image: Buffer;
  /** Extension of the image member. */
  ext: ImageExt;
  /** Class index from `<key>.cls`; undefined in unlabeled sets. */
  label?: number;
  /** Parsed `<key>.json`, if present. */
  json?: unknown;
}

/** Byte ranges of one sample's members inside its shard tar (data only, no headers). */
export interface SampleLocation {
  key: string;
  ext: ImageExt;
  /** [offset, size] of the image member data. */
  image: [number, number];
  label?: number;
  /** [offset, size] of the `.json` member data, if any. */
  json?: [number, number];
}

/** Contents of `shard-NNNNNN.idx.json`. */
export interface ShardIndexFile {
  shard: string;
  /** sha256 of the tar the offsets refer to. */
  sha256: string;
  samples: SampleLocation[];
}

/** Reader options (see reader.ts). */
export interface ReadOptions {
  /** Read only shards with `shardNumber % count === index` (workers). Default: all. */
  shards?: { index: number; count: number };
  /** Explicit shard numbers to read (in this order, before shuffling); overrides `shards`. */
  shardList?: number[];
  /** Samples held in a shuffle buffer; 0/undefined = file order. */
  shuffleBuffer?: number;
  /** Seed for shard-order and buffer shuffling (with `epoch`). */
  seed?: number;
  /** Mixed into the seed so every epoch has its own order. */
  epoch?: number;
  /** Shuffle the order shards are read in (default: true when shuffleBuffer > 0). */
  shuffleShards?: boolean;
  /** Parallel shard downloads ahead of the consumer: at most `shards` shards and `bytes` bytes
   * in memory (one shard is always allowed even if larger than `bytes`). Default {2, 256 MiB}. */
  prefetch?: { shards: number; bytes: number };
  /** Check each shard's sha256 against dataset.json (default true). */
  verifyHashes?: boolean;
  /** Aborts the iteration (the iterator throws the abort reason). */
  signal?: AbortSignal;
}

/** A sample that could not be decoded/transformed and was left out of a batch. */
export interface SkippedSample {
  shard: number;
  key: string;
  reason: string;
}

/** Preprocessing options (see batches.ts). */
export interface BatchOptions {
  /** Samples per batch; the last batch may be smaller. */
  size: number;
  /** Output channels: 1 = greyscale, 3 = RGB. */
  channels: 1 | 3;
  /** Output side length S (images are S×S). */
  imageSize: number;
  /** eval: centre crop (recipe formula) + bicubic resize. train: Inception random-resized crop + flip. */
  mode: 'eval' | 'train';
  /** Seed for the train-mode crop and flip (per sample: derived from seed + key + epoch). */
  seed?: number;
  epoch?: number;
  /** Parallel sharp jobs (p-queue). Default: 4. */
  concurrency?: number;
  /** 'uint8' (default) or 'float32' (values 0..255, or normalised with `normalize`). */
  dtype?: 'uint8' | 'float32';
  /** Per-channel mean/std in 0..255 units, applied when dtype is float32. */
  normalize?: { mean: number[]; std: number[] };
  /** Eval crop fraction; default 0.875 via the recipe's S/(S+round(S·(1/0.875−1))). 1 = no crop. */
  cropFraction?: number;
  /** Decoded-pixel cap per image (decompression bombs); default 64 Mpx. */
  limitInputPixels?: number;
  /** Called for every skipped sample (also listed in Batch.skipped). */
  onSkip?: (s: SkippedSample) => void;
}

/** One preprocessed batch, NHWC, row-major. */
export interface Batch {
  keys: string[];
  shards: number[];
  /** Labels (-1 where the sample has none). */
  labels: Int32Array;
  pixels: Uint8Array | Float32Array;
  /** [n, imageSize, imageSize, channels] */
  shape: [number, number, number, number];
  /** Samples dropped from this batch because they failed to decode (never crash the stream). */
  skipped: SkippedSample[];
}

/** A problem with a dataset's data, always naming where (URI, shard, key). */
export class DataError extends Error {
  constructor(
    message: string,
    readonly where: { uri?: string; shard?: string; key?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DataError';
  }
}
