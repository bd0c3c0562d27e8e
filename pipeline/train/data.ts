/**
 * The labeled training data, held decoded in memory as S×S×C uint8 (Fashion-MNIST: 1000 images =
 * 0.8 MB; even 100k images at 64 px RGB fit). Decoding once and augmenting raw pixels each step is
 * far cheaper than re-running sharp per step on small images; the cost is that the Inception crop is
 * taken from the S×S image rather than the full-resolution original (fine for small sets; a
 * streaming variant for ImageNet-scale sets is future work — sets over `MAX_DECODED_BYTES` are
 * refused before anything is read, and `validate`/`plan` warn about them up front).
 *
 * A stratified, seeded slice is held out (the paper's "minival", 2% of the training set: Bello et
 * al. 2021, "Revisiting ResNets", arXiv 2103.07579 §4.2) and preprocessed the eval way (centre
 * crop + bicubic resize, the same `transformImage` the infer stage uses), for per-epoch metrics.
 */
import PQueue from 'p-queue';
import { openDataset, type OpenDataset } from '../data/dataset-json.js';
import { IMAGENET_NORMALIZATION } from '../model/registry.js';
import { fitWithin, overLimit } from './labeled-memory.js';
import { transformImage } from '../data/preprocess.js';
import { readDataset } from '../data/reader.js';
import { DataError } from '../data/types.js';
import type { ObjectStore } from '../store/types.js';
import type { GroundTruth } from './ground-truth.js';
import { Sfc32, mix, permutation } from './rng.js';


export interface ImageSet {
  count: number;
  size: number;
  channels: number;
  /** count × size × size × channels, row-major NHWC. */
  pixels: Uint8Array;
  labels: Int32Array;
  keys: string[];
}

export interface LabeledData {
  train: ImageSet;
  heldout: ImageSet;
  classes: string[];
  uri: string;
  /** Where the images came from and how they are labeled (train + held-out counts per part). */
  parts?: { uri: string; samples: number; classCounts: number[]; labels: 'own' | 'ground-truth'; labelsFrom?: string }[];
}

/** An unlabeled dataset whose held-back labels are used for training (the all-labels baseline only). */
export interface WithGroundTruth {
  source: ObjectStore | string;
  truth: GroundTruth;
}

/** ImageNet mean/std in 0..255 (the registry's IMAGENET_NORMALIZATION); grey: the channels' means. */
export function normalization(channels: number): { mean: number[]; std: number[] } {
  const { rgb, grey } = IMAGENET_NORMALIZATION;
  if (channels === 3) return { mean: [...rgb.mean], std: [...rgb.std] };
  return { mean: Array<number>(channels).fill(grey.mean[0]!), std: Array<number>(channels).fill(grey.std[0]!) };
}

/** uint8 HWC pixels → normalised float32 (in place into `out` at `offset`). */
export function normalizeInto(src: Uint8Array, channels: number, out: Float32Array, offset: number): void {
  const { mean, std } = normalization(channels);
  if (channels === 1) {
    const m = mean[0]!, inv = 1 / std[0]!;
    for (let i = 0; i < src.length; i++) out[offset + i] = (src[i]! - m) * inv;
    return;
  }
  const inv = std.map((s) => 1 / s);
  for (let i = 0; i < src.length; i++) {
    const c = i % channels;
    out[offset + i] = (src[i]! - mean[c]!) * inv[c]!;
  }
}

function countClasses(labels: Iterable<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const l of labels) counts[l] = (counts[l] ?? 0) + 1;
  return counts;
}

/** Indices held out per class: round(fraction × class count), chosen by a seeded permutation. */
export function stratifiedHoldout(labels: ArrayLike<number>, fraction: number, seed: number): Set<number> {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!byClass.has(c)) byClass.set(c, []);
    byClass.get(c)!.push(i);
  }
  const held = new Set<number>();
  for (const [c, idx] of [...byClass.entries()].sort((a, b) => a[0] - b[0])) {
    const n = Math.round(idx.length * fraction);
    const p = permutation(idx.length, new Sfc32(mix(seed, 0x401d, c)));
    for (let k = 0; k < n; k++) held.add(idx[p[k]!]!);
  }
  return held;
}

function emptySet(count: number, size: number, channels: number): ImageSet {
  return { count, size, channels, pixels: new Uint8Array(count * size * size * channels), labels: new Int32Array(count), keys: [] };
}

/**
 * The labeled set, decoded. With `withGroundTruth` (the all-labels baseline) an unlabeled dataset is
 * appended, each image labeled from the held-back ground truth; the hold-out is then drawn from the
 * union (stratified by class). Every unlabeled image must have a ground-truth label: a missing one is
 * an error naming the key, shard and ground-truth URI (silently training on fewer images would make
 * the baseline weaker than claimed).
 */
export async function loadLabeled(
  source: ObjectStore | string,
  o: { imageSize: number; channels: 1 | 3; holdout: number; seed: number; concurrency?: number; signal?: AbortSignal },
  withGroundTruth?: WithGroundTruth,
): Promise<LabeledData> {
  const ds: OpenDataset = await openDataset(source);
  const extra: OpenDataset | undefined = withGroundTruth ? await openDataset(withGroundTruth.source).catch(async (err) => { await ds.close(); throw err; }) : undefined;
  try {
    const { index } = ds;
    if (!index.labeled) throw new DataError(`${ds.uri}: dataset is unlabeled; the train stage needs a labeled set`, { uri: ds.uri });
    if (extra && extra.index.classes.join('\n') !== index.classes.join('\n')) {
      throw new DataError(`${extra.uri}: its classes [${extra.index.classes.join(', ')}] differ from the labeled set's ${ds.uri} [${index.classes.join(', ')}]`, { uri: extra.uri });
    }
    const per = o.imageSize * o.imageSize * o.channels;
    const total = index.samples + (extra?.index.samples ?? 0);
    const tooBig = overLimit(extra ? `${ds.uri} + ${extra.uri}` : ds.uri, { samples: total, imageSize: o.imageSize, channels: o.channels });
    if (tooBig) {
      const fit = fitWithin({ samples: total, imageSize: o.imageSize, channels: o.channels });
      throw new DataError(`${tooBig}. To train now: cap the set (manifest datasets.maxSamples.labeled: ${fit.samples}, for an imported source) or lower model.imageSize; \`selftrain plan\` shows this for every train stage`, { uri: ds.uri });
    }
    // Pass 1 in file order: keep encoded bytes only as long as it takes to decode them.
    const encoded: { key: string; label: number; image: Buffer }[] = [];
    for await (const s of readDataset(ds, { signal: o.signal })) encoded.push({ key: s.key, label: s.label!, image: s.image });
    const K = index.classes.length;
    const parts: LabeledData['parts'] = [{ uri: ds.uri, samples: encoded.length, classCounts: countClasses(encoded.map((e) => e.label), K), labels: 'own' }];
    if (extra && withGroundTruth) {
      const { labels, uri } = withGroundTruth.truth;
      const before = encoded.length;
      for await (const s of readDataset(extra, { signal: o.signal })) {
        const label = labels.get(s.key);
        if (label === undefined) {
          const shard = extra.index.shards[s.shard]?.name ?? `shard ${s.shard}`;
          throw new DataError(`${extra.uri}: sample "${s.key}" (${shard}) has no label in the ground truth ${uri}`, { uri: extra.uri, shard, key: s.key });
        }
        // Keys are unique per dataset only: prefix so labeled and unlabeled keys never collide.
        encoded.push({ key: `unlabeled/${s.key}`, label, image: s.image });
      }
      parts.push({ uri: extra.uri, samples: encoded.length - before, classCounts: countClasses(encoded.slice(before).map((e) => e.label), K), labels: 'ground-truth', labelsFrom: uri });
    }
    const held = stratifiedHoldout(encoded.map((e) => e.label), o.holdout, o.seed);
    const train = emptySet(encoded.length - held.size, o.imageSize, o.channels);
    const heldout = emptySet(held.size, o.imageSize, o.channels);
    const queue = new PQueue({ concurrency: o.concurrency ?? 4 });
    let ti = 0, hi = 0;
    const jobs = encoded.map((e, i) => {
      const isHeld = held.has(i);
      const set = isHeld ? heldout : train;
      const slot = isHeld ? hi++ : ti++;
      set.labels[slot] = e.label;
      set.keys[slot] = e.key;
      return queue.add(async () => {
        let px: Buffer;
        try {
          // Training images: the whole image at S×S (random crops are taken later from it);
          // held-out images: the recipe's eval centre crop.
          px = await transformImage(e.image, { mode: 'eval', channels: o.channels, imageSize: o.imageSize, cropFraction: isHeld ? undefined : 1 });
        } catch (err) {
          throw new DataError(`${ds.uri}: sample "${e.key}" cannot be decoded: ${(err as Error).message}`, { uri: ds.uri, key: e.key }, { cause: err });
        }
        set.pixels.set(px, slot * per);
      });
    });
    await Promise.all(jobs);
    return { train, heldout, classes: index.classes, uri: extra ? `${ds.uri} + ${extra.uri} (ground-truth labels)` : ds.uri, parts };
  } finally {
    await ds.close();
    await extra?.close();
  }
}
