/**
 * Private test daemons started by an infra/<name>/start.sh script (local S3, local Slurm): once
 * per test process, in a temp dir, stopped by the matching stop.sh when the process exits, or by a
 * detached watchdog if the process is killed. The `export NAME=value` lines start.sh prints are
 * set in process.env, so child processes (the CLI) see the same settings CI gives them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A base port with base..base+span-1 all free on host. */
export async function freePortRange(span: number, host = '127.0.0.1'): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (let p = base; p < base + span && ok; p++) ok = await portFree(p, host);
    if (ok) return base;
  }
  throw new Error(`no free range of ${span} ports`);
}

/** Runs `<infraDir>/start.sh <tmp dir> <port>` and arranges `stop.sh <tmp dir>` at exit; returns the dir. */
export async function startPrivateDaemon(infraDir: string, port: number): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), `selftrain-${path.basename(infraDir)}-`));
  const start = path.join(infraDir, 'start.sh');
  const stop = path.join(infraDir, 'stop.sh');
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [start, dir, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${start} failed (exit ${code}):\n${stderr}`))));
  });
  const stopNow = (): void => {
    spawnSync('bash', [stop, dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopNow);
  spawn('bash', ['-c', 'while kill -0 "$0" 2>/dev/null; do sleep 2; done; bash "$1" "$2" >/dev/null 2>&1; rm -rf "$2"', String(process.pid), stop, dir], {
    detached: true,
    stdio: 'ignore',
  }).unref();
  for (const line of out.split('\n')) {
    const m = /^export (\w+)=(.*)$/.exec(line.trim());
    if (m) process.env[m[1]!] = m[2]!;
  }
  return dir;
}
