/**
 * The model's two custom tf.layers classes, registered for serialization so a saved model.json
 * loads back with `tf.loadLayersModel`:
 * - `StochasticDepth`: drop-path on a residual branch (`drop_connect` in
 *   https://github.com/tensorflow/tpu/blob/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet/resnet_layers.py): in training, each sample's
 *   branch is kept with probability 1−rate and scaled by 1/(1−rate), else zeroed; identity at inference.
 * - `SeededDropout`: standard inverted dropout whose masks come from the seedable generator in
 *   noise.ts (tf.layers Dropout with a `seed` repeats one mask forever; see noise.ts).
 * SE is composed from stock layers (resnet-rs.ts), so it needs no custom class.
 *
 * The classes are created per tf namespace (the backend module hands out the single instance via
 * getTf()), and registered once for it: call `registerModelLayers(tf)` before loading a model.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { drawUniforms } from './noise.js';

type Tf = typeof TfNamespace;
type Tensor = TfNamespace.Tensor;
type Shape = TfNamespace.Shape;
// tf.layers' Kwargs type is not re-exported by the tfjs bundle.
// biome-ignore lint/suspicious/noExplicitAny: the same type as tf.layers' Layer.call, which these layers override
type Kwargs = { [key: string]: any };

export interface NoiseLayerArgs {
  rate: number;
  name?: string;
  trainable?: boolean;
}

export interface ModelLayerClasses {
  StochasticDepth: new (args: NoiseLayerArgs) => TfNamespace.layers.Layer;
  SeededDropout: new (args: NoiseLayerArgs) => TfNamespace.layers.Layer;
}

const registered = new WeakMap<object, ModelLayerClasses>();

function checkRate(layer: string, rate: unknown): number {
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new Error(`${layer}: rate must be in [0, 1), got ${String(rate)}`);
  return rate;
}

export function registerModelLayers(tf: Tf): ModelLayerClasses {
  const done = registered.get(tf);
  if (done) return done;

  /**
   * What both noise layers share: a drop rate, identity in inference, shape-preserving, and the
   * rate in the saved config. Subclasses say how a training-mode mask is drawn.
   */
  abstract class NoiseLayer extends tf.layers.Layer {
    readonly rate: number;
    constructor(args: NoiseLayerArgs, name: string) {
      super(args);
      this.rate = checkRate(name, args.rate);
    }
    override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
      return inputShape;
    }
    override call(inputs: Tensor | Tensor[], kwargs: Kwargs): Tensor {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      if (kwargs['training'] !== true || this.rate === 0) return x;
      return tf.tidy(() => this.applyNoise(x));
    }
    protected abstract applyNoise(x: Tensor): Tensor;
    override getConfig(): TfNamespace.serialization.ConfigDict {
      return { ...super.getConfig(), rate: this.rate };
    }
  }

  class StochasticDepth extends NoiseLayer {
    static className = 'StochasticDepth';
    constructor(args: NoiseLayerArgs) {
      super(args, 'StochasticDepth');
    }
    protected applyNoise(x: Tensor): Tensor {
      const keep = 1 - this.rate;
      const batch = x.shape[0]!;
      const u = drawUniforms(batch);
      // floor(keep + u) is 1 with probability `keep` — the official drop_connect formulation.
      const scale = new Float32Array(batch);
      for (let i = 0; i < batch; i++) scale[i] = Math.floor(keep + u[i]!) / keep;
      const maskShape = [batch, ...x.shape.slice(1).map(() => 1)];
      return tf.mul(x, tf.tensor(scale, maskShape, 'float32'));
    }
  }

  class SeededDropout extends NoiseLayer {
    static className = 'SeededDropout';
    constructor(args: NoiseLayerArgs) {
      super(args, 'SeededDropout');
    }
    protected applyNoise(x: Tensor): Tensor {
      const u = drawUniforms(x.size);
      const scale = 1 / (1 - this.rate);
      const mask = new Float32Array(x.size);
      for (let i = 0; i < mask.length; i++) mask[i] = u[i]! >= this.rate ? scale : 0;
      return tf.mul(x, tf.tensor(mask, x.shape));
    }
  }

  tf.serialization.registerClass(StochasticDepth);
  tf.serialization.registerClass(SeededDropout);
  const classes = { StochasticDepth, SeededDropout };
  registered.set(tf, classes);
  return classes;
}
