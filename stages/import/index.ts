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
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { ensureFashionMnist } from './fashion-mnist.js';
import { FASHION_MNIST_CLASSES } from './idx-source.js';
import { openImportSource, type SourceOptions } from './open-source.js';
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
            if (!bar) bars.set(file, (bar = ctx.progress(`download ${file}`, kib(total ?? bytes), 'KiB')));
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
    let from = src.source;
    try {
      if (src.fashionMnist) from = await fashionMnistDir();
      source = await openImportSource(from, { ...src.options, limitInputPixels: d.maxPixels, storeSettings: ctx.storeSettings });
    } catch (err) {
      throw new DataError(`datasets.${name}: "${ref}": ${(err as Error).message}`, { uri: from }, { cause: err });
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
