/**
 * `selftrain status <run-uri>`: a compact table of the run's stages (status, tries, time, backend,
 * key numbers; pipeline/runner/status-table.ts) and who holds its lease; `--json` prints the full
 * stage records.
 */
import type { Command } from 'commander';
import { reportCommandError } from './fail.js';
import { trimUri } from '../../store/uri.js';

interface StatusFlags {
  endpoint?: string;
  region?: string;
  json?: boolean;
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description("show a run's stages (status, tries, time, backend, key numbers) and who holds its lease; --json for the full records")
    .argument('<run-uri>', 'the run prefix: <store root>/<manifest name>, e.g. file://./runs/demo or s3://bucket/runs/demo')
    .option('--endpoint <url>', 'S3 endpoint (else AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (else AWS_REGION)')
    .option('--json', 'print the full stage records as JSON')
    .action(async (runUri: string, flags: StatusFlags) => {
      const { resolveStoreOption, openStoreUri } = await import('../../runner/open-run.js');
      const { listRecords } = await import('../../runner/record.js');
      const { leaseKey, judgeLease, defaultLeaseTtlMs } = await import('../../runner/lease.js');
      const { fit, statusTable } = await import('../../runner/status-table.js');
      const { NotFoundError } = await import('../../store/types.js');
      let store: { close(): Promise<void> } | undefined;
      try {
        const uri = resolveStoreOption(runUri, 'run URI');
        const run = await openStoreUri(uri, { s3: { endpoint: flags.endpoint, region: flags.region } });
        store = run;
        const { records, problems } = await listRecords(run);
        let lease: unknown;
        try {
          lease = JSON.parse((await run.get(leaseKey)).toString('utf8'));
        } catch (err) {
          if (!(err instanceof NotFoundError) && !(err instanceof SyntaxError)) throw err;
        }
        records.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
        if (flags.json) {
          process.stdout.write(JSON.stringify({ run: run.uri, lease: lease ?? null, records, problems }, null, 2) + '\n');
          return;
        }
        if (records.length === 0 && problems.length === 0) {
          process.stderr.write(`no stage records under ${trimUri(run.uri)}/state/: nothing has run here (the run URI is <store root>/<manifest name>)\n`);
          process.exitCode = 1;
          return;
        }
        const lines = [`run ${run.uri}`];
        if (lease) {
          const h = lease as Parameters<typeof judgeLease>[0] & object;
          const verdict = judgeLease(h, defaultLeaseTtlMs);
          lines.push(fit(`lease: ${verdict.takeable === 'no' ? 'held by ' : 'stale — '}${verdict.why}`));
        } else lines.push('lease: free (no runner active)');
        lines.push(...statusTable(records));
        for (const p of problems) lines.push(fit(`warning: ${p}`));
        lines.push('full records: --json');
        process.stdout.write(lines.join('\n') + '\n');
      } catch (err) {
        await reportCommandError(err);
      } finally {
        await store?.close().catch(() => {});
      }
    });
}
