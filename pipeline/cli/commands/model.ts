/**
 * `selftrain model info <name> [options]`: parameters and FLOPs (2 x multiply-adds, the paper's
 * convention) of a ResNet-RS family member, from the analytic walk of the same graph the builder
 * creates (no tensors allocated, instant even for RS-420). `--build` also builds the tf.layers model
 * and prints its own parameter count as a cross-check.
 *
 * `selftrain model export <model-uri> --format onnx [--out <file|uri>]`: the trained tfjs model at
 * <model-uri> (a directory holding model.json, e.g. a train stage's `model/`) as an ONNX file
 * (pipeline/model/onnx-export.ts), written to --out (a path or a file:// / s3:// URI of the file),
 * by default `model.onnx` beside model.json.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { countResNetRS } from '../../model/count.js';
import { reportCommandError } from './fail.js';
import { FASHION_MNIST_MODEL, resolveModel, SUPPORTED_DEPTHS, type ModelChoice } from '../../model/family.js';

function intOption(flag: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} expects an integer >= ${min}, got "${v}"`);
    return n;
  };
}

function rateOption(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`${flag} expects a number in [0, 1), got "${v}"`);
    return n;
  };
}

interface InfoOptions {
  imageSize?: number;
  classes?: number;
  channels?: number;
  width?: number;
  depth?: number;
  small?: boolean;
  dropout?: number;
  stochasticDepth?: number;
  json?: boolean;
  build?: boolean;
  backend?: string;
}

const fmtInt = (n: number) => n.toLocaleString('en-US');
const fmtFlops = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(3)} G` : `${(n / 1e6).toFixed(2)} M`);

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('ResNet-RS model family');
  model
    .command('info')
    .description(`Print parameters and FLOPs of a model (resnet-rs-50 … resnet-rs-420, depths ${SUPPORTED_DEPTHS.join('/')}, e.g. ${FASHION_MNIST_MODEL})`)
    .argument('<name>', 'model name: resnet-rs-<depth>[-w<width>][-small]')
    .option('--image-size <S>', 'input side in pixels (default: the model\'s training resolution)', intOption('--image-size', 8))
    .option('--classes <K>', 'output classes (default 1000; 10 for -small)', intOption('--classes', 2))
    .option('--channels <C>', 'input channels (default 3; 1 for -small)', intOption('--channels', 1))
    .option('--width <M>', 'width multiplier', (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError(`--width expects a number > 0, got "${v}"`);
      return n;
    })
    .option('--depth <D>', `override the depth (${SUPPORTED_DEPTHS.join(', ')})`, intOption('--depth', 1))
    .option('--small', 'small-input stem (no stride in the first stem conv)')
    .option('--dropout <p>', 'dropout rate before the classifier', rateOption('--dropout'))
    .option('--stochastic-depth <p>', 'stochastic-depth base rate', rateOption('--stochastic-depth'))
    .option('--json', 'print JSON')
    .option('--build', 'also build the tf.layers model and print its parameter count (cross-check)')
    .option('--backend <name>', 'compute backend for --build (auto, wasm, cpu, …)', 'auto')
    .action(async (name: string, o: InfoOptions) => {
      const choice: ModelChoice = {
        name,
        imageSize: o.imageSize,
        classes: o.classes,
        inputChannels: o.channels,
        widthMultiplier: o.width,
        depth: o.depth,
        smallInput: o.small,
        dropoutRate: o.dropout,
        stochasticDepthRate: o.stochasticDepth,
      };
      let resolved;
      try {
        resolved = resolveModel(choice);
      } catch (err) {
        program.error(`error: ${(err as Error).message}`, { exitCode: 2 });
      }
      const { arch, defaults } = resolved;
      const counts = countResNetRS(arch);
      let built: { params: number; total: number; backend: string } | undefined;
      if (o.build) {
        // Loaded only on demand: counting needs no tf.
        const { initBackend } = await import('../../backend/select.js');
        const { buildResNetRS } = await import('../../model/resnet-rs.js');
        const sel = await initBackend(o.backend as never);
        const m = buildResNetRS(arch);
        const trainable = m.trainableWeights.reduce((n, w) => n + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
        built = { params: trainable, total: m.countParams(), backend: sel.name };
        m.dispose();
      }
      if (o.json) {
        console.log(JSON.stringify({ name, arch, defaults, ...counts, ...(built ? { built } : {}) }, null, 2));
        return;
      }
      const lines = [
        `model              ${name}${o.depth ? ` (depth ${o.depth})` : ''}`,
        `blocks per stage   [${arch.blocks.join(', ')}]  width x${arch.widthMultiplier}${arch.smallInput ? '  small-input stem' : ''}`,
        `input              ${arch.imageSize}x${arch.imageSize}x${arch.inputChannels}, ${arch.classes} classes`,
        `stage outputs      ${counts.featureSizes.map((n) => `${n}x${n}`).join(', ')}`,
        `parameters         ${fmtInt(counts.params)} trainable (+${fmtInt(counts.nonTrainableParams)} BN moving statistics)`,
        `FLOPs              ${fmtFlops(counts.flops)} (2 x ${fmtFlops(counts.macs)} multiply-adds)`,
        `defaults           dropout ${arch.dropoutRate}, stochastic depth ${arch.stochasticDepthRate}, RandAugment ${defaults.randAugmentLayers} ops @ ${defaults.randAugmentMagnitude}`,
      ];
      if (built) {
        const ok = built.params === counts.params ? 'matches' : 'MISMATCH';
        lines.push(`built model        ${fmtInt(built.params)} trainable, ${fmtInt(built.total)} total on ${built.backend} — ${ok}`);
      }
      console.log(lines.join('\n'));
    });

  model
    .command('export')
    .description('Export a trained model (a directory with model.json + weights) as ONNX (opset 13, NHWC float input, logits output, dynamic batch)')
    .argument('<model-uri>', 'the model directory: a path, file://… or s3://bucket/prefix/model')
    .option('--format <format>', 'output format (onnx)', 'onnx')
    .option('--out <file|uri>', 'output file: a path, file://… or s3://bucket/key (default: model.onnx beside model.json)')
    .option('--backend <name>', 'compute backend used to read the weights (auto, wasm, cpu, …)', 'auto')
    .action(async (modelUri: string, o: { format: string; out?: string; backend: string }) => {
      if (o.format !== 'onnx') program.error(`error: --format ${o.format} is not supported (onnx)`, { exitCode: 2 });
      const { exportModelCommand } = await import('./model-export.js');
      try {
        const r = await exportModelCommand(modelUri, o.out, o.backend);
        console.log(`wrote ${r.out}: ${(r.bytes / 1e6).toFixed(1)} MB, sha256 ${r.sha256}, from ${r.source} (opset ${r.opset})`);
      } catch (err) {
        await reportCommandError(err);
      }
    });
}
