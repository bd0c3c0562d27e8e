/**
 * The runner through its real CLI commands (run/plan/status) over the toy chain, in child
 * processes: kill -9 and resume, up-to-date reruns, changed settings, concurrent runners,
 * signals, failures. Stores are file:// directories under a temp dir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { readJournal, runToy, startToy, tempDir, toyManifest, waitFor, writeManifest, type JournalEntry } from './helpers.js';

const stageIds = ['import', 'train-teacher-1', 'infer-1', 'select-1', 'train-student-1', 'evaluate'];

function record(dir: string, stage: string) {
  return JSON.parse(readFileSync(path.join(dir, 'runs/toy/state', `${stage}.json`), 'utf8')) as Record<string, unknown>;
}

function committed(dir: string, stage: string): { unit: number; execId: string }[] {
  const d = path.join(dir, 'runs/toy', stage);
  return readdirSync(d)
    .filter((f) => /^unit-\d+\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(path.join(d, f), 'utf8')) as { unit: number; execId: string });
}

function starts(journal: JournalEntry[], stage: string) {
  return journal.filter((e) => e.event === 'start' && e.stage === stage);
}

test('a run killed with SIGKILL mid-stage resumes and commits every unit exactly once', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest());
  const units = 8;
  // The run kills itself (kill -9) right after committing infer-1's third unit: mid-stage on any
  // machine, whatever its speed.
  const killed = await runToy(dir, ['run', manifest], { units, unitMs: 60, journal, killAfterPut: '**/infer-1/unit-0002.json', recordHeartbeatMs: 20 });
  assert.equal(killed.signal, 'SIGKILL');
  assert.match(killed.stderr, /SELFTRAIN_KILL_AFTER_PUT: killing pid \d+ after .*\/infer-1\/unit-0002\.json/);
  assert.equal(record(dir, 'infer-1').status, 'running', 'a kill -9 leaves the record running');
  const killedTotalMs = record(dir, 'infer-1').totalMs as number;
  assert.ok(existsSync(path.join(dir, 'runs/toy/lease')), 'and the lease in place');
  const before = readJournal(journal);
  // Killed after the commit of unit 2 and before its journal line: three units are committed.
  assert.deepEqual(committed(dir, 'infer-1').map((o) => o.unit).sort(), [0, 1, 2]);

  const second = await runToy(dir, ['run', manifest], { units, unitMs: 5, journal });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /taking over the lease: the previous runner \(pid \d+ on host .*\) is gone/);
  assert.match(second.stderr, /\[infer-1\] resuming: interrupted while running/);
  assert.match(second.stderr, /\[train-teacher-1\] skipped: up to date/);

  const all = readJournal(journal);
  const after = all.slice(before.length);
  for (const stage of stageIds) {
    const objs = committed(dir, stage);
    assert.deepEqual(objs.map((o) => o.unit).sort((a, b) => a - b), [...Array(units).keys()], `${stage}: every unit committed, none lost`);
    const startsHere = starts(all, stage);
    for (const o of objs) {
      assert.ok(startsHere.some((s) => s.unit === o.unit && s.execId === o.execId), `${stage} unit ${o.unit}: committed by a journaled execution`);
    }
    const doneCounts = new Map<number, number>();
    for (const e of all.filter((e) => e.event === 'done' && e.stage === stage)) doneCounts.set(e.unit, (doneCounts.get(e.unit) ?? 0) + 1);
    assert.ok([...doneCounts.values()].every((n) => n === 1), `${stage}: no unit committed twice`);
    // Units started more than once: at most the one the kill interrupted (started, never committed).
    const startCounts = new Map<number, number>();
    for (const s of startsHere) startCounts.set(s.unit, (startCounts.get(s.unit) ?? 0) + 1);
    const repeated = [...startCounts.entries()].filter(([, n]) => n > 1);
    assert.ok(repeated.length <= (stage === 'infer-1' ? 1 : 0), `${stage}: repeated units ${JSON.stringify(repeated)}`);
    assert.equal(record(dir, stage).status, 'done');
  }
  // Finished stages were not touched by the second run; infer-1 redid only what was not committed.
  assert.equal(starts(after, 'import').length + starts(after, 'train-teacher-1').length, 0);
  assert.deepEqual(starts(after, 'infer-1').map((s) => s.unit), [3, 4, 5, 6, 7]);
  assert.equal(record(dir, 'infer-1').attempts, 2);
  // The killed attempt's time counts: its record was kept current while it ran (every 20 ms here).
  const rec = record(dir, 'infer-1') as { durationMs: number; totalMs: number };
  assert.ok(killedTotalMs > 0, 'the killed attempt recorded its time so far');
  assert.equal(rec.totalMs, killedTotalMs + rec.durationMs, 'total = the killed attempt (to its last update) + the resumed one');
  assert.ok(!existsSync(path.join(dir, 'runs/toy/lease')), 'lease released at the end');
});

test('a second run of a finished manifest does nothing and says so, quickly', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest());
  const first = await runToy(dir, ['run', manifest], { units: 3, journal });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /run toy complete in .*: 6 ran, 0 resumed, 0 up to date/);
  const executed = readJournal(journal).length;

  const second = await runToy(dir, ['run', manifest], { units: 3, journal });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /everything is up to date: 6 stages, nothing to do \((\d+\.\d+) s\)/);
  const reported = Number(/nothing to do \((\d+\.\d+) s\)/.exec(second.stderr)![1]);
  t.diagnostic(`up-to-date rerun: ${second.ms} ms wall (process reports ${reported} s) — target < 2 s`);
  console.log(`# up-to-date rerun took ${second.ms} ms (process uptime ${reported} s)`);
  // The time is printed, not asserted: speed targets are measured, never timed tests (a busy
  // shared machine would make the assertion flaky). What must hold is that nothing ran.
  for (const id of stageIds) assert.match(second.stderr, new RegExp(`\\[${id}\\] skipped: up to date`));
  assert.equal(readJournal(journal).length, executed, 'no unit executed');

  const plan = await runToy(dir, ['plan', manifest]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /everything is up to date/);
  for (const id of stageIds) assert.match(plan.stdout, new RegExp(`${id}\\s+done\\s+up to date`));
});

test('changing one stage setting re-runs exactly that stage and its descendants', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest());
  assert.equal((await runToy(dir, ['run', manifest], { units: 2, journal })).code, 0);

  // The student's recipe: only the student and evaluate depend on it.
  writeManifest(dir, toyManifest({ student: { train: { epochs: 2 } } }));
  const plan = await runToy(dir, ['plan', manifest]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /select-1\s+done/);
  assert.match(plan.stdout, /train-student-1\s+stale\s+settings changed: train\.epochs: 1 → 2/);
  assert.match(plan.stdout, /evaluate\s+stale\s+settings of upstream train-student-1 changed/);
  assert.match(plan.stdout, /2 of 6 stages would run/);

  let mark = readJournal(journal).length;
  const rerun = await runToy(dir, ['run', manifest], { units: 2, journal });
  assert.equal(rerun.code, 0, rerun.stderr);
  const ranStages = (from: number) => [...new Set(readJournal(journal).slice(from).filter((e) => e.event === 'start').map((e) => e.stage))];
  assert.deepEqual(ranStages(mark), ['train-student-1', 'evaluate']);
  assert.match(rerun.stderr, /\[train-student-1\] running: settings changed: train\.epochs: 1 → 2/);

  // The selection threshold: select, then the student, then evaluate — inference is not redone.
  writeManifest(dir, toyManifest({ student: { train: { epochs: 2 } }, pseudo: { select: { threshold: 0.5 } } }));
  mark = readJournal(journal).length;
  const third = await runToy(dir, ['run', manifest], { units: 2, journal });
  assert.equal(third.code, 0, third.stderr);
  assert.deepEqual(ranStages(mark), ['select-1', 'train-student-1', 'evaluate']);
  // Outputs of a re-run stage are fresh: exactly one object per unit, from this run.
  const latest = readJournal(journal).slice(mark);
  for (const o of committed(dir, 'select-1')) assert.ok(latest.some((e) => e.execId === o.execId));
});

test('a second concurrent runner is refused; SIGTERM stops the first cleanly and it resumes later', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest());
  const toy = { units: 60, unitMs: 50, journal };
  const first = startToy(dir, ['run', manifest], toy);
  await waitFor(() => readJournal(journal).length > 0, 60_000, 'the first runner to start working');

  const second = await runToy(dir, ['run', manifest], toy);
  assert.equal(second.code, 1);
  assert.match(second.stderr, new RegExp(`is already being run by pid ${first.child.pid} on host ${hostname()}, started .* ago .*last heartbeat .* ago`));
  const forced = await runToy(dir, ['run', manifest, '--force'], toy);
  assert.equal(forced.code, 1, '--force does not override a live runner');

  first.child.kill('SIGTERM');
  const stopped = await first.done;
  assert.equal(stopped.code, 143, stopped.stderr);
  assert.match(stopped.stderr, /SIGTERM received: stopping at the next safe point/);
  assert.match(stopped.stderr, /stopped by SIGTERM; run the same command again to resume/);
  const interrupted = stageIds.filter((id) => existsSync(path.join(dir, 'runs/toy/state', `${id}.json`)) && record(dir, id).status === 'interrupted');
  assert.equal(interrupted.length, 1, 'exactly one stage was interrupted');
  const stage = interrupted[0]!;
  assert.match(String(record(dir, stage).error), /interrupted by SIGTERM/);
  assert.ok(!existsSync(path.join(dir, 'runs/toy/lease')), 'lease released on SIGTERM');
  // The stage stopped at a safe point: every unit it started was committed.
  const j = readJournal(journal);
  assert.equal(j.filter((e) => e.event === 'start').length, j.filter((e) => e.event === 'done').length);

  const status = await runToy(dir, ['status', 'file://./runs/toy']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /lease: free/);
  assert.match(status.stdout, new RegExp(`${stage}\\s+interrupted\\s+1`));
  assert.match(status.stdout, /error: interrupted by SIGTERM/);
  for (const line of status.stdout.trimEnd().split('\n')) assert.ok(line.length <= 120, `status line wider than 120 columns: ${line}`);
  const full = await runToy(dir, ['status', 'file://./runs/toy', '--json']);
  const records = (JSON.parse(full.stdout) as { records: { stage: string; status: string; summary?: unknown }[] }).records;
  assert.equal(records.find((r) => r.stage === stage)?.status, 'interrupted', '--json has the full records');

  const resumed = await runToy(dir, ['run', manifest], { ...toy, unitMs: 0 });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`\\[${stage}\\] resuming: interrupted by SIGTERM`));
  for (const id of stageIds) assert.equal(committed(dir, id).length, 60);
});

test('SIGINT exits 130 after recording the interruption', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest());
  const run = startToy(dir, ['run', manifest, '--json-logs'], { units: 100, unitMs: 50, journal });
  await waitFor(() => readJournal(journal).length > 2, 60_000, 'work to start');
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; stage?: string });
  assert.ok(lines.some((l) => l.level === 'warn' && l.stage === 'import' && /interrupted by SIGINT/.test(l.msg)));
  assert.equal(record(dir, 'import').status, 'interrupted');
});

test('an expired lease held by another host needs --force', async (t) => {
  const dir = tempDir(t);
  const manifest = writeManifest(dir, toyManifest());
  const stale = new Date(Date.now() - 10 * 60_000).toISOString();
  const lease = path.join(dir, 'runs/toy/lease');
  (await import('node:fs')).mkdirSync(path.dirname(lease), { recursive: true });
  writeFileSync(lease, JSON.stringify({ host: 'other-host', pid: 4242, startedAt: stale, heartbeatAt: stale, token: 'x' }));

  const refused = await runToy(dir, ['run', manifest], { units: 2 });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is locked but its lease expired: pid 4242 on host other-host, started 10m0\ds ago .*run again with --force/);
  const forced = await runToy(dir, ['run', manifest, '--force'], { units: 2 });
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stderr, /taking over the lease: its lease expired: pid 4242 on host other-host/);
});

test('a failing stage is recorded as failed and retried next time, keeping its committed units', async (t) => {
  const dir = tempDir(t);
  const journal = path.join(dir, 'journal.log');
  const manifest = writeManifest(dir, toyManifest());
  const failed = await runToy(dir, ['run', manifest], { units: 4, journal, failAt: 'select-1:2' });
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /run toy failed at stage select-1: toy failure injected at unit 2/);
  assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace without --verbose');
  const rec = record(dir, 'select-1');
  assert.equal(rec.status, 'failed');
  assert.equal(rec.error, 'toy failure injected at unit 2');
  assert.ok(!existsSync(path.join(dir, 'runs/toy/state/train-student-1.json')), 'nothing downstream ran');

  const mark = readJournal(journal).length;
  const retry = await runToy(dir, ['run', manifest], { units: 4, journal });
  assert.equal(retry.code, 0, retry.stderr);
  assert.match(retry.stderr, /\[select-1\] resuming: failed last time \(toy failure injected at unit 2\)/);
  const redone = readJournal(journal).slice(mark).filter((e) => e.stage === 'select-1' && e.event === 'start').map((e) => e.unit);
  assert.deepEqual(redone, [2, 3], 'units 0 and 1 were kept');
});

test('a bad --store or run URI is a usage error naming the flag', async (t) => {
  const dir = tempDir(t);
  const manifest = writeManifest(dir, toyManifest());
  const r = await runToy(dir, ['run', manifest, '--store', 's3://Bad_Bucket!/x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--store: expected "file:\/\/<dir>" or "s3:\/\/<bucket>\/<prefix>", found "s3:\/\/Bad_Bucket!\/x"/);
  const s = await runToy(dir, ['status', 'ftp://x/y']);
  assert.equal(s.code, 2);
  assert.match(s.stderr, /run URI: .*unsupported scheme "ftp"/);
  const none = await runToy(dir, ['status', 'file://./runs/nothing']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no stage records under .*runs\/nothing\/state\//);
});
