/**
 * Makes tfjs-backend-wasm's threaded-SIMD build (XNNPACK with a pthread pool) start in Node, which
 * upstream switches off (tensorflow/tfjs#3830: the pthread workers are created from a Blob URL and
 * load the Emscripten glue from a Blob, neither of which Node's worker_threads can open). While the
 * backend starts:
 *   - the WASM_HAS_MULTITHREAD_SUPPORT flag is forced on (upstream answers false for Node);
 *   - URL.createObjectURL hands out file paths instead of blob: URLs: the pthread worker script (the
 *     package's own `wasm-out/*.worker.js` contents, written to a temporary .cjs file) and, inside
 *     that worker, a one-line script that requires the package's threaded-SIMD glue;
 *   - os.cpus() reports 2 x threads CPUs: backend.cc caps the pool at
 *     emscripten_num_logical_cores() / 2 (it assumes two hyper-threads per core), read once at start.
 * A measurement prototype (bench/parallel/compare.ts); not used by the pipeline.
 */
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import type * as TfNamespace from '@tensorflow/tfjs';

/** Call before `initBackend('wasm')`; call the returned function after it. */
export async function prepareThreadedWasm(tf: typeof TfNamespace, threads: number): Promise<() => void> {
  const require = createRequire(import.meta.url);
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm');
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  const out = path.join(dist, '..', 'wasm-out');
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-wasm-threads-'));
  const glue = path.join(dir, 'glue.js');
  writeFileSync(glue, `var WasmBackendModuleThreadedSimd = require(${JSON.stringify(path.join(out, 'tfjs-backend-wasm-threaded-simd.js'))});\n`);
  const { wasmWorkerContents } = require(path.join(out, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const worker = path.join(dir, 'worker.cjs');
  // The contents hold "\n" escapes that the template literal turned into newlines inside strings.
  writeFileSync(worker, `URL.createObjectURL = () => ${JSON.stringify(glue)}; URL.revokeObjectURL = () => {};\n${wasmWorkerContents.replace(/\n/g, '\\n')}`);
  wasm.setThreadsCount(threads);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  const cpus = os.cpus;
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus()[i % cpus().length]!);
  const original = URL.createObjectURL;
  URL.createObjectURL = ((obj: Blob) => (obj instanceof Blob && obj.type === 'application/javascript' ? worker : original(obj))) as typeof URL.createObjectURL;
  return () => {
    URL.createObjectURL = original;
    os.cpus = cpus;
  };
}
