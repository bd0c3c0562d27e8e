/**
 * A newcomer's first run says what is missing: when the Fashion-MNIST files are not where
 * `fashion-mnist:` looks, `selftrain run` stops at the import stage with a message saying how to get them (the Debian package, or the
 * official download with checksums to verify), naming the manifest field and the directory.
 * SELFTRAIN_FASHION_MNIST_DIR points `fashion-mnist:` at an empty directory here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fashionMnistHowTo } from '../../stages/import/index.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistDir } from '../helpers/fashion-mnist.js';
import { repoRoot } from '../helpers/s3.js';
import { startCli } from './helpers.js';

test('fashion-mnist: missing files → the import explains how to get them', async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'selftrain-e2e-missing-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const empty = path.join(work, 'no-fashion-mnist-here');
  mkdirSync(empty);
  const manifest = path.join(repoRoot(), 'manifests', 'fashion-mnist-ci.yaml');
  const res = await startCli(work, ['run', manifest, '--store', `file://${work}/store`], { ...process.env, SELFTRAIN_FASHION_MNIST_DIR: empty }).done;
  assert.equal(res.code, 1, res.stderr);
  const err = res.stderr;
  assert.match(err, /datasets\.labeled: "fashion-mnist:train"/, 'names the manifest field and source');
  assert.ok(err.includes(empty), 'names the directory it looked in');
  assert.match(err, /apt-get install dataset-fashion-mnist/);
  // The official files and the sha256 of their content (Debian's package, checked below).
  assert.match(err, /github\.com\/zalandoresearch\/fashion-mnist/);
  assert.match(err, /train-images-idx3-ubyte c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888/);
  assert.match(err, /SELFTRAIN_FASHION_MNIST_DIR/);
  assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
});

test('the checksums the message gives are those of the Debian package content', { skip: needs('fashion-mnist') }, () => {
  const message = fashionMnistHowTo('/nowhere');
  for (const base of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
    const file = path.join(fashionMnistDir(), `${base}.gz`);
    assert.ok(existsSync(file), file);
    const sha = createHash('sha256').update(gunzipSync(readFileSync(file))).digest('hex');
    assert.ok(message.includes(`${base} ${sha}`), `${base}: ${sha} not in the message`);
  }
});
