/**
 * Splitting into labeled/unlabeled with held-back ground truth, resuming an interrupted import
 * at shard granularity, the import stage, and file:// vs real S3 giving identical shard hashes.
 * All on the Fashion-MNIST test split (10,000 images) from the Debian package.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { readDataset } from '../../pipeline/data/reader.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { openIdxSource } from '../../stages/import/idx-source.js';
import { importDataset } from '../../stages/import/run-import.js';
import { runStage } from '../../stages/import/index.js';
import { S3Store } from '../../pipeline/store/s3-store.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { s3TestEnv, s3TestStore } from '../helpers/s3.js';
import { startFaultProxy } from '../store/fault-proxy.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistDir, readFashionMnist } from '../helpers/fashion-mnist.js';
import { tempDir } from './helpers.js';
import { stageContext } from '../helpers/stage-context.js';

const dir = tempDir({ after });
const testSource = () => openIdxSource(fashionMnistDir(), { split: 'test' });

describe('split, resume, stage, S3', { skip: needs('fashion-mnist') }, () => {
  test('labeledPerClass split: K per class labeled, the rest unlabeled without .cls, ground truth apart', async () => {
    const res = await importDataset(await testSource(), `${dir}/split`, { labeledPerClass: 25, seed: 11, samplesPerShard: 3000 });
    const [lab, unl] = res.outputs.map((o) => o.index);
    assert.equal(lab!.samples, 250);
    assert.deepEqual(lab!.classCounts, new Array(10).fill(25));
    assert.equal(unl!.samples, 9750);
    assert.equal(unl!.labeled, false);
    assert.equal(unl!.classCounts, undefined);
    const labels = readFashionMnist('t10k').labels;
    const unlabeledKeys = new Set<string>();
    for await (const s of readDataset(`${dir}/split/unlabeled`)) {
      assert.equal(s.label, undefined);
      unlabeledKeys.add(s.key);
    }
    for (const name of readdirSync(`${dir}/split/unlabeled`).filter((n) => n.endsWith('.tar'))) {
      assert.equal(readFileSync(`${dir}/split/unlabeled/${name}`).includes('.cls'), false, `${name} has no .cls members`);
    }
    const truth = gunzipSync(readFileSync(`${dir}/split/unlabeled/ground-truth.jsonl.gz`)).toString().trim().split('\n').map((l) => JSON.parse(l) as { key: string; label: number });
    assert.equal(truth.length, 9750);
    for (const t of truth) {
      assert.ok(unlabeledKeys.has(t.key));
      assert.equal(t.label, labels[Number(t.key.slice(5))]);
    }
    for await (const s of readDataset(`${dir}/split/labeled`)) assert.ok(!unlabeledKeys.has(s.key));
  });

  test('an interrupted import resumes: done shards are kept, dataset.json only at the end, same result', async () => {
    const ref = await importDataset(await testSource(), `${dir}/ref`, { seed: 3, samplesPerShard: 1000 });
    const ctl = new AbortController();
    await assert.rejects(
      importDataset(await testSource(), `${dir}/resume`, {
        seed: 3,
        samplesPerShard: 1000,
        memoryBytes: 1, // one shard per load pass, so the abort lands between shards
        signal: ctl.signal,
        onProgress: (_p, done) => done === 4 && ctl.abort(new Error('killed for the test')),
      }),
      /killed for the test/,
    );
    assert.equal(existsSync(`${dir}/resume/dataset.json`), false, 'no dataset.json after an interrupted import');
    // Identity of each finished shard's file: a rewrite (temp file + rename) gives a new inode, and
    // equal bytes would not show it, since shards are deterministic.
    const identity = (n: number) => {
      const st = statSync(`${dir}/resume/shard-00000${n}.tar`, { bigint: true });
      return `${st.ino}:${st.mtimeNs}`;
    };
    const before = [0, 1, 2, 3].map(identity);
    const again = await importDataset(await testSource(), `${dir}/resume`, { seed: 3, samplesPerShard: 1000 });
    assert.equal(again.outputs[0]!.resumedShards, 4);
    assert.deepEqual(again.outputs[0]!.index.shards, ref.outputs[0]!.index.shards);
    assert.deepEqual([0, 1, 2, 3].map(identity), before, 'the 4 finished shards were not rewritten');
    assert.equal(existsSync(`${dir}/resume/_progress`) && readdirSync(`${dir}/resume/_progress`).length > 0, false);
  });

  test('S3: a resumed import does not write the finished shards again (no PUT; ETag and LastModified unchanged)', async (t) => {
    const s3 = await s3TestStore(t);
    if (!s3) return;
    const ctl = new AbortController();
    const target = s3.sub('ds/resume');
    await assert.rejects(
      importDataset(await testSource(), target, { seed: 3, samplesPerShard: 1000, memoryBytes: 1, signal: ctl.signal, onProgress: (_p, done) => done === 4 && ctl.abort(new Error('killed for the test')) }),
      /killed for the test/,
    );
    const finished = ['shard-000000.tar', 'shard-000001.tar', 'shard-000002.tar', 'shard-000003.tar'];
    const heads = async (store: ObjectStore) => Promise.all(finished.map(async (k) => ({ k, ...(await store.head(k)) })));
    const before = await heads(target);
    // The resume goes through a (fault-free) proxy that logs every request.
    const env = (await s3TestEnv())!;
    const proxy = await startFaultProxy(env.endpoint);
    t.after(() => proxy.close());
    const bucket = /^s3:\/\/([^/]+)/.exec(s3.uri)![1]!;
    const viaProxy = new S3Store({ bucket, prefix: 'ds/resume', endpoint: proxy.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
    t.after(() => viaProxy.close());
    const again = await importDataset(await testSource(), viaProxy, { seed: 3, samplesPerShard: 1000 });
    assert.equal(again.outputs[0]!.resumedShards, 4);
    const puts = proxy.log.filter((r) => r.method === 'PUT' || r.method === 'POST').map((r) => decodeURIComponent(r.url));
    for (const k of finished) assert.deepEqual(puts.filter((u) => u.includes(`/ds/resume/${k}`)), [], `${k} was written again`);
    assert.ok(puts.some((u) => u.includes('/ds/resume/shard-000004.tar')), 'the unfinished shards were written');
    const after = await heads(target);
    for (const [i, b] of before.entries()) {
      assert.equal(after[i]!.etag, b.etag, `${b.k}: ETag`);
      assert.equal(after[i]!.mtimeMs, b.mtimeMs, `${b.k}: LastModified`);
    }
  });

  test('import stage: split source + eval, writes datasets.json with refs that open', async () => {
    const root = new FileStore(`${dir}/stage-root`);
    const run = root.sub('exp');
    const ctx = stageContext({ run, root, outPrefix: 'import/' });
    // eval: an existing dataset by URI (the split test's labeled part), so only the split imports.
    const evalUri = new FileStore(`${dir}/split/labeled`).uri;
    const cfg = { datasets: { labeled: 'fashion-mnist:test', unlabeled: 'fashion-mnist:test', eval: evalUri, split: { labeledPerClass: 10 }, samplesPerShard: 5000 }, seed: 1 };
    await runStage(ctx, cfg);
    const out = JSON.parse((await run.get('import/datasets.json')).toString()) as Record<string, string>;
    assert.match(out.labeled!, /^datasets\/.+\/labeled$/);
    assert.match(out.unlabeled!, /\/unlabeled$/);
    assert.match(out.groundTruth!, /ground-truth\.jsonl\.gz$/);
    let n = 0;
    for await (const _ of readDataset(root.sub(out.labeled!))) n++;
    assert.equal(n, 100);
    assert.equal(out.eval, evalUri);
    await assert.rejects(runStage(ctx, { ...cfg, datasets: { ...cfg.datasets, eval: 'nowhere/at-all' } }), /datasets\.eval: .*nowhere\/at-all: no dataset\.json/);
  });

  test('file:// and real S3 imports give identical dataset.json shard hashes', async (t) => {
    const s3 = await s3TestStore(t);
    if (!s3) return;
    const opts = { labeledPerClass: 25, seed: 11, samplesPerShard: 3000 }; // as the split test's file:// import
    const onFile = await importDataset(await testSource(), `${dir}/split`, opts);
    assert.equal(onFile.outputs[0]!.alreadyComplete, true);
    const onS3 = await importDataset(await testSource(), s3.sub('ds/fmnist-test'), opts);
    for (const i of [0, 1]) {
      const a = onFile.outputs[i]!.index.shards.map((s) => [s.name, s.samples, s.bytes, s.sha256]);
      const b = onS3.outputs[i]!.index.shards.map((s) => [s.name, s.samples, s.bytes, s.sha256]);
      assert.deepEqual(b, a);
    }
    // And the S3 copy reads back through the reader with its hashes checked.
    let n = 0;
    for await (const _ of readDataset(s3.sub('ds/fmnist-test/unlabeled'))) n++;
    assert.equal(n, 9750);
  });
});
