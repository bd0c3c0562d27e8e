/**
 * infra/local-s3/start.sh and stop.sh: a second, private server is started, answers S3, refuses
 * a second start politely, and stop.sh ends exactly the pids it recorded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { S3Store } from '../../pipeline/store/s3-store.js';
import { StoreUnreachableError } from '../../pipeline/store/types.js';
import { skipReason } from '../helpers/extras.js';
import { freePortRange, repoRoot, s3TestClient, swiftInstalled } from '../helpers/s3.js';

const run = promisify(execFile);
const scripts = path.join(repoRoot(), 'infra', 'local-s3');
const skip = swiftInstalled() ? false : skipReason('swift');
if (skip && process.env.CI === 'true') throw new Error(`CI=true: ${skip}`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('infra/local-s3 scripts', { skip }, () => {
  it('start prints the env, serves S3, refuses a second start, and stop ends exactly its pids', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-local-s3-'));
    const port = await freePortRange();
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      const { stdout } = await run('bash', [path.join(scripts, 'start.sh'), dir, String(port)]);
      assert.match(stdout, new RegExp(`^export AWS_ENDPOINT_URL=${endpoint}$`, 'm'));
      assert.match(stdout, /^export AWS_ACCESS_KEY_ID=test:tester$/m);
      assert.match(stdout, /^export AWS_SECRET_ACCESS_KEY=testing$/m);
      assert.match(stdout, new RegExp(`^export SELFTRAIN_TEST_S3_ENDPOINT=${endpoint}$`, 'm'));
      const pids = readdirSync(path.join(dir, 'pids')).map((f) => Number(readFileSync(path.join(dir, 'pids', f), 'utf8')));
      assert.ok(pids.length >= 4 && pids.every(alive), `pids ${pids}`);

      const env = { endpoint, region: 'us-east-1', accessKeyId: 'test:tester', secretAccessKey: 'testing' };
      const client = s3TestClient(env);
      await client.send(new CreateBucketCommand({ Bucket: 'scripts-test' })).finally(() => client.destroy());
      const store = new S3Store({ bucket: 'scripts-test', endpoint, credentials: env });
      await store.put('k', 'v');
      assert.equal((await store.get('k')).toString(), 'v');
      await store.close();

      const again = await run('bash', [path.join(scripts, 'start.sh'), dir, String(port)]);
      assert.match(again.stderr, /already running/);
      assert.match(again.stdout, /^export AWS_ENDPOINT_URL=/m);
      await assert.rejects(run('bash', [path.join(scripts, 'start.sh'), dir, String(port + 10)]), /already running on port/);

      await run('bash', [path.join(scripts, 'stop.sh'), dir]);
      assert.deepEqual(readdirSync(path.join(dir, 'pids')), []);
      assert.deepEqual(pids.filter(alive), []);
      const dead = new S3Store({ bucket: 'scripts-test', endpoint, credentials: env, maxAttempts: 1 });
      await assert.rejects(dead.get('k'), StoreUnreachableError);
      await dead.close();
    } finally {
      await run('bash', [path.join(scripts, 'stop.sh'), dir]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
