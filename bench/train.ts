/**
 * Training throughput of the demo's model with the demo's full teacher recipe
 * (manifests/fashion-mnist.yaml: its crop, flip and RandAugment settings on raw pixels, label smoothing, L2 on
 * non-BN weights, momentum SGD with the LR schedule, EMA of all weights, seeded noise, per-step loss
 * read-back), through the train stage's own loop, with 1, 2, ... data-parallel workers; beside it
 * the bare step (forward + backward + SGD on a fixed batch, one thread, what bench/model measures),
 * the input path alone, and PyTorch on the same architecture and batch (bench/model_torch.py,
 * torch.set_num_threads(2)).
 *
 *   npx tsx bench/train.ts [--workers 1,2] [--steps 8] [--warmup 2] [--repeats 3] [--backend auto] [--no-torch] [--batch 64]
 *                          [--student file://$PWD/runs/fashion-mnist]   (a finished demo run: the student recipe too)
 *
 * Every measurement runs in its own child process (peak RSS is per configuration: the worker
 * threads live in that process), the configurations interleaved round-robin in each repeat so load
 * changes hit them alike; warm-up steps (XNNPACK set-up, weight packing, worker start) are excluded
 * and so is the last step (it writes the final checkpoint). Medians over the repeats. Prints numbers
 * only; the speed-up line is the median of the per-repeat ratios. Printed too, because on a loaded
 * machine wall-clock numbers mostly measure the scheduler: images per CPU-second of the child (all
 * its threads), and the CPU time of the slowest worker thread per step (the step's critical path
 * on idle cores; needs Node >= 22.19 / 23.9 for process.threadCpuUsage).
 */
import { execFile } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type * as tfTypes from '@tensorflow/tfjs';
import { initBackend, type BackendPreference } from '../pipeline/backend/select.js';
import { parseManifest } from '../pipeline/manifest/load.js';
import { resolveModel } from '../pipeline/model/family.js';
import { buildResNetRS } from '../pipeline/model/resnet-rs.js';
import { readDatasetsList } from '../pipeline/contracts/import.js';
import type { TrainConfig } from '../pipeline/manifest/sections/train.js';
import { openStore } from '../pipeline/store/open.js';
import { augmentImage, randAugmentOptions } from '../pipeline/train/augment.js';
import { normalizeInto, type LabeledData } from '../pipeline/train/data.js';
import { softCrossEntropy } from '../pipeline/train/loss.js';
import { MomentumSgd } from '../pipeline/train/optimizer.js';
import { openPseudoSource, type PseudoSource } from '../pipeline/train/pseudo.js';
import { Sfc32 } from '../pipeline/train/rng.js';
import { pseudoBatchOf } from '../pipeline/train/step-plan.js';
import { train } from '../pipeline/train/trainer.js';
import { readFashionMnist } from '../test/helpers/fashion-mnist.js';
import { runBenchChild } from './child.js';

const self = fileURLToPath(import.meta.url);
const torchScript = fileURLToPath(new URL('./model_torch.py', import.meta.url));
const demoManifest = fileURLToPath(new URL('../manifests/fashion-mnist.yaml', import.meta.url));

const { values: a } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    steps: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'auto' },
    'no-torch': { type: 'boolean', default: false },
    // The global batch of the teacher recipe (default: the manifest's); the learning rate is left as it is.
    batch: { type: 'string' },
    // A finished demo run (e.g. file://$PWD/runs/fashion-mnist): also measure the student's recipe on its pseudo-labels.
    student: { type: 'string' },
    child: { type: 'string' },
  },
});
const STEPS = Number(a.steps), WARMUP = Number(a.warmup), REPEATS = Number(a.repeats);
const WORKERS = a.workers!.split(',').map(Number);
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

const manifest = parseManifest(readFileSync(demoManifest, 'utf8'), demoManifest);
const recipe = a.batch ? { ...manifest.teacher.train, batchSize: Number(a.batch) } : manifest.teacher.train;
const B = recipe.batchSize;
if (!Number.isInteger(B) || B < 1) throw new Error(`--batch: "${a.batch}" is not a positive integer`);

interface FullResult {
  ips: number;
  /** Images per CPU-second of the whole child process (all its threads) over the timed steps. */
  cpuIps: number;
  /** Median over the timed steps of the slowest worker thread's CPU time per step (ms), if Node can tell. */
  stepCpuMs?: number;
  rssMB: number;
  reduceShare: number;
}
interface BareResult {
  bare: number;
  augment: number;
  rssMB: number;
}

async function childMain(kind: string): Promise<void> {
  const backend = await initBackend(a.backend as BackendPreference);
  const tf = backend.tf;
  const { arch, defaults } = resolveModel(manifest.teacher.model);
  const fm = readFashionMnist('train', 1000);
  const data: LabeledData = {
    train: { count: 1000, size: 28, channels: 1, pixels: fm.images.slice(), labels: Int32Array.from(fm.labels), keys: [] },
    heldout: { count: 0, size: 28, channels: 1, pixels: new Uint8Array(0), labels: new Int32Array(0), keys: [] },
    classes: Array.from({ length: 10 }, (_, i) => String(i)),
    uri: 'memory',
  };
  const rss = () => process.resourceUsage().maxRSS / 1024;

  if (kind.startsWith('bare')) {
    // `bare:<n>`: the bare step on n images (a worker's slice of the global batch), default B.
    const B = Number(kind.split(':')[1] ?? recipe.batchSize);
    const model = buildResNetRS(arch);
    const vars = model.trainableWeights.map((w) => w.read() as tfTypes.Variable);
    const opt = new MomentumSgd(tf, vars, 0.9, false);
    const x = new Float32Array(B * 784);
    for (let i = 0; i < B; i++) normalizeInto(data.train.pixels.subarray(i * 784, (i + 1) * 784), 1, x, i * 784);
    const xs = tf.tensor4d(x, [B, 28, 28, 1]);
    const ys = tf.oneHot(tf.tensor1d(data.train.labels.subarray(0, B), 'int32'), 10).toFloat() as tfTypes.Tensor2D;
    let t0 = 0;
    for (let s = 0; s < WARMUP + STEPS; s++) {
      if (s === WARMUP) t0 = performance.now();
      const { value, grads } = tf.variableGrads(() => softCrossEntropy(tf, model.apply(xs, { training: true }) as tfTypes.Tensor2D, ys), vars);
      value.dataSync();
      opt.apply(vars.map((v) => grads[v.name]!), 0.05);
      tf.dispose([value, ...Object.values(grads)]);
    }
    const bare = (STEPS * B) / ((performance.now() - t0) / 1000);
    const ra = randAugmentOptions(recipe, defaults.randAugmentMagnitude, 28);
    const t1 = performance.now();
    for (let s = 0; s < STEPS; s++) {
      for (let i = 0; i < B; i++) {
        const img = { data: data.train.pixels.subarray(i * 784, (i + 1) * 784), width: 28, height: 28, channels: 1 };
        normalizeInto(augmentImage(img, recipe, ra, new Sfc32(s * B + i)).data, 1, x, i * 784);
      }
    }
    const augment = (STEPS * B) / ((performance.now() - t1) / 1000);
    process.stdout.write(JSON.stringify({ bare, augment, rssMB: rss() } satisfies BareResult) + '\n');
    return;
  }

  // `full:<w>`: the teacher's recipe; `student:<w>`: the student's (its model noise, labeled +
  // pseudo-labeled batches read from --student's select-1 and unlabeled set, as the stage reads them).
  const student = kind.startsWith('student:');
  const workers = Number(kind.replace(/^(full|student):/, ''));
  const cfg = { ...(student ? manifest.student.train : recipe), epochs: 1000, maxSteps: WARMUP + STEPS + 1, checkpoint: { everySteps: 1_000_000, keep: 1 }, workers };
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-bench-train-'));
  const store = openStore(`file://${dir}`);
  const pseudo = student ? await openStudentPseudo(a.student!, cfg, arch.classes, arch.imageSize) : undefined;
  const model = buildResNetRS(student ? resolveModel(manifest.student.model).arch : arch);
  // Images per step: the labeled batch, plus a student's pseudo-labeled images.
  const perStep = cfg.batchSize + (pseudo ? pseudoBatchOf(pseudo.ratio, cfg.batchSize) : 0);
  let t0 = 0, t1 = 0;
  let c0 = process.cpuUsage(), cpu = c0;
  const stepCpu: number[] = [];
  try {
    const r = await train({
      tf, model, cfg, seed: 0, defaultMagnitude: defaults.randAugmentMagnitude, numClasses: 10, data, store, log: quiet, backend: backend.name, workers, pseudo,
      onStep: (step, info) => {
        if (step === WARMUP - 1) [t0, c0] = [performance.now(), process.cpuUsage()];
        if (step >= WARMUP && step < WARMUP + STEPS && info.cpuMs !== undefined) stepCpu.push(info.cpuMs);
        if (step === WARMUP + STEPS - 1) [t1, cpu] = [performance.now(), process.cpuUsage(c0)];
      },
    });
    const cpuIps = (STEPS * perStep) / ((cpu.user + cpu.system) / 1e6);
    const stepCpuMs = stepCpu.length ? median(stepCpu) : undefined;
    process.stdout.write(JSON.stringify({ ips: (STEPS * perStep) / ((t1 - t0) / 1000), cpuIps, stepCpuMs, rssMB: rss(), reduceShare: r.reduceWaitShare } satisfies FullResult) + '\n');
  } finally {
    model.dispose();
    await pseudo?.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The pseudo-labels of a finished demo run (`<run uri>`: its select-1 and the import's unlabeled set). */
async function openStudentPseudo(runUri: string, cfg: TrainConfig, numClasses: number, imageSize: number): Promise<PseudoSource> {
  const run = openStore(runUri);
  const root = openStore(runUri.replace(/\/[^/]+\/?$/, ''));
  const refs = await readDatasetsList(run, 'import');
  if (!refs.unlabeled) throw new Error(`${runUri}: the import list names no unlabeled set`);
  return openPseudoSource({
    select: run.sub('select-1'),
    unlabeled: root.sub(refs.unlabeled),
    ratio: cfg.student.ratio,
    hard: cfg.student.targets === 'hard',
    labelSmoothing: cfg.labelSmoothing,
    numClasses,
    imageSize,
    channels: 1,
    seed: 0,
    log: quiet,
  });
}

function runChild<T>(kind: string): Promise<T> {
  return runBenchChild<T>(self, ['--child', kind, '--steps', String(STEPS), '--warmup', String(WARMUP), '--backend', a.backend!, ...(a.batch ? ['--batch', a.batch] : []), ...(a.student ? ['--student', a.student] : [])], kind);
}

interface TorchResult {
  torch: string;
  threads: number;
  small_params: number;
  small_train_ips: number;
  small_train_cpu_ips: number;
}

async function torchBench(): Promise<TorchResult> {
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [torchScript, '--threads', '2', '--repeats', String(Math.max(3, REPEATS)), '--skip-infer', '--train-batch', String(B)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as TorchResult;
}

function cpuLine(): string {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').includes(' avx512f') ? ', AVX-512' : '';
  } catch {
    /* not Linux */
  }
  return `CPU ${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}${flags}`;
}

async function main(): Promise<void> {
  if (a.child) return childMain(a.child);
  const backend = await initBackend(a.backend as BackendPreference);
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`${cpuLine()}; ${backend.summary}`);
  console.log(`model ${manifest.teacher.model.name}, demo teacher recipe, global batch ${B}; ${STEPS} timed steps after ${WARMUP} warm-up, ${REPEATS} repeats interleaved; load average at start ${load()}`);
  const bares: BareResult[] = [];
  const fulls = new Map<number, FullResult[]>(WORKERS.map((w) => [w, []]));
  const students = new Map<number, FullResult[]>(WORKERS.map((w) => [w, []]));
  // The machine's own ceiling for N workers: N independent processes, each running the bare step on
  // its 1/N slice of the batch, with nothing shared between them. Their summed images/s over one
  // process alone bounds what any data-parallel scheme can reach on these cores (vCPUs that share a
  // physical core, memory bandwidth or a noisy neighbour lower it below N).
  const maxW = Math.max(...WORKERS);
  const ceilings: number[] = [];
  // The same processes against one bare process at the whole global batch: data-parallel training
  // at a fixed global batch also halves each worker's batch, and a smaller batch runs fewer images
  // per second by itself (smaller matmuls, the same per-step fixed costs). This bounds `speedup`.
  const batchCeilings: number[] = [];
  const slice = Math.ceil(B / maxW);
  for (let r = 0; r < REPEATS; r++) {
    const b = await runChild<BareResult>('bare');
    bares.push(b);
    const line = [`repeat ${r + 1}: bare ${b.bare.toFixed(1)} img/s`];
    if (maxW > 1) {
      const alone = await runChild<BareResult>(`bare:${slice}`);
      const together = await Promise.all(Array.from({ length: maxW }, () => runChild<BareResult>(`bare:${slice}`)));
      const sum = together.reduce((t, x) => t + x.bare, 0);
      ceilings.push(sum / alone.bare);
      batchCeilings.push(sum / b.bare);
      line.push(`bare b${slice} alone ${alone.bare.toFixed(1)}, ${maxW} at once ${sum.toFixed(1)} in total`);
    }
    for (const w of WORKERS) {
      const f = await runChild<FullResult>(`full:${w}`);
      fulls.get(w)!.push(f);
      line.push(`${w} worker(s) ${f.ips.toFixed(1)} img/s`);
      if (a.student) {
        const st = await runChild<FullResult>(`student:${w}`);
        students.get(w)!.push(st);
        line.push(`student ${st.ips.toFixed(1)}`);
      }
    }
    console.log(line.join(', '));
  }
  const mb = median(bares.map((b) => b.bare));
  console.log(`bare step, 1 thread (fwd+bwd+SGD):   ${mb.toFixed(1)} img/s (median)`);
  console.log(`input path alone, 1 thread:          ${median(bares.map((b) => b.augment)).toFixed(0)} img/s (${recipe.randAugment.enabled ? 'crop+flip+RandAugment' : 'crop+flip; RandAugment off in the recipe'})`);
  for (const w of WORKERS) {
    const rs = fulls.get(w)!;
    console.log(
      `full recipe, ${w} worker(s):`.padEnd(37) +
        `${median(rs.map((f) => f.ips)).toFixed(1)} img/s (median), ${median(rs.map((f) => f.cpuIps)).toFixed(1)} img/CPU-s, peak RSS ${median(rs.map((f) => f.rssMB)).toFixed(0)} MB` +
        (w > 1 ? `, ${(median(rs.map((f) => f.reduceShare)) * 100).toFixed(1)}% of step time in the reduction` : ''),
    );
  }
  if (a.student) {
    for (const w of WORKERS) {
      const rs = students.get(w)!;
      const ratio = median(rs.map((f, i) => f.ips / fulls.get(w)![i]!.ips));
      console.log(`student recipe, ${w} worker(s):`.padEnd(37) + `${median(rs.map((f) => f.ips)).toFixed(1)} img/s (median), ${median(rs.map((f) => f.cpuIps)).toFixed(1)} img/CPU-s, ${ratio.toFixed(2)}x the teacher's img/s`);
    }
  }
  const base = WORKERS[0]!;
  if (ceilings.length) {
    console.log(`machine ceiling: ${maxW} independent bare processes at once / 1 alone: ${median(ceilings).toFixed(2)}x (no data-parallel scheme can beat it here)`);
    console.log(
      `machine ceiling at global batch ${B}: ${maxW} bare b${slice} processes at once / 1 bare b${B} alone: ${median(batchCeilings).toFixed(2)}x ` +
        `(what ${maxW} workers of ${slice} images can reach against 1 worker of ${B}: it bounds the speedup below)`,
    );
  }
  for (const w of WORKERS.slice(1)) {
    const ratios = fulls.get(w)!.map((f, i) => f.ips / fulls.get(base)![i]!.ips);
    const share = (c: number[]) => `${((100 * median(ratios)) / median(c)).toFixed(0)}%`;
    console.log(
      `speedup ${w}/${base}: ${median(ratios).toFixed(2)}` +
        (w === maxW && ceilings.length ? ` (${share(ceilings)} of the machine ceiling, ${share(batchCeilings)} of the ceiling at this global batch)` : ''),
    );
    // Load-robust view: per step, the CPU time of the slowest worker's thread is the step's critical
    // path on idle cores (waiting at the reduction aside); other load stretches wall time, not this.
    const cpu = (n: number) => median(fulls.get(n)!.map((f) => f.stepCpuMs ?? NaN));
    if (Number.isFinite(cpu(w)) && Number.isFinite(cpu(base))) {
      console.log(`  CPU time per step on the critical path (slowest worker thread): ${base} worker(s) ${cpu(base).toFixed(0)} ms, ${w} workers ${cpu(w).toFixed(0)} ms: CPU-time speed-up ${(cpu(base) / cpu(w)).toFixed(2)} (what idle cores give, barring waits at the reduction)`);
    }
  }
  console.log(`load average at end ${load()} (a loaded machine makes wall-clock numbers unreliable)`);
  if (a['no-torch']) return;
  const t = await torchBench();
  const best = Math.max(...WORKERS);
  const mBest = median(fulls.get(best)!.map((f) => f.ips));
  console.log(`PyTorch ${t.torch}, ${t.threads} threads, same architecture (${t.small_params.toLocaleString('en-US')} params), batch ${B}, bare step: ${t.small_train_ips.toFixed(1)} img/s`);
  console.log(`ratio full recipe ${best} worker(s) / PyTorch bare step: ${(mBest / t.small_train_ips).toFixed(2)}x (target >= 0.5x)`);
  console.log(`ratio bare step 1 thread / PyTorch bare step: ${(mb / t.small_train_ips).toFixed(2)}x`);
}

await main();
