/** The shared S3 test helper: a fresh bucket per s3TestStore call, removed after the test. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { openStore } from '../../pipeline/store/open.js';
import { s3TestClient, s3TestEnv, s3TestStore, S3_SKIP_REASON } from '../helpers/s3.js';

const env = await s3TestEnv();

describe('test/helpers/s3', { skip: env ? false : S3_SKIP_REASON }, () => {
  let firstBucket = '';

  it('gives a working store on a new bucket, and sets the standard AWS env for code under test', async (t) => {
    const a = (await s3TestStore(t))!;
    const b = (await s3TestStore(t))!;
    assert.notEqual(a.uri, b.uri);
    await a.put('k', 'v');
    assert.deepEqual(await b.list(''), []);
    firstBucket = a.uri.slice('s3://'.length);
    // openStore with no options finds the endpoint and keys through AWS_ENDPOINT_URL & co.
    const viaEnv = openStore(a.uri);
    try {
      assert.equal((await viaEnv.get('k')).toString(), 'v');
    } finally {
      await viaEnv.close();
    }
  });

  it('removed the previous test\'s bucket', async () => {
    assert.ok(firstBucket);
    const client = s3TestClient(env!);
    try {
      await assert.rejects(client.send(new HeadBucketCommand({ Bucket: firstBucket })), (err: Error) => err.name === 'NotFound');
    } finally {
      client.destroy();
    }
  });
});
