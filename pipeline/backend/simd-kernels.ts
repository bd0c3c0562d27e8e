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

export const simdKernelNames = ['AvgPoolGrad', 'SelftrainReluGrad', 'SelftrainBatchNormTrain', 'SelftrainBatchNormTrainGrad'] as const;

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
  tf.registerKernel({ kernelName: 'SelftrainBatchNormTrain', backendName: 'wasm', kernelFunc: batchNormTrain as unknown as KernelFunc });
  tf.registerKernel({ kernelName: 'SelftrainBatchNormTrainGrad', backendName: 'wasm', kernelFunc: batchNormTrainGrad as unknown as KernelFunc });
}

/** A float32 view of the whole heap, taken after the call's last allocation (growth moves it). */
const heapF32 = (b: WasmHeapBackend) => new Float32Array(b.wasm.asm.memory.buffer);
const heapF64 = (b: WasmHeapBackend) => new Float64Array(b.wasm.asm.memory.buffer);

/** [rows, channels] of a channels-last tensor. */
function rowsAndChannels(x: TensorInfo): [number, number] {
  const c = x.shape[x.shape.length - 1]!;
  return [x.shape.reduce((a, d) => a * d, 1) / c, c];
}

/** The outputs of the batch-norm kernels: one shaped like x, two per-channel [c]. */
function fullAndTwoPerChannel(b: WasmHeapBackend, shape: number[], c: number): [TensorInfo, TensorInfo, TensorInfo] {
  return [b.makeOutput(shape, 'float32'), b.makeOutput([c], 'float32'), b.makeOutput([c], 'float32')];
}

/**
 * Training-mode batch norm over every axis but the last: mean and (biased) variance of the batch,
 * y = (x - mean) · scale · rsqrt(variance + ε) + offset. Outputs [y, mean, variance].
 * Needs float32, channels % 4 == 0 and a non-empty x (batch-norm-training.ts checks).
 */
function batchNormTrain({ inputs, attrs = {}, backend }: KernelArgs): TensorInfo[] {
  const { x, scale, offset } = inputs as { x: TensorInfo; scale: TensorInfo; offset: TensorInfo };
  const b = backend as WasmHeapBackend;
  const [rows, c] = rowsAndChannels(x);
  const [y, mean, variance] = fullAndTwoPerChannel(b, x.shape, c);
  const eps = attrs.varianceEpsilon as number;
  const k = simdKernels(b);
  withScratch(b, 8 * c, (acc) => {
    k.bn_moments(ptr(b, x), rows, c, ptr(b, mean), ptr(b, variance), acc);
    // The float64 scratch is free again: reuse it for the per-channel factor a = γ·rsqrt(var + ε).
    const f32 = heapF32(b);
    const [g, v] = [ptr(b, scale) >> 2, ptr(b, variance) >> 2];
    for (let j = 0; j < c; j++) f32[(acc >> 2) + j] = f32[g + j]! / Math.sqrt(f32[v + j]! + eps);
    k.bn_apply(ptr(b, x), rows, c, ptr(b, mean), acc, ptr(b, offset), ptr(b, y));
  });
  return [y, mean, variance];
}

/**
 * Gradient of batchNormTrain with the statistics as functions of x. With M rows, r = rsqrt(var + ε),
 * x̂ = (x - mean)·r and the sums over rows: doffset = Σdy, dscale = Σdy·x̂ and
 * dx = scale·r·(dy - Σdy/M - x̂·Σ(dy·x̂)/M), computed as dy·a - b - k·(x - mean).
 * Outputs [dx, dscale, doffset].
 */
function batchNormTrainGrad({ inputs, attrs = {}, backend }: KernelArgs): TensorInfo[] {
  const { dy, x, mean, variance, scale } = inputs as Record<'dy' | 'x' | 'mean' | 'variance' | 'scale', TensorInfo>;
  const b = backend as WasmHeapBackend;
  const [rows, c] = rowsAndChannels(x);
  const [dx, dscale, doffset] = fullAndTwoPerChannel(b, x.shape, c);
  const eps = attrs.varianceEpsilon as number;
  const k = simdKernels(b);
  // Scratch: Σdy and Σdy·(x - mean) as float64 [2c], then the factors a, b, k as float32 [3c].
  withScratch(b, 16 * c + 12 * c, (acc) => {
    k.bn_grad_sums(ptr(b, dy), ptr(b, x), rows, c, ptr(b, mean), acc);
    const f32 = heapF32(b);
    const f64 = heapF64(b);
    const fa = (acc + 16 * c) >> 2;
    const [g, v, ds, dof] = [scale, variance, dscale, doffset].map((t) => ptr(b, t) >> 2) as [number, number, number, number];
    for (let j = 0; j < c; j++) {
      const sumDy = f64[(acc >> 3) + j]!;
      const sumDyXmu = f64[(acc >> 3) + c + j]!;
      const r = 1 / Math.sqrt(f32[v + j]! + eps);
      const gr = f32[g + j]! * r;
      f32[dof + j] = sumDy;
      f32[ds + j] = sumDyXmu * r;
      f32[fa + j] = gr;
      f32[fa + c + j] = (gr * sumDy) / rows;
      f32[fa + 2 * c + j] = (gr * r * r * sumDyXmu) / rows;
    }
    const at = fa << 2;
    k.bn_grad_dx(ptr(b, dy), ptr(b, x), rows, c, ptr(b, mean), at, at + 4 * c, at + 8 * c, ptr(b, dx));
  });
  return [dx, dscale, doffset];
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
