/**
 * Random weights that make every part of a ResNet-RS count, for parity tests against another
 * implementation: kernels ~ N(0, 1/fan-in) (activations stay O(1) through deep stacks), BN γ and
 * moving variance in [0.5, 1.5] (also the zero-initialised last γ of each block, so SE and the
 * residual branches matter), other vectors ~ N(0, 0.1). Seeded: the same seed gives the same model.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { getTf } from '../../pipeline/backend/select.js';

export interface RandomWeightOptions {
  /**
   * γ range of each block's last BN (`*_bn3`, zero-initialised in training). Default [0.5, 1.5]
   * like every BN; a small range keeps the network near the identity and its gradients well
   * conditioned (with γ ~ 1 they grow through the blocks until float32 rounding alone moves them
   * by percents), which gradient comparisons need.
   */
  residualGamma?: [number, number];
}

export function randomizeWeights(model: TfNamespace.LayersModel, seed = 100, o: RandomWeightOptions = {}): void {
  const tf = getTf();
  let s = seed;
  for (const layer of model.layers) {
    const ws = layer.weights;
    if (!ws.length) continue;
    const values = ws.map((w, i) => {
      const shape = w.shape as number[];
      const bn = layer.getClassName() === 'BatchNormalization';
      if (bn && i === 0 && o.residualGamma && layer.name.endsWith('_bn3')) return tf.randomUniform(shape, o.residualGamma[0], o.residualGamma[1], 'float32', s++);
      if (bn && (i === 0 || i === 3)) return tf.randomUniform(shape, 0.5, 1.5, 'float32', s++);
      const fanIn = shape.length >= 2 ? shape.slice(0, -1).reduce((a, b) => a * b, 1) : 100;
      return tf.randomNormal(shape, 0, 1 / Math.sqrt(fanIn), 'float32', s++);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}
