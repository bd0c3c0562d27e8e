/**
 * The Slurm commands the slurm executor uses, run as child processes (no Slurm library binding):
 * `sbatch --parsable` to submit, `squeue` for what is pending or running, `scontrol show job` for
 * how a finished task ended (no accounting database needed: slurmctld keeps finished jobs for
 * MinJobAge, 300 s by default), `scancel`. SLURM_CONF and the rest come from the environment.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A failed Slurm command, with its stderr. */
export class SlurmCommandError extends Error {
  override name = 'SlurmCommandError';
}

async function slurm(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    return (await run(cmd, args, { env, maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new SlurmCommandError(`${cmd} not found: the slurm executor needs the Slurm client commands (sbatch, squeue, scontrol, scancel) on PATH`);
    throw new SlurmCommandError(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Submits a batch script (given on stdin); returns the job id. */
export function sbatch(args: string[], script: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('sbatch', ['--parsable', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(new SlurmCommandError(e.code === 'ENOENT' ? 'sbatch not found: the slurm executor needs the Slurm client commands on PATH' : `sbatch: ${e.message}`)),
    );
    child.on('close', (code) => {
      // --parsable prints "<job id>[;<cluster>]".
      const id = /^(\d+)/.exec(out.trim())?.[1];
      if (code === 0 && id) resolve(id);
      else reject(new SlurmCommandError(`sbatch ${args.join(' ')} failed (exit ${code}): ${err.trim() || out.trim()}`));
    });
    child.stdin.end(script);
  });
}

export interface LiveTask {
  jobId: string;
  index: number;
  /** PENDING, RUNNING, COMPLETING, SUSPENDED, ... */
  state: string;
}

/** Array tasks of this user's jobs named `name` that Slurm still holds (pending, running, completing). */
export async function squeueByName(name: string, env: NodeJS.ProcessEnv): Promise<LiveTask[]> {
  const out = await slurm('squeue', ['--me', '--noheader', '--array', `--name=${name}`, '--format=%F|%K|%T'], env);
  const tasks: LiveTask[] = [];
  for (const line of out.split('\n')) {
    const [jobId, index, state] = line.trim().split('|');
    if (!jobId || !index || !state || !/^\d+$/.test(index)) continue;
    tasks.push({ jobId, index: Number(index), state });
  }
  return tasks;
}

export interface EndedTask {
  index: number;
  state: string;
  exitCode: number;
  signal: number;
}

/** How the tasks of array job `jobId` ended, as far as slurmctld still remembers (else an empty map). */
export async function scontrolTasks(jobId: string, env: NodeJS.ProcessEnv): Promise<Map<number, EndedTask>> {
  let out: string;
  try {
    out = await slurm('scontrol', ['--oneliner', 'show', 'job', jobId], env);
  } catch (err) {
    if (/Invalid job id/i.test((err as Error).message)) return new Map();
    throw err;
  }
  const tasks = new Map<number, EndedTask>();
  for (const line of out.split('\n')) {
    const field = (k: string) => new RegExp(`(?:^|\\s)${k}=(\\S+)`).exec(line)?.[1];
    const index = field('ArrayTaskId');
    if (!index || !/^\d+$/.test(index)) continue; // a pending range like 0-3 has not run yet
    const [code, sig] = (field('ExitCode') ?? '0:0').split(':').map(Number);
    tasks.set(Number(index), { index: Number(index), state: field('JobState') ?? 'UNKNOWN', exitCode: code ?? 0, signal: sig ?? 0 });
  }
  return tasks;
}

export async function scancel(jobIds: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (jobIds.length > 0) await slurm('scancel', jobIds, env);
}

/** `--array` spec of a set of indices: ranges where consecutive, e.g. [0,1,2,5,7,8] → "0-2,5,7-8". */
export function arraySpec(indices: number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
