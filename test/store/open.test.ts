/** Store URIs: which store each form opens, and clear errors naming the URI for bad ones. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FileStore } from '../../pipeline/store/file-store.js';
import { openStore, parseStoreUri } from '../../pipeline/store/open.js';
import { S3Store } from '../../pipeline/store/s3-store.js';
import { InvalidKeyError } from '../../pipeline/store/types.js';

describe('parseStoreUri', () => {
  const cwd = '/work/project';
  it('file URIs: relative to cwd, absolute, plain paths', () => {
    assert.deepEqual(parseStoreUri('file://./runs', cwd), { kind: 'file', path: '/work/project/runs' });
    assert.deepEqual(parseStoreUri('file://../up/runs', cwd), { kind: 'file', path: '/work/up/runs' });
    assert.deepEqual(parseStoreUri('file:///data/runs', cwd), { kind: 'file', path: '/data/runs' });
    assert.deepEqual(parseStoreUri('file:///data/with%20space', cwd), { kind: 'file', path: '/data/with space' });
    assert.deepEqual(parseStoreUri('runs/x', cwd), { kind: 'file', path: '/work/project/runs/x' });
    assert.deepEqual(parseStoreUri('/abs/dir', cwd), { kind: 'file', path: '/abs/dir' });
  });

  it('s3 URIs: bucket and prefix without surrounding slashes', () => {
    assert.deepEqual(parseStoreUri('s3://my-bucket'), { kind: 's3', bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseStoreUri('s3://my-bucket/'), { kind: 's3', bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseStoreUri('s3://my.bucket/exp/runs/'), { kind: 's3', bucket: 'my.bucket', prefix: 'exp/runs' });
  });

  it('bad URIs fail with the URI and the reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['gs://bucket/x', /unsupported scheme "gs:"/],
      ['s3://', /no bucket/],
      ['s3:///prefix', /no bucket/],
      ['s3://Upper/x', /not a valid bucket name/],
      ['s3://b/x', /not a valid bucket name/],
      ['s3://bucket/../escape', /"\.\." segment/],
      ['s3://bucket/a//b', /empty segment/],
      ['file://', /no path/],
      ['file://otherhost/x', /host/],
      ['file:relative', /file:\/\//],
    ];
    for (const [uri, why] of cases) {
      assert.throws(
        () => parseStoreUri(uri),
        (err: Error) => err instanceof InvalidKeyError && err.message.includes(JSON.stringify(uri)) && why.test(err.message),
        uri,
      );
    }
  });
});

describe('openStore', () => {
  it('opens a FileStore or an S3Store, with uri round-tripping the location', async () => {
    const f = openStore('file://./some-dir');
    assert.ok(f instanceof FileStore);
    assert.equal(f.uri, `file://${path.resolve('some-dir')}`);
    const s = openStore('s3://bucket-name/a/b', { endpoint: 'http://127.0.0.1:9', region: 'eu-west-1' });
    assert.ok(s instanceof S3Store);
    assert.equal(s.uri, 's3://bucket-name/a/b');
    assert.equal(s.sub('c/').uri, 's3://bucket-name/a/b/c');
    await s.close();
  });
});
