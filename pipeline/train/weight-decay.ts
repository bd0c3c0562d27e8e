/**
 * Which variables get the L2 weight decay. The official TF1 code adds wd * sum(||v||^2)/2 over every
 * trainable variable whose name lacks `batch_normalization` (https://github.com/tensorflow/tpu/blob/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet/resnet_main.py,
 * resnet_model_fn; unlike many PyTorch recipes, which exempt every bias): conv kernels, SE conv
 * kernels and biases, the classifier's kernel and bias; BN gamma/beta excluded. tf.layers names are
 * not stable enough to match on, so the selection goes by owning layer class instead.
 */
import type * as tfTypes from '@tensorflow/tfjs';
type Tf = typeof tfTypes;

export interface DecaySelection {
  decayed: tfTypes.LayerVariable[];
  excluded: tfTypes.LayerVariable[];
}

export function selectDecayedWeights(model: tfTypes.LayersModel): DecaySelection {
  const decayed: tfTypes.LayerVariable[] = [];
  const excluded: tfTypes.LayerVariable[] = [];
  for (const layer of model.layers) {
    const isNorm = /Normalization$/.test(layer.getClassName());
    for (const w of layer.trainableWeights) (isNorm ? excluded : decayed).push(w);
  }
  return { decayed, excluded };
}

/** wd/2 * sum ||v||^2 over the decayed variables (TF's tf.nn.l2_loss convention). */
export function l2Penalty(tf: Tf, vars: tfTypes.LayerVariable[], wd: number): tfTypes.Scalar {
  return tf.tidy(() => {
    if (wd === 0 || vars.length === 0) return tf.scalar(0);
    const terms = vars.map((v) => tf.sum(tf.square(v.read())));
    return tf.addN(terms).mul(wd / 2) as tfTypes.Scalar;
  });
}
