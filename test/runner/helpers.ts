/** Shared helpers for runner tests: temp dirs, toy manifests, the toy CLI in a child process. */
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
export const toyCliPath = fileURLToPath(new URL(`./fixtures/toy-cli${ext}`, import.meta.url));

export function tempDir(t: { after(fn: () => void): void }, label = 'runner'): string {
  const dir = mkdtempSync(path.join(tmpdir(), `selftrain-${label}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A valid manifest object; `patch` deep-merges over it. */
export function toyManifest(patch: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    name: 'toy',
    store: 'file://./runs',
    seed: 7,
    iterations: 1,
    datasets: { labeled: 'fashion-mnist:train', unlabeled: 'fashion-mnist:train', eval: 'fashion-mnist:test' },
    teacher: { model: { name: 'resnet-rs-26-w0.25-small' }, train: { epochs: 1, batchSize: 32 } },
    student: { model: { name: 'resnet-rs-26-w0.25-small' }, train: { epochs: 1, batchSize: 32 } },
    pseudo: { select: { threshold: 0.3 } },
    // The toy chain's stages as the runner tests count them: no separate labeled-only control.
    evaluate: { control: 'off' },
  };
  return merge(base, patch);
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export function writeManifest(dir: string, manifest: Record<string, unknown>, file = 'manifest.yaml'): string {
  const p = path.join(dir, file);
  writeFileSync(p, file.endsWith('.json') ? JSON.stringify(manifest, null, 2) : stringify(manifest));
  return p;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ToyEnv {
  units?: number;
  unitMs?: number;
  journal?: string;
  failAt?: string;
  unitBytes?: number;
  /** Stage kinds' code versions over the real ones, e.g. { select: 2 }. */
  codeVersions?: Record<string, number>;
  /** The run SIGKILLs itself right after committing the object this glob names (pipeline/store/kill-point.ts). */
  killAfterPut?: string;
  /** Period of the running stage's record updates. */
  recordHeartbeatMs?: number;
  leaseTtlMs?: number;
  heartbeatMs?: number;
}

function envOf(toy: ToyEnv): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TOY_UNITS: String(toy.units ?? 4),
    TOY_UNIT_MS: String(toy.unitMs ?? 1),
    TOY_JOURNAL: toy.journal ?? '',
    TOY_FAIL_AT: toy.failAt ?? '',
    TOY_UNIT_BYTES: String(toy.unitBytes ?? 0),
    TOY_CODE_VERSIONS: toy.codeVersions ? JSON.stringify(toy.codeVersions) : '',
    SELFTRAIN_KILL_AFTER_PUT: toy.killAfterPut ?? '',
    TOY_RECORD_HEARTBEAT_MS: String(toy.recordHeartbeatMs ?? ''),
    TOY_LEASE_TTL_MS: String(toy.leaseTtlMs ?? ''),
    TOY_LEASE_HEARTBEAT_MS: String(toy.heartbeatMs ?? ''),
    SELFTRAIN_PROGRESS_INTERVAL_S: '0.05',
  };
}

/** Starts the toy CLI (the runner's real commands over the toy chain) in `cwd`. */
export function startToy(cwd: string, args: string[], toy: ToyEnv = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const started = Date.now();
  const child = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), toyCliPath, ...args], {
    cwd,
    env: envOf(toy),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return { child, done };
}

export function runToy(cwd: string, args: string[], toy: ToyEnv = {}): Promise<CliResult> {
  return startToy(cwd, args, toy).done;
}

export interface JournalEntry {
  event: 'start' | 'done';
  stage: string;
  unit: number;
  execId: string;
}

export function readJournal(file: string): JournalEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [event, stage, unit, execId] = line.split(' ');
      return { event: event as 'start' | 'done', stage: stage!, unit: Number(unit), execId: execId! };
    });
}

/** Polls until `pred` is true (or fails after `timeoutMs`). */
export async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
