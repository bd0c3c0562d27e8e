/**
 * One runner per run: the `<run>/lease` object, created with `putIfAbsent` and kept fresh by a
 * heartbeat while the runner works.
 *
 * How an existing lease is treated:
 * - heartbeat fresh (younger than `ttlMs`) and holder alive → refused, naming the holder and its age;
 *   `--force` does not override a live runner.
 * - holder on THIS host whose pid no longer exists (e.g. it was killed with -9) → taken over
 *   automatically, with a warning: the holder is certainly gone, and this is what makes
 *   "kill -9, then run again" just work.
 * - heartbeat older than `ttlMs` (holder on another host, or a pid that exists but stopped
 *   heartbeating) → refused unless `--force`, because from here we cannot tell a dead runner from
 *   a partitioned one. With `--force` it is taken over.
 * - unreadable lease object → treated as expired (needs `--force`).
 *
 * A takeover is delete + `putIfAbsent`, then a re-read to confirm the token: two runners racing
 * for the same expired lease cannot both win where `putIfAbsent` is atomic (file://, S3 with
 * If-None-Match); on services without conditional writes it is best-effort like the store's
 * fallback. The heartbeat checks the token each time and reports a lost lease (the runner then
 * stops its stage without writing further records).
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { ObjectStore } from '../store/types.js';
import { NotFoundError } from '../store/types.js';
import type { Logger } from './stage.js';
import { formatDuration } from '../log/format.js';
import { objectUri } from '../store/uri.js';

export const leaseKey = 'lease';

export interface LeaseHolder {
  host: string;
  pid: number;
  startedAt: string;
  heartbeatAt: string;
  token: string;
  command?: string;
}

export interface LeaseOptions {
  /** A lease without heartbeat for this long is expired. Default 60 s. */
  ttlMs?: number;
  /** Heartbeat period. Default ttl/6. */
  heartbeatMs?: number;
  force?: boolean;
  log?: Logger;
  /** Called once if another runner took the lease from us. */
  onLost?: (reason: string) => void;
  command?: string;
}

export class LeaseBusyError extends Error {
  constructor(message: string, readonly holder: LeaseHolder | undefined) {
    super(message);
    this.name = 'LeaseBusyError';
  }
}

export interface Lease {
  readonly holder: LeaseHolder;
  release(): Promise<void>;
}

export const defaultLeaseTtlMs = 60_000;

function describe(h: LeaseHolder, now: number): string {
  const age = formatDuration(now - Date.parse(h.startedAt));
  const beat = formatDuration(now - Date.parse(h.heartbeatAt));
  return `pid ${h.pid} on host ${h.host}, started ${age} ago (${h.startedAt}), last heartbeat ${beat} ago`;
}

/** True when `pid` exists on this host (EPERM means it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(store: ObjectStore): Promise<{ holder?: LeaseHolder; missing?: boolean; unreadable?: boolean }> {
  try {
    const h = JSON.parse((await store.get(leaseKey)).toString('utf8')) as Partial<LeaseHolder>;
    if (typeof h.host !== 'string' || typeof h.pid !== 'number' || typeof h.heartbeatAt !== 'string' || typeof h.token !== 'string') {
      return { unreadable: true };
    }
    return { holder: h as LeaseHolder };
  } catch (err) {
    if (err instanceof NotFoundError) return { missing: true };
    if (err instanceof SyntaxError) return { unreadable: true };
    throw err;
  }
}

/** What an existing lease means for us (see the module comment). */
export function judgeLease(holder: LeaseHolder | undefined, ttlMs: number, now = Date.now()): { takeable: 'yes' | 'force' | 'no'; why: string } {
  if (!holder) return { takeable: 'force', why: 'the lease object is unreadable' };
  const sinceBeat = now - Date.parse(holder.heartbeatAt);
  if (holder.host === hostname() && holder.pid !== process.pid && !pidAlive(holder.pid)) {
    return { takeable: 'yes', why: `the previous runner (${describe(holder, now)}) is gone` };
  }
  if (!(sinceBeat <= ttlMs)) {
    return { takeable: 'force', why: `its lease expired: ${describe(holder, now)} (expiry ${formatDuration(ttlMs)})` };
  }
  return { takeable: 'no', why: describe(holder, now) };
}

export async function acquireLease(store: ObjectStore, opts: LeaseOptions = {}): Promise<Lease> {
  const ttlMs = opts.ttlMs ?? defaultLeaseTtlMs;
  const heartbeatMs = opts.heartbeatMs ?? Math.max(100, Math.floor(ttlMs / 6));
  const startedAt = new Date().toISOString();
  const mine: LeaseHolder = { host: hostname(), pid: process.pid, startedAt, heartbeatAt: startedAt, token: randomUUID(), command: opts.command };
  const body = () => JSON.stringify(mine);
  const where = objectUri(store, leaseKey);

  for (let attempt = 0; ; attempt++) {
    if (attempt > 5) throw new LeaseBusyError(`run ${store.uri}: the lease ${where} keeps changing hands; is another runner starting?`, undefined);
    if (await store.putIfAbsent(leaseKey, body(), { contentType: 'application/json' })) break;
    const seen = await readHolder(store);
    if (seen.missing) continue; // released between our create and our read: try again
    const verdict = judgeLease(seen.holder, ttlMs);
    if (verdict.takeable === 'no' || attempt >= 2) {
      throw new LeaseBusyError(`run ${store.uri} is already being run by ${verdict.why}; lease ${where}`, seen.holder);
    }
    if (verdict.takeable === 'force' && !opts.force) {
      throw new LeaseBusyError(
        `run ${store.uri} is locked but ${verdict.why}; if that runner is really gone, run again with --force to take over (lease ${where})`,
        seen.holder,
      );
    }
    // Re-read right before deleting so we never delete a lease that changed hands since we judged it.
    const again = await readHolder(store);
    if (again.holder?.token !== seen.holder?.token || again.holder?.heartbeatAt !== seen.holder?.heartbeatAt) continue;
    opts.log?.warn(`taking over the lease: ${verdict.why}`);
    await store.delete(leaseKey);
  }

  const check = await readHolder(store);
  if (check.holder?.token !== mine.token) {
    throw new LeaseBusyError(`run ${store.uri}: lost the race for the lease to ${check.holder ? describe(check.holder, Date.now()) : 'another runner'}`, check.holder);
  }

  let lost = false;
  let beating: Promise<void> | undefined;
  const beat = async () => {
    const cur = await readHolder(store);
    if (cur.holder?.token !== mine.token) {
      lost = true;
      clearInterval(timer);
      opts.onLost?.(cur.holder ? `the lease was taken over by ${describe(cur.holder, Date.now())}` : 'the lease object disappeared');
      return;
    }
    mine.heartbeatAt = new Date().toISOString();
    await store.put(leaseKey, body(), { contentType: 'application/json' });
  };
  const timer = setInterval(() => {
    if (beating !== undefined) return; // a slow store: never stack heartbeats
    beating = beat()
      .catch((err: unknown) => opts.log?.warn(`lease heartbeat failed (will retry): ${(err as Error).message}`))
      .finally(() => {
        beating = undefined;
      });
  }, heartbeatMs);
  timer.unref();

  return {
    holder: mine,
    async release() {
      clearInterval(timer);
      await beating;
      if (lost) return;
      const cur = await readHolder(store);
      if (cur.holder?.token === mine.token) await store.delete(leaseKey);
    },
  };
}
