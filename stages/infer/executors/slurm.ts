/**
 * The slurm executor: the infer workers as one Slurm job array, `sbatch --array=0-(N-1)` running
 * `selftrain worker infer --run <uri> --stage <id> --count N` (each task takes its index from
 * SLURM_ARRAY_TASK_ID). The stage then waits, showing progress from the store (a shard is done
 * when its prediction object exists), and looks at `squeue` to see which tasks are still pending
 * or running. A task that left the queue while some of its shards are missing ended badly
 * (failed, cancelled, killed by the time limit or a node failure): its index is submitted again,
 * at most `maxResubmits` times per stage run. A task that exited 2 (it cannot start: bad job,
 * dataset or teacher) stops the stage; shards with data problems (error objects) are reported.
 *
 * Everything needed to pick up where a runner left off is in Slurm and the store: tasks are found
 * by their job name (unique per run and stage, so a task submitted just before the runner died is
 * found too), and `<stage>/executor/slurm.json` records the array size and the job ids. A re-run
 * that finds tasks still queued attaches to them instead of submitting a second array. SIGINT or
 * SIGTERM to the runner cancels every task of the stage (scancel) and waits until Slurm lists none.
 * With ONNX Runtime each task runs `cpusPerTask` threads (Slurm's default allocation is 1 CPU).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { SlurmConfig } from '../../../pipeline/manifest/sections/pseudo.js';
import type { StoreSettings } from '../../../pipeline/store/settings.js';
import { DATA_ERROR_EXIT, SETUP_ERROR_EXIT } from '../executor.js';
import { errorKey, EXECUTOR_DIR } from '../layout.js';
import { selftrainCommand, shellQuote, workerArgs } from './command.js';
import { arraySpec, sbatch, scancel, scontrolTasks, squeueByName, type EndedTask, type LiveTask } from './slurm-cli.js';
import { pause, samplesIn, shardErrors, shardState } from './store-state.js';
import { defaultTasks, ownedBy, type ExecutorContext, type ExecutorResult, type InferExecutor } from './types.js';

export const SLURM_RECORD_KEY = `${EXECUTOR_DIR}slurm.json`;

export interface SlurmRecord {
  version: 1;
  jobName: string;
  /** Array size N: fixed before the first submission, so every task of the stage divides the shards alike. */
  count: number;
  submissions: { jobId: string; indices: number[]; at: string }[];
}

/** The job name of a stage's tasks: readable, and unique per run URI + stage. */
export function slurmJobName(runUri: string, stage: string): string {
  return `selftrain-${stage}-${createHash('sha256').update(runUri.replace(/\/+$/, '')).digest('hex').slice(0, 8)}`;
}

/** sbatch flags from the manifest (the array spec, job name and output file are added per submission). */
export function sbatchFlags(cfg: SlurmConfig): string[] {
  const flags: string[] = [];
  if (cfg.partition) flags.push(`--partition=${cfg.partition}`);
  if (cfg.timeLimit) flags.push(`--time=${cfg.timeLimit}`);
  if (cfg.cpusPerTask) flags.push(`--cpus-per-task=${cfg.cpusPerTask}`);
  if (cfg.gpusPerTask) flags.push(`--gpus-per-task=${cfg.gpusPerTask}`);
  if (cfg.memory) flags.push(`--mem=${cfg.memory}`);
  return [...flags, ...cfg.extraArgs];
}

/** The batch script every task runs. */
export function slurmScript(command: string[], runUri: string, stage: string, count: number, storeSettings: StoreSettings = {}, threads?: number): string {
  const argv = [...command, ...workerArgs(runUri, stage, count, { storeSettings, threads })].map(shellQuote).join(' ');
  return `#!/bin/sh\n# selftrain infer worker: the index comes from SLURM_ARRAY_TASK_ID.\nexec ${argv}\n`;
}

function describeEnd(t: EndedTask | undefined): string {
  if (!t) return 'no longer known to slurmctld';
  return `${t.state}, exit code ${t.exitCode}${t.signal ? `, signal ${t.signal}` : ''}`;
}

export function slurmExecutor(cfg: SlurmConfig): InferExecutor {
  const logDir = path.resolve(cfg.logDir);
  const pollMs = cfg.pollSeconds * 1000;
  const logFile = (name: string, jobId: string, index: number) => path.join(logDir, `${name}_${jobId}_${index}.log`);
  const tail = (file: string) => {
    try {
      return readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-15).join('\n');
    } catch {
      return `(no output file ${file})`;
    }
  };

  const readRecord = async (ctx: ExecutorContext): Promise<SlurmRecord | undefined> => {
    const body = await ctx.out.get(SLURM_RECORD_KEY).catch(() => undefined);
    if (!body) return undefined;
    const rec = JSON.parse(body.toString('utf8')) as SlurmRecord;
    return rec.version === 1 && Number.isInteger(rec.count) && Array.isArray(rec.submissions) ? rec : undefined;
  };
  const writeRecord = (ctx: ExecutorContext, rec: SlurmRecord) => ctx.out.put(SLURM_RECORD_KEY, JSON.stringify(rec, null, 1) + '\n', { contentType: 'application/json' });

  /** Cancels every task named `name` and waits until squeue lists none (at most a minute). */
  const cancelAll = async (ctx: ExecutorContext, name: string): Promise<void> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const live = await squeueByName(name, ctx.env);
      if (live.length === 0) return;
      if (Date.now() > deadline) throw new Error(`slurm: tasks of ${name} still listed by squeue a minute after scancel: ${[...new Set(live.map((t) => t.jobId))].join(', ')}`);
      await scancel([...new Set(live.map((t) => t.jobId))], ctx.env);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  return {
    name: 'slurm',

    async abandon(ctx) {
      const name = slurmJobName(ctx.runUri, ctx.stage);
      await cancelAll(ctx, name);
      await ctx.out.delete(SLURM_RECORD_KEY);
    },

    async run(ctx): Promise<ExecutorResult> {
      const name = slurmJobName(ctx.runUri, ctx.stage);
      const shardCount = ctx.shards.length;
      let rec = await readRecord(ctx);
      if (!rec || rec.jobName !== name) {
        rec = { version: 1, jobName: name, count: defaultTasks(shardCount, cfg.tasks), submissions: [] };
        await writeRecord(ctx, rec);
      }
      const count = rec.count;
      const command = cfg.command ?? selftrainCommand();
      mkdirSync(logDir, { recursive: true });
      const shardName = (n: number) => ctx.shards[n]!.name;
      /** Index → the job id of its latest submission (this run's or an earlier one's). */
      const latestJob = new Map<number, string>();
      for (const s of rec.submissions) for (const i of s.indices) latestJob.set(i, s.jobId);
      const resubmits = new Map<number, number>();
      /** Indices this stage run watches: submitted by it, or found running when it attached. */
      const watched = new Set<number>();
      let restarts = 0;
      let live: LiveTask[] = await squeueByName(name, ctx.env);
      if (live.length > 0) {
        for (const t of live) {
          watched.add(t.index);
          latestJob.set(t.index, t.jobId);
        }
        ctx.log.info(`slurm: attaching to job(s) ${[...new Set(live.map((t) => t.jobId))].join(', ')} (${live.length} of ${count} task(s) still pending or running) instead of submitting again`);
      }

      const submit = async (indices: number[]): Promise<void> => {
        // Error objects of these shards are from an earlier try: the new task retries them.
        for (const i of indices) for (const n of ownedBy(shardCount, i, count)) await ctx.out.delete(errorKey(shardName(n)));
        const flags = [...sbatchFlags(cfg), `--array=${arraySpec(indices)}`, `--job-name=${name}`, `--output=${path.join(logDir, '%x_%A_%a.log')}`];
        const jobId = await sbatch(flags, slurmScript(command, ctx.runUri, ctx.stage, count, ctx.storeSettings, ctx.onnx ? (cfg.cpusPerTask ?? 1) : undefined), ctx.env);
        rec!.submissions.push({ jobId, indices, at: new Date().toISOString() });
        await writeRecord(ctx, rec!);
        for (const i of indices) {
          latestJob.set(i, jobId);
          watched.add(i);
        }
        ctx.log.info(`slurm: submitted job ${jobId}: array ${arraySpec(indices)} of ${count} task(s); output in ${logDir}/${name}_${jobId}_<index>.log`);
      };

      let status = '';
      try {
        for (;;) {
          ctx.signal.throwIfAborted();
          // squeue first, then the store: a task that has left the queue has made all its puts, so
          // shards it still misses in the listing that follows are really missing.
          live = await squeueByName(name, ctx.env);
          const state = await shardState(ctx.out);
          const { done, failed } = state;
          ctx.progress(samplesIn(ctx.shards, done));
          const finished = (n: number) => done.has(shardName(n)) || failed.has(shardName(n));
          const unfinished = Array.from({ length: count }, (_, i) => i).filter((i) => ownedBy(shardCount, i, count).some((n) => !finished(n)));
          const liveIdx = new Set(live.map((t) => t.index));
          if (unfinished.length === 0) {
            // Nothing left: a task still listed has nothing to do (e.g. a late duplicate); do not leave it behind.
            if (live.length > 0) await cancelAll(ctx, name);
            const errors = shardErrors(state);
            return { tasks: count, restarts, errors };
          }
          const running = live.filter((t) => t.state === 'RUNNING').length;
          const now = `${done.size}/${shardCount} shards done; tasks: ${running} running, ${live.length - running} pending`;
          if (now !== status) {
            status = now;
            ctx.log.info(`slurm: ${status}`);
          }
          const idle = unfinished.filter((i) => !liveIdx.has(i));
          const toSubmit: number[] = [];
          const ended = new Map<string, Map<number, EndedTask>>();
          for (const i of idle) {
            if (!watched.has(i)) {
              toSubmit.push(i); // never submitted, or left over from an earlier stage run
              continue;
            }
            const jobId = latestJob.get(i)!;
            if (!ended.has(jobId)) ended.set(jobId, await scontrolTasks(jobId, ctx.env));
            const how = ended.get(jobId)!.get(i);
            const missing = ownedBy(shardCount, i, count).filter((n) => !finished(n)).length;
            const why = `task ${jobId}_${i} ended (${describeEnd(how)}) with ${missing} shard(s) missing`;
            if (how?.exitCode === SETUP_ERROR_EXIT) {
              throw new Error(`slurm: ${why}: the worker cannot start, a retry would not help. Its output (${logFile(name, jobId, i)}):\n${tail(logFile(name, jobId, i))}`);
            }
            if (how?.exitCode === DATA_ERROR_EXIT) {
              // It reported data problems it could not record in the store: nothing a retry fixes.
              throw new Error(`slurm: ${why}: it reported data problems. Its output (${logFile(name, jobId, i)}):\n${tail(logFile(name, jobId, i))}`);
            }
            const tries = resubmits.get(i) ?? 0;
            if (tries >= cfg.maxResubmits) {
              throw new Error(`slurm: ${why}, after ${tries} resubmission(s) (maxResubmits ${cfg.maxResubmits}); giving up. Its output (${logFile(name, jobId, i)}):\n${tail(logFile(name, jobId, i))}`);
            }
            resubmits.set(i, tries + 1);
            restarts++;
            ctx.log.warn(`slurm: ${why}; resubmitting index ${i} (${tries + 1}/${cfg.maxResubmits})`);
            toSubmit.push(i);
          }
          if (toSubmit.length > 0) await submit(toSubmit);
          await pause(pollMs, ctx.signal);
        }
      } catch (err) {
        if (ctx.signal.aborted) {
          ctx.log.warn(`slurm: stopping: cancelling the tasks of ${name}`);
          await cancelAll(ctx, name);
          ctx.log.info('slurm: squeue lists no task of this stage any more; finished shards are kept');
          throw ctx.signal.reason ?? err;
        }
        // A failure of the stage: leave nothing running behind it.
        await cancelAll(ctx, name).catch(() => undefined);
        throw err;
      }
    },
  };
}
