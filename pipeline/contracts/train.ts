/**
 * The train stage's contract (teacher, student, all-labels baseline): its config (built by
 * pipeline/runner/chain.ts) and its outputs under `<train id>/`:
 *
 *   ckpt/step-N/{tensors.bin,COMMIT.json}   resumable checkpoints (the stage's own; pipeline/train/checkpoint.ts)
 *   metrics.jsonl                           one line per epoch
 *   metrics.json                            the final record (also the stage summary)
 *   model/model.json + weights              the EMA model in tfjs format, written last (the commit);
 *                                           infer, evaluate and a student's init read it
 *   model/model.onnx                        the same model as ONNX, written after model.json; it
 *                                           records the id of the model.json it came from, so a
 *                                           missing or stale one is exported again by its readers
 *                                           (pipeline/model/onnx-file.ts)
 *
 * model.json's userDefinedMetadata carries what readers need to prepare inputs: the ResNet-RS
 * architecture (pipeline/model/resnet-rs.ts ARCH_METADATA_KEY) and `preprocessing`
 * (pipeline/pseudo/load-teacher.ts readTeacherInfo reads both).
 */
import { z } from 'zod';
import { modelSection } from '../manifest/sections/model.js';
import { trainSection } from '../manifest/sections/train.js';
import { MODEL_JSON_KEY } from '../model/layout.js';
import type { TrainRole } from '../train/step-plan.js';

/** teacher and control: labeled set only; student: labeled + pseudo-labeled; baseline: every label. */
export const trainRoles = ['teacher', 'student', 'baseline', 'control'] as const satisfies readonly TrainRole[];
export type { TrainRole };

export const trainStageConfig = z.object({
  role: z.enum(trainRoles),
  iteration: z.number().int().optional(),
  model: modelSection,
  train: trainSection,
  seed: z.number().int().nonnegative(),
  /**
   * How long to train. 'epochs' (default): `train.epochs` passes over the training data.
   * 'teacher-steps' (the all-labels baseline): the steps and batch size the same `train` recipe gives
   * on the labeled set alone, i.e. the teacher's budget, whatever the size of the baseline's data.
   */
  budget: z.enum(['epochs', 'teacher-steps', 'student-budget']).default('epochs'),
  /**
   * For budget 'student-budget' (the labeled-only control and the all-labels bound): the student's
   * recipe. The stage trains for at least as many steps as that student and on at least as many
   * images (its steps x labeled + pseudo-labeled images per step), in steps of its own batch
   * (pipeline/train/step-plan.ts).
   */
  budgetOf: trainSection.unwrap().optional(), // unwrap: the section's prefault would fill an absent budgetOf in
  inputs: z.object({
    /** The import stage whose dataset list names the datasets. */
    data: z.string().optional(),
    /** The select stage whose pseudo-labels a student trains on. */
    pseudo: z.string().optional(),
    /** The train stage whose pseudo-labels a student learns from, and whose model it may start from (student.init). */
    teacher: z.string().optional(),
    /** Dataset refs given directly instead of through the import list (scripts, tests). */
    labeled: z.string().optional(),
    unlabeled: z.string().optional(),
  }),
});
export type TrainStageConfig = z.output<typeof trainStageConfig>;
export type TrainStageConfigInput = z.input<typeof trainStageConfig>;

/**
 * Whether a train stage starts from its teacher's weights instead of from scratch: a student with
 * student.init 'teacher' in every round, with 'previous-student' from round 2 on (round 1's teacher
 * is the labeled-only teacher; later teachers are the previous round's students).
 */
export function startsFromTeacher(cfg: { role?: unknown; iteration?: unknown; train?: { student?: { init?: unknown } } }): boolean {
  if (cfg.role !== 'student') return false;
  const init = cfg.train?.student?.init;
  return init === 'teacher' || (init === 'previous-student' && typeof cfg.iteration === 'number' && cfg.iteration > 1);
}

/** The exported model's directory inside the stage prefix. */
export const MODEL_DIR = 'model';
export const METRICS_JSON = 'metrics.json';

/** The model directory of a train stage, relative to the run: `<train id>/model`. */
export const modelDir = (trainId: string) => `${trainId}/${MODEL_DIR}`;

/** The model's commit object, relative to the run: `<train id>/model/model.json`. */
export const modelJsonKey = (trainId: string) => `${modelDir(trainId)}/${MODEL_JSON_KEY}`;
