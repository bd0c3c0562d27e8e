/**
 * `selftrain model list`: every registered model with its config, parameters and FLOPs.
 * `selftrain model info <name> [options]`: one model's full config (layout, stem, SE, BN, input,
 * regularisation, RandAugment, preprocessing, source) and its parameters and FLOPs (2 x
 * multiply-adds, the paper's convention) from the analytic walk of the same graph the builder
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
import { ModelChoiceError, resolveEntry, resolveModel, type ModelChoice, type ModelChoiceIssue, type ResolvedModel } from '../../model/family.js';
import { FASHION_MNIST_MODEL, MODEL_REGISTRY } from '../../model/registry.js';
import { reportCommandError } from './fail.js';

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

/** The CLI flag each model field is set with (errors name what the user typed). */
const FLAG_OF: Partial<Record<ModelChoiceIssue['field'], string>> = {
  name: '<name>',
  depth: '--depth',
  widthMultiplier: '--width',
  smallInput: '--small',
};

const fmtInt = (n: number) => n.toLocaleString('en-US');
const fmtFlops = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(3)} G` : `${(n / 1e6).toFixed(2)} M`);

function infoLines(name: string, r: ResolvedModel): string[] {
  const { entry, arch, defaults, preprocessing: pre } = r;
  const counts = countResNetRS(arch);
  const stem = `ResNet-D 3x3 convs ${[32, 32, 64].map((c) => Math.max(1, Math.round(c * arch.widthMultiplier))).join('/')}, first stride ${arch.smallInput ? '1 (small input)' : '2'}, max pool replaced by a 3x3 stride-2 conv`;
  return [
    `model              ${name} (${entry.status})`,
    `blocks per stage   [${arch.blocks.join(', ')}] bottlenecks (depth ${arch.depth}), width x${arch.widthMultiplier}`,
    `stem               ${stem}`,
    `SE, BN             SE ratio ${arch.seRatio}; BN epsilon ${arch.bnEpsilon.toExponential()}, momentum ${arch.bnMomentum}`,
    `input              ${arch.imageSize}x${arch.imageSize}x${arch.inputChannels}, ${arch.classes} classes`,
    `stage outputs      ${counts.featureSizes.map((n) => `${n}x${n}`).join(', ')}`,
    `parameters         ${fmtInt(counts.params)} trainable (+${fmtInt(counts.nonTrainableParams)} BN moving statistics)`,
    `FLOPs              ${fmtFlops(counts.flops)} (2 x ${fmtFlops(counts.macs)} multiply-adds)`,
    `regularisation     dropout ${arch.dropoutRate}, stochastic depth ${arch.stochasticDepthRate}, RandAugment ${defaults.randAugmentLayers} ops @ ${defaults.randAugmentMagnitude}`,
    `preprocessing      eval centre crop ${pre.cropFraction}, ${pre.channels} channel(s), mean [${pre.mean.map((m) => m.toFixed(3)).join(', ')}], std [${pre.std.map((s) => s.toFixed(3)).join(', ')}] (0..255)`,
    `source             ${entry.source}`,
  ];
}

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('ResNet-RS model registry');
  model
    .command('list')
    .description('List every registered model with its config, parameters and FLOPs')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const rows = MODEL_REGISTRY.map((entry) => {
        const r = resolveEntry(entry);
        return { r, counts: countResNetRS(r.arch) };
      });
      if (o.json) {
        console.log(JSON.stringify(rows.map(({ r, counts }) => ({ ...r, params: counts.params, flops: counts.flops })), null, 2));
        return;
      }
      const header = ['name', 'status', 'blocks', 'width', 'input', 'params', 'GFLOPs', 'dropout', 'SD', 'RandAugment'];
      const table = rows.map(({ r: { entry, arch }, counts }) => [
        entry.name,
        entry.status,
        `[${arch.blocks.join(',')}]`,
        String(arch.widthMultiplier),
        `${arch.imageSize}x${arch.imageSize}x${arch.inputChannels}`,
        `${(counts.params / 1e6).toFixed(2)} M`,
        (counts.flops / 1e9).toFixed(3),
        String(arch.dropoutRate),
        String(arch.stochasticDepthRate),
        `${entry.randAugment.layers} @ ${entry.randAugment.magnitude}`,
      ]);
      const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
      for (const t of [header, ...table]) console.log(t.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
    });
  model
    .command('info')
    .description(`Print a registered model's config, parameters and FLOPs (e.g. resnet-rs-50, ${FASHION_MNIST_MODEL}; \`selftrain model list\` names them all)`)
    .argument('<name>', 'registered model name')
    .option('--image-size <S>', "input side in pixels (default: the model's training resolution)", intOption('--image-size', 8))
    .option('--classes <K>', "output classes (default: the model's)", intOption('--classes', 2))
    .option('--channels <C>', "input channels (default: the model's)", intOption('--channels', 1))
    .option('--width <M>', "restate the model's width multiplier (a different value is an error)", (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError(`--width expects a number > 0, got "${v}"`);
      return n;
    })
    .option('--depth <D>', "restate the model's depth (a different value is an error)", intOption('--depth', 1))
    .option('--small', "restate the model's small-input stem (an error for a model without it)")
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
      let resolved: ResolvedModel;
      try {
        resolved = resolveModel(choice);
      } catch (err) {
        const msg = err instanceof ModelChoiceError ? err.issues.map((i) => `${FLAG_OF[i.field] ?? i.field}: ${i.message}`).join('\n') : (err as Error).message;
        process.stderr.write(`error: ${msg}\n`);
        process.exitCode = 2;
        return;
      }
      const { arch, defaults, preprocessing, entry } = resolved;
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
        console.log(JSON.stringify({ name, status: entry.status, source: entry.source, arch, defaults, preprocessing, ...counts, ...(built ? { built } : {}) }, null, 2));
        return;
      }
      const lines = infoLines(name, resolved);
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
