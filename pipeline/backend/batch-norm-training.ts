/**
 * Training-mode batch normalization as one op on the wasm backend.
 *
 * Why: tf.layers' BatchNormalization computes training-mode BN as tf.moments (Mean, Sub, Square,
 * Mean) followed by FusedBatchNorm, and autodiff of that chain runs about fifteen full-size passes
 * backwards (each op's gradient, the broadcasts and the gradient accumulation), plus it keeps
 * x - mean alive for the Square gradient. The statistics-aware gradient needs two passes:
 * dx = γ·r·(dy - mean(dy) - x̂·mean(dy·x̂)). Here one custom-gradient op runs the SIMD kernels
 * `SelftrainBatchNormTrain` (moments + normalise: 3 passes) and `SelftrainBatchNormTrainGrad`
 * (sums + dx: 2 passes) from simd-kernels.ts.
 *
 * How it plugs in: `useFastTrainingBatchNorm(layer)` swaps the `call` of one tf.layers
 * BatchNormalization instance. The layer, its weights, its config and its saved form are unchanged
 * (a saved model loads back as a stock BatchNormalization); only a training-mode call on wasm with
 * a supported input takes the fast path, and it updates the moving statistics with the same
 * formula as tf.layers. Inference, other backends, and inputs the kernels do not handle
 * (channels not a multiple of 4, axis not last, no γ/β) run the stock code.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import { ptr, replaceOnHeap, wasmHeapBackend } from './simd-kernels.js';

type Tf = typeof TfNamespace;
type Layer = TfNamespace.layers.Layer;
interface LayerVariable {
  read(): Tensor;
  write(value: Tensor): void;
}
/** The private state of tf.layers' BatchNormalization that the fast call reads. */
interface BatchNormInternals {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma?: LayerVariable;
  beta?: LayerVariable;
  movingMean: LayerVariable;
  movingVariance: LayerVariable;
}

let enabled = true;

/** For benchmarks only (bench/step-profile.ts --baseline): every layer takes the stock path. */
export function setFastTrainingBatchNorm(on: boolean): void {
  enabled = on;
}

/** Makes `layer` (a tf.layers BatchNormalization) use the fused op in training on wasm. */
export function useFastTrainingBatchNorm<L extends Layer>(tf: Tf, layer: L): L {
  const stockCall = layer.call.bind(layer);
  const bn = layer as unknown as BatchNormInternals;
  layer.call = (inputs, kwargs) => {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (!x || kwargs['training'] !== true || !fastPathApplies(tf, bn, x)) return stockCall(inputs, kwargs);
    return tf.tidy(() => {
      const { y, mean, variance } = batchNormTraining(tf, x, bn.gamma!.read(), bn.beta!.read(), bn.epsilon); // fastPathApplies checked gamma and beta
      updateMovingStatistic(tf, bn.movingMean.read() as TfNamespace.Variable, mean, bn.momentum);
      updateMovingStatistic(tf, bn.movingVariance.read() as TfNamespace.Variable, variance, bn.momentum);
      return y;
    });
  };
  return layer;
}

/**
 * tf.layers' moving-average update, moving -= (moving - batch) · (1 - momentum), with the bits of its
 * three float32 tf ops (sub, mul by the float32 scalar, sub) but as one loop on the wasm heap: as tf
 * ops it is six kernel calls per layer, each recorded on the tape of the training step. (The
 * subtraction and product of float32 values rounded once from double are the float32 results.) wasm only.
 */
export function updateMovingStatistic(tf: Tf, moving: TfNamespace.Variable, batch: Tensor, momentum: number): void {
  // Called from the fast path only, which runs on wasm with float32 [C] statistics.
  const backend = wasmHeapBackend(tf);
  if (!backend) throw new Error('updateMovingStatistic: the wasm backend with a reachable heap is required');
  const c = Math.fround(1 - momentum);
  const n = moving.size;
  replaceOnHeap(tf, backend, moving, (out) => {
    // Views after the allocation: growing the heap replaces its buffer.
    const heap = backend.wasm.asm.memory.buffer;
    const m = new Float32Array(heap, ptr(backend, moving), n);
    const b = new Float32Array(heap, ptr(backend, batch), n);
    const r = new Float32Array(heap, out, n);
    for (let i = 0; i < n; i++) r[i] = m[i]! - Math.fround(Math.fround(m[i]! - b[i]!) * c);
  });
}

function fastPathApplies(tf: Tf, bn: BatchNormInternals, x: Tensor): boolean {
  const c = x.shape[x.rank - 1] ?? 0;
  return (
    enabled &&
    tf.getBackend() === 'wasm' &&
    x.dtype === 'float32' &&
    x.rank >= 2 &&
    (bn.axis === -1 || bn.axis === x.rank - 1) &&
    bn.gamma !== undefined &&
    bn.beta !== undefined &&
    c > 0 &&
    c % 4 === 0 &&
    x.size > 0
  );
}

/**
 * y = (x - mean)·γ·rsqrt(variance + ε) + β with the batch statistics over all axes but the last,
 * differentiable in x, γ and β (the statistics' dependence on x included). Also returns the
 * statistics (not differentiable: tf.layers only feeds them to the moving averages). wasm only.
 */
export function batchNormTraining(tf: Tf, x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): { y: Tensor; mean: Tensor; variance: Tensor } {
  let stats: Tensor[] = [];
  const attrs = { varianceEpsilon: epsilon };
  const op = tf.customGrad((...args: unknown[]) => {
    const [xi, g, b, save] = args as [Tensor, Tensor, Tensor, (ts: Tensor[]) => void];
    const [y, mean, variance] = tf.engine().runKernel('SelftrainBatchNormTrain', { x: xi, scale: g, offset: b }, attrs) as [Tensor, Tensor, Tensor];
    // The op runs inside a tidy: keep the statistics for the caller (who disposes them).
    stats = [tf.keep(mean), tf.keep(variance)];
    save([xi, mean, variance, g]);
    return {
      value: y,
      gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
        const [sx, smean, svar, sg] = saved as [Tensor, Tensor, Tensor, Tensor];
        return tf.engine().runKernel('SelftrainBatchNormTrainGrad', { dy: dy as Tensor, x: sx, mean: smean, variance: svar, scale: sg }, attrs) as Tensor[];
      },
    };
  });
  // A named scope: profiles list the op (whose time includes its kernel) as `..__op`, not as an
  // unnamed kernel of its own.
  const y = tf.tidy('BatchNormTraining__op', () => op(x, gamma, beta) as Tensor);
  // Kept tensors outlive every tidy: give the caller's scope its own handles (buffer-sharing clones).
  const [mean, variance] = stats.map((t) => tf.clone(t)) as [Tensor, Tensor];
  tf.dispose(stats);
  return { y, mean, variance };
}
