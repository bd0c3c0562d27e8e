/**
 * The external executor: the workers are started by someone else (a Kubernetes Indexed Job, an
 * AWS Batch array job, commands run by hand). The stage prints what to launch, filled in for this
 * run (./render.ts), stores it beside the stage's outputs (`<stage>/executor/`), and waits for the
 * prediction objects in the store with progress. It cannot restart or cancel what it did not
 * start: a shard with data problems is reported from its error object; a worker that never comes
 * shows as a stall in the progress (the stage waits until interrupted).
 */
import { createHash } from 'node:crypto';
import type { ExternalConfig } from '../../../pipeline/manifest/sections/pseudo.js';
import { ERRORS_DIR, EXECUTOR_DIR } from '../layout.js';
import { renderAwsBatchSubmission, renderCommands, renderKubernetesJob, type LaunchSpec } from './render.js';
import { pause, samplesIn, shardErrors, shardState } from './store-state.js';
import { defaultTasks, type ExecutorContext, type ExecutorResult, type InferExecutor } from './types.js';

/** Kubernetes object names are DNS labels: lower case, digits and '-', at most 63 characters. */
export function externalJobName(runUri: string, stage: string): string {
  const hash = createHash('sha256').update(runUri.replace(/\/+$/, '')).digest('hex').slice(0, 8);
  const base = `selftrain-${stage}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 50).replace(/-+$/, '');
  return `${base}-${hash}`;
}

/** What to launch, as the text to print and the object to store. */
export function launchInstructions(cfg: ExternalConfig, spec: LaunchSpec): { text: string; key: string; body: string } {
  switch (cfg.launcher) {
    case 'kubernetes': {
      const yaml = renderKubernetesJob(spec);
      return { text: `apply this Kubernetes Job (kubectl apply -f -):\n${yaml}`, key: `${EXECUTOR_DIR}kubernetes-job.yaml`, body: yaml };
    }
    case 'aws-batch': {
      const { command } = renderAwsBatchSubmission(spec);
      return { text: `submit this AWS Batch ${spec.count >= 2 ? 'array ' : ''}job (job definition: infra/aws-batch/job-definition.json):\n${command}`, key: `${EXECUTOR_DIR}aws-batch-submit.sh`, body: `#!/bin/sh\n${command}\n` };
    }
    case 'command': {
      const lines = renderCommands(spec);
      return { text: `run these ${lines.length} worker(s), anywhere that reaches the store:\n${lines.join('\n')}`, key: `${EXECUTOR_DIR}workers.sh`, body: `#!/bin/sh\n${lines.join(' &\n')} &\nwait\n` };
    }
  }
}

export function externalExecutor(cfg: ExternalConfig): InferExecutor {
  return {
    name: 'external',
    async run(ctx: ExecutorContext): Promise<ExecutorResult> {
      const count = defaultTasks(ctx.shards.length, cfg.tasks);
      // Failed shards of an earlier attempt are tried again by the workers started now.
      await ctx.out.deletePrefix(ERRORS_DIR);
      const spec: LaunchSpec = {
        runUri: ctx.runUri,
        stage: ctx.stage,
        count,
        name: externalJobName(ctx.runUri, ctx.stage),
        image: cfg.image,
        gpus: cfg.gpusPerTask,
        s3Secret: cfg.s3Secret,
        jobQueue: cfg.jobQueue,
        jobDefinition: cfg.jobDefinition,
        storeSettings: ctx.storeSettings,
      };
      const what = launchInstructions(cfg, spec);
      await ctx.out.put(what.key, what.body, { contentType: 'text/plain' });
      ctx.log.info(`external: waiting for ${count} worker(s) started outside selftrain; ${what.text}`);
      ctx.log.info(`external: also stored as ${ctx.out.uri.replace(/\/+$/, '')}/${what.key}`);
      let status = '';
      for (;;) {
        const state = await shardState(ctx.out);
        const { done, failed } = state;
        ctx.progress(samplesIn(ctx.shards, done));
        const now = `${done.size}/${ctx.shards.length} shards done${failed.size ? `, ${failed.size} failed` : ''}`;
        if (now !== status) {
          status = now;
          ctx.log.info(`external: ${status}`);
        }
        if (done.size + failed.size >= ctx.shards.length && ctx.shards.every((s) => done.has(s.name) || failed.has(s.name))) {
          const errors = shardErrors(state);
          return { tasks: count, restarts: 0, errors };
        }
        await pause(cfg.pollSeconds * 1000, ctx.signal);
      }
    },
  };
}
