/**
 * A bench script measuring in child processes (one configuration per process, so each has its own
 * engine, threads and peak RSS): runs `script` again in a child Node process with the same loader
 * flags (tsx) and `args`, and resolves with the JSON of the last line it prints on stdout.
 */
import { spawn } from 'node:child_process';

export function runBenchChild<T>(script: string, args: string[], label: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!) as T) : reject(new Error(`bench child ${label} exited with code ${code}`))));
  });
}
