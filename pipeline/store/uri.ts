/**
 * Store URIs in messages and references: one way to drop trailing slashes and to name one object
 * of a store (`<store uri>/<key>`), so errors point at the same spelling everywhere.
 */

/** The URI without trailing slashes: `s3://b/p/` → `s3://b/p`; a filesystem root `file:///` → `file://`. */
export function trimUri(uri: string): string {
  const trimmed = uri.replace(/\/+$/, '');
  // Only the scheme left (the root of a file:// store): keep its "//", so `<it>/<key>` stays a URI.
  return /^[a-z][a-z0-9+.-]*:$/i.test(trimmed) ? `${trimmed}//` : trimmed;
}

/** The URI of one object of a store: `<store uri>/<key>`. */
export function objectUri(store: { readonly uri: string }, key: string): string {
  return `${trimUri(store.uri)}/${key}`;
}
