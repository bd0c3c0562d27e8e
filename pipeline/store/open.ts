/**
 * Turns a store URI into an ObjectStore: `file://./rel` (relative to cwd), `file:///abs`, a plain
 * path (treated as file), or `s3://bucket/prefix`. Bad URIs fail with a message naming the URI.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from './file-store.js';
import { checkPrefix } from './keys.js';
import { S3Store, type S3StoreOptions } from './s3-store.js';
import { InvalidKeyError, type ObjectStore } from './types.js';

export type StoreLocation =
  | { kind: 'file'; path: string }
  | { kind: 's3'; bucket: string; prefix: string };

function bad(uri: string, why: string): never {
  throw new InvalidKeyError(`invalid store URI ${JSON.stringify(uri)}: ${why}`, uri);
}

// S3 bucket naming rules (lowercase, digits, dots, hyphens; 3-63 chars). Underscores are
// tolerated because some S3-compatible services (Swift) accept them.
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

export function parseStoreUri(uri: string, cwd: string = process.cwd()): StoreLocation {
  if (typeof uri !== 'string' || uri.trim() === '') bad(String(uri), 'empty');
  if (uri.includes('\0')) bad(uri, 'contains a NUL byte');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined || /^[A-Za-z]:[\\/]/.test(uri)) {
    return { kind: 'file', path: path.resolve(cwd, uri) };
  }
  if (scheme === 'file') {
    if (!uri.startsWith('file://')) bad(uri, 'expected file://<dir> (file://./relative or file:///absolute)');
    const rest = uri.slice('file://'.length);
    if (rest === '') bad(uri, 'no path after file://');
    if (rest === '.' || rest === '..' || rest.startsWith('./') || rest.startsWith('../')) {
      return { kind: 'file', path: path.resolve(cwd, decodeURIComponent(rest)) };
    }
    try {
      return { kind: 'file', path: fileURLToPath(uri) };
    } catch (err) {
      bad(uri, `${(err as Error).message} (use file://./relative or file:///absolute)`);
    }
  }
  if (scheme === 's3') {
    const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(uri);
    if (!m) bad(uri, 'expected s3://<bucket>/<prefix>');
    const bucket = m[1]!;
    if (!bucket) bad(uri, 'no bucket name after s3://');
    if (!BUCKET_RE.test(bucket)) bad(uri, `bucket "${bucket}" is not a valid bucket name (3-63 of a-z 0-9 . - _)`);
    const prefix = (m[2] ?? '').replace(/\/+$/, '');
    try {
      checkPrefix(prefix ? `${prefix}/` : '', uri);
    } catch (err) {
      bad(uri, `prefix ${(err as Error).message.replace(/^.*: /, '')}`);
    }
    return { kind: 's3', bucket, prefix };
  }
  bad(uri, `unsupported scheme "${scheme}:" (use file://<dir> or s3://<bucket>/<prefix>)`);
}

export interface OpenStoreOptions extends Omit<S3StoreOptions, 'bucket' | 'prefix'> {}

export function openStore(uri: string, opts: OpenStoreOptions = {}): ObjectStore {
  const loc = parseStoreUri(uri);
  if (loc.kind === 'file') return new FileStore(loc.path);
  return new S3Store({ ...opts, bucket: loc.bucket, prefix: loc.prefix });
}
