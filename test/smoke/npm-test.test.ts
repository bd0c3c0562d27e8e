/**
 * `npm test`'s runner (test/run.ts): the spec output and the exit code stay the test runner's, and
 * the last line counts the skips for missing extras (and only those). A failure is never hidden;
 * under CI=true a skip for a missing extra is itself a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const runner = fileURLToPath(new URL('../run.js', import.meta.url));
const sample = fileURLToPath(new URL('../helpers/fixtures/run-sample.js', import.meta.url));

function npmTest(env: Record<string, string>): { code: number | null; stdout: string } {
  const clean: NodeJS.ProcessEnv = { ...process.env, CI: '', SAMPLE_FAIL: '', ...env };
  delete clean.NODE_TEST_CONTEXT; // else the inner runner reports to this one instead of its reporters
  const r = spawnSync(process.execPath, [runner, sample], { encoding: 'utf8', env: clean });
  return { code: r.status, stdout: r.stdout };
}

test('skips for missing extras are summed up in the last line; the exit code is the runner\'s', { skip: import.meta.url.endsWith('.ts') ? 'runs from dist/ only' : false }, () => {
  const ok = npmTest({});
  assert.equal(ok.code, 0, ok.stdout);
  const last = ok.stdout.trimEnd().split('\n').pop()!;
  assert.match(last, /^!!!!! npm test: 1 test\(s\)\/suite\(s\) SKIPPED for missing extras — torch ×1 \(install: `apt-get install python3-torch`\) — they did NOT run/);
  assert.match(ok.stdout, /﹣ needs torch .*# missing extra torch/, 'the spec reporter output is there');

  const failing = npmTest({ SAMPLE_FAIL: '1' });
  assert.equal(failing.code, 1, 'a failing test fails npm test');
  assert.match(failing.stdout, /✖ fails on demand/);
  assert.match(failing.stdout, /sample failure/);
  assert.match(failing.stdout.trimEnd().split('\n').pop()!, /^!!!!! npm test: 1 test/);

  const ci = npmTest({ CI: 'true' });
  assert.equal(ci.code, 1, 'under CI=true a skip for a missing extra fails the run');
  assert.match(ci.stdout.trimEnd().split('\n').pop()!, /CI=true: a skip for a missing extra is a failure$/);
});
