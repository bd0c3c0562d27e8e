/**
 * ONNX export of a ResNet-RS, emitted from the same architecture walk (architecture.ts) that the
 * tf.layers builder and the counter implement, so the exported graph is by construction the
 * network that was trained. The protobuf is written with @bufbuild/protobuf from the official
 * onnx.proto schema as compiled in the `onnx-buf` package; nothing is encoded by hand.
 *
 * The graph (opset 13, IR version 7 — the IR released with opset 13, read by every ONNX Runtime
 * since 1.6 and by the onnx 1.12 checker):
 * - input `image`: NHWC float32 [batch, S, S, C], already normalised (what the data pipeline and
 *   the tfjs model take), batch dynamic; one Transpose to NCHW, the layout ONNX convolutions use;
 * - convs with explicit pads: total k−1 split floor/ceil, which is both TF's "fixed padding" of the
 *   stride-2 convs and 'same' for the stride-1 ones; kernels [kh,kw,in,out] → [out,in,kh,kw];
 * - BatchNormalization nodes with the moving statistics (inference form, ε from the arch): ONNX
 *   Runtime folds them into the convs when it optimises the graph, so there is no reason to fold
 *   them here and lose the one-to-one mapping to the tfjs layers;
 * - the ResNet-D shortcut pool: AveragePool 2x2/2 with TF 'same' padding (only after odd sizes:
 *   one row/column at the end), padding excluded from the average (count_include_pad = 0);
 * - SE: GlobalAveragePool → Conv 1x1 (bias) → Relu → Conv 1x1 (bias) → Sigmoid → Mul;
 * - stochastic depth and dropout are identity at inference and emit nothing;
 * - head: GlobalAveragePool → Flatten → Gemm (dense kernel [C, K], bias) → output `logits` [batch, K].
 */
import { endianness } from 'node:os';
import { create, toBinary, fromBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { walkResNetRS, type ArchOps, type ConvSpec } from './architecture.js';
import type { ResNetRSArch } from './family.js';

export const ONNX_OPSET = 13;
export const ONNX_IR_VERSION = 7;
export const ONNX_INPUT = 'image';
export const ONNX_OUTPUT = 'logits';
/** Name of the batch dimension (the only dynamic one). */
export const ONNX_BATCH_DIM = 'batch';

/** One trained weight, in the layout tfjs stores it. */
export interface Weight {
  shape: number[];
  data: Float32Array;
}

/** `weight('stem_conv1', 'kernel')` → the tfjs variable `stem_conv1/kernel`; throws when missing. */
export type WeightLookup = (layer: string, weight: string) => Weight;

export interface OnnxExportOptions {
  /** String metadata stored in the model (ModelProto.metadata_props), e.g. the source model's id. */
  metadata?: Record<string, string>;
  /** Graph and model documentation. */
  docString?: string;
  producerVersion?: string;
}

/** Symbolic tensor of the emitter: its name and NCHW shape (batch left out). */
interface Sym {
  name: string;
  c: number;
  h: number;
  w: number;
}

const attrInt = (name: string, v: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
const attrFloat = (name: string, v: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v });
const attrInts = (name: string, v: number[]): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) });

const LITTLE_ENDIAN = endianness() === 'LE';

function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`onnx export: ${name} has ${data.length} values, shape [${dims.join(', ')}] needs ${count}`);
  // raw_data is little-endian; a copy, so the proto owns exactly these bytes.
  let bytes: Uint8Array<ArrayBuffer>;
  if (LITTLE_ENDIAN) {
    bytes = new Uint8Array(data.byteLength);
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else {
    bytes = new Uint8Array(data.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  }
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: TensorProto_DataType.FLOAT, rawData: bytes });
}

function valueInfo(name: string, dims: (number | string)[]): ValueInfoProto {
  const dim = dims.map((d) =>
    create(TensorShapeProto_DimensionSchema, { value: typeof d === 'string' ? { case: 'dimParam', value: d } : { case: 'dimValue', value: BigInt(d) } }),
  );
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: TensorProto_DataType.FLOAT, shape: create(TensorShapeProtoSchema, { dim }) }) },
    }),
  });
}

/** tfjs conv kernel [kh, kw, in, out] → ONNX [out, in, kh, kw]. */
function convKernel(w: Weight, where: string): { dims: number[]; data: Float32Array } {
  if (w.shape.length !== 4) throw new Error(`onnx export: ${where} kernel has shape [${w.shape.join(', ')}], expected 4 dimensions`);
  const [kh, kw, cin, cout] = w.shape as [number, number, number, number];
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = w.data[((y * kw + x) * cin + i) * cout + o]!;
  return { dims: [cout, cin, kh, kw], data: out };
}

/** Pads of a conv with kernel k: k−1 in total, floor before, ceil after (TF fixed/'same' padding). */
function convPads(k: number): [number, number] {
  const total = k - 1;
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/**
 * Builds the ONNX model of `arch` with the given weights. Throws, naming the variable, when a
 * weight is missing or has the wrong shape (e.g. weights of another architecture).
 */
export function exportResNetRSToOnnx(arch: ResNetRSArch, weight: WeightLookup, opts: OnnxExportOptions = {}): Uint8Array {
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const node = (opType: string, name: string, inputs: string[], attribute: AttributeProto[] = []): string => {
    nodes.push(create(NodeProtoSchema, { opType, name, input: inputs, output: [name], attribute }));
    return name;
  };
  const init = (name: string, dims: number[], data: Float32Array): string => {
    initializers.push(floatTensor(name, dims, data));
    return name;
  };
  const expectShape = (w: Weight, shape: number[], where: string): Weight => {
    if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`onnx export: ${where} has shape [${w.shape.join(', ')}], the architecture needs [${shape.join(', ')}] (weights of another model?)`);
    }
    return w;
  };
  const convNode = (x: Sym, name: string, filters: number, k: number, stride: number, bias: boolean): Sym => {
    const kernel = convKernel(expectShape(weight(name, 'kernel'), [k, k, x.c, filters], `${name}/kernel`), name);
    const inputs = [x.name, init(`${name}/kernel`, kernel.dims, kernel.data)];
    if (bias) inputs.push(init(`${name}/bias`, [filters], expectShape(weight(name, 'bias'), [filters], `${name}/bias`).data));
    const [before, after] = convPads(k);
    node('Conv', name, inputs, [attrInts('kernel_shape', [k, k]), attrInts('strides', [stride, stride]), attrInts('pads', [before, before, after, after]), attrInts('dilations', [1, 1]), attrInt('group', 1)]);
    const down = (n: number) => Math.floor((n + k - 1 - k) / stride) + 1;
    return { name, c: filters, h: down(x.h), w: down(x.w) };
  };

  const ops: ArchOps<Sym> = {
    input: (name) => {
      // The graph input keeps the tfjs name and layout; the first node makes it NCHW.
      const S = arch.imageSize;
      node('Transpose', `${name}_nchw`, [ONNX_INPUT], [attrInts('perm', [0, 3, 1, 2])]);
      return { name: `${name}_nchw`, c: arch.inputChannels, h: S, w: S };
    },
    conv: (x, s: ConvSpec) => convNode(x, s.name, s.filters, s.kernel, s.stride, s.useBias ?? false),
    bn: (x, name) => {
      const p = (w: string) => init(`${name}/${w}`, [x.c], expectShape(weight(name, w), [x.c], `${name}/${w}`).data);
      node('BatchNormalization', name, [x.name, p('gamma'), p('beta'), p('moving_mean'), p('moving_variance')], [attrFloat('epsilon', arch.bnEpsilon)]);
      return { ...x, name };
    },
    relu: (x, name) => ({ ...x, name: node('Relu', name, [x.name]) }),
    avgPool2: (x, name) => {
      // TF 'same' with a 2x2/2 window: output ceil(n/2); an odd side gets one padded row/column
      // at the end, excluded from the average.
      const padH = x.h % 2, padW = x.w % 2;
      node('AveragePool', name, [x.name], [attrInts('kernel_shape', [2, 2]), attrInts('strides', [2, 2]), attrInts('pads', [0, 0, padH, padW]), attrInt('count_include_pad', 0)]);
      return { name, c: x.c, h: Math.ceil(x.h / 2), w: Math.ceil(x.w / 2) };
    },
    se: (x, name, reduced) => {
      const squeezed: Sym = { name: node('GlobalAveragePool', `${name}_squeeze`, [x.name]), c: x.c, h: 1, w: 1 };
      const r = convNode(squeezed, `${name}_reduce`, reduced, 1, 1, true);
      const rAct: Sym = { ...r, name: node('Relu', `${name}_reduce_relu`, [r.name]) };
      const e = convNode(rAct, `${name}_expand`, x.c, 1, 1, true);
      const gate = node('Sigmoid', `${name}_expand_sigmoid`, [e.name]);
      return { ...x, name: node('Mul', `${name}_scale`, [x.name, gate]) };
    },
    dropPath: (x) => x,
    add: (a, b, name) => ({ ...a, name: node('Add', name, [a.name, b.name]) }),
    head: (x, _dropoutRate, classes) => {
      const pooled = node('GlobalAveragePool', 'head_pool', [x.name]);
      const flat = node('Flatten', 'head_flatten', [pooled], [attrInt('axis', 1)]);
      const kernel = expectShape(weight('logits', 'kernel'), [x.c, classes], 'logits/kernel');
      const bias = expectShape(weight('logits', 'bias'), [classes], 'logits/bias');
      node('Gemm', ONNX_OUTPUT, [flat, init('logits/kernel', [x.c, classes], kernel.data), init('logits/bias', [classes], bias.data)]);
      return { name: ONNX_OUTPUT, c: classes, h: 1, w: 1 };
    },
  };
  const out = walkResNetRS(arch, ops);
  if (out.name !== ONNX_OUTPUT) throw new Error(`onnx export: the walk ended in ${out.name}, not the classifier`);

  const graph = create(GraphProtoSchema, {
    name: 'resnet_rs',
    node: nodes,
    initializer: initializers,
    input: [valueInfo(ONNX_INPUT, [ONNX_BATCH_DIM, arch.imageSize, arch.imageSize, arch.inputChannels])],
    output: [valueInfo(ONNX_OUTPUT, [ONNX_BATCH_DIM, arch.classes])],
    docString: opts.docString ?? '',
  });
  const model = create(ModelProtoSchema, {
    irVersion: BigInt(ONNX_IR_VERSION),
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(ONNX_OPSET) })],
    producerName: 'selftrain',
    producerVersion: opts.producerVersion ?? '',
    docString: opts.docString ?? '',
    graph,
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
  });
  return toBinary(ModelProtoSchema, model);
}

/** The metadata_props of an ONNX file (without copying its weights). */
export function onnxMetadata(bytes: Uint8Array): Record<string, string> {
  const model = fromBinary(ModelProtoSchema, bytes);
  return Object.fromEntries(model.metadataProps.map((e) => [e.key, e.value]));
}
