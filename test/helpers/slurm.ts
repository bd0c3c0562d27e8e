/**
 * The Slurm cluster the executor tests submit to (a real one: slurmctld + slurmd + munge).
 *
 * 1. `SELFTRAIN_TEST_SLURM_CONF` set (CI's `.ci/run` starts infra/slurm/start.sh and exports it):
 *    use that cluster (SLURM_CONF is pointed at it for sbatch/squeue/scancel).
 * 2. Else, when slurm-wlm is installed and this process runs as root: start a private cluster
 *    (infra/slurm/start.sh) in a temp dir on free ports, once per test process, stopped on exit
 *    (a detached watchdog also stops it if the process is killed).
 * 3. Else skip with a loud line; with CI=true this fails instead.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { freePortRange, startPrivateDaemon } from './daemons.js';
import { repoRoot } from './s3.js';

export interface SlurmTestEnv {
  /** Path of the cluster's slurm.conf (also in process.env.SLURM_CONF). */
  conf: string;
}

export const SLURM_SKIP_REASON =
  'Slurm tests skipped: no SELFTRAIN_TEST_SLURM_CONF and no usable Slurm. Enable them with ' +
  '`apt-get install --no-install-recommends slurm-wlm slurmctld slurmd munge` and run as root (the tests then start ' +
  'a private cluster), or start one with `eval "$(infra/slurm/start.sh /tmp/slurm)"`.';

const BINARIES = ['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/munged', '/usr/bin/sbatch'];

export function slurmInstalled(): boolean {
  return BINARIES.every((b) => existsSync(b)) && process.getuid?.() === 0;
}

async function startPrivateCluster(): Promise<SlurmTestEnv> {
  // slurmctld and slurmd listen on all interfaces: PORT and PORT+1 must be free there.
  const port = await freePortRange(2, '0.0.0.0');
  const dir = await startPrivateDaemon(path.join(repoRoot(), 'infra', 'slurm'), port);
  return { conf: path.join(dir, 'slurm.conf') };
}

let envPromise: Promise<SlurmTestEnv | undefined> | undefined;

/** The cluster, or undefined (after one loud line) when Slurm tests must skip. Throws under CI=true. */
export function slurmTestEnv(): Promise<SlurmTestEnv | undefined> {
  envPromise ??= (async () => {
    const conf = process.env.SELFTRAIN_TEST_SLURM_CONF;
    if (conf) {
      process.env.SLURM_CONF = conf;
      return { conf };
    }
    if (slurmInstalled()) return startPrivateCluster();
    if (process.env.CI === 'true') throw new Error(`CI=true but no Slurm cluster: set SELFTRAIN_TEST_SLURM_CONF (see infra/slurm/README.md). ${SLURM_SKIP_REASON}`);
    console.error(`\n!!!!! ${SLURM_SKIP_REASON}\n`);
    return undefined;
  })();
  return envPromise;
}
