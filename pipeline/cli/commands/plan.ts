/** `selftrain plan <manifest>`: each stage as done / pending / stale with the reason; runs nothing. */
import type { Command } from 'commander';
import type { RunnerCommandHooks } from './run.js';

interface PlanFlags {
  store?: string;
  json?: boolean;
}

export function registerPlanCommand(program: Command, hooks: RunnerCommandHooks = {}): void {
  program
    .command('plan')
    .description('show what `run` would do: each stage as done, pending or stale, and why (runs nothing)')
    .argument('<manifest>', 'manifest file (.yaml, .yml or .json)')
    .option('--store <uri>', "store root overriding the manifest's")
    .option('--json', 'print the plan as JSON')
    .action(async (file: string, flags: PlanFlags) => {
      const { loadManifest, ManifestError } = await import('../../manifest/load.js');
      const { openRun, StoreOptionError } = await import('../../runner/open-run.js');
      const { planStages } = await import('../../runner/plan.js');
      const { describeError } = await import('../../log/errors.js');
      let root: { close(): Promise<void> } | undefined;
      try {
        const { manifest } = await loadManifest(file);
        const buildChain = hooks.buildChain ?? (await import('../../runner/chain.js')).buildChain;
        const opened = await openRun(manifest, flags.store);
        root = opened.root;
        const plan = await planStages(buildChain(manifest), opened.run);
        if (flags.json) {
          const rows = plan.map(({ id, kind, deps, state, action, reason, fingerprint }) => ({ id, kind, deps, state, action, reason, fingerprint }));
          process.stdout.write(JSON.stringify({ run: opened.run.uri, stages: rows }, null, 2) + '\n');
          return;
        }
        const width = Math.max(...plan.map((p) => p.id.length));
        const lines = [`plan for ${manifest.name} at ${opened.run.uri}`];
        for (const p of plan) lines.push(`  ${p.id.padEnd(width)}  ${p.state.padEnd(7)}  ${p.reason}`);
        const { leaseKey, judgeLease, defaultLeaseTtlMs } = await import('../../runner/lease.js');
        const lease = await opened.run.get(leaseKey).then(
          (b) => JSON.parse(b.toString('utf8')) as Parameters<typeof judgeLease>[0],
          () => undefined,
        );
        if (lease) {
          const verdict = judgeLease(lease, defaultLeaseTtlMs);
          lines.push(verdict.takeable === 'no' ? `note: a runner is active right now: ${verdict.why}` : `note: a stale lease is left: ${verdict.why}`);
        }
        const todo = plan.filter((p) => p.action !== 'skip').length;
        lines.push(todo === 0 ? 'everything is up to date' : `${todo} of ${plan.length} stages would run`);
        process.stdout.write(lines.join('\n') + '\n');
      } catch (err) {
        if (err instanceof ManifestError || err instanceof StoreOptionError) {
          process.stderr.write(err.message + '\n');
          process.exitCode = 2;
          return;
        }
        process.stderr.write(`error: ${describeError(err)}\n`);
        process.exitCode = 1;
      } finally {
        await root?.close().catch(() => {});
      }
    });
}
