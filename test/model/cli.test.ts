/** `selftrain model info`: parameters and FLOPs as printed to users, and clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cliArgv } from '../helpers/cli.js';

const run = promisify(execFile);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, argv] = cliArgv(...args);
  try {
    const { stdout, stderr } = await run(cmd, argv, { encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('model info prints exact parameters and paper FLOPs', async () => {
  const rs50 = await cli('model', 'info', 'resnet-rs-50');
  assert.equal(rs50.code, 0, rs50.stderr);
  assert.match(rs50.stdout, /parameters\s+35,691,912 trainable/);
  assert.match(rs50.stdout, /FLOPs\s+4\.557 G/);
  assert.match(rs50.stdout, /input\s+160x160x3, 1000 classes/);
  assert.match(rs50.stdout, /RandAugment 2 ops @ 10/);
  const rs350 = await cli('model', 'info', 'resnet-rs-350', '--image-size', '256', '--json');
  const info = JSON.parse(rs350.stdout) as { params: number; flops: number; arch: { blocks: number[] } };
  assert.equal(info.params, 163_956_168);
  assert.ok(Math.abs(info.flops / 1e9 - 69) / 69 < 0.01, `RS-350@256 ${info.flops}`);
  assert.deepEqual(info.arch.blocks, [4, 36, 72, 4]);
});

test('model info options change the head, input and width; --build cross-checks', async () => {
  const r = await cli('model', 'info', 'resnet-rs-26-w0.25-small', '--classes', '7', '--channels', '3', '--image-size', '32', '--build', '--backend', 'wasm');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /input\s+32x32x3, 7 classes/);
  assert.match(r.stdout, /built model\s+[\d,]+ trainable, [\d,]+ total on wasm — matches/);
});

test('model info rejects unknown models and bad options with clear errors', async () => {
  const bad = await cli('model', 'info', 'resnet-rs-51');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /<name>: unknown model name "resnet-rs-51": registered models are resnet-rs-50, resnet-rs-101, /);
  const contradiction = await cli('model', 'info', 'resnet-rs-50', '--depth', '300');
  assert.equal(contradiction.code, 2);
  assert.match(contradiction.stderr, /--depth: resnet-rs-50 has depth 50 \(blocks \[3, 4, 6, 3\]\), found 300: the depth is part of the model name/);
  const badSize = await cli('model', 'info', 'resnet-rs-50', '--image-size', 'big');
  assert.notEqual(badSize.code, 0);
  assert.match(badSize.stderr, /--image-size expects an integer >= 8, got "big"/);
});

test('model list names every registered model; model info works for each of them', async () => {
  const { MODEL_NAMES } = await import('../../pipeline/model/registry.js');
  const list = await cli('model', 'list');
  assert.equal(list.code, 0, list.stderr);
  for (const name of MODEL_NAMES) assert.match(list.stdout, new RegExp(`^${name.replace(/\./g, '\\.')}\\s`, 'm'), name);
  for (const name of MODEL_NAMES) {
    const info = await cli('model', 'info', name);
    assert.equal(info.code, 0, `${name}: ${info.stderr}`);
    assert.match(info.stdout, new RegExp(`^model\\s+${name.replace(/\./g, '\\.')} \\((released|layout-only|project)\\)`, 'm'));
    for (const field of ['blocks per stage', 'stem', 'SE, BN', 'input', 'parameters', 'FLOPs', 'regularisation', 'preprocessing', 'source']) {
      assert.match(info.stdout, new RegExp(`^${field}\\s`, 'm'), `${name}: ${field}`);
    }
  }
});
