/**
 * Gradient kernels for the wasm backend. The conv ones are built from kernels wasm already has
 * (XNNPACK Conv2D, Transpose, PadV2, Reverse, Slice, BatchMatMul).
 *
 * Why: @tensorflow/tfjs-backend-wasm 4.22 registers no `Conv2DBackpropFilter`, so any conv
 * training fails on wasm, and its `Conv2DBackpropInput` is a naive C++ loop, 2-12x slower than
 * XNNPACK's convolution (bench/step-profile-conv-grads.ts). Both gradients are convolutions:
 *
 * - filter gradient of a stride-s conv: dW[a,b,ci,co] = Σ_{n,i,j} xpad[n, i·s+a, j·s+b, ci] · dy[n,i,j,co].
 *   With x transposed to [Ci, H, W, N] (the batch becomes the channel, i.e. the reduction axis) and
 *   dy transposed to [Ho, Wo, N, Co] and used as the filter with dilation s, a stride-1 convolution
 *   gives [Ci, fh, fw, Co]; transposing back gives [fh, fw, Ci, Co]. 1x1 unpadded convs take a
 *   matmul (xᵀ·dy over the N·H·W rows) instead: one transpose, no im2col. (An im2col + one-matmul
 *   variant built from StridedSlice/Concat measured slower at every ResNet shape tried.)
 * - input gradient: dx = (dy zero-dilated by s, padded by fh-1-top / fw-1-left) ⊛ (filter flipped
 *   spatially, in/out channels swapped), stride 1. For stride s > 1 three quarters (s=2) of that
 *   convolution multiplies zeros, so square strides use the polyphase form instead: one stride-1
 *   convolution of dy itself computes all s² interleaved output phases as channel groups, and
 *   a depth-to-space interleaves them (see conv2DBackpropInputPolyphase).
 *
 * Also here: `MaxPoolGrad` (wasm's is wrong for all-negative windows) and the depthwise conv
 * gradients (absent from wasm; plain JS loops, as ResNet-RS does not use depthwise convs).
 * Conv2D gradients with dilation > 1 are not reachable: tfjs's Conv2D gradient refuses them.
 *
 * Not used on purpose: wasm's `Conv3DBackpropFilterV2` as a 2-D stand-in (measured wrong for
 * stride > 1). Kernels are composed at the kernel level (TensorInfo in, TensorInfo out, every
 * intermediate released with `backend.disposeData`), as tfjs's own composite kernels do, so they
 * are invisible to autodiff and leak nothing.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

type Tf = typeof TfNamespace;
type Conv2DInfo = ReturnType<Tf['backend_util']['computeConv2DInfo']>;
/** The subset of BackendWasm used here (the class is not part of tfjs's public types). */
interface WasmBackend {
  disposeData(dataId: object, force?: boolean): boolean;
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}
type ConvPad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

/** Kernels this module registers for 'wasm' (tests check each one against the cpu backend). */
export const wasmTrainingKernelNames = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'MaxPoolGrad',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
] as const;

let registered = false;
const nativeKernels = new Map<string, ReturnType<Tf['getKernel']> & object>();

/**
 * For benchmarks only (bench/step-profile.ts measures before/after): puts wasm's own kernel back
 * in place of the project's replacement. Call after the wasm backend is initialised.
 */
export function useNativeWasmKernel(tf: Tf, name: 'Conv2DBackpropInput' | 'MaxPoolGrad'): void {
  const native = nativeKernels.get(name);
  if (!native) throw new Error(`no native wasm '${name}' kernel was replaced`);
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel(native);
  // Its setup (binding the C++ function) was skipped at backend start, when it was unregistered.
  native.setupFunc?.(tf.findBackend('wasm') as never);
}

/**
 * Registers the kernels for the 'wasm' backend. Safe to call more than once; call it before the
 * wasm backend is first used (it replaces wasm's own `Conv2DBackpropInput` and `MaxPoolGrad`;
 * kernels registered after the backend started would miss their setup).
 */
export function registerWasmTrainingKernels(tf: Tf): void {
  if (registered) return;
  registered = true;
  // Replacing a registered kernel needs an unregister first (registerKernel refuses duplicates).
  for (const name of ['Conv2DBackpropInput', 'MaxPoolGrad']) {
    const native = tf.getKernel(name, 'wasm');
    if (native) {
      nativeKernels.set(name, native);
      tf.unregisterKernel(name, 'wasm');
    }
  }
  const k = kernelCaller(tf);

  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ((args) => conv2DBackpropFilter(tf, k, args)) as KernelFunc,
  });
  tf.registerKernel({
    kernelName: 'Conv2DBackpropInput',
    backendName: 'wasm',
    kernelFunc: ((args) => conv2DBackpropInput(tf, k, args)) as KernelFunc,
  });
  tf.registerKernel({
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ((args) => depthwiseBackprop(tf, args, 'filter')) as KernelFunc,
  });
  tf.registerKernel({
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'wasm',
    kernelFunc: ((args) => depthwiseBackprop(tf, args, 'input')) as KernelFunc,
  });
  tf.registerKernel({
    kernelName: 'MaxPoolGrad',
    backendName: 'wasm',
    kernelFunc: ((args) => maxPoolGrad(tf, args)) as KernelFunc,
  });
}

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  attrs?: NamedAttrMap;
  backend: unknown;
}

/** Calls another wasm kernel directly (not through the engine) and frees what we no longer need. */
interface Caller {
  run(name: string, backend: unknown, inputs: NamedTensorInfoMap, attrs?: object): TensorInfo;
  free(backend: unknown, ...infos: TensorInfo[]): void;
}

function kernelCaller(tf: Tf): Caller {
  const cache = new Map<string, KernelFunc>();
  return {
    run(name, backend, inputs, attrs = {}) {
      let fn = cache.get(name);
      if (!fn) {
        const kernel = tf.getKernel(name, 'wasm');
        if (!kernel) throw new Error(`wasm backend has no '${name}' kernel (needed by the project's conv gradient kernels)`);
        fn = kernel.kernelFunc;
        cache.set(name, fn);
      }
      return fn({ inputs, attrs: attrs as NamedAttrMap, backend: backend as never }) as TensorInfo;
    },
    free(backend, ...infos) {
      for (const info of infos) (backend as WasmBackend).disposeData(info.dataId);
    },
  };
}

export function convInfoFor(tf: Tf, xShape: number[], filterShape: number[], attrs: NamedAttrMap, kernel: string): Conv2DInfo {
  const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
    strides: number | [number, number];
    pad: ConvPad;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const format = tf.backend_util.convertConv2DDataFormat(dataFormat ?? 'NHWC');
  if (format !== 'channelsLast') {
    throw new Error(`wasm ${kernel}: dataFormat '${dataFormat}' is not supported; use NHWC (channelsLast)`);
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad as never,
    dimRoundingMode,
    false,
    format,
  );
}

function conv2DBackpropFilter(tf: Tf, k: Caller, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const filterShape = attrs.filterShape as number[];
  const info = convInfoFor(tf, x.shape, filterShape, attrs, 'Conv2DBackpropFilter');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const { top, left } = info.padInfo;

  // Input rows/cols actually touched: fh + (ho-1)*sh in padded coordinates. Pad the far side up to
  // that, or crop the input when it is longer (valid padding with a remainder).
  const padBottom = fh + (ho - 1) * sh - (top + h);
  const padRight = fw + (wo - 1) * sw - (left + w);

  if (fh === 1 && fw === 1 && top === 0 && left === 0) {
    // 1x1, unpadded: dW = xᵀ · dy over all N·Ho·Wo positions (after taking every s-th pixel).
    let xs = x;
    if (sh > 1 || sw > 1 || padBottom < 0 || padRight < 0) {
      xs = k.run('StridedSlice', backend, { x }, {
        begin: [0, 0, 0, 0], end: [n, (ho - 1) * sh + 1, (wo - 1) * sw + 1, ci], strides: [1, sh, sw, 1],
        beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
      });
    }
    // wasm's BatchMatMul with transposeA is ~10x slower than an explicit transpose + plain matmul.
    const rows = k.run('Reshape', backend, { x: xs }, { shape: [1, n * ho * wo, ci] });
    const a = k.run('Transpose', backend, { x: rows }, { perm: [0, 2, 1] }); // [1, Ci, NHW]
    // wasm's matmul keeps a packed copy of its right operand, keyed by that buffer, until the
    // buffer is freed: given dy itself it would hold a second dy until the end of backprop. A
    // private copy (a memcpy) is freed, with the packed one, right here.
    const b = copyOf(backend as WasmBackend, dy, [1, n * ho * wo, co]);
    const prod = k.run('BatchMatMul', backend, { a, b }, { transposeA: false, transposeB: false });
    const out = k.run('Reshape', backend, { x: prod }, { shape: [1, 1, ci, co] });
    k.free(backend, rows, a, b, prod);
    if (xs !== x) k.free(backend, xs);
    return out;
  }

  let xc = x;
  if (padBottom < 0 || padRight < 0) {
    xc = k.run('Slice', backend, { x }, { begin: [0, 0, 0, 0], size: [n, h + Math.min(0, padBottom), w + Math.min(0, padRight), ci] });
  }
  const xT = k.run('Transpose', backend, { x: xc }, { perm: [3, 1, 2, 0] }); // [Ci, H, W, N]
  if (xc !== x) k.free(backend, xc);
  const dyT = k.run('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] }); // [Ho, Wo, N, Co]
  const conv = k.run('Conv2D', backend, { x: xT, filter: dyT }, {
    strides: [1, 1],
    pad: [[0, 0], [top, Math.max(0, padBottom)], [left, Math.max(0, padRight)], [0, 0]],
    dilations: [sh, sw],
    dataFormat: 'NHWC',
  }); // [Ci, fh, fw, Co]
  k.free(backend, xT, dyT);
  const out = k.run('Transpose', backend, { x: conv }, { perm: [1, 2, 0, 3] }); // [fh, fw, Ci, Co]
  k.free(backend, conv);
  return out;
}

/**
 * Input gradient of a stride-s conv (s > 1, same stride on both axes) without zero-dilation.
 * With q = y + top (row in padded coordinates) = s·k + r: dx[q] = Σ_u dy[k-u]·W[r + s·u], so each
 * phase r is a stride-1 correlation of dy with the taps a ≡ r (mod s). All phases share dy, so
 * one convolution does them all: filter G[v, v', co, (r·s + r')·Ci + ci] = W[r + s·(U-1-v),
 * r' + s·(U'-1-v'), ci, co] (zero where the tap is past the filter), U = ceil(fh/s), dy padded by
 * U-1 before. A depth-to-space then puts phase (r, r') at rows s·k + r, cols s·k' + r'; slicing
 * [top, top+H) × [left, left+W) gives dx. About 2x fewer multiplies than the zero-dilated form
 * for 3x3/2 and a 4x smaller convolution input.
 */
function conv2DBackpropInputPolyphase(k: Caller, backend: WasmBackend, dy: TensorInfo, filter: TensorInfo, info: Conv2DInfo): TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co, outHeight: ho, outWidth: wo } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: s } = info;
  const { top, left } = info.padInfo;
  const uh = Math.ceil(fh / s);
  const uw = Math.ceil(fw / s);
  const kh = Math.ceil((top + h) / s); // phase rows needed to cover q in [top, top+H)
  const kw = Math.ceil((left + w) / s);
  const groups = s * s;

  const wv = backend.readSync(filter.dataId);
  const g = backend.makeOutput([uh, uw, co, groups * ci], 'float32');
  const gv = backend.typedArrayFromHeap(g);
  gv.fill(0);
  for (let ry = 0; ry < s; ry++) {
    for (let rx = 0; rx < s; rx++) {
      const group = (ry * s + rx) * ci;
      for (let vy = 0; vy < uh; vy++) {
        const a = ry + s * (uh - 1 - vy);
        if (a >= fh) continue;
        for (let vx = 0; vx < uw; vx++) {
          const b = rx + s * (uw - 1 - vx);
          if (b >= fw) continue;
          for (let c = 0; c < ci; c++) {
            const src = ((a * fw + b) * ci + c) * co;
            const dst = (vy * uw + vx) * co * groups * ci + group + c;
            for (let o = 0; o < co; o++) gv[dst + o * groups * ci] = wv[src + o]!;
          }
        }
      }
    }
  }

  // dy rows beyond kh only reach q >= s·kh >= top + H: crop them rather than pad negatively.
  let dyc = dy;
  if (ho > kh || wo > kw) dyc = k.run('Slice', backend, { x: dy }, { begin: [0, 0, 0, 0], size: [n, Math.min(ho, kh), Math.min(wo, kw), co] });
  const phases = k.run('Conv2D', backend, { x: dyc, filter: g }, {
    strides: [1, 1],
    pad: [[0, 0], [uh - 1, Math.max(0, kh - ho)], [uw - 1, Math.max(0, kw - wo)], [0, 0]],
    dilations: [1, 1],
    dataFormat: 'NHWC',
  }); // [N, kh, kw, s²·Ci]
  k.free(backend, g);
  if (dyc !== dy) k.free(backend, dyc);
  // Interleave: [N, kh, kw, (ry, rx, ci)] → [N, kh, ry, kw, rx, ci] → [N, kh·s, kw·s, Ci]. (This is
  // DepthToSpace, but wasm's DepthToSpace kernel measured ~10x slower than the transpose.)
  const split = k.run('Reshape', backend, { x: phases }, { shape: [n, kh, kw, s, s, ci] });
  const moved = k.run('Transpose', backend, { x: split }, { perm: [0, 1, 3, 2, 4, 5] });
  const interleaved = k.run('Reshape', backend, { x: moved }, { shape: [n, kh * s, kw * s, ci] });
  k.free(backend, phases, split, moved);
  if (top === 0 && left === 0 && kh * s === h && kw * s === w) return interleaved;
  const out = k.run('Slice', backend, { x: interleaved }, { begin: [0, top, left, 0], size: [n, h, w, ci] });
  k.free(backend, interleaved);
  return out;
}

/** A new buffer holding `x`'s values, viewed with `shape`. */
function copyOf(backend: WasmBackend, x: TensorInfo, shape: number[]): TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  // Views taken after makeOutput: allocating may grow (and move) the wasm heap.
  backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(x));
  return out;
}

function conv2DBackpropInput(tf: Tf, k: Caller, args: KernelArgs): TensorInfo {
  const { inputs, attrs = {}, backend } = args;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = attrs.inputShape as number[];
  const info = convInfoFor(tf, inputShape, filter.shape, attrs, 'Conv2DBackpropInput');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const { top, left } = info.padInfo;
  if (sh > 1 && sh === sw) return conv2DBackpropInputPolyphase(k, backend as WasmBackend, dy, filter, info);

  // Zero-dilate dy by the stride: [N,Ho,1,Wo,1,C] padded to [N,Ho·s,Wo·s,C] is [N,Ho·s,Wo·s,C]
  // with s-1 zeros after every row/column, the last s-1 included.
  let dyd = dy;
  if (sh > 1 || sw > 1) {
    const r = k.run('Reshape', backend, { x: dy }, { shape: [n, ho, 1, wo, 1, co] });
    const p = k.run('PadV2', backend, { x: r }, {
      paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0,
    });
    k.free(backend, r);
    dyd = k.run('Reshape', backend, { x: p }, { shape: [n, ho * sh, wo * sw, co] });
    k.free(backend, p);
  }
  // dx[h] = Σ_a dyd[h + top - a]·W[a]: a correlation with the flipped filter over dyd padded by
  // fh-1-top before and h+top-ho·s after (output exactly H rows). A negative padding (explicit
  // paddings wider than the filter, or rows the forward conv never read) crops dyd instead.
  const pads = [fh - 1 - top, h + top - ho * sh, fw - 1 - left, w + left - wo * sw];
  const [cropT, cropB, cropL, cropR] = pads.map((p) => Math.max(0, -p)) as [number, number, number, number];
  if (cropT || cropB || cropL || cropR) {
    const rows = ho * sh - cropT - cropB;
    const cols = wo * sw - cropL - cropR;
    if (rows <= 0 || cols <= 0) throw new Error(`wasm Conv2DBackpropInput: padding ${JSON.stringify(attrs.pad)} leaves no output gradient for input [${inputShape}]`);
    const cropped = k.run('Slice', backend, { x: dyd }, { begin: [0, cropT, cropL, 0], size: [n, rows, cols, co] });
    if (dyd !== dy) k.free(backend, dyd);
    dyd = cropped;
  }
  const [padT, padB, padL, padR] = pads.map((p) => Math.max(0, p));

  const flipped = k.run('Reverse', backend, { x: filter }, { dims: [0, 1] });
  const wT = k.run('Transpose', backend, { x: flipped }, { perm: [0, 1, 3, 2] }); // [fh, fw, Co, Ci]
  k.free(backend, flipped);
  const out = k.run('Conv2D', backend, { x: dyd, filter: wT }, {
    strides: [1, 1],
    pad: [[0, 0], [padT, padB], [padL, padR], [0, 0]],
    dilations: [1, 1],
    dataFormat: 'NHWC',
  });
  k.free(backend, wT);
  if (dyd !== dy) k.free(backend, dyd);
  if (out.shape[1] !== h || out.shape[2] !== w || out.shape[3] !== ci) {
    k.free(backend, out);
    throw new Error(`wasm Conv2DBackpropInput: internal shape error, got [${out.shape}] for input [${inputShape}]`);
  }
  return out;
}

/** The pooling geometry of a pool-gradient kernel's attributes (dilation 1, as tfjs's pools). */
export function poolInfoOf(tf: Tf, inputShape: number[], attrs: NamedAttrMap): Conv2DInfo {
  const { filterSize, strides, pad, dimRoundingMode } = attrs as never as {
    filterSize: number | [number, number];
    strides: number | [number, number];
    pad: 'valid' | 'same' | number;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  return tf.backend_util.computePool2DInfo(inputShape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
}

/**
 * wasm's own MaxPoolGrad (and MaxPoolWithArgmax) start the running maximum at FLT_MIN, the
 * smallest *positive* float, so a window whose values are all <= 0 sends its gradient to the
 * window's first element instead of its maximum. This one follows the cpu backend: running max
 * from -Infinity, first maximum wins ties. Plain JS over the wasm heap: max pooling is cheap next
 * to the convolutions (ResNet-RS itself uses a strided conv instead of the stem max pool).
 */
function maxPoolGrad(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs): TensorInfo {
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const info = poolInfoOf(tf, input.shape, attrs);
  const wasm = backend as WasmBackend;
  // readSync copies out of the heap, so these stay valid when makeOutput grows the heap.
  const x = wasm.readSync(input.dataId);
  const g = wasm.readSync(dy.dataId);
  const out = wasm.makeOutput(input.shape, 'float32');
  const dx = wasm.typedArrayFromHeap(out);
  dx.fill(0);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: ho, outWidth: wo } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { effectiveFilterHeight: efh, effectiveFilterWidth: efw } = info;
  const { top, left } = info.padInfo;
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        best.fill(-Infinity);
        where.fill(-1);
        for (let fy = 0; fy < efh; fy += dh) {
          const iy = oy * sh - top + fy;
          if (iy < 0 || iy >= h) continue;
          for (let fx = 0; fx < efw; fx += dw) {
            const ix = ox * sw - left + fx;
            if (ix < 0 || ix >= w) continue;
            const base = ((b * h + iy) * w + ix) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = x[base + ch]!;
              if (v > best[ch]!) {
                best[ch] = v;
                where[ch] = base + ch;
              }
            }
          }
        }
        const gBase = ((b * ho + oy) * wo + ox) * c;
        for (let ch = 0; ch < c; ch++) if (where[ch]! >= 0) dx[where[ch]!]! += g[gBase + ch]!;
      }
    }
  }
  return out;
}

/**
 * Depthwise conv gradients, which wasm 4.22 lacks entirely. ResNet-RS has no depthwise convs, so
 * these favour simplicity over speed: the forward loop nest in JS over the wasm heap, scattering
 * into the input gradient or accumulating into the filter gradient.
 * Filter [fh, fw, C, M]; output channel c·M+q reads input channel c with filter slice [.., c, q].
 */
function depthwiseBackprop(tf: Tf, { inputs, attrs = {}, backend }: KernelArgs, which: 'filter' | 'input'): TensorInfo {
  const { strides, dilations, pad, dimRoundingMode } = attrs as never as {
    strides: number | [number, number];
    dilations: number | [number, number];
    pad: ConvPad;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const wasm = backend as WasmBackend;
  const dy = inputs.dy as TensorInfo;
  const xShape = which === 'filter' ? (inputs.x as TensorInfo).shape : (attrs.inputShape as number[]);
  const fShape = which === 'filter' ? (attrs.filterShape as number[]) : (inputs.filter as TensorInfo).shape;
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    fShape as [number, number, number, number],
    strides,
    dilations ?? 1,
    pad as never,
    dimRoundingMode,
    true,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: ho, outWidth: wo, outChannels: oc } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { top, left } = info.padInfo;
  const m = oc / c;
  const g = wasm.readSync(dy.dataId);
  const other = wasm.readSync((which === 'filter' ? inputs.x : inputs.filter)!.dataId); // x or filter
  const out = wasm.makeOutput(which === 'filter' ? fShape : xShape, 'float32');
  const res = wasm.typedArrayFromHeap(out);
  res.fill(0);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        const gBase = ((b * ho + oy) * wo + ox) * oc;
        for (let fy = 0; fy < fh; fy++) {
          const iy = oy * sh - top + fy * dh;
          if (iy < 0 || iy >= h) continue;
          for (let fx = 0; fx < fw; fx++) {
            const ix = ox * sw - left + fx * dw;
            if (ix < 0 || ix >= w) continue;
            const xBase = ((b * h + iy) * w + ix) * c;
            const fBase = (fy * fw + fx) * c * m;
            for (let ch = 0; ch < c; ch++) {
              for (let q = 0; q < m; q++) {
                const gv = g[gBase + ch * m + q]!;
                if (which === 'filter') res[fBase + ch * m + q]! += other[xBase + ch]! * gv;
                else res[xBase + ch]! += other[fBase + ch * m + q]! * gv;
              }
            }
          }
        }
      }
    }
  }
  return out;
}
