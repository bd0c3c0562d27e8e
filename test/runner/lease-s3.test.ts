/**
 * Two runners racing for the same run's lease on the real S3 server (Swift s3api), which has no
 * conditional writes, so the lease rides on the store's best-effort putIfAbsent fallback (HEAD, PUT
 * with a claim token, re-read after `claimSettleMs`). The race is staged, not timed: runner B's
 * claim PUT is held in a proxy (test/store/fault-proxy.ts) until runner A has taken the lease, and
 * released then.
 *
 * Not guaranteed: exclusivity while claims overlap. A claim PUT that lands after the other runner
 * re-read its claim overwrites it, and both acquisitions succeed.
 * Guaranteed: the lease object is always one runner's whole record; a runner never releases a
 * lease that is not its own; a third runner is refused; and within one heartbeat the runner whose
 * claim was overwritten learns it (onLost, the runner stops its stage) or the later claimant is
 * refused: after that, exactly one runner holds the run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acquireLease, leaseKey, LeaseBusyError, type Lease, type LeaseHolder } from '../../pipeline/runner/lease.js';
import { S3Store } from '../../pipeline/store/s3-store.js';
import { s3TestEnv, s3TestStore, S3_SKIP_REASON } from '../helpers/s3.js';
import { startFaultProxy } from '../store/fault-proxy.js';

const env = await s3TestEnv();
const skip = env ? false : S3_SKIP_REASON;

async function holderToken(store: S3Store): Promise<string> {
  return (JSON.parse((await store.get(leaseKey)).toString('utf8')) as LeaseHolder).token;
}

/**
 * Two stores on one fresh bucket (the run prefix `run`): A direct, B through a proxy that holds
 * B's next PUT (its claim) until `releaseB()`. Resolves once B's claim PUT is being held.
 */
async function stagedRace(t: Parameters<typeof s3TestStore>[0], bLease: Parameters<typeof acquireLease>[1]) {
  const base = await s3TestStore(t);
  if (!base) return undefined;
  const bucket = /^s3:\/\/([^/]+)/.exec(base.uri)![1]!;
  const proxy = await startFaultProxy(env!.endpoint);
  const opts = { bucket, prefix: 'run', region: env!.region, credentials: { accessKeyId: env!.accessKeyId, secretAccessKey: env!.secretAccessKey }, conditionalPut: 'fallback' as const, claimSettleMs: 200, warn: () => {} };
  const a = new S3Store({ ...opts, endpoint: env!.endpoint });
  const b = new S3Store({ ...opts, endpoint: proxy.endpoint });
  t.after(async () => {
    await a.close();
    await b.close();
    await proxy.close();
  });
  proxy.failNext(1, 'hold', (r) => r.method === 'PUT');
  const held = proxy.nextFault();
  const bAcquired = acquireLease(b, bLease).then(
    (lease) => ({ lease }),
    (err: unknown) => ({ err: err as Error }),
  );
  const heldReq = await held;
  assert.match(heldReq.url, /\/run\/lease/, 'the held request is B\'s claim on the lease');
  return { a, b, bAcquired, releaseB: () => proxy.releaseHeld() };
}

test('fallback lease on S3, not guaranteed: two overlapping claims can both win; the object stays whole and one runner\'s', { skip, timeout: 120_000 }, async (t) => {
  const race = await stagedRace(t, { heartbeatMs: 3_600_000 });
  if (!race) return;
  // B has seen no lease (HEAD) and its claim is in flight: A now finds the run free and takes it.
  const a = await acquireLease(race.a, { heartbeatMs: 3_600_000 });
  assert.equal(await holderToken(race.a), a.holder.token, 'A holds the lease');
  // B's claim lands after A's re-read and overwrites it; B's own re-read sees its token.
  race.releaseB();
  const b = await race.bAcquired;
  assert.ok('lease' in b, `B's acquisition: ${'err' in b ? b.err.message : ''}`);
  const bLease = (b as { lease: Lease }).lease;
  assert.notEqual(bLease.holder.token, a.holder.token);
  assert.equal(await holderToken(race.a), bLease.holder.token, 'the later claim is the object: whole, one runner\'s');

  // What still holds: A does not release B's lease, and a third runner is refused, naming B.
  await a.release();
  assert.equal(await holderToken(race.a), bLease.holder.token, 'A\'s release left B\'s lease in place');
  await assert.rejects(acquireLease(race.a), (err: unknown) => err instanceof LeaseBusyError && err.holder?.token === bLease.holder.token);
  await bLease.release();
  assert.equal(await race.a.head(leaseKey), undefined);
});

test('fallback lease on S3, guaranteed: within one heartbeat exactly one of two racing runners holds the run, and the other knows', { skip, timeout: 120_000 }, async (t) => {
  let lostA: (why: string) => void = () => {};
  const aLost = new Promise<string>((resolve) => (lostA = resolve));
  let lostB: (why: string) => void = () => {};
  const bLost = new Promise<string>((resolve) => (lostB = resolve));
  const race = await stagedRace(t, { heartbeatMs: 250, onLost: (why) => lostB(why) });
  if (!race) return;
  const a = await acquireLease(race.a, { heartbeatMs: 250, onLost: (why) => lostA(why) });
  race.releaseB();
  const b = await race.bAcquired;
  let survivor: Lease;
  if ('lease' in b) {
    // B's claim won the object: A's next heartbeat sees B's token and gives up (the runner then
    // aborts its stage), unless A's heartbeat rewrote the lease first, in which case B learns.
    // A bound for a failing implementation (the passing case takes one heartbeat, 250 ms).
    const never = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('neither runner learned within 30 s that it lost the lease')), 30_000).unref());
    const first = await Promise.race([aLost.then((why) => ({ loser: 'A', why })), bLost.then((why) => ({ loser: 'B', why })), never]);
    t.diagnostic(`both claims succeeded; ${first.loser} was told: ${first.why}`);
    assert.match(first.why, /the lease was taken over by pid \d+ on host/);
    survivor = first.loser === 'A' ? b.lease : a;
    await (first.loser === 'A' ? a : b.lease).release();
  } else {
    // A's heartbeat rewrote the lease within B's settle time: B's claim lost at once.
    t.diagnostic(`B was refused at once: ${b.err.message}`);
    assert.ok(b.err instanceof LeaseBusyError && b.err.holder?.token === a.holder.token, b.err.message);
    survivor = a;
  }
  assert.equal(await holderToken(race.a), survivor.holder.token, 'exactly one holder: the survivor');
  await survivor.release();
  assert.equal(await race.a.head(leaseKey), undefined);
});
