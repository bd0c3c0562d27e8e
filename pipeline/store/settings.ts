/**
 * How to reach a run's object stores: the manifest's `s3` section (or `status`' flags). Passed
 * explicitly to every store opened for the run (the run prefix, datasets, the teacher's model,
 * import sources) and, as command-line flags, to worker processes; never written into
 * process.env, where it would leak into every later store of the process.
 *
 * Unset fields fall back to the standard AWS environment (AWS_ENDPOINT_URL, AWS_REGION, ...).
 */
export interface StoreSettings {
  /** S3 endpoint of an S3-compatible service. */
  endpoint?: string;
  region?: string;
}

/** The settings as `selftrain` flags (`--endpoint <url> --region <r>`), for a child process. */
export function storeSettingsArgs(s: StoreSettings): string[] {
  return [...(s.endpoint ? ['--endpoint', s.endpoint] : []), ...(s.region ? ['--region', s.region] : [])];
}
