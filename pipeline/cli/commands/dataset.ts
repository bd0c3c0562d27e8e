/**
 * `selftrain dataset import|info|ls|cp|rm|verify|export-pseudo`: bring images into the store as
 * WebDataset shards, manage datasets in a store, inspect/check them, export pseudo-labels. Data problems print a message naming the URI, shard and key and
 * exit non-zero; they never print a stack trace.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { listDatasets, type DatasetListing } from '../../data/catalog.js';
import { DATASET_JSON, openDataset } from '../../data/dataset-json.js';
import { openStore } from '../../store/open.js';
import { DataError } from '../../data/types.js';
import { StoreError } from '../../store/types.js';
import type { SourceFormat } from '../../../stages/import/open-source.js';
// The heavy modules (sharp, importers) are imported inside the actions that use them, so that
// every other `selftrain` command starts fast.

function int(name: string, min = 0) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

/** Runs a command body; expected failures become "error: <message>" and exit code 1. */
async function guarded(body: () => Promise<number | void>): Promise<void> {
  try {
    const code = await body();
    if (code) process.exitCode = code;
  } catch (err) {
    if (err instanceof DataError || err instanceof StoreError || err instanceof RangeError) {
      console.error(`error: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

/** `dataset ls` of a prefix holding datasets: one line each. */
function printDatasets(uri: string, list: DatasetListing[]): void {
  if (list.length === 0) {
    console.log(`${uri}: no datasets (no dataset.json at or below this prefix)`);
    return;
  }
  const rows = list.map((d) =>
    d.error
      ? [d.name || '.', '?', '?', '?', d.created.toISOString().slice(0, 19) + 'Z', d.error]
      : [d.name || '.', String(d.samples), d.labeled || (d.classes ?? 0) > 0 ? `${d.classes}${d.labeled ? '' : ' (ground truth)'}` : 'unlabeled', fmtBytes(d.bytes ?? 0), d.created.toISOString().slice(0, 19) + 'Z', ''],
  );
  const head = ['name', 'samples', 'classes', 'bytes', 'created', ''];
  const width = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((v, c) => (c === 1 || c === 3 ? v.padStart(width[c]!) : v.padEnd(width[c]!))).join('  ').trimEnd());
}

const fmtBytes = (b: number) => (b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(2)} GiB` : b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

export function registerDatasetCommands(program: Command): void {
  // `selftrain dataset ls x | head` closes stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const ds = program.command('dataset').description('Import, list, copy, remove, inspect, verify and export datasets (WebDataset shards in the store)');

  ds.command('import')
    .description('Import images into <uri> as WebDataset shards (resumable: re-run to continue)')
    .argument('<source>', 'IDX directory (MNIST/Fashion-MNIST), image-folder root (root/<class>/<file>), WebDataset tars (dir or URI), images in any layout (a flat dir, any tree, a raw s3:// prefix) or a list file')
    .option('--to <uri>', 'destination dataset prefix: file://<dir>, a path, or s3://<bucket>/<prefix>')
    .option('--in-place', 'WebDataset source only: index the tars where they are (writes dataset.json + side indexes beside them, copies nothing)')
    .addOption(
      new Option('--format <format>', 'source format (auto: a file is a list; a dir or prefix of images without class sub-directories is a tree)')
        .choices(['auto', 'idx', 'folder', 'webdataset', 'tree', 'list'])
        .default('auto'),
    )
    .option('--unlabeled', 'import as an unlabeled set whatever the source carries (folder names and labels are dropped)')
    .addOption(new Option('--split <split>', 'IDX files to read').choices(['train', 'test']).default('train'))
    .option('--samples-per-shard <n>', 'target samples per shard', int('--samples-per-shard', 1), 2000)
    .option('--seed <n>', 'shuffle deterministically with this seed (default: keep source order)', int('--seed'))
    .option('--labeled-per-class <k>', 'split: k samples per class → <uri>/labeled, the rest → <uri>/unlabeled (labels held back)', int('--labeled-per-class', 1))
    .option('--classes <names>', 'comma-separated class names (WebDataset/IDX sources)')
    .option('--max-pixels <n>', 'refuse images with more decoded pixels (decompression bombs)', int('--max-pixels', 1))
    .option('--memory-mb <n>', 'images held in memory at once while importing', int('--memory-mb', 1), 64)
    .action(async (source: string, o: { to?: string; inPlace?: boolean; format: SourceFormat; unlabeled?: boolean; split: 'train' | 'test'; samplesPerShard: number; seed?: number; labeledPerClass?: number; classes?: string; maxPixels?: number; memoryMb: number }) =>
      guarded(async () => {
        if (o.inPlace) {
          if (o.to || o.seed !== undefined || o.labeledPerClass !== undefined) throw new RangeError('--in-place indexes the tars as they are: it takes no --to, --seed or --labeled-per-class');
          const { indexWebDatasetInPlace } = await import('../../../stages/import/wds-in-place.js');
          const idx = await indexWebDatasetInPlace(source, {
            classes: o.classes?.split(',').map((c) => c.trim()),
            limitInputPixels: o.maxPixels,
            onShard: (d, t) => process.stderr.write(`  tar ${d}/${t}\r`),
          });
          process.stderr.write('\n');
          console.log(`${source}: indexed in place: ${idx.samples} samples in ${idx.shards.length} tars, ${fmtBytes(idx.bytes)}`);
          return;
        }
        if (!o.to) throw new RangeError('--to <uri> is required (or --in-place for WebDataset tars)');
        const { openImportSource, detectFormat } = await import('../../../stages/import/open-source.js');
        const { importDataset } = await import('../../../stages/import/run-import.js');
        if (o.unlabeled && o.labeledPerClass !== undefined) throw new RangeError('--unlabeled and --labeled-per-class exclude each other');
        // An unlabeled import of a class-folder tree ignores the folders: it is a tree of images.
        const detected = o.format === 'auto' ? await detectFormat(source) : o.format;
        const src = await openImportSource(source, {
          format: o.unlabeled && detected === 'folder' ? 'tree' : detected,
          split: o.split,
          classes: o.classes?.split(',').map((c) => c.trim()),
          limitInputPixels: o.maxPixels,
          tree: { onListPage: (pages, objects) => process.stderr.write(`  listed ${objects} objects (${pages} page(s))\r`) },
        });
        const what = src.classes.length > 0 && !o.unlabeled ? `${src.classes.length} classes` : 'unlabeled';
        console.log(`importing ${src.entries.length} samples (${src.kind}, ${what}) from ${source}`);
        const res = await importDataset(src, o.to, {
          samplesPerShard: o.samplesPerShard,
          seed: o.seed,
          labeledPerClass: o.labeledPerClass,
          ...(o.unlabeled ? { unlabeled: { groundTruth: false } } : {}),
          memoryBytes: o.memoryMb * 1024 * 1024,
          onProgress: (part, done, total) => process.stderr.write(`  ${part || 'dataset'}: shard ${done}/${total}\r`),
        });
        process.stderr.write('\n');
        for (const out of res.outputs) {
          const idx = out.index;
          const how = out.alreadyComplete ? 'already complete' : out.resumedShards ? `resumed, ${out.resumedShards} shards kept` : 'new';
          console.log(`${out.uri}: ${idx.samples} samples in ${idx.shards.length} shards, ${fmtBytes(idx.bytes)} (${how})`);
          if (idx.skipped?.length) {
            console.log(`  skipped ${idx.skipped.length} source samples:`);
            for (const s of idx.skipped.slice(0, 50)) console.log(`    ${s.reason}${s.where && !s.reason.includes(s.where) ? ` [${s.where}]` : ''}`);
            if (idx.skipped.length > 50) console.log(`    ... ${idx.skipped.length - 50} more, with full messages, in ${out.uri}/dataset.json ("skipped")`);
          }
        }
      }),
    );

  ds.command('info')
    .description('Summary: classes, samples per class, shards, bytes')
    .argument('<uri>', 'dataset prefix')
    .option('--json', 'print dataset.json fields as JSON')
    .action(async (uri: string, o: { json?: boolean }) =>
      guarded(async () => {
        const d = await openDataset(uri);
        try {
          const i = d.index;
          if (o.json) {
            console.log(JSON.stringify({ uri: d.uri, classes: i.classes, labeled: i.labeled, samples: i.samples, classCounts: i.classCounts, shards: i.shards.length, bytes: i.bytes, groundTruth: i.groundTruth, skipped: i.skipped?.length ?? 0 }, null, 2));
            return;
          }
          console.log(`dataset   ${d.uri}`);
          console.log(`samples   ${i.samples} (${i.labeled ? 'labeled' : 'unlabeled'})`);
          console.log(`shards    ${i.shards.length}, ${fmtBytes(i.bytes)}`);
          console.log(`classes   ${i.classes.length}`);
          i.classes.forEach((c, k) => console.log(`  ${String(k).padStart(4)}  ${c}${i.classCounts ? `  ${i.classCounts[k]}` : ''}`));
          if (i.groundTruth) console.log(`ground truth held back in ${i.groundTruth}`);
          if (i.skipped?.length) console.log(`skipped at import: ${i.skipped.length}`);
        } finally {
          await d.close();
        }
      }),
    );

  ds.command('ls')
    .description('List the datasets under a prefix (name, samples, classes or "unlabeled", bytes, created); of a dataset, its shards, or with --shard its samples')
    .argument('<uri>', 'a store prefix holding datasets (e.g. s3://bucket/runs/datasets/), or a dataset prefix')
    .option('--shard <n>', 'list the samples of shard n (key, label, image bytes)', int('--shard'))
    .action(async (uri: string, o: { shard?: number }) =>
      guarded(async () => {
        if (o.shard === undefined) {
          const store = openStore(uri);
          try {
            if (!(await store.head(DATASET_JSON))) return printDatasets(uri, await listDatasets(store));
          } finally {
            await store.close();
          }
          const d = await openDataset(uri);
          try {
            for (const s of d.index.shards) console.log(`${s.name}\t${s.samples}\t${s.bytes}\t${s.sha256}`);
          } finally {
            await d.close();
          }
          return;
        }
        const { SampleFetcher } = await import('../../data/random-access.js');
        const f = await SampleFetcher.open(uri);
        try {
          const locs = await f.locations(o.shard);
          for (const l of locs.values()) console.log(`${l.key}\t${l.label ?? '-'}\t${l.ext}\t${l.image[1]}`);
        } finally {
          await f.close();
        }
      }),
    );

  ds.command('cp')
    .description('Copy a dataset between stores (file:// <-> s3://, bucket to bucket): streamed, each shard checked against its sha256, dataset.json last; re-run to resume')
    .argument('<from>', 'dataset prefix to copy')
    .argument('<to>', 'destination prefix')
    .option('--concurrency <n>', 'shards copied at once', int('--concurrency', 1), 4)
    .action(async (from: string, to: string, o: { concurrency: number }) =>
      guarded(async () => {
        const { copyDataset } = await import('../../data/copy-dataset.js');
        const r = await copyDataset(from, to, { concurrency: o.concurrency, onShard: (d, t) => process.stderr.write(`  shard ${d}/${t}\r`) });
        process.stderr.write('\n');
        if (r.alreadyComplete) {
          console.log(`${r.to}: already a complete copy of ${r.from} (${r.index.shards.length} shards)`);
          return;
        }
        const resumed = r.kept ? ` (resumed: ${r.kept} shard(s) already copied and verified)` : '';
        console.log(`${r.from} -> ${r.to}: ${r.index.samples} samples in ${r.index.shards.length} shards; copied ${r.copied} shard(s), ${fmtBytes(r.bytes)}, each sha256-checked${resumed}`);
      }),
    );

  ds.command('rm')
    .description('Remove a dataset (dataset.json first, then its shards); refused while a run in its store still uses it')
    .argument('<uri>', 'dataset prefix (or a prefix holding several, e.g. a split)')
    .option('--runs <uri>', 'store root to look for runs using it (default: the prefix above its datasets/ segment)')
    .option('--force', 'remove it even if runs use it')
    .action(async (uri: string, o: { runs?: string; force?: boolean }) =>
      guarded(async () => {
        const { removeDataset } = await import('../../data/references.js');
        const r = await removeDataset(uri, { runs: o.runs, force: o.force });
        if (r.references.length) console.log(`warning: --force: removed although ${new Set(r.references.map((x) => x.run)).size} run(s) use it`);
        console.log(`${r.uri}: removed ${r.datasets} dataset(s), ${r.objects} object(s)`);
      }),
    );

  ds.command('export-pseudo')
    .description("Write a run's selected pseudo-labeled set as a standard labeled WebDataset (.cls hard label, .json soft target and repeats) for other tools")
    .argument('<run-uri>', 'run prefix, e.g. s3://bucket/runs/fashion-mnist')
    .requiredOption('--to <uri>', 'destination prefix')
    .option('--stage <id>', 'select stage to export (default: the last finished round, select-<k>)')
    .addOption(new Option('--repeats <how>', 'list: repeat counts in each .json; materialise: write each sample repeats times').choices(['list', 'materialise']).default('list'))
    .action(async (runUri: string, o: { to: string; stage?: string; repeats: 'list' | 'materialise' }) =>
      guarded(async () => {
        const { exportPseudoLabels } = await import('../../../stages/select/export.js');
        const r = await exportPseudoLabels(runUri, o.to, { stage: o.stage, repeats: o.repeats, onShard: (d, t) => process.stderr.write(`  shard ${d}/${t}\r`) });
        process.stderr.write('\n');
        const i = r.index;
        console.log(
          `${r.uri}: ${i.samples} samples in ${i.shards.length} shards, ${fmtBytes(i.bytes)}${r.alreadyComplete ? ' (already complete)' : ''}: ` +
            `${r.stage}'s ${r.summary.unique} pseudo-labeled samples (${r.summary.pseudoLabeled} with repeats, ${o.repeats === 'materialise' ? 'materialised' : 'listed in each .json'}), ${i.classes.length} classes`,
        );
      }),
    );

  ds.command('verify')
    .description('Check every shard (sha256, sample count), every image (decodable) and label (in range)')
    .argument('<uri>', 'dataset prefix')
    .option('--no-decode', 'skip decoding images (structure and hashes only)')
    .option('--max-pixels <n>', 'decoded-pixel cap per image', int('--max-pixels', 1))
    .action(async (uri: string, o: { decode: boolean; maxPixels?: number }) =>
      guarded(async () => {
        const { verifyDataset } = await import('../../data/verify.js');
        const r = await verifyDataset(uri, { skipDecode: !o.decode, limitInputPixels: o.maxPixels, onShard: (d, t) => process.stderr.write(`  shard ${d}/${t}\r`) });
        process.stderr.write('\n');
        if (r.ok) {
          console.log(`OK ${r.uri}: ${r.shards} shards, ${r.samples} samples${o.decode ? `, ${r.decoded} images decoded` : ''}`);
          return 0;
        }
        console.log(`FAILED ${r.uri}: ${r.problems.length} problem(s)`);
        for (const p of r.problems) console.log(`  ${p}`);
        return 1;
      }),
    );
}
