/**
 * A full disk under a file:// store: a small tmpfs mounted here (the tests run as root in CI;
 * elsewhere they skip unless CI=true). A write that does not fit fails with a StoreError naming
 * the store, the object and the cause, leaves no partial object and no temp file, keeps the
 * previous version; after the tmpfs is grown (`mount -o remount,size=…`: space freed) the same
 * work resumes and completes. Shown for the store itself, for a `selftrain run` (the toy chain,
 * whose units are the real runner's commits) and for a real Fashion-MNIST import.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { FileStore } from '../../pipeline/store/file-store.js';
import { DIGEST_MARKER, TEMP_MARKER } from '../../pipeline/store/keys.js';
import { StoreError } from '../../pipeline/store/types.js';
import { cliArgv } from '../helpers/cli.js';
import { readJournal, runToy, writeManifest, toyManifest } from '../runner/helpers.js';

const FMNIST = '/usr/share/datasets/fashion-mnist';

/** Whether this process may mount a tmpfs (root, with CAP_SYS_ADMIN). */
function canMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a tmpfs';
  const probe = mkdtempSync(path.join(tmpdir(), 'selftrain-mount-probe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]);
    if (r.status !== 0) return `mount -t tmpfs failed: ${r.stderr.toString().trim()}`;
    spawnSync('umount', [probe]);
    return undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const mountProblem = canMount();
if (mountProblem && process.env.CI === 'true') throw new Error(`CI=true: the disk-full tests need a tmpfs: ${mountProblem}`);
const skip = mountProblem ? `disk-full tests skipped: ${mountProblem}` : false;

/** A tmpfs of `size` (mount's syntax, e.g. 256k) at a fresh directory, unmounted after the test. */
function tmpfs(t: { after(fn: () => void): void }, size: string): { dir: string; grow(size: string): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  t.after(() => {
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, grow: (bigger) => execFileSync('mount', ['-o', `remount,size=${bigger}`, dir]) };
}

/** Every file under dir (relative), to check for temp files and partial objects. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('disk full on a file:// store (tmpfs)', { skip }, () => {
  test('a write that does not fit: clear error naming store and object, nothing partial, old version kept; fits after space is freed', async (t) => {
    const fs = tmpfs(t, '256k');
    const store = new FileStore(path.join(fs.dir, 'store'));
    const small = randomBytes(40 * 1024);
    await store.put('a/obj.bin', small);
    const big = randomBytes(400 * 1024);
    for (const key of ['a/big.bin', 'a/obj.bin']) {
      const err = await store.put(key, big).then(
        () => assert.fail(`put ${key} of 400 KiB fitted in a 256 KiB tmpfs`),
        (e: unknown) => e as Error,
      );
      assert.ok(err instanceof StoreError, `${err.name}: ${err.message}`);
      assert.ok(err.message.includes(`${store.uri}/${key}`), `names the object: ${err.message}`);
      assert.ok(err.message.includes(`the store ${store.uri}`), `names the store: ${err.message}`);
      assert.match(err.message, /no space left.*ENOSPC.*nothing partial was written/);
    }
    assert.deepEqual((await store.list('')).map((o) => o.key), ['a/obj.bin']);
    assert.ok((await store.get('a/obj.bin')).equals(small), 'the previous version is intact (and verifies)');
    assert.deepEqual(filesUnder(fs.dir).filter((f) => f.includes(TEMP_MARKER)), [], 'no temp file left');

    fs.grow('2m');
    await store.put('a/big.bin', big);
    assert.ok((await store.get('a/big.bin')).equals(big));
  });

  test('selftrain run stops with the store and the object named; after space is freed it resumes and finishes, each unit committed once', async (t) => {
    const fs = tmpfs(t, '320k');
    const work = mkdtempSync(path.join(tmpdir(), 'selftrain-enospc-run-'));
    t.after(() => rmSync(work, { recursive: true, force: true }));
    const manifest = writeManifest(work, toyManifest({ store: `file://${fs.dir}/runs` }));
    const journal = path.join(work, 'journal');
    // 6 stages (no baseline) x 6 units x 24 KB (each also takes a 4 KiB page for its digest record): ~1 MB.
    const toy = { units: 6, unitBytes: 24_000, journal };
    const first = await runToy(work, ['run', manifest], toy);
    assert.equal(first.code, 1, `the run must fail on the full disk:\n${first.stderr}`);
    const line = first.stderr.split('\n').find((l) => /no space left/.test(l)) ?? '';
    assert.match(line, new RegExp(`file://${fs.dir}/runs/toy/[\\w-]+/unit-\\d{4}\\.json`), `names the object:\n${first.stderr}`);
    assert.match(line, new RegExp(`the store file://${fs.dir}/runs/toy`), `names the store:\n${first.stderr}`);
    const files = filesUnder(fs.dir);
    assert.deepEqual(files.filter((f) => f.includes(TEMP_MARKER)), [], 'no temp file left');
    // Every unit object present is whole.
    const units = files.filter((f) => /unit-\d{4}\.json$/.test(f) && !path.basename(f).startsWith(DIGEST_MARKER));
    for (const f of units) JSON.parse(readFileSync(path.join(fs.dir, f), 'utf8'));
    assert.ok(units.length > 0 && units.length < 36, `some units committed before the disk filled: ${units.length}`);

    fs.grow('4m');
    const second = await runToy(work, ['run', manifest], toy);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /resuming/);
    const done = readJournal(journal).filter((e) => e.event === 'done');
    const perUnit = new Map<string, number>();
    for (const e of done) perUnit.set(`${e.stage}:${e.unit}`, (perUnit.get(`${e.stage}:${e.unit}`) ?? 0) + 1);
    assert.equal(perUnit.size, 36, 'every unit of the 6 stages committed');
    assert.deepEqual([...perUnit.entries()].filter(([, n]) => n !== 1), [], 'no committed unit was redone');
  });

  test('a real import (Fashion-MNIST test split) on a full disk: stops naming shard and store, leaves whole shards only, resumes after space is freed', { skip: statSync(FMNIST, { throwIfNoEntry: false }) ? false : `no ${FMNIST}` }, async (t) => {
    // Shards of 1,000 images are ~2.3 MB: three fit in 8 MiB.
    const fs = tmpfs(t, '8m');
    const to = `file://${fs.dir}/ds`;
    const run = promisify(execFile);
    const [cmd, args] = cliArgv('dataset', 'import', FMNIST, '--split', 'test', '--to', to, '--samples-per-shard', '1000');
    const first = await run(cmd, args).then(
      () => assert.fail('10,000 images fitted in 8 MiB'),
      (e: { code?: number; stderr?: string }) => e,
    );
    assert.notEqual(first.code, 0);
    assert.match(first.stderr ?? '', new RegExp(`${to}/(shard-\\d{6}\\.(tar|idx\\.json)|_progress/shard-\\d{6}\\.json).*no space left on the device holding the store ${to}`));
    assert.deepEqual(filesUnder(fs.dir).filter((f) => f.includes(TEMP_MARKER)), [], 'no temp file left');

    fs.grow('64m');
    const second = await run(cmd, args);
    assert.match(second.stdout, /10000 samples in 10 shards.*resumed, [1-9]\d* shards kept/);
    const [vc, va] = cliArgv('dataset', 'verify', to);
    const verified = await run(vc, va);
    assert.match(verified.stdout, /ok/i);
  });
});

