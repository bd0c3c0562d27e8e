/**
 * Tensors the tape saves for backprop, without a kernel call or a tape node each.
 *
 * While a gradient is being recorded, tfjs-core's engine keeps every input and output a gradient
 * needs (`saveTensorsForBackwardMode`, and the `save` callback of custom gradients) through
 * `engine.clone`: it runs the Identity kernel with the engine's full bookkeeping and then records a
 * tape node for that Identity (tfjs-core 4.22, engine.ts `clone`). The node exists only for
 * higher-order gradients, where the backward pass is itself recorded and has to reach the original
 * tensor through the copy; a first-order gradient filters it out again (`getFilteredNodesXToY`).
 * A ResNet-RS training step saves ~800 tensors this way, so the engine spent more on these copies
 * than on many of the step's real kernels.
 *
 * Here a saved tensor is a new handle on the same buffer with the backend's reference count raised:
 * what the project's Identity kernel on wasm (./wasm-fast-kernels.ts) and the cpu backend's own
 * Identity return anyway, so every value, and every bit of a training run, is the same. Under a
 * higher-order gradient (the engine recording inside another recording) the engine's own clone runs.
 * Installed for the wasm and cpu backends, whose `incRef` this relies on.
 */
import type * as TfNamespace from '@tensorflow/tfjs';

type Tf = typeof TfNamespace;

interface TensorHandle {
  dataId: object;
  shape: number[];
  dtype: string;
}
interface RefCountingBackend {
  incRef(dataId: object): void;
}
/** The parts of tfjs-core's Engine this relies on (not in its public typings). */
interface EngineInternals {
  clone(x: TensorHandle): TensorHandle;
  backend: RefCountingBackend;
  state: { gradientDepth: number; tensorInfo: WeakMap<object, { backend: RefCountingBackend }> };
  makeTensorFromTensorInfo(info: TensorHandle, backend?: RefCountingBackend): TensorHandle;
}

const engineClone = new WeakMap<object, EngineInternals['clone']>();

export function installLeanTapeSaves(tf: Tf): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engineClone.has(engine)) return;
  const original = engine.clone;
  if (typeof original !== 'function' || typeof engine.makeTensorFromTensorInfo !== 'function' || !(engine.state?.tensorInfo instanceof WeakMap)) {
    // Another tfjs-core than the one this was written against: keep its own clone.
    return;
  }
  engineClone.set(engine, original);
  engine.clone = function (this: EngineInternals, x: TensorHandle): TensorHandle {
    if (this.state.gradientDepth > 1) return original.call(this, x);
    const backend = this.state.tensorInfo.get(x.dataId)?.backend ?? this.backend;
    backend.incRef(x.dataId);
    return this.makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }, backend);
  };
}

/** For benchmarks and tests (before/after): the engine's own clone again. */
export function useEngineTapeSaves(tf: Tf): void {
  const engine = tf.engine() as unknown as EngineInternals;
  const original = engineClone.get(engine);
  if (!original) return;
  engine.clone = original;
  engineClone.delete(engine);
}
