/**
 * What the report needs to know about how each evaluated model was trained, read from the train
 * stage's own outputs: its budget (steps × images per step, from `metrics.json` and the stage
 * record's config), its final held-out accuracy, its learning curve (`metrics.jsonl`), which model
 * taught it (a student's `inputs.teacher`) and its architecture (model.json metadata).
 * Anything missing gives null, never an error: the report then says what it could not check.
 */
import { METRICS_JSON, MODEL_DIR, startsFromTeacher } from '../../pipeline/contracts/train.js';
import { MODEL_JSON_KEY } from '../../pipeline/model/layout.js';
import { ARCH_METADATA_KEY } from '../../pipeline/model/resnet-rs.js';
import type { TrainingBudget } from '../../pipeline/report/types.js';
import { readRecord } from '../../pipeline/runner/record.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { pseudoBatchOf } from '../../pipeline/train/step-plan.js';

export interface TrainingInfo {
  budget: TrainingBudget | null;
  heldoutAcc: number | null;
  heldoutImages: number | null;
  /** The train stage whose pseudo-labels this student learned from (null for other roles). */
  teacher: string | null;
  /** The train stage whose weights it started from (student.init), null from scratch. */
  startedFrom: string | null;
  /** Shape-defining architecture fields as one comparable string (regularisation left out). */
  architecture: string | null;
  curve: { step: number; heldoutAcc: number }[];
}

/** The train stage's per-epoch log (pipeline/contracts/train.ts; written by the training loop). */
const METRICS_JSONL_KEY = 'metrics.jsonl';

const SHAPE_FIELDS = ['depth', 'blocks', 'widthMultiplier', 'imageSize', 'inputChannels', 'classes', 'smallInput', 'seRatio'] as const;

async function json(store: ObjectStore, key: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse((await store.get(key)).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Images per step as the trainer batches them: the labeled batch (the recipe's batch size, at most
 * the training images; a step budget's batch when one was given) plus round(ratio × batch)
 * pseudo-labeled images for a student.
 */
export function imagesPerStep(batchSize: number, trainImages: number, pseudoRatio: number | null): number {
  const batch = Math.min(batchSize, trainImages);
  return batch + (pseudoRatio ? pseudoBatchOf(pseudoRatio, batch) : 0);
}

export async function readTrainingInfo(run: ObjectStore, stage: string): Promise<TrainingInfo> {
  const out = run.sub(stage);
  const metrics = await json(out, METRICS_JSON);
  const { record } = await readRecord(run, stage).catch(() => ({ record: undefined }));
  const config = (record?.config ?? {}) as { role?: unknown; iteration?: unknown; train?: { batchSize?: unknown; student?: { init?: unknown } }; inputs?: { teacher?: unknown } };

  let budget: TrainingBudget | null = null;
  const steps = num(metrics?.['steps']);
  const trainImages = num(metrics?.['trainImages']);
  const budgetBatch = num((metrics?.['budget'] as Record<string, unknown> | undefined)?.['batch']);
  const batchSize = budgetBatch ?? num(config.train?.batchSize);
  const ratio = num((metrics?.['pseudo'] as Record<string, unknown> | undefined)?.['ratio']);
  if (steps !== null && trainImages !== null && batchSize !== null) {
    const per = imagesPerStep(batchSize, trainImages, ratio);
    budget = { steps, imagesPerStep: per, images: steps * per };
  }

  const curve: TrainingInfo['curve'] = [];
  const lines = await out.get(METRICS_JSONL_KEY).then((b) => b.toString('utf8').split('\n'), () => []);
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { step?: unknown; heldoutAcc?: unknown };
      const step = num(e.step), acc = num(e.heldoutAcc);
      if (step !== null && acc !== null) curve.push({ step, heldoutAcc: acc });
    } catch {
      /* a torn last line of an interrupted stage: skip it */
    }
  }

  const teacher = typeof config.inputs?.teacher === 'string' ? config.inputs.teacher : null;
  const model = await json(out.sub(`${MODEL_DIR}/`), MODEL_JSON_KEY);
  const arch = (model?.['userDefinedMetadata'] as Record<string, unknown> | undefined)?.[ARCH_METADATA_KEY] as Record<string, unknown> | undefined;
  return {
    budget,
    heldoutAcc: num(metrics?.['heldoutAcc']),
    heldoutImages: num(metrics?.['heldoutImages']),
    teacher,
    startedFrom: teacher !== null && startsFromTeacher(config) ? teacher : null,
    architecture: arch ? JSON.stringify(SHAPE_FIELDS.map((f) => arch[f] ?? null)) : null,
    curve,
  };
}

/**
 * The training images and steps each model's starting weights carry (TrainingBudget.carriedImages,
 * carriedSteps): a student that started from its teacher carries the teacher's own and carried
 * ones, down the chain.
 * Starting points outside `infos` (not evaluated) are read from the run first.
 */
export async function addCarriedBudgets(run: ObjectStore, infos: Map<string, TrainingInfo>): Promise<void> {
  for (let missing = startingPointsMissing(infos); missing.length > 0; missing = startingPointsMissing(infos)) {
    for (const stage of missing) infos.set(stage, await readTrainingInfo(run, stage));
  }
  carryBudgets(infos);
}

function startingPointsMissing(infos: Map<string, Pick<TrainingInfo, 'startedFrom'>>): string[] {
  return [...new Set([...infos.values()].map((i) => i.startedFrom).filter((s): s is string => s !== null && !infos.has(s)))];
}

/**
 * Sets each budget's carriedImages and carriedSteps from its starting point's own + carried ones. A
 * budget that cannot be read anywhere down the chain makes the model's budget null: the report then
 * says it could not check the control rather than compare a part of the budget.
 */
export function carryBudgets(infos: Map<string, Pick<TrainingInfo, 'budget' | 'startedFrom'>>): void {
  type Totals = { images: number; steps: number };
  const total = new Map<string, Totals | null>();
  const totalOf = (stage: string, path: string[]): Totals | null => {
    if (total.has(stage)) return total.get(stage)!;
    if (path.includes(stage)) throw new Error(`evaluate: the train stages ${[...path, stage].join(' → ')} start from each other's weights (a cycle in inputs.teacher)`);
    const info = infos.get(stage);
    if (!info) return null;
    const carried = info.startedFrom === null ? { images: 0, steps: 0 } : totalOf(info.startedFrom, [...path, stage]);
    if (info.budget && carried !== null) {
      if (carried.images > 0) info.budget = { ...info.budget, carriedImages: carried.images, carriedSteps: carried.steps };
      total.set(stage, { images: info.budget.images + carried.images, steps: info.budget.steps + carried.steps });
    } else {
      info.budget = null;
      total.set(stage, null);
    }
    return total.get(stage)!;
  };
  for (const stage of infos.keys()) totalOf(stage, []);
}
