/**
 * How tests start the `selftrain` CLI in a child process, both from compiled dist/ (npm test)
 * and from sources under tsx (`npx tsx --test ...`): the child gets the parent's execArgv, so a
 * tsx loader is passed through, and the entry file has the same extension as this one.
 */
import { fileURLToPath } from 'node:url';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
export const cliPath = fileURLToPath(new URL(`../../pipeline/cli/main${ext}`, import.meta.url));

/** argv for child_process: [command, ...args]. */
export function cliArgv(...args: string[]): [string, string[]] {
  return [process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), cliPath, ...args]];
}
