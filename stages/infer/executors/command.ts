/**
 * The command line of one infer worker, shared by every executor: `selftrain worker infer --run
 * <uri> --stage <id> --count N [--index i]`. By default `selftrain` is this Node binary running
 * this installation's CLI (what the local executor spawns, and what cluster tasks run when the
 * installation is on a filesystem the nodes share).
 */
import { fileURLToPath } from 'node:url';
import { storeSettingsArgs, type StoreSettings } from '../../../pipeline/store/settings.js';

// Same extension as this file: .ts under tsx, .js from dist.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
export const cliPath = fileURLToPath(new URL(`../../../pipeline/cli/main${ext}`, import.meta.url));

/** argv that runs `selftrain` here: Node (with a tsx loader passed through, not the test runner's flags) + the CLI. */
export function selftrainCommand(): string[] {
  return [process.execPath, ...process.execArgv.filter((a) => !a.startsWith('--test')), cliPath];
}

/**
 * The worker's arguments after `selftrain`. Without `index`, the worker takes its orchestrator's
 * index variable; the run's store settings travel as flags (the workers' environment may not say).
 */
export function workerArgs(runUri: string, stage: string, count: number, o: { index?: number; storeSettings?: StoreSettings; threads?: number } = {}): string[] {
  return [
    'worker',
    'infer',
    '--run',
    runUri,
    '--stage',
    stage,
    '--count',
    String(count),
    ...(o.index === undefined ? [] : ['--index', String(o.index)]),
    ...storeSettingsArgs(o.storeSettings ?? {}),
    // ONNX Runtime threads per worker (absent: the worker's default, or tfjs).
    ...(o.threads ? ['--threads', String(o.threads)] : []),
  ];
}

/** POSIX shell quoting of one word. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
