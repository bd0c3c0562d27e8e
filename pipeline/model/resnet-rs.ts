/**
 * Builds a ResNet-RS as a functional tf.layers model (`tf.model`), so it saves and loads in the
 * standard tfjs format (model.json + weights). The network itself is described once in
 * architecture.ts; this file maps each abstract op to stock tf.layers (plus the two registered
 * noise layers from layers.ts).
 *
 * Choices, with their reasons:
 * - Input NHWC float32 of the configured size, already normalised by the data pipeline; output
 *   logits (no softmax) so the loss can use label smoothing / soft targets stably.
 * - Stride-2 convs: ZeroPadding2D(floor/ceil of k−1) + VALID conv, as the official `fixed_padding`
 *   (independent of input size, unlike SAME with stride 2 on even inputs).
 * - Conv init: variance scaling, scale 1, fan-in, truncated normal (TF `variance_scaling_initializer()`
 *   defaults, as
 *   https://github.com/tensorflow/tpu/blob/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet/resnet_model.py);
 *   FC init normal(0, 0.01), zero bias (same file). No conv biases except in SE.
 * - BN: ε = 1e-5 (`EPSILON`, same file); momentum from the arch (released configs use 0 with an EMA over the BN
 *   statistics — the train stage owns that EMA). Stock tf.layers BatchNormalization, whose
 *   training-mode call runs as one fused op on wasm (backend/batch-norm-training.ts).
 * - SE from stock layers: GlobalAveragePooling2D → Reshape [1,1,C] → Conv2D 1x1 (ReLU, bias) →
 *   Conv2D 1x1 (sigmoid, bias) → Multiply (broadcast over H, W).
 * - Stochastic depth: the official per-stage schedule (0.4/0.6/0.8/1.0 × rate, family.ts), not
 *   timm's per-block linear rule; a layer is only inserted where the rate is > 0. Dropout before
 *   the classifier likewise only when > 0. Both draw masks from the seedable generator in noise.ts.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { getTf } from '../backend/select.js';
import { useFastTrainingBatchNorm } from '../backend/batch-norm-training.js';
import { walkResNetRS, type ArchOps } from './architecture.js';
import { resolveModel, type ModelChoice, type ResNetRSArch } from './family.js';
import { registerModelLayers } from './layers.js';

type SymbolicTensor = TfNamespace.SymbolicTensor;
export type LayersModel = TfNamespace.LayersModel;

/** Key under which the architecture is stored in the model's user-defined metadata. */
export const ARCH_METADATA_KEY = 'resnetRS';

export function buildResNetRS(arch: ResNetRSArch, opts: { name?: string } = {}): LayersModel {
  const tf = getTf();
  const { StochasticDepth, SeededDropout } = registerModelLayers(tf);
  const L = tf.layers;
  const convInit = () => tf.initializers.varianceScaling({ scale: 1, mode: 'fanIn', distribution: 'truncatedNormal' });
  const one = (x: SymbolicTensor | SymbolicTensor[] | TfNamespace.Tensor | TfNamespace.Tensor[]) => x as SymbolicTensor;

  const ops: ArchOps<SymbolicTensor> = {
    input: (name) => tf.input({ shape: [arch.imageSize, arch.imageSize, arch.inputChannels], name, dtype: 'float32' }),
    conv: (x, s) => {
      let y = x;
      let padding: 'same' | 'valid' = 'same';
      if (s.stride > 1) {
        const total = s.kernel - 1;
        const before = Math.floor(total / 2);
        const after = total - before;
        if (total > 0) {
          y = one(L.zeroPadding2d({ padding: [[before, after], [before, after]], name: `${s.name}_pad` }).apply(y));
        }
        padding = 'valid';
      }
      return one(
        L.conv2d({
          filters: s.filters,
          kernelSize: s.kernel,
          strides: s.stride,
          padding,
          useBias: s.useBias ?? false,
          kernelInitializer: convInit(),
          name: s.name,
        }).apply(y),
      );
    },
    bn: (x, name, zeroGamma) =>
      one(
        useFastTrainingBatchNorm(
          tf,
          L.batchNormalization({
            axis: -1,
            momentum: arch.bnMomentum,
            epsilon: arch.bnEpsilon,
            gammaInitializer: zeroGamma ? 'zeros' : 'ones',
            name,
          }),
        ).apply(x),
      ),
    relu: (x, name) => one(L.activation({ activation: 'relu', name }).apply(x)),
    avgPool2: (x, name) => one(L.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same', name }).apply(x)),
    se: (x, name, reduced) => {
      const channels = x.shape[x.shape.length - 1]!;
      let s = one(L.globalAveragePooling2d({ name: `${name}_squeeze` }).apply(x));
      s = one(L.reshape({ targetShape: [1, 1, channels], name: `${name}_reshape` }).apply(s));
      s = one(L.conv2d({ filters: reduced, kernelSize: 1, activation: 'relu', useBias: true, kernelInitializer: convInit(), name: `${name}_reduce` }).apply(s));
      s = one(L.conv2d({ filters: channels, kernelSize: 1, activation: 'sigmoid', useBias: true, kernelInitializer: convInit(), name: `${name}_expand` }).apply(s));
      return one(L.multiply({ name: `${name}_scale` }).apply([x, s]));
    },
    dropPath: (x, name, rate) => (rate > 0 ? one(new StochasticDepth({ rate, name }).apply(x)) : x),
    add: (a, b, name) => one(L.add({ name }).apply([a, b])),
    head: (x, dropoutRate, classes) => {
      let y = one(L.globalAveragePooling2d({ name: 'head_pool' }).apply(x));
      if (dropoutRate > 0) y = one(new SeededDropout({ rate: dropoutRate, name: 'head_dropout' }).apply(y));
      return one(
        L.dense({
          units: classes,
          kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.01 }),
          biasInitializer: 'zeros',
          name: 'logits',
        }).apply(y),
      );
    },
  };

  let inputs: SymbolicTensor | undefined;
  const outputs = walkResNetRS(arch, { ...ops, input: (name) => (inputs = ops.input(name)) });
  if (!inputs) throw new Error('walkResNetRS built no input layer');
  const model = tf.model({ inputs, outputs, name: opts.name ?? modelNameFor(arch) });
  model.setUserDefinedMetadata({ [ARCH_METADATA_KEY]: arch as unknown as Record<string, unknown> });
  return model;
}

/** Builds a family member from a name + overrides (manifest `model` section or CLI flags). */
export function buildModel(choice: ModelChoice): LayersModel {
  return buildResNetRS(resolveModel(choice).arch);
}

/** A tf-safe model name (letters, digits, underscores) describing the architecture. */
export function modelNameFor(arch: ResNetRSArch): string {
  const w = arch.widthMultiplier === 1 ? '' : `_w${String(arch.widthMultiplier).replace('.', 'p')}`;
  return `resnet_rs_${arch.depth}${w}${arch.smallInput ? '_small' : ''}`;
}

/** The architecture recorded in a model built by buildResNetRS (or loaded from one), if any. */
export function archOf(model: LayersModel): ResNetRSArch | undefined {
  const meta = model.getUserDefinedMetadata() as Record<string, unknown> | undefined;
  return meta?.[ARCH_METADATA_KEY] as ResNetRSArch | undefined;
}
