/**
 * Faster gradient functions for ops a ResNet trains through, registered over tfjs's defaults.
 *
 * Why: profiling a conv-BN-relu training step on wasm showed the batch-norm gradient dominating,
 * mostly a `Tile` that tfjs's FusedBatchNorm gradient uses to broadcast rsqrt(variance) to the full
 * activation shape (plain broadcasting does the same), plus about a dozen full-size passes where
 * five suffice; the Sum/Mean gradients (moments, pooling) also broadcast through a full-size
 * ones(). The replacements compute the same mathematics with broadcasting and shared reductions;
 * they are registered once for every backend and checked against autodiff of the unfused formulas
 * in test/backend/gradients.test.ts.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { NamedAttrMap, Tensor } from '@tensorflow/tfjs';

type Tf = typeof TfNamespace;

let registered = false;

const defaults: ReturnType<Tf['getGradient']>[] = [];

/**
 * For benchmarks only (bench/step-profile.ts measures before/after): restores tfjs's own
 * gradients for the ops replaced here.
 */
export function restoreDefaultGradients(tf: Tf, kernels?: readonly string[]): void {
  for (const config of defaults) if (config && (!kernels || kernels.includes(config.kernelName))) tf.registerGradient(config);
  registered = false;
}

export function registerFastGradients(tf: Tf): void {
  if (registered) return;
  registered = true;
  if (!defaults.length) defaults.push(tf.getGradient('FusedBatchNorm'), tf.getGradient('Mean'), tf.getGradient('Sum'), tf.getGradient('Relu'));
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => fusedBatchNormGrad(tf, dy as Tensor, saved, attrs),
  });
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => reduceGrad(tf, dy as Tensor, saved, attrs, true),
  });
  tf.registerGradient({
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => reduceGrad(tf, dy as Tensor, saved, attrs, false),
  });
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => reluGrad(tf, dy as Tensor, saved),
  });
}

/**
 * dx = dy · step(x), as tfjs's own ReLU gradient. On wasm one SIMD pass (simd-kernels.ts) instead
 * of Step then Multiply; elsewhere tfjs's formula.
 */
function reluGrad(tf: Tf, dy: Tensor, saved: Tensor[]) {
  const [x] = saved;
  if (!x) throw new Error('Relu gradient: tfjs saved no input x');
  return {
    x: () =>
      tf.getBackend() === 'wasm' && x.dtype === 'float32' && dy.dtype === 'float32'
        ? (tf.engine().runKernel('SelftrainReluGrad', { dy, x }) as Tensor)
        : tf.mul(dy, tf.cast(tf.step(x), 'float32')),
  };
}

/**
 * y = (x - mean) · rsqrt(variance + ε) · scale + offset, with mean/variance/scale/offset broadcast
 * against x (per-channel [C] in practice). With r = rsqrt(variance + ε) and sums over the
 * broadcast axes:
 *   dx = dy·scale·r          dmean = -Σdy·scale·r           dvariance = -½·r³·scale·Σ(dy·(x-mean))
 *   dscale = r·Σ(dy·(x-mean))   doffset = Σdy
 */
function fusedBatchNormGrad(tf: Tf, dy: Tensor, saved: Tensor[], attrs: NamedAttrMap) {
  const [x, mean, variance, scaleSaved] = saved;
  if (!x || !mean || !variance) throw new Error(`FusedBatchNorm gradient: tfjs saved ${saved.length} tensors, not x, mean, variance`);
  const eps = attrs.varianceEpsilon as number;
  const scale = scaleSaved ?? tf.scalar(1);
  // Sum of a full-size tensor down to `shape` (the broadcast operand's shape).
  const reduceTo = (t: Tensor, shape: number[]) => {
    const axes = tf.backend_util.getReductionAxes(shape, t.shape);
    return tf.reshape(axes.length ? tf.sum(t, axes) : t, shape);
  };
  // The shared parts are computed here, not in the per-input closures: the tape runs each closure
  // in its own tidy(), so a tensor memoised by one closure would be disposed before the next used
  // it. Only per-channel results survive this tidy; the full-size temporaries are freed at once.
  const [r, scaleR, sumDy, sumDyXmu] = tf.tidy(() => {
    const r = tf.rsqrt(tf.add(variance, tf.scalar(eps)));
    return [r, tf.mul(scale, r), reduceTo(dy, mean.shape), reduceTo(tf.mul(dy, tf.sub(x, mean)), mean.shape)];
  });
  return {
    x: () => tf.mul(dy, scaleR),
    mean: () => tf.reshape(tf.neg(tf.mul(sumDy, scaleR)), mean.shape),
    variance: () => tf.reshape(tf.mul(tf.mul(tf.mul(tf.pow(r, tf.scalar(3)), tf.scalar(-0.5)), scale), sumDyXmu), variance.shape),
    // scale may be shaped differently from mean (e.g. [C] vs [1,1,1,C]): same size means a reshape.
    scale: () =>
      tf.util.sizeFromShape(scale.shape) === tf.util.sizeFromShape(mean.shape)
        ? tf.reshape(tf.mul(sumDyXmu, r), scale.shape)
        : reduceTo(tf.mul(tf.mul(dy, tf.sub(x, mean)), r), scale.shape),
    // offset is not saved (tfjs's own gradient assumes it has mean's shape, as do we). A new
    // tensor object each time: the tape disposes gradients it accumulates.
    offset: () => tf.reshape(sumDy, mean.shape),
  };
}

/**
 * sum/mean over `axis`: dx = dy (÷ n for mean) broadcast back to x's shape. tfjs's defaults
 * multiply by a full-size ones() (and for mean divide at full size). On wasm, whose Tile the
 * project replaced with a memcpy-speed one (wasm-fast-kernels.ts), broadcasting is one pass;
 * elsewhere a multiply by ones stays the cheaper broadcast (the cpu Tile indexes per element).
 */
function reduceGrad(tf: Tf, dy: Tensor, saved: Tensor[], attrs: NamedAttrMap, mean: boolean) {
  const [x] = saved;
  if (!x) throw new Error(`${mean ? 'Mean' : 'Sum'} gradient: tfjs saved no input x`);
  const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
  const expanded = x.shape.slice();
  let n = 1;
  for (const a of axes) {
    n *= x.shape[a]!; // parseAxisParam checked every axis against x's rank
    expanded[a] = 1;
  }
  return {
    x: () => {
      const small = tf.reshape(mean ? tf.div(dy, tf.scalar(n)) : dy, expanded);
      return tf.getBackend() === 'wasm' ? tf.broadcastTo(small, x.shape) : tf.mul(small, tf.ones(x.shape, 'float32'));
    },
  };
}
