/**
 * The student's pseudo-labeled stream: the select stage's records (`<select>/pseudo/*.jsonl.gz`,
 * one line per kept unlabeled sample with its target distribution and repeat count) expanded by
 * their repeat counts into a virtual set of N entries. Step s takes entries s*rB .. s*rB+rB-1 of an
 * endless sequence of seeded permutations of that set, so like the labeled stream it is a pure
 * function of (seed, step). Images are read straight from the unlabeled shards by (shard, key)
 * (`SampleFetcher`: one ranged GET each; never copied) and decoded with a bounded in-memory cache.
 *
 * A record whose image is not in the unlabeled set is skipped with a warning naming the pseudo-label
 * object, shard and key (all checked up front, before training); if none are usable it is an error.
 */
import { openDataset } from '../data/dataset-json.js';
import { transformImage } from '../data/preprocess.js';
import { SampleFetcher } from '../data/random-access.js';
import { DataError } from '../data/types.js';
import { decodeJsonlGz } from '../pseudo/jsonl.js';
import type { PseudoLabelRecord } from '../pseudo/records.js';
import type { Logger } from '../runner/stage.js';
import type { ObjectStore } from '../store/types.js';
import { normalizeInto } from './data.js';
import type { RawImage } from './randaugment.js';
import { Sfc32, mix, permutation } from './rng.js';
import { objectUri } from '../store/uri.js';

export interface PseudoBatch {
  /** Normalised NHWC float32 of the augmented images. */
  pixels: Float32Array;
  /** n × K target distributions. */
  targets: Float32Array;
}

export interface PseudoSource {
  ratio: number;
  /** Entries after repeats. */
  size: number;
  unique: number;
  skipped: { object: string; shard: string; key: string; reason: string }[];
  batch(step: number, n: number, augment: (img: RawImage, j: number) => RawImage): Promise<PseudoBatch>;
  close(): Promise<void>;
}

interface Entry {
  shard: number;
  key: string;
  classes: number[];
  probs: number[];
}

export async function openPseudoSource(o: {
  /** Store rooted at the select stage's output prefix. */
  select: ObjectStore;
  /** Store rooted at the unlabeled dataset. */
  unlabeled: ObjectStore;
  ratio: number;
  hard: boolean;
  labelSmoothing: number;
  numClasses: number;
  imageSize: number;
  channels: 1 | 3;
  seed: number;
  log: Logger;
  cacheBytes?: number;
}): Promise<PseudoSource> {
  const ds = await openDataset(o.unlabeled);
  const fetcher = await SampleFetcher.open(o.unlabeled);
  const shardByName = new Map(ds.index.shards.map((s, i) => [s.name.replace(/\.tar$/, ''), i]));
  const objects = (await o.select.list('pseudo/')).filter((x) => x.key.endsWith('.jsonl.gz'));
  if (objects.length === 0) throw new DataError(`${o.select.uri}: no pseudo-label objects under pseudo/ (has the select stage run?)`, { uri: o.select.uri });
  const entries: Entry[] = [];
  const expanded: number[] = [];
  const skipped: PseudoSource['skipped'] = [];
  for (const obj of objects) {
    const where = objectUri(o.select, obj.key);
    for await (const { line, value } of decodeJsonlGz(await o.select.getStream(obj.key), where)) {
      const r = value as PseudoLabelRecord;
      if (typeof r?.key !== 'string' || typeof r.shard !== 'string' || !Array.isArray(r.classes) || !Array.isArray(r.probs) || !(r.repeats >= 1)) {
        throw new DataError(`${where}:${line}: not a pseudo-label record (needs shard, key, classes, probs, repeats >= 1)`, { uri: where });
      }
      if (r.classes.some((c) => !Number.isInteger(c) || c < 0 || c >= o.numClasses)) {
        throw new DataError(`${where}:${line}: class out of range 0..${o.numClasses - 1} in ${JSON.stringify(r.classes)}`, { uri: where, key: r.key });
      }
      const shard = shardByName.get(r.shard);
      let reason: string | undefined;
      if (shard === undefined) reason = `shard ${r.shard} is not in ${ds.uri}`;
      else if (!(await fetcher.locations(shard)).has(r.key)) reason = `no image "${r.key}" in ${ds.uri}/${r.shard}.tar`;
      if (reason) {
        skipped.push({ object: where, shard: r.shard, key: r.key, reason });
        if (skipped.length <= 10) o.log.warn(`pseudo-label ${where}:${line} skipped: ${reason}`, { shard: r.shard, key: r.key });
        continue;
      }
      const i = entries.length;
      entries.push({ shard: shard!, key: r.key, classes: r.classes, probs: r.probs });
      for (let k = 0; k < Math.round(r.repeats); k++) expanded.push(i);
    }
  }
  if (skipped.length > 10) o.log.warn(`${skipped.length} pseudo-labels skipped in total (images missing from ${ds.uri})`);
  if (entries.length === 0) throw new DataError(`${o.select.uri}: none of the pseudo-labels point at an image of ${ds.uri} (${skipped.length} skipped)`, { uri: o.select.uri });

  const K = o.numClasses;
  const per = o.imageSize * o.imageSize * o.channels;
  const cache = new Map<number, Uint8Array>();
  const cacheLimit = Math.max(1, Math.floor((o.cacheBytes ?? 512 * 1024 ** 2) / per));
  const decode = async (i: number): Promise<Uint8Array> => {
    const hit = cache.get(i);
    if (hit) return hit;
    const e = entries[i]!;
    const s = await fetcher.get(e.shard, e.key);
    let px: Buffer;
    try {
      px = await transformImage(s.image, { mode: 'eval', channels: o.channels, imageSize: o.imageSize, cropFraction: 1 });
    } catch (err) {
      throw new DataError(`${ds.uri}/${ds.index.shards[e.shard]!.name}: pseudo-labeled sample "${e.key}" cannot be decoded: ${(err as Error).message}`, { uri: ds.uri, key: e.key });
    }
    const arr = new Uint8Array(px);
    if (cache.size >= cacheLimit) cache.delete(cache.keys().next().value!);
    cache.set(i, arr);
    return arr;
  };
  const target = (e: Entry, out: Float32Array, offset: number) => {
    if (o.hard) {
      // Hard pseudo-labels: the argmax, label-smoothed like labeled data (Noisy Student's hard mode).
      let best = 0;
      for (let k = 1; k < e.probs.length; k++) if (e.probs[k]! > e.probs[best]!) best = k;
      for (let k = 0; k < K; k++) out[offset + k] = o.labelSmoothing / K;
      out[offset + e.classes[best]!]! += 1 - o.labelSmoothing;
    } else {
      // Soft: the stored distribution renormalised (select stores top-k probabilities summing to 1).
      const sum = e.probs.reduce((a, b) => a + b, 0) || 1;
      e.classes.forEach((c, k) => (out[offset + c]! += e.probs[k]! / sum));
    }
  };
  const N = expanded.length;
  let permIdx = -1;
  let perm: Uint32Array = new Uint32Array(0);
  return {
    ratio: o.ratio,
    size: N,
    unique: entries.length,
    skipped,
    async batch(step, n, augment) {
      const pixels = new Float32Array(n * per);
      const targets = new Float32Array(n * K);
      const picks: number[] = [];
      for (let j = 0; j < n; j++) {
        const p = step * n + j;
        const round = Math.floor(p / N);
        if (round !== permIdx) {
          perm = permutation(N, new Sfc32(mix(o.seed, 0x95e0, round)));
          permIdx = round;
        }
        picks.push(expanded[perm[p % N]!]!);
      }
      const decoded = await Promise.all(picks.map((i) => decode(i)));
      decoded.forEach((px, j) => {
        const img = augment({ data: px, width: o.imageSize, height: o.imageSize, channels: o.channels }, j);
        normalizeInto(img.data, o.channels, pixels, j * per);
        target(entries[picks[j]!]!, targets, j * K);
      });
      return { pixels, targets };
    },
    close: async () => {
      await fetcher.close();
      await ds.close();
    },
  };
}
