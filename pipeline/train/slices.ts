/**
 * How a global batch is shared out over data-parallel workers: contiguous slices in rank order,
 * sizes differing by at most one (the first `count mod size` workers take one extra). Every worker
 * works out its own slice, so no index lists travel between threads.
 */
export interface Slice {
  /** First global position of the slice. */
  from: number;
  /** One past the last. */
  to: number;
}

export function sliceOf(count: number, rank: number, size: number): Slice {
  const base = Math.floor(count / size);
  const extra = count % size;
  const from = rank * base + Math.min(rank, extra);
  return { from, to: from + base + (rank < extra ? 1 : 0) };
}

/** Contiguous ranges of `count` items (e.g. eval batches), one per worker, in rank order. */
export function allSlices(count: number, size: number): Slice[] {
  return Array.from({ length: size }, (_, rank) => sliceOf(count, rank, size));
}
