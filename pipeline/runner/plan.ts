/**
 * `plan`: what `run` would do, decided from the records alone — nothing runs, no lease is taken.
 * A stage downstream of one that will (re-)run is stale even when its own record looks done.
 */
import type { ObjectStore } from '../store/types.js';
import type { StageDefinition } from './stage.js';
import type { StageRecord } from './record.js';
import { decideInChain, type StageDecision } from './decide.js';
import { validateChain } from './graph.js';

export interface PlannedStage extends StageDecision {
  kind: string;
  deps: string[];
  record?: StageRecord;
}

export async function planStages(stages: StageDefinition[], run: ObjectStore): Promise<PlannedStage[]> {
  validateChain(stages);
  const fingerprints: Record<string, string> = {};
  const runIds: Record<string, string | undefined> = {};
  const toRun = new Set<string>();
  const out: PlannedStage[] = [];
  for (const stage of stages) {
    const { decision, record } = await decideInChain(stage, run, { fingerprints, runIds }, toRun);
    if (decision.action === 'skip') runIds[stage.id] = record?.runId;
    else toRun.add(stage.id);
    out.push({ ...decision, kind: stage.kind, deps: stage.deps, record });
  }
  return out;
}
