/**
 * What an importer provides: the list of samples (keys, labels, a source-specific reference —
 * small metadata that fits in memory even for big sets) and a way to load the encoded images of
 * any subset. The orchestrator (run-import.ts) decides order, split and sharding from the list
 * alone, then loads shard groups within a memory budget, so memory stays flat.
 */
import PQueue from 'p-queue';
import type { ImageExt } from '../../pipeline/data/types.js';

export interface SourceEntry {
  key: string;
  label?: number;
  /** Source-specific reference (an index into the source's own tables). */
  ref: number;
}

export interface LoadedSample {
  entry: SourceEntry;
  image?: Buffer;
  ext?: ImageExt;
  json?: unknown;
  /** Why this sample cannot be imported (corrupt, not an image, ...); it is skipped. */
  error?: string;
  /** Where the problem is, e.g. a file path or `shard.tar` — for the skipped list. */
  where?: string;
}

export interface ImportSource {
  kind: 'idx' | 'folder' | 'webdataset' | 'tree' | 'list';
  /** Class names of the source's labels; [] for a source that carries no labels. */
  classes: string[];
  /** Every sample in source order; keys are unique. */
  entries: SourceEntry[];
  /** Identifies the source's content for the plan hash (paths, sizes, counts). */
  identity: Record<string, unknown>;
  /** Rough bytes held per loaded sample, for the memory budget. */
  bytesPerEntry: number;
  /** Problems found while indexing (they are samples that will never be loaded). */
  problems: { key: string; where: string; reason: string }[];
  /** Loads the given entries; yields one result per entry (any order). */
  load(entries: SourceEntry[]): AsyncIterable<LoadedSample>;
  close(): Promise<void>;
}

/** sharp's format names → our member extensions (undefined: must be converted to PNG). */
export function extForFormat(format: string | undefined): ImageExt | undefined {
  switch (format) {
    case 'png':
      return 'png';
    case 'jpeg':
    case 'jpg':
      return 'jpg';
    case 'webp':
      return 'webp';
    default:
      return undefined;
  }
}

/**
 * Loads `wanted` with at most `concurrency` loads in flight (p-queue), yielding results in the
 * order of `wanted`. The caller bounds `wanted` (one shard group), so memory stays bounded too.
 */
export async function* loadQueued(wanted: SourceEntry[], concurrency: number, loadOne: (entry: SourceEntry) => Promise<LoadedSample>): AsyncGenerator<LoadedSample> {
  const queue = new PQueue({ concurrency });
  const jobs = wanted.map((entry) => queue.add(() => loadOne(entry)) as Promise<LoadedSample>);
  // Every job is observed from the start, so one failing early is not an unhandled rejection.
  for (const j of jobs) j.catch(() => undefined);
  for (const j of jobs) yield await j;
}

/** First line of a (libvips: often many-line) message: what a one-line warning shows. */
export function firstLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.length <= 1 ? (lines[0] ?? '') : `${lines[0]} (+${lines.length - 1} more line(s))`;
}
