/**
 * A tiny HTTP proxy in front of a real S3 endpoint that injects faults: real faults over real
 * HTTP, for the retry tests and the torture harness (bench/torture.ts). Requests that are not
 * faulted pass through unchanged (Host header kept, so the client's signature still verifies).
 *
 * Faults:
 *   503       answers 503 SlowDown without forwarding
 *   reset     drops the connection without forwarding
 *   stall     forwards after a pause (`stallMs`), like an overloaded gateway
 *   truncate  forwards, then sends the response headers and only the first half of the body and
 *             drops the connection: a body cut short mid-transfer (GETs with a body only)
 *   hold      forwards only when `releaseHeld()` is called: a test stages a race with it
 *   403       answers 403 AccessDenied without forwarding (a permission the test's server cannot take away)
 *
 * Either `failNext(count, fault[, match])` (the next `count` requests, or the next `count` that
 * `match` accepts, get `fault`), or `setRate(rate, seed)` (each request is faulted with probability
 * `rate`, the fault drawn from all four, seeded). `nextFault()` resolves when a fault is injected,
 * so a test can act while a stalled request is held.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rng } from '../../pipeline/data/rng.js';

export type Fault = '503' | 'reset' | 'stall' | 'truncate' | 'hold' | '403';
/** The faults `setRate` draws from ('hold' and '403' are for staged tests only). */
export const FAULTS: readonly Fault[] = ['503', 'reset', 'stall', 'truncate'];

export interface FaultProxy {
  endpoint: string;
  /** Requests seen so far (faulted or forwarded). */
  readonly requests: number;
  /** Method and path of every request seen, in order. */
  readonly log: ReadonlyArray<{ method: string; url: string }>;
  /** Faults injected so far, by kind (a truncate drawn for a bodiless response is not counted). */
  readonly injected: Readonly<Record<Fault, number>>;
  /** Injects `fault` into the next `count` requests (only those `match` accepts, when given). */
  failNext(count: number, fault: Fault, match?: (req: { method: string; url: string }) => boolean): void;
  /** Resolves when the next fault is injected (as its request arrives). */
  nextFault(): Promise<{ fault: Fault; method: string; url: string }>;
  /** Forwards the requests held by 'hold' faults. */
  releaseHeld(): void;
  /** Faults each later request with probability `rate` (0 turns it off), kinds drawn evenly. */
  setRate(rate: number, seed: number, faults?: readonly Fault[]): void;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Pause of a 'stall' fault. Default 1500 ms. */
  stallMs?: number;
}

export async function startFaultProxy(target: string, o: FaultProxyOptions = {}): Promise<FaultProxy> {
  const upstream = new URL(target);
  const stallMs = o.stallMs ?? 1500;
  let pending = 0;
  let nextFault: Fault = '503';
  let pendingMatch: ((req: { method: string; url: string }) => boolean) | undefined;
  let waiters: ((f: { fault: Fault; method: string; url: string }) => void)[] = [];
  let rate = 0;
  let random = rng(0);
  let rateFaults: readonly Fault[] = FAULTS;
  let requests = 0;
  const log: { method: string; url: string }[] = [];
  const injected: Record<Fault, number> = { '503': 0, reset: 0, stall: 0, truncate: 0, hold: 0, '403': 0 };
  let held: (() => void)[] = [];

  const pick = (req: IncomingMessage): Fault | undefined => {
    const chosen = ((): Fault | undefined => {
      if (pending > 0 && (!pendingMatch || pendingMatch({ method: req.method ?? '', url: req.url ?? '' }))) {
        pending--;
        return nextFault;
      }
      if (rate > 0 && random() < rate) return rateFaults[Math.floor(random() * rateFaults.length)];
      return undefined;
    })();
    if (chosen) {
      const w = waiters;
      waiters = [];
      for (const resolve of w) resolve({ fault: chosen, method: req.method ?? '', url: req.url ?? '' });
    }
    return chosen;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, truncate: boolean) => {
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      const length = Number(upRes.headers['content-length'] ?? 0);
      const status = upRes.statusCode ?? 502;
      if (!truncate || req.method !== 'GET' || (status !== 200 && status !== 206) || length < 2) {
        res.writeHead(status, upRes.headers);
        upRes.pipe(res);
        return;
      }
      injected.truncate++;
      res.writeHead(status, upRes.headers);
      const cut = Math.floor(length / 2);
      let sent = 0;
      upRes.on('data', (chunk: Buffer) => {
        if (sent >= cut) return;
        const part = chunk.subarray(0, cut - sent);
        sent += part.length;
        if (sent < cut) {
          res.write(part);
          return;
        }
        upRes.destroy();
        res.write(part, () => res.socket?.destroy());
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const server: Server = createServer((req, res) => {
    requests++;
    log.push({ method: req.method ?? '', url: req.url ?? '' });
    const fault = pick(req);
    if (fault === '503' || fault === 'reset' || fault === '403') {
      injected[fault]++;
      // Drain the body first so the client sees the fault, not a write error.
      req.resume();
      req.on('end', () => {
        if (fault === 'reset') {
          req.socket.destroy();
          return;
        }
        const [status, code] = fault === '503' ? [503, 'SlowDown'] : [403, 'AccessDenied'];
        res.writeHead(status, { 'content-type': 'application/xml' });
        // HEAD responses carry no body: the client then knows the error by its status alone.
        res.end(req.method === 'HEAD' ? undefined : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected ${status}</Message></Error>`);
      });
      return;
    }
    if (fault === 'stall' || fault === 'hold') {
      injected[fault]++;
      req.pause();
      const go = () => {
        req.resume();
        forward(req, res, false);
      };
      if (fault === 'stall') setTimeout(go, stallMs);
      else held.push(go);
      return;
    }
    forward(req, res, fault === 'truncate');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    log,
    get injected() {
      return { ...injected };
    },
    failNext(count, f, match) {
      pending = count;
      nextFault = f;
      pendingMatch = match;
    },
    nextFault: () => new Promise((resolve) => waiters.push(resolve)),
    releaseHeld() {
      const go = held;
      held = [];
      for (const f of go) f();
    },
    setRate(r, seed, faults = FAULTS) {
      rate = r;
      random = rng(seed);
      rateFaults = faults;
    },
    close: () =>
      new Promise<void>((resolve) => {
        held = [];
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
