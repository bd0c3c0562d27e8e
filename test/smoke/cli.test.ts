import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cliArgv } from '../helpers/cli.js';

test('selftrain --help names the program', () => {
  const [cmd, args] = cliArgv('--help');
  const out = execFileSync(cmd, args, { encoding: 'utf8' });
  assert.match(out, /Usage: selftrain/);
});
