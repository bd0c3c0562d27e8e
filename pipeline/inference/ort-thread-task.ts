/**
 * The task of the ONNX Runtime thread (pipeline/inference/ort-thread.ts): one session, created in
 * this thread, answering forward passes one at a time. onnxruntime-node runs a session
 * synchronously on the thread that calls `run` (1.30: the promise only defers the call with
 * setImmediate), so on the caller's own thread every forward pass would stall the reads, tar
 * parsing, decoding and uploads that feed it.
 */
import type { Serve } from '../parallel/protocol.js';
import { createOrtSession, type OrtSessionHandle } from './onnxruntime.js';

export interface OrtThreadPayload {
  model: Uint8Array;
  threads: number;
  gpu?: boolean;
  spin?: boolean;
  input: string;
  output: string;
}

export type OrtThreadRequest = { kind: 'describe' } | { kind: 'run'; pixels: Float32Array; dims: number[] } | { kind: 'close' };

export type OrtDescription = Pick<OrtSessionHandle, 'description' | 'detail' | 'provider'>;

export const serve: Serve<OrtThreadPayload> = async (ctx) => {
  const p = ctx.payload;
  const handle = await createOrtSession(p.model, { threads: p.threads, gpu: p.gpu, spin: p.spin });
  const { session, runtime } = handle;
  return async (request) => {
    const r = request as OrtThreadRequest;
    switch (r.kind) {
      case 'describe':
        return { description: handle.description, detail: handle.detail, provider: handle.provider } satisfies OrtDescription;
      case 'run': {
        const out = await session.run({ [p.input]: new runtime.ort.Tensor('float32', r.pixels, r.dims) });
        const y = out[p.output];
        if (!y || !(y.data instanceof Float32Array)) throw new Error(`no float32 ${p.output} output`);
        return y.data;
      }
      case 'close':
        await session.release();
        return null;
    }
  };
};
