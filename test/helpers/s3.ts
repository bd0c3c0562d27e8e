/**
 * The S3 endpoint every area's S3 tests use.
 *
 * 1. `SELFTRAIN_TEST_S3_ENDPOINT` set (CI's `.ci/run` starts one server and exports it, with the
 *    keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY): use it.
 * 2. Else, when Swift is installed: start a private server (infra/local-s3/start.sh) in a temp dir
 *    on free ports, once per test process, and stop it when the process exits (a detached watchdog
 *    also stops it if the process is killed).
 * 3. Else skip (reason: a missing extra, ./extras.ts; `npm test` ends with one line naming what was
 *    skipped and how to install it). With CI=true this fails instead.
 *
 * When a private server is started, the AWS_* variables start.sh prints are set in process.env,
 * so child processes (the CLI) see the same endpoint and keys as CI gives them.
 *
 *   const env = await s3TestEnv();                  // top level: undefined -> skip the suite
 *   describe('x on s3', { skip: env ? false : S3_SKIP_REASON }, () => { ... });
 *   const store = await s3TestStore(t);             // in a test: fresh bucket, removed after it
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Store, type S3StoreOptions } from '../../pipeline/store/s3-store.js';
import { freePortRange as freePorts, startPrivateDaemon } from './daemons.js';
import { skipReason, swiftBinDir, SWIFT_BINARIES } from './extras.js';

export interface S3TestEnv {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export const S3_SKIP_REASON = skipReason('swift');

/** The repo root: found by walking up, since this file runs from test/helpers or dist/test/helpers. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'infra', 'local-s3', 'start.sh'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find infra/local-s3/start.sh above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** A base port with base..base+4 free (proxy, account, container, object, memcached). */
export function freePortRange(): Promise<number> {
  return freePorts(5);
}

async function startPrivateServer(): Promise<S3TestEnv> {
  const port = await freePortRange();
  await startPrivateDaemon(path.join(repoRoot(), 'infra', 'local-s3'), port);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: process.env.AWS_REGION ?? 'us-east-1',
    accessKeyId: 'test:tester',
    secretAccessKey: 'testing',
  };
}

/** Whether the Debian Swift packages infra/local-s3/start.sh needs are installed (SELFTRAIN_SWIFT_BIN_DIR). */
export function swiftInstalled(): boolean {
  return SWIFT_BINARIES.every((b) => existsSync(path.join(swiftBinDir(), b)));
}

let envPromise: Promise<S3TestEnv | undefined> | undefined;

/** The endpoint and keys, or undefined when S3 tests must skip. Throws under CI=true. */
export function s3TestEnv(): Promise<S3TestEnv | undefined> {
  envPromise ??= (async () => {
    const endpoint = process.env.SELFTRAIN_TEST_S3_ENDPOINT;
    if (endpoint) {
      // Code under test opens s3:// URIs through the standard AWS environment: point it here too.
      process.env.AWS_ENDPOINT_URL ??= endpoint;
      process.env.AWS_ACCESS_KEY_ID ??= 'test:tester';
      process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
      return {
        endpoint,
        region: process.env.AWS_REGION ?? 'us-east-1',
        accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'test:tester',
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'testing',
      };
    }
    if (swiftInstalled()) return startPrivateServer();
    if (process.env.CI === 'true') {
      throw new Error(`CI=true but no S3 endpoint: set SELFTRAIN_TEST_S3_ENDPOINT (see infra/local-s3/README.md). ${S3_SKIP_REASON}`);
    }
    return undefined;
  })();
  return envPromise;
}

function keysOf(env: S3TestEnv): { accessKeyId: string; secretAccessKey: string } {
  return { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey };
}

/** A raw SDK client for the test endpoint (bucket setup, or checks behind the store's back). */
export function s3TestClient(env: S3TestEnv): S3Client {
  return new S3Client({
    endpoint: env.endpoint,
    region: env.region,
    forcePathStyle: true,
    credentials: keysOf(env),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Creates a fresh, uniquely named bucket and returns its name. */
export async function createTestBucket(env: S3TestEnv): Promise<string> {
  const bucket = `selftrain-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  const client = s3TestClient(env);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/** Empties and deletes a test bucket (best effort: a failing cleanup must not hide the test's result). */
export async function deleteTestBucket(env: S3TestEnv, bucket: string): Promise<void> {
  const store = new S3Store({ bucket, endpoint: env.endpoint, region: env.region, credentials: keysOf(env) });
  const client = s3TestClient(env);
  try {
    await store.deletePrefix('');
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (err) {
    console.error(`warning: could not clean up test bucket ${bucket}: ${(err as Error).message}`);
  } finally {
    await store.close();
    client.destroy();
  }
}

interface Skippable {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

/**
 * A store on a fresh bucket for one test; the bucket is emptied and removed and the client
 * closed after the test. Returns undefined (and marks the test skipped) when S3 is unavailable.
 */
export async function s3TestStore(t: Skippable, opts: Partial<S3StoreOptions> = {}): Promise<S3Store | undefined> {
  const env = await s3TestEnv();
  if (!env) {
    t.skip(S3_SKIP_REASON);
    return undefined;
  }
  const bucket = await createTestBucket(env);
  const store = new S3Store({ endpoint: env.endpoint, region: env.region, credentials: keysOf(env), ...opts, bucket });
  t.after(async () => {
    await store.close();
    await deleteTestBucket(env, bucket);
  });
  return store;
}
