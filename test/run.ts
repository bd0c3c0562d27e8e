/**
 * `npm test`: node's test runner over every dist/test/**\/*.test.js (or the files given as
 * arguments), with the spec reporter on stdout as before, plus a collector of the tests skipped for
 * a missing extra (test/helpers/extras.ts). At the very end it prints ONE line naming what was
 * skipped and how to install it.
 *
 * It cannot hide a failure: the spec output is the runner's own, and the exit code is the runner's
 * (a signal is passed on as 128 + its number). Under CI=true a skip for a missing extra is itself a
 * failure (the tests throw before they can skip; this is the second line of defence).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXTRAS, SKIP_PREFIX, type Extra } from './helpers/extras.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...testFiles(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

/** "fashion-mnist ×3 (install: …)"-style pieces, most skipped first. */
export function summaryLine(lines: string[], ci: boolean): { text: string; skipped: number } {
  const byExtra = new Map<string, number>();
  let skipped = 0;
  for (const line of lines) {
    let rec: { reason?: string };
    try {
      rec = JSON.parse(line) as { reason?: string };
    } catch {
      continue;
    }
    if (!rec.reason?.startsWith(SKIP_PREFIX)) continue;
    const extra = rec.reason.slice(SKIP_PREFIX.length).split(':')[0]!;
    byExtra.set(extra, (byExtra.get(extra) ?? 0) + 1);
    skipped++;
  }
  if (skipped === 0) return { text: 'npm test: no test skipped for a missing extra', skipped };
  const parts = [...byExtra.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([extra, n]) => `${extra} ×${n} (install: ${(EXTRAS as Record<string, { install: string }>)[extra as Extra]?.install ?? 'see the skip reason above'})`);
  const tail = ci ? 'CI=true: a skip for a missing extra is a failure' : 'they did NOT run; with CI=true they fail instead';
  return { text: `!!!!! npm test: ${skipped} test(s)/suite(s) SKIPPED for missing extras — ${parts.join('; ')} — ${tail}`, skipped };
}

async function main(): Promise<number> {
  const files = process.argv.length > 2 ? process.argv.slice(2) : testFiles(here);
  const work = mkdtempSync(path.join(tmpdir(), 'selftrain-npm-test-'));
  const collected = path.join(work, 'extras.jsonl');
  try {
    const child = spawn(
      process.execPath,
      ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${path.join(here, 'helpers', 'extras-reporter.js')}`, `--test-reporter-destination=${collected}`, ...files],
      { stdio: 'inherit' },
    );
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    process.on('SIGINT', forward('SIGINT'));
    process.on('SIGTERM', forward('SIGTERM'));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    let lines: string[] = [];
    try {
      lines = readFileSync(collected, 'utf8').split('\n').filter(Boolean);
    } catch {
      process.stderr.write('npm test: the skip collector wrote nothing (the runner stopped early)\n');
    }
    const ci = process.env.CI === 'true';
    const { text, skipped } = summaryLine(lines, ci);
    process.stdout.write(`\n${text}\n`);
    const runner = signal ? 128 + (constants.signals[signal] ?? 1) : (code ?? 1);
    return runner !== 0 ? runner : ci && skipped > 0 ? 1 : 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
