/**
 * Profiles one training step of the Fashion-MNIST ResNet-RS variant on the selected backend and
 * prints the per-kernel time breakdown and the step time. Prints numbers; asserts nothing.
 *
 *   npx tsx bench/step-profile.ts [--model resnet-rs-26-w0.25-small] [--batch 128] [--steps 5]
 *                                 [--backend wasm] [--baseline] [--disable a,b|before-simd] [--detail <Kernel>]...
 *
 * --baseline measures "before" with every improvement off (bench/kernel-switches.ts); --disable
 * takes a list of improvements (bn-train, bn-grad, relu-grad, input-grad, maxpool-grad,
 * avgpool-grad, fast-kernels) or the preset before-simd (the kernels before the SIMD ones).
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { Tensor } from '@tensorflow/tfjs';
import { initBackend, type BackendPreference } from '../pipeline/backend/select.js';
import { disableImprovements, parseDisabled } from './kernel-switches.js';
import { buildModel } from '../pipeline/model/resnet-rs.js';
import { registerModelLayers } from '../pipeline/model/layers.js';
import { FASHION_MNIST_MODEL, resolveModel } from '../pipeline/model/family.js';

const { values: opts } = parseArgs({
  options: {
    model: { type: 'string', default: FASHION_MNIST_MODEL },
    batch: { type: 'string', default: '128' },
    steps: { type: 'string', default: '5' },
    backend: { type: 'string', default: 'wasm' },
    baseline: { type: 'boolean', default: false },
    disable: { type: 'string', default: '' },
    top: { type: 'string', default: '15' },
    detail: { type: 'string', multiple: true, default: [] },
    // Set by bench/step-callgrind.ts, which runs this file under valgrind: count instructions of
    // the timed steps only (callgrind_control switches collection on and off around them).
    callgrind: { type: 'boolean', default: false },
  },
});

const sel = await initBackend(opts.backend as BackendPreference);
const tf = sel.tf;
const disabled = parseDisabled(opts.baseline ? 'baseline' : opts.disable!);
disableImprovements(sel, disabled);
registerModelLayers(tf);
const batch = Number(opts.batch);
const { arch } = resolveModel({ name: opts.model! });
const model = buildModel({ name: opts.model! });
const x = tf.randomUniform([batch, arch.imageSize, arch.imageSize, arch.inputChannels]);
const y = tf.oneHot(tf.randomUniform([batch], 0, arch.classes, 'int32') as Tensor, arch.classes);
const optimizer = tf.train.momentum(0.01, 0.9);
const step = () => {
  const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as Tensor) as never, true);
  cost!.dataSync();
  cost!.dispose();
};

console.log(`${sel.summary}`);
console.log(`model ${opts.model} (${model.countParams()} params), batch ${batch}, ${disabled.size ? `without: ${[...disabled].join(', ')}` : 'all project kernels + gradients'}`);
step(); // warm-up: XNNPACK operator creation, weight packing, JIT
if (opts.callgrind) {
  // Its answer goes to stderr, where bench/step-callgrind.ts shows it if nothing was collected.
  const control = (flag: string) => console.error(`callgrind_control ${flag}: ${execFileSync('callgrind_control', [flag, String(process.pid)], { encoding: 'utf8' }).trim()}`);
  step(); // a second warm-up: the optimising JIT has seen every kernel once
  control('--instr=on');
  for (let i = 0; i < Number(opts.steps); i++) step();
  control('--instr=off');
  console.log(`callgrind: ${opts.steps} steps measured`);
  process.exit(0);
}
const times: number[] = [];
const cpuTimes: number[] = [];
for (let i = 0; i < Number(opts.steps); i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  step();
  const c = process.cpuUsage(c0);
  times.push(performance.now() - t0);
  cpuTimes.push((c.user + c.system) / 1000);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
// CPU time of this process is far less disturbed than wall time on a shared machine.
console.log(
  `step time: wall median ${median(times).toFixed(0)} ms (min ${Math.min(...times).toFixed(0)}), ` +
    `CPU median ${median(cpuTimes).toFixed(0)} ms over ${times.length} steps -> ${((batch / median(times)) * 1000).toFixed(1)} images/s wall, ` +
    `${((batch / median(cpuTimes)) * 1000).toFixed(1)} images/s per busy core`,
);

const profile = await tf.profile(step);
const byKernel = new Map<string, { ms: number; calls: number }>();
let total = 0;
for (const k of profile.kernels) {
  // `<op>__op` entries are customGrad wrappers whose time includes the kernels inside them.
  if (k.name.endsWith('__op')) continue;
  const ms = Number(await k.kernelTimeMs) || 0;
  const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
  e.ms += ms;
  e.calls += 1;
  byKernel.set(k.name, e);
  total += ms;
}
console.log(`profiled step: ${total.toFixed(0)} ms in ${profile.kernels.length} kernel calls`);
console.log('kernel                         ms      share  calls');
for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(opts.top))) {
  console.log(`${name.padEnd(28)} ${e.ms.toFixed(1).padStart(8)} ${((100 * e.ms) / total).toFixed(1).padStart(6)}%  ${String(e.calls).padStart(5)}`);
}

// Per-call detail (input shapes) for the kernels named with --detail.
for (const name of opts.detail ?? []) {
  const calls = profile.kernels.filter((k) => k.name === name);
  const rows = await Promise.all(calls.map(async (k) => ({ ms: Number(await k.kernelTimeMs) || 0, shapes: JSON.stringify(k.inputShapes) })));
  console.log(`\n${name}: ${rows.length} calls, slowest first`);
  for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, 12)) console.log(`${r.ms.toFixed(1).padStart(8)} ms  ${r.shapes}`);
}
