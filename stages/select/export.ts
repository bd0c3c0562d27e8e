/**
 * `selftrain dataset export-pseudo <run-uri> --to <uri>`: a run's selected pseudo-labeled set as a
 * standard labeled WebDataset, for other tools (webdataset/PyTorch, timm): one tar per unlabeled
 * shard that kept samples, each sample its image as imported, `<key>.cls` the teacher's top-1
 * class (the hard label) and `<key>.json`:
 *
 *   { "classes": [...], "probs": [...],      the training target (soft, or [label] / [1] for hard)
 *     "confidence": 0.93, "repeats": 2,       teacher top-1 probability; copies per pass (balancing)
 *     "source": { "shard", "key", "json"? } }  where it came from in the unlabeled set
 *
 * Repeats are listed in the .json by default; `repeats: 'materialise'` writes each sample `repeats`
 * times instead (keys `<key>`, `<key>_r1`, ...), so a plain uniform sampler sees the balanced set.
 * The class names are the run's (the infer summary's). Written with the dataset writer: resumable
 * by shard, `dataset.json` last, and a selftrain dataset itself.
 */
import { createHash } from 'node:crypto';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import { readDataset } from '../../pipeline/data/reader.js';
import type { SampleToPack } from '../../pipeline/data/tar.js';
import { DataError, type DatasetIndex } from '../../pipeline/data/types.js';
import { decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import type { PseudoLabelRecord } from '../../pipeline/pseudo/records.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import { readSelectSummary, SELECT_SUMMARY_KEY, type SelectSummary } from '../../pipeline/contracts/select.js';

export interface ExportOptions {
  /** Select stage to export (default: the last round's, `select-<highest k>` with a summary). */
  stage?: string;
  repeats?: 'list' | 'materialise';
  signal?: AbortSignal;
  onShard?: (done: number, total: number) => void;
}

export interface ExportResult {
  stage: string;
  uri: string;
  index: DatasetIndex;
  summary: SelectSummary;
  alreadyComplete: boolean;
}

/** The select stage with the highest round number that has finished (its summary exists). */
export async function lastSelectStage(run: ObjectStore): Promise<string> {
  const done = (await run.list('select-'))
    .map((o) => /^(select-(\d+))\/summary\.json$/.exec(o.key))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(b[2]) - Number(a[2]));
  if (!done[0]) throw new DataError(`${run.uri}: no finished select stage (no select-<k>/${SELECT_SUMMARY_KEY}): run the experiment up to its select stage first`, { uri: run.uri });
  return done[0][1]!;
}

export async function exportPseudoLabels(runUri: string, toUri: string, o: ExportOptions = {}): Promise<ExportResult> {
  const run = openStore(runUri);
  const to = openStore(toUri);
  try {
    const stage = o.stage ?? (await lastSelectStage(run));
    const m = /^select-(\d+)$/.exec(stage);
    if (!m) throw new DataError(`--stage ${stage}: not a select stage id (select-<k>)`);
    const { summary, hash } = await readSelectSummary(run, stage);
    const infer = await readInferSummary(run, `infer-${m[1]}`);
    const mode = o.repeats ?? 'list';
    const plan = createHash('sha256').update(JSON.stringify({ run: run.uri, stage, summary: hash, mode })).digest('hex').slice(0, 32);
    const writer = new DatasetWriter(to, {
      classes: infer.classes,
      labeled: true,
      plan,
      source: { exporter: 'export-pseudo', run: run.uri, select: stage, dataset: infer.dataset, repeats: mode },
    });
    const uri = to.uri.replace(/\/+$/, '');
    if ((await writer.begin()) === 'complete') return { stage, uri, index: (await openDataset(to)).index, summary, alreadyComplete: true };
    const ds = await openDataset(infer.dataset);
    try {
      const shardNumber = new Map(ds.index.shards.map((s, n) => [s.name.replace(/\.tar$/, ''), n]));
      const kept = summary.shards.filter((s) => s.unique > 0);
      for (const [i, s] of kept.entries()) {
        o.signal?.throwIfAborted();
        if (writer.isShardDone(i)) continue;
        const wanted = new Map<string, PseudoLabelRecord>();
        for await (const { value } of decodeJsonlGz(await run.getStream(`${stage}/${s.key}`), `${run.uri}/${stage}/${s.key}`)) {
          const r = value as PseudoLabelRecord;
          wanted.set(r.key, r);
        }
        const n = shardNumber.get(s.shard);
        if (n === undefined) throw new DataError(`${infer.dataset}: no shard ${s.shard}.tar, which ${stage} selected from`, { uri: infer.dataset, shard: `${s.shard}.tar` });
        const samples: SampleToPack[] = [];
        for await (const smp of readDataset(ds, { shardList: [n], signal: o.signal })) {
          const r = wanted.get(smp.key);
          if (!r) continue;
          wanted.delete(smp.key);
          const json = { classes: r.classes, probs: r.probs, confidence: r.confidence, repeats: r.repeats, source: { shard: r.shard, key: r.key, ...(smp.json !== undefined ? { json: smp.json } : {}) } };
          const copies = mode === 'materialise' ? r.repeats : 1;
          for (let j = 0; j < copies; j++) samples.push({ key: j === 0 ? smp.key : `${smp.key}_r${j}`, ext: smp.ext, image: smp.image, label: r.label, json });
        }
        if (wanted.size > 0) {
          const missing = [...wanted.keys()].slice(0, 5).join(', ');
          throw new DataError(`${infer.dataset}/${s.shard}.tar: ${wanted.size} selected sample(s) not in the shard (${missing}): the unlabeled set changed since ${stage} ran`, { uri: infer.dataset, shard: `${s.shard}.tar` });
        }
        await writer.writeShard(i, samples);
        o.onShard?.(writer.shardsDone, kept.length);
      }
      const index = await writer.finish(kept.length);
      return { stage, uri, index, summary, alreadyComplete: false };
    } finally {
      await ds.close();
    }
  } finally {
    await run.close();
    await to.close();
  }
}
