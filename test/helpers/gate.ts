/**
 * A gate for cluster tasks in tests: a wrapper command that holds a task (running, as far as the
 * cluster is concerned) until the test opens its gate, so "while the tasks are running" is a state
 * the test waits for, not a race against the task's speed. Per-index gates (`open-<index>`) read
 * the index from the orchestrator's variable; `open-all` opens every gate.
 */
import { chmodSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export interface Gate {
  /** Prefix for a task command: `[...gate.command, ...realCommand]`. */
  command: string[];
  open(index?: number): void;
  /** Closes every gate again (tasks started later wait). */
  close(): void;
}

export function makeGate(dir: string): Gate {
  mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'gate.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      'gates=$1; shift',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
      'i=${SLURM_ARRAY_TASK_ID:-${JOB_COMPLETION_INDEX:-${AWS_BATCH_JOB_ARRAY_INDEX:-x}}}',
      'while [ ! -e "$gates/open-all" ] && [ ! -e "$gates/open-$i" ]; do sleep 0.1; done',
      'exec "$@"',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  return {
    command: [script, dir],
    open: (index) => writeFileSync(path.join(dir, index === undefined ? 'open-all' : `open-${index}`), ''),
    close: () => {
      for (const f of readdirSync(dir)) if (f.startsWith('open-')) rmSync(path.join(dir, f));
    },
  };
}
