import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from '../../pipeline/store/open.js';
import { acquireLease, leaseKey, LeaseBusyError, type LeaseHolder } from '../../pipeline/runner/lease.js';
import { createLogger } from '../../pipeline/log/logger.js';
import { tempDir } from './helpers.js';

function store(t: { after(fn: () => void): void }) {
  return openStore(`file://${tempDir(t, 'lease')}`);
}

async function holder(s: ReturnType<typeof openStore>): Promise<LeaseHolder> {
  return JSON.parse((await s.get(leaseKey)).toString()) as LeaseHolder;
}

function lease(over: Partial<LeaseHolder>): string {
  const now = new Date().toISOString();
  return JSON.stringify({ host: 'elsewhere', pid: 1234, startedAt: now, heartbeatAt: now, token: 'theirs', ...over });
}

test('a held lease refuses a second runner, naming the holder; release frees it', async (t) => {
  const s = store(t);
  const mine = await acquireLease(s);
  await assert.rejects(acquireLease(s, { force: true }), (err: unknown) => {
    assert.ok(err instanceof LeaseBusyError);
    assert.match(err.message, new RegExp(`already being run by pid ${process.pid} on host ${hostname()}, started \\d+ms ago`));
    return true;
  });
  await mine.release();
  assert.equal(await s.head(leaseKey), undefined);
  const again = await acquireLease(s);
  await again.release();
});

test('a lease left by a dead process on this host is taken over without --force', async (t) => {
  const s = store(t);
  const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!; // exited: its pid is gone
  await s.put(leaseKey, lease({ host: hostname(), pid: dead }));
  const warnings: string[] = [];
  const log = createLogger({ write: (l) => warnings.push(l) });
  const l = await acquireLease(s, { log });
  assert.equal((await holder(s)).pid, process.pid);
  assert.match(warnings.join('\n'), new RegExp(`taking over the lease: the previous runner \\(pid ${dead} on host`));
  await l.release();
});

test('an expired lease from another host needs force; a fresh one is never taken', async (t) => {
  const s = store(t);
  const old = new Date(Date.now() - 120_000).toISOString();
  await s.put(leaseKey, lease({ heartbeatAt: old, startedAt: old }));
  await assert.rejects(acquireLease(s, { ttlMs: 60_000 }), /locked but its lease expired: pid 1234 on host elsewhere, started 2m0\ds ago .*--force/);
  const l = await acquireLease(s, { ttlMs: 60_000, force: true });
  await l.release();

  await s.put(leaseKey, lease({}));
  await assert.rejects(acquireLease(s, { force: true }), /already being run by pid 1234 on host elsewhere/);
  await s.put(leaseKey, '{not json');
  await assert.rejects(acquireLease(s), /locked but the lease object is unreadable/);
  await (await acquireLease(s, { force: true })).release();
});

test('the heartbeat refreshes the lease and notices a takeover', async (t) => {
  const s = store(t);
  let lost: string | undefined;
  const l = await acquireLease(s, { ttlMs: 600, heartbeatMs: 40, onLost: (why) => (lost = why) });
  const first = (await holder(s)).heartbeatAt;
  // Polls rather than fixed sleeps: timers run late on a busy machine.
  for (let i = 0; i < 250 && (await holder(s)).heartbeatAt <= first; i++) await sleep(20);
  assert.ok((await holder(s)).heartbeatAt > first, 'heartbeat moved forward');
  // (Re-)write the intruder's lease if a heartbeat that was already in flight overwrote it.
  for (let i = 0; i < 250 && !lost; i++) {
    if ((await holder(s)).token !== 'intruder') await s.put(leaseKey, lease({ token: 'intruder' }));
    await sleep(20);
  }
  assert.match(lost ?? '', /the lease was taken over by pid 1234 on host elsewhere/);
  await l.release();
  assert.equal((await holder(s)).token, 'intruder', "release never deletes someone else's lease");
});
