/**
 * Hand-written WebAssembly SIMD kernels (simd/kernels.wat) for the hot element-wise parts of a
 * ResNet training step on the wasm backend, found by profiling (bench/step-profile.ts):
 *
 * - `AvgPoolGrad` for non-overlapping windows (the ResNet-D shortcut's 2x2/2 pool): wasm's own is
 *   a scalar loop over every window tap, ~5 ms per call at batch 64; this one is a scaled copy.
 * - `SelftrainReluGrad` (dy · step(x) in one pass; tfjs's ReLU gradient runs Step, then Multiply).
 * - `SelftrainBatchNormTrain` / `SelftrainBatchNormTrainGrad`: training-mode batch norm and its
 *   gradient (see batch-norm-training.ts). tf.layers composes the forward from moments (Mean, Sub,
 *   Square, Mean) and FusedBatchNorm, and autodiff of that costs about fifteen full-size passes;
 *   these take two passes forward and two backward.
 *
 * The module imports the tfjs wasm module's own memory, so kernels work on tensors in place by
 * heap offset (BackendWasm keeps each tensor's `memoryOffset`); nothing is copied through JS.
 * One instance per tfjs wasm backend, made on first use.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { kernelsWasmBase64 } from './simd/kernels-wasm.js';
import { poolInfoOf } from './wasm-kernels.js';

type Tf = typeof TfNamespace;

/** The parts of BackendWasm used here (the class is not part of tfjs's public types). */
export interface WasmHeapBackend {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void; HEAPF32: Float32Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

interface SimdExports {
  bn_moments(x: number, rows: number, c: number, mean: number, variance: number, acc: number): void;
  bn_apply(x: number, rows: number, c: number, mean: number, a: number, b: number, y: number): void;
  bn_grad_sums(dy: number, x: number, rows: number, c: number, mean: number, acc: number): void;
  bn_grad_dx(dy: number, x: number, rows: number, c: number, mean: number, a: number, b: number, k: number, dx: number): void;
  relu_grad(dy: number, x: number, n: number, dx: number): void;
  avg_pool_grad_tiled(
    dy: number, dx: number, n: number, h: number, w: number, c: number,
    ho: number, wo: number, sh: number, sw: number, top: number, left: number, m: number,
  ): void;
}

const instances = new WeakMap<object, SimdExports>();
let compiled: WebAssembly.Module | undefined;

/** The kernels bound to `backend`'s heap. */
export function simdKernels(backend: WasmHeapBackend): SimdExports {
  let k = instances.get(backend);
  if (!k) {
    compiled ??= new WebAssembly.Module(Buffer.from(kernelsWasmBase64, 'base64'));
    const memory = backend.wasm.asm?.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new Error('tfjs wasm backend does not expose its memory (Module.asm.memory); cannot run the SIMD kernels');
    k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdExports;
    instances.set(backend, k);
  }
  return k;
}

/** Heap byte offset of a tensor's data. */
export const ptr = (backend: WasmHeapBackend, t: TensorInfo): number => backend.dataIdMap.get(t.dataId).memoryOffset;

/** Scratch memory on the wasm heap for one kernel call. */
export function withScratch<T>(backend: WasmHeapBackend, bytes: number, use: (at: number) => T): T {
  const at = backend.wasm._malloc(bytes) >>> 0;
  if (!at) throw new Error(`wasm heap: cannot allocate ${bytes} bytes of kernel scratch`);
  try {
    return use(at);
  } finally {
    backend.wasm._free(at);
  }
}

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  attrs?: NamedAttrMap;
  backend: unknown;
}

export const simdKernelNames = ['AvgPoolGrad', 'SelftrainReluGrad'] as const;

const natives = new Map<string, KernelConfig>();
let registered = false;

/** For benchmarks only (bench/step-profile.ts --baseline): wasm's own AvgPoolGrad again. */
export function useNativeAvgPoolGrad(tf: Tf): void {
  const native = natives.get('AvgPoolGrad');
  if (!native) return;
  tf.unregisterKernel('AvgPoolGrad', 'wasm');
  tf.registerKernel(native);
}

/** Registers the SIMD kernels for 'wasm'. Call before the wasm backend is first used. */
export function registerWasmSimdKernels(tf: Tf): void {
  if (registered) return;
  registered = true;
  const native = tf.getKernel('AvgPoolGrad', 'wasm');
  if (!native) throw new Error("wasm backend has no 'AvgPoolGrad' kernel to replace");
  natives.set('AvgPoolGrad', native);
  tf.unregisterKernel('AvgPoolGrad', 'wasm');
  tf.registerKernel({
    kernelName: 'AvgPoolGrad',
    backendName: 'wasm',
    kernelFunc: ((args: KernelArgs) => avgPoolGrad(tf, args) ?? native.kernelFunc(args as never)) as KernelFunc,
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
  });
  tf.registerKernel({ kernelName: 'SelftrainReluGrad', backendName: 'wasm', kernelFunc: reluGrad as unknown as KernelFunc });
}

/** dy · step(x), float32 only (the gradient that calls it checks). */
function reluGrad({ inputs, backend }: KernelArgs): TensorInfo {
  const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
  const b = backend as WasmHeapBackend;
  const out = b.makeOutput(x.shape, 'float32');
  const n = x.shape.reduce((a, d) => a * d, 1);
  if (n > 0) simdKernels(b).relu_grad(ptr(b, dy), ptr(b, x), n, ptr(b, out));
  return out;
}

/**
 * The gradient of an average pool whose windows tile the input (filter = stride, no dilation);
 * undefined (wasm's own kernel) otherwise.
 */
function avgPoolGrad(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo | undefined {
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  if (input.dtype !== 'float32' || input.shape.length !== 4) return undefined;
  const info = poolInfoOf(tf, input.shape, attrs);
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  if (fh !== sh || fw !== sw || info.padInfo.top < 0 || info.padInfo.left < 0) return undefined;
  const b = backend as WasmHeapBackend;
  const out = b.makeOutput(input.shape, 'float32');
  if (input.shape.some((d) => d === 0)) return out;
  simdKernels(b).avg_pool_grad_tiled(
    ptr(b, dy), ptr(b, out), info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, sh, sw, info.padInfo.top, info.padInfo.left, 1 / (fh * fw),
  );
  return out;
}
