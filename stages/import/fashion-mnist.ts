/**
 * Where the `fashion-mnist:` import source finds the four official IDX files, in order:
 *  1. SELFTRAIN_FASHION_MNIST_DIR when set (the user said where they are: used as is, never
 *     downloaded into);
 *  2. Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist/;
 *  3. the download cache, <cache>/fashion-mnist/ (SELFTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/selftrain,
 *     else ~/.cache/selftrain), filled on first use from the official files' published URL — as
 *     torchvision's `FashionMNIST(download=True)` does — each file sha256-checked and resumable.
 *
 * File names, mirror and md5 are torchvision's (torchvision/datasets/mnist.py, class FashionMNIST:
 * `mirrors`, `resources`), the files of https://github.com/zalandoresearch/fashion-mnist. The sha256
 * pins the files' decompressed content: Debian recompressed the .gz files (their md5 differs from
 * the published one) but their content is the official one, so the content hash holds for both and
 * is what a download is checked against.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { downloadFile, DownloadError, VerifyError } from '../../pipeline/data/download.js';

export const FASHION_MNIST_DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

/** torchvision FashionMNIST.mirrors (the official files on Zalando's S3 website). */
export const FASHION_MNIST_MIRROR = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';

export interface FashionMnistFile {
  /** As published (and as torchvision names them). */
  name: string;
  /** md5 of the published .gz (torchvision FashionMNIST.resources). */
  md5: string;
  /** sha256 of the decompressed IDX content (= Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 content). */
  sha256: string;
}

export const FASHION_MNIST_FILES: readonly FashionMnistFile[] = [
  { name: 'train-images-idx3-ubyte.gz', md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', sha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888' },
  { name: 'train-labels-idx1-ubyte.gz', md5: '25c81989df183df01b3e8a0aad5dffbe', sha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9' },
  { name: 't10k-images-idx3-ubyte.gz', md5: 'bef4ecab320f06d8554ea6380940ec79', sha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b' },
  { name: 't10k-labels-idx1-ubyte.gz', md5: 'bb300cfdad3c16e7a12a480ee83cd310', sha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34' },
];

/** The per-user cache root: SELFTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/selftrain, else ~/.cache/selftrain. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SELFTRAIN_CACHE_DIR) return path.resolve(env.SELFTRAIN_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(homedir(), '.cache');
  return path.join(xdg, 'selftrain');
}

/** Whether `dir` holds all four files (gzip or not, under the names the IDX reader accepts). */
export function hasFashionMnist(dir: string): boolean {
  return FASHION_MNIST_FILES.every((f) => {
    const raw = f.name.replace(/\.gz$/, '');
    const dotted = raw.replace(/-(idx\d-ubyte)$/, '.$1');
    return [f.name, raw, `${dotted}.gz`, dotted].some((n) => existsSync(path.join(dir, n)));
  });
}

export interface FashionMnistPlaces {
  /** SELFTRAIN_FASHION_MNIST_DIR: when set, the only place looked at. */
  explicitDir?: string;
  systemDir: string;
  cacheDir: string;
  mirror: string;
}

export function defaultPlaces(env: NodeJS.ProcessEnv = process.env): FashionMnistPlaces {
  return {
    explicitDir: env.SELFTRAIN_FASHION_MNIST_DIR || undefined,
    systemDir: FASHION_MNIST_DEBIAN_DIR,
    cacheDir: path.join(cacheRoot(env), 'fashion-mnist'),
    mirror: env.SELFTRAIN_FASHION_MNIST_MIRROR || FASHION_MNIST_MIRROR,
  };
}

/** The directory that has the files now (no download), or undefined. */
export function locateFashionMnist(places: FashionMnistPlaces = defaultPlaces()): string | undefined {
  if (places.explicitDir) return hasFashionMnist(places.explicitDir) ? places.explicitDir : undefined;
  return [places.systemDir, places.cacheDir].find(hasFashionMnist);
}

/** Throws VerifyError unless the gzip file's decompressed content has the expected sha256. */
export async function verifyContent(file: string, expected: string): Promise<void> {
  const hash = createHash('sha256');
  try {
    await pipeline(createReadStream(file), createGunzip(), hash);
  } catch (err) {
    throw new VerifyError(`${path.basename(file)} is not a valid gzip file: ${(err as Error).message}`);
  }
  const got = hash.digest('hex');
  if (got !== expected) throw new VerifyError(`content sha256 ${got}, expected ${expected}`);
}

const officialFiles = () =>
  `the four official files (https://github.com/zalandoresearch/fashion-mnist, data/fashion/*.gz, also at ${FASHION_MNIST_MIRROR}: ` +
  `${FASHION_MNIST_FILES.map((f) => f.name).join(', ')})`;
const checkAndPoint = () =>
  `check each with \`gunzip -c <file>.gz | sha256sum\` against ${FASHION_MNIST_FILES.map((f) => `${f.name.replace(/\.gz$/, '')} ${f.sha256}`).join(', ')}, ` +
  `and set SELFTRAIN_FASHION_MNIST_DIR=<that directory> (or name it as idx:<dir>:train|test in the manifest)`;

/** What to do when Fashion-MNIST is not where `fashion-mnist:` looks. */
export function fashionMnistHowTo(dir: string): string {
  return `Fashion-MNIST is not in ${dir}. Get it with \`apt-get install dataset-fashion-mnist\` (Debian/Ubuntu), or download ${officialFiles()} into a directory, ${checkAndPoint()}`;
}

export interface EnsureOptions {
  places?: FashionMnistPlaces;
  /** Called once before a download starts (what, where from, where to). */
  onStart?(message: string): void;
  /** Bytes of `file` downloaded so far, of `total` when the server said. */
  onProgress?(file: string, bytes: number, total: number | undefined): void;
  signal?: AbortSignal;
  /** Passed to the downloader (tests shorten the wait between retries). */
  retryDelayMs?: number;
}

/**
 * The directory to import from: an existing one (see the file comment), else the cache after
 * downloading the missing files into it. Errors say exactly what to install or set.
 */
export async function ensureFashionMnist(o: EnsureOptions = {}): Promise<string> {
  const places = o.places ?? defaultPlaces();
  if (places.explicitDir) {
    // The user chose this directory: report its absence rather than download behind their back.
    if (!hasFashionMnist(places.explicitDir)) throw new Error(`SELFTRAIN_FASHION_MNIST_DIR=${places.explicitDir}: no Fashion-MNIST files there. ${fashionMnistHowTo(places.explicitDir)}`);
    return places.explicitDir;
  }
  const found = locateFashionMnist(places);
  if (found) return found;

  const dir = places.cacheDir;
  await fs.mkdir(dir, { recursive: true });
  const missing = FASHION_MNIST_FILES.filter((f) => !existsSync(path.join(dir, f.name)));
  o.onStart?.(`Fashion-MNIST is not installed (${places.systemDir}); downloading ${missing.length} official file(s) from ${places.mirror} into ${dir} (about 30 MB, sha256-checked, resumable)`);
  for (const f of missing) {
    try {
      await downloadFile({
        url: new URL(f.name, places.mirror).href,
        dest: path.join(dir, f.name),
        verify: (file) => verifyContent(file, f.sha256),
        onProgress: (bytes, total) => o.onProgress?.(f.name, bytes, total),
        signal: o.signal,
        retryDelayMs: o.retryDelayMs,
      });
    } catch (err) {
      if (!(err instanceof DownloadError)) throw err;
      const why = err.offline ? `no connection to ${new URL(places.mirror).host} could be made (offline?): ${err.message}` : err.message;
      throw new Error(
        `Fashion-MNIST is not installed and the download of ${f.name} failed: ${why}. ` +
          `Install Debian's package (\`apt-get install dataset-fashion-mnist\`), or download ${officialFiles()} on a machine with network, ${checkAndPoint()}. ` +
          `Run again to resume the download (partial files stay in ${dir}).`,
        { cause: err },
      );
    }
  }
  return dir;
}
