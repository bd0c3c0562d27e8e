/**
 * Switches the project's kernel and gradient improvements off again, for before/after benchmarks
 * (bench/step-profile.ts, bench/step-callgrind.ts, bench/model.ts). Call right after initBackend.
 *
 * - `baseline`: every improvement off: tf.layers' composite batch norm, tfjs's own gradients and
 *   wasm's own kernels (the project's composite Conv2DBackpropFilter stays: wasm has none).
 * - `before-simd`: the state before the SIMD kernels (simd-kernels.ts, batch-norm-training.ts):
 *   the fused training-mode batch norm, the one-pass ReLU gradient, the tiled AvgPoolGrad, the
 *   direct Conv2DBackpropFilter and Conv2DBackpropInput and the direct forward conv off.
 */
import type { BackendSelection } from '../pipeline/backend/select.js';
import { restoreDefaultGradients } from '../pipeline/backend/gradients.js';
import { useNativeWasmKernel } from '../pipeline/backend/wasm-kernels.js';
import { useNativeWasmFastKernels } from '../pipeline/backend/wasm-fast-kernels.js';
import { useFallbackKernel } from '../pipeline/backend/simd-kernels.js';
import { setFastTrainingBatchNorm } from '../pipeline/backend/batch-norm-training.js';
import { useEngineTapeSaves } from '../pipeline/backend/tape-saves.js';

export const improvements = ['bn-train', 'bn-grad', 'relu-grad', 'filter-grad', 'input-grad-simd', 'conv-forward', 'input-grad', 'maxpool-grad', 'avgpool-grad', 'fast-kernels', 'lean-saves'] as const;
export const simdImprovements = ['bn-train', 'relu-grad', 'avgpool-grad', 'filter-grad', 'input-grad-simd', 'conv-forward'] as const;

/** The improvements named by a preset ('baseline', 'before-simd', 'none') or a comma-separated list. */
export function parseDisabled(spec: string): Set<string> {
  const presets: Record<string, readonly string[]> = { baseline: improvements, 'before-simd': simdImprovements, none: [] };
  const names = [...(presets[spec] ?? spec.split(',').filter(Boolean))];
  for (const d of names) {
    if (!(improvements as readonly string[]).includes(d)) throw new Error(`unknown improvement '${d}' (known: ${improvements.join(', ')}; presets baseline, before-simd)`);
  }
  return new Set(names);
}

export function disableImprovements(sel: BackendSelection, disabled: Set<string>): void {
  const tf = sel.tf;
  if (disabled.has('bn-grad')) restoreDefaultGradients(tf, ['FusedBatchNorm', 'Mean', 'Sum']);
  if (disabled.has('relu-grad')) restoreDefaultGradients(tf, ['Relu']);
  if (disabled.has('bn-train')) setFastTrainingBatchNorm(false);
  if (disabled.has('lean-saves')) useEngineTapeSaves(tf);
  if (sel.name !== 'wasm') return;
  if (disabled.has('avgpool-grad')) useFallbackKernel(tf, 'AvgPoolGrad');
  if (disabled.has('filter-grad')) useFallbackKernel(tf, 'Conv2DBackpropFilter');
  if (disabled.has('conv-forward')) useFallbackKernel(tf, 'FusedConv2D');
  if (disabled.has('input-grad-simd') || disabled.has('input-grad')) useFallbackKernel(tf, 'Conv2DBackpropInput');
  if (disabled.has('input-grad')) useNativeWasmKernel(tf, 'Conv2DBackpropInput');
  if (disabled.has('maxpool-grad')) useNativeWasmKernel(tf, 'MaxPoolGrad');
  if (disabled.has('fast-kernels')) useNativeWasmFastKernels(tf);
}
