/**
 * From a manifest (and an optional --store override) to the stores a run uses: the store root and
 * the run prefix `<root>/<manifest name>/`. The store module is imported lazily so that
 * `validate` never pays for the S3 SDK.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Manifest } from '../manifest/schema.js';
import { storeUriProblem } from '../manifest/uri.js';
import type { StoreSettings } from '../store/settings.js';
import type { ObjectStore } from '../store/types.js';
import type { Logger } from './stage.js';

/** A --store value names a bad URI: reported like a manifest problem (exit 2). */
export class StoreOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreOptionError';
  }
}

/** `--store` accepts a store URI or, for convenience, a plain directory path. */
export function resolveStoreOption(value: string, flag = '--store'): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return pathToFileURL(path.resolve(value)).href;
  const problem = storeUriProblem(value);
  if (problem) throw new StoreOptionError(`${flag}: ${problem}`);
  return value;
}

export interface OpenedRun {
  rootUri: string;
  root: ObjectStore;
  run: ObjectStore;
  /** The manifest's store settings: every other store of the run (and its workers) gets them. */
  storeSettings: StoreSettings;
}

/** The manifest's `s3` section as store settings (unset fields: the standard AWS environment). */
export function storeSettingsOf(manifest: Pick<Manifest, 's3'> | undefined): StoreSettings {
  return { ...(manifest?.s3?.endpoint ? { endpoint: manifest.s3.endpoint } : {}), ...(manifest?.s3?.region ? { region: manifest.s3.region } : {}) };
}

export async function openStoreUri(uri: string, manifest: Pick<Manifest, 's3'> | undefined, log?: Logger): Promise<ObjectStore> {
  const { openStore } = await import('../store/open.js');
  return openStore(uri, { ...storeSettingsOf(manifest), warn: log ? (msg: string) => log.warn(msg) : undefined });
}

export async function openRun(manifest: Manifest, storeOverride: string | undefined, log?: Logger): Promise<OpenedRun> {
  const rootUri = storeOverride ? resolveStoreOption(storeOverride) : manifest.store;
  const root = await openStoreUri(rootUri, manifest, log);
  return { rootUri, root, run: root.sub(manifest.name), storeSettings: storeSettingsOf(manifest) };
}
