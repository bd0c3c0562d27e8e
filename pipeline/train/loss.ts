/**
 * Cross-entropy losses: labels smoothed as TF's softmax_cross_entropy (`(1-eps) onehot + eps/K`, used by
 * resnet_main.py of the released code), soft targets for
 * pseudo-labels (Noisy Student: CE against the teacher's distribution, no smoothing).
 */
import type * as tfTypes from '@tensorflow/tfjs';
type Tf = typeof tfTypes;

/** Smoothed one-hot targets [B, K] from integer labels. */
export function smoothLabels(tf: Tf, labels: tfTypes.Tensor1D, numClasses: number, eps: number): tfTypes.Tensor2D {
  return tf.tidy(() => {
    const onehot = tf.oneHot(labels.toInt(), numClasses).toFloat();
    return onehot.mul(1 - eps).add(eps / numClasses) as tfTypes.Tensor2D;
  });
}

/** Mean over the batch of -sum_k target_k log softmax(logits)_k. */
export function softCrossEntropy(tf: Tf, logits: tfTypes.Tensor2D, targets: tfTypes.Tensor2D): tfTypes.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(targets.mul(tf.logSoftmax(logits)), -1))) as tfTypes.Scalar);
}

/**
 * Noisy Student's joint loss for one step whose logits hold B labeled rows then rB pseudo-labeled
 * rows: CE(labeled, smoothed targets) + r * CE(pseudo, teacher targets), each a mean over its part
 * (= (B*L_lab + rB*L_unl)/B, N main.py).
 */
export function studentLoss(
  tf: Tf,
  logits: tfTypes.Tensor2D,
  labeledTargets: tfTypes.Tensor2D,
  pseudoTargets: tfTypes.Tensor2D | undefined,
  ratio: number,
): tfTypes.Scalar {
  return tf.tidy(() => {
    const b = labeledTargets.shape[0];
    const k = logits.shape[1];
    if (!pseudoTargets) return softCrossEntropy(tf, logits, labeledTargets);
    const lab = softCrossEntropy(tf, logits.slice([0, 0], [b, k]), labeledTargets);
    const unl = softCrossEntropy(tf, logits.slice([b, 0], [pseudoTargets.shape[0], k]), pseudoTargets);
    return lab.add(unl.mul(ratio)) as tfTypes.Scalar;
  });
}
