/**
 * One object-store contract, run against file:// and against a real S3-compatible server
 * (OpenStack Swift + s3api, see test/helpers/s3.ts), plus the failure modes each backend has:
 * path traversal on file://; bad credentials, missing bucket, unreachable endpoint, retried
 * 503s/connection resets and the putIfAbsent fallback on S3.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { FileStore } from '../../pipeline/store/file-store.js';
import { DIGEST_MARKER, TEMP_MARKER } from '../../pipeline/store/keys.js';
import { S3Store, type S3StoreOptions } from '../../pipeline/store/s3-store.js';
import {
  BucketNotFoundError,
  IntegrityError,
  InvalidKeyError,
  NotFoundError,
  StoreAccessError,
  StoreError,
  StoreUnreachableError,
  type ObjectStore,
} from '../../pipeline/store/types.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createTestBucket, deleteTestBucket, s3TestClient, s3TestEnv, S3_SKIP_REASON } from '../helpers/s3.js';
import { startFaultProxy } from './fault-proxy.js';

const MiB = 1024 * 1024;
const s3env = await s3TestEnv();

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** Yields `total` bytes of `data` in uneven chunks, like a network or tar stream would. */
function chunked(data: Buffer, chunk = 777_777): Readable {
  return Readable.from(
    (function* () {
      for (let off = 0; off < data.length; off += chunk) yield data.subarray(off, off + chunk);
    })(),
  );
}

/** Asserts a one-line error message (what the CLI prints) of the given class mentioning `parts`. */
async function rejectsWith(p: Promise<unknown>, cls: new (...a: never[]) => Error, ...parts: string[]): Promise<Error> {
  const err = await p.then(
    () => assert.fail(`expected ${cls.name}`),
    (e: unknown) => e as Error,
  );
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.ok(!err.message.includes('\n'), `message is one line: ${err.message}`);
  for (const part of parts) assert.ok(err.message.includes(part), `message ${JSON.stringify(err.message)} names ${part}`);
  return err;
}

let caseCounter = 0;

/** The contract every ObjectStore honours. `root()` gives the suite's store; each test uses its own sub-prefix. */
function contract(root: () => ObjectStore): void {
  const fresh = (): ObjectStore => root().sub(`case-${++caseCounter}`);

  it('put/get round-trips buffers, strings and streams, and overwrites atomically', async () => {
    const s = fresh();
    await s.put('a/bytes.bin', Uint8Array.from([0, 1, 2, 255]));
    await s.put('a/text.txt', 'héllo');
    await s.put('a/stream.bin', chunked(Buffer.alloc(100_000, 7), 4096));
    assert.deepEqual([...(await s.get('a/bytes.bin'))], [0, 1, 2, 255]);
    assert.equal((await s.get('a/text.txt')).toString('utf8'), 'héllo');
    assert.ok((await s.get('a/stream.bin')).equals(Buffer.alloc(100_000, 7)));
    await s.put('a/text.txt', 'second');
    assert.equal((await s.get('a/text.txt')).toString(), 'second');
    assert.equal((await readAll(await s.getStream('a/text.txt'))).toString(), 'second');
    await s.put('empty', '');
    assert.equal((await s.get('empty')).length, 0);
  });

  it('getRange returns [start, end), clipped at the end of the object', async () => {
    const s = fresh();
    await s.put('r', '0123456789');
    assert.equal((await s.getRange('r', 2, 5)).toString(), '234');
    assert.equal((await s.getRange('r', 0, 10)).toString(), '0123456789');
    assert.equal((await s.getRange('r', 7, 100)).toString(), '789');
    assert.equal((await s.getRange('r', 4, 4)).length, 0);
    assert.equal((await s.getRange('r', 10, 20)).length, 0);
    await assert.rejects(s.getRange('r', 5, 2), StoreError);
    await assert.rejects(s.getRange('r', -1, 2), StoreError);
  });

  it('head gives size and mtime, undefined when missing', async () => {
    const s = fresh();
    const before = Date.now();
    await s.put('h/x', 'abcde');
    const info = await s.head('h/x');
    assert.equal(info?.key, 'h/x');
    assert.equal(info?.size, 5);
    // S3 has 1 s resolution; allow clock skew between test and server.
    assert.ok(Math.abs(info!.mtimeMs - before) < 60_000, `mtime ${info!.mtimeMs} near ${before}`);
    assert.equal(await s.head('h/missing'), undefined);
    assert.equal(await s.head('h'), undefined, 'a prefix is not an object');
  });

  it('missing keys: reads throw NotFoundError naming the key, delete is a no-op', async () => {
    const s = fresh();
    await rejectsWith(s.get('no/such-key'), NotFoundError, 'no/such-key');
    await rejectsWith(s.getStream('no/such-key'), NotFoundError, 'no/such-key');
    await rejectsWith(s.getRange('no/such-key', 0, 10), NotFoundError, 'no/such-key');
    await rejectsWith(s.getRange('no/such-key', 0, 0), NotFoundError, 'no/such-key');
    await s.delete('no/such-key');
    assert.deepEqual(await s.list('no/'), []);
  });

  it('list is complete across pages, sorted, and filters by string prefix', async () => {
    const s = fresh();
    // More keys than one page (the S3 suite uses listPageSize 3), written out of order.
    const keys = ['z', 'l/b/2', 'l/a', 'l/ab', 'l/b/1', 'l/c', 'la', 'l/b/10', 'm/x', 'l/aa/deep/er'];
    await Promise.all(keys.map((k) => s.put(k, k)));
    const all = (await s.list('')).map((o) => o.key);
    assert.deepEqual(all, [...keys].sort());
    assert.deepEqual(
      (await s.list('l/')).map((o) => o.key),
      ['l/a', 'l/aa/deep/er', 'l/ab', 'l/b/1', 'l/b/10', 'l/b/2', 'l/c'],
    );
    assert.deepEqual((await s.list('l/a')).map((o) => o.key), ['l/a', 'l/aa/deep/er', 'l/ab']);
    assert.deepEqual((await s.list('l/b/1')).map((o) => o.key), ['l/b/1', 'l/b/10']);
    assert.deepEqual((await s.list('nothing/')).map((o) => o.key), []);
    const z = (await s.list('z'))[0];
    assert.equal(z?.size, 1);
  });

  it('sub-stores see their own keys only, without a neighbour sharing a name prefix', async () => {
    const s = fresh();
    await s.put('p/one', '1');
    await s.put('p-other/two', '2');
    const p = s.sub('p');
    assert.deepEqual((await p.list('')).map((o) => o.key), ['one']);
    await p.sub('deeper/').put('k', 'v');
    assert.equal((await s.get('p/deeper/k')).toString(), 'v');
    assert.ok(p.uri.endsWith('/p'), p.uri);
  });

  it('delete and deletePrefix remove exactly the named keys', async () => {
    const s = fresh();
    const keys = Array.from({ length: 8 }, (_, i) => `d/${i}`);
    await Promise.all([...keys, 'd-keep', 'e/keep'].map((k) => s.put(k, 'x')));
    await s.delete('d/0');
    assert.equal(await s.head('d/0'), undefined);
    await s.deletePrefix('d/');
    assert.deepEqual((await s.list('')).map((o) => o.key), ['d-keep', 'e/keep']);
    await s.deletePrefix('');
    assert.deepEqual(await s.list(''), []);
  });

  it('putIfAbsent creates once and never replaces', async () => {
    const s = fresh();
    assert.equal(await s.putIfAbsent('lease', 'first'), true);
    assert.equal(await s.putIfAbsent('lease', 'second'), false);
    assert.equal((await s.get('lease')).toString(), 'first');
    await s.delete('lease');
    assert.equal(await s.putIfAbsent('lease', 'third'), true);
    assert.equal((await s.get('lease')).toString(), 'third');
  });

  it('a large object round-trips (multipart above the threshold) with the same sha256', async () => {
    const s = fresh();
    const data = randomBytes(12 * MiB + 12345);
    await s.put('big/stream.bin', chunked(data));
    await s.put('big/buffer.bin', data);
    for (const key of ['big/stream.bin', 'big/buffer.bin']) {
      assert.equal((await s.head(key))?.size, data.length);
      assert.equal(sha256(await s.get(key)), sha256(data));
      assert.equal(sha256(await readAll(await s.getStream(key))), sha256(data));
    }
    const mid = 7 * MiB;
    assert.ok((await s.getRange('big/stream.bin', mid, mid + 1000)).equals(data.subarray(mid, mid + 1000)));
  });

  it('put records each object\'s sha256 (buffers, strings, streams, putIfAbsent); head reports it', async () => {
    const s = fresh();
    const data = randomBytes(300_000);
    await s.put('d/buffer', data);
    await s.put('d/string', 'text body');
    await s.put('d/stream', chunked(data, 65_536));
    await s.putIfAbsent('d/claim', 'claimed');
    assert.equal((await s.head('d/buffer'))?.sha256, sha256(data));
    assert.equal((await s.head('d/string'))?.sha256, sha256(Buffer.from('text body')));
    assert.equal((await s.head('d/stream'))?.sha256, sha256(data));
    assert.equal((await s.head('d/claim'))?.sha256, sha256(Buffer.from('claimed')));
    // Verified reads of intact objects return them as written.
    assert.ok((await s.get('d/stream')).equals(data));
    assert.ok((await readAll(await s.getStream('d/buffer'))).equals(data));
    // A digest file or metadata is never listed as an object, and goes with its object.
    assert.deepEqual((await s.list('d/')).map((o) => o.key), ['d/buffer', 'd/claim', 'd/stream', 'd/string']);
    await s.deletePrefix('d/');
    assert.deepEqual(await s.list(''), []);
  });

  it('rejects keys that could escape the root or are ambiguous', async () => {
    const s = fresh();
    for (const key of ['../escape', 'a/../../escape', '/abs/key', 'a\\b', 'nul\0byte', 'a//b', './a', '', 'dir/', `x/${TEMP_MARKER}y`, `x/${DIGEST_MARKER}y`]) {
      await rejectsWith(s.put(key, 'x'), InvalidKeyError);
      await rejectsWith(s.get(key), InvalidKeyError);
    }
    assert.throws(() => s.sub('../up'), InvalidKeyError);
    await rejectsWith(s.list('../'), InvalidKeyError);
    assert.deepEqual(await s.list(''), []);
  });
}

describe('file:// store', () => {
  let dir = '';
  let store: FileStore;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'selftrain-store-'));
    store = new FileStore(path.join(dir, 'root'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  contract(() => store);

  it('writes nothing outside its root, whatever the key', async () => {
    const s = store.sub('traversal');
    for (const key of ['../../outside', '../outside']) await assert.rejects(s.put(key, 'x'), InvalidKeyError);
    assert.deepEqual(readdirSync(dir), ['root']);
  });

  it('never lists temp files, and leaves none behind after writes', async () => {
    const s = store.sub('temps') as FileStore;
    await s.put('t/a', 'x');
    // An in-flight write (as a crashed writer would leave it) is invisible.
    writeFileSync(path.join(s.root, 't', `${TEMP_MARKER}b.123.abc`), 'partial');
    assert.deepEqual((await s.list('')).map((o) => o.key), ['t/a']);
    await s.putIfAbsent('t/c', 'y');
    await s.putIfAbsent('t/c', 'z');
    const names = readdirSync(path.join(s.root, 't')).filter((n) => n.includes(TEMP_MARKER));
    assert.deepEqual(names, [`${TEMP_MARKER}b.123.abc`]);
  });

  it('a failed stream put leaves the old object intact and no temp file', async () => {
    const s = store.sub('atomic') as FileStore;
    await s.put('obj', 'old');
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000, 1));
        this.destroy(new Error('source broke'));
      },
    });
    await assert.rejects(s.put('obj', failing), /source broke/);
    assert.equal((await s.get('obj')).toString(), 'old');
    assert.deepEqual(readdirSync(s.root), [`${DIGEST_MARKER}obj`, 'obj'], 'the object and its digest record, no temp file');
  });

  it('putIfAbsent has exactly one winner among concurrent writers', async () => {
    const s = store.sub('race');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.putIfAbsent('lease', `writer-${i}`)));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await s.get('lease')).toString(), `writer-${results.indexOf(true)}`);
  });

  it('verified reads: a byte flipped or a file truncated in place is an IntegrityError naming object, expected and actual sha256', async () => {
    const s = store.sub('integrity') as FileStore;
    const data = randomBytes(100_000);
    await s.put('obj.bin', data);
    const file = path.join(s.root, 'obj.bin');
    const flipped = Buffer.from(data);
    flipped[54_321]! ^= 0x01;
    writeFileSync(file, flipped, { flag: 'r+' }); // in place: same inode, as disk damage would be
    const uri = `${s.uri}/obj.bin`;
    const err = await rejectsWith(s.get('obj.bin'), IntegrityError, uri, `expected sha256 ${sha256(data)}`, `got sha256 ${sha256(flipped)}`);
    assert.deepEqual([(err as IntegrityError).expected.size, (err as IntegrityError).actual.size], [data.length, data.length]);
    await assert.rejects(async () => readAll(await s.getStream('obj.bin')), (e: Error) => e instanceof IntegrityError && e.message.includes(uri));
    truncateSync(file, 1000);
    await rejectsWith(s.get('obj.bin'), IntegrityError, uri, '(truncated)', `(${data.length} bytes)`, '(1000 bytes)');
    // Rewritten through the store: verified again.
    await s.put('obj.bin', data);
    assert.ok((await s.get('obj.bin')).equals(data));
  });

  it('verified reads: a file replaced by another tool, or a record cut short, is read unverified', async () => {
    const s = store.sub('foreign') as FileStore;
    await s.put('a', 'ours');
    // `cp new a.tmp && mv a.tmp a`: a new inode, so the record no longer applies.
    writeFileSync(path.join(s.root, 'a.tmp'), 'theirs');
    renameSync(path.join(s.root, 'a.tmp'), path.join(s.root, 'a'));
    assert.equal((await s.get('a')).toString(), 'theirs');
    assert.equal((await s.head('a'))?.sha256, undefined);
    await s.put('b', 'ours');
    writeFileSync(path.join(s.root, `${DIGEST_MARKER}b`), '{"sha2');
    assert.equal((await s.get('b')).toString(), 'ours');
  });

  it('a key colliding with a prefix gives a clear StoreError', async () => {
    const s = store.sub('collide');
    await s.put('a/b', 'x');
    await rejectsWith(s.put('a', 'y'), StoreError, 'collide');
    mkdirSync(path.join((s as FileStore).root, 'emptydir'));
    assert.equal(await s.head('emptydir'), undefined);
  });
});

describe('s3:// store (Swift s3api)', { skip: s3env ? false : S3_SKIP_REASON }, () => {
  const env = s3env!;
  let bucket = '';
  let store: S3Store;
  const warnings: string[] = [];
  const options = (): S3StoreOptions => ({
    bucket,
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    listPageSize: 3,
    multipartThreshold: 5 * MiB,
    partSize: 5 * MiB,
    warn: (m) => warnings.push(m),
  });
  before(async () => {
    bucket = await createTestBucket(env);
    store = new S3Store(options());
  });
  after(async () => {
    await store.close();
    await deleteTestBucket(env, bucket);
  });

  contract(() => store);

  it('detects that Swift lacks If-None-Match and uses the fallback, warning once', async () => {
    assert.equal(await store.conditionalPutMode(), 'fallback');
    const s = store.sub('fallback');
    assert.equal(await s.putIfAbsent('k', 'a'), true);
    assert.equal(await s.putIfAbsent('k', 'b'), false);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /If-None-Match/);
    // The probe leaves no scratch object behind.
    assert.deepEqual((await store.list('')).filter((o) => o.key.includes('probe')), []);
  });

  it('fallback putIfAbsent under a race: at least one winner, and the object is a winner\'s', async () => {
    const s = store.sub('fallback-race');
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => s.putIfAbsent('lease', `writer-${i}`)));
    const winners = results.flatMap((won, i) => (won ? [`writer-${i}`] : []));
    assert.ok(winners.length >= 1);
    assert.ok(winners.includes((await s.get('lease')).toString()));
  });

  it('the native If-None-Match path refuses an existing key on the wire', async () => {
    // Forced 'native' on a service without support: Swift answers 501, surfaced as a clear error
    // rather than a silent overwrite.
    const s = new S3Store({ ...options(), conditionalPut: 'native' });
    try {
      await s.put('native/k', 'x');
      const err = await s.putIfAbsent('native/k', 'y').then(
        (created) => (created ? assert.fail('overwrote an existing key') : undefined),
        (e: Error) => e,
      );
      if (err) assert.ok(err instanceof StoreError && /NotImplemented|501/.test(err.message), err.message);
      assert.equal((await s.get('native/k')).toString(), 'x');
    } finally {
      await s.close();
    }
  });

  it('objects above the multipart threshold go up in parts, smaller ones in one PUT', async () => {
    const s = store.sub('multipart');
    await s.put('big', randomBytes(11 * MiB));
    await s.put('small', chunked(randomBytes(MiB)));
    // S3 (and Swift's s3api) give multipart objects an ETag "<md5 of part md5s>-<part count>".
    assert.match((await s.head('big'))?.etag ?? '', /-3"?$/);
    assert.doesNotMatch((await s.head('small'))?.etag ?? '', /-\d+"?$/);
  });

  it('wrong credentials: StoreAccessError naming the endpoint, never the secret', async () => {
    const secret = `wrong-secret-${randomBytes(6).toString('hex')}`;
    const s = new S3Store({ ...options(), credentials: { accessKeyId: env.accessKeyId, secretAccessKey: secret } });
    try {
      for (const op of [() => s.get('k'), () => s.head('k'), () => s.list(''), () => s.put('k', 'v')]) {
        const err = await rejectsWith(op(), StoreAccessError, env.endpoint);
        assert.ok(!err.message.includes(secret));
      }
      const unknownKey = new S3Store({ ...options(), credentials: { accessKeyId: 'nobody:nothing', secretAccessKey: secret } });
      await rejectsWith(unknownKey.get('k'), StoreAccessError, env.endpoint).finally(() => unknownKey.close());
    } finally {
      await s.close();
    }
  });

  it('missing bucket: BucketNotFoundError naming bucket and endpoint', async () => {
    const s = new S3Store({ ...options(), bucket: `selftrain-missing-${randomBytes(4).toString('hex')}` });
    try {
      for (const op of [() => s.get('k'), () => s.head('k'), () => s.list(''), () => s.put('k', 'v'), () => s.putIfAbsent('k', 'v')]) {
        await rejectsWith(op(), BucketNotFoundError, 'selftrain-missing-', env.endpoint);
      }
    } finally {
      await s.close();
    }
  });

  it('retries 503s and connection resets through a faulty proxy; gives up with a clear error', async () => {
    const proxy = await startFaultProxy(env.endpoint);
    const s = new S3Store({ ...options(), endpoint: proxy.endpoint, maxAttempts: 4 });
    const once = new S3Store({ ...options(), endpoint: proxy.endpoint, maxAttempts: 1 });
    try {
      proxy.failNext(2, '503');
      await s.put('retry/a', 'survived 503s');
      proxy.failNext(2, 'reset');
      assert.equal((await s.get('retry/a')).toString(), 'survived 503s');
      proxy.failNext(2, 'reset');
      assert.equal((await s.list('retry/')).length, 1);
      const seen = proxy.requests;
      proxy.failNext(1, '503');
      await rejectsWith(once.get('retry/a'), StoreError, proxy.endpoint, '503');
      assert.equal(proxy.requests, seen + 1, 'maxAttempts 1 does not retry');
    } finally {
      await s.close();
      await once.close();
      await proxy.close();
    }
  });

  it('verified reads: an object corrupted at rest is an IntegrityError naming object, expected and actual sha256', async () => {
    const data = randomBytes(50_000);
    await store.put('integrity/obj.bin', data);
    const head = await store.head('integrity/obj.bin');
    assert.equal(head?.sha256, sha256(data));
    // Damage behind the store's back, keeping the recorded digest (as bit rot or a buggy copy would).
    const flipped = Buffer.from(data);
    flipped[1234]! ^= 0x80;
    const client = s3TestClient(env);
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'integrity/obj.bin', Body: flipped, Metadata: { sha256: sha256(data), size: String(data.length) } }));
    } finally {
      client.destroy();
    }
    const uri = `s3://${bucket}/integrity/obj.bin`;
    await rejectsWith(store.get('integrity/obj.bin'), IntegrityError, uri, `expected sha256 ${sha256(data)}`, `got sha256 ${sha256(flipped)}`);
    // A small object is read whole before its stream is handed out, so the stream call itself fails.
    await assert.rejects(async () => readAll(await store.getStream('integrity/obj.bin')), IntegrityError);
  });

  it('bodies cut short in transit are read again: get, getStream (whole and resumed) and getRange return the exact bytes', async () => {
    const proxy = await startFaultProxy(env.endpoint);
    // Streams above 1 MiB take the resuming path (ranged GETs of the same version).
    const s = new S3Store({ ...options(), endpoint: proxy.endpoint, bufferedStreamMax: MiB });
    try {
      const small = randomBytes(200_000);
      const big = randomBytes(3 * MiB + 17);
      await s.put('cut/small', small);
      await s.put('cut/big', big);
      proxy.failNext(2, 'truncate');
      assert.ok((await s.get('cut/small')).equals(small));
      proxy.failNext(2, 'truncate');
      assert.ok((await readAll(await s.getStream('cut/small'))).equals(small));
      proxy.failNext(2, 'truncate');
      assert.ok((await readAll(await s.getStream('cut/big'))).equals(big));
      proxy.failNext(2, 'truncate');
      assert.ok((await s.getRange('cut/big', 1000, 901_000)).equals(big.subarray(1000, 901_000)));
      assert.equal(proxy.injected.truncate, 8, 'every read above was cut twice first');
    } finally {
      await s.close();
      await proxy.close();
    }
  });

  it('unreachable endpoint: one line naming the endpoint and the cause', async () => {
    const s = new S3Store({ ...options(), endpoint: 'http://127.0.0.1:9', maxAttempts: 2 });
    try {
      await rejectsWith(s.get('k'), StoreUnreachableError, 'http://127.0.0.1:9', 'ECONNREFUSED');
      await rejectsWith(s.list(''), StoreUnreachableError, 'http://127.0.0.1:9');
    } finally {
      await s.close();
    }
  });
});
