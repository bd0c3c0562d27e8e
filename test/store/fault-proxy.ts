/**
 * A tiny HTTP proxy in front of a real S3 endpoint that injects faults into the first N
 * requests: answers 503 SlowDown, or resets the connection. Real faults over real HTTP, for
 * the retry tests; requests after the first N pass through unchanged (Host header kept, so
 * the client's signature still verifies).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = '503' | 'reset';

export interface FaultProxy {
  endpoint: string;
  /** Requests seen so far (faulted or forwarded). */
  readonly requests: number;
  /** Injects `fault` into the next `count` requests. */
  failNext(count: number, fault: Fault): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  let pending = 0;
  let fault: Fault = '503';
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    if (pending > 0) {
      pending--;
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
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    failNext(count, f) {
      pending = count;
      fault = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
