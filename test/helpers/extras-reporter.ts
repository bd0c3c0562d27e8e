/**
 * A node:test reporter that writes one JSON line per test or suite skipped for a missing extra
 * (skip reason starting with SKIP_PREFIX, ./extras.ts), and one with the run's totals. test/run.ts
 * adds it beside the spec reporter and turns its output into the summary line `npm test` ends with.
 */
import { SKIP_PREFIX } from './extras.js';

interface TestEventData {
  name?: string;
  file?: string;
  skip?: string | boolean;
  counts?: Record<string, number>;
}

export default async function* extrasReporter(source: AsyncIterable<{ type: string; data: TestEventData }>): AsyncGenerator<string> {
  for await (const event of source) {
    const { type, data } = event;
    if ((type === 'test:pass' || type === 'test:fail') && typeof data.skip === 'string' && data.skip.startsWith(SKIP_PREFIX)) {
      yield JSON.stringify({ skipped: data.name, file: data.file, reason: data.skip }) + '\n';
    } else if (type === 'test:summary' && data.file === undefined) {
      yield JSON.stringify({ totals: data.counts }) + '\n';
    }
  }
}
