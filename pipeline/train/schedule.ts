/**
 * Learning-rate schedules of the ResNet-RS recipe: peak LR = baseLr x batch/256, linear warm-up from
 * 0, then cosine decay to zero (Bello et al. 2021, "Revisiting ResNets", arXiv 2103.07579 §4.2; the TF2 Model Garden configs, e.g.
 * https://github.com/tensorflow/models/blob/a2e3e88ab5f67e70e1d6b0bb9ea128ca79c826c6/official/vision/beta/configs/experiments/image_classification/imagenet_resnetrs50_i160.yaml) or the TF1 public code's step schedule
 * (x0.1 at given fractions of training: get_lr_schedule in https://github.com/tensorflow/tpu/blob/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet/resnet_main.py). Pure functions of the step so resume is exact.
 */
export interface ScheduleConfig {
  type: 'cosine' | 'step';
  /** Peak learning rate (already scaled by batch/256). */
  peakLr: number;
  totalSteps: number;
  warmupSteps: number;
  /** Step schedule: fractions of totalSteps where the LR is multiplied by `stepFactor`. */
  boundaries: number[];
  stepFactor: number;
}

export function scaledPeakLr(baseLr: number, batchSize: number): number {
  return (baseLr * batchSize) / 256;
}

/** LR used for the update of step `step` (0-based). */
export function learningRate(cfg: ScheduleConfig, step: number): number {
  const { peakLr, totalSteps, warmupSteps } = cfg;
  // Warm-up as in the TF1 code and Model Garden's linear warmup: lr * step / warmup_steps.
  if (step < warmupSteps) return (peakLr * step) / warmupSteps;
  if (cfg.type === 'step') {
    let lr = peakLr;
    for (const b of cfg.boundaries) if (step >= b * totalSteps) lr *= cfg.stepFactor;
    return lr;
  }
  // Model Garden's CosineDecay runs over all train steps (the warm-up wrapper only overrides the
  // first warmupSteps), so the cosine argument is step/totalSteps, reaching 0 at the last step.
  const t = Math.min(step, totalSteps) / totalSteps;
  return 0.5 * peakLr * (1 + Math.cos(Math.PI * t));
}
