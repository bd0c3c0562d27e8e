/**
 * The resumable stage runner. For each stage of a chain, in order: compute its fingerprint, read
 * its record, decide (./decide.ts) whether it is up to date, must resume, or must start afresh, and
 * run it with a StageContext. Records are written before a stage starts (`running`, with the new
 * fingerprint) and when it ends (`done` with a fresh runId, or `failed`/`interrupted`), so a kill
 * -9 at any moment leaves a `running` record that the next run resumes.
 *
 * The runner holds the run's lease for its whole duration, and does not touch process signals: the
 * caller (the CLI) turns SIGINT/SIGTERM into an abort of `signal`; the current stage stops at its
 * next safe point, its record says `interrupted`, and the lease is released.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { StoreSettings } from '../store/settings.js';
import { integrityErrorIn, type Digest, type IntegrityError, type ObjectStore } from '../store/types.js';
import { trimUri } from '../store/uri.js';
import type { Progress, StageDefinition, StageRun } from './stage.js';
import type { RunLogger } from '../log/logger.js';
import type { ProgressFactory } from '../log/progress.js';
import { readRecord, writeRecord, type StageRecord } from './record.js';
import { decideInChain, type StageDecision } from './decide.js';
import { defaultStageVersion } from './fingerprint.js';
import { validateChain, outPrefixOf } from './graph.js';
import { acquireLease, type LeaseOptions } from './lease.js';
import { formatDuration } from '../log/format.js';
import { redactText } from '../log/redact.js';

export interface RunStagesOptions {
  stages: StageDefinition[];
  /** The store rooted at the run prefix. */
  run: ObjectStore;
  /** The store root (datasets outside the run). */
  root: ObjectStore;
  /** How the stores were reached (the manifest's `s3` section): stages open their other stores with it. */
  storeSettings?: StoreSettings;
  log: RunLogger;
  progress: ProgressFactory;
  /** Aborted on SIGINT/SIGTERM by the caller. Its `reason` (an Error) names the signal. */
  signal?: AbortSignal;
  /** Take over an expired lease. */
  force?: boolean;
  lease?: Pick<LeaseOptions, 'ttlMs' | 'heartbeatMs' | 'command'>;
  /** How often a running stage's record is rewritten with its time so far. Default RECORD_HEARTBEAT_MS. */
  recordHeartbeatMs?: number;
  /** Chooses the compute backend; called once, only before the first stage with `needsBackend` runs. */
  initBackend?: () => Promise<{ name: string; summary?: string }>;
}

export type StageOutcomeKind = 'skipped' | 'ran' | 'resumed' | 'failed' | 'interrupted' | 'not-run';

export interface StageOutcome {
  id: string;
  outcome: StageOutcomeKind;
  reason: string;
  durationMs?: number;
}

export interface RunOutcome {
  status: 'done' | 'failed' | 'interrupted';
  stages: StageOutcome[];
  /** Failure message (redacted) when status is 'failed'. */
  error?: string;
  /** True when every stage was already up to date. */
  upToDate: boolean;
}

/** Period of a running stage's record updates (see runOne). */
export const RECORD_HEARTBEAT_MS = 5_000;

/** Thrown into a stage's signal when another runner took the lease. */
export class LeaseLostError extends Error {
  constructor(reason: string) {
    super(`stopped: ${reason}`);
    this.name = 'LeaseLostError';
  }
}

export async function runStages(opts: RunStagesOptions): Promise<RunOutcome> {
  const { stages, run, log } = opts;
  validateChain(stages);

  // Lease loss aborts the running stage just like a signal does, but is reported as a failure.
  const leaseLost = new AbortController();
  const lease = await acquireLease(run, {
    ...opts.lease,
    force: opts.force,
    log,
    onLost: (reason) => {
      log.error(reason);
      leaseLost.abort(new LeaseLostError(reason));
    },
  });
  const signal = opts.signal ? AbortSignal.any([opts.signal, leaseLost.signal]) : leaseLost.signal;

  let outcomes: StageOutcome[] = [];
  let backend: { name: string; summary?: string } | undefined;
  let status: RunOutcome['status'] = 'done';
  let error: string | undefined;
  // Damaged objects being remade this run, by the stage that makes them (one attempt per object).
  const repairs = new Map<string, Repair>();
  const repairedUris = new Set<string>();

  try {
    // A pass runs the chain in order; a stage that finds an upstream object damaged starts another
    // pass after handing the object back to its maker (see planRepair).
    passes: for (;;) {
    outcomes = [];
    status = 'done';
    error = undefined;
    const fingerprints: Record<string, string> = {};
    const runIds: Record<string, string | undefined> = {};
    for (const stage of stages) {
      const slog = log.child({ stage: stage.id });
      if (signal.aborted) {
        status = leaseLost.signal.aborted ? 'failed' : 'interrupted';
        outcomes.push({ id: stage.id, outcome: 'not-run', reason: 'run stopped before this stage' });
        continue;
      }
      if (status !== 'done') {
        outcomes.push({ id: stage.id, outcome: 'not-run', reason: 'an earlier stage did not finish' });
        continue;
      }

      const { decision, record, depFingerprints } = await decideInChain(stage, run, { fingerprints, runIds }, new Set());

      if (decision.action === 'skip') {
        runIds[stage.id] = record!.runId;
        slog.info(`skipped: ${decision.reason}`);
        outcomes.push({ id: stage.id, outcome: 'skipped', reason: decision.reason });
        continue;
      }

      const result = await runOne(stage, decision, record, depFingerprints, {
        ...opts,
        signal,
        slog,
        getBackend: async () => {
          if (!backend && opts.initBackend) {
            backend = await opts.initBackend();
            log.info(backend.summary ?? `compute backend: ${backend.name}`);
          }
          return backend?.name;
        },
        runIds,
        repair: repairs.get(stage.id),
      });
      outcomes.push(result.outcome);
      if (result.runId) runIds[stage.id] = result.runId;
      repairs.delete(stage.id);
      if (result.outcome.outcome === 'failed') {
        status = 'failed';
        error = result.outcome.reason;
        const damaged = integrityErrorIn(result.error);
        if (damaged && !repairedUris.has(damaged.uri) && !signal.aborted) {
          const repair = await planRepair(damaged, stage, opts, slog);
          if (repair) {
            repairedUris.add(damaged.uri);
            repairs.set(repair.owner, repair);
            continue passes;
          }
        }
      } else if (result.outcome.outcome === 'interrupted') {
        status = leaseLost.signal.aborted ? 'failed' : 'interrupted';
        if (status === 'failed') error = result.outcome.reason;
      }
    }
    break;
    }
  } finally {
    await lease.release().catch((err: unknown) => log.warn(`could not release the lease: ${(err as Error).message}`));
  }

  const upToDate = outcomes.every((o) => o.outcome === 'skipped');
  return { status, stages: outcomes, error, upToDate };
}

interface RunOneContext extends RunStagesOptions {
  signal: AbortSignal;
  slog: RunLogger;
  getBackend: () => Promise<string | undefined>;
  runIds: Record<string, string | undefined>;
  /** Set when this stage runs to remake a damaged object it made earlier. */
  repair?: Repair;
}

/** A damaged object handed back to the stage that made it, to be remade. */
interface Repair {
  /** The stage that makes the object. */
  owner: string;
  /** The object, in the store that holds it (the run, or the store root for datasets). */
  store: ObjectStore;
  key: string;
  /** What it held when it was made. */
  expected: Digest;
  /** The owner's runId before the repair: kept when the remade object is the same bytes. */
  runId: string | undefined;
}

/**
 * When a stage fails on a damaged object (IntegrityError) that an earlier stage of the chain made,
 * or that it made itself: deletes the object and marks its maker to resume, so that the next pass
 * remakes exactly that unit (every stage remakes missing units when it resumes) and then retries the
 * failed stage. Objects under the run prefix belong to the stage their first path segment names;
 * objects elsewhere under the store root (the datasets) to the chain's source stage (the one with
 * no inputs: import). Undefined when the object belongs to no stage of the chain (a dataset given
 * by URI, say): the run then stops with the IntegrityError's message.
 */
async function planRepair(damaged: IntegrityError, failed: StageDefinition, opts: RunStagesOptions, slog: RunLogger): Promise<Repair | undefined> {
  const runUri = `${trimUri(opts.run.uri)}/`;
  const rootUri = `${trimUri(opts.root.uri)}/`;
  let located: { owner: StageDefinition; store: ObjectStore; key: string } | undefined;
  if (damaged.uri.startsWith(runUri)) {
    const key = damaged.uri.slice(runUri.length);
    const owner = opts.stages.find((s) => s.id === key.split('/')[0]);
    if (owner) located = { owner, store: opts.run, key };
  } else if (damaged.uri.startsWith(rootUri)) {
    const owner = opts.stages.find((s) => s.deps.length === 0);
    if (owner) located = { owner, store: opts.root, key: damaged.uri.slice(rootUri.length) };
  }
  if (!located) return undefined;
  const { owner, store, key } = located;
  const record = (await readRecord(opts.run, owner.id)).record;
  if (owner.id !== failed.id && record?.status !== 'done') return undefined;
  slog.warn(`${damaged.message}: deleting it and running ${owner.id === failed.id ? 'this stage' : owner.id} again to remake it`);
  await store.delete(key);
  if (owner.id !== failed.id && record) {
    // Resumed, not restarted: its other units are kept, and it remakes the missing one.
    await writeRecord(opts.run, { ...record, status: 'interrupted', error: `remaking ${key} (damaged)` });
  }
  return { owner: owner.id, store, key, expected: damaged.expected, runId: record?.runId };
}

async function runOne(
  stage: StageDefinition,
  decision: StageDecision,
  previous: StageRecord | undefined,
  depFingerprints: Record<string, string>,
  c: RunOneContext,
): Promise<{ outcome: StageOutcome; runId?: string; error?: unknown }> {
  const { slog, run } = c;
  const outPrefix = outPrefixOf(stage.id);
  const verb = decision.action === 'resume' ? 'resuming' : 'running';
  slog.info(`${verb}: ${decision.reason}`);

  if (decision.clear) {
    // Units committed under other settings must not count as done; the record is rewritten below.
    await run.deletePrefix(outPrefix);
  }
  const startMs = Date.now();
  const record: StageRecord = {
    format: 1,
    stage: stage.id,
    kind: stage.kind,
    status: 'running',
    fingerprint: decision.fingerprint,
    version: stage.version ?? defaultStageVersion,
    config: JSON.parse(JSON.stringify(stage.config ?? null)),
    deps: depFingerprints,
    inputs: Object.fromEntries(stage.deps.map((d) => [d, c.runIds[d] ?? ''])),
    outputs: stage.outputs,
    host: hostname(),
    pid: process.pid,
    attempts: decision.action === 'resume' && previous ? previous.attempts + 1 : 1,
    startedAt: new Date(startMs).toISOString(),
    totalMs: decision.action === 'resume' && previous ? (previous.totalMs ?? 0) : 0,
  };
  // Time spent by earlier attempts; a killed attempt counts up to its record's last heartbeat.
  const earlierMs = record.totalMs ?? 0;
  // While the stage runs, its record is rewritten now and then with the time so far: a kill -9
  // then loses at most one period of the attempt's time, not all of it (totals and reports count
  // every attempt's work, not only the last one's).
  let beating: Promise<void> = Promise.resolve();
  const heartbeat = setInterval(() => {
    beating = beating.then(async () => {
      record.durationMs = Date.now() - startMs;
      record.totalMs = earlierMs + record.durationMs;
      await writeRecord(run, record).catch((err: unknown) => slog.warn(`could not update the stage record: ${(err as Error).message}`));
    });
  }, c.recordHeartbeatMs ?? RECORD_HEARTBEAT_MS);
  heartbeat.unref();
  const finish = async (patch: Partial<StageRecord>) => {
    clearInterval(heartbeat);
    await beating;
    const endMs = Date.now();
    Object.assign(record, patch, {
      endedAt: new Date(endMs).toISOString(),
      durationMs: endMs - startMs,
      totalMs: earlierMs + (endMs - startMs),
    });
    await writeRecord(run, record);
  };

  const progresses: Progress[] = [];
  try {
    if (stage.needsBackend) record.backend = await c.getBackend();
    await writeRecord(run, record);
    const result = await stage.run({
      run,
      root: c.root,
      storeSettings: c.storeSettings ?? {},
      outPrefix,
      log: slog,
      signal: c.signal,
      backend: record.backend,
      stageId: stage.id,
      stageRuns: () => stageRuns(run, c.stages),
      progress: (label, total, unit) => {
        const p = c.progress(`${stage.id} ${label}`.trim(), total, unit);
        progresses.push(p);
        return p;
      },
    });
    stopAll(progresses);
    const missing: string[] = [];
    for (const key of stage.outputs) if (!(await run.head(key))) missing.push(key);
    if (missing.length > 0) {
      throw new Error(`stage finished but its declared output${missing.length > 1 ? 's are' : ' is'} missing: ${missing.join(', ')}`);
    }
    let runId: string = randomUUID();
    if (c.repair) {
      // The remade object holds what it held before: everything made from it stays valid.
      const remade = await c.repair.store.head(c.repair.key);
      if (remade?.sha256 === c.repair.expected.sha256 && c.repair.runId) {
        runId = c.repair.runId;
        slog.info(`remade ${c.repair.key}: the same bytes as before (sha256 ${remade.sha256}); stages made from it stay valid`);
      } else {
        slog.warn(`remade ${c.repair.key}: ${remade ? `sha256 ${remade.sha256 ?? '(not recorded)'}` : 'absent'}, not the ${c.repair.expected.sha256} it held: the stages made from it run again`);
      }
    }
    await finish({ status: 'done', runId, summary: result?.summary, error: undefined });
    slog.info(`done in ${formatDuration(record.durationMs!)}${record.attempts > 1 ? ` (attempt ${record.attempts}, ${formatDuration(record.totalMs!)} in total)` : ''}`);
    return { outcome: { id: stage.id, outcome: decision.action === 'resume' ? 'resumed' : 'ran', reason: decision.reason, durationMs: record.durationMs }, runId };
  } catch (err) {
    stopAll(progresses);
    if (c.signal.aborted) {
      const reason = c.signal.reason;
      if (reason instanceof LeaseLostError) {
        // Another runner owns the run now: leave the records to it.
        clearInterval(heartbeat);
        await beating;
        return { outcome: { id: stage.id, outcome: 'interrupted', reason: reason.message } };
      }
      const why = `interrupted by ${reason instanceof Error ? reason.message : String(reason)}`;
      await finish({ status: 'interrupted', error: why });
      slog.warn(`${why}; stopped at a safe point after ${formatDuration(record.durationMs!)} — run again to resume`);
      return { outcome: { id: stage.id, outcome: 'interrupted', reason: why, durationMs: record.durationMs } };
    }
    const message = redactText(err instanceof Error ? err.message : String(err));
    await finish({ status: 'failed', error: message }).catch((e: unknown) => slog.error(`could not write the failure record: ${(e as Error).message}`));
    slog.error(`failed: ${message}`);
    if (err instanceof Error && err.stack) slog.debug(redactText(err.stack));
    return { outcome: { id: stage.id, outcome: 'failed', reason: message, durationMs: record.durationMs }, error: err };
  }
}

/**
 * The chain's stages that have a record, in chain order (what a stage's report shows as timings):
 * not start order, which a resumed or repaired stage would change from one run to the next.
 */
async function stageRuns(run: ObjectStore, stages: readonly StageDefinition[]): Promise<StageRun[]> {
  const records = await Promise.all(stages.map(async (s) => (await readRecord(run, s.id)).record));
  return records
    .filter((r): r is StageRecord => r !== undefined)
    .map((r) => ({ stage: r.stage, kind: r.kind, status: r.status, attempts: r.attempts, startedAt: r.startedAt, durationMs: r.durationMs, totalMs: r.totalMs, backend: r.backend }));
}

function stopAll(progresses: Progress[]) {
  for (const p of progresses) p.stop();
}
