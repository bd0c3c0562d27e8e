/**
 * Preprocessing layer: turns a stream of Samples into NHWC batches, ready for tf.tensor4d.
 *
 *   for await (const b of batches(readDataset(uri, {...}), {
 *     size: 128, channels: 1, imageSize: 28, mode: 'train', seed: 1, epoch, concurrency: 4,
 *   })) { const x = tf.tensor4d(b.pixels, b.shape); use(x, b.labels, b.skipped); }   // skipped: samples that failed
 *
 * sharp jobs run on a p-queue bounded by `concurrency`; at most 2·concurrency samples are
 * decoded ahead of the batch being assembled, so memory stays bounded whatever the consumer's
 * speed. Batches keep input order (deterministic given the sample order and seed), and train
 * augmentation randomness is derived per sample from (seed, epoch, key), not from timing.
 * A sample that fails (corrupt, not an image, over the pixel cap) is recorded as
 * {shard, key, reason}, passed to onSkip, listed in a batch's `skipped` (the batch it would have
 * been in, or the last batch), and left out. Batches are never empty.
 */
import PQueue from 'p-queue';
import { transformImage } from './preprocess.js';
import type { Batch, BatchOptions, Sample, SkippedSample } from './types.js';

type Done = { sample: Sample; pixels?: Buffer; error?: string };

export async function* batches(samples: AsyncIterable<Sample> | Iterable<Sample>, o: BatchOptions): AsyncGenerator<Batch> {
  if (!Number.isInteger(o.size) || o.size < 1) throw new RangeError(`batch size must be a positive integer (got ${o.size})`);
  if (o.channels !== 1 && o.channels !== 3) throw new RangeError(`channels must be 1 or 3 (got ${String(o.channels)})`);
  if (!Number.isInteger(o.imageSize) || o.imageSize < 1) throw new RangeError(`imageSize must be a positive integer (got ${o.imageSize})`);
  const concurrency = o.concurrency ?? 4;
  const queue = new PQueue({ concurrency });
  const ahead = Math.max(2 * concurrency, 1);
  const pending: Promise<Done>[] = [];
  const per = o.imageSize * o.imageSize * o.channels;
  const float = o.dtype === 'float32';
  if (o.normalize && (o.normalize.mean.length !== o.channels || o.normalize.std.length !== o.channels)) {
    throw new RangeError(`normalize.mean/std need ${o.channels} values`);
  }

  let keys: string[] = [];
  let shards: number[] = [];
  let labels: number[] = [];
  let pixels = float ? new Float32Array(o.size * per) : new Uint8Array(o.size * per);
  let skipped: SkippedSample[] = [];

  const submit = (sample: Sample) => {
    const job = queue.add(async (): Promise<Done> => {
      try {
        const px = await transformImage(sample.image, {
          channels: o.channels,
          imageSize: o.imageSize,
          mode: o.mode,
          seed: o.seed,
          epoch: o.epoch,
          key: sample.key,
          cropFraction: o.cropFraction,
          limitInputPixels: o.limitInputPixels,
        });
        return { sample, pixels: px };
      } catch (err) {
        return { sample, error: (err as Error).message };
      }
    }) as Promise<Done>;
    pending.push(job);
  };

  const place = (d: Done): boolean => {
    if (d.error !== undefined || !d.pixels) {
      const s: SkippedSample = { shard: d.sample.shard, key: d.sample.key, reason: d.error ?? 'no pixels' };
      skipped.push(s);
      o.onSkip?.(s);
      return false;
    }
    if (d.pixels.length !== per) {
      // Never shift later images by writing a wrong-sized one into the batch.
      const s: SkippedSample = { shard: d.sample.shard, key: d.sample.key, reason: `preprocessed to ${d.pixels.length} bytes, expected ${per}` };
      skipped.push(s);
      o.onSkip?.(s);
      return false;
    }
    const i = keys.length;
    keys.push(d.sample.key);
    shards.push(d.sample.shard);
    labels.push(d.sample.label ?? -1);
    if (!float) {
      (pixels as Uint8Array).set(d.pixels, i * per);
    } else {
      const out = pixels as Float32Array;
      const base = i * per;
      const m = o.normalize?.mean;
      const sd = o.normalize?.std;
      for (let j = 0; j < per; j++) {
        const c = j % o.channels;
        out[base + j] = m && sd ? (d.pixels[j]! - m[c]!) / sd[c]! : d.pixels[j]!;
      }
    }
    return true;
  };

  const emit = (): Batch => {
    const n = keys.length;
    const b: Batch = {
      keys,
      shards,
      labels: Int32Array.from(labels),
      pixels: n === o.size ? pixels : pixels.slice(0, n * per),
      shape: [n, o.imageSize, o.imageSize, o.channels],
      skipped,
    };
    keys = [];
    shards = [];
    labels = [];
    skipped = [];
    pixels = float ? new Float32Array(o.size * per) : new Uint8Array(o.size * per);
    return b;
  };

  // The latest full batch is held back one step so skips after the last sample can be attached
  // to it: no empty trailing batch is ever emitted, and batch.skipped still lists every skip.
  let held: Batch | undefined;
  async function* complete(d: Done): AsyncGenerator<Batch> {
    place(d);
    if (keys.length === o.size) {
      if (held) yield held;
      held = emit();
    }
  }
  for await (const s of samples) {
    submit(s);
    while (pending.length >= ahead) yield* complete(await pending.shift()!);
  }
  while (pending.length) yield* complete(await pending.shift()!);
  if (keys.length > 0) {
    if (held) yield held;
    held = emit();
  } else if (held && skipped.length) {
    held.skipped.push(...skipped);
  }
  if (held) yield held;
}
