/**
 * The import stage: makes sure the manifest's labeled, unlabeled and eval datasets exist in the
 * store, importing sources named in `datasets` (see pipeline/manifest/sections/datasets.ts), and
 * writes the run's dataset list `<import id>/datasets.json` — its commit object, written last
 * (shape and reader: pipeline/contracts/import.ts).
 *
 * Imports go to `<importPrefix>/<source-slug>-<plan hash>/` under the store root, so runs share
 * them and a second run finds them complete (no work). Imports are resumable at shard granularity
 * (see run-import.ts).
 */
import { createHash } from 'node:crypto';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { DataError } from '../../pipeline/data/types.js';
import { IMPORT_SOURCE_RE } from '../../pipeline/manifest/sections/datasets.js';
import { importStageConfig, writeDatasetsList, type DatasetsList, type ImportStageConfig } from '../../pipeline/contracts/import.js';
import { parseStageConfig } from '../../pipeline/contracts/json.js';
import { openRef } from '../../pipeline/data/dataset-ref.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { openImportSource, type SourceOptions } from './open-source.js';
import { importDataset } from './run-import.js';

export const FASHION_MNIST_DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

/** Where `fashion-mnist:` reads the IDX files: SELFTRAIN_FASHION_MNIST_DIR (e.g. a download of the
 * official files), else Debian's dataset-fashion-mnist. */
export function fashionMnistDir(): string {
  return process.env.SELFTRAIN_FASHION_MNIST_DIR || FASHION_MNIST_DEBIAN_DIR;
}

/** sha256 of the official files' DEcompressed bytes: Debian recompresses the .gz, so only the
 * content is the same everywhere (checked against dataset-fashion-mnist 2020-06). */
const FASHION_MNIST_SHA256 = {
  'train-images-idx3-ubyte': 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
  'train-labels-idx1-ubyte': 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
  't10k-images-idx3-ubyte': '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
  't10k-labels-idx1-ubyte': '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
};

/** What to do when the Fashion-MNIST files are not where `fashion-mnist:` looks (issue 7 item 5). */
export function fashionMnistHowTo(dir: string): string {
  return (
    `Fashion-MNIST is not in ${dir}. Get it with \`apt-get install dataset-fashion-mnist\` (Debian/Ubuntu), ` +
    `or download the four official files (https://github.com/zalandoresearch/fashion-mnist, data/fashion/*.gz: ` +
    `${Object.keys(FASHION_MNIST_SHA256).map((n) => `${n}.gz`).join(', ')}) into a directory, check each with ` +
    `\`gunzip -c <file>.gz | sha256sum\` against ${Object.entries(FASHION_MNIST_SHA256).map(([n, h]) => `${n} ${h}`).join(', ')}, ` +
    `and set SELFTRAIN_FASHION_MNIST_DIR=<that directory> (or name it as idx:<dir>:train|test in the manifest)`
  );
}

interface ParsedSource {
  source: string;
  options: SourceOptions;
}

/** `fashion-mnist:train` etc. → importer arguments; undefined for a plain dataset ref. */
export function parseImportSource(ref: string): ParsedSource | undefined {
  const m = IMPORT_SOURCE_RE.exec(ref);
  if (!m) return undefined;
  const [, kind, rest] = m as unknown as [string, string, string];
  const split = (s: string): 'train' | 'test' => {
    if (s !== 'train' && s !== 'test') throw new DataError(`"${ref}": split must be train or test (got "${s}")`);
    return s;
  };
  switch (kind) {
    case 'fashion-mnist':
      return { source: fashionMnistDir(), options: { format: 'idx', split: split(rest) } };
    case 'idx': {
      const i = rest.lastIndexOf(':');
      if (i < 0) throw new DataError(`"${ref}": expected idx:<dir>:train|test`);
      return { source: rest.slice(0, i), options: { format: 'idx', split: split(rest.slice(i + 1)) } };
    }
    case 'folder':
      return { source: rest, options: { format: 'folder' } };
    default:
      return { source: rest, options: { format: 'webdataset' } };
  }
}

function slug(ref: string): string {
  return ref.replace(/^[a-z-]+:/, '').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(-40) || 'dataset';
}

export async function runStage(ctx: StageContext, raw: ImportStageConfig): Promise<StageResult> {
  const { datasets: d, seed } = parseStageConfig(importStageConfig, raw, 'import');
  // Filled in the order the list has always been written in (classes first, from the first import).
  const out: Partial<DatasetsList> = {};
  const summary: Record<string, unknown> = {};
  const field = (name: 'labeled' | 'unlabeled' | 'eval') => d[name];

  const doImport = async (name: 'labeled' | 'unlabeled' | 'eval', ref: string, src: ParsedSource, labeledPerClass?: number): Promise<string> => {
    const shuffleSeed = labeledPerClass !== undefined ? (d.split?.seed ?? seed) : (d.shuffleSeed ?? seed);
    const max = d.maxSamples ?? {};
    const limit = labeledPerClass !== undefined ? { labeled: max.labeled, unlabeled: max.unlabeled } : { '': max[name] };
    const limited = Object.values(limit).some((v) => v !== undefined);
    const key = createHash('sha256')
      .update(JSON.stringify({ ref, labeledPerClass: labeledPerClass ?? null, shuffleSeed, perShard: d.samplesPerShard, maxPixels: d.maxPixels ?? null, ...(limited ? { limit } : {}) }))
      .digest('hex')
      .slice(0, 10);
    const prefix = `${d.importPrefix.replace(/\/+$/, '')}/${slug(ref)}-${key}`;
    let source;
    try {
      source = await openImportSource(src.source, { ...src.options, limitInputPixels: d.maxPixels, storeSettings: ctx.storeSettings });
    } catch (err) {
      // A missing Debian package is the likely first-run failure: say how to get the data.
      const howTo = ref.startsWith('fashion-mnist:') && /no \S+-idx\d-ubyte/.test((err as Error).message) ? `. ${fashionMnistHowTo(src.source)}` : '';
      throw new DataError(`datasets.${name}: "${ref}": ${(err as Error).message}${howTo}`, { uri: src.source }, { cause: err });
    }
    ctx.log.info(`importing ${ref}`, { samples: source.entries.length, to: prefix });
    const bar = ctx.progress(`import ${name}`, 1, 'shards');
    try {
      const res = await importDataset(source, ctx.root.sub(prefix), {
        samplesPerShard: d.samplesPerShard,
        seed: shuffleSeed,
        labeledPerClass,
        limit,
        signal: ctx.signal,
        onProgress: (_part, done, total) => {
          bar.setTotal(total);
          bar.update(done);
        },
      });
      for (const o of res.outputs) {
        summary[o.prefix || name] = { samples: o.index.samples, shards: o.index.shards.length, skipped: o.index.skipped?.length ?? 0, reused: o.alreadyComplete };
        if (o.index.skipped?.length) ctx.log.warn(`${ref}: ${o.index.skipped.length} source samples skipped`, { first: o.index.skipped[0]?.reason });
        out.classes ??= o.index.classes;
      }
    } finally {
      bar.stop();
    }
    return prefix;
  };

  const labeledRef = field('labeled');
  const unlabeledRef = field('unlabeled');
  const labeledSrc = parseImportSource(labeledRef);
  const unlabeledSrc = parseImportSource(unlabeledRef);
  if (labeledSrc && labeledRef === unlabeledRef) {
    if (!d.split) {
      throw new DataError(`datasets: labeled and unlabeled are the same source "${labeledRef}"; set datasets.split.labeledPerClass to divide it`);
    }
    const prefix = await doImport('labeled', labeledRef, labeledSrc, d.split.labeledPerClass);
    out.labeled = `${prefix}/labeled`;
    out.unlabeled = `${prefix}/unlabeled`;
    out.groundTruth = `${prefix}/unlabeled/ground-truth.jsonl.gz`;
  } else {
    out.labeled = labeledSrc ? await doImport('labeled', labeledRef, labeledSrc) : labeledRef;
    out.unlabeled = unlabeledSrc ? await doImport('unlabeled', unlabeledRef, unlabeledSrc) : unlabeledRef;
  }
  const evalRef = field('eval');
  const evalSrc = parseImportSource(evalRef);
  out.eval = evalSrc ? await doImport('eval', evalRef, evalSrc) : evalRef;

  // Every ref must open as a dataset now, not fail hours later in train or infer.
  for (const name of ['labeled', 'unlabeled', 'eval'] as const) {
    const { store, close } = openRef(ctx.root, out[name]!, ctx.storeSettings);
    try {
      const ds = await openDataset(store);
      out.classes ??= ds.index.classes;
      summary[name] = { ...(summary[name] as object), ref: out[name], samples: ds.index.samples };
    } catch (err) {
      throw new DataError(`datasets.${name}: ${(err as Error).message}`, { uri: store.uri }, { cause: err });
    } finally {
      await close();
    }
  }
  await writeDatasetsList(ctx.run, ctx.stageId, out as DatasetsList);
  return { summary };
}
