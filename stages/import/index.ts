/**
 * The import stage: makes sure the manifest's labeled, unlabeled and eval datasets exist in the
 * store, importing sources named in `datasets` (see pipeline/manifest/sections/datasets.ts), and
 * writes the run's dataset list `<import id>/datasets.json` — its commit object, written last
 * (shape and reader: pipeline/contracts/import.ts).
 *
 * The list's `classes` are the labeled set's: the label space of the whole run (teacher outputs,
 * pseudo-labels, student), whatever the unlabeled set looks like. The unlabeled set is imported
 * without labels whatever its source (a folder tree's names are not classes there).
 *
 * Imports go to `<importPrefix>/<source-slug>-<plan hash>/` under the store root, so runs share
 * them and a second run finds them complete (no work). Imports are resumable at shard granularity
 * (see run-import.ts).
 */
import { createHash } from 'node:crypto';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { DataError, type DatasetIndex } from '../../pipeline/data/types.js';
import { IMPORT_SOURCE_RE } from '../../pipeline/manifest/sections/datasets.js';
import { importStageConfig, writeDatasetsList, type DatasetsList, type ImportStageConfig } from '../../pipeline/contracts/import.js';
import { parseStageConfig } from '../../pipeline/contracts/json.js';
import { openRef } from '../../pipeline/data/dataset-ref.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { ensureFashionMnist } from './fashion-mnist.js';
import { FASHION_MNIST_CLASSES } from './idx-source.js';
import { openImportSource, UNLABELED_FORMATS, type SourceOptions } from './open-source.js';
import { importDataset } from './run-import.js';

export { FASHION_MNIST_DEBIAN_DIR, fashionMnistHowTo } from './fashion-mnist.js';

interface ParsedSource {
  /** The directory, file or URI to import from; '' for `fashion-mnist:` (found or downloaded at import time). */
  source: string;
  options: SourceOptions;
  fashionMnist?: boolean;
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
      return { source: '', options: { format: 'idx', split: split(rest), classes: FASHION_MNIST_CLASSES }, fashionMnist: true };
    case 'idx': {
      const i = rest.lastIndexOf(':');
      if (i < 0) throw new DataError(`"${ref}": expected idx:<dir>:train|test`);
      return { source: rest.slice(0, i), options: { format: 'idx', split: split(rest.slice(i + 1)) } };
    }
    case 'folder':
      return { source: rest, options: { format: 'folder' } };
    case 'images':
      return { source: rest, options: { format: 'tree' } };
    case 'list':
      return { source: rest, options: { format: 'list' } };
    default:
      return { source: rest, options: { format: 'webdataset' } };
  }
}

/** Skipped files named one per line in the log before the rest are only counted. */
const MAX_SKIP_LINES = 20;

function sameClasses(a: string[], b: string[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((c, i) => c === b[i]);
}

function slug(ref: string): string {
  return ref.replace(/^[a-z-]+:/, '').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(-40) || 'dataset';
}

export async function runStage(ctx: StageContext, raw: ImportStageConfig): Promise<StageResult> {
  const { datasets: d, seed } = parseStageConfig(importStageConfig, raw, 'import');
  const out: Partial<DatasetsList> = {};
  const summary: Record<string, unknown> = {};
  const field = (name: 'labeled' | 'unlabeled' | 'eval') => d[name];

  // Debian's package, the download cache, or a download now (with progress); once per stage run.
  let fashionDir: Promise<string> | undefined;
  const fashionMnistDir = () =>
    (fashionDir ??= (async () => {
      const bars = new Map<string, ReturnType<typeof ctx.progress>>();
      try {
        return await ensureFashionMnist({
          signal: ctx.signal,
          onStart: (message) => ctx.log.info(message),
          onProgress: (file, bytes, total) => {
            const kib = (n: number) => Math.ceil(n / 1024);
            let bar = bars.get(file);
            if (!bar) {
              bar = ctx.progress(`download ${file}`, kib(total ?? bytes), 'KiB');
              bars.set(file, bar);
            }
            if (total !== undefined) bar.setTotal(kib(total));
            bar.update(kib(bytes));
            if (total !== undefined && bytes >= total) {
              bar.stop(); // its final line says how long this file took
              bars.delete(file);
            }
          },
        });
      } finally {
        for (const bar of bars.values()) bar.stop();
      }
    })());

  /**
   * Imports one source. The unlabeled role (outside a split) always gives an unlabeled set: a folder
   * tree's names are not classes there, and labels a source does carry are kept apart as ground truth
   * only when they are in the labeled set's label space (the same class names in the same order).
   */
  const doImport = async (name: 'labeled' | 'unlabeled' | 'eval', ref: string, src: ParsedSource, labeledPerClass?: number, labeledClasses?: string[]): Promise<{ prefix: string; classes: string[] }> => {
    const asUnlabeled = name === 'unlabeled' && labeledPerClass === undefined;
    const format = asUnlabeled && src.options.format === 'folder' ? 'tree' : src.options.format;
    if (!asUnlabeled && format && UNLABELED_FORMATS.includes(format)) {
      throw new DataError(`datasets.${name}: "${ref}" carries no labels; the ${name} set needs them (folder:<dir> with one sub-directory per class, webdataset tars with .cls, idx or fashion-mnist)`);
    }
    const shuffleSeed = labeledPerClass !== undefined ? (d.split?.seed ?? seed) : (d.shuffleSeed ?? seed);
    const max = d.maxSamples ?? {};
    const limit = labeledPerClass !== undefined ? { labeled: max.labeled, unlabeled: max.unlabeled } : { '': max[name] };
    const limited = Object.values(limit).some((v) => v !== undefined);
    const key = createHash('sha256')
      .update(
        JSON.stringify({
          ref,
          labeledPerClass: labeledPerClass ?? null,
          shuffleSeed,
          perShard: d.samplesPerShard,
          maxPixels: d.maxPixels ?? null,
          ...(limited ? { limit } : {}),
          ...(asUnlabeled ? { unlabeled: true } : {}),
        }),
      )
      .digest('hex')
      .slice(0, 10);
    const prefix = `${d.importPrefix.replace(/\/+$/, '')}/${slug(ref)}-${key}`;
    let source;
    let from = src.source;
    try {
      if (src.fashionMnist) from = await fashionMnistDir();
      source = await openImportSource(from, { ...src.options, format, limitInputPixels: d.maxPixels, storeSettings: ctx.storeSettings });
    } catch (err) {
      throw new DataError(`datasets.${name}: "${ref}": ${(err as Error).message}`, { uri: from }, { cause: err });
    }
    const groundTruth = asUnlabeled && source.classes.length > 0 && sameClasses(source.classes, labeledClasses);
    ctx.log.info(`importing ${ref}${asUnlabeled ? ` as an unlabeled set${groundTruth ? ' (its labels kept apart as ground truth)' : ''}` : ''}`, { samples: source.entries.length, to: prefix });
    const bar = ctx.progress(`import ${name}`, 1, 'shards');
    let classes: string[] = [];
    try {
      const res = await importDataset(source, ctx.root.sub(prefix), {
        samplesPerShard: d.samplesPerShard,
        seed: shuffleSeed,
        labeledPerClass,
        limit,
        ...(asUnlabeled ? { unlabeled: { groundTruth } } : {}),
        signal: ctx.signal,
        onProgress: (_part, done, total) => {
          bar.setTotal(total);
          bar.update(done);
        },
      });
      for (const o of res.outputs) {
        summary[o.prefix || name] = { samples: o.index.samples, shards: o.index.shards.length, skipped: o.index.skipped?.length ?? 0, reused: o.alreadyComplete };
        if (o.prefix !== 'unlabeled') classes = o.index.classes;
        if (!o.alreadyComplete) warnSkipped(ref, o.uri, o.index.skipped ?? []);
      }
    } finally {
      bar.stop();
    }
    return { prefix, classes };
  };

  /** One line per skipped file (the short reason; the full message stays in dataset.json). */
  const warnSkipped = (ref: string, uri: string, skipped: NonNullable<DatasetIndex['skipped']>) => {
    for (const s of skipped.slice(0, MAX_SKIP_LINES)) ctx.log.warn(`${ref}: skipped ${s.where || s.key}: ${s.reason}`);
    if (skipped.length > MAX_SKIP_LINES) ctx.log.warn(`${ref}: ${skipped.length - MAX_SKIP_LINES} more skipped file(s), all listed with their reasons in ${uri}/dataset.json ("skipped")`);
  };

  /** The class names of a dataset ref (an existing dataset named in the manifest). */
  const classesOf = async (name: string, ref: string): Promise<string[]> => {
    const { store, close } = openRef(ctx.root, ref, ctx.storeSettings);
    try {
      return (await openDataset(store)).index.classes;
    } catch (err) {
      throw new DataError(`datasets.${name}: ${(err as Error).message}`, { uri: store.uri }, { cause: err });
    } finally {
      await close();
    }
  };

  const labeledRef = field('labeled');
  const unlabeledRef = field('unlabeled');
  const labeledSrc = parseImportSource(labeledRef);
  const unlabeledSrc = parseImportSource(unlabeledRef);
  // The label space of the whole run is the labeled set's (the teacher's): never the unlabeled set's.
  let labeledClasses: string[];
  if (labeledSrc && labeledRef === unlabeledRef) {
    if (!d.split) {
      throw new DataError(`datasets: labeled and unlabeled are the same source "${labeledRef}"; set datasets.split.labeledPerClass to divide it`);
    }
    const done = await doImport('labeled', labeledRef, labeledSrc, d.split.labeledPerClass);
    out.labeled = `${done.prefix}/labeled`;
    out.unlabeled = `${done.prefix}/unlabeled`;
    out.groundTruth = `${done.prefix}/unlabeled/ground-truth.jsonl.gz`;
    labeledClasses = done.classes;
  } else {
    if (labeledSrc) {
      const done = await doImport('labeled', labeledRef, labeledSrc);
      out.labeled = done.prefix;
      labeledClasses = done.classes;
    } else {
      out.labeled = labeledRef;
      labeledClasses = await classesOf('labeled', labeledRef);
    }
    out.unlabeled = unlabeledSrc ? (await doImport('unlabeled', unlabeledRef, unlabeledSrc, undefined, labeledClasses)).prefix : unlabeledRef;
  }
  const evalRef = field('eval');
  const evalSrc = parseImportSource(evalRef);
  out.eval = evalSrc ? (await doImport('eval', evalRef, evalSrc)).prefix : evalRef;

  // Every ref must open as a dataset now, not fail hours later in train or infer.
  for (const name of ['labeled', 'unlabeled', 'eval'] as const) {
    const { store, close } = openRef(ctx.root, out[name]!, ctx.storeSettings);
    try {
      const ds = await openDataset(store);
      summary[name] = { ...(summary[name] as object), ref: out[name], samples: ds.index.samples };
    } catch (err) {
      throw new DataError(`datasets.${name}: ${(err as Error).message}`, { uri: store.uri }, { cause: err });
    } finally {
      await close();
    }
  }
  // Keys in the order the list has always been written in: classes first.
  const list: DatasetsList = { classes: labeledClasses, labeled: out.labeled, unlabeled: out.unlabeled, ...(out.groundTruth ? { groundTruth: out.groundTruth } : {}), eval: out.eval };
  await writeDatasetsList(ctx.run, ctx.stageId, list);
  return { summary };
}
