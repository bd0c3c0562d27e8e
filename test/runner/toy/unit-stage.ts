/**
 * A toy stage for runner tests: it does the same shape of work as a real stage, without a model.
 * `units` units of work, each committed as one output object `<outPrefix>unit-<i>.json`; units
 * already committed are skipped on resume; the abort signal is checked after each commit (the
 * safe point); a final `<outPrefix>result.json` is written last and is the declared output.
 *
 * Every execution appends to an optional local journal (O_APPEND, one short line per write, so
 * lines never interleave): `start <stage> <unit> <execId>` before the work and
 * `done <stage> <unit> <execId>` after the commit. Tests count these against the committed
 * objects (each holding its execId) to prove every unit was committed exactly once.
 */
import { appendFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StageContext, StageDefinition, StageResult } from '../../../pipeline/runner/stage.js';

export interface ToyOptions {
  units: number;
  /** Simulated work per unit. */
  unitMs: number;
  /** Local journal file (see above); none when undefined. */
  journal?: string;
  /** Throw at this unit of this stage (simulates a stage bug) — `stageId:unit`. */
  failAt?: string;
  /** Padding per unit object, for tests that fill a disk. Default 0. */
  unitBytes?: number;
}

export const toyUnitKey = (outPrefix: string, unit: number) => `${outPrefix}unit-${String(unit).padStart(4, '0')}.json`;

export async function runToyUnits(ctx: StageContext, stageId: string, deps: string[], opts: ToyOptions): Promise<StageResult> {
  // A real stage reads its inputs; the toy checks they exist, which proves the runner's ordering.
  for (const dep of deps) {
    if (!(await ctx.run.head(`${dep}/result.json`))) throw new Error(`input ${dep}/result.json missing`);
  }
  const committed = new Set((await ctx.run.list(`${ctx.outPrefix}unit-`)).map((o) => o.key));
  const progress = ctx.progress('units', opts.units, 'units');
  let executed = 0;
  let done = 0;
  for (let unit = 0; unit < opts.units; unit++) {
    const key = toyUnitKey(ctx.outPrefix, unit);
    if (committed.has(key)) {
      progress.update(++done);
      continue;
    }
    const execId = randomUUID();
    if (opts.journal) appendFileSync(opts.journal, `start ${stageId} ${unit} ${execId}\n`);
    if (opts.failAt === `${stageId}:${unit}`) throw new Error(`toy failure injected at unit ${unit}`);
    await sleep(opts.unitMs);
    await ctx.run.put(key, JSON.stringify({ stage: stageId, unit, execId, ...(opts.unitBytes ? { padding: '.'.repeat(opts.unitBytes) } : {}) }));
    if (opts.journal) appendFileSync(opts.journal, `done ${stageId} ${unit} ${execId}\n`);
    executed++;
    progress.update(++done);
    // Safe point: the unit is committed; stop here if asked to.
    if (ctx.signal.aborted) throw ctx.signal.reason;
  }
  progress.stop();
  await ctx.run.put(`${ctx.outPrefix}result.json`, JSON.stringify({ stage: stageId, units: opts.units }));
  return { summary: { units: opts.units, executed, skipped: opts.units - executed } };
}

/** Replaces a chain's work with toy units, keeping ids, deps and configs (so fingerprints behave as real). */
export function toyify<S extends StageDefinition<string, unknown>>(stages: S[], opts: ToyOptions): S[] {
  return stages.map((s) => ({
    ...s,
    needsBackend: false,
    outputs: [`${s.id}/result.json`],
    run: (ctx: StageContext) => runToyUnits(ctx, s.id, s.deps, opts),
  }));
}
