/**
 * Full verification of a dataset: dataset.json valid; every shard present with the listed size,
 * sha256 and sample count; every tar readable to its end; every sample paired (one image, a
 * `.cls` in range for labeled sets); every image decodable under the pixel cap; class counts and
 * side indexes consistent. Problems are collected (each naming shard and key), not thrown, so one
 * run lists everything that is wrong.
 */
import { createHash } from 'node:crypto';
import PQueue from 'p-queue';
import sharp from 'sharp';
import type { ObjectStore } from '../store/types.js';
import { openDataset } from './dataset-json.js';
import { decodeSmallPng } from './png-fast.js';
import { DEFAULT_LIMIT_INPUT_PIXELS } from './preprocess.js';
import { checkGroup } from './sample-members.js';
import { groupMembers, readTarMembers } from './tar.js';
import { DataError, type ShardIndexFile } from './types.js';

export interface VerifyReport {
  uri: string;
  ok: boolean;
  problems: string[];
  shards: number;
  samples: number;
  decoded: number;
  classCounts?: number[];
}

export interface VerifyOptions {
  /** Parallel image decodes (default 4). */
  concurrency?: number;
  limitInputPixels?: number;
  /** Stop listing after this many problems (default 1000). */
  maxProblems?: number;
  /** Skip decoding images (structure and hashes only). */
  skipDecode?: boolean;
  onShard?: (done: number, total: number) => void;
}

/** Decodes an image fully; returns undefined or the reason it is not usable. */
export async function checkDecodable(image: Buffer, limitInputPixels = DEFAULT_LIMIT_INPUT_PIXELS): Promise<string | undefined> {
  if (image.length === 0) return 'empty (0 bytes)';
  try {
    // Small plain PNGs are decoded (with CRC and length checks) the way the reader will decode them.
    if (decodeSmallPng(image, limitInputPixels)) return undefined;
    // One decode: sharp enforces limitInputPixels from the header, before allocating pixels.
    const { info } = await sharp(image, { limitInputPixels, failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
    if (!info.width || !info.height) return 'image has no dimensions';
    return undefined;
  } catch (err) {
    const msg = (err as Error).message;
    if (/pixel limit/i.test(msg)) return `refused: ${msg} (cap ${limitInputPixels} pixels, a decompression-bomb guard; raise it with --max-pixels)`;
    return `not decodable: ${msg}`;
  }
}

export async function verifyDataset(source: ObjectStore | string, o: VerifyOptions = {}): Promise<VerifyReport> {
  const maxProblems = o.maxProblems ?? 1000;
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < maxProblems) problems.push(p);
    else if (problems.length === maxProblems) problems.push(`... more problems not listed (limit ${maxProblems})`);
  };
  let ds;
  try {
    ds = await openDataset(source);
  } catch (err) {
    const uri = typeof source === 'string' ? source : source.uri;
    if (err instanceof DataError) return { uri, ok: false, problems: [err.message], shards: 0, samples: 0, decoded: 0 };
    throw err;
  }
  const { index, uri } = ds;
  const report: VerifyReport = { uri, ok: false, problems, shards: index.shards.length, samples: 0, decoded: 0 };
  const counts = new Array<number>(index.classes.length).fill(0);
  const queue = new PQueue({ concurrency: o.concurrency ?? 4 });
  // Cross-shard duplicate keys are checked while the key set stays small enough to hold.
  const keys: Set<string> | undefined = index.samples <= 5_000_000 ? new Set<string>() : undefined;
  try {
    for (const [n, entry] of index.shards.entries()) {
      const where = `${uri}/${entry.name}`;
      let data: Buffer;
      try {
        // Unverified by the store: the bytes are checked against dataset.json below, and examined
        // even when damaged so that every bad sample is listed.
        data = await ds.store.get(entry.name, { verify: false });
      } catch (err) {
        add(`${where}: cannot read shard: ${(err as Error).message}`);
        continue;
      }
      if (data.length !== entry.bytes) add(`${where}: ${data.length} bytes, dataset.json says ${entry.bytes}`);
      const sha = createHash('sha256').update(data).digest('hex');
      if (sha !== entry.sha256) add(`${where}: sha256 ${sha} does not match dataset.json (${entry.sha256})`);
      let idx: Map<string, [number, number]> | undefined;
      try {
        const file = JSON.parse((await ds.store.get(entry.index)).toString('utf8')) as ShardIndexFile;
        if (file.sha256 !== entry.sha256) add(`${uri}/${entry.index}: index was made for another version of ${entry.name}`);
        idx = new Map(file.samples.map((l) => [l.key, l.image]));
      } catch (err) {
        add(`${uri}/${entry.index}: cannot read side index: ${(err as Error).message}`);
      }
      let count = 0;
      try {
        for await (const g of groupMembers(readTarMembers(data, where), where)) {
          count++;
          let checked;
          try {
            checked = checkGroup(g, { shardName: where, shard: n, labeled: index.labeled, numClasses: index.classes.length });
          } catch (err) {
            add((err as Error).message);
            continue;
          }
          const { sample, location } = checked;
          if (keys?.has(sample.key)) add(`${where}: sample "${sample.key}": key also used in an earlier shard`);
          keys?.add(sample.key);
          if (sample.label !== undefined) counts[sample.label]!++;
          const at = idx?.get(sample.key);
          if (idx && (!at || at[0] !== location.image[0] || at[1] !== location.image[1])) add(`${uri}/${entry.index}: wrong or missing offsets for "${sample.key}"`);
          if (!o.skipDecode) {
            while (queue.size > 64) await queue.onSizeLessThan(32);
            void queue.add(async () => {
              const why = await checkDecodable(sample.image, o.limitInputPixels);
              if (why) add(`${where}: sample "${sample.key}" (.${sample.ext}): ${why}`);
              else report.decoded++;
            });
          }
        }
      } catch (err) {
        add((err as Error).message);
      }
      if (count !== entry.samples) add(`${where}: holds ${count} samples, dataset.json says ${entry.samples}`);
      report.samples += count;
      await queue.onIdle();
      o.onShard?.(n + 1, index.shards.length);
    }
    if (index.labeled) {
      report.classCounts = counts;
      if (index.classCounts?.some((c, i) => c !== counts[i])) {
        add(`${uri}/dataset.json: classCounts [${index.classCounts.join(',')}] but the shards hold [${counts.join(',')}]`);
      }
    }
    report.ok = problems.length === 0;
    return report;
  } finally {
    await ds.close();
  }
}
