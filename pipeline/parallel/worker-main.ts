/**
 * Entry point of every pool worker, as a worker thread (wasm/cpu: one tf engine per thread) or as
 * a child process (tfjs-node-gpu: one process per GPU). It initialises its own compute backend
 * (when the task needs one), loads the task module named in the init message and answers the
 * coordinator's calls one at a time. Reductions go through shared memory (threads) or through the coordinator (processes).
 */
import { parentPort } from 'node:worker_threads';
import { initBackend, type BackendPreference } from '../backend/select.js';
import type { FromWorker, Serve, ToWorker } from './protocol.js';
import { SharedAllReduce } from './reduce.js';

interface Port {
  send(msg: FromWorker): void;
  onMessage(fn: (msg: ToWorker) => void): void;
}

function openPort(): Port {
  if (parentPort) {
    const p = parentPort;
    return { send: (m) => p.postMessage(m), onMessage: (fn) => p.on('message', fn) };
  }
  if (!process.send) throw new Error('pipeline/parallel/worker-main: started neither as a worker thread nor with an IPC channel');
  // The coordinator went away (crashed or killed): nothing left to work for.
  process.on('disconnect', () => process.exit(1));
  return { send: (m) => void process.send!(m), onMessage: (fn) => process.on('message', fn as (m: unknown) => void) };
}

const port = openPort();
let handler: ((request: unknown) => Promise<unknown>) | undefined;
let queue: Promise<void> = Promise.resolve();
const pendingReduce = new Map<number, (data: Float32Array) => void>();
let reduceSeq = 0;

function errorMessage(err: unknown, id?: number): FromWorker {
  const e = err instanceof Error ? err : new Error(String(err));
  return { t: 'error', id, message: e.message, name: e.name, stack: e.stack };
}

async function init(msg: Extract<ToWorker, { t: 'init' }>): Promise<void> {
  if (msg.backend !== undefined) await initBackend(msg.backend as BackendPreference);
  const mod = (await import(msg.module)) as { serve?: Serve };
  if (typeof mod.serve !== 'function') throw new Error(`${msg.module} does not export serve(ctx)`);
  let allReduce: (local: Float32Array) => Promise<Float32Array>;
  const setup = msg.reduce;
  if (setup.kind === 'shared') {
    const shared = new SharedAllReduce(setup.memory, msg.rank);
    allReduce = async (local) => shared.reduce(local);
  } else if (setup.kind === 'host') {
    allReduce = (local) =>
      new Promise((resolve) => {
        const seq = ++reduceSeq;
        pendingReduce.set(seq, resolve);
        port.send({ t: 'reduce', seq, data: local });
      });
  } else {
    allReduce = async () => {
      throw new Error('this pool was started without a reduction');
    };
  }
  handler = await mod.serve({
    rank: msg.rank,
    size: msg.size,
    payload: msg.payload,
    allReduce,
    log: (level, message) => port.send({ t: 'log', level, message }),
  });
}

port.onMessage((msg) => {
  switch (msg.t) {
    case 'init':
      init(msg).then(
        () => port.send({ t: 'ready' }),
        (err) => port.send(errorMessage(err)),
      );
      return;
    case 'call':
      // One call at a time, in arrival order (a step must finish before the next starts).
      queue = queue.then(async () => {
        try {
          if (!handler) throw new Error('call before init');
          port.send({ t: 'result', id: msg.id, value: await handler(msg.request) });
        } catch (err) {
          port.send(errorMessage(err, msg.id));
        }
      });
      return;
    case 'reduced': {
      const resolve = pendingReduce.get(msg.seq);
      pendingReduce.delete(msg.seq);
      resolve?.(msg.data);
      return;
    }
    case 'close':
      if (parentPort) parentPort.close();
      else process.exit(0);
      return;
  }
});
