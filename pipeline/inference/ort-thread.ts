/**
 * An ONNX Runtime session on a thread of its own (a one-worker pool: pipeline/parallel/pool.ts),
 * so that the thread that feeds it keeps reading, decoding and writing while a batch runs: the
 * infer worker's producer then overlaps the forward passes instead of alternating with them.
 * A crash of the thread fails every pending and later call with a message naming it (never hangs).
 */
import { WorkerPool } from '../parallel/pool.js';
import type { OrtDescription, OrtThreadPayload, OrtThreadRequest } from './ort-thread-task.js';

// Same extension as this file: .ts under tsx, .js from dist.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const task = new URL(`./ort-thread-task${ext}`, import.meta.url).href;

export interface OrtThread extends OrtDescription {
  /** One forward pass: float32 input of shape `dims` → the output's float32 data. */
  run(pixels: Float32Array, dims: number[]): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function startOrtThread(payload: OrtThreadPayload): Promise<OrtThread> {
  const pool = await WorkerPool.start({ label: 'ONNX Runtime thread', size: 1, transport: 'thread', module: task, payload: () => payload });
  try {
    const d = await pool.call<OrtDescription>(0, { kind: 'describe' } satisfies OrtThreadRequest);
    return {
      ...d,
      // A copy of exactly the batch: a view into a larger buffer would be cloned whole.
      run: (pixels, dims) => pool.call<Float32Array>(0, { kind: 'run', pixels: pixels.slice(), dims } satisfies OrtThreadRequest),
      async close() {
        if (!pool.failed) await pool.call(0, { kind: 'close' } satisfies OrtThreadRequest).catch(() => undefined);
        await pool.close();
      },
    };
  } catch (err) {
    await pool.close();
    throw err;
  }
}
