/**
 * Hand-written WebAssembly SIMD kernels (simd/kernels.wat) for the hot parts of a ResNet training
 * step on the wasm backend, found by profiling (bench/step-profile.ts, bench/simd-ops.ts):
 *
 * - `Conv2DBackpropFilter`: straight from x and dy, 4x8 register blocks per filter tap (the
 *   composite in wasm-kernels.ts transposes both and has XNNPACK pack dy as a filter).
 * - `Conv2DBackpropInput` and the forward `FusedConv2D` (no bias/activation): matmuls per filter
 *   tap over the positions that read inside the image, so no multiply touches padding or the
 *   zeros of a dilated dy; used where a tap sums enough channels to beat XNNPACK.
 * - `AvgPoolGrad` for non-overlapping windows (the ResNet-D shortcut's 2x2/2 pool): wasm's own is
 *   a scalar loop over every window tap, ~5 ms per call at batch 64; this one is a scaled copy.
 * - `SelftrainReluGrad` (dy · step(x) in one pass; tfjs's ReLU gradient runs Step, then Multiply).
 * - `SelftrainBatchNormTrain` / `SelftrainBatchNormTrainGrad`: training-mode batch norm and its
 *   gradient (see batch-norm-training.ts). tf.layers composes the forward from moments (Mean, Sub,
 *   Square, Mean) and FusedBatchNorm, and autodiff of that costs about fifteen full-size passes;
 *   these take three passes forward and two backward.
 *
 * The convolutions' inner loops multiply-add with relaxed SIMD's `f32x4.relaxed_madd` (WebAssembly
 * relaxed-SIMD proposal, in V8 since 11.4, so in Node 22 and 24): one fused multiply-add with a
 * single rounding where the CPU has one (x86-64 with FMA3, every ARM64): against a multiply and an
 * add, 10-21 % less time per training step in each of the three conv kernels (bench/step-profile.ts
 * at batch 64). The spec lets a CPU without FMA round twice, so weights are bit-identical between
 * machines that fuse, not between one that fuses and one that does not.
 *
 * Each replaced kernel falls back to the one it replaced for the cases it does not handle.
 * The module imports the tfjs wasm module's own memory, so kernels work on tensors in place by
 * heap offset (BackendWasm keeps each tensor's `memoryOffset`); nothing is copied through JS.
 * One instance per tfjs wasm backend, made on first use.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { kernelsWasmBase64 } from './simd/kernels-wasm.js';
import { convInfoFor, poolInfoOf } from './wasm-kernels.js';

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
  gemm_nn(a: number, lda: number, b: number, ldb: number, c: number, ldc: number, m: number, n: number, k: number, acc: 0 | 1): void;
  conv_taps(
    input: number, output: number, taps: number, n: number, h: number, w: number, ci: number, ho: number, wo: number, co: number,
    fh: number, fw: number, sh: number, sw: number, top: number, left: number, forward: 0 | 1,
  ): void;
  conv_bpf_tap(
    x: number, dy: number, cn: number, cy: number, cx: number,
    xn: number, xy: number, xx: number, dyn: number, dyy: number, dyx: number,
    ci: number, co: number, dw: number,
  ): void;
  avg_pool_grad_tiled(
    dy: number, dx: number, n: number, h: number, w: number, c: number,
    ho: number, wo: number, sh: number, sw: number, top: number, left: number, m: number,
  ): void;
  momentum_sgd(w: number, wout: number, acc: number, g: number, n: number, lr: number, m: number, nesterov: 0 | 1): void;
  ema_toward(s: number, sout: number, w: number, n: number, c: number): void;
}

const instances = new WeakMap<object, SimdExports>();
let compiled: WebAssembly.Module | undefined;

function compileKernels(): WebAssembly.Module {
  try {
    return new WebAssembly.Module(Buffer.from(kernelsWasmBase64, 'base64'));
  } catch (err) {
    throw new Error(`cannot compile the project's SIMD kernels (they need WebAssembly SIMD and relaxed SIMD: Node 22 or later): ${(err as Error).message}`, { cause: err });
  }
}

/** The kernels bound to `backend`'s heap. */
export function simdKernels(backend: WasmHeapBackend): SimdExports {
  let k = instances.get(backend);
  if (!k) {
    compiled ??= compileKernels();
    const memory = backend.wasm.asm?.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new Error('tfjs wasm backend does not expose its memory (Module.asm.memory); cannot run the SIMD kernels');
    k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdExports;
    instances.set(backend, k);
  }
  return k;
}

/** `tf`'s backend when it is wasm with its heap reachable (tensors by heap offset), else undefined. */
export function wasmHeapBackend(tf: Tf): WasmHeapBackend | undefined {
  const b = tf.backend() as unknown as Partial<WasmHeapBackend>;
  return b.wasm?.asm?.memory instanceof WebAssembly.Memory && b.dataIdMap ? (b as WasmHeapBackend) : undefined;
}

/** Heap byte offset of a tensor's data. */
export const ptr = (backend: WasmHeapBackend, t: TensorInfo): number => backend.dataIdMap.get(t.dataId).memoryOffset;

/**
 * Gives variable `v` new heap memory, filled by `fill(heap byte offset)`, and releases the old: a
 * write without tf ops (and their engine bookkeeping). Never in place: the wasm backend caches
 * XNNPACK operators with their packed filters by the filter's memory, and drops them only when that
 * memory is released (a weight changed in place would keep being convolved with its old values);
 * and tfjs lets tensors share memory (clone, assign), which an in-place write would change too.
 */
export function replaceOnHeap(tf: Tf, backend: WasmHeapBackend, v: TfNamespace.Variable, fill: (out: number) => void): void {
  const fresh = tf.engine().makeTensorFromTensorInfo(backend.makeOutput(v.shape, 'float32'), backend as never);
  fill(ptr(backend, fresh));
  v.assign(fresh);
  fresh.dispose();
}

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

export const simdKernelNames = ['AvgPoolGrad', 'FusedConv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'SelftrainReluGrad', 'SelftrainBatchNormTrain', 'SelftrainBatchNormTrainGrad'] as const;

/** The kernels these replace, which still serve the cases the SIMD versions do not handle. */
const fallbacks = new Map<string, KernelConfig>();
let registered = false;

/**
 * For benchmarks only (bench/kernel-switches.ts): the replaced kernel alone again (wasm's own
 * AvgPoolGrad and FusedConv2D; the project's composite conv gradients from wasm-kernels.ts).
 */
export function useFallbackKernel(tf: Tf, name: 'AvgPoolGrad' | 'FusedConv2D' | 'Conv2DBackpropFilter' | 'Conv2DBackpropInput'): void {
  const fallback = fallbacks.get(name);
  if (!fallback) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel(fallback);
}

/**
 * Registers the SIMD kernels for 'wasm'. Call before the wasm backend is first used, after
 * registerWasmTrainingKernels (whose Conv2DBackpropFilter becomes the fallback here).
 */
export function registerWasmSimdKernels(tf: Tf): void {
  if (registered) return;
  registered = true;
  replaceWithFallback(tf, 'AvgPoolGrad', (args) => avgPoolGrad(tf, args));
  replaceWithFallback(tf, 'Conv2DBackpropFilter', (args) => convBackpropFilter(tf, args));
  replaceWithFallback(tf, 'Conv2DBackpropInput', (args) => convBackpropInput(tf, args));
  replaceWithFallback(tf, 'FusedConv2D', (args) => convForward(tf, args));
  tf.registerKernel({ kernelName: 'SelftrainReluGrad', backendName: 'wasm', kernelFunc: reluGrad as unknown as KernelFunc });
  tf.registerKernel({ kernelName: 'SelftrainBatchNormTrain', backendName: 'wasm', kernelFunc: batchNormTrain as unknown as KernelFunc });
  tf.registerKernel({ kernelName: 'SelftrainBatchNormTrainGrad', backendName: 'wasm', kernelFunc: batchNormTrainGrad as unknown as KernelFunc });
}

/** Registers `fast` for `name` on wasm; where it returns undefined the previous kernel runs. */
function replaceWithFallback(tf: Tf, name: string, fast: (args: KernelArgs) => TensorInfo | undefined): void {
  const previous = tf.getKernel(name, 'wasm');
  if (!previous) throw new Error(`wasm backend has no '${name}' kernel to replace`);
  fallbacks.set(name, previous);
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({
    kernelName: name,
    backendName: 'wasm',
    kernelFunc: ((args: KernelArgs) => fast(args) ?? previous.kernelFunc(args as never)) as KernelFunc,
    setupFunc: previous.setupFunc,
    disposeFunc: previous.disposeFunc,
  });
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

/**
 * Channels summed per tap (the matmul depth) below which XNNPACK's convolution beats the per-tap
 * matmuls of conv_taps: measured with bench/simd-ops.ts at the ResNet-RS shapes on a Xeon with
 * AVX-512 under V8 13 (with mul + add, 16 was slower and 32 faster; with the fused multiply-add,
 * 16 is faster too).
 */
const MIN_TAP_DEPTH = 16;

/**
 * The same for a 1x1 conv, which is one matmul over all positions (XNNPACK's GEMM kernel there,
 * with its packed weights, still wins at 16 input channels).
 */
const MIN_GEMM_DEPTH = 32;

/** Output maps up to this many pixels (16x16) take the direct forward conv. */
const MAX_DIRECT_FORWARD_PIXELS = 256;

/** A 1x1, stride-1, unpadded conv: one matmul over all positions (rows of x and of y in step). */
function isPointwise(info: ReturnType<typeof convInfoFor>): boolean {
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, padInfo, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo } = info;
  return fh === 1 && fw === 1 && sh === 1 && sw === 1 && padInfo.top === 0 && padInfo.left === 0 && ho === h && wo === w;
}

/** Bytes of x and dy one filter-gradient pass works on at a time: fits in L2 with room to spare. */
const CHUNK_BYTES = 256 * 1024;

/**
 * Conv2D filter gradient dW[a,b,i,o] = Σ_(n,y,x) xpad[n, y·s+a, x·s+b, i] · dy[n,y,x,o], straight
 * from x and dy on the heap (the composite in wasm-kernels.ts transposes both and has XNNPACK pack
 * dy as a filter; for 1x1 convs it transposes x and packs dy for a matmul, ~1 GMAC/s). For each
 * tap, the output positions that read inside the image form a rectangle; conv_bpf_tap sums over
 * it, a few images at a time, 4x8 blocks of dW held in registers. Per tap and block the images
 * are summed in a fixed order (deterministic). Needs float32, in channels % 4 == 0, out channels
 * % 8 == 0 and no dilation; undefined (the composite) otherwise.
 */
function convBackpropFilter(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo | undefined {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') return undefined;
  const info = convInfoFor(tf, x.shape, attrs.filterShape as number[], attrs, 'Conv2DBackpropFilter');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co, outHeight: ho, outWidth: wo } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  if (ci % 4 !== 0 || co % 8 !== 0 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  const b = backend as WasmHeapBackend;
  const out = b.makeOutput([fh, fw, ci, co], 'float32');
  const pdw = ptr(b, out);
  heapF32(b).fill(0, pdw >> 2, (pdw >> 2) + fh * fw * ci * co);
  if (n * ho * wo === 0 || ci === 0 || co === 0) return out;
  const k = simdKernels(b);
  const [px, pdy] = [ptr(b, x), ptr(b, dy)];
  const [xRow, dyRow] = [ci * 4, co * 4];

  if (isPointwise(info)) {
    // 1x1: dW = xᵀ·dy over all N·H·W positions, one contiguous run; chunks of it.
    const rows = n * h * w;
    const chunk = Math.max(1, Math.floor(CHUNK_BYTES / (xRow + dyRow)));
    for (let r = 0; r < rows; r += chunk) {
      k.conv_bpf_tap(px + r * xRow, pdy + r * dyRow, 1, 1, Math.min(chunk, rows - r), 0, 0, xRow, 0, 0, dyRow, ci, co, pdw);
    }
    return out;
  }
  const images = Math.max(1, Math.floor(CHUNK_BYTES / ((h * w * ci + ho * wo * co) * 4)));
  for (let n0 = 0; n0 < n; n0 += images) {
    const cn = Math.min(images, n - n0);
    for (let a = 0; a < fh; a++) {
      // Rows y whose input row y·sh + a - top lies in [0, h).
      const y0 = Math.max(0, Math.ceil((top - a) / sh));
      const y1 = Math.min(ho - 1, Math.floor((h - 1 + top - a) / sh));
      if (y1 < y0) continue;
      for (let c = 0; c < fw; c++) {
        const x0 = Math.max(0, Math.ceil((left - c) / sw));
        const x1 = Math.min(wo - 1, Math.floor((w - 1 + left - c) / sw));
        if (x1 < x0) continue;
        const iy = y0 * sh + a - top;
        const ix = x0 * sw + c - left;
        k.conv_bpf_tap(
          px + ((n0 * h + iy) * w + ix) * xRow,
          pdy + ((n0 * ho + y0) * wo + x0) * dyRow,
          cn, y1 - y0 + 1, x1 - x0 + 1,
          h * w * xRow, sh * w * xRow, sw * xRow,
          ho * wo * dyRow, wo * dyRow, dyRow,
          ci, co, pdw + (a * fw + c) * ci * co * 4,
        );
      }
    }
  }
  return out;
}

/**
 * Conv2D input gradient straight from the heap, as a sum of matmuls: each filter tap (a, b) sends
 * dy[n, y, x, :] · W[a, b]ᵀ to dx[n, y·s + a - top, x·s + b - left, :]. Per output row and tap the
 * positions that land inside the image are a run of dy rows and a run of dx rows s·ci apart, so
 * gemm_nn adds the run's products into dx (conv_taps walks images, rows and taps in wasm). Every multiply is a real one: no zero-dilated dy for
 * strides, no padding taps, no flipped copy for XNNPACK to pack. A 1x1, stride-1, unpadded conv
 * is one matmul over all positions. Taps are summed in a fixed order (deterministic).
 * Needs float32, in channels % 8 == 0 and no dilation, and out channels >= MIN_TAP_DEPTH
 * (MIN_GEMM_DEPTH for 1x1) unless strided; undefined (the composite) otherwise.
 */
function convBackpropInput(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo | undefined {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  const inputShape = attrs.inputShape as number[];
  const info = convInfoFor(tf, inputShape, filter.shape, attrs, 'Conv2DBackpropInput');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co, outHeight: ho, outWidth: wo } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  if (ci % 8 !== 0 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  // The composite's XNNPACK convolution sums all taps in registers; these matmuls add each tap's
  // product into dx, which only pays off once each tap's sum is long enough, or where the
  // composite wastes work (strides: polyphase with 16/9 the multiplies plus an interleave).
  const contiguous = isPointwise(info);
  if (co < (contiguous ? MIN_GEMM_DEPTH : MIN_TAP_DEPTH) && sh === 1 && sw === 1) return undefined;
  const b = backend as WasmHeapBackend;
  const out = b.makeOutput(inputShape, 'float32');
  const rows = n * h * w;
  if (rows === 0 || ci === 0) return out;
  const pdx = ptr(b, out);
  if (!contiguous || co === 0) heapF32(b).fill(0, pdx >> 2, (pdx >> 2) + rows * ci);
  if (co === 0 || n * ho * wo === 0) return out;
  const k = simdKernels(b);
  withScratch(b, fh * fw * ci * co * 4, (wt) => {
    // Wᵀ per tap: [fh, fw, co, ci] from W [fh, fw, ci, co] (small: at most a few MB).
    const f32 = heapF32(b);
    const [src, dst] = [ptr(b, filter) >> 2, wt >> 2];
    for (let t = 0; t < fh * fw; t++) {
      const o0 = t * ci * co;
      for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) f32[dst + o0 + o * ci + i] = f32[src + o0 + i * co + o]!;
    }
    const pdy = ptr(b, dy);
    if (contiguous) {
      k.gemm_nn(pdy, co * 4, wt, ci * 4, pdx, ci * 4, rows, ci, co, 0);
      return;
    }
    k.conv_taps(pdx, pdy, wt, n, h, w, ci, ho, wo, co, fh, fw, sh, sw, top, left, 0);
  });
  return out;
}

/**
 * Forward conv (FusedConv2D without bias or activation: what tf.layers runs for the model's convs)
 * as matmuls over the filter taps, like convBackpropInput in the other direction: every multiply
 * reads a real input pixel, where XNNPACK multiplies the padding taps too (5 of 9 at 2x2 maps).
 * Needs float32, out channels % 8 == 0, in channels >= MIN_TAP_DEPTH (MIN_GEMM_DEPTH for 1x1), an
 * output map of at most MAX_DIRECT_FORWARD_PIXELS, no dilation; undefined (wasm's own kernel)
 * otherwise.
 */
function convForward(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo | undefined {
  const { x, filter, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
  const activation = attrs.activation as string | undefined;
  const dilations = attrs.dilations as number | [number, number] | undefined;
  if (!x || !filter || bias || preluActivationWeights || (activation !== undefined && activation !== 'linear')) return undefined;
  if (dilations !== undefined && !(dilations === 1 || (Array.isArray(dilations) && dilations[0] === 1 && dilations[1] === 1))) return undefined;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  const info = convInfoFor(tf, x.shape, filter.shape, attrs, 'FusedConv2D');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co, outHeight: ho, outWidth: wo } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  // Short per-tap sums (few input channels) are XNNPACK's (all taps summed in registers) to win,
  // and so are large maps, where few taps fall on padding; inference of the big models (weights
  // packed once and cached by XNNPACK) keeps XNNPACK there.
  const contiguous = isPointwise(info);
  if (co % 8 !== 0 || ci < (contiguous ? MIN_GEMM_DEPTH : MIN_TAP_DEPTH) || ho * wo > MAX_DIRECT_FORWARD_PIXELS) return undefined;
  const b = backend as WasmHeapBackend;
  const out = b.makeOutput([n, ho, wo, co], 'float32');
  const rows = n * ho * wo;
  if (rows === 0 || co === 0) return out;
  const pout = ptr(b, out);
  const k = simdKernels(b);
  if (contiguous && ci > 0) {
    k.gemm_nn(ptr(b, x), ci * 4, ptr(b, filter), co * 4, pout, co * 4, rows, co, ci, 0);
    return out;
  }
  heapF32(b).fill(0, pout >> 2, (pout >> 2) + rows * co);
  if (ci > 0) k.conv_taps(ptr(b, x), pout, ptr(b, filter), n, h, w, ci, ho, wo, co, fh, fw, sh, sw, top, left, 1);
  return out;
}
