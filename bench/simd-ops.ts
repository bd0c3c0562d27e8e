/**
 * Forward + backward of the ops the SIMD kernels replaced, at the Fashion-MNIST ResNet-RS shapes,
 * with the kernels on and off in the same run: training-mode batch norm (+ReLU), the shortcut's
 * 2x2 average pool, and the convs and their gradients alone (the model's conv layers). Prints per op the median (and min) milliseconds (CPU time of this process) and, with
 * --callgrind, instructions (valgrind's callgrind, repeatable on a loaded machine). Asserts nothing.
 *
 *   npx tsx bench/simd-ops.ts [--batch 64] [--repeats 7] [--callgrind] [--only <part of an op name>]
 *
 * --callgrind re-runs this file under valgrind once per configuration and counts instructions of
 * each op's measured repetitions only (callgrind_control zeroes and dumps around them).
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type * as TfNamespace from '@tensorflow/tfjs';
import { initBackend } from '../pipeline/backend/select.js';
import { useFastTrainingBatchNorm } from '../pipeline/backend/batch-norm-training.js';
import { disableImprovements, parseDisabled } from './kernel-switches.js';

const { values: opts } = parseArgs({
  options: {
    batch: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '7' },
    callgrind: { type: 'boolean', default: false },
    only: { type: 'string', default: '' },
    // Internal: set when running under valgrind.
    'under-valgrind': { type: 'boolean', default: false },
    disable: { type: 'string', default: '' },
  },
});
const batch = Number(opts.batch);
const repeats = Number(opts.repeats);
const configs = [['before', 'before-simd'], ['after', '']] as const;

type Op = { name: string; run: () => void };

async function ops(tf: typeof TfNamespace): Promise<Op[]> {
  const list: Op[] = [];
  for (const [h, c] of [[28, 16], [14, 64], [7, 128], [4, 256], [2, 512]] as const) {
    const shape = [batch, h, h, c];
    const layer = useFastTrainingBatchNorm(tf, tf.layers.batchNormalization({ axis: -1, momentum: 0, epsilon: 1e-5 }));
    const x = tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 1));
    const w = tf.randomNormal(shape, 0, 1, 'float32', 2);
    layer.build(shape);
    list.push({
      name: `BN(train)+ReLU fwd+bwd [${shape}]`,
      run: () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(tf.relu(layer.apply(x, { training: true }) as TfNamespace.Tensor), w)) as TfNamespace.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      },
    });
  }
  for (const [h, c] of [[14, 64], [7, 128], [4, 256]] as const) {
    const x = tf.variable(tf.randomNormal([batch, h, h, c], 0, 1, 'float32', 3));
    list.push({
      name: `AvgPool 2x2/2 fwd+bwd [${batch},${h},${h},${c}]`,
      run: () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.avgPool(x as TfNamespace.Tensor4D, 2, 2, 'same')) as TfNamespace.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      },
    });
  }
  // [x shape, filter size, stride, padding, out channels]: the model's conv layers.
  const convs: [number[], number, number, 'same' | 'valid', number][] = [
    [[batch, 28, 28, 8], 3, 1, 'same', 16],
    [[batch, 30, 30, 16], 3, 2, 'valid', 16],
    [[batch, 14, 14, 16], 3, 1, 'same', 16],
    [[batch, 14, 14, 16], 1, 1, 'same', 64],
    [[batch, 14, 14, 64], 1, 1, 'same', 16],
    [[batch, 16, 16, 32], 3, 2, 'valid', 32],
    [[batch, 7, 7, 128], 1, 1, 'same', 32],
    [[batch, 4, 4, 64], 3, 1, 'same', 64],
    [[batch, 2, 2, 128], 3, 1, 'same', 128],
    [[batch, 2, 2, 128], 1, 1, 'same', 512],
  ];
  for (const [shape, k, stride, pad, co] of convs) {
    const x = tf.randomNormal(shape, 0, 1, 'float32', 4);
    const conv = tf.conv2d(x as TfNamespace.Tensor4D, tf.zeros([k, k, shape[3]!, co]) as TfNamespace.Tensor4D, stride, pad);
    const dy = tf.randomNormal(conv.shape, 0, 1, 'float32', 5);
    conv.dispose();
    list.push({
      name: `Conv2DBackpropFilter ${k}x${k}/${stride} [${shape}]->${co}`,
      run: () => {
        const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: stride, pad, dataFormat: 'NHWC', filterShape: [k, k, shape[3]!, co] }) as TfNamespace.Tensor;
        dw.dataSync();
        dw.dispose();
      },
    });
    // A new filter tensor every call, as in training (each step's update makes new weights), so
    // XNNPACK packs it every time there too.
    const filterData = tf.randomNormal([k, k, shape[3]!, co], 0, 1, 'float32', 6).dataSync() as Float32Array;
    const freshFilter = () => tf.tensor4d(filterData, [k, k, shape[3]!, co]);
    list.push({
      name: `FusedConv2D ${k}x${k}/${stride} [${shape}]->${co}`,
      run: () => {
        const filter = freshFilter();
        const y = tf.fused.conv2d({ x: x as TfNamespace.Tensor4D, filter, strides: stride, pad });
        y.dataSync();
        tf.dispose([y, filter]);
      },
    });
    list.push({
      name: `Conv2DBackpropInput ${k}x${k}/${stride} [${shape}]->${co}`,
      run: () => {
        const filter = freshFilter();
        const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { strides: stride, pad, dataFormat: 'NHWC', inputShape: shape }) as TfNamespace.Tensor;
        dx.dataSync();
        tf.dispose([dx, filter]);
      },
    });
  }
  return list;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Child mode: measure every op in one configuration; print one JSON line. */
async function measure(): Promise<void> {
  const sel = await initBackend('wasm');
  disableImprovements(sel, parseDisabled(opts.disable!));
  const control = (...a: string[]) => execFileSync('callgrind_control', [...a, String(process.pid)], { stdio: 'ignore' });
  const result: Record<string, number> = {};
  for (const op of (await ops(sel.tf)).filter((o) => o.name.includes(opts.only!))) {
    op.run(); // warm-up
    op.run();
    if (opts['under-valgrind']) {
      control('--zero');
      for (let i = 0; i < repeats; i++) op.run();
      control('--dump', op.name.replace(/[^A-Za-z0-9]+/g, '_'));
    } else {
      const ms: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const c = process.cpuUsage();
        op.run();
        const u = process.cpuUsage(c);
        ms.push((u.user + u.system) / 1000);
      }
      result[op.name] = median(ms);
      result[`${op.name} min`] = Math.min(...ms);
    }
  }
  console.log(JSON.stringify(result));
}

/** Instructions per repetition of each op, from the dumps of a valgrind run. */
async function instructions(disable: string): Promise<Record<string, number>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'simd-ops-cg-'));
  try {
    const self = fileURLToPath(import.meta.url);
    await promisify(execFile)('valgrind', [
      '--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${dir}/cg.out`,
      process.execPath, ...process.execArgv, self, '--under-valgrind', '--batch', String(batch), '--repeats', String(repeats), '--disable', disable, '--only', opts.only!,
    ], { maxBuffer: 64 << 20 });
    const out: Record<string, number> = {};
    for (const f of readdirSync(dir)) {
      const text = readFileSync(path.join(dir, f), 'utf8');
      const label = /^desc: Trigger: Client Request: (.*)$|^desc: Trigger: dump (.*)$/m.exec(text);
      const totals = /^totals: (\d+)/m.exec(text) ?? /^summary: (\d+)/m.exec(text);
      if (label && totals) out[(label[1] ?? label[2])!.trim()] = Number(totals[1]) / repeats;
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (opts['under-valgrind'] || opts.disable) return measure();
  console.log(`CPU ${cpus()[0]?.model ?? 'unknown'}; wasm, 1 thread; batch ${batch}, ${repeats} repetitions per op (medians)`);
  const self = fileURLToPath(import.meta.url);
  const ms: Record<string, number>[] = [];
  for (const [, disable] of configs) {
    const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, self, '--batch', String(batch), '--repeats', String(repeats), '--disable', disable || 'none', '--only', opts.only!], { maxBuffer: 1 << 20 });
    ms.push(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>);
  }
  const instr = opts.callgrind ? await Promise.all(configs.map(([, d]) => instructions(d || 'none'))) : undefined;
  const names = Object.keys(ms[0]!).filter((n) => !n.endsWith(' min'));
  console.log(`${'op (CPU ms: median (min))'.padEnd(50)} ${'before'.padStart(16)} ${'after'.padStart(16)}${instr ? `${'Minstr before'.padStart(15)}${'Minstr after'.padStart(14)}  ratio` : ''}`);
  for (const n of names) {
    const key = n.replace(/[^A-Za-z0-9]+/g, '_');
    const cols = instr ? `${(instr[0]![key]! / 1e6).toFixed(1).padStart(15)}${(instr[1]![key]! / 1e6).toFixed(1).padStart(14)}  ${(instr[0]![key]! / instr[1]![key]!).toFixed(2)}x` : '';
    const cell = (r: Record<string, number>) => `${r[n]!.toFixed(2)} (${r[`${n} min`]!.toFixed(2)})`.padStart(16);
    console.log(`${n.padEnd(50)} ${cell(ms[0]!)} ${cell(ms[1]!)}${cols}`);
  }
}

await main();
