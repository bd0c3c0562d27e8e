/**
 * `selftrain verify <run-uri>`: reads every object of a run back and checks it against the digests
 * recorded when it was written and against the run's own records (pipeline/runner/verify-run.ts).
 * Prints every problem, one per line, and exits 1 when there is any.
 */
import type { Command } from 'commander';
import { reportCommandError } from './fail.js';

interface VerifyFlags {
  endpoint?: string;
  region?: string;
  decode?: boolean;
  json?: boolean;
}

/** `<root>/<name>` → `<root>`: datasets live beside the runs, under the store root. */
function parentUri(uri: string): string {
  const trimmed = uri.replace(/\/+$/, '');
  const cut = trimmed.lastIndexOf('/');
  return cut > trimmed.indexOf('://') + 2 ? trimmed.slice(0, cut) : trimmed;
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description("read every object of a run back: each against the sha256 recorded when it was written, checkpoints, models and summaries against the run's records, and the run's datasets against their dataset.json; exit 1 on any problem")
    .argument('<run-uri>', 'the run prefix: <store root>/<manifest name>, e.g. file://./runs/demo or s3://bucket/runs/demo')
    .option('--endpoint <url>', 'S3 endpoint (else AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (else AWS_REGION)')
    .option('--decode', "also decode every image of the run's datasets (slow on big sets)")
    .option('--json', 'print the result as JSON')
    .action(async (runUri: string, flags: VerifyFlags) => {
      const { resolveStoreOption, openStoreUri } = await import('../../runner/open-run.js');
      const { verifyRun } = await import('../../runner/verify-run.js');
      const { fmtBytes } = await import('../../runner/estimate.js');
      const stores: { close(): Promise<void> }[] = [];
      try {
        const uri = resolveStoreOption(runUri, 'run URI');
        const s3 = { s3: { endpoint: flags.endpoint, region: flags.region } };
        const run = await openStoreUri(uri, s3);
        stores.push(run);
        const root = await openStoreUri(parentUri(uri), s3);
        stores.push(root);
        if ((await run.list('state/')).length === 0) {
          process.stderr.write(`no stage records under ${run.uri.replace(/\/$/, '')}/state/: nothing has run here (the run URI is <store root>/<manifest name>)\n`);
          process.exitCode = 1;
          return;
        }
        if (await run.head('lease')) process.stderr.write('warning: a runner holds this run\'s lease: objects may change while they are verified\n');
        const tty = process.stderr.isTTY;
        const r = await verifyRun(run, root, {
          decode: flags.decode,
          onProgress: (what, done, total) => {
            if (tty) process.stderr.write(`\r  ${what}: ${done}/${total}\x1b[K`);
          },
        });
        if (tty) process.stderr.write('\r\x1b[K');
        if (flags.json) {
          process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        } else {
          const lines = [`run ${r.run}: ${r.objects} objects (${fmtBytes(r.bytes)}), ${r.recorded} checked against their recorded sha256`];
          if (r.unrecorded.length > 0) lines.push(`  ${r.unrecorded.length} without a recorded sha256 (written by another tool, or by a write cut short): ${r.unrecorded.slice(0, 5).join(', ')}${r.unrecorded.length > 5 ? ', …' : ''}`);
          for (const d of r.datasets) lines.push(`  dataset ${d.name}: ${d.uri}: ${d.shards} shards, ${d.samples} samples${d.ok ? '' : ' (problems below)'}`);
          for (const p of r.problems) lines.push(`problem: ${p}`);
          lines.push(r.problems.length === 0 ? 'ok: no problems' : `FAILED: ${r.problems.length} problem(s)`);
          process.stdout.write(lines.join('\n') + '\n');
        }
        if (r.problems.length > 0) process.exitCode = 1;
      } catch (err) {
        await reportCommandError(err);
      } finally {
        for (const s of stores) await s.close().catch(() => {});
      }
    });
}
