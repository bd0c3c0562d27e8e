/**
 * The Slurm cluster the executor tests submit to (a real one: slurmctld + slurmd + munge).
 *
 * 1. `SELFTRAIN_TEST_SLURM_CONF` set (CI's `.ci/run` starts infra/slurm/start.sh and exports it):
 *    use that cluster (SLURM_CONF is pointed at it for sbatch/squeue/scancel).
 * 2. Else, when slurm-wlm is installed and this process runs as root: start a private cluster
 *    (infra/slurm/start.sh) in a temp dir on free ports, once per test process, stopped on exit
 *    (a detached watchdog also stops it if the process is killed).
 * 3. Else skip (reason: a missing extra, ./extras.ts); with CI=true this fails instead.
 */
import * as path from 'node:path';
import { freePortRange, startPrivateDaemon } from './daemons.js';
import { hasExtra, skipReason } from './extras.js';
import { repoRoot } from './s3.js';

export interface SlurmTestEnv {
  /** Path of the cluster's slurm.conf (also in process.env.SLURM_CONF). */
  conf: string;
}

export const SLURM_SKIP_REASON = skipReason('slurm');

async function startPrivateCluster(): Promise<SlurmTestEnv> {
  // slurmctld and slurmd listen on all interfaces: PORT and PORT+1 must be free there.
  const port = await freePortRange(2, '0.0.0.0');
  const dir = await startPrivateDaemon(path.join(repoRoot(), 'infra', 'slurm'), port);
  return { conf: path.join(dir, 'slurm.conf') };
}

let envPromise: Promise<SlurmTestEnv | undefined> | undefined;

/** The cluster, or undefined when Slurm tests must skip. Throws under CI=true. */
export function slurmTestEnv(): Promise<SlurmTestEnv | undefined> {
  envPromise ??= (async () => {
    const conf = process.env.SELFTRAIN_TEST_SLURM_CONF;
    if (conf) {
      process.env.SLURM_CONF = conf;
      return { conf };
    }
    if (hasExtra('slurm')) return startPrivateCluster();
    if (process.env.CI === 'true') throw new Error(`CI=true but no Slurm cluster: set SELFTRAIN_TEST_SLURM_CONF (see infra/slurm/README.md). ${SLURM_SKIP_REASON}`);
    return undefined;
  })();
  return envPromise;
}
