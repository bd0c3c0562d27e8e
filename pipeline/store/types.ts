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
}

export type Body = Uint8Array | string | Readable;

export interface PutOptions {
  contentType?: string;
}

export interface ObjectStore {
  /** The store's root as a URI (`file:///abs/dir` or `s3://bucket/prefix`). */
  readonly uri: string;
  /** Whole object. Throws NotFoundError when the key does not exist. */
  get(key: string): Promise<Buffer>;
  /** Streaming read of the whole object. */
  getStream(key: string): Promise<Readable>;
  /** Bytes [start, end) of the object. */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  /** Atomic write: readers see the old object or the whole new one, never a part. */
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
