/**
 * What to do with one stage, from its definition, its fingerprint, its record and its inputs —
 * shared by `run` (decides just before each stage, after its upstream ran) and `plan` (decides
 * all stages at once without running anything).
 *
 * Outputs are cleared before a stage starts afresh (new or changed settings, changed upstream,
 * missing outputs), because units committed under other settings must not be skipped as "done".
 * They are kept when a stage resumes with the same fingerprint and inputs after an interruption
 * or a failure, which is what lets it skip its committed units.
 */
import type { ObjectStore } from '../store/types.js';
import type { StageDefinition } from './stage.js';
import { readRecord, type StageRecord } from './record.js';
import { configDiff, defaultStageVersion, stageFingerprint } from './fingerprint.js';
import { formatDuration } from '../log/format.js';
import { redact } from '../log/redact.js';

export type StageState = 'done' | 'pending' | 'stale';
export type StageAction = 'skip' | 'run' | 'resume';

export interface StageDecision {
  id: string;
  fingerprint: string;
  state: StageState;
  action: StageAction;
  reason: string;
  /** Delete the stage's output prefix before running. */
  clear: boolean;
}

export interface DecideInput {
  stage: StageDefinition;
  fingerprint: string;
  depFingerprints: Record<string, string>;
  record: StageRecord | undefined;
  /** Why the record could not be used, when it exists but is broken. */
  recordProblem?: string;
  /** Current runId of each upstream stage (undefined when it has none yet). */
  depRunIds: Record<string, string | undefined>;
  /** Upstream stages that will (re-)run before this one (plan mode). */
  upstreamToRun: ReadonlySet<string>;
  run: ObjectStore;
}

export async function decideStage(input: DecideInput): Promise<StageDecision> {
  const { stage, fingerprint, record } = input;
  const base = { id: stage.id, fingerprint };
  const fresh = (state: StageState, reason: string): StageDecision => ({ ...base, state, action: 'run', reason, clear: true });

  if (!record) return fresh('pending', input.recordProblem ? `${input.recordProblem}; running it again` : 'not run yet');

  if (record.fingerprint !== fingerprint) return fresh('stale', whyFingerprintChanged(stage, record, input.depFingerprints));

  for (const dep of stage.deps) {
    if (input.upstreamToRun.has(dep)) return fresh('stale', `upstream ${dep} will re-run`);
    const current = input.depRunIds[dep];
    if (current === undefined || record.inputs[dep] !== current) return fresh('stale', `upstream ${dep} re-ran since this stage ran`);
  }

  switch (record.status) {
    case 'running':
      return { ...base, state: 'pending', action: 'resume', reason: `interrupted while running (runner pid ${record.pid} on ${record.host} stopped); resuming, committed units kept`, clear: false };
    case 'interrupted':
      return { ...base, state: 'pending', action: 'resume', reason: `${record.error ?? 'interrupted'}; resuming, committed units kept`, clear: false };
    case 'failed':
      return { ...base, state: 'pending', action: 'resume', reason: `failed last time (${record.error ?? 'no message'}); retrying, committed units kept`, clear: false };
    case 'done':
      break;
  }

  for (const key of stage.outputs) {
    if (!(await input.run.head(key))) return fresh('stale', `output ${key} is missing`);
  }
  const when = record.endedAt ? `finished ${record.endedAt}` : 'finished';
  const took = record.totalMs !== undefined ? `, took ${formatDuration(record.totalMs)}` : '';
  return { ...base, state: 'done', action: 'skip', reason: `up to date (${when}${took})`, clear: false };
}

function whyFingerprintChanged(stage: StageDefinition, record: StageRecord, depFingerprints: Record<string, string>): string {
  const version = stage.version ?? defaultStageVersion;
  if (record.version !== version) return `code changed (${stage.kind} v${record.version} → v${version})`;
  // Records hold the redacted config, so compare like with like.
  const diff = configDiff(record.config, redact(JSON.parse(JSON.stringify(stage.config ?? null))));
  if (diff.length > 0) return `settings changed: ${diff.join('; ')}`;
  const deps = stage.deps.filter((d) => record.deps[d] !== depFingerprints[d]);
  if (deps.length > 0) return `settings of upstream ${deps.join(', ')} changed`;
  return 'fingerprint changed';
}

/** What `plan` and `run` carry along the chain while deciding: the upstream stages' fingerprints and run ids. */
export interface ChainState {
  fingerprints: Record<string, string>;
  runIds: Record<string, string | undefined>;
}

/**
 * Fingerprints `stage` from its upstream fingerprints (recorded in `chain`), reads its record and
 * decides what to do with it: the one step `plan` and `run` share for every stage.
 */
export async function decideInChain(
  stage: StageDefinition,
  run: ObjectStore,
  chain: ChainState,
  upstreamToRun: ReadonlySet<string>,
): Promise<{ decision: StageDecision; record?: StageRecord; depFingerprints: Record<string, string> }> {
  const depFingerprints = Object.fromEntries(stage.deps.map((d) => [d, chain.fingerprints[d]!]));
  const fingerprint = stageFingerprint(stage, depFingerprints);
  chain.fingerprints[stage.id] = fingerprint;
  const read = await readRecord(run, stage.id);
  const decision = await decideStage({
    stage,
    fingerprint,
    depFingerprints,
    record: read.record,
    recordProblem: 'problem' in read ? read.problem : undefined,
    depRunIds: Object.fromEntries(stage.deps.map((d) => [d, chain.runIds[d]])),
    upstreamToRun,
    run,
  });
  return { decision, record: read.record, depFingerprints };
}
