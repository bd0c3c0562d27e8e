/** The executor `pseudo.infer.executor` names (default local), with its settings. */
import { availableParallelism } from 'node:os';
import { externalSection, slurmSection, type InferConfig } from '../../../pipeline/manifest/sections/pseudo.js';
import { externalExecutor } from './external.js';
import { localExecutor } from './local.js';
import { slurmExecutor } from './slurm.js';
import type { InferExecutor } from './types.js';

export type { ExecutorContext, ExecutorResult, InferExecutor, ShardRef } from './types.js';

export function makeExecutor(cfg: InferConfig): InferExecutor {
  switch (cfg.executor ?? 'local') {
    case 'local':
      return localExecutor({ workers: cfg.workers ?? availableParallelism(), maxRestarts: cfg.maxRestarts });
    case 'slurm':
      return slurmExecutor(cfg.slurm ?? slurmSection.parse({}));
    case 'external':
      return externalExecutor(cfg.external ?? externalSection.parse({}));
  }
}
