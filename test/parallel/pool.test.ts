/**
 * The worker pool and its reduction, in real worker threads and real child processes: the mean is
 * the same bits on every worker and over both transports (fixed order), and a worker that exits,
 * is SIGKILLed or throws fails every pending call with a message naming it — peers waiting in the
 * reduction are released, nothing hangs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { Barrier } from '../../pipeline/parallel/barrier.js';
import { WorkerPool, type PoolOptions } from '../../pipeline/parallel/pool.js';
import { chunkOf, meanInOrder } from '../../pipeline/parallel/reduce.js';
import { contribution, type ReduceTaskRequest } from './fixtures/reduce-task.js';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const task = new URL(`./fixtures/reduce-task${ext}`, import.meta.url).href;
const LENGTH = 1001;

function options(transport: PoolOptions['transport'], size: number, extra: Partial<PoolOptions> = {}): PoolOptions {
  return { label: 'test worker', size, transport, module: task, backend: 'cpu', payload: (rank) => ({ note: `payload ${rank}` }), reduceLength: LENGTH, ...extra };
}

function expectedMean(size: number, round: number): Float32Array {
  const out = new Float32Array(LENGTH);
  meanInOrder(out, Array.from({ length: size }, (_, r) => contribution(r, round, LENGTH)));
  return out;
}

test('meanInOrder: rank-order float32 partial sums, divided by N; chunks cover every element once', () => {
  const slices = [new Float32Array([1e8, 1, 0.1]), new Float32Array([1, 1e8, 0.2]), new Float32Array([-1e8, -1e8, 0.3])];
  const out = new Float32Array(3);
  meanInOrder(out, slices);
  const f = Math.fround;
  assert.deepEqual(Array.from(out), [f(f(f(f(1e8) + 1) + f(-1e8)) / 3), f(f(f(1 + f(1e8)) + f(-1e8)) / 3), f(f(f(f(0.1) + f(0.2)) + f(0.3)) / 3)]);
  // One slice: the values themselves (a one-worker run is not divided).
  const one = new Float32Array(3);
  meanInOrder(one, [slices[0]!]);
  assert.deepEqual(one, slices[0]);
  for (const [length, size] of [[10, 3], [1001, 2], [2, 3]] as const) {
    const seen = new Array<number>(length).fill(0);
    for (let r = 0; r < size; r++) {
      const { from, to } = chunkOf(length, r, size);
      for (let k = from; k < to; k++) seen[k]!++;
    }
    assert.ok(seen.every((n) => n === 1), `chunks of ${length} over ${size}`);
  }
});

test('Barrier.break from the main thread releases a worker blocked in Atomics.wait', { timeout: 60_000 }, async () => {
  const control = Barrier.allocate();
  const url = new URL(`../../pipeline/parallel/barrier${ext}`, import.meta.url).href;
  const code = `const { parentPort, workerData } = require('node:worker_threads');
import(workerData.url).then(({ Barrier }) => {
  parentPort.postMessage('waiting');
  try { new Barrier(workerData.control, 2).wait(); parentPort.postMessage('passed'); }
  catch (e) { parentPort.postMessage(e.name); }
});`;
  const w = new Worker(code, { eval: true, workerData: { control, url } });
  const messages: string[] = [];
  const done = new Promise<void>((resolve) => w.on('message', (m: string) => {
    messages.push(m);
    if (m !== 'waiting') resolve();
  }));
  await new Promise<void>((resolve) => w.once('message', () => resolve()));
  Barrier.break(control);
  await done;
  await w.terminate();
  assert.deepEqual(messages, ['waiting', 'BarrierBrokenError']);
});

for (const transport of ['thread', 'process'] as const) {
  test(`${transport} transport: every worker gets the same mean, bit for bit the fixed-order mean`, { timeout: 120_000 }, async () => {
    const pool = await WorkerPool.start(options(transport, 3));
    try {
      const info = await pool.all<{ payload: string; rank: number; size: number }>(() => ({ kind: 'pid' }) satisfies ReduceTaskRequest);
      assert.deepEqual(info.map((i) => [i.payload, i.rank, i.size]), [['payload 0', 0, 3], ['payload 1', 1, 3], ['payload 2', 2, 3]]);
      for (const round of [0, 1, 2]) {
        const results = await pool.all<Float32Array>(() => ({ kind: 'reduce', length: LENGTH, round }) satisfies ReduceTaskRequest);
        const want = expectedMean(3, round);
        for (const r of results) assert.deepEqual(Buffer.from(r.buffer, r.byteOffset, r.byteLength), Buffer.from(want.buffer));
      }
    } finally {
      await pool.close();
    }
  });

  test(`${transport} transport: a worker that exits mid-reduction fails the pool, naming it; nothing hangs`, { timeout: 120_000 }, async () => {
    const pool = await WorkerPool.start(options(transport, 2));
    try {
      const calls = pool.all(() => ({ kind: 'exit', rank: 1, code: 70, length: LENGTH }) satisfies ReduceTaskRequest);
      await assert.rejects(calls, /test worker 2\/2 exited with code 70; stopping the other workers/);
      assert.match(pool.failed?.message ?? '', /test worker 2\/2/);
      await assert.rejects(pool.call(0, { kind: 'pid' }), /test worker 2\/2 exited/);
    } finally {
      await pool.close();
    }
  });

  test(`${transport} transport: an error thrown in a worker fails the pool with its message`, { timeout: 120_000 }, async () => {
    const pool = await WorkerPool.start(options(transport, 2));
    try {
      await assert.rejects(pool.all(() => ({ kind: 'throw', rank: 0, message: 'shard-000003.tar: bad image "x"', length: LENGTH }) satisfies ReduceTaskRequest), /test worker 1\/2 failed: shard-000003\.tar: bad image "x"/);
    } finally {
      await pool.close();
    }
  });
}

test('process transport: a worker SIGKILLed from outside fails the pool; each process has its own environment', { timeout: 120_000 }, async () => {
  const children: ChildProcess[] = [];
  const pool = await WorkerPool.start(options('process', 2, { onSpawn: (_r, c) => void children.push(c), env: (rank) => ({ ...process.env, CUDA_VISIBLE_DEVICES: String(rank) }) }));
  try {
    const pids = await pool.all<{ pid: number; cuda?: string }>(() => ({ kind: 'pid' }));
    assert.deepEqual(pids.map((p) => p.pid), children.map((c) => c.pid));
    assert.deepEqual(pids.map((p) => p.cuda), ['0', '1']);
    assert.notEqual(pids[0]!.pid, process.pid);
    const reduction = pool.call(0, { kind: 'reduce', length: LENGTH, round: 0 } satisfies ReduceTaskRequest);
    children[1]!.kill('SIGKILL');
    await assert.rejects(reduction, /test worker 2\/2 was killed by SIGKILL/);
  } finally {
    await pool.close();
  }
});

test('a worker whose task module cannot start fails start() with the reason', { timeout: 60_000 }, async () => {
  await assert.rejects(WorkerPool.start(options('thread', 2, { module: new URL('./no-such-task.js', import.meta.url).href })), /test worker \d\/2 could not start: .*no-such-task/);
});
