import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parseManifest } from '../../pipeline/manifest/load.js';

// The repository root: the nearest ancestor with package.json (works from test/ and dist/test/).
function repoRoot(): string {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(d, 'package.json'))) d = path.dirname(d);
  return d;
}
const manifestsDir = path.join(repoRoot(), 'manifests');

test('every manifest shipped in manifests/ is valid against the schema', () => {
  const files = readdirSync(manifestsDir).filter((f) => /\.(ya?ml|json)$/.test(f) && f !== 'schema.json');
  assert.ok(files.includes('imagenet-resnet-rs-152.yaml'));
  for (const f of files) {
    const m = parseManifest(readFileSync(path.join(manifestsDir, f), 'utf8'), f);
    assert.equal(typeof m.name, 'string', f);
  }
});

test('the ImageNet manifest keeps the paper settings: RS-152 student at 224, floor 0.3, 130,000 per class', () => {
  const m = parseManifest(readFileSync(path.join(manifestsDir, 'imagenet-resnet-rs-152.yaml'), 'utf8'), 'imagenet');
  assert.equal(m.student.model.name, 'resnet-rs-152-i224');
  assert.equal(m.student.model.imageSize, 224);
  assert.equal(m.pseudo.select.threshold, 0.3);
  assert.equal(m.pseudo.select.perClass, 130000);
  assert.equal(m.student.train.weightDecay, 4e-5);
  assert.equal(m.student.train.batchSize, 4096);
});
