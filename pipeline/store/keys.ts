/**
 * Key and prefix rules shared by every store, so a key that works on file:// also works on s3://
 * and no key can escape the store's root (no `..`, no absolute paths, no backslashes, no NUL).
 */
import { InvalidKeyError } from './types.js';

/** Name fragment of FileStore's in-flight temp files; keys may not use it, listings skip it. */
export const TEMP_MARKER = '.selftrain-tmp-';
/** Name prefix of FileStore's digest files (`<dir>/.selftrain-sha256-<name>` beside `<dir>/<name>`). */
export const DIGEST_MARKER = '.selftrain-sha256-';

function problem(s: string, what: 'key' | 'prefix'): string | undefined {
  if (s.includes('\0')) return 'contains a NUL byte';
  if (s.includes('\\')) return 'contains a backslash (use "/" as separator)';
  if (s.startsWith('/')) return 'is absolute (starts with "/")';
  if (/^[A-Za-z]:/.test(s)) return 'looks like a drive path';
  const segments = s.split('/');
  // A prefix may end with "/" (empty last segment) and may be empty; a key may not.
  const inner = what === 'prefix' ? segments.slice(0, -1) : segments;
  if (what === 'key' && s === '') return 'is empty';
  if (what === 'key' && s.endsWith('/')) return 'ends with "/"';
  for (const seg of segments) {
    if (seg === '..' || seg === '.') return `has a "${seg}" segment`;
    if (seg.includes(TEMP_MARKER)) return `uses the reserved name fragment "${TEMP_MARKER}"`;
    if (seg.startsWith(DIGEST_MARKER)) return `starts with the reserved name "${DIGEST_MARKER}"`;
  }
  if (inner.some((seg) => seg === '')) return 'has an empty segment ("//")';
  return undefined;
}

/** Throws InvalidKeyError naming the key and the store when the key is not a safe relative key. */
export function checkKey(key: string, storeUri: string): void {
  const p = typeof key === 'string' ? problem(key, 'key') : 'is not a string';
  if (p) throw new InvalidKeyError(`invalid key ${JSON.stringify(key)} in ${storeUri}: ${p}`, storeUri);
}

/** Like checkKey, but "" and a trailing "/" are allowed (list/deletePrefix/sub prefixes). */
export function checkPrefix(prefix: string, storeUri: string): void {
  const p = typeof prefix === 'string' ? problem(prefix, 'prefix') : 'is not a string';
  if (p) throw new InvalidKeyError(`invalid prefix ${JSON.stringify(prefix)} in ${storeUri}: ${p}`, storeUri);
}

/** Byte-wise (UTF-8) key order, the order S3 lists in. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Joins a root prefix and a sub path, with exactly one "/" between non-empty parts. */
export function joinPrefix(root: string, sub: string): string {
  const a = root.replace(/\/+$/, '');
  const b = sub.replace(/^\/+|\/+$/g, '');
  if (!a) return b;
  if (!b) return a;
  return `${a}/${b}`;
}
