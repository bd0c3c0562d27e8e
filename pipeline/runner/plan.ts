/**
 * `plan`: what `run` would do, decided from the records alone — nothing runs, no lease is taken.
 * A stage downstream of one that will (re-)run is stale even when its own record looks done.
 */
import type { ObjectStore } from '../store/types.js';
import type { StageDefinition } from './stage.js';
import { stageFingerprint } from './fingerprint.js';
import { readRecord, type StageRecord } from './record.js';
import { decideStage, type StageDecision } from './decide.js';
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
    const depFingerprints = Object.fromEntries(stage.deps.map((d) => [d, fingerprints[d]!]));
    const fingerprint = stageFingerprint(stage, depFingerprints);
    fingerprints[stage.id] = fingerprint;
    const read = await readRecord(run, stage.id);
    const decision = await decideStage({
      stage,
      fingerprint,
      depFingerprints,
      record: read.record,
      recordProblem: 'problem' in read ? read.problem : undefined,
      depRunIds: Object.fromEntries(stage.deps.map((d) => [d, runIds[d]])),
      upstreamToRun: toRun,
      run,
    });
    if (decision.action === 'skip') runIds[stage.id] = read.record?.runId;
    else toRun.add(stage.id);
    out.push({ ...decision, kind: stage.kind, deps: stage.deps, record: read.record });
  }
  return out;
}
