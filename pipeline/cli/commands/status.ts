/** `selftrain status <run-uri>`: the stage records of a run (status, timings, summary) and its lease. */
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
    .description("show a run's stage records (status, attempts, timings, backend, summary) and who holds its lease")
    .argument('<run-uri>', 'the run prefix: <store root>/<manifest name>, e.g. file://./runs/demo or s3://bucket/runs/demo')
    .option('--endpoint <url>', 'S3 endpoint (else AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (else AWS_REGION)')
    .option('--json', 'print records as JSON')
    .action(async (runUri: string, flags: StatusFlags) => {
      const { resolveStoreOption, openStoreUri } = await import('../../runner/open-run.js');
      const { listRecords } = await import('../../runner/record.js');
      const { leaseKey, judgeLease, defaultLeaseTtlMs } = await import('../../runner/lease.js');
      const { formatDuration, formatFields } = await import('../../log/format.js');
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
          lines.push(`lease: ${verdict.takeable === 'no' ? 'held by ' : 'stale — '}${verdict.why}`);
        } else lines.push('lease: free (no runner active)');
        const width = Math.max(5, ...records.map((r) => r.stage.length));
        lines.push(`  ${'STAGE'.padEnd(width)}  ${'STATUS'.padEnd(11)}  ${'TRIES'.padEnd(5)}  ${'TIME'.padEnd(8)}  ${'BACKEND'.padEnd(8)}  ENDED / SUMMARY`);
        for (const r of records) {
          const time = r.totalMs !== undefined ? formatDuration(r.totalMs) : r.status === 'running' ? `since ${r.startedAt.slice(11, 19)}` : '-';
          lines.push(
            `  ${r.stage.padEnd(width)}  ${r.status.padEnd(11)}  ${String(r.attempts).padEnd(5)}  ${time.padEnd(8)}  ${(r.backend ?? '-').padEnd(8)}  ${r.endedAt ?? '-'}${r.summary ? '  ' + formatFields(r.summary) : ''}`,
          );
          if (r.error) lines.push(`  ${' '.repeat(width)}  error: ${r.error}`);
        }
        for (const p of problems) lines.push(`warning: ${p}`);
        process.stdout.write(lines.join('\n') + '\n');
      } catch (err) {
        await reportCommandError(err);
      } finally {
        await store?.close().catch(() => {});
      }
    });
}
