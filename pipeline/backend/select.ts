/**
 * Compute backend selection: the one place that loads TensorFlow.js.
 *
 * How to use it (everyone else in the project):
 *   import { initBackend, getTf } from '../backend/select.js';
 *   const { name, reasons } = await initBackend(preference);   // once per process, at start-up
 *   const tf = getTf();                                         // anywhere afterwards
 *
 * Why an accessor instead of `import * as tf from '@tensorflow/tfjs'` everywhere: with a native
 * backend (`@tensorflow/tfjs-node[-gpu]`) the tf namespace must come from that package, and two tf
 * instances in one process means two engines (tensors from one are unknown to the other, models
 * built with one cannot run on the other). Type-only imports (`import type ... from
 * '@tensorflow/tfjs'`) are fine anywhere; the `Tf` type below is the namespace type.
 *
 * Order tried for 'auto': tfjs-node-gpu → tfjs-node → wasm (SIMD) → cpu. The two native packages are
 * optionalDependencies that only install where libtensorflow can be downloaded, so their absence
 * is normal; every skipped candidate leaves a line in `reasons` for the run log and stage records.
 * A forced preference that cannot be honoured is an error naming the backend and the cause.
 *
 * On wasm the project's own gradient kernels (./wasm-kernels.ts), faster forward kernels
 * (./wasm-fast-kernels.ts), SIMD kernels (./simd-kernels.ts) and, on every backend, faster
 * gradients (./gradients.ts) are registered
 * before the backend is used: wasm 4.22 cannot train convs without them. On wasm and cpu the tape
 * saves tensors for backprop without a kernel call each (./tape-saves.ts).
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { registerWasmFastKernels } from './wasm-fast-kernels.js';
import { registerWasmSimdKernels } from './simd-kernels.js';
import { registerFastGradients } from './gradients.js';
import { installLeanTapeSaves } from './tape-saves.js';

export type Tf = typeof TfNamespace;
export const backendNames = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof backendNames)[number];
export type BackendPreference = 'auto' | BackendName;

export interface BackendSelection {
  /** The backend in use: one of `backendNames`. */
  name: BackendName;
  /** tfjs's own name for it (`tensorflow` for both native packages, `wasm`, `cpu`). */
  tfBackend: string;
  tf: Tf;
  /** Why each better candidate was skipped, in the order tried; empty when the first one worked. */
  reasons: string[];
  /** Short human line for logs: "backend wasm (SIMD, 1 thread); skipped: ...". */
  summary: string;
}

let selected: BackendSelection | undefined;
let pending: Promise<BackendSelection> | undefined;

/**
 * Chooses and initialises the compute backend. Idempotent per process: later calls return the
 * first selection, and a later call with a different forced preference is an error (the tf engine
 * is process-global, so silently switching would change numerics under other modules' feet).
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendSelection> {
  if (pending !== undefined) {
    const done = await pending;
    if (preference !== 'auto' && preference !== done.name) {
      throw new Error(`compute backend already initialised as '${done.name}'; cannot switch to '${preference}' in the same process`);
    }
    return done;
  }
  pending = select(preference);
  try {
    selected = await pending;
    return selected;
  } catch (err) {
    pending = undefined;
    throw err;
  }
}

/** The tf namespace of the selected backend. Throws if `initBackend()` has not completed. */
export function getTf(): Tf {
  if (!selected) throw new Error('TensorFlow.js not initialised: call `await initBackend()` (pipeline/backend/select.ts) before getTf()');
  return selected.tf;
}

/** The current selection (for stage records), or undefined before `initBackend()`. */
export function currentBackend(): BackendSelection | undefined {
  return selected;
}

async function select(preference: BackendPreference): Promise<BackendSelection> {
  if (preference !== 'auto' && !backendNames.includes(preference)) {
    throw new Error(`unknown compute backend '${String(preference)}': expected auto, ${backendNames.join(', ')}`);
  }
  const order: BackendName[] = preference === 'auto' ? [...backendNames] : [preference];
  const reasons: string[] = [];
  for (const name of order) {
    try {
      const { tf, detail } = await tryBackend(name);
      const skipped = reasons.length ? `; skipped: ${reasons.join('; ')}` : '';
      return { name, tfBackend: tf.getBackend(), tf, reasons, summary: `backend ${name}${detail ? ` (${detail})` : ''}${skipped}` };
    } catch (err) {
      const cause = err instanceof Error ? err.message.split('\n')[0] : String(err);
      if (preference !== 'auto') throw new Error(`compute backend '${name}' was requested but cannot be used: ${cause}`, { cause: err });
      reasons.push(`${name}: ${cause}`);
    }
  }
  // cpu is pure JS and always loads, so this is only reachable if tfjs itself is broken.
  throw new Error(`no compute backend could be initialised: ${reasons.join('; ')}`);
}

async function tryBackend(name: BackendName): Promise<{ tf: Tf; detail: string }> {
  switch (name) {
    case 'tensorflow-gpu':
      return { tf: await loadNative('@tensorflow/tfjs-node-gpu'), detail: 'libtensorflow GPU' };
    case 'tensorflow':
      return { tf: await loadNative('@tensorflow/tfjs-node'), detail: 'libtensorflow CPU' };
    case 'wasm': {
      const tf = await loadPlainTf();
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // In Node the package resolves its .wasm files next to its own bundle; pointing at the dist
      // directory explicitly keeps that true under bundlers and odd working directories.
      const require = createRequire(import.meta.url);
      const distDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
      wasm.setWasmPaths(distDir + path.sep);
      registerWasmTrainingKernels(tf);
      registerWasmFastKernels(tf);
      registerWasmSimdKernels(tf);
      registerFastGradients(tf);
      await useBackend(tf, 'wasm');
      installLeanTapeSaves(tf);
      const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
      return { tf, detail: `${simd ? 'SIMD' : 'no SIMD'}, ${wasm.getThreadsCount()} thread(s)` };
    }
    case 'cpu': {
      const tf = await loadPlainTf();
      registerFastGradients(tf);
      await useBackend(tf, 'cpu');
      installLeanTapeSaves(tf);
      return { tf, detail: 'pure JavaScript' };
    }
  }
}

/** Native packages register the 'tensorflow' backend on import and re-export the whole tf API. */
async function loadNative(pkg: string): Promise<Tf> {
  let mod: { default?: Tf } & Partial<Tf>;
  try {
    // A variable specifier: these packages are optional and absent at type-check time.
    mod = (await import(pkg)) as typeof mod;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new Error(`${pkg} is not installed`);
    throw new Error(`${pkg} failed to load: ${(err as Error).message}`);
  }
  const tf = (mod.setBackend ? mod : mod.default) as Tf | undefined;
  if (!tf?.setBackend) throw new Error(`${pkg} did not export the tf namespace`);
  registerFastGradients(tf);
  await useBackend(tf, 'tensorflow');
  return tf;
}

async function loadPlainTf(): Promise<Tf> {
  const mod = (await import('@tensorflow/tfjs')) as Partial<Tf> & { default?: Tf };
  // The package is CommonJS: under ESM its namespace may sit behind `default`.
  const tf = (typeof mod.setBackend === 'function' ? mod : mod.default) as Tf;
  // The cpu backend prints a "install tfjs-node" banner on first use in Node; the selection
  // summary already says which backend runs and why, so keep logs clean.
  tf.env().set('PROD', true);
  return tf;
}

/** `setBackend` resolves false (rather than throwing) when initialisation fails: check it. */
async function useBackend(tf: Tf, tfName: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(tfName);
  } catch (err) {
    throw new Error(`tf.setBackend('${tfName}') threw: ${(err as Error).message}`);
  }
  if (!ok) throw new Error(`tf.setBackend('${tfName}') resolved false (backend failed to initialise)`);
  await tf.ready();
  if (tf.getBackend() !== tfName) throw new Error(`tf.getBackend() is '${tf.getBackend()}' after setBackend('${tfName}')`);
}
