import { z } from 'zod';
import { RANDAUGMENT_OPS } from '../../train/randaugment.js';

/**
 * The training recipe of Bello et al. 2021, "Revisiting ResNets", arXiv 2103.07579 §4.2: one schema
 * for teacher and student, since the paper trains its student with the supervised hyper-parameters
 * unchanged (§7.3). Defaults are the released configs:
 * https://github.com/tensorflow/tpu/tree/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet/resnet_rs/configs
 * (TF1) and https://github.com/tensorflow/models/blob/a2e3e88ab5f67e70e1d6b0bb9ea128ca79c826c6/official/vision/beta/configs/experiments/image_classification/imagenet_resnetrs50_i160.yaml
 * and its siblings (TF2 Model Garden: cosine schedule, 1,560 warm-up steps).
 * Every ingredient can be switched off or changed so the paper's additive study (Table 1) and
 * weight-decay study (Table 2, §5.2) can be re-run. Dropout and
 * stochastic-depth rates belong to the model section (per-model defaults); RandAugment's magnitude
 * defaults to the model's too.
 */
/** `auto` or a worker count (train.workers, evaluate.workers). */
export const workersSetting = z.union([z.literal('auto'), z.number().int().positive().max(1024)]).default('auto');

const scheduleSection = z
  .strictObject({
    type: z.enum(['cosine', 'step']).default('cosine').describe('cosine: linear warm-up then cosine to 0 (paper, TF2). step: warm-up then x`stepFactor` at `boundaries` (TF1 public code)'),
    warmupEpochs: z.number().nonnegative().default(5).describe('Linear warm-up length in epochs (Model Garden: 1560 steps = 5 epochs)'),
    boundaries: z
      .array(z.number().gt(0).lt(1))
      .default([30 / 90, 60 / 90, 80 / 90])
      .describe('Step schedule: fractions of training where the LR is multiplied by stepFactor (TF1: 30/90, 60/90, 80/90)'),
    stepFactor: z.number().positive().max(1).default(0.1).describe('Step schedule: LR multiplier at each boundary'),
  })
  .prefault({})
  .describe('Learning-rate schedule');

const randAugmentSection = z
  .strictObject({
    enabled: z.boolean().default(true).describe('RandAugment on the training path (ablation: false)'),
    layers: z.number().int().nonnegative().max(10).default(2).describe('Ops applied per image (randaug_num_layers 2)'),
    magnitude: z.number().nonnegative().max(30).optional().describe('Magnitude on the 0..10 scale (may exceed 10); default: the model\'s (RS-50: 10, larger: 15)'),
    translateConst: z.number().nonnegative().default(100).describe('TranslateX/Y pixels at magnitude 10 (official: 100, for 224-px images)'),
    cutoutConst: z.number().nonnegative().default(40).describe('Cutout half-size in pixels at magnitude 10 (official: 40)'),
    scaleWithImage: z
      .boolean()
      .default(false)
      .describe('Scale translateConst/cutoutConst by imageSize/224 (useful for 28-px images; the official code uses fixed pixels at every resolution)'),
    fill: z.number().int().min(0).max(255).default(128).describe('Fill value of uncovered pixels'),
    // Optional without a zod default: manifests written before it resolve to the same config, hence
    // the same stage fingerprints.
    exclude: z
      .array(z.enum(RANDAUGMENT_OPS))
      .max(RANDAUGMENT_OPS.length - 1)
      .optional()
      .describe(
        'Ops never chosen (e.g. [Invert, Posterize, Solarize, SolarizeAdd] for small grey images, whose colour-inverting ops make another ' +
          'picture); each layer picks uniformly among the rest. Default none: the official 16',
      ),
  })
  .prefault({})
  .describe('RandAugment (official op list and magnitude scale)');

export const PAD_DEFAULTS = { padding: 4, fill: 0 } as const;

const cropSection = z
  .strictObject({
    type: z
      .enum(['inception', 'pad', 'none'])
      .default('inception')
      .describe(
        'inception: random-resized crop (area/aspect ranges below; the released recipe); pad: pad by `padding` pixels and take a random S×S window ' +
          '(a shift of up to `padding` pixels, no rescaling: the usual choice for 28-32 px images); none: the whole image',
      ),
    minArea: z.number().gt(0).max(1).default(0.08).describe('inception: smallest crop area fraction (official 0.08)'),
    aspect: z.tuple([z.number().positive(), z.number().positive()]).default([3 / 4, 4 / 3]).describe('inception: aspect ratio range'),
    // Optional without a zod default (defaults applied where used) so that manifests written before
    // these options existed resolve to the same config, hence the same stage fingerprints.
    padding: z.number().int().min(0).max(64).optional().describe(`pad: pixels of padding on each side, the largest shift (default ${PAD_DEFAULTS.padding})`),
    padFill: z.number().int().min(0).max(255).optional().describe(`pad: value of the padding pixels (default ${PAD_DEFAULTS.fill})`),
    flip: z
      .boolean()
      .default(true)
      .describe('Random horizontal flip (p = 0.5). Right for photos and garments; set false for digits, text or anything whose mirror image is another class'),
  })
  .prefault({})
  .describe('Training crop and flip (choose per dataset: see `flip`)');

const erasingSection = z
  .strictObject({
    probability: z.number().min(0).max(1).default(0.5).describe('Share of training images that get one erased rectangle'),
    area: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.02, 0.33]).describe('Erased area as a fraction of the image, uniform in this range'),
    aspect: z.tuple([z.number().positive(), z.number().positive()]).default([0.3, 3.3]).describe('Aspect ratio range (log-uniform)'),
    fill: z.number().int().min(0).max(255).default(114).describe('Value written into the rectangle (default: the grey mean 0.449 x 255)'),
  })
  .optional()
  .describe('Random erasing (Zhong et al. 2020, arXiv 1708.04896), after crop, flip and RandAugment: input noise for a student. Absent = off');

const emaSection = z
  .strictObject({
    enabled: z.boolean().default(true).describe('EMA of all weights incl. BN statistics; eval/export use it (ablation: false)'),
    decay: z.number().min(0).lt(1).default(0.9999).describe('moving_average_decay'),
    warmup: z.boolean().default(true).describe('Use min(decay, (1+t)/(10+t)) as TF ExponentialMovingAverage(num_updates=step)'),
  })
  .prefault({})
  .describe('Exponential moving average of the weights');

const checkpointSection = z
  .strictObject({
    everySteps: z.number().int().positive().default(500).describe('Checkpoint interval in optimizer steps (plus one at the end)'),
    keep: z.number().int().positive().default(3).describe('Complete checkpoints kept; older ones are pruned'),
  })
  .prefault({})
  .describe('Resumable checkpoints in the store');

const divergenceSection = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Watch every held-out evaluation for divergence (false: train through, as before)'),
    lossFactor: z.number().gt(1).default(3).describe('Diverged when the epoch training loss stays above this multiple of its running minimum…'),
    patience: z.number().int().positive().default(3).describe('…or the held-out accuracy stays at chance, for this many evaluations in a row after warm-up'),
    backoff: z.number().gt(0).lt(1).default(0.5).describe('On divergence, go back to the last good checkpoint and multiply the learning rate by this'),
    maxRetries: z.number().int().min(0).default(2).describe('Retries before the stage stops with an error naming the step, the numbers and the setting to change'),
  })
  .optional()
  .describe('Divergence guard (absent = on, with these defaults); a non-finite loss always counts as divergence');

const studentSection = z
  .strictObject({
    ratio: z.number().positive().max(64).default(3).describe('Pseudo-labeled images per labeled image in each step (Noisy Student unlabel_ratio; B1-B7 scripts: 3)'),
    targets: z.enum(['as-selected', 'hard']).default('as-selected').describe('as-selected: the targets select wrote (soft or hard); hard: argmax of them'),
    init: z
      .enum(['scratch', 'teacher', 'previous-student'])
      .default('scratch')
      .describe(
        "Student initialisation: scratch (the Noisy Student default), teacher (every round starts from its teacher's weights), previous-student (round 1 from scratch, each later round from its teacher, the previous round's student). A student that starts from trained weights carries their training images: the labeled-only control and the all-labels bound get that budget too",
      ),
    // Optional with no default: manifests without it keep their stages' fingerprints.
    continuedLrScale: z
      .number()
      .positive()
      .max(1)
      .optional()
      .describe(
        "Peak learning rate of a student that starts from trained weights (student.init), as a multiple of its recipe's (absent: 1, the same schedule as from scratch). A continued student restarted at the full peak LR is knocked out of its teacher's minimum before it re-converges",
      ),
  })
  .prefault({})
  .describe('Student mode (labeled + pseudo-labeled batches); ignored for the teacher');

export const trainSection = z
  .strictObject({
    epochs: z.number().positive().default(350).describe('Passes over the labeled training set (350 in every released config)'),
    steps: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Length of training in optimizer steps, instead of `epochs` (the schedule spans these steps; epochs still order the data). A student learning from a set 60x its labeled one needs many passes over the labels: steps say that directly'),
    maxSteps: z.number().int().positive().optional().describe('Stop after this many steps (the schedule still spans `epochs`); for tests and smoke runs'),
    batchSize: z.number().int().positive().default(4096).describe('Labeled images per step (train_batch_size 4096)'),
    baseLr: z.number().positive().default(0.1).describe('LR per 256 images: peak LR = baseLr x batchSize/256 (1.6 at 4096)'),
    momentum: z.number().min(0).lt(1).default(0.9).describe('SGD momentum'),
    nesterov: z.boolean().default(false).describe('Nesterov momentum (TF1 code: true; TF2 Model Garden: false)'),
    schedule: scheduleSection,
    weightDecay: z.number().min(0).default(4e-5).describe('L2 (wd/2 x sum v^2) on every non-BN weight incl. SE and classifier biases, added to the loss'),
    labelSmoothing: z.number().min(0).lt(1).default(0.1).describe('(1-eps) onehot + eps/K'),
    randAugment: randAugmentSection,
    crop: cropSection,
    erasing: erasingSection,
    ema: emaSection,
    holdout: z
      .number()
      .min(0)
      .lt(1)
      .default(0.02)
      .describe('Fraction of the labeled set held out (seeded, stratified by class) for per-epoch loss/accuracy ("minival": 2%)'),
    evalBatchSize: z.number().int().positive().default(200).describe('Batch size for the held-out evaluation (eval_batch_size 200)'),
    checkpoint: checkpointSection,
    seed: z.number().int().nonnegative().optional().describe('Training seed (data order, augmentation, dropout, stochastic depth); default: the manifest seed'),
    student: studentSection,
    divergence: divergenceSection,
    workers: workersSetting.describe(
      'Data-parallel workers (synchronous SGD, gradients averaged in a fixed order; BN statistics per worker). auto: one per core on wasm/cpu, 1 on tfjs-node (libtensorflow threads itself), one per visible GPU on tfjs-node-gpu. An execution setting: not part of the stage fingerprint, and a checkpoint resumes with any count',
    ),
  })
  .prefault({})
  .describe('Training recipe (ResNet-RS)');
export type TrainConfig = z.infer<typeof trainSection>;
