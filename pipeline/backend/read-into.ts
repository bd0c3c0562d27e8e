/**
 * Reads a float32 tensor's values into `out` at `offset` without allocating.
 *
 * `dataSync()` returns a fresh copy: on the wasm backend a slice of the heap, per call. A
 * data-parallel step reads every gradient (1.2M floats for the demo's model) each step in each
 * worker, and those short-lived multi-megabyte buffers kept V8's GC helper threads busy (measured
 * on a 2-worker run: 9 % of the process's CPU, 4 % with this and the in-place reduction). On the
 * wasm backend this copies straight from the heap view (BackendWasm keeps each tensor's heap
 * offset); other backends fall back to `dataSync()`.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { ptr, wasmHeapBackend } from './simd-kernels.js';

type Tf = typeof TfNamespace;

export function readInto(tf: Tf, t: TfNamespace.Tensor, out: Float32Array, offset: number): void {
  out.set(valuesOf(tf, t), offset);
}

/**
 * A float32 tensor's values to read at once: on the wasm backend a view of the heap (no copy; valid
 * until the next allocation may grow the heap), elsewhere `dataSync()`.
 */
export function valuesOf(tf: Tf, t: TfNamespace.Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`valuesOf: ${t.dtype} tensor, expected float32`);
  const backend = wasmHeapBackend(tf);
  // A view over the current heap buffer (the heap may have grown since the last call).
  if (backend) return new Float32Array(backend.wasm.asm.memory.buffer, ptr(backend, t), t.size);
  return t.dataSync() as Float32Array;
}
