/**
 * SGD with momentum in TF's formulation (tf.compat.v1.train.MomentumOptimizer):
 *   accum = momentum * accum + grad
 *   var  -= lr * accum                              (plain)
 *   var  -= lr * (grad + momentum * accum)          (Nesterov, use_nesterov=True in the TF1 code)
 * Written here rather than using tf.train.momentum so the learning rate can change every step
 * without re-creating constants, and the slots are plain named tensors for checkpoints.
 */
import type * as tfTypes from '@tensorflow/tfjs';
type Tf = typeof tfTypes;

let counter = 0;

export class MomentumSgd {
  readonly slots: tfTypes.Variable[];

  constructor(
    private readonly tf: Tf,
    private readonly vars: tfTypes.Variable[],
    readonly momentum: number,
    readonly nesterov: boolean,
  ) {
    this.slots = tf.tidy(() => vars.map((v) => tf.variable(tf.zerosLike(v), false, `${v.name}/momentum/${process.pid}-${++counter}`)));
  }

  apply(grads: tfTypes.Tensor[], lr: number): void {
    const tf = this.tf;
    const m = this.momentum;
    tf.tidy(() => {
      this.vars.forEach((v, i) => {
        const g = grads[i]!;
        const acc = this.slots[i]!;
        const next = acc.mul(m).add(g);
        acc.assign(next);
        const update = this.nesterov ? g.add(next.mul(m)) : next;
        v.assign(v.sub(update.mul(lr)));
      });
    });
  }

  load(values: tfTypes.Tensor[]): void {
    values.forEach((v, i) => this.slots[i]!.assign(v));
  }

  dispose(): void {
    for (const s of this.slots) s.dispose();
  }
}
