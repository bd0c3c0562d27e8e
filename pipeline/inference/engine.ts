/**
 * Which engine runs inference (infer and evaluate stages), from the manifest's `inferBackend`:
 *   auto  ONNX Runtime when onnxruntime-node can be loaded, else tfjs (with the reason);
 *   onnx  ONNX Runtime, an error naming the cause when it cannot be loaded;
 *   tfjs  the tfjs backend chosen by the manifest's `backend`.
 * Training always uses tfjs; only inference has the choice.
 */
import { ortUnavailableReason } from './onnxruntime.js';

export const inferBackendChoices = ['auto', 'onnx', 'tfjs'] as const;
export type InferBackendChoice = (typeof inferBackendChoices)[number];
export type InferEngine = 'onnx' | 'tfjs';

export interface EngineDecision {
  engine: InferEngine;
  /** Why ONNX Runtime is not used (when engine is tfjs). */
  reason?: string;
}

export async function resolveInferEngine(choice: InferBackendChoice): Promise<EngineDecision> {
  if (choice === 'tfjs') return { engine: 'tfjs', reason: 'inferBackend is tfjs' };
  const why = await ortUnavailableReason();
  if (why === undefined) return { engine: 'onnx' };
  if (choice === 'onnx') throw new Error(`inferBackend 'onnx' was requested but ONNX Runtime cannot be used: ${why}`);
  return { engine: 'tfjs', reason: `ONNX Runtime unavailable (${why})` };
}
