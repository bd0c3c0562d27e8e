/**
 * The ResNet-RS network written once, as a walk over abstract operations. The tf.layers builder
 * (resnet-rs.ts) and the analytic parameter/FLOP counter (count.ts) both implement `ArchOps`, so the
 * counts printed by `selftrain model info` come from exactly the graph that gets built.
 *
 * Layout: Bello et al. 2021, "Revisiting ResNets", arXiv 2103.07579 §4.1; where the paper text and
 * the released code differ, the code, i.e. resnet_model.py and resnet_layers.py in
 * https://github.com/tensorflow/tpu/tree/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet
 * with the configs in its resnet_rs/configs:
 * - ResNet-D stem: 3x3 convs 32/32/64 (first stride 2), then the released configs' extra 3x3 stride-2
 *   conv 64→64 + BN + ReLU in place of the max pool (`replace_stem_max_pool: True`; the paper text
 *   describes removing the pool instead — the weights and parameter counts follow the configs).
 * - Bottleneck blocks, post-activation, stride on the 3x3 conv; zero-initialised γ on the last BN;
 *   SE (ratio 0.25 of the block output) after that BN; drop-path on the residual branch; add; ReLU.
 * - ResNet-D shortcut on stride-2 blocks: 2x2 avg pool stride 2 → 1x1 conv → BN; stage 1's first
 *   block: 1x1 conv → BN. Other blocks: identity.
 * - Head: global average pool → dropout → FC with bias, producing logits.
 * - Activation ReLU, as the paper and the TF1 code (the TF2 Model Garden configs use swish, a
 *   deviation their MODEL_GARDEN.md states); BN ε 1e-5 (`EPSILON` in resnet_model.py).
 */
import { scaledWidth, stageDropRate, type ResNetRSArch } from './family.js';

export interface ConvSpec {
  name: string;
  filters: number;
  kernel: number;
  stride: number;
  /** Only SE convs carry a bias (resnet_model.py: stem, main-path and shortcut convs use_bias=False). */
  useBias?: boolean;
}

export interface ArchOps<T> {
  input(name: string): T;
  /** Stride-2 convs use TF "fixed padding" (pad k−1 split floor/ceil, then VALID); stride 1 SAME. */
  conv(x: T, spec: ConvSpec): T;
  bn(x: T, name: string, zeroGamma: boolean): T;
  relu(x: T, name: string): T;
  /** 2x2 average pool, stride 2, 'same' padding (padding excluded from the average). */
  avgPool2(x: T, name: string): T;
  /** Squeeze-and-excitation: mean → 1x1 conv (bias) → ReLU → 1x1 conv (bias) → sigmoid → scale. */
  se(x: T, name: string, reducedFilters: number): T;
  /** Drop-path on a residual branch (training only); omitted by the builder when rate is 0. */
  dropPath(x: T, name: string, rate: number): T;
  add(a: T, b: T, name: string): T;
  /** Global average pool → dropout → dense(classes) with bias. */
  head(x: T, dropoutRate: number, classes: number): T;
}

/** Base widths of the stem convs and of the four stages' bottlenecks (×4 at the block output). */
const STEM_WIDTHS = [32, 32, 64] as const;
const STAGE_WIDTHS = [64, 128, 256, 512] as const;
export const BOTTLENECK_EXPANSION = 4;

export function walkResNetRS<T>(arch: ResNetRSArch, ops: ArchOps<T>): T {
  const w = (base: number) => scaledWidth(base, arch.widthMultiplier);
  let x = ops.input('image');

  // Stem. The small-input option drops the first conv's stride (28x28/32x32 images).
  const stemStride = arch.smallInput ? 1 : 2;
  x = ops.conv(x, { name: 'stem_conv1', filters: w(STEM_WIDTHS[0]), kernel: 3, stride: stemStride });
  x = ops.relu(ops.bn(x, 'stem_bn1', false), 'stem_relu1');
  x = ops.conv(x, { name: 'stem_conv2', filters: w(STEM_WIDTHS[1]), kernel: 3, stride: 1 });
  x = ops.relu(ops.bn(x, 'stem_bn2', false), 'stem_relu2');
  x = ops.conv(x, { name: 'stem_conv3', filters: w(STEM_WIDTHS[2]), kernel: 3, stride: 1 });
  x = ops.relu(ops.bn(x, 'stem_bn3', false), 'stem_relu3');
  // Max-pool replacement (released configs): 3x3 stride-2 conv + BN + ReLU.
  x = ops.conv(x, { name: 'stem_pool_conv', filters: w(STEM_WIDTHS[2]), kernel: 3, stride: 2 });
  x = ops.relu(ops.bn(x, 'stem_pool_bn', false), 'stem_pool_relu');

  for (let s = 0; s < 4; s++) {
    const width = w(STAGE_WIDTHS[s]!);
    const dropRate = stageDropRate(arch.stochasticDepthRate, s + 1);
    for (let b = 0; b < arch.blocks[s]!; b++) {
      const first = b === 0;
      const stride = first && s > 0 ? 2 : 1;
      x = bottleneck(ops, x, `s${s + 1}b${b + 1}`, width, stride, first, dropRate, arch.seRatio);
    }
  }
  return ops.head(x, arch.dropoutRate, arch.classes);
}

function bottleneck<T>(
  ops: ArchOps<T>,
  input: T,
  name: string,
  width: number,
  stride: number,
  projectShortcut: boolean,
  dropRate: number,
  seRatio: number,
): T {
  const outFilters = width * BOTTLENECK_EXPANSION;
  let shortcut = input;
  if (projectShortcut) {
    // ResNet-D: downsample with an average pool so the 1x1 conv sees every input pixel.
    if (stride === 2) shortcut = ops.avgPool2(shortcut, `${name}_short_pool`);
    shortcut = ops.conv(shortcut, { name: `${name}_short_conv`, filters: outFilters, kernel: 1, stride: 1 });
    shortcut = ops.bn(shortcut, `${name}_short_bn`, false);
  }
  let x = ops.conv(input, { name: `${name}_conv1`, filters: width, kernel: 1, stride: 1 });
  x = ops.relu(ops.bn(x, `${name}_bn1`, false), `${name}_relu1`);
  x = ops.conv(x, { name: `${name}_conv2`, filters: width, kernel: 3, stride });
  x = ops.relu(ops.bn(x, `${name}_bn2`, false), `${name}_relu2`);
  x = ops.conv(x, { name: `${name}_conv3`, filters: outFilters, kernel: 1, stride: 1 });
  // Zero γ: every residual branch starts as the identity (resnet_model.py bottleneck_block, init_zero=True).
  x = ops.bn(x, `${name}_bn3`, true);
  // SE reduced width = int(ratio × block output channels) (resnet_layers.py squeeze_excitation, in_filters=4w).
  x = ops.se(x, `${name}_se`, Math.max(1, Math.floor(seRatio * outFilters)));
  x = ops.dropPath(x, `${name}_drop_path`, dropRate);
  return ops.relu(ops.add(x, shortcut, `${name}_add`), `${name}_out`);
}
