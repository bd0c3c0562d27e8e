/**
 * Random weights that make every part of a ResNet-RS count, for parity tests against another
 * implementation: kernels ~ N(0, 1/fan-in) (activations stay O(1) through deep stacks), BN γ and
 * moving variance in [0.5, 1.5] (also the zero-initialised last γ of each block, so SE and the
 * residual branches matter), other vectors ~ N(0, 0.1). Seeded: the same seed gives the same model.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { getTf } from '../../pipeline/backend/select.js';

export function randomizeWeights(model: TfNamespace.LayersModel, seed = 100): void {
  const tf = getTf();
  let s = seed;
  for (const layer of model.layers) {
    const ws = layer.weights;
    if (!ws.length) continue;
    const values = ws.map((w, i) => {
      const shape = w.shape as number[];
      const positive = layer.getClassName() === 'BatchNormalization' && (i === 0 || i === 3);
      if (positive) return tf.randomUniform(shape, 0.5, 1.5, 'float32', s++);
      const fanIn = shape.length >= 2 ? shape.slice(0, -1).reduce((a, b) => a * b, 1) : 100;
      return tf.randomNormal(shape, 0, 1 / Math.sqrt(fanIn), 'float32', s++);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}
