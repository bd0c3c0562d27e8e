/**
 * The task of the tfjs model thread (pipeline/inference/tfjs-thread.ts): one model, loaded in this
 * thread on its own tf engine (the pool initialised the backend), answering forward passes one at
 * a time. The wasm and cpu backends compute synchronously on the thread that calls them, so on the
 * infer worker's own thread every forward pass would stall the reads, tar parsing and decoding
 * that feed it.
 */
import type { io } from '@tensorflow/tfjs';
import { getTf } from '../backend/select.js';
import type { ResNetRSArch } from '../model/family.js';
import { registerModelLayers } from '../model/layers.js';
import type { Serve } from '../parallel/protocol.js';
import { teacherFromModel, type TeacherPreprocessing } from '../pseudo/teacher.js';

export interface TfjsThreadPayload {
  /** model.json's topology, weight specs and weights, as read by the caller (structured-cloned). */
  artifacts: io.ModelArtifacts;
  id: string;
  arch: ResNetRSArch;
  preprocessing: TeacherPreprocessing;
}

export type TfjsThreadRequest = { kind: 'run'; pixels: Float32Array; n: number; k: number } | { kind: 'close' };

export const serve: Serve<TfjsThreadPayload> = async (ctx) => {
  const p = ctx.payload;
  const tf = getTf();
  registerModelLayers(tf);
  const model = await tf.loadLayersModel(tf.io.fromMemory(p.artifacts), { strict: true });
  const teacher = teacherFromModel(model, p.id, p.arch, p.preprocessing);
  return async (request) => {
    const r = request as TfjsThreadRequest;
    switch (r.kind) {
      case 'run':
        return teacher.predictTopK(r.pixels, r.n, r.k);
      case 'close':
        teacher.dispose();
        return null;
    }
  };
};
