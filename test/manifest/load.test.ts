import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { loadManifest, parseManifest, ManifestError } from '../../pipeline/manifest/load.js';
import { manifestSchema } from '../../pipeline/manifest/schema.js';
import { storeUriProblem } from '../../pipeline/manifest/uri.js';
import { cliArgv } from '../helpers/cli.js';

const run = promisify(execFile);

const valid = `# a comment
name: demo
store: s3://my-bucket/runs
s3: { endpoint: "http://127.0.0.1:8080", region: us-east-1 }
backend: wasm
datasets:
  labeled: fashion-mnist:train
  unlabeled: fashion-mnist:train
  eval: fashion-mnist:test
teacher:
  model: { name: resnet-rs-26-w0.25-small }
  train: { epochs: 2 }
student:
  model: { name: resnet-rs-26-w0.25-small }
  train: { epochs: 3 }
`;

function errorsOf(text: string, file = 'm.yaml'): string[] {
  try {
    parseManifest(text, file);
  } catch (err) {
    assert.ok(err instanceof ManifestError, String(err));
    return err.message.split('\n');
  }
  assert.fail('expected the manifest to be rejected');
}

test('a valid YAML manifest parses with defaults filled in', () => {
  const m = parseManifest(valid, 'm.yaml');
  assert.equal(m.name, 'demo');
  assert.equal(m.store, 's3://my-bucket/runs');
  assert.equal(m.backend, 'wasm');
  assert.equal(m.seed, 0);
  assert.equal(m.iterations, 1);
  assert.equal(m.evaluate.baseline, false, 'omitted nested blocks get their inner defaults');
  assert.deepEqual(m.evaluate.topK, [1, 5]);
  assert.equal(m.teacher.train.epochs, 2);
});

test('the same manifest as JSON parses identically', () => {
  const fromYaml = parseManifest(valid, 'm.yaml');
  const json = JSON.stringify({ ...fromYaml, $schema: '../manifests/schema.json' }, null, 2);
  const fromJson = parseManifest(json, 'm.json');
  assert.deepEqual({ ...fromJson, $schema: undefined }, { ...fromYaml, $schema: undefined });
});

test('every problem is reported at once, each with its file, field path, expectation and finding', () => {
  const bad = `name: demo
store: http://example.com/runs
seed: -1
backend: gpu
datasets:
  labeled: a
  eval: c
teacher:
  model: { name: resnet-rs-26-w0.25-small }
  train: { epochs: "ten", batchSise: 32 }
student:
  model: { name: resnet-rs-26-w0.25-small }
  train: {}
colour: blue
`;
  const lines = errorsOf(bad);
  const expect = [
    /^m\.yaml: store: expected "file:\/\/<dir>" or "s3:\/\/<bucket>\/<prefix>", found "http:\/\/example\.com\/runs" \(unsupported scheme "http"\) \(line 2, col 1\)$/,
    /^m\.yaml: seed: expected a value >= 0, found number -1 \(line 3/,
    /^m\.yaml: backend: expected one of "auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu", found string "gpu" \(line 4/,
    /^m\.yaml: datasets\.unlabeled: missing required field \(expected string\) \(line 5/,
    /^m\.yaml: teacher\.train\.epochs: expected number, found string "ten" \(line 10/,
    /^m\.yaml: teacher\.train\.batchSise: unknown key \(did you mean "batchSize"\?\); allowed here: .*epochs/,
    /^m\.yaml: colour: unknown key; allowed here: \$schema, name, store, s3, backend/,
  ];
  for (const re of expect) assert.ok(lines.some((l) => re.test(l)), `no line matches ${re}\n${lines.join('\n')}`);
  assert.ok(lines.length >= expect.length);
});

test('randAugment.exclude takes op names: an unknown one is named with its field path, excluding all 16 is refused', () => {
  const withExclude = (list: string) => valid.replace('train: { epochs: 2 }', `train: { epochs: 2, randAugment: { exclude: ${list} } }`);
  assert.notEqual(withExclude('[]'), valid, 'the test manifest has a teacher train section to add to');
  assert.deepEqual(parseManifest(withExclude('[Invert, SolarizeAdd]'), 'm.yaml').teacher.train.randAugment.exclude, ['Invert', 'SolarizeAdd']);
  const [unknown] = errorsOf(withExclude('[Invert, Blur]'));
  assert.match(unknown!, /^m\.yaml: teacher\.train\.randAugment\.exclude\[1\]: expected one of "AutoContrast", .*found string "Blur"/);
  const all = ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'Color', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout', 'SolarizeAdd'];
  assert.match(errorsOf(withExclude(`[${all.join(', ')}]`))[0]!, /^m\.yaml: teacher\.train\.randAugment\.exclude: /);
});

test('a missing top-level section and a wrong type at the root are named', () => {
  const lines = errorsOf('name: x\n');
  for (const field of ['datasets', 'teacher', 'student']) {
    assert.ok(lines.some((l) => l.startsWith(`m.yaml: ${field}: missing required field (expected object)`)), lines.join('\n'));
  }
  assert.deepEqual(errorsOf('- a\n- b\n'), ['m.yaml: expected a mapping at the top level, found an array of 2']);
  assert.match(errorsOf('')[0]!, /^m\.yaml: empty manifest/);
});

test('YAML and JSON syntax errors give line and column', () => {
  const [y] = errorsOf('name: x\nteacher: [unclosed\n');
  assert.match(y!, /^m\.yaml:\d+:\d+: YAML syntax error: /);
  const [j] = errorsOf('{\n  "name": "x",\n  "seed": ,\n}\n', 'm.json');
  assert.equal(j, "m.json:3:11: JSON syntax error: Unexpected token ','");
  const dup = errorsOf('name: x\nname: y\n');
  assert.match(dup[0]!, /^m\.yaml:2:1: YAML syntax error: Map keys must be unique/);
});

test('store URIs: accepted and rejected forms', () => {
  for (const ok of ['file://./runs', 'file:///abs/dir', 's3://bucket', 's3://my.bucket-1/a/b/', 's3://swift_bucket/x']) {
    assert.equal(storeUriProblem(ok), undefined, ok);
  }
  const bad: Array<[string, RegExp]> = [
    ['runs', /no scheme/],
    ['file://', /empty path/],
    ['s3://', /missing bucket/],
    ['s3://UPPER/x', /not a valid bucket name/],
    ['s3://ab/x', /not a valid bucket name/],
    ['s3://bucket/a//b', /empty, "\." or "\.\." segment/],
    ['s3://bucket/../x', /segment/],
    ['s3://bucket/x?versionId=1', /query strings/],
    ['gs://bucket/x', /unsupported scheme "gs"/],
  ];
  for (const [uri, re] of bad) assert.match(storeUriProblem(uri) ?? '', re, uri);
});

test('the s3 block rejects a non-http endpoint and credentials are not manifest fields', () => {
  const lines = errorsOf(valid.replace('endpoint: "http://127.0.0.1:8080"', 'endpoint: "ftp://x", secretAccessKey: "AKIAABCDEFGHIJKLMNOP"'));
  assert.ok(lines.some((l) => /^m\.yaml: s3\.endpoint: expected an http\(s\) URL/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^m\.yaml: s3\.secretAccessKey: unknown key/.test(l)), lines.join('\n'));
  assert.ok(lines.every((l) => !l.includes('AKIAABCDEFGHIJKLMNOP')), 'the value is never echoed');
});

test('the generated JSON Schema is strict and carries defaults and descriptions', () => {
  // biome-ignore lint/suspicious/noExplicitAny: the test walks the generated JSON Schema by path
  const schema = z.toJSONSchema(manifestSchema, { io: 'input' }) as Record<string, any>;
  assert.equal(schema.additionalProperties, false);
  assert.deepEqual(schema.required.sort(), ['datasets', 'name', 'student', 'teacher']);
  assert.equal(schema.properties.store.default, 'file://./runs');
  assert.deepEqual(schema.properties.backend.enum, ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
  assert.equal(schema.properties.s3.additionalProperties, false);
  assert.match(schema.properties.iterations.description, /Noisy Student rounds/);
});

test('loadManifest names a missing file', async () => {
  await assert.rejects(loadManifest('/nonexistent/m.yaml'), /^ManifestError: \/nonexistent\/m\.yaml: cannot read manifest: no such file$/m);
});

test('selftrain validate: ok with a summary, or all errors and exit 2', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-manifest-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = path.join(dir, 'good.yaml');
  writeFileSync(good, valid);
  const [cmd, args] = cliArgv('validate', good);
  const ok = await run(cmd, args, { encoding: 'utf8' });
  assert.match(ok.stdout, /^ok: .*good\.yaml\n/);
  assert.match(ok.stdout, /stages \(7\): import → train-teacher-1 → infer-1 → select-1 → train-student-1 → train-control → evaluate/);

  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ name: 'x', store: 's3://B', seed: 'one', datasets: { labeled: 'a', unlabeled: 'b', eval: 'c' }, teacher: { model: { name: 'resnet-rs-50' }, train: {} }, extra: 1 }));
  const [cmd2, args2] = cliArgv('validate', bad);
  const err = await run(cmd2, args2, { encoding: 'utf8' }).then(
    () => assert.fail('validate should fail'),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(err.code, 2);
  const lines = err.stderr.trim().split('\n');
  for (const re of [/bad\.json: store: .*bucket "B"/, /bad\.json: seed: expected number, found string "one"/, /bad\.json: student: missing required field/, /bad\.json: extra: unknown key/]) {
    assert.ok(lines.some((l) => re.test(l)), `${re}\n${err.stderr}`);
  }
  assert.match(lines.at(-1)!, /^4 problems in .*bad\.json$/);

  // `run` reports the same problems and exits 2 before touching any store.
  const [cmd3, args3] = cliArgv('run', bad);
  const r = await run(cmd3, args3, { encoding: 'utf8', cwd: dir }).then(
    () => assert.fail('run should fail'),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad\.json: seed: expected number, found string "one"/);
});
