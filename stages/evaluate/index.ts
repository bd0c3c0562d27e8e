/**
 * Runner entry of the evaluate stage: `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts (shape and output keys: pipeline/contracts/evaluate.ts). The chain
 * names every input: the import list, the train stages, and each round's select + infer pair;
 * the stage timings for the report come from the runner (`ctx.stageRuns()`).
 *
 * Units of work, each committed as its own object so a killed evaluate resumes where it stopped:
 *   evaluate/models/<train-id>.json   one model on the eval set (reused while its weights and the
 *                                     eval set are unchanged)
 *   evaluate/pseudo/<select-id>.json  one round's pseudo-label quality (reused while the selection
 *                                     is unchanged)
 * then the report (charts, report.md, and report.json last: the stage's declared output).
 */
import { readDatasetsList } from '../../pipeline/contracts/import.js';
import { evaluateStageConfig, modelResultKey, pseudoResultKey, type EvaluateStageConfig, type EvaluateStageConfigInput } from '../../pipeline/contracts/evaluate.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import { parseStageConfig } from '../../pipeline/contracts/json.js';
import { readSelectSummary } from '../../pipeline/contracts/select.js';
import { modelDir } from '../../pipeline/contracts/train.js';
import { openDataset, type OpenDataset } from '../../pipeline/data/dataset-json.js';
import { openObjectRef, openRef } from '../../pipeline/data/dataset-ref.js';
import { resolveInferEngine } from '../../pipeline/inference/engine.js';
import { decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import { readTeacherInfo } from '../../pipeline/pseudo/load-teacher.js';
import { buildSummary, type EvaluatedModel } from '../../pipeline/report/summary.js';
import type { LearningCurve, ModelEvaluation, PseudoEvaluation, StageTiming } from '../../pipeline/report/types.js';
import { modelLabel } from '../../pipeline/report/charts.js';
import { writeReport } from '../../pipeline/report/write.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { ifPresent, integrityErrorIn, isNotFoundError, type ObjectStore } from '../../pipeline/store/types.js';
import { objectUri, trimUri } from '../../pipeline/store/uri.js';
import { currentBackend, initBackend } from '../../pipeline/backend/select.js';
import { resolveWorkers } from '../../pipeline/parallel/workers.js';
import { evaluateModel } from './evaluate-model.js';
import { evaluatePseudo } from './evaluate-pseudo.js';
import { startPredictor, type ShardPredictor } from './predictor.js';
import { addCarriedBudgets, readTrainingInfo, type TrainingInfo } from './training-info.js';

/**
 * A unit this stage committed before (a model's or a round's evaluation), for reuse: undefined when
 * it is absent, or damaged (corrupted or unparsable: it is recomputed and overwritten, with a
 * warning). Any other store error fails the stage: "cannot read" is not "absent".
 */
async function readJsonIfAny<T>(store: ObjectStore, key: string, log: StageContext['log']): Promise<T | undefined> {
  let bytes: Buffer;
  try {
    bytes = await store.get(key);
  } catch (err) {
    if (isNotFoundError(err)) return undefined;
    if (!integrityErrorIn(err)) throw err;
    log.warn(`evaluate: ${(err as Error).message}; computing it again`);
    return undefined;
  }
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    log.warn(`evaluate: ${objectUri(store, key)} is not valid JSON; computing it again`);
    return undefined;
  }
}

async function openEvalSet(ctx: StageContext, importId: string): Promise<{ ds: OpenDataset; close: () => Promise<void> }> {
  const ref = (await readDatasetsList(ctx.run, importId)).eval;
  const { store, close } = openRef(ctx.root, ref, ctx.storeSettings);
  try {
    return { ds: await openDataset(store), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Held-back labels of the unlabeled set an infer stage predicted (dataset's own, else the import's split). */
async function groundTruthOf(ctx: StageContext, importId: string, inferId: string): Promise<(() => AsyncIterable<{ key: string; label: number }>) | undefined> {
  const infer = await readInferSummary(ctx.run, inferId);
  // Only a dataset that is not there means "no held-back labels here"; a dataset that cannot be
  // read (access denied, unreachable, damaged) fails the stage rather than dropping the section.
  const ds = await ifPresent(openDataset(infer.dataset, ctx.storeSettings));
  const own = ds?.index.groundTruth;
  const lines = async function* (store: ObjectStore, key: string, where: string) {
    for await (const { value } of decodeJsonlGz(await store.getStream(key), where)) yield value as { key: string; label: number };
  };
  if (ds && own) {
    return async function* () {
      try {
        yield* lines(ds.store, own, `${ds.uri}/${own}`);
      } finally {
        await ds.close();
      }
    };
  }
  await ds?.close();
  const ref = (await ifPresent(readDatasetsList(ctx.run, importId)))?.groundTruth;
  if (!ref) return undefined;
  return async function* () {
    const { store, key, uri, close } = openObjectRef(ctx.root, ref, ctx.storeSettings);
    try {
      yield* lines(store, key, uri);
    } finally {
      await close();
    }
  };
}

async function startEvaluatePredictor(ctx: StageContext, cfg: EvaluateStageConfig, ds: OpenDataset): Promise<ShardPredictor> {
  const decision = await resolveInferEngine(cfg.inferBackend);
  if (decision.reason) ctx.log.info(`evaluate: ${decision.reason}; using tfjs`);
  const backend = currentBackend() ?? (await initBackend('auto'));
  const plan = resolveWorkers(cfg.evaluate.workers, backend.name);
  const predictor = await startPredictor({
    eval: ds, batchSize: cfg.evaluate.batchSize, concurrency: cfg.evaluate.concurrency, plan, engine: decision.engine, backend: backend.name, storeSettings: ctx.storeSettings, log: ctx.log, signal: ctx.signal,
  });
  const how = decision.engine === 'onnx' ? 'ONNX Runtime uses every core in this process' : plan.reason;
  ctx.log.info(`evaluate: ${predictor.workers} worker(s) over ${ds.index.shards.length} eval shard(s) (${how})`, { workers: predictor.workers, engine: decision.engine });
  return predictor;
}

export async function runStage(ctx: StageContext, raw: EvaluateStageConfigInput): Promise<StageResult> {
  const cfg = parseStageConfig(evaluateStageConfig, raw, 'evaluate');
  const started = performance.now();
  const out = ctx.run.sub(ctx.outPrefix);
  const backend = ctx.backend ?? null;
  const { ds, close } = await openEvalSet(ctx, cfg.inputs.data);
  const models: ModelEvaluation[] = [];
  let predictor: ShardPredictor | undefined;
  try {
    for (const stage of cfg.inputs.models) {
      ctx.signal.throwIfAborted();
      const modelStore = ctx.run.sub(modelDir(stage));
      const { id } = await readTeacherInfo(modelStore);
      const key = modelResultKey(stage);
      const previous = await readJsonIfAny<ModelEvaluation>(out, key, ctx.log);
      const wantK = [...new Set(cfg.evaluate.topK.map((k) => String(Math.min(k, ds.index.classes.length))))].sort().join(',');
      // Reused only with its per-image results (older evaluations lack them: the paired tests need them).
      if (previous?.format === 1 && previous.perImage && previous.modelId === id && previous.evalDataset === ds.uri && Object.keys(previous.metrics?.topK ?? {}).sort().join(',') === wantK) {
        ctx.log.info(`evaluate: ${stage} already evaluated (top-1 ${(previous.metrics.top1 * 100).toFixed(2)} %), reusing ${key}`);
        models.push(previous);
        continue;
      }
      // Workers start with the first model that needs evaluating (none when every result is reused).
      predictor ??= await startEvaluatePredictor(ctx, cfg, ds);
      const progress = ctx.progress(`evaluate ${stage}`, ds.index.samples, 'images');
      try {
        const result = await evaluateModel({ stage, model: modelStore, eval: ds, topK: cfg.evaluate.topK, predictor, backend, progress });
        await out.put(key, JSON.stringify(result, null, 2) + '\n', { contentType: 'application/json' });
        ctx.log.info(`evaluate: ${stage} top-1 ${(result.metrics.top1 * 100).toFixed(2)} %`, { samples: result.metrics.samples, skipped: result.skipped, imagesPerSecond: Math.round(result.imagesPerSecond), workers: predictor.workers });
        models.push(result);
      } finally {
        progress.stop();
      }
    }
  } finally {
    await predictor?.close();
    await close();
  }

  const pseudo: PseudoEvaluation[] = [];
  for (const { select, infer } of cfg.inputs.pseudo) {
    ctx.signal.throwIfAborted();
    const key = pseudoResultKey(select);
    const { hash } = await readSelectSummary(ctx.run, select);
    const previous = await readJsonIfAny<PseudoEvaluation>(out, key, ctx.log);
    if (previous?.format === 1 && previous.selectHash === hash) {
      pseudo.push(previous);
      continue;
    }
    const result = await evaluatePseudo({ run: ctx.run, select, infer, groundTruth: await groundTruthOf(ctx, cfg.inputs.data, infer), signal: ctx.signal });
    await out.put(key, JSON.stringify(result, null, 2) + '\n', { contentType: 'application/json' });
    if (result.groundTruth) ctx.log.info(`evaluate: ${select} pseudo-label precision ${((result.precision ?? 0) * 100).toFixed(2)} %`, { kept: result.unique });
    else ctx.log.info(`evaluate: ${select}: the unlabeled set has no held-back labels; pseudo-label precision not measured`);
    pseudo.push(result);
  }

  const stages: StageTiming[] = (await ctx.stageRuns()).map((r) =>
    // This stage's own record is still 'running' while it writes the report: its time is not known yet.
    r.stage === ctx.stageId
      ? { stage: r.stage, kind: r.kind, status: 'writing this report', attempts: r.attempts, durationMs: null, totalMs: null, backend: r.backend ?? backend }
      : { stage: r.stage, kind: r.kind, status: r.status, attempts: r.attempts, durationMs: r.durationMs ?? null, totalMs: r.totalMs ?? null, backend: r.backend ?? null },
  );

  // How each model was trained (budget, hold-out, learning curve, its teacher), for the summary.
  const evaluated: EvaluatedModel[] = [];
  const curves: LearningCurve[] = [];
  const infos = new Map<string, TrainingInfo>();
  for (const m of models) infos.set(m.stage, await readTrainingInfo(ctx.run, m.stage));
  await addCarriedBudgets(ctx.run, infos);
  for (const m of models) {
    const info = infos.get(m.stage)!;
    evaluated.push({ evaluation: m, budget: info.budget, heldoutAcc: info.heldoutAcc, heldoutImages: info.heldoutImages, teacher: info.teacher, architecture: info.architecture });
    curves.push({ stage: m.stage, label: modelLabel(m), points: info.curve });
  }
  const previousStagesMs = stages.reduce((a, s) => a + (s.totalMs ?? 0), 0);
  const headline = buildSummary(evaluated, (previousStagesMs + performance.now() - started) / 1000);
  for (const f of headline.findings) ctx.log.info(`evaluate: ${f.replace(/\*\*/g, '')}`);
  const lastPseudo = pseudo[pseudo.length - 1];
  const report = await writeReport(out, {
    format: 2,
    run: trimUri(ctx.run.uri),
    generatedAt: new Date().toISOString(),
    backend,
    evalDataset: ds.uri,
    classes: ds.index.classes,
    ...headline,
    pseudoLabelPrecision: lastPseudo?.precision ?? null,
    curves,
    models,
    pseudo,
    stages,
  });
  ctx.log.info(`evaluate: report written to ${trimUri(out.uri)}/report.md`, { charts: report.charts.length });
  return { summary: { ...report.summary, pseudoLabelPrecision: report.pseudoLabelPrecision, models: models.length, charts: report.charts.length } };
}
