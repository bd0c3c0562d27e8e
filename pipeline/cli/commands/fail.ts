/**
 * How a command reports a failure: one line on stderr (never a stack trace) and the exit code
 * 2 for bad input (a manifest problem, a bad --store/run URI) or 1 for anything else.
 */
export async function reportCommandError(err: unknown): Promise<void> {
  const { ManifestError } = await import('../../manifest/load.js');
  const { StoreOptionError } = await import('../../runner/open-run.js');
  const { describeError } = await import('../../log/errors.js');
  if (err instanceof ManifestError || err instanceof StoreOptionError) {
    process.stderr.write(err.message + '\n');
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`error: ${describeError(err)}\n`);
  process.exitCode = 1;
}
