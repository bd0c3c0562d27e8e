/**
 * Exponential moving average of every model weight, trainable or not (so BN moving mean/variance are
 * averaged too, as the TF1 code's `get_ema_vars` does; with bn_momentum 0 the raw moving stats are the
 * last batch's and only the EMA makes them usable). Decay follows
 * `tf.train.ExponentialMovingAverage(decay, num_updates=global_step)`: min(decay, (1+t)/(10+t)).
 */
import type * as tfTypes from '@tensorflow/tfjs';
type Tf = typeof tfTypes;

let counter = 0;
const uniqueSuffix = () => `${process.pid}-${++counter}`;

export function emaDecay(decay: number, step: number, warmup = true): number {
  return warmup ? Math.min(decay, (1 + step) / (10 + step)) : decay;
}

export class WeightEma {
  readonly shadows: tfTypes.Variable[];

  constructor(
    private readonly tf: Tf,
    private readonly weights: tfTypes.LayerVariable[],
    readonly decay: number,
    readonly warmup: boolean,
  ) {
    // Shadows start as a copy of the initial weights (TF's EMA initialises from the variable's value).
    // (tidy: the temporary clones go, the variables stay.)
    this.shadows = tf.tidy(() => weights.map((w) => tf.variable(w.read().clone(), false, `ema/${w.name}/${uniqueSuffix()}`)));
  }

  /** One EMA update after the optimizer step `step` (the TF global step before increment). */
  update(step: number): void {
    const d = emaDecay(this.decay, step, this.warmup);
    const tf = this.tf;
    tf.tidy(() => {
      this.weights.forEach((w, i) => {
        const s = this.shadows[i]!;
        // shadow -= (1 - d) * (shadow - value): TF's assign_moving_average form.
        s.assign(s.sub(s.sub(w.read()).mul(1 - d)));
      });
    });
  }

  /** Current shadow values (owned by the caller: dispose them). */
  values(): tfTypes.Tensor[] {
    return this.shadows.map((s) => s.clone());
  }

  load(values: tfTypes.Tensor[]): void {
    values.forEach((v, i) => this.shadows[i]!.assign(v));
  }

  dispose(): void {
    for (const s of this.shadows) s.dispose();
  }
}
