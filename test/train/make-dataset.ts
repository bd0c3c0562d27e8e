/** Writes small real Fashion-MNIST datasets (PNG in WebDataset shards) for the train tests. */
import sharp from 'sharp';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import type { SampleToPack } from '../../pipeline/data/tar.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { readFashionMnist } from '../helpers/fashion-mnist.js';

export const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/**
 * `perClass` images of each class (labeled) or the images [from, from+count) without labels, from
 * the given split, `perShard` samples per shard. Keys are `<split>-<index>`.
 */
export async function writeFashionDataset(
  store: ObjectStore,
  o: { split: 'train' | 't10k'; perClass?: number; from?: number; count?: number; perShard?: number; labeled: boolean },
): Promise<{ keys: string[]; labels: number[] }> {
  const fm = readFashionMnist(o.split);
  const picked: number[] = [];
  if (o.perClass !== undefined) {
    const taken = new Array(10).fill(0);
    for (let i = 0; i < fm.count && picked.length < o.perClass * 10; i++) {
      if (taken[fm.labels[i]!] < o.perClass) {
        taken[fm.labels[i]!]++;
        picked.push(i);
      }
    }
  } else {
    for (let i = o.from ?? 0; i < (o.from ?? 0) + (o.count ?? 100); i++) picked.push(i);
  }
  const samples: SampleToPack[] = [];
  for (const i of picked) {
    const px = fm.images.subarray(i * 784, (i + 1) * 784);
    const png = await sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
    samples.push({ key: `${o.split}-${String(i).padStart(5, '0')}`, ext: 'png', image: png, ...(o.labeled ? { label: fm.labels[i]! } : {}) });
  }
  const perShard = o.perShard ?? 500;
  const w = new DatasetWriter(store, { classes: CLASSES, labeled: o.labeled, plan: `test-${o.split}-${picked.length}-${o.labeled}` });
  await w.begin();
  let n = 0;
  for (let s = 0; s < samples.length; s += perShard) await w.writeShard(n++, samples.slice(s, s + perShard));
  await w.finish(n);
  return { keys: samples.map((s) => s.key), labels: picked.map((i) => fm.labels[i]!) };
}
