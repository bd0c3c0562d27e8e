/**
 * A replica's whole update after its gradients are known — momentum SGD, the averaged BN moving
 * statistics, the EMA of every weight — on the wasm heap: two SIMD kernels per variable
 * (simd/kernels.wat: momentum_sgd, ema_toward) and a copy of the moving statistics. Through tf ops
 * the same update is ~1,500 small kernels per step for the demo's model (7 per trainable variable
 * for SGD, 4 per weight for the EMA, a tensor per variable for the averaged gradients), each with
 * the engine's bookkeeping: measured 20-40 ms per step on these machines, a fixed cost that weighs
 * most where a worker's slice of the batch is small.
 *
 * Same bits as the tf-op path (MomentumSgd.apply, WeightEma.update): the same float32 operations
 * in the same order, no fused multiply-add; the scalars (momentum, learning rate, 1 − decay) become
 * float32 at the call, as tf makes them. test/train/fused-update.test.ts compares the two paths
 * bit for bit.
 *
 * Only the momentum slots are updated in place (see `replaceOnHeap` for why weights are not); tfjs lets
 * tensors share memory (clone, assign, a variable made from a tensor), so a slot is written in place
 * only while nothing else holds its memory, else it first gets a copy of its own.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { ptr, replaceOnHeap, simdKernels, wasmHeapBackend, withScratch, type WasmHeapBackend } from '../backend/simd-kernels.js';
import { emaDecay, type WeightEma } from './ema.js';
import type { MomentumSgd } from './optimizer.js';

type Tf = typeof tfTypes;

interface RefCountingHeapBackend extends WasmHeapBackend {
  refCount(dataId: object): number;
}

/** The wasm backend, whose tensors live on a heap JS can write (undefined elsewhere: use tf ops). */
export function heapBackend(tf: Tf): RefCountingHeapBackend | undefined {
  const b = wasmHeapBackend(tf) as Partial<RefCountingHeapBackend> | undefined;
  return typeof b?.refCount === 'function' ? (b as RefCountingHeapBackend) : undefined;
}

export interface FusedUpdate {
  /** Trainable variables, in the order of the gradients in `flat`. */
  vars: tfTypes.Variable[];
  opt: MomentumSgd;
  /** BN moving statistics, in the order they follow the gradients in `flat`. */
  moving: tfTypes.Variable[];
  /** Every weight (what the EMA shadows), in the EMA's order. */
  weights: tfTypes.Variable[];
  ema?: WeightEma;
}

/**
 * Applies `flat` = [gradients in `vars` order | BN moving statistics | …] with learning rate `lr`,
 * writes the moving statistics when `writeMoving` (the replicas' average), then updates the EMA
 * for optimizer step `emaStep`: what `opt.apply`, the moving-statistics writes and
 * `ema.update(emaStep)` do, with the same bits.
 */
export function applyFusedUpdate(tf: Tf, backend: RefCountingHeapBackend, u: FusedUpdate, flat: Float32Array, lr: number, emaStep: number, writeMoving: boolean): void {
  const { opt, ema } = u;
  for (const slot of opt.slots) ownMemory(tf, backend, slot);
  const k = simdKernels(backend);
  const gradients = u.vars.reduce((n, v) => n + v.size, 0);
  withScratch(backend, gradients * 4, (g) => {
    new Float32Array(backend.wasm.asm.memory.buffer, g, gradients).set(flat.subarray(0, gradients));
    u.vars.forEach((v, i) => {
      replaceOnHeap(tf, backend, v, (out) => k.momentum_sgd(ptr(backend, v), out, ptr(backend, opt.slots[i]!), g, v.size, lr, opt.momentum, opt.nesterov ? 1 : 0));
      g += 4 * v.size;
    });
  });
  if (writeMoving) {
    let offset = gradients;
    for (const v of u.moving) {
      const values = flat.subarray(offset, offset + v.size);
      // The view after the allocation: growing the heap replaces its buffer.
      replaceOnHeap(tf, backend, v, (out) => new Float32Array(backend.wasm.asm.memory.buffer, out, v.size).set(values));
      offset += v.size;
    }
  }
  if (ema) {
    const c = 1 - emaDecay(ema.decay, emaStep, ema.warmup);
    u.weights.forEach((v, i) => {
      const s = ema.shadows[i]!;
      replaceOnHeap(tf, backend, s, (out) => k.ema_toward(ptr(backend, s), out, ptr(backend, v), v.size, c));
    });
  }
}

/** Gives `v` memory of its own when another tensor shares it (a write would change both). */
function ownMemory(tf: Tf, backend: RefCountingHeapBackend, v: tfTypes.Variable): void {
  if (backend.refCount(v.dataId) <= 1) return;
  tf.tidy(() => v.assign(tf.tensor(v.dataSync(), v.shape, 'float32')));
}
