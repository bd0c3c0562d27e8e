/**
 * Whether the calling thread stays free while a model runs elsewhere: counts this thread's
 * event-loop turns during `passes` forward passes and fails when there were no more than 20 per
 * pass. A forward pass computed on this thread blocks it for the whole pass, leaving one or two
 * turns per pass; on a thread of its own the loop turns freely meanwhile.
 */
import assert from 'node:assert/strict';

export async function assertThreadStaysFree(passes: number, forward: () => Promise<unknown>): Promise<void> {
  let turns = 0;
  let running = true;
  const spin = () => {
    turns++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  const t0 = performance.now();
  try {
    for (let i = 0; i < passes; i++) await forward();
  } finally {
    running = false;
  }
  const ms = performance.now() - t0;
  assert.ok(turns > 20 * passes, `${turns} event-loop turns during ${passes} forward passes (${ms.toFixed(0)} ms): the caller's thread was blocked`);
}
