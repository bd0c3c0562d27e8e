/**
 * Store URIs in messages and references: one way to drop trailing slashes and to name one object
 * of a store (`<store uri>/<key>`), so errors point at the same spelling everywhere.
 */

/** The URI without trailing slashes: `s3://b/p/` → `s3://b/p`. */
export function trimUri(uri: string): string {
  return uri.replace(/\/+$/, '');
}

/** The URI of one object of a store: `<store uri>/<key>`. */
export function objectUri(store: { readonly uri: string }, key: string): string {
  return `${trimUri(store.uri)}/${key}`;
}
