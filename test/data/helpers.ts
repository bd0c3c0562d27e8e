/** Shared bits for the datasets tests: temp dirs. (Fashion-MNIST: test/helpers/fashion-mnist.ts.) */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** A temp dir removed when the test (or suite) ends. */
export function tempDir(t: { after(fn: () => void): void }, name = 'selftrain-data-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), name));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
