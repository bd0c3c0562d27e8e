/**
 * Code versions in fingerprints (pipeline/runner/code-versions.ts, stage-sources.ts):
 * - the committed lock file matches the stage sources: a stage kind's code cannot change without a
 *   new version or an explicit "no output change" mark;
 * - the lock tooling itself, on a small repository made here: a change is seen (naming the file),
 *   refused without a decision, recorded with a bump or with --same-output;
 * - after an upgrade, `plan` says `stale: code changed (select v1 → v2)` for exactly the stages of
 *   that kind, and `run` re-runs them and their descendants and nothing else (the real chain's
 *   stages and fingerprints through the real CLI, with toy work: test/runner/toy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STAGE_CODE_VERSIONS } from '../../pipeline/runner/code-versions.js';
import { checkKinds, importSpecifiers, lockProblems, readLock, repoRootOf, updateLock } from '../../pipeline/runner/stage-sources.js';
import { readJournal, runToy, tempDir, toyManifest, writeManifest } from './helpers.js';

test('the committed stage-versions.lock.json matches every stage kind\'s sources and code version', () => {
  const repo = repoRootOf();
  const problems = lockProblems(checkKinds(repo));
  assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  for (const [kind, version] of Object.entries(STAGE_CODE_VERSIONS)) {
    const entry = readLock(repo).kinds[kind]!;
    assert.equal(entry.version, version);
    assert.ok(Object.keys(entry.files).includes(`stages/${kind}/index.ts`), `${kind}: its stage module is hashed`);
  }
  // Shared code counts for every kind that loads it: the store layer, for one.
  assert.ok(readLock(repo).kinds['select']!.files['pipeline/store/file-store.ts'], 'select loads the file store');
});

test('import specifiers: runtime imports and re-exports count, type-only ones do not', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { T } from './types.js';",
    "import * as fs from 'node:fs';",
    "export { b } from '../b.js';",
    "export type { U } from './u.js';",
    "import './side-effect.js';",
    "const m = await import('./lazy.js');",
    "import {\n  c,\n  type D,\n} from '@scope/pkg/sub';",
  ].join('\n');
  assert.deepEqual(importSpecifiers(src).sort(), ['../b.js', './a.js', './lazy.js', './side-effect.js', '@scope/pkg/sub', 'node:fs'].sort());
});

test('modules a worker loads by URL from the same directory count as imports; other URLs do not', () => {
  // Template placeholders as they appear in the source text under test.
  const ext = '$' + '{ext}', kind = '$' + '{kind}';
  const src = [
    "const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';",
    `const task = new URL(\`./ort-thread-task${ext}\`, import.meta.url).href;`,
    "const main = new URL('./worker-main.js', import.meta.url);",
    `const cli = new URL(\`../../cli/main${ext}\`, import.meta.url);`,
    `const stage = new URL(\`./stages/${kind}/index${ext}\`, import.meta.url);`,
    "const api = new URL('https://example.com/x');",
  ].join('\n');
  assert.deepEqual(importSpecifiers(src).sort(), ['./ort-thread-task.js', './worker-main.js']);
  // In the lock: the train stage's replica worker, the infer stage's ONNX Runtime thread.
  const lock = readLock(repoRootOf());
  assert.ok(lock.kinds['train']!.files['pipeline/train/replica-worker.ts'], 'train: the replica worker module');
  assert.ok(lock.kinds['train']!.files['pipeline/parallel/worker-main.ts'], 'train: the pool workers\' entry');
  assert.ok(lock.kinds['infer']!.files['pipeline/inference/ort-thread-task.ts'], 'infer: the ONNX Runtime thread');
});

test('lock tooling: a changed source is named and refused without a decision; a bump or --same-output records it', (t) => {
  const repo = tempDir(t, 'versions');
  mkdirSync(path.join(repo, 'stages', 'select'), { recursive: true });
  mkdirSync(path.join(repo, 'pipeline'), { recursive: true });
  writeFileSync(path.join(repo, 'package.json'), '{}');
  writeFileSync(path.join(repo, 'package-lock.json'), JSON.stringify({ packages: { 'node_modules/zod': { version: '4.0.0' } } }));
  writeFileSync(path.join(repo, 'stages', 'select', 'index.ts'), "import { pick } from '../../pipeline/pick.js';\nimport { z } from 'zod';\nexport const run = () => pick(z);\n");
  writeFileSync(path.join(repo, 'pipeline', 'pick.ts'), 'export const pick = (x: unknown) => x;\n');
  const v1 = { select: 1 } as never;
  assert.deepEqual(updateLock(repo, [], v1), { updated: ['select v1'], refused: [] });
  assert.deepEqual(lockProblems(checkKinds(repo, v1)), []);
  assert.deepEqual(readLock(repo).kinds['select']!.packages, { zod: '4.0.0' });

  // A change to a file the stage loads (not the stage's own file): seen and named.
  writeFileSync(path.join(repo, 'pipeline', 'pick.ts'), 'export const pick = (x: unknown) => [x];\n');
  const [problem] = lockProblems(checkKinds(repo, v1));
  assert.match(problem!, /^select: its sources changed since stage-versions\.lock\.json \(pipeline\/pick\.ts\) but its code version is still 1/);
  assert.match(problem!, /--same-output select/);
  assert.deepEqual(updateLock(repo, [], v1), { updated: [], refused: ['select'] }, 'no silent update');
  // Declared as not changing outputs: recorded at the same version.
  assert.deepEqual(updateLock(repo, ['select'], v1), { updated: ['select v1'], refused: [] });
  assert.deepEqual(lockProblems(checkKinds(repo, v1)), []);

  // A change that does change outputs: the version goes up, then the lock records it.
  writeFileSync(path.join(repo, 'pipeline', 'pick.ts'), 'export const pick = (x: unknown) => [x, x];\n');
  const v2 = { select: 2 } as never;
  assert.match(lockProblems(checkKinds(repo, v2))[0]!, /code version 2 in pipeline\/runner\/code-versions\.ts, 1 in stage-versions\.lock\.json/);
  assert.deepEqual(updateLock(repo, [], v2), { updated: ['select v2'], refused: [] });
  assert.deepEqual(lockProblems(checkKinds(repo, v2)), []);
  // A package upgrade is a source change too.
  writeFileSync(path.join(repo, 'package-lock.json'), JSON.stringify({ packages: { 'node_modules/zod': { version: '4.1.0' } } }));
  assert.match(lockProblems(checkKinds(repo, v2))[0]!, /\(package zod\)/);
});

test('an upgraded stage kind: plan shows "code changed (select v1 → v2)", run re-runs it and its descendants only', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest({ evaluate: { baseline: true, control: 'off' } }));
  const first = await runToy(dir, ['run', manifest], { units: 2, journal });
  assert.equal(first.code, 0, first.stderr);

  const upgraded = { codeVersions: { ...STAGE_CODE_VERSIONS, select: STAGE_CODE_VERSIONS.select + 1 } };
  const v = `select v${STAGE_CODE_VERSIONS.select} → v${STAGE_CODE_VERSIONS.select + 1}`;
  const plan = await runToy(dir, ['plan', manifest], upgraded);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, new RegExp(`select-1\\s+stale\\s+code changed \\(${v.replace(/[()]/g, '\\$&')}\\)`));
  // Their fingerprints hash select-1's, which hashes its code version.
  assert.match(plan.stdout, /train-student-1\s+stale\s+settings of upstream select-1 changed/);
  assert.match(plan.stdout, /evaluate\s+stale\s+settings of upstream train-student-1, select-1 changed/);
  for (const id of ['import', 'train-teacher-1', 'infer-1', 'train-baseline']) assert.match(plan.stdout, new RegExp(`${id}\\s+done\\s+up to date`));
  assert.match(plan.stdout, /3 of 7 stages would run/);

  const mark = readJournal(journal).length;
  const rerun = await runToy(dir, ['run', manifest], { units: 2, journal, ...upgraded });
  assert.equal(rerun.code, 0, rerun.stderr);
  const ran = [...new Set(readJournal(journal).slice(mark).filter((e) => e.event === 'start').map((e) => e.stage))];
  assert.deepEqual(ran, ['select-1', 'train-student-1', 'evaluate']);
  assert.match(rerun.stderr, new RegExp(`\\[select-1\\] running: code changed \\(${v.replace(/[()]/g, '\\$&')}\\)`));
  // And the new version is now the recorded one: nothing left to do.
  const again = await runToy(dir, ['run', manifest], { units: 2, journal, ...upgraded });
  assert.match(again.stderr, /everything is up to date: 7 stages, nothing to do/);
});
