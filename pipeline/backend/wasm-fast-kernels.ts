/**
 * Faster wasm versions of forward kernels a training step calls hundreds of times. Found by
 * profiling a ResNet-RS training step (bench/step-profile.ts); each one keeps wasm's own kernel
 * for the cases it does not speed up.
 *
 * - Identity / same-dtype Cast: wasm copies the whole buffer; tensors are immutable, so sharing
 *   the buffer (a reference count, as the cpu backend does) is enough. The engine runs Identity
 *   for every tensor the tape saves for backprop (`engine.clone`), ~1000 times per step.
 * - Sum / Mean over a block of axes that is not innermost (the batch-norm and bias reductions over
 *   N,H,W of NHWC; global average pooling over H,W): wasm first transposes the reduced axes
 *   innermost, a full copy that costs 10-50x the reduction itself. Viewed as [B, M, 1, C], an
 *   XNNPACK average pool with an [M, 1] window reduces in place (×M for a sum). Not a matmul with
 *   ones: wasm's matmul caches a packed copy of its right operand until that tensor is disposed,
 *   which would double the memory held by saved activations.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

type Tf = typeof TfNamespace;
interface WasmBackend {
  incRef(dataId: object): void;
  disposeData(dataId: object, force?: boolean): boolean;
}
interface KernelArgs {
  inputs: NamedTensorInfoMap;
  attrs?: NamedAttrMap;
  backend: unknown;
}

export const wasmFastKernelNames = ['Identity', 'Cast', 'Sum', 'Mean'] as const;

let registered = false;
const natives = new Map<string, KernelConfig>();

/** For benchmarks only (bench/step-profile.ts measures before/after): wasm's own kernels again. */
export function useNativeWasmFastKernels(tf: Tf): void {
  for (const [name, native] of natives) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(native);
  }
}

export function registerWasmFastKernels(tf: Tf): void {
  if (registered) return;
  registered = true;
  const run = (name: string, backend: unknown, inputs: NamedTensorInfoMap, attrs: object = {}) =>
    tf.getKernel(name, 'wasm')!.kernelFunc({ inputs, attrs: attrs as NamedAttrMap, backend: backend as never }) as TensorInfo;
  const free = (backend: unknown, ...infos: TensorInfo[]) => infos.forEach((i) => (backend as WasmBackend).disposeData(i.dataId));

  const share = ({ inputs, backend }: KernelArgs): TensorInfo => {
    const { x } = inputs as { x: TensorInfo };
    (backend as WasmBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  replace(tf, 'Identity', (native) => (args) => ((args.inputs.x as TensorInfo).dtype === 'string' ? (native(args as never) as TensorInfo) : share(args)));
  replace(tf, 'Cast', (native) => (args) => ((args.inputs.x as TensorInfo).dtype === args.attrs?.dtype ? share(args) : (native(args as never) as TensorInfo)));

  const reduce = (mean: boolean) => (native: KernelFunc) => (args: KernelArgs) => {
    const { inputs, attrs = {}, backend } = args;
    const x = inputs.x as TensorInfo;
    const shape = x.shape;
    const rank = shape.length;
    if (x.dtype !== 'float32' || rank < 2 || tf.util.sizeFromShape(shape) === 0) return native(args as never) as TensorInfo;
    const axes = [...new Set(tf.util.parseAxisParam(attrs.axis as number | number[], shape))].sort((a, b) => a - b);
    const keepDims = Boolean(attrs.keepDims);
    const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d)).filter((_, i) => keepDims || !axes.includes(i));
    // A contiguous block of axes that is not trailing: [B, M, C] with M reduced. wasm would
    // transpose M innermost first; an average pool with an [M, 1] window reduces it in place.
    const contiguous = axes.length > 0 && axes.every((a, i) => i === 0 || a === axes[i - 1] + 1);
    const trailing = axes[axes.length - 1] === rank - 1;
    if (contiguous && !trailing) {
      const b = shape.slice(0, axes[0]).reduce((n, d) => n * d, 1);
      const m = axes.reduce((n, a) => n * shape[a], 1);
      const c = shape.slice(axes[axes.length - 1] + 1).reduce((n, d) => n * d, 1);
      const rows = run('Reshape', backend, { x }, { shape: [b, m, 1, c] });
      const pooled = run('AvgPool', backend, { x: rows }, { filterSize: [m, 1], strides: [1, 1], pad: 'valid' });
      free(backend, rows);
      let result = pooled;
      if (!mean) {
        const count = run('Fill', backend, {}, { shape: [], value: m, dtype: 'float32' });
        result = run('Multiply', backend, { a: pooled, b: count });
        free(backend, count, pooled);
      }
      const out = run('Reshape', backend, { x: result }, { shape: outShape });
      free(backend, result);
      return out;
    }
    return native(args as never) as TensorInfo;
  };
  replace(tf, 'Sum', reduce(false));
  replace(tf, 'Mean', reduce(true));
}

/**
 * Swaps a wasm kernel for `make(native)`. The replacement inherits the native kernel's setupFunc
 * (which binds its C++ function when the backend starts), so the native path keeps working.
 */
function replace(tf: Tf, name: string, make: (native: KernelFunc) => (args: KernelArgs) => TensorInfo): void {
  const native = tf.getKernel(name, 'wasm');
  if (!native) throw new Error(`wasm backend has no '${name}' kernel to replace`);
  natives.set(name, native);
  tf.unregisterKernel(name, 'wasm');
  const config: KernelConfig = {
    kernelName: name,
    backendName: 'wasm',
    kernelFunc: make(native.kernelFunc) as KernelFunc,
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
  };
  tf.registerKernel(config);
}
