/**
 * The evaluate stage's contract: its config (built by pipeline/runner/chain.ts) and its outputs
 * under `<evaluate id>/`:
 *
 *   models/<train id>.json    one model on the eval set (pipeline/report/types.ts ModelEvaluation)
 *   pseudo/<select id>.json   one round's pseudo-label quality (PseudoEvaluation)
 *   charts/*.svg, report.md
 *   report.json               written last (the commit; Report)
 *
 * The object types live with the report code (pipeline/report/types.ts) that renders them; no
 * other stage reads them, only `selftrain report`, which copies them.
 */
import { z } from 'zod';
import { evaluateSection } from '../manifest/schema.js';
import { inferBackendChoices } from '../inference/engine.js';

export const evaluateStageConfig = z.object({
  evaluate: evaluateSection,
  /** The manifest's inferBackend (auto: ONNX Runtime when installed; the chain omits the default). */
  inferBackend: z.enum(inferBackendChoices).default('auto'),
  seed: z.number().int().nonnegative().optional(),
  inputs: z.object({
    /** The import stage whose dataset list names the eval set (and the held-back labels). */
    data: z.string().default('import'),
    /** The train stages whose models are evaluated. */
    models: z.array(z.string()).min(1),
    /** Each Noisy Student round's select stage with the infer stage it selected from. */
    pseudo: z.array(z.object({ select: z.string(), infer: z.string() })).default([]),
  }),
});
export type EvaluateStageConfig = z.output<typeof evaluateStageConfig>;
export type EvaluateStageConfigInput = z.input<typeof evaluateStageConfig>;

export const REPORT_JSON = 'report.json';
export const REPORT_MD = 'report.md';

/** The report's commit object relative to the run: `<evaluate id>/report.json`. */
export const reportKey = (evaluateId: string) => `${evaluateId}/${REPORT_JSON}`;

/** A model's evaluation, relative to the stage prefix. */
export const modelResultKey = (trainId: string) => `models/${trainId}.json`;
/** A round's pseudo-label evaluation, relative to the stage prefix. */
export const pseudoResultKey = (selectId: string) => `pseudo/${selectId}.json`;
