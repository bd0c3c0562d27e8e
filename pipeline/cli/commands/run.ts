/**
 * `selftrain run <manifest>`: runs the manifest's stage chain, resumably (see pipeline/runner/).
 * Registers the runner's sibling commands too (validate, plan, status), so the CLI wires the
 * whole group with one line.
 *
 * Exit codes: 0 done or up to date; 1 a stage failed, the run is locked by another runner, or the
 * store failed; 2 bad manifest or bad option; 130 / 143 stopped by SIGINT / SIGTERM.
 *
 * Heavy modules (runner, store, tfjs) are imported inside the action, so `--help` and an
 * up-to-date run start quickly.
 */
import type { Command } from 'commander';
import type { ChainBuilder } from '../../runner/chain.js';
import type { LeaseOptions } from '../../runner/lease.js';
import { registerValidateCommand } from './validate.js';
import { registerPlanCommand } from './plan.js';
import { registerStatusCommand } from './status.js';

export const exitCodes = { ok: 0, failed: 1, usage: 2, SIGINT: 130, SIGTERM: 143 } as const;

/** Test seams: the toy chain in runner tests, short lease timings. Not user-facing. */
export interface RunnerCommandHooks {
  buildChain?: ChainBuilder;
  lease?: Pick<LeaseOptions, 'ttlMs' | 'heartbeatMs'>;
  /** How often a running stage's record is rewritten (default RECORD_HEARTBEAT_MS). */
  recordHeartbeatMs?: number;
}

interface RunFlags {
  store?: string;
  force?: boolean;
  jsonLogs?: boolean;
  verbose?: boolean;
}

export function registerRunCommands(program: Command, hooks: RunnerCommandHooks = {}): void {
  program
    .command('run')
    .description('run (or resume) the experiment described by a manifest; finished stages are skipped')
    .argument('<manifest>', 'manifest file (.yaml, .yml or .json)')
    .option('--store <uri>', "store root overriding the manifest's (file://<dir>, s3://<bucket>/<prefix>, or a directory)")
    .option('--force', 'take over the run from a runner whose lease expired (no heartbeat)')
    .option('--json-logs', 'log one JSON object per line (for machines)')
    .option('--verbose', 'debug logs and stack traces')
    .action(async (file: string, flags: RunFlags) => {
      process.exitCode = await runCommand(file, flags, hooks);
    });
  registerValidateCommand(program, hooks);
  registerPlanCommand(program, hooks);
  registerStatusCommand(program);
}

async function runCommand(file: string, flags: RunFlags, hooks: RunnerCommandHooks): Promise<number> {
  const { createCliOutput } = await import('../../log/output.js');
  const out = createCliOutput({ json: flags.jsonLogs, level: flags.verbose ? 'debug' : 'info' });
  const { log } = out;
  const { loadManifest, ManifestError } = await import('../../manifest/load.js');
  const { describeError, errorStack } = await import('../../log/errors.js');

  let manifest;
  try {
    manifest = (await loadManifest(file)).manifest;
  } catch (err) {
    if (err instanceof ManifestError) {
      for (const line of err.message.split('\n')) log.error(line);
      return exitCodes.usage;
    }
    throw err;
  }

  // First signal: abort the stage at its next safe point. Second: leave at once (the records
  // still say `running`, which the next run resumes like after a kill -9).
  const controller = new AbortController();
  let received: 'SIGINT' | 'SIGTERM' | undefined;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
    if (received) {
      log.error(`${sig} again: exiting now; the next run resumes`);
      out.close();
      process.exit(exitCodes[sig]);
    }
    received = sig;
    log.warn(`${sig} received: stopping at the next safe point (send it again to exit at once)`);
    controller.abort(new Error(sig));
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  let root: { close(): Promise<void> } | undefined;
  try {
    const { openRun, StoreOptionError } = await import('../../runner/open-run.js');
    const { runStages } = await import('../../runner/run-stages.js');
    const { LeaseBusyError } = await import('../../runner/lease.js');
    const { formatDuration } = await import('../../log/format.js');
    const buildChain = hooks.buildChain ?? (await import('../../runner/chain.js')).buildChain;
    try {
      const opened = await openRun(manifest, flags.store, log);
      root = opened.root;
      const stages = buildChain(manifest);
      log.debug(`run ${manifest.name} at ${opened.run.uri}: ${stages.map((s) => s.id).join(', ')}`);
      const startMs = Date.now();
      const outcome = await runStages({
        stages,
        run: opened.run,
        root: opened.root,
        storeSettings: opened.storeSettings,
        log,
        progress: out.progress,
        signal: controller.signal,
        force: flags.force,
        lease: { ...hooks.lease, command: `selftrain run ${file}` },
        recordHeartbeatMs: hooks.recordHeartbeatMs,
        initBackend: async () => {
          const { initBackend } = await import('../../backend/select.js');
          const sel = await initBackend(manifest.backend);
          return { name: sel.name, summary: sel.summary };
        },
      });
      const count = (k: string) => outcome.stages.filter((s) => s.outcome === k).length;
      if (outcome.status === 'done') {
        if (outcome.upToDate) {
          log.info(`everything is up to date: ${stages.length} stages, nothing to do (${process.uptime().toFixed(2)} s)`);
        } else {
          log.info(`run ${manifest.name} complete in ${formatDuration(Date.now() - startMs)}: ${count('ran')} ran, ${count('resumed')} resumed, ${count('skipped')} up to date`);
        }
        return exitCodes.ok;
      }
      if (outcome.status === 'interrupted') {
        log.warn(`run ${manifest.name} stopped by ${received ?? 'a signal'}; run the same command again to resume`);
        return received ? exitCodes[received] : exitCodes.SIGINT;
      }
      const failed = outcome.stages.find((s) => s.outcome === 'failed' || s.outcome === 'interrupted');
      log.error(`run ${manifest.name} failed${failed ? ` at stage ${failed.id}` : ''}: ${outcome.error ?? 'unknown error'}`);
      return exitCodes.failed;
    } catch (err) {
      if (err instanceof StoreOptionError) {
        log.error(err.message);
        return exitCodes.usage;
      }
      if (err instanceof LeaseBusyError) {
        log.error(err.message);
        return exitCodes.failed;
      }
      throw err;
    }
  } catch (err) {
    log.error(describeError(err));
    const stack = errorStack(err);
    if (stack) log.debug(stack);
    return exitCodes.failed;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    out.close();
    await root?.close().catch(() => {});
  }
}
