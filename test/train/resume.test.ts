/**
 * Kill-and-resume: the train stage in a child process kills itself (SIGKILL) right after committing
 * its second checkpoint (SELFTRAIN_KILL_AFTER_PUT, pipeline/store/kill-point.ts: the same point on
 * every machine), is started again, and must (a) resume at the step after that checkpoint — never
 * redoing a committed step — and (b) end with weights bit-identical to an uninterrupted run with
 * the same seed on the same backend (every random draw is a function of (seed, step), and the
 * checkpoint holds the exact float32 weights, momentum slots and EMA shadows). Once with one
 * worker, once with two data-parallel workers (the child kills itself at a named step).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../pipeline/store/open.js';
import { writeFashionDataset } from './make-dataset.js';
import { needs } from '../helpers/extras.js';

const NEEDS = needs('fashion-mnist');

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const child = fileURLToPath(new URL(`./fixtures/train-child${ext}`, import.meta.url));
const BACKEND = process.env['SELFTRAIN_TEST_TRAIN_BACKEND'] ?? 'wasm';

interface ChildRun {
  steps: { step: number; ckpt: boolean }[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runChild(dir: string, labeled: string, prefix: string, killAfterPut = '', o: { workers?: number; selfKillAtStep?: number } = {}): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, SELFTRAIN_KILL_AFTER_PUT: killAfterPut, ...(o.selfKillAtStep === undefined ? {} : { SELFTRAIN_TEST_SELF_KILL: String(o.selfKillAtStep) }) };
    const p = spawn(process.execPath, [...process.execArgv, child, dir, labeled, prefix, BACKEND, String(o.workers ?? 1)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const steps: ChildRun['steps'] = [];
    let buf = '', stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^STEP (\d+) CKPT ([01])$/.exec(line);
        if (!m) continue;
        steps.push({ step: Number(m[1]), ckpt: m[2] === '1' });
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ steps, code, signal, stderr }));
  });
}

function modelWeights(dir: string, prefix: string): Buffer {
  const m = path.join(dir, prefix, 'model');
  const file = readdirSync(m).find((f) => /^weights-.*\.bin$/.test(f))!;
  return readFileSync(path.join(m, file));
}

test('SIGKILL right after the 2nd checkpoint, resume: identical final weights, no committed step redone', { skip: NEEDS, timeout: 600_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-resume-'));
  try {
    const store = openStore(`file://${dir}`);
    await writeFashionDataset(store.sub('data/labeled'), { split: 'train', perClass: 5, labeled: true, perShard: 20 });
    await store.close();
    const labeled = `file://${dir}/data/labeled`;

    const whole = await runChild(dir, labeled, 'uninterrupted/');
    assert.equal(whole.code, 0, whole.stderr);
    const total = whole.steps.length;
    assert.deepEqual(whole.steps.map((s) => s.step), [...Array(total).keys()]);
    assert.ok(total >= 12, `expected enough steps for 2+ checkpoints, got ${total}`);

    const killed = await runChild(dir, labeled, 'killed/', '**/killed/ckpt/*/COMMIT.json#2');
    assert.equal(killed.signal, 'SIGKILL', `the first run was killed: ${killed.stderr}`);
    // It died inside the second checkpoint's commit, before reporting that step: the steps it
    // reported are those before, the checkpoint is on the store (step-N holds N completed steps).
    const commit = /after .*\/killed\/ckpt\/step-(\d{9})\/COMMIT\.json/.exec(killed.stderr);
    assert.ok(commit, killed.stderr);
    const lastCommitted = Number(commit[1]) - 1;
    assert.equal(killed.steps.filter((s) => s.ckpt).length, 1, 'one checkpoint reported before the kill');
    assert.deepEqual(killed.steps.map((s) => s.step), [...Array(lastCommitted).keys()], 'every step before the checkpointed one reported');
    assert.ok(lastCommitted + 1 < total, 'killed before the end');

    const resumed = await runChild(dir, labeled, 'killed/');
    assert.equal(resumed.code, 0, resumed.stderr);
    // Resumes exactly after the last committed step; runs every remaining step once.
    assert.equal(resumed.steps[0]!.step, lastCommitted + 1, `resumed at ${resumed.steps[0]!.step}, last checkpoint after step ${lastCommitted}`);
    assert.deepEqual(resumed.steps.map((s) => s.step), [...Array(total - lastCommitted - 1).keys()].map((k) => k + lastCommitted + 1));

    const a = modelWeights(dir, 'uninterrupted/');
    const b = modelWeights(dir, 'killed/');
    assert.ok(a.length > 10_000);
    assert.ok(a.equals(b), 'exported EMA weights are bit-identical');
    const ma = JSON.parse(readFileSync(path.join(dir, 'uninterrupted/metrics.json'), 'utf8'));
    const mb = JSON.parse(readFileSync(path.join(dir, 'killed/metrics.json'), 'utf8'));
    assert.equal(mb.resumedFrom, lastCommitted + 1);
    assert.deepEqual(mb.epochs.map((e: { trainLoss: number }) => e.trainLoss), ma.epochs.map((e: { trainLoss: number }) => e.trainLoss));
    // Old checkpoints pruned to `keep` (2).
    assert.equal(readdirSync(path.join(dir, 'killed/ckpt')).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('2 workers: the child SIGKILLs itself after step 7 (checkpoints after 3 and 6); the resumed run is bit-identical to an uninterrupted one', { skip: NEEDS, timeout: 900_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-resume-2w-'));
  try {
    const store = openStore(`file://${dir}`);
    await writeFashionDataset(store.sub('data/labeled'), { split: 'train', perClass: 5, labeled: true, perShard: 20 });
    await store.close();
    const labeled = `file://${dir}/data/labeled`;

    const whole = await runChild(dir, labeled, 'uninterrupted/', '', { workers: 2 });
    assert.equal(whole.code, 0, whole.stderr);
    const total = whole.steps.length;
    assert.ok(total > 8, `expected more than 8 steps, got ${total}`);

    const killed = await runChild(dir, labeled, 'killed/', '', { workers: 2, selfKillAtStep: 7 });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.deepEqual(killed.steps.map((s) => s.step), [...Array(8).keys()], 'killed right after step 7');
    assert.deepEqual(killed.steps.filter((s) => s.ckpt).map((s) => s.step), [2, 5], 'checkpoints after 3 and 6 steps');

    const resumed = await runChild(dir, labeled, 'killed/', '', { workers: 2 });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(resumed.steps.map((s) => s.step), [...Array(total - 6).keys()].map((k) => k + 6), 'steps 6.. redone, nothing committed redone');
    assert.ok(modelWeights(dir, 'uninterrupted/').equals(modelWeights(dir, 'killed/')), 'exported EMA weights are bit-identical');
    const ma = JSON.parse(readFileSync(path.join(dir, 'uninterrupted/metrics.json'), 'utf8'));
    const mb = JSON.parse(readFileSync(path.join(dir, 'killed/metrics.json'), 'utf8'));
    assert.equal(mb.resumedFrom, 6);
    assert.equal(mb.workers, 2);
    assert.deepEqual(mb.epochs.map((e: { trainLoss: number }) => e.trainLoss), ma.epochs.map((e: { trainLoss: number }) => e.trainLoss));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
