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
 * - Tile (what `broadcastTo` runs): wasm computes a multi-index per element; copying whole rows
 *   and then doubling the filled block with copyWithin runs at memcpy speed.
 * - Slice (e.g. the gradient of the explicit padding before strided convs): wasm first copies the
 *   whole input out of the heap, then copies each innermost row through a new subarray object.
 *   Reading the heap in place and copying short rows with a plain loop is several times faster.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

type Tf = typeof TfNamespace;
interface WasmBackend {
  incRef(dataId: object): void;
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}
interface KernelArgs {
  inputs: NamedTensorInfoMap;
  attrs?: NamedAttrMap;
  backend: unknown;
}

export const wasmFastKernelNames = ['Identity', 'Cast', 'Sum', 'Mean', 'Tile', 'Slice'] as const;

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
  const run = (name: string, backend: unknown, inputs: NamedTensorInfoMap, attrs: object = {}) => {
    const kernel = tf.getKernel(name, 'wasm');
    if (!kernel) throw new Error(`the wasm backend has no ${name} kernel`);
    return kernel.kernelFunc({ inputs, attrs: attrs as NamedAttrMap, backend: backend as never }) as TensorInfo;
  };
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
    // (axes are sorted and distinct, so they are contiguous when they span length - 1.)
    const first = axes[0];
    const last = axes[axes.length - 1];
    const contiguous = first !== undefined && last !== undefined && last - first === axes.length - 1;
    const trailing = last === rank - 1;
    if (contiguous && !trailing) {
      const b = shape.slice(0, first).reduce((n, d) => n * d, 1);
      const m = axes.reduce((n, a) => n * shape[a]!, 1); // parseAxisParam checked each axis against the rank
      const c = shape.slice(last + 1).reduce((n, d) => n * d, 1);
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
  replace(tf, 'Tile', (native) => (args) => tile(args) ?? (native(args as never) as TensorInfo));
  replace(tf, 'Slice', (native) => (args) => slice(tf, args) ?? (native(args as never) as TensorInfo));
}

/** x[begin : begin+size] for float32; undefined (use wasm's kernel) otherwise. */
function slice(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo | undefined {
  const x = inputs.x as TensorInfo;
  if (x.dtype !== 'float32' || x.shape.length === 0) return undefined;
  // One entry per axis in begin and size, as in strides (after the push below) and idx: every
  // [axis] access in this function is in range.
  const [begin, size] = tf.slice_util.parseSliceParams(x as never, attrs.begin as number[], attrs.size as number[]) as [number[], number[]];
  const shape = x.shape;
  const rank = shape.length;
  const wasm = backend as WasmBackend;
  const out = wasm.makeOutput(size, 'float32');
  if (tf.util.sizeFromShape(size) === 0) return out;
  // Views after makeOutput: allocating may grow (and move) the wasm heap.
  const src = wasm.typedArrayFromHeap(x);
  const dst = wasm.typedArrayFromHeap(out);
  const strides = tf.util.computeStrides(shape);
  strides.push(1);
  // Trailing axes taken whole merge into one contiguous run with the last partial axis.
  let j = rank - 1;
  while (j > 0 && begin[j] === 0 && size[j] === shape[j]) j--;
  const run = size[j]! * strides[j]!;
  const outer = size.slice(0, j);
  const count = outer.reduce((n, d) => n * d, 1);
  const idx = new Array<number>(j).fill(0);
  let from = begin.reduce((o, b, a) => o + b * strides[a]!, 0);
  let to = 0;
  for (let r = 0; r < count; r++) {
    if (run >= 64) dst.set(src.subarray(from, from + run), to);
    else for (let e = 0; e < run; e++) dst[to + e] = src[from + e]!;
    to += run;
    // Odometer over the outer axes, moving `from` by their strides.
    for (let a = j - 1; a >= 0; a--) {
      if (++idx[a]! < outer[a]!) {
        from += strides[a]!;
        break;
      }
      idx[a] = 0;
      from -= (outer[a]! - 1) * strides[a]!;
    }
  }
  return out;
}

/**
 * out[.., r·d + i, ..] = x[.., i, ..] along every axis. Recursing from the outermost axis, each
 * call writes one block of the output, then repeats that block reps-1 times right after itself.
 * Returns undefined (use wasm's kernel) for non-float32 data or when the innermost rows are so
 * short that per-row calls would cost more than wasm's per-element loop.
 */
function tile({ inputs, attrs = {}, backend }: KernelArgs): TensorInfo | undefined {
  const x = inputs.x as TensorInfo;
  const reps = attrs.reps as number[];
  const shape = x.shape;
  const rank = shape.length;
  if (x.dtype !== 'float32' || rank === 0) return undefined;
  // tfjs's tile op checked reps.length === rank; shape, reps and both stride arrays have one entry
  // per axis, so every [axis] access below is in range.
  const outShape = shape.map((d, i) => d * reps[i]!);
  const rows = shape.slice(0, -1).reduce((n, d) => n * d, 1);
  if (shape[rank - 1]! < 16 && rows > 4096) return undefined;
  const wasm = backend as WasmBackend;
  const out = wasm.makeOutput(outShape, 'float32');
  // Views after makeOutput: allocating may grow (and move) the wasm heap.
  const src = wasm.typedArrayFromHeap(x);
  const dst = wasm.typedArrayFromHeap(out);
  if (dst.length === 0) return out;
  const inStride = new Array<number>(rank);
  const outStride = new Array<number>(rank);
  inStride[rank - 1] = 1;
  outStride[rank - 1] = 1;
  for (let a = rank - 2; a >= 0; a--) {
    inStride[a] = inStride[a + 1]! * shape[a + 1]!;
    outStride[a] = outStride[a + 1]! * outShape[a + 1]!;
  }
  const fill = (axis: number, from: number, to: number): void => {
    const block = shape[axis]! * outStride[axis]!; // one repetition along `axis`
    if (axis === rank - 1) dst.set(src.subarray(from, from + shape[axis]!), to);
    else for (let i = 0; i < shape[axis]!; i++) fill(axis + 1, from + i * inStride[axis]!, to + i * outStride[axis]!);
    for (let done = 1; done < reps[axis]!; ) {
      const n = Math.min(done, reps[axis]! - done);
      dst.copyWithin(to + done * block, to, to + n * block);
      done += n;
    }
  };
  fill(0, 0, 0);
  return out;
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
