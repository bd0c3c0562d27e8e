/**
 * Dataset refs as the import stage's list writes them (pipeline/contracts/import.ts): a store URI
 * (`s3://…`, `file://…`), or a prefix relative to the store root. Stages open them here, so a ref
 * means the same thing to every reader.
 */
import { openStore } from '../store/open.js';
import type { ObjectStore } from '../store/types.js';
import { objectUri } from '../store/uri.js';
import type { StoreSettings } from '../store/settings.js';

export const isUriRef = (ref: string) => ref.includes('://');

/** The ref as a URI: itself when it is one, else `<root uri>/<ref>`. */
export function refUri(root: ObjectStore, ref: string): string {
  return isUriRef(ref) ? ref : objectUri(root, ref.replace(/^\/+/, ''));
}

export interface OpenedRef {
  store: ObjectStore;
  /** Closes the store when it was opened for this ref (a URI); a sub-store of the root stays open. */
  close(): Promise<void>;
}

/** A store rooted at the ref's prefix (a URI is opened with the run's store settings). */
export function openRef(root: ObjectStore, ref: string, settings: StoreSettings): OpenedRef {
  if (!isUriRef(ref)) return { store: root.sub(ref), close: async () => {} };
  const store = openStore(ref, settings);
  return { store, close: () => store.close() };
}

/** The object a ref names (e.g. held-back labels): the store of its parent prefix, and its key there. */
export function openObjectRef(root: ObjectStore, ref: string, settings: StoreSettings): OpenedRef & { key: string; uri: string } {
  const slash = ref.lastIndexOf('/');
  const parent = slash > 0 ? ref.slice(0, slash) : '';
  const key = ref.slice(slash + 1);
  if (isUriRef(ref)) {
    const store = openStore(parent, settings);
    return { store, key, uri: ref, close: () => store.close() };
  }
  return { store: parent ? root.sub(parent) : root, key, uri: refUri(root, ref), close: async () => {} };
}
