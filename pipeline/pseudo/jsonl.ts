/**
 * Gzip JSON lines: the on-store format of predictions and pseudo-labels. Chosen because pandas
 * (`read_json(lines=True, compression='gzip')`), DuckDB (`read_json_auto('x.jsonl.gz')`) and
 * pyarrow read it directly, while a Node writer needs nothing beyond zlib.
 */
import { createGunzip, gzipSync } from 'node:zlib';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

/** Encodes records as one gzip member of newline-terminated JSON objects. */
export function encodeJsonlGz(records: Iterable<unknown>): Buffer {
  const lines: string[] = [];
  for (const r of records) lines.push(JSON.stringify(r));
  return gzipSync(lines.length ? lines.join('\n') + '\n' : '');
}

/** Parsed lines of a gzip JSON-lines stream, with 1-based line numbers for error messages. */
export async function* decodeJsonlGz(source: Readable, where: string): AsyncGenerator<{ line: number; value: unknown }> {
  const gunzip = createGunzip();
  // Errors on the source (network) must reach the consumer, not kill the process.
  source.on('error', (err) => gunzip.destroy(err));
  const lines = createInterface({ input: source.pipe(gunzip), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const text of lines) {
      n++;
      if (!text.trim()) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new Error(`${where}: line ${n} is not valid JSON (${(err as Error).message})`);
      }
      yield { line: n, value };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new Error(`${where}: not a valid gzip stream (${(err as Error).message})`);
    }
    throw err;
  } finally {
    lines.close();
    release(source);
  }
}

/** Lets go of a source the consumer stopped reading early (error, or a consumer that broke off). */
function release(source: Readable): void {
  if (source.readableEnded || source.destroyed) return;
  source.unpipe();
  source.destroy();
}
