/** The executor `pseudo.infer.executor` names (default local), with its settings. */
import { externalSection, slurmSection, type InferConfig } from '../../../pipeline/manifest/sections/pseudo.js';
import { externalExecutor } from './external.js';
import { localExecutor, type LocalSettings } from './local.js';
import { slurmExecutor } from './slurm.js';
import type { InferExecutor } from './types.js';

export type { ExecutorContext, ExecutorResult, InferExecutor, ShardRef } from './types.js';

/** The executor for a cluster setting; `local` is built by the stage (it plans workers and threads). */
export function makeExecutor(cfg: InferConfig, local: LocalSettings): InferExecutor {
  switch (cfg.executor ?? 'local') {
    case 'local':
      return localExecutor(local);
    case 'slurm':
      return slurmExecutor(cfg.slurm ?? slurmSection.parse({}));
    case 'external':
      return externalExecutor(cfg.external ?? externalSection.parse({}));
  }
}
