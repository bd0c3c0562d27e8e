/**
 * `fashion-mnist:` without Debian's package: the official files are downloaded into the cache,
 * sha256-checked and resumable. A local HTTP server serves the real files (from wherever the tests
 * find Fashion-MNIST: Debian's package or the cache) with Range support, and produces the faults a
 * real server produces on demand: a connection cut mid-body, a corrupted body, nobody listening.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { downloadFile, VerifyError } from '../../pipeline/data/download.js';
import { openIdxSource } from '../../stages/import/idx-source.js';
import { cacheRoot, ensureFashionMnist, FASHION_MNIST_FILES, locateFashionMnist, verifyContent, type FashionMnistPlaces } from '../../stages/import/fashion-mnist.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistDir } from '../helpers/fashion-mnist.js';

const NEEDS = needs('fashion-mnist');

interface Request {
  file: string;
  range?: string;
  /** Body bytes actually sent. */
  sent: number;
}

interface Faults {
  /** Per file: cut the connection after this many body bytes, on the first request for it. */
  cutAfter?: Record<string, number>;
  /** Per file: how many requests get a body with one byte flipped. */
  corrupt?: Record<string, number>;
}

/** Serves `dir`'s files with Range support and the given faults; records every request. */
async function fileServer(dir: string, faults: Faults = {}): Promise<{ url: string; requests: Request[]; close(): Promise<void> }> {
  const requests: Request[] = [];
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const file = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
    const p = path.join(dir, file);
    if (!file || file.includes('/') || !existsSync(p)) {
      res.writeHead(404).end('not found');
      return;
    }
    const n = (seen.get(file) ?? 0) + 1;
    seen.set(file, n);
    let body = readFileSync(p);
    const full = body.length;
    if ((faults.corrupt?.[file] ?? 0) >= n) {
      body = Buffer.from(body);
      body[Math.floor(body.length / 2)]! ^= 0xff;
    }
    const rec: Request = { file, range: req.headers.range, sent: 0 };
    requests.push(rec);
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    let start = 0;
    if (m) {
      start = Number(m[1]);
      if (start >= full) {
        res.writeHead(416, { 'Content-Range': `bytes */${full}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Length': full - start, 'Content-Range': `bytes ${start}-${full - 1}/${full}`, 'Accept-Ranges': 'bytes' });
    } else {
      res.writeHead(200, { 'Content-Length': full, 'Accept-Ranges': 'bytes' });
    }
    const cut = n === 1 ? faults.cutAfter?.[file] : undefined;
    if (cut !== undefined) {
      // The fault a real server or proxy produces when it dies mid-transfer: part of the body, then a reset.
      res.write(body.subarray(start, start + cut), () => {
        rec.sent = cut;
        res.socket?.destroy();
      });
      return;
    }
    rec.sent = full - start;
    res.end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function work(t: { after(fn: () => void): void }): { root: string; places: (mirror: string) => FashionMnistPlaces } {
  const root = mkdtempSync(path.join(tmpdir(), 'selftrain-download-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(path.join(root, 'no-debian-package'));
  return { root, places: (mirror) => ({ systemDir: path.join(root, 'no-debian-package'), cacheDir: path.join(root, 'cache', 'fashion-mnist'), mirror }) };
}

const contentSha = (file: string) => createHash('sha256').update(gunzipSync(readFileSync(file))).digest('hex');

test('the pinned sha256 are those of the files the tests have (Debian package content)', { skip: NEEDS }, async () => {
  for (const f of FASHION_MNIST_FILES) {
    const file = path.join(fashionMnistDir(), f.name);
    assert.equal(contentSha(file), f.sha256, f.name);
    await verifyContent(file, f.sha256);
  }
});

test('no Debian package: the four files are downloaded into the cache, checked, and import', { skip: NEEDS }, async (t) => {
  const { places } = work(t);
  const server = await fileServer(fashionMnistDir());
  t.after(() => server.close());
  const p = places(server.url);
  assert.equal(locateFashionMnist(p), undefined, 'nothing there yet');
  const progress = new Map<string, [number, number | undefined]>();
  const starts: string[] = [];
  const dir = await ensureFashionMnist({ places: p, onStart: (m) => starts.push(m), onProgress: (file, bytes, total) => progress.set(file, [bytes, total]) });
  assert.equal(dir, p.cacheDir);
  assert.equal(starts.length, 1);
  assert.match(starts[0]!, /downloading 4 official file\(s\) from http:\/\/127\.0\.0\.1:\d+\/ into .*cache\/fashion-mnist .*sha256-checked, resumable/);
  assert.deepEqual(readdirSync(dir).sort(), FASHION_MNIST_FILES.map((f) => f.name).sort(), 'only the verified files, no .part left');
  for (const f of FASHION_MNIST_FILES) {
    assert.equal(contentSha(path.join(dir, f.name)), f.sha256);
    const [bytes, total] = progress.get(f.name)!;
    assert.equal(bytes, total, `${f.name}: progress reached the size the server gave`);
  }
  assert.equal(server.requests.length, 4);
  assert.ok(server.requests.every((r) => r.range === undefined));
  // The importer reads them like Debian's.
  const train = await openIdxSource(dir, { split: 'train' });
  const testSplit = await openIdxSource(dir, { split: 'test' });
  assert.deepEqual([train.entries.length, testSplit.entries.length], [60_000, 10_000]);
  // Second call: found in the cache, nothing fetched.
  assert.equal(await ensureFashionMnist({ places: p }), dir);
  assert.equal(server.requests.length, 4);
});

test('interrupted transfer: the connection cut mid-body resumes with a Range request from the bytes kept', { skip: NEEDS }, async (t) => {
  const { places } = work(t);
  const cut = 5_000_000;
  const server = await fileServer(fashionMnistDir(), { cutAfter: { 'train-images-idx3-ubyte.gz': cut } });
  t.after(() => server.close());
  const p = places(server.url);
  const dir = await ensureFashionMnist({ places: p, retryDelayMs: 0 });
  const reqs = server.requests.filter((r) => r.file === 'train-images-idx3-ubyte.gz');
  assert.equal(reqs.length, 2, JSON.stringify(reqs));
  assert.equal(reqs[0]!.range, undefined);
  // The retry starts where the kept part ends. That is at most `cut`: the HTTP client may hold some
  // of the last bytes in its stream buffer when the connection drops and discard them with the
  // error (seen in CI: 4,943,721 of 5,000,000 kept), so those few are fetched again; the rest is not.
  const from = Number(/^bytes=(\d+)-$/.exec(reqs[1]!.range ?? '')?.[1] ?? NaN);
  assert.ok(from > cut / 2 && from <= cut, `the retry asks for the rest only: ${reqs[1]!.range} after ${cut} bytes sent`);
  const size = readFileSync(path.join(fashionMnistDir(), 'train-images-idx3-ubyte.gz')).length;
  assert.equal(reqs[1]!.sent, size - from, 'the retry sends exactly the bytes not kept');
  assert.equal(contentSha(path.join(dir, 'train-images-idx3-ubyte.gz')), FASHION_MNIST_FILES[0]!.sha256);
});

test('a part left by a killed run is resumed, not refetched', { skip: NEEDS }, async (t) => {
  const { places } = work(t);
  const server = await fileServer(fashionMnistDir());
  t.after(() => server.close());
  const p = places(server.url);
  mkdirSync(p.cacheDir, { recursive: true });
  const name = 't10k-images-idx3-ubyte.gz';
  const whole = readFileSync(path.join(fashionMnistDir(), name));
  writeFileSync(path.join(p.cacheDir, `${name}.part`), whole.subarray(0, 1_000_000));
  await ensureFashionMnist({ places: p, retryDelayMs: 0 });
  const reqs = server.requests.filter((r) => r.file === name);
  assert.deepEqual(reqs.map((r) => r.range), ['bytes=1000000-']);
  assert.equal(reqs[0]!.sent, whole.length - 1_000_000);
  assert.ok(readFileSync(path.join(p.cacheDir, name)).equals(whole));
});

test('corrupted transfer: the checksum catches it, the file is fetched again; corrupt twice is an error naming the URL', { skip: NEEDS }, async (t) => {
  const { places } = work(t);
  const name = 't10k-labels-idx1-ubyte.gz';
  const once = await fileServer(fashionMnistDir(), { corrupt: { [name]: 1 } });
  t.after(() => once.close());
  const p = places(once.url);
  const dir = await ensureFashionMnist({ places: p, retryDelayMs: 0 });
  assert.deepEqual(once.requests.filter((r) => r.file === name).map((r) => r.range), [undefined, undefined], 'refetched whole');
  assert.equal(contentSha(path.join(dir, name)), FASHION_MNIST_FILES[3]!.sha256);

  const { places: places2 } = work(t);
  const always = await fileServer(fashionMnistDir(), { corrupt: { [name]: Infinity } });
  t.after(() => always.close());
  const p2 = places2(always.url);
  await assert.rejects(ensureFashionMnist({ places: p2, retryDelayMs: 0 }), (err: Error) => {
    assert.match(err.message, new RegExp(`download of ${name} failed: ${always.url.replace(/[./]/g, '\\$&')}${name}: the downloaded file is not the expected one, twice`));
    assert.match(err.message, /(content sha256 [0-9a-f]{64}, expected 0402a96d|not a valid gzip file)/);
    assert.match(err.message, /apt-get install dataset-fashion-mnist/);
    return true;
  });
  assert.equal(existsSync(path.join(p2.cacheDir, name)), false, 'no unverified file under the final name');
  assert.equal(existsSync(path.join(p2.cacheDir, `${name}.part`)), false);
});

test('downloadFile: a checksum mismatch deletes the part and fails after one refetch; a good file lands under its name', async (t) => {
  const { root } = work(t);
  const server = createServer((_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/x`;
  const dest = path.join(root, 'x');
  await assert.rejects(downloadFile({ url, dest, retryDelayMs: 0, verify: async () => { throw new VerifyError('mismatch'); } }), /not the expected one, twice: mismatch/);
  assert.equal(existsSync(`${dest}.part`), false);
  await downloadFile({ url, dest, verify: async (f) => assert.equal(readFileSync(f, 'utf8'), 'hello') });
  assert.equal(readFileSync(dest, 'utf8'), 'hello');
});

test('offline: no connection → the error says exactly what to install, and nothing is left behind', async (t) => {
  const { places } = work(t);
  const srv = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  const p = places(`http://127.0.0.1:${port}/`);
  await assert.rejects(ensureFashionMnist({ places: p, retryDelayMs: 0 }), (err: Error) => {
    assert.match(err.message, new RegExp(`Fashion-MNIST is not installed and the download of train-images-idx3-ubyte\\.gz failed: no connection to 127\\.0\\.0\\.1:${port} could be made \\(offline\\?\\)`));
    assert.match(err.message, /ECONNREFUSED/);
    assert.match(err.message, /Install Debian's package \(`apt-get install dataset-fashion-mnist`\)/);
    assert.match(err.message, /github\.com\/zalandoresearch\/fashion-mnist/);
    assert.match(err.message, /train-images-idx3-ubyte c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888/);
    assert.match(err.message, /SELFTRAIN_FASHION_MNIST_DIR/);
    return true;
  });
  assert.deepEqual(readdirSync(p.cacheDir), []);
});

test('where the files are looked for: the explicit dir only, else Debian, else the cache', (t) => {
  const { root } = work(t);
  const a = path.join(root, 'a');
  const b = path.join(root, 'b');
  for (const d of [a, b]) {
    mkdirSync(d);
    for (const f of FASHION_MNIST_FILES) writeFileSync(path.join(d, f.name), '');
  }
  const empty = path.join(root, 'no-debian-package');
  assert.equal(locateFashionMnist({ systemDir: a, cacheDir: b, mirror: '' }), a);
  assert.equal(locateFashionMnist({ systemDir: empty, cacheDir: b, mirror: '' }), b);
  assert.equal(locateFashionMnist({ explicitDir: empty, systemDir: a, cacheDir: b, mirror: '' }), undefined, 'an explicit dir is the only place looked at');
  assert.equal(cacheRoot({ SELFTRAIN_CACHE_DIR: '/x/y' }), '/x/y');
  assert.equal(cacheRoot({ XDG_CACHE_HOME: '/xdg' }), '/xdg/selftrain');
  assert.match(cacheRoot({}), /\/\.cache\/selftrain$/);
});
