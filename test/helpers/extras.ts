/**
 * External references some tests compare against or run on: things npm does not install (Debian
 * packages on the CI image). A fresh clone without them must still pass `npm test`: tests that need a
 * missing one skip with a reason in a fixed form, and `npm test` (test/run.ts) ends with one line
 * naming what was skipped and how to install it. Under CI=true a missing extra fails instead.
 *
 * Detection is real: each probe looks where the code under test (or the reference script) would
 * look, so pointing that place at nothing hides the extra for the tests and the product alike:
 *  - fashion-mnist: where the `fashion-mnist:` import finds the files (stages/import/fashion-mnist.ts:
 *    SELFTRAIN_FASHION_MNIST_DIR, else Debian's package, else the download cache). Tests never
 *    download: `npm start` once (or the Debian package) provides the files.
 *  - swift: SELFTRAIN_TEST_S3_ENDPOINT, else the Swift binaries infra/local-s3/start.sh runs
 *    (in SELFTRAIN_SWIFT_BIN_DIR, default /usr/bin).
 *  - slurm: SELFTRAIN_TEST_SLURM_CONF, else the Slurm and munge daemons infra/slurm/start.sh runs,
 *    and root (it starts slurmd, which runs jobs as their users).
 *  - onnxruntime-node: resolvable as pipeline/inference/onnxruntime.ts resolves it.
 *  - torch, pillow, pandas, onnx: importable by the Python the reference scripts run with
 *    (SELFTRAIN_TEST_PYTHON, default /usr/bin/python3 — Debian's, not a pyenv shim first on PATH).
 *
 *   test('x', { skip: needs('torch') }, async () => { … });
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { locateFashionMnist } from '../../stages/import/fashion-mnist.js';

export type Extra = 'fashion-mnist' | 'swift' | 'slurm' | 'torch' | 'pillow' | 'pandas' | 'onnx' | 'onnxruntime-node';

export const EXTRAS: Record<Extra, { what: string; install: string }> = {
  'fashion-mnist': {
    what: 'the Fashion-MNIST files',
    install: '`apt-get install dataset-fashion-mnist`, or run `npm start` once (it downloads them into ~/.cache/selftrain)',
  },
  swift: {
    what: 'OpenStack Swift for the local S3 server',
    install: '`apt-get install --no-install-recommends swift swift-proxy swift-account swift-container swift-object memcached`, or set SELFTRAIN_TEST_S3_ENDPOINT',
  },
  slurm: {
    what: 'Slurm and munge for a local one-node cluster (as root)',
    install: '`apt-get install --no-install-recommends slurm-wlm slurmctld slurmd munge` and run as root, or set SELFTRAIN_TEST_SLURM_CONF',
  },
  torch: { what: 'PyTorch (the reference ResNet-RS)', install: '`apt-get install python3-torch`' },
  pillow: { what: 'Pillow (the reference RandAugment ops)', install: '`apt-get install python3-pil`' },
  pandas: { what: 'pandas (reads the pseudo-label files)', install: '`apt-get install python3-pandas`' },
  onnx: { what: 'the onnx Python package (the reference ONNX checker)', install: '`apt-get install python3-onnx`' },
  'onnxruntime-node': {
    what: 'onnxruntime-node (the optional dependency behind the ONNX Runtime engine)',
    install: '`npm ci` (it installs on Linux, macOS and Windows; see README, ONNX Runtime)',
  },
};

/** Every skip for a missing extra starts with this; test/run.ts counts them by it. */
export const SKIP_PREFIX = 'missing extra ';

/** The reason a test skips for: `missing extra torch: PyTorch (…); install: apt-get install python3-torch`. */
export function skipReason(extra: Extra): string {
  return `${SKIP_PREFIX}${extra}: ${EXTRAS[extra].what}; install: ${EXTRAS[extra].install}`;
}

/** The Python the reference scripts run with. */
export function testPython(): string {
  return process.env.SELFTRAIN_TEST_PYTHON || '/usr/bin/python3';
}

export const SWIFT_BINARIES = ['swift-proxy-server', 'swift-account-server', 'swift-container-server', 'swift-object-server', 'swift-ring-builder'];

export const SLURM_BINARIES = ['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/munged', '/usr/bin/sbatch'];

/** Where infra/local-s3/start.sh runs the Swift servers from. */
export function swiftBinDir(): string {
  return process.env.SELFTRAIN_SWIFT_BIN_DIR || '/usr/bin';
}

const PY_MODULE: Partial<Record<Extra, string>> = { torch: 'torch', pillow: 'PIL', pandas: 'pandas', onnx: 'onnx' };

const present = new Map<Extra, boolean>();

function probe(extra: Extra): boolean {
  switch (extra) {
    case 'fashion-mnist':
      return locateFashionMnist() !== undefined;
    case 'swift':
      return !!process.env.SELFTRAIN_TEST_S3_ENDPOINT || SWIFT_BINARIES.every((b) => existsSync(path.join(swiftBinDir(), b)));
    case 'slurm':
      return !!process.env.SELFTRAIN_TEST_SLURM_CONF || (SLURM_BINARIES.every((b) => existsSync(b)) && process.getuid?.() === 0);
    case 'onnxruntime-node':
      // Resolved as pipeline/inference/onnxruntime.ts resolves it (module hooks apply).
      try {
        import.meta.resolve('onnxruntime-node');
        return true;
      } catch {
        return false;
      }
    default:
      return spawnSync(testPython(), ['-c', `import ${PY_MODULE[extra]}`], { stdio: 'ignore', timeout: 60_000 }).status === 0;
  }
}

/** Whether the extra is there (probed once per process). */
export function hasExtra(extra: Extra): boolean {
  let p = present.get(extra);
  if (p === undefined) {
    p = probe(extra);
    present.set(extra, p);
  }
  return p;
}

/** Thrown under CI=true for a missing extra: CI must run every test. */
export class MissingExtraError extends Error {
  override name = 'MissingExtraError';
}

/**
 * For a test's `skip` option: false when every extra is present, else the skip reason of the first
 * missing one. Under CI=true a missing extra throws instead (the test file fails, naming it).
 */
export function needs(...extras: Extra[]): false | string {
  const missing = extras.find((e) => !hasExtra(e));
  if (!missing) return false;
  if (process.env.CI === 'true') throw new MissingExtraError(`CI=true but ${EXTRAS[missing].what} is missing (${missing}): install with ${EXTRAS[missing].install}`);
  return skipReason(missing);
}
