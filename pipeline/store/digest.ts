/**
 * Digests for verified reads (see ObjectStore): the sha256 and size `put` records, and the checks
 * `get`/`getStream` make against them, shared by the file:// and S3 stores.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { IntegrityError, type Digest } from './types.js';

export function digestOf(bytes: Uint8Array): Digest {
  return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength };
}

/** The IntegrityError for `bytes` read from `uri`, or undefined when they match `expected`. */
export function digestMismatch(uri: string, expected: Digest, bytes: Uint8Array): IntegrityError | undefined {
  if (bytes.byteLength === expected.size) {
    const actual = digestOf(bytes);
    return actual.sha256 === expected.sha256 ? undefined : new IntegrityError(uri, expected, actual);
  }
  return new IntegrityError(uri, expected, digestOf(bytes));
}

/** A digest as stored in metadata or a digest file, or undefined when it is not one. */
export function parseDigest(value: unknown): Digest | undefined {
  const d = value as Partial<Digest> | undefined;
  if (typeof d?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(d.sha256)) return undefined;
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) return undefined;
  return { sha256: d.sha256, size: d.size };
}

/** Incremental sha256 + byte count. */
export class Hasher {
  private readonly hash = createHash('sha256');
  size = 0;

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.byteLength;
  }

  digest(): Digest {
    return { sha256: this.hash.digest('hex'), size: this.size };
  }
}

/**
 * Passes `source` through, hashing it; when it ends, fails with IntegrityError if the bytes were
 * not `expected`. Errors of the source are forwarded. A consumer that stops early is not checked.
 */
export function verifyingStream(source: Readable, expected: Digest, uri: string): Readable {
  const hasher = new Hasher();
  const check = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      hasher.update(chunk);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      const actual = hasher.digest();
      done(actual.sha256 === expected.sha256 && actual.size === expected.size ? null : new IntegrityError(uri, expected, actual));
    },
  });
  source.on('error', (err) => check.destroy(err));
  check.on('close', () => {
    if (!source.destroyed) source.destroy();
  });
  return source.pipe(check);
}
