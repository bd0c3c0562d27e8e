/**
 * Helpers of the end-to-end tests: start the real CLI on a manifest, watch its log for a stage
 * start, read a run's objects. The CLI is started from dist or sources (test/helpers/cli.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { cliArgv } from '../helpers/cli.js';
import { rng } from '../../pipeline/data/rng.js';

export interface CliRun {
  child: ChildProcess;
  /** SIGKILL the CLI and every process it started (infer workers): its whole process group, as
   * when a machine or container dies. Killing only the runner would leave orphan workers running. */
  killAll: () => void;
  /** Everything the child wrote to stderr so far (the runner logs there). */
  stderr: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>;
}

export function startCli(cwd: string, args: string[], env: NodeJS.ProcessEnv = process.env): CliRun {
  const [cmd, argv] = cliArgv(...args);
  const started = Date.now();
  // detached: the CLI leads a new process group, so killAll reaches its workers too.
  const child = spawn(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let exited = false;
  const killAll = () => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Awaited<CliRun['done']>>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { child, killAll, stderr: () => stderr, done };
}

/** Polls `pred` every 50 ms; rejects after `timeoutMs`, or as soon as `child` exits first. */
export async function waitUntil(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string, run?: CliRun): Promise<void> {
  const end = Date.now() + timeoutMs;
  let exited = false;
  void run?.done.then(() => (exited = true)); // done never rejects: it settles when the process exits
  while (!(await pred())) {
    if (exited) throw new Error(`the run ended before ${what}:\n${run!.stderr().slice(-4000)}`);
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${run ? `:\n${run.stderr().slice(-4000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A seeded PRNG, so the kill point of a failing CI run can be replayed. */
export const seededRandom = rng;

export async function readJson<T>(store: ObjectStore, key: string): Promise<T> {
  return JSON.parse((await store.get(key)).toString('utf8')) as T;
}

/** Keys under `prefix`, relative to it, sorted. */
export async function listRelative(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await store.list(prefix)).map((o) => o.key.slice(prefix.length)).sort();
}

/** Decoded lines of a gzip JSONL object (predictions, pseudo-labels). */
export async function readJsonlGz<T>(store: ObjectStore, key: string): Promise<T[]> {
  return gunzipSync(await store.get(key))
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}
