/**
 * Runs an async iterable ahead of its consumer into a buffer of at most `size` items, so the
 * producer (shard download + sharp decode) keeps working while the consumer (the forward pass)
 * is busy, without memory growing when the consumer is the slower one.
 */
export async function* prefetch<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  const buffer: Promise<IteratorResult<T>>[] = [];
  let finished = false;
  const fill = () => {
    while (!finished && buffer.length < size) {
      const next = it.next();
      buffer.push(next);
      // Stop asking after the end or an error; the consumer sees both in order.
      next.then((r) => (finished ||= r.done === true), () => (finished = true));
    }
  };
  try {
    for (;;) {
      fill();
      const head = buffer.shift();
      if (!head) return;
      const r = await head;
      if (r.done) return;
      fill();
      yield r.value;
    }
  } finally {
    // Early exit (error or abort downstream): let the producer clean up.
    await it.return?.(undefined);
  }
}
