/**
 * A tfjs model on a thread of its own (a one-worker pool: pipeline/parallel/pool.ts) with its own
 * wasm or cpu engine, so that the infer worker's thread keeps reading, decoding and writing while
 * a batch runs: the producer then overlaps the forward passes instead of alternating with them,
 * as with ONNX Runtime (ort-thread.ts). Same kernels, same numbers as the model on the caller's
 * thread. A crash of the thread fails every pending and later call with a message naming it.
 */
import { WorkerPool } from '../parallel/pool.js';
import type { Teacher, TopK } from '../pseudo/teacher.js';
import type { TfjsThreadPayload, TfjsThreadRequest } from './tfjs-thread-task.js';

// Same extension as this file: .ts under tsx, .js from dist.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const task = new URL(`./tfjs-thread-task${ext}`, import.meta.url).href;

/** Backends that compute on the calling thread, one core each: the ones a model thread helps. */
export const THREAD_BACKENDS: readonly string[] = ['wasm', 'cpu'];

/** `where` names the model in errors (its store URI); `backend` is the caller's (wasm or cpu). */
export async function startTfjsThreadTeacher(payload: TfjsThreadPayload, backend: string, where: string): Promise<Teacher> {
  if (!THREAD_BACKENDS.includes(backend)) throw new Error(`a tfjs model thread runs on ${THREAD_BACKENDS.join(' or ')}, not ${backend}`);
  const pool = await WorkerPool.start({ label: 'tfjs model thread', size: 1, transport: 'thread', module: task, backend, payload: () => payload });
  const { imageSize: S, inputChannels: C } = payload.arch;
  return {
    id: payload.id,
    arch: payload.arch,
    preprocessing: payload.preprocessing,
    // The in-process teacher's name: predictions do not depend on which thread computed them.
    backend: `tfjs ${backend}`,
    detail: 'on a thread of its own',
    predictTopK: (pixels, n, k) =>
      // A copy of exactly the batch (a view into a larger buffer would be cloned whole), made before
      // this returns: the caller refills its buffer for the next batch meanwhile.
      pool.call<TopK>(0, { kind: 'run', pixels: pixels.slice(0, n * S * S * C), n, k } satisfies TfjsThreadRequest).catch((err: Error) => {
        throw new Error(`${where}: ${err.message}`, { cause: err });
      }),
    dispose() {
      void (async () => {
        if (!pool.failed) await pool.call(0, { kind: 'close' } satisfies TfjsThreadRequest).catch(() => undefined);
        await pool.close();
      })();
    },
  };
}
