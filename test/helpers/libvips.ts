import assert from 'node:assert/strict';

/**
 * A skipped truncated JPEG's record keeps libvips' message in full as `detail` when it had several
 * lines (the reason then ends "(+N more line(s))"), and has no detail when it had one or none. Which
 * of these a run gets varies: sharp appends libvips' error buffer, which is process-wide, so
 * concurrent decodes add lines to it or clear it (CI has seen all three).
 */
export function assertLibvipsDetailKept(skipped: { reason: string; detail?: string }): void {
  if (/\(\+\d+ more line\(s\)\)$/.test(skipped.reason)) assert.match(skipped.detail ?? '', /\nVipsJpeg: /, 'the full message is kept in the record');
  else assert.equal(skipped.detail, undefined, `a one-line reason needs no detail: ${skipped.reason}`);
}
