/**
 * Form checks for store URIs in manifests and on the command line. Only the *form* is checked
 * here (no I/O), so `validate` and `plan` stay instant and work offline; whether the bucket or
 * directory exists is the store's business when it is opened.
 *
 * Accepted: `file://<dir>` (relative to the current directory, e.g. `file://./runs`, or absolute
 * `file:///abs/dir`) and `s3://<bucket>[/<prefix>]` with an S3-valid bucket name.
 */
import { z } from 'zod';

// S3's bucket naming rules (3-63 chars, lowercase letters, digits, dots, hyphens, alphanumeric at
// both ends). Stricter than some S3-compatible services, but a name that passes works everywhere.
const bucketPattern = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

/** Returns undefined when `uri` is a well-formed store URI, else what is wrong with it. */
export function storeUriProblem(uri: string): string | undefined {
  const expected = 'expected "file://<dir>" or "s3://<bucket>/<prefix>"';
  const found = `found ${JSON.stringify(uri)}`;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
  if (!scheme) return `${expected}, ${found} (no scheme)`;
  const rest = uri.slice(scheme.length + 3);
  if (/[?#]/.test(rest)) return `${expected}, ${found} (query strings and fragments are not allowed)`;
  if (scheme === 'file') {
    if (rest === '') return `${expected}, ${found} (empty path)`;
    if (rest.includes('\0')) return `${expected}, ${found} (NUL in path)`;
    return undefined;
  }
  if (scheme === 's3') {
    const [bucket = '', ...prefixParts] = rest.split('/');
    if (bucket === '') return `${expected}, ${found} (missing bucket name)`;
    if (!bucketPattern.test(bucket) || bucket.includes('..')) {
      return `${expected}, ${found} (bucket "${bucket}" is not a valid bucket name: 3-63 lowercase letters, digits, ".", "-" or "_")`;
    }
    const prefix = prefixParts.join('/');
    const segments = prefix.split('/').filter((s, i, all) => !(s === '' && i === all.length - 1));
    if (prefix !== '' && segments.some((s) => s === '' || s === '.' || s === '..')) {
      return `${expected}, ${found} (prefix "${prefix}" has an empty, "." or ".." segment)`;
    }
    return undefined;
  }
  return `${expected}, ${found} (unsupported scheme "${scheme}")`;
}

/** A zod string that must be a store URI; the error message names what was found. */
export const storeUri = z.string().superRefine((uri, ctx) => {
  const problem = storeUriProblem(uri);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, input: uri });
});
