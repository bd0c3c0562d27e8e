/**
 * Measure before choosing: three ways to use both cores for one training step of the demo model
 * (resnet-rs-26-w0.25-small, 28x28x1, global batch 128, real Fashion-MNIST images; forward +
 * backward + momentum SGD with the project's wasm kernels), each in its own child process, the
 * variants interleaved round-robin so load changes hit them alike:
 *
 *   single    one wasm (SIMD) thread, batch 128 (today's trainer)
 *   threaded  tfjs-backend-wasm's threaded-SIMD build made to start in Node (./threaded-wasm.ts),
 *             XNNPACK with a 2-thread pool, batch 128
 *   dp        data-parallel: N worker_threads, each its own tfjs + wasm, batch 128/N each; the
 *             gradients go into one SharedArrayBuffer, every worker sums the N slices in a fixed
 *             order and applies the same update (Atomics barriers, no main-thread round trip)
 *
 *   npx tsx bench/parallel/compare.ts [--repeats 5] [--steps 6] [--workers 2] [--variants single,threaded,dp]
 *
 * Prints per repeat and the medians: images/s per wall second and per CPU-second (all threads of
 * the child). On a shared machine wall numbers swing with other load; say so when quoting them.
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type * as TfNamespace from '@tensorflow/tfjs';

type Tf = typeof TfNamespace;
const self = fileURLToPath(import.meta.url);
const BATCH = 128;

interface Args { variant: string; steps: number; workers: number }

async function plainWasm(): Promise<Tf> {
  const { initBackend } = await import('../../pipeline/backend/select.js');
  return (await initBackend('wasm')).tf;
}

async function threadedWasm(threads: number): Promise<Tf> {
  const mod = (await import('@tensorflow/tfjs')) as Partial<Tf> & { default?: Tf };
  const tf = (typeof mod.setBackend === 'function' ? mod : mod.default) as Tf;
  const { prepareThreadedWasm } = await import('./threaded-wasm.js');
  const restore = await prepareThreadedWasm(tf, threads);
  try {
    await plainWasm();
  } finally {
    restore();
  }
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (wasm.getThreadsCount() !== threads) throw new Error(`threaded wasm started with ${wasm.getThreadsCount()} threads, wanted ${threads}`);
  return tf;
}

/** A model + optimizer + one real batch slice; returns step() computing grads and applying them. */
async function makeStep(tf: Tf, batch: number, offset: number) {
  const { registerModelLayers } = await import('../../pipeline/model/layers.js');
  registerModelLayers(tf);
  const { buildResNetRS } = await import('../../pipeline/model/resnet-rs.js');
  const { FASHION_MNIST_MODEL, resolveModel } = await import('../../pipeline/model/family.js');
  const { withSeededMathRandom } = await import('../../pipeline/train/rng.js');
  const { softCrossEntropy } = await import('../../pipeline/train/loss.js');
  const { fashionMnistFloats } = await import('../../test/helpers/fashion-mnist.js');
  const { arch } = resolveModel({ name: FASHION_MNIST_MODEL });
  const model = withSeededMathRandom(1, () => buildResNetRS(arch));
  const vars = model.trainableWeights.map((w) => w.read() as TfNamespace.Variable);
  const data = fashionMnistFloats('train', BATCH);
  const xs = tf.tensor4d(data.images.subarray(offset * 784, (offset + batch) * 784), [batch, 28, 28, 1]);
  const ys = tf.oneHot(tf.tensor1d(data.labels.subarray(offset, offset + batch), 'int32'), 10).toFloat() as TfNamespace.Tensor2D;
  const slots = vars.map((v) => tf.variable(tf.zerosLike(v), false));
  const sizes = vars.map((v) => v.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const grads = () => {
    const { value, grads: g } = tf.variableGrads(() => softCrossEntropy(tf, model.apply(xs, { training: true }) as TfNamespace.Tensor2D, ys), vars);
    value.dataSync();
    value.dispose();
    return vars.map((v) => g[v.name]!);
  };
  const apply = (gs: TfNamespace.Tensor[]) => tf.tidy(() => vars.forEach((v, i) => {
    const acc = slots[i]!.mul(0.9).add(gs[i]!);
    slots[i]!.assign(acc as TfNamespace.Tensor);
    v.assign(v.sub(acc.mul(0.01)));
  }));
  return { grads, apply, sizes, total };
}

/** One child process: the variant's steps; prints one JSON line. */
async function child(a: Args): Promise<void> {
  if (a.variant === 'dp') return dpCoordinator(a);
  const tf = a.variant === 'threaded' ? await threadedWasm(a.workers) : await plainWasm();
  const s = await makeStep(tf, BATCH, 0);
  const once = () => { const g = s.grads(); s.apply(g); tf.dispose(g); };
  once(); once(); // warm-up: XNNPACK operator creation, weight packing
  const c = process.cpuUsage(), t = performance.now();
  for (let i = 0; i < a.steps; i++) once();
  report(a, performance.now() - t, process.cpuUsage(c));
}

function report(a: Args, ms: number, cpu: NodeJS.CpuUsage, extra: Record<string, number> = {}): void {
  const images = a.steps * BATCH;
  process.stdout.write(JSON.stringify({ variant: a.variant, wall: (images * 1000) / ms, cpu: (images * 1e6) / (cpu.user + cpu.system), ...extra }) + '\n');
}

async function dpCoordinator(a: Args): Promise<void> {
  const n = a.workers;
  const ctrl = new SharedArrayBuffer(4 * 4);
  const workers = Array.from({ length: n }, (_, rank) => new Worker(self, { workerData: { rank, n, steps: a.steps, ctrl }, execArgv: process.execArgv }));
  const next = (w: Worker) => new Promise<Record<string, number>>((res, rej) => {
    w.once('message', res);
    w.once('error', rej);
  });
  // Each worker reports its parameter count once its model is built; then all get one gradient SAB.
  const totals = await Promise.all(workers.map(next));
  const grads = new SharedArrayBuffer(4 * totals[0]!['total']! * n);
  const done = workers.map(next);
  for (const w of workers) w.postMessage({ grads });
  const results = await Promise.all(done);
  const cpuMs = results.reduce((x, r) => x + r['cpuMs']!, 0);
  const cpu = { user: cpuMs * 1000, system: 0 };
  await Promise.all(workers.map((w) => w.terminate()));
  const ms = Math.max(...results.map((r) => r['ms']!));
  report(a, ms, cpu, { waitShare: results.reduce((x, r) => x + r['waitMs']! / r['ms']!, 0) / n });
}

/** Generation barrier over Int32 words [arrived, generation] of a SharedArrayBuffer. */
function barrier(ctrl: Int32Array, n: number): void {
  const gen = Atomics.load(ctrl, 1);
  if (Atomics.add(ctrl, 0, 1) === n - 1) {
    Atomics.store(ctrl, 0, 0);
    Atomics.add(ctrl, 1, 1);
    Atomics.notify(ctrl, 1);
  } else {
    while (Atomics.load(ctrl, 1) === gen) Atomics.wait(ctrl, 1, gen);
  }
}

async function dpWorker(): Promise<void> {
  const { rank, n, steps, ctrl: ctrlBuf } = workerData as { rank: number; n: number; steps: number; ctrl: SharedArrayBuffer };
  const tf = await plainWasm();
  const per = BATCH / n;
  const s = await makeStep(tf, per, rank * per);
  const gradSab = await new Promise<SharedArrayBuffer>((res) => {
    parentPort!.once('message', (m: { grads: SharedArrayBuffer }) => res(m.grads));
    parentPort!.postMessage({ total: s.total });
  });
  const ctrl = new Int32Array(ctrlBuf);
  const all = new Float32Array(gradSab);
  const sum = new Float32Array(s.total);
  let waitMs = 0;
  const once = (timed: boolean) => {
    const g = s.grads();
    let o = rank * s.total;
    const shapes = g.map((t) => t.shape);
    for (const t of g) {
      all.set(t.dataSync() as Float32Array, o);
      o += t.size;
    }
    tf.dispose(g);
    const w0 = performance.now();
    barrier(ctrl, n);
    if (timed) waitMs += performance.now() - w0;
    // Fixed order: slice 0 + slice 1 + ... (the same bits on every worker).
    sum.set(all.subarray(0, s.total));
    for (let r = 1; r < n; r++) {
      const src = all.subarray(r * s.total, (r + 1) * s.total);
      for (let i = 0; i < s.total; i++) sum[i]! += src[i]!;
    }
    const w1 = performance.now();
    barrier(ctrl, n); // nobody overwrites its slice before everyone has summed
    if (timed) waitMs += performance.now() - w1;
    let off = 0;
    const avg = shapes.map((shape, i) => {
      const t = tf.tensor(sum.slice(off, off + s.sizes[i]!), shape).div(n);
      off += s.sizes[i]!;
      return t;
    });
    s.apply(avg);
    tf.dispose(avg);
  };
  once(false);
  once(false);
  barrier(ctrl, n);
  const t = performance.now();
  // Node >= 23.9 (@types/node 20 does not know it yet): this thread's CPU time only.
  const threadCpu = (process as unknown as { threadCpuUsage(prev?: NodeJS.CpuUsage): NodeJS.CpuUsage }).threadCpuUsage.bind(process);
  const c = threadCpu();
  for (let i = 0; i < steps; i++) once(true);
  const u = threadCpu(c);
  parentPort!.postMessage({ ms: performance.now() - t, waitMs, cpuMs: (u.user + u.system) / 1000 });
}

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      repeats: { type: 'string', default: '5' },
      steps: { type: 'string', default: '6' },
      workers: { type: 'string', default: '2' },
      variants: { type: 'string', default: 'single,threaded,dp' },
      child: { type: 'string' },
    },
  });
  const args: Args = { variant: o.child ?? '', steps: Number(o.steps), workers: Number(o.workers) };
  if (o.child) {
    await child(args);
    // The threaded build's pthread pool keeps the event loop alive: leave explicitly.
    process.exit(0);
  }
  const variants = o.variants!.split(',');
  console.log(`CPU ${cpus()[0]?.model ?? '?'} x ${cpus().length}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`demo model, global batch ${BATCH}, ${args.steps} timed steps after 2 warm-up, ${o.repeats} repeats interleaved; workers/threads ${args.workers}`);
  const rows: Record<string, { wall: number; cpu: number; waitShare?: number }[]> = {};
  for (let r = 0; r < Number(o.repeats); r++) {
    for (const v of variants) {
      const line = await new Promise<string>((res, rej) => {
        const p = spawn(process.execPath, [...process.execArgv, self, '--child', v, '--steps', String(args.steps), '--workers', String(args.workers)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('error', rej);
        p.on('exit', (code) => (code === 0 ? res(out.trim().split('\n').pop()!) : rej(new Error(`${v} exited ${code}`))));
      });
      const m = JSON.parse(line) as { wall: number; cpu: number; waitShare?: number };
      const seen = rows[v] ?? [];
      seen.push(m);
      rows[v] = seen;
      console.log(`repeat ${r + 1} ${v.padEnd(9)} ${m.wall.toFixed(1).padStart(7)} img/s  ${m.cpu.toFixed(1).padStart(7)} img/CPU-s${m.waitShare !== undefined ? `  waiting at barriers ${(m.waitShare * 100).toFixed(1)}%` : ''}`);
    }
  }
  const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
  const base = med(rows['single']?.map((m) => m.wall) ?? [NaN]);
  for (const v of variants) {
    const w = med(rows[v]!.map((m) => m.wall));
    console.log(`median ${v.padEnd(9)} ${w.toFixed(1).padStart(7)} img/s  ${med(rows[v]!.map((m) => m.cpu)).toFixed(1).padStart(7)} img/CPU-s  x${(w / base).toFixed(2)} vs single`);
  }
  console.log(`load average at end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

if (isMainThread) await main();
else await dpWorker();
