/**
 * Fashion-MNIST (Debian's dataset-fashion-mnist, or the download cache), imported once per split and shared by the
 * tests below: full counts (60,000 / 10,000, 6,000 / 1,000 per class), verify (every image
 * decoded), and a pixel round trip through the reader and the preprocessing layer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { batches } from '../../pipeline/data/batches.js';
import { readDataset } from '../../pipeline/data/reader.js';
import { verifyDataset } from '../../pipeline/data/verify.js';
import { FASHION_MNIST_CLASSES, openIdxSource } from '../../stages/import/idx-source.js';
import { importDataset, type ImportResult } from '../../stages/import/run-import.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistDir, readFashionMnist } from '../helpers/fashion-mnist.js';
import { tempDir } from './helpers.js';

describe('Fashion-MNIST import (Debian package or the download cache)', { skip: needs('fashion-mnist') }, () => {
  const dir = tempDir({ after });
  const FMNIST_DIR = fashionMnistDir();
  let train: ImportResult;
  let testSplit: ImportResult;
  before(async () => {
    train = await importDataset(await openIdxSource(FMNIST_DIR, { split: 'train' }), `${dir}/train`, { samplesPerShard: 5000 });
    testSplit = await importDataset(await openIdxSource(FMNIST_DIR, { split: 'test' }), `${dir}/test`, { samplesPerShard: 2500 });
  });

  test('train: 60,000 samples, 6,000 per class, 12 shards; test: 10,000, 1,000 per class', () => {
    const tr = train.outputs[0]!.index;
    assert.equal(tr.samples, 60000);
    assert.deepEqual(tr.classCounts, new Array(10).fill(6000));
    assert.equal(tr.shards.length, 12);
    assert.deepEqual(tr.classes, FASHION_MNIST_CLASSES);
    assert.equal(tr.labeled, true);
    const te = testSplit.outputs[0]!.index;
    assert.equal(te.samples, 10000);
    assert.deepEqual(te.classCounts, new Array(10).fill(1000));
    assert.equal(te.shards.length, 4);
    assert.equal(te.skipped, undefined);
  });

  test('verify passes on both splits, decoding every image', async () => {
    for (const [split, n] of [['train', 60000], ['test', 10000]] as const) {
      const r = await verifyDataset(`${dir}/${split}`, { concurrency: 4 });
      assert.deepEqual(r.problems, [], `${split} problems`);
      assert.equal(r.ok, true);
      assert.equal(r.samples, n);
      assert.equal(r.decoded, n);
    }
  });

  test('round trip: decoded pixels and labels equal the IDX bytes (test split, all 10,000)', async () => {
    const idx = readFashionMnist('t10k');
    let seen = 0;
    for await (const b of batches(readDataset(`${dir}/test`), { size: 500, channels: 1, imageSize: 28, mode: 'eval', cropFraction: 1, concurrency: 4 })) {
      assert.equal(b.skipped.length, 0);
      for (let i = 0; i < b.keys.length; i++) {
        const n = Number(/^test-(\d+)$/.exec(b.keys[i]!)![1]);
        assert.equal(b.labels[i], idx.labels[n], `label of ${b.keys[i]}`);
        const got = Buffer.from(b.pixels.buffer, b.pixels.byteOffset + i * 784, 784);
        assert.ok(got.equals(idx.images.subarray(n * 784, (n + 1) * 784)), `pixels of ${b.keys[i]}`);
        seen++;
      }
    }
    assert.equal(seen, 10000);
  });

  test('re-running a finished import is a no-op', async () => {
    const again = await importDataset(await openIdxSource(FMNIST_DIR, { split: 'test' }), `${dir}/test`, { samplesPerShard: 2500 });
    assert.equal(again.outputs[0]!.alreadyComplete, true);
    assert.deepEqual(again.outputs[0]!.index.shards, testSplit.outputs[0]!.index.shards);
  });

  test('a different plan on the same prefix is refused, naming the prefix', async () => {
    await assert.rejects(
      importDataset(await openIdxSource(FMNIST_DIR, { split: 'test' }), `${dir}/test`, { samplesPerShard: 1000 }),
      (err: Error) => /already holds a different dataset/.test(err.message) && err.message.includes(`${dir}/test`),
    );
  });
});
