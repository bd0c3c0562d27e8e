/**
 * Instructions per training step (valgrind's callgrind), before/after in the same run: repeatable
 * on a loaded machine, unlike times. Runs bench/step-profile.ts under callgrind once per
 * configuration, counting only the timed steps (after two warm-up steps), and prints instructions
 * per step and per image. Prints numbers; asserts nothing. Slow: ~50x native speed.
 *
 *   npx tsx bench/step-callgrind.ts [--batch 64] [--steps 2] [--configs baseline,before-simd,current]
 *
 * A configuration is `current` (all project kernels), `baseline` (step-profile's --baseline),
 * `before-simd` (the kernels before the SIMD ones) or `no-<improvement>` (step-profile's
 * --disable <improvement>, e.g. no-bn-train).
 */
import { execFile } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '2' },
    configs: { type: 'string', default: 'baseline,before-simd,current' },
    model: { type: 'string' },
  },
});

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const profiler = fileURLToPath(new URL(`./step-profile${ext}`, import.meta.url));
const steps = Number(opts.steps);
const batch = Number(opts.batch);

function flagsFor(config: string): string[] {
  if (config === 'current') return [];
  if (config === 'baseline') return ['--baseline'];
  if (config === 'before-simd') return ['--disable', 'before-simd'];
  if (config.startsWith('no-')) return ['--disable', config.slice(3)];
  throw new Error(`--configs: unknown '${config}' (current, baseline, before-simd or no-<improvement>)`);
}

async function instructionsPerStep(config: string): Promise<number> {
  const args = [
    '--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', '--callgrind-out-file=/dev/null',
    process.execPath, ...process.execArgv, profiler,
    '--callgrind', '--batch', String(batch), '--steps', String(steps), ...(opts.model ? ['--model', opts.model] : []), ...flagsFor(config),
  ];
  const { stderr } = await promisify(execFile)('valgrind', args, { maxBuffer: 64 << 20 });
  const m = /Collected\s*:\s*(\d+)/.exec(stderr);
  if (!m) throw new Error(`no callgrind total for '${config}':\n${stderr.slice(-2000)}`);
  // Zero means collection never switched on (callgrind_control did not reach the process): say so
  // instead of printing 0 instructions per step.
  if (Number(m[1]) === 0) throw new Error(`callgrind collected no instructions for '${config}': callgrind_control did not switch collection on. Its output and valgrind's:\n${stderr.slice(-2000)}`);
  return Number(m[1]) / steps;
}

console.log(`CPU ${cpus()[0]?.model ?? 'unknown'}; batch ${batch}, ${steps} measured steps per configuration (instructions, all threads)`);
// The configurations run side by side (instruction counts do not depend on what else runs).
const configs = opts.configs!.split(',');
const results = (await Promise.all(configs.map(instructionsPerStep))).map((v, i) => [configs[i]!, v] as [string, number]);
for (const [config, perStep] of results) {
  console.log(`${config.padEnd(20)} ${(perStep / 1e9).toFixed(3).padStart(8)} G instr/step  ${(perStep / batch / 1e6).toFixed(1).padStart(8)} M instr/image`);
}
const base = results.find(([c]) => c === 'baseline');
if (base) for (const [c, v] of results) if (c !== 'baseline') console.log(`${c}: ${(base[1] / v).toFixed(2)}x fewer instructions than baseline`);
