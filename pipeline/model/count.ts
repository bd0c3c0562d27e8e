/**
 * Analytic parameter and FLOP counts of a ResNet-RS architecture, from the same walk the builder
 * uses (architecture.ts). No tensors are allocated, so RS-420 counts instantly.
 *
 * Conventions: parameters = trainable (conv kernels, conv/FC biases, BN γ/β), as timm's param_count
 * (https://github.com/huggingface/pytorch-image-models/blob/aa4b5850/results/results-imagenet.csv lists RS-50 at
 * 35.69M; this counter gives 35,691,912); BN moving statistics are reported separately (the TF2
 * Model Garden's "35.7M" counts them, with a 1001-class head). FLOPs = 2 × multiply-adds of convs and the FC (the paper's
 * convention); BN, activations, pooling, SE scaling and the residual adds are not counted.
 */
import { walkResNetRS, type ArchOps, type ConvSpec } from './architecture.js';
import type { ResNetRSArch } from './family.js';

interface Shape {
  h: number;
  w: number;
  c: number;
}

export interface ModelCounts {
  /** Trainable parameters. */
  params: number;
  /** BN moving mean + variance (non-trainable). */
  nonTrainableParams: number;
  /** Multiply-adds of one forward pass of one image. */
  macs: number;
  /** 2 × macs. */
  flops: number;
  /** Spatial output size of each of the four stages. */
  featureSizes: number[];
}

/** Output size of a stride-s conv/pool: SAME and TF fixed padding both give ceil(in / s). */
const down = (n: number, stride: number) => Math.ceil(n / stride);

export function countResNetRS(arch: ResNetRSArch): ModelCounts {
  let params = 0;
  let nonTrainable = 0;
  let macs = 0;
  const featureSizes: number[] = [0, 0, 0, 0];

  const ops: ArchOps<Shape> = {
    input: () => ({ h: arch.imageSize, w: arch.imageSize, c: arch.inputChannels }),
    conv: (x, s: ConvSpec) => {
      const h = down(x.h, s.stride);
      const w = down(x.w, s.stride);
      const kernel = s.kernel * s.kernel * x.c * s.filters;
      params += kernel + (s.useBias ? s.filters : 0);
      macs += kernel * h * w;
      // A stage's output size is that of its blocks' last conv (every block's conv3 shares it).
      const stage = /^s(\d)b\d+_conv3$/.exec(s.name)?.[1];
      if (stage) featureSizes[Number(stage) - 1] = h;
      return { h, w, c: s.filters };
    },
    bn: (x) => {
      params += 2 * x.c;
      nonTrainable += 2 * x.c;
      return x;
    },
    relu: (x) => x,
    avgPool2: (x) => ({ h: down(x.h, 2), w: down(x.w, 2), c: x.c }),
    se: (x, _name, r) => {
      params += x.c * r + r + r * x.c + x.c;
      macs += 2 * x.c * r;
      return x;
    },
    dropPath: (x) => x,
    add: (a) => a,
    head: (x, _dropout, classes) => {
      params += x.c * classes + classes;
      macs += x.c * classes;
      return { h: 1, w: 1, c: classes };
    },
  };
  walkResNetRS(arch, ops);
  return { params, nonTrainableParams: nonTrainable, macs, flops: 2 * macs, featureSizes };
}
