/** The model registry and the manifest's model section: names looked up, contradictions named by field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modelSection, resolveModelSection } from '../../pipeline/manifest/sections/model.js';
import { ModelChoiceError, resolveModel } from '../../pipeline/model/family.js';
import { FASHION_MNIST_MODEL, MODEL_NAMES, MODEL_REGISTRY } from '../../pipeline/model/registry.js';

test('model section validates names and fields, with field paths', () => {
  const bad = modelSection.safeParse({ name: 'resnet-50' });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0]!.path, ['name']);
  assert.match(bad.error!.issues[0]!.message, /unknown model name "resnet-50": registered models are resnet-rs-50, /);
  const unknownKey = modelSection.safeParse({ name: 'resnet-rs-50', widht: 2 });
  assert.equal(unknownKey.success, false);
  const badRate = modelSection.safeParse({ name: 'resnet-rs-50', dropoutRate: 1.5 });
  assert.deepEqual(badRate.error!.issues[0]!.path, ['dropoutRate']);
});

test('names are looked up, not parsed: well-formed but unregistered names are unknown', () => {
  for (const name of ['resnet-rs-51', 'resnet-rs-400', 'resnet-rs-50-w0.5', 'resnet-rs-26', 'resnet-rs-152-i320']) {
    assert.equal(modelSection.safeParse({ name }).success, false, name);
    assert.throws(() => resolveModel({ name }), (err: Error) => err instanceof ModelChoiceError && err.issues[0]!.field === 'name', name);
  }
});

test('a name contradicted by explicit depth, width or stem is an error on that field', () => {
  const r = modelSection.safeParse({ name: 'resnet-rs-50', depth: 300 });
  assert.equal(r.success, false);
  assert.deepEqual(r.error!.issues.map((i) => i.path), [['depth']]);
  assert.match(r.error!.issues[0]!.message, /resnet-rs-50 has depth 50 \(blocks \[3, 4, 6, 3\]\), found 300: the depth is part of the model name/);
  const two = modelSection.safeParse({ name: FASHION_MNIST_MODEL, widthMultiplier: 1, smallInput: false });
  assert.deepEqual(two.error!.issues.map((i) => i.path), [['widthMultiplier'], ['smallInput']]);
  // Restating the name's own values is fine.
  assert.equal(modelSection.safeParse({ name: 'resnet-rs-50', depth: 50, widthMultiplier: 1, smallInput: false }).success, true);
  assert.throws(() => resolveModel({ name: 'resnet-rs-50', depth: 300 }), /depth: resnet-rs-50 has depth 50 \(blocks \[3, 4, 6, 3\]\), found 300/);
});

test('every registered model resolves; released entries carry their tensorflow/tpu config', () => {
  assert.equal(new Set(MODEL_NAMES).size, MODEL_NAMES.length, 'names are unique');
  for (const entry of MODEL_REGISTRY) {
    const { arch } = resolveModel({ name: entry.name });
    const layers = arch.blocks.reduce((a, b) => a + b, 0) * 3 + 2; // nominal names: RS-270 272, RS-300 296, RS-420 419
    assert.ok(Math.abs(layers - entry.depth) <= 4, `${entry.name}: ${layers} layers for nominal depth ${entry.depth}`);
    if (entry.status === 'released') assert.match(entry.source, new RegExp(`resnetrs${entry.depth}_i${entry.imageSize}\\.yaml$`), entry.name);
  }
  assert.ok(!MODEL_NAMES.some((n) => n.startsWith('resnet-rs-400')), 'RS-400: no released layout, not registered');
});

test('per-model defaults follow the released configs', () => {
  const rs50 = resolveModelSection(modelSection.parse({ name: 'resnet-rs-50' }));
  assert.deepEqual(
    [rs50.arch.imageSize, rs50.arch.dropoutRate, rs50.arch.stochasticDepthRate, rs50.defaults.randAugmentMagnitude, rs50.arch.classes],
    [160, 0.25, 0, 10, 1000],
  );
  const rs420 = resolveModelSection({ name: 'resnet-rs-420' });
  assert.deepEqual([rs420.arch.imageSize, rs420.arch.dropoutRate, rs420.arch.stochasticDepthRate, rs420.defaults.randAugmentMagnitude], [320, 0.4, 0.1, 15]);
  const rs350 = resolveModelSection({ name: 'resnet-rs-350-i320' });
  assert.deepEqual([rs350.arch.imageSize, rs350.arch.dropoutRate, rs350.arch.blocks], [320, 0.4, [4, 36, 72, 4]]);
  assert.equal(resolveModelSection({ name: 'resnet-rs-101-i192' }).defaults.randAugmentMagnitude, 15);
  const rs300 = resolveModelSection({ name: 'resnet-rs-300' });
  assert.deepEqual([rs300.entry.status, rs300.arch.blocks], ['layout-only', [4, 36, 54, 4]]);
  const small = resolveModelSection({ name: FASHION_MNIST_MODEL });
  assert.deepEqual([small.arch.imageSize, small.arch.inputChannels, small.arch.classes, small.arch.widthMultiplier, small.arch.smallInput], [28, 1, 10, 0.25, true]);
  assert.deepEqual([small.arch.dropoutRate, small.arch.stochasticDepthRate, small.defaults.randAugmentMagnitude], [0.1, 0, 5]);
  // Overrides change the input, head and regularisation, never the network's identity.
  const custom = resolveModelSection({ name: 'resnet-rs-50', classes: 10, dropoutRate: 0.5, imageSize: 224 });
  assert.deepEqual([custom.arch.blocks, custom.arch.classes, custom.arch.dropoutRate, custom.arch.imageSize], [[3, 4, 6, 3], 10, 0.5, 224]);
});

test('preprocessing: eval crop 0.875, ImageNet mean/std for RGB, their channel mean for grey', () => {
  const rgb = resolveModel({ name: 'resnet-rs-152-i224' }).preprocessing;
  assert.deepEqual(rgb, { imageSize: 224, channels: 3, cropFraction: 0.875, mean: [0.485 * 255, 0.456 * 255, 0.406 * 255], std: [0.229 * 255, 0.224 * 255, 0.225 * 255] });
  const grey = resolveModel({ name: FASHION_MNIST_MODEL }).preprocessing;
  assert.deepEqual(grey, { imageSize: 28, channels: 1, cropFraction: 0.875, mean: [0.449 * 255], std: [0.226 * 255] });
  assert.deepEqual(resolveModel({ name: 'resnet-rs-50', inputChannels: 1 }).preprocessing.mean, [0.449 * 255]);
});
