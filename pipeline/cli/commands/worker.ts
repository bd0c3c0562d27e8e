/**
 * `selftrain worker infer --run <uri> [--stage <id>] --index i --count N`: one inference worker,
 * the unit both the local executor and a Kubernetes Indexed Job / AWS Batch array job run. It
 * processes the shards with `shard % N == i` that have no prediction object yet (with --claim, the
 * shards the local executor hands it one at a time over stdin instead). Without
 * --index it takes JOB_COMPLETION_INDEX (Kubernetes), AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch) or
 * SLURM_ARRAY_TASK_ID (Slurm); a single worker (--count 1) needs none.
 *
 * Progress goes to stdout as JSON lines (one event each, see stages/infer/worker.ts); exit code
 * 0 = all owned shards done, 3 = done except shards with data problems (listed as shard-error
 * events and on stderr), 2 = cannot start (bad job, dataset or teacher: a retry cannot help),
 * 1 = failure (worth a retry), 143 = interrupted.
 */
import { createInterface } from 'node:readline';
import { InvalidArgumentError, type Command } from 'commander';

function nonNegativeInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} expects an integer >= 0, got "${v}"`);
    return n;
  };
}

/** Variables orchestrators set to a task's index, in the order they are looked at. */
export const INDEX_VARIABLES = ['JOB_COMPLETION_INDEX', 'AWS_BATCH_JOB_ARRAY_INDEX', 'SLURM_ARRAY_TASK_ID'] as const;

/** --index, else the orchestrator's index variable; a clear error when neither is usable. */
export function resolveWorkerIndex(flag: number | undefined, env: NodeJS.ProcessEnv, count?: number): number {
  if (flag !== undefined) return flag;
  for (const name of INDEX_VARIABLES) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name}="${v}" is not a worker index (integer >= 0)`);
    return n;
  }
  // One worker is index 0 (e.g. an AWS Batch job of size 1 is a plain job, without an array index).
  if (count === 1) return 0;
  throw new Error('no worker index: pass --index, or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX), an AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX) or a Slurm job array (SLURM_ARRAY_TASK_ID)');
}

export function registerWorkerCommands(program: Command): void {
  const worker = program.command('worker').description('Run one worker of a sharded stage (local executor, Slurm, Kubernetes, AWS Batch)');
  worker
    .command('infer')
    .description('Teacher inference over the shards with shard % count == index that are not done yet')
    .requiredOption('--run <uri>', 'run prefix in the store, e.g. s3://bucket/runs/fmnist-demo')
    .option('--stage <id>', 'infer stage id (default: the only infer stage with a job in the run)')
    .option('--index <i>', 'this worker\'s index (default: JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX or SLURM_ARRAY_TASK_ID)', nonNegativeInt('--index'))
    .option('--count <n>', 'number of workers', nonNegativeInt('--count'), 1)
    .option('--endpoint <url>', 'S3 endpoint of the run, its datasets and teacher (else AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (else AWS_REGION)')
    .option('--threads <n>', 'ONNX Runtime threads (default: the cores of this machine)', nonNegativeInt('--threads'))
    .option('--claim', 'take shards one at a time from the launching process (the local executor) instead of shard % count == index: a {"event":"claim"} line on stdout asks, a shard number on stdin answers, "end" or end of input stops')
    .action(async (opts: { run: string; stage?: string; index?: number; count: number; endpoint?: string; region?: string; threads?: number; claim?: boolean }) => {
      // Loaded here, not at the top: every `selftrain` command would otherwise pay for tfjs and sharp.
      const { openStore } = await import('../../store/open.js');
      const { DATA_ERROR_EXIT, SETUP_ERROR_EXIT } = await import('../../../stages/infer/executor.js');
      const { listJobs } = await import('../../../stages/infer/job.js');
      const { runInferWorker, WorkerSetupError } = await import('../../../stages/infer/worker.js');
      const fail = (msg: string, code = 1): never => {
        process.stderr.write(`selftrain worker infer: ${msg}\n`);
        process.exit(code);
      };
      const controller = new AbortController();
      const stop = (sig: NodeJS.Signals) => {
        process.stderr.write(`selftrain worker infer: ${sig}: stopping after the current batch\n`);
        controller.abort(new Error(`interrupted by ${sig}`));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      let index: number;
      try {
        index = resolveWorkerIndex(opts.index, process.env, opts.count);
      } catch (err) {
        return fail((err as Error).message);
      }
      if (opts.count < 1) return fail('--count must be >= 1');
      if (index >= opts.count) return fail(`worker index ${index} is not below --count ${opts.count}`);
      const storeSettings = { endpoint: opts.endpoint, region: opts.region };
      const claims = opts.claim ? claimsOverStdio() : undefined;
      const run = openStore(opts.run, storeSettings);
      try {
        let stage = opts.stage;
        if (!stage) {
          const jobs = await listJobs(run);
          if (jobs.length !== 1) {
            return fail(jobs.length === 0 ? `no infer job in ${run.uri} (has the infer stage started?)` : `several infer stages in ${run.uri} (${jobs.join(', ')}): pass --stage`);
          }
          stage = jobs[0]!;
        }
        const result = await runInferWorker({
          run,
          storeSettings,
          stage,
          index,
          count: opts.count,
          threads: opts.threads || undefined,
          claim: claims?.claim,
          signal: controller.signal,
          emit: (e) => process.stdout.write(JSON.stringify(e) + '\n'),
        });
        if (result.errors.length > 0) {
          for (const e of result.errors) process.stderr.write(`shard ${e.shard}: ${e.error}\n`);
          process.exitCode = DATA_ERROR_EXIT;
        }
      } catch (err) {
        if (controller.signal.aborted) return fail((err as Error).message, 143);
        return fail((err as Error).message, err instanceof WorkerSetupError ? SETUP_ERROR_EXIT : 1);
      } finally {
        claims?.close();
        await run.close();
      }
    });
}

/**
 * The claim protocol of `--claim`: each `claim()` writes {"event":"claim"} to stdout and resolves with
 * the next line of stdin, a shard number; "end" or the end of stdin means no more shards. `close()`
 * stops reading, so the process can exit although the launching process keeps the pipe open.
 */
export function claimsOverStdio(input: NodeJS.ReadableStream & { destroy?: () => void } = process.stdin, write: (line: string) => void = (l) => process.stdout.write(l)) {
  const rl = createInterface({ input });
  const lines = rl[Symbol.asyncIterator]();
  return {
    async claim(): Promise<number | undefined> {
      write(`${JSON.stringify({ event: 'claim' })}\n`);
      const { value, done } = await lines.next();
      const answer = done ? 'end' : String(value).trim();
      if (answer === 'end') return undefined;
      const n = Number(answer);
      if (answer === '' || !Number.isInteger(n) || n < 0) throw new Error(`--claim: the launching process answered "${answer}", not a shard number or "end"`);
      return n;
    },
    close(): void {
      rl.close();
      input.destroy?.();
    },
  };
}
