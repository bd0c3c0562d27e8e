/**
 * `selftrain report <run-uri> --out <dir>`: copies a run's report (report.md, report.json and the
 * charts it names) from the store to a local directory, keeping the relative links of report.md.
 */
import type { Command } from 'commander';
import { reportCommandError } from './fail.js';

interface ReportFlags {
  out: string;
  endpoint?: string;
  region?: string;
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description("copy a run's evaluation report (report.md, report.json, charts) to a local directory")
    .argument('<run-uri>', 'the run prefix: <store root>/<manifest name>, e.g. file://./runs/demo or s3://bucket/runs/demo')
    .requiredOption('--out <dir>', 'local directory to write report.md, report.json and charts/ into')
    .option('--endpoint <url>', 'S3 endpoint (else AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (else AWS_REGION)')
    .action(async (runUri: string, flags: ReportFlags) => {
      const { resolveStoreOption, openStoreUri } = await import('../../runner/open-run.js');
      const { copyReport } = await import('../../report/copy.js');
      let store: { close(): Promise<void> } | undefined;
      try {
        const uri = resolveStoreOption(runUri, 'run URI');
        const run = await openStoreUri(uri, { s3: { endpoint: flags.endpoint, region: flags.region } });
        store = run;
        const files = await copyReport(run, flags.out);
        process.stdout.write(`copied ${files.length} files to ${flags.out}: ${files.join(', ')}\n`);
      } catch (err) {
        await reportCommandError(err);
      } finally {
        await store?.close().catch(() => {});
      }
    });
}
