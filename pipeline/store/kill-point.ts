/**
 * Deterministic crash points for tests: a process SIGKILLs itself right after the store committed
 * a named object, i.e. "kill -9 exactly there" instead of a kill sent from outside at a moment
 * that depends on how fast the machine is.
 *
 *   SELFTRAIN_KILL_AFTER_PUT='**\/infer-1/predictions/shard-000003.jsonl.gz'
 *   SELFTRAIN_KILL_AFTER_PUT='**\/ckpt/*\/COMMIT.json#2'    the 2nd matching commit of the process
 *   SELFTRAIN_KILL_SCOPE=group                              the whole process group (runner and infer
 *                                                          workers, as when the machine dies); the
 *                                                          test must have started the CLI as a group
 *                                                          leader (spawn with detached: true)
 *
 *   SELFTRAIN_KILL_NOTE=<file>                              also append the "killing …" line to this
 *                                                          file: a worker killing the whole group
 *                                                          takes down the runner that would have
 *                                                          relayed its stderr
 *
 * Globs match the object's full URI (`*` = any characters but `/`, `**` = any characters); several
 * are separated by commas. Unset — always, outside tests — nothing happens.
 */
import { appendFileSync } from 'node:fs';
import { globToRegExp } from './key-glob.js';

const counts = new Map<string, number>();


/** Called by the stores after each committed write (put, putIfAbsent) with the object's URI. */
export function afterCommit(uri: string): void {
  const spec = process.env.SELFTRAIN_KILL_AFTER_PUT;
  if (!spec) return;
  for (const entry of spec.split(',')) {
    const [glob = '', nth = '1'] = entry.trim().split('#');
    if (!glob || !globToRegExp(glob).test(uri)) continue;
    const n = (counts.get(entry) ?? 0) + 1;
    counts.set(entry, n);
    if (n !== Number(nth)) continue;
    // Written first (stderr, and the note file when set), so a test can tell where the process died.
    const line = `SELFTRAIN_KILL_AFTER_PUT: killing ${process.env.SELFTRAIN_KILL_SCOPE === 'group' ? 'the process group' : `pid ${process.pid}`} after ${uri}\n`;
    process.stderr.write(line);
    const note = process.env.SELFTRAIN_KILL_NOTE;
    if (note) appendFileSync(note, line);
    process.kill(process.env.SELFTRAIN_KILL_SCOPE === 'group' ? 0 : process.pid, 'SIGKILL');
  }
}
