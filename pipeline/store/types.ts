/**
 * The object-store contract shared by every stage. Two implementations: `file://` (a local
 * directory, the embedded default) and `s3://` (any S3-compatible service). Keys are
 * '/'-separated relative paths below the store's root; they never start with '/'.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  /** Last modification time (ms since epoch). */
  mtimeMs: number;
  etag?: string;
  /**
   * sha256 (hex) of the bytes, recorded by `put` when the object was written (`head` reports it;
   * listings may not). Undefined for objects written by other tools.
   */
  sha256?: string;
}

export type Body = Uint8Array | string | Readable;

export interface PutOptions {
  contentType?: string;
}

export interface GetOptions {
  /**
   * false: return the bytes even when they do not match the digest recorded at put. For callers
   * that check them against a record of their own (dataset.json) and report every problem in them.
   */
  verify?: boolean;
}

/**
 * Verified reads: `put` records the sha256 and size of what it wrote (beside the object on
 * file://, in the object's metadata on S3), and `get`/`getStream` check the bytes they return
 * against that record. An object corrupted at rest, or cut short in transit after the retries,
 * fails with IntegrityError naming the object, the expected and the actual hash; `getStream`
 * reports it when the stream ends. Objects written by other tools carry no record and are
 * returned as they are. Ranged reads are checked for length only.
 */
export interface ObjectStore {
  /** The store's root as a URI (`file:///abs/dir` or `s3://bucket/prefix`). */
  readonly uri: string;
  /** Whole object, verified. Throws NotFoundError when the key does not exist. */
  get(key: string, opts?: GetOptions): Promise<Buffer>;
  /** Streaming read of the whole object, verified when the stream ends. */
  getStream(key: string): Promise<Readable>;
  /** Bytes [start, end) of the object. */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  /** Atomic write: readers see the old object or the whole new one, never a part. Records its sha256. */
  put(key: string, body: Body, opts?: PutOptions): Promise<void>;
  /** Conditional create: true when created, false when the key already existed. */
  putIfAbsent(key: string, body: Uint8Array | string, opts?: PutOptions): Promise<boolean>;
  /** Metadata or undefined when missing. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix (complete, all pages), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /**
   * The same objects one listing page at a time (S3: one ListObjectsV2 call each), for listings too
   * big to hold whole. Optional: `listInPages` falls back to one page holding `list()`.
   */
  listPages?(prefix: string): AsyncIterable<ObjectInfo[]>;
  /** Deletes a key; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Deletes every key under prefix. */
  deletePrefix(prefix: string): Promise<void>;
  /** A store rooted at `<this root>/<prefix>`. */
  sub(prefix: string): ObjectStore;
  /** Releases sockets and other resources. */
  close(): Promise<void>;
}

/** Pages of `store.listPages(prefix)`, or `store.list(prefix)` as one page for stores without it. */
export async function* listInPages(store: ObjectStore, prefix: string): AsyncGenerator<ObjectInfo[]> {
  if (store.listPages) {
    yield* store.listPages(prefix);
    return;
  }
  yield await store.list(prefix);
}

/** Error classes that stages and the CLI can tell apart without parsing messages. */
export class StoreError extends Error {
  constructor(message: string, readonly uri: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}
export class NotFoundError extends StoreError {
  constructor(uri: string) {
    super(`not found: ${uri}`, uri);
    this.name = 'NotFoundError';
  }
}
/** A key, prefix or store URI that the store refuses (path traversal, bad characters, bad scheme). */
export class InvalidKeyError extends StoreError {
  constructor(message: string, uri: string) {
    super(message, uri);
    this.name = 'InvalidKeyError';
  }
}
/** The endpoint could not be reached (connection refused, DNS failure, timeouts after retries). */
export class StoreUnreachableError extends StoreError {
  constructor(message: string, uri: string, options?: { cause?: unknown }) {
    super(message, uri, options);
    this.name = 'StoreUnreachableError';
  }
}
/** The service refused our credentials or denied access. */
export class StoreAccessError extends StoreError {
  constructor(message: string, uri: string, options?: { cause?: unknown }) {
    super(message, uri, options);
    this.name = 'StoreAccessError';
  }
}
/** The bucket named in an s3:// URI does not exist. */
export class BucketNotFoundError extends StoreError {
  constructor(message: string, uri: string, options?: { cause?: unknown }) {
    super(message, uri, options);
    this.name = 'BucketNotFoundError';
  }
}

/** The recorded digest of an object: what `put` wrote. */
export interface Digest {
  sha256: string;
  size: number;
}

/**
 * An object whose bytes are not the ones recorded when it was written: corrupted at rest, truncated,
 * or replaced behind the store's back. Names the object, the expected and the actual digest.
 * Callers that can redo the unit the object belongs to do so; the others stop with this message.
 */
export class IntegrityError extends StoreError {
  constructor(
    uri: string,
    readonly expected: Digest,
    readonly actual: Digest,
    detail?: string,
  ) {
    super(
      `${uri} is corrupted${actual.size < expected.size ? ' (truncated)' : ''}: expected sha256 ${expected.sha256} (${expected.size} bytes), ` +
        `got sha256 ${actual.sha256} (${actual.size} bytes)${detail ? `; ${detail}` : ''}`,
      uri,
    );
    this.name = 'IntegrityError';
  }
}

/**
 * Whether `err`, or an error it wraps (`cause`), is a NotFoundError: the one error that means
 * "absent". Access denied, an unreachable endpoint or a corrupted object are failures, never
 * "absent".
 */
export function isNotFoundError(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof NotFoundError) return true;
  }
  return false;
}

/** The value `read` resolves to, or undefined when what it reads is absent (NotFoundError); any other error is thrown. */
export async function ifPresent<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isNotFoundError(err)) return undefined;
    throw err;
  }
}

/** The IntegrityError in an error's cause chain, if any (stages wrap store errors in their own). */
export function integrityErrorIn(err: unknown): IntegrityError | undefined {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof IntegrityError) return e;
  }
  return undefined;
}

/** Whether an error (or its cause) means "disk full" (ENOSPC) or "quota exceeded" (EDQUOT). */
export function isNoSpace(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}
