/**
 * The streaming reader and random access: worker subsets partition the dataset, seeded shuffles
 * are reproducible, corruption is caught by sha256, ranged reads match streamed samples, and peak
 * memory does not grow with the number of shards read.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import { SampleFetcher } from '../../pipeline/data/random-access.js';
import { readDataset } from '../../pipeline/data/reader.js';
import type { Sample } from '../../pipeline/data/types.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const dir = tempDir({ after });

/** A dataset of `shards` shards × `per` samples with random "image" bytes (the reader does not decode). */
async function makeDataset(path: string, shards: number, per: number, size: number): Promise<void> {
  const w = new DatasetWriter(new FileStore(path), { classes: ['a', 'b', 'c'], labeled: true, plan: 'test' });
  await w.begin();
  for (let n = 0; n < shards; n++) {
    const samples = Array.from({ length: per }, (_, i) => ({ key: `s${n}-${i}`, ext: 'png' as const, image: randomBytes(size), label: (n + i) % 3 }));
    await w.writeShard(n, samples);
  }
  await w.finish(shards);
}

async function collect(it: AsyncIterable<Sample>): Promise<Sample[]> {
  const out = [];
  for await (const s of it) out.push(s);
  return out;
}

describe('reader', () => {
  const small = `${dir}/small`;
  before(() => makeDataset(small, 7, 30, 100));

  test('worker subsets (index/count) partition the samples; labels come through', async () => {
    const all = await collect(readDataset(small));
    assert.equal(all.length, 210);
    const seen = new Map<string, number>();
    for (let i = 0; i < 3; i++) {
      for (const s of await collect(readDataset(small, { shards: { index: i, count: 3 } }))) {
        assert.equal(s.shard % 3, i);
        seen.set(s.key, (seen.get(s.key) ?? 0) + 1);
      }
    }
    assert.equal(seen.size, 210);
    assert.ok([...seen.values()].every((c) => c === 1));
    assert.deepEqual(all.slice(0, 2).map((s) => [s.key, s.label]), [['s0-0', 0], ['s0-1', 1]]);
  });

  test('seeded shuffle: same seed+epoch same order, other epoch other order, same multiset', async () => {
    const keys = async (epoch: number) => (await collect(readDataset(small, { shuffleBuffer: 50, seed: 5, epoch }))).map((s) => s.key);
    const a = await keys(0);
    const b = await keys(0);
    const c = await keys(1);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.deepEqual([...a].sort(), [...c].sort());
    assert.equal(new Set(a).size, 210);
  });

  test('random access by (shard, key) returns the same bytes as streaming', async () => {
    const all = await collect(readDataset(small));
    const f = await SampleFetcher.open(small);
    try {
      for (const s of [all[0]!, all[77]!, all[209]!]) {
        const got = await f.get(s.shard, s.key);
        assert.deepEqual(got.image, s.image);
        assert.equal(got.label, s.label);
      }
      await assert.rejects(f.get(1, 'nope'), /shard-000001\.tar: no sample "nope"/);
    } finally {
      await f.close();
    }
  });

  test('random access: a batch of concurrent reads loads each shard index once, and a 30-shard set stays cached', async () => {
    const many = `${dir}/many`;
    await makeDataset(many, 30, 4, 50);
    /** The real store, counting the shard index reads that go through it. */
    class CountingStore extends FileStore {
      indexReads = 0;
      override get(key: string, opts?: Parameters<FileStore['get']>[1]): Promise<Buffer> {
        if (key.endsWith('.idx.json')) this.indexReads++;
        return super.get(key, opts);
      }
    }
    const store = new CountingStore(many);
    const f = await SampleFetcher.open(store);
    try {
      const wanted = Array.from({ length: 120 }, (_, i) => ({ shard: i % 30, key: `s${i % 30}-${Math.floor(i / 30)}` }));
      const got = await Promise.all(wanted.map((w) => f.get(w.shard, w.key)));
      assert.deepEqual(got.map((s) => s.key), wanted.map((w) => w.key));
      assert.equal(store.indexReads, 30, 'one index read per shard, however many samples of it were asked for at once');
      await Promise.all(wanted.map((w) => f.get(w.shard, w.key)));
      assert.equal(store.indexReads, 30, 'a second pass over every shard reads no index again');
      // A failed load is not cached: an out-of-range shard fails each time with its message.
      await assert.rejects(f.get(30, 'x'), /shard 30 out of range \(30 shards\)/);
      await assert.rejects(f.get(30, 'x'), /shard 30 out of range/);
    } finally {
      await f.close();
    }
  });

  test('a modified shard fails its sha256 check, naming the shard', async () => {
    const bad = `${dir}/bad`;
    await makeDataset(bad, 2, 5, 100);
    const p = `${bad}/shard-000001.tar`;
    const b = readFileSync(p);
    b[600] = b[600]! ^ 0xff; // inside the first image's data
    writeFileSync(p, b);
    await assert.rejects(collect(readDataset(bad)), /shard-000001\.tar is corrupted: expected sha256 [0-9a-f]{64} \(\d+ bytes\), got sha256 [0-9a-f]{64} \(\d+ bytes\) \(the digest dataset\.json records\)/);
  });

  test('peak memory does not grow with the number of shards read (6 vs 24 shards of ~4 MiB)', async () => {
    const big = `${dir}/big`;
    await makeDataset(big, 24, 64, 64 * 1024);
    const child = fileURLToPath(new URL(`./reader-memory-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));
    const measure = async (n: number, gc = true) => {
      const flags = [...process.execArgv.filter((a) => !a.startsWith('--test')), ...(gc ? ['--expose-gc'] : [])];
      const { stdout } = await run(process.execPath, [...flags, child, big, String(n)]);
      return JSON.parse(stdout) as { samples: number; bytes: number; maxRssMiB: number };
    };
    const one = await measure(6);
    const four = await measure(24);
    assert.equal(one.samples, 6 * 64);
    assert.equal(four.samples, 24 * 64);
    const lazy = [await measure(6, false), await measure(24, false)];
    console.log(
      `reader peak RSS, GC between shards: 6 shards (${(one.bytes / 2 ** 20).toFixed(0)} MiB read) ${one.maxRssMiB.toFixed(0)} MiB, ` +
        `24 shards (${(four.bytes / 2 ** 20).toFixed(0)} MiB read) ${four.maxRssMiB.toFixed(0)} MiB; ` +
        `without forced GC (V8 frees dropped buffers lazily): ${lazy[0]!.maxRssMiB.toFixed(0)} / ${lazy[1]!.maxRssMiB.toFixed(0)} MiB`,
    );
    // 72 MiB more data went through the 24-shard reader; retaining any of it would show here.
    assert.ok(four.maxRssMiB - one.maxRssMiB < 20, `peak RSS grew from ${one.maxRssMiB} to ${four.maxRssMiB} MiB`);
  });
});
