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
 *
 * Either `failNext(count, fault)` (the next `count` requests get `fault`), or `setRate(rate,
 * seed)` (each request is faulted with probability `rate`, the fault drawn from all four, seeded).
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rng } from '../../pipeline/data/rng.js';

export type Fault = '503' | 'reset' | 'stall' | 'truncate';
export const FAULTS: readonly Fault[] = ['503', 'reset', 'stall', 'truncate'];

export interface FaultProxy {
  endpoint: string;
  /** Requests seen so far (faulted or forwarded). */
  readonly requests: number;
  /** Faults injected so far, by kind (a truncate drawn for a bodiless response is not counted). */
  readonly injected: Readonly<Record<Fault, number>>;
  /** Injects `fault` into the next `count` requests. */
  failNext(count: number, fault: Fault): void;
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
  let rate = 0;
  let random = rng(0);
  let rateFaults: readonly Fault[] = FAULTS;
  let requests = 0;
  const injected: Record<Fault, number> = { '503': 0, reset: 0, stall: 0, truncate: 0 };

  const pick = (): Fault | undefined => {
    if (pending > 0) {
      pending--;
      return nextFault;
    }
    if (rate > 0 && random() < rate) return rateFaults[Math.floor(random() * rateFaults.length)];
    return undefined;
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
    const fault = pick();
    if (fault === '503' || fault === 'reset') {
      injected[fault]++;
      // Drain the body first so the client sees the fault, not a write error.
      req.resume();
      req.on('end', () => {
        if (fault === 'reset') {
          req.socket.destroy();
        } else {
          res.writeHead(503, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected 503</Message></Error>');
        }
      });
      return;
    }
    if (fault === 'stall') {
      injected.stall++;
      req.pause();
      setTimeout(() => {
        req.resume();
        forward(req, res, false);
      }, stallMs);
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
    get injected() {
      return { ...injected };
    },
    failNext(count, f) {
      pending = count;
      nextFault = f;
    },
    setRate(r, seed, faults = FAULTS) {
      rate = r;
      random = rng(seed);
      rateFaults = faults;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
