/** The manifest's model section: strict, names validated, per-model defaults resolved. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modelSection, resolveModelSection } from '../../pipeline/manifest/sections/model.js';
import { defaultsFor, FASHION_MNIST_MODEL } from '../../pipeline/model/family.js';

test('model section validates names and fields, with field paths', () => {
  const bad = modelSection.safeParse({ name: 'resnet-50' });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0]!.path, ['name']);
  assert.match(bad.error!.issues[0]!.message, /unknown model name "resnet-50"/);
  const unknownKey = modelSection.safeParse({ name: 'resnet-rs-50', widht: 2 });
  assert.equal(unknownKey.success, false);
  const badRate = modelSection.safeParse({ name: 'resnet-rs-50', dropoutRate: 1.5 });
  assert.deepEqual(badRate.error!.issues[0]!.path, ['dropoutRate']);
});

test('per-model defaults follow the released configs', () => {
  const rs50 = resolveModelSection(modelSection.parse({ name: 'resnet-rs-50' }));
  assert.deepEqual(
    [rs50.arch.imageSize, rs50.arch.dropoutRate, rs50.arch.stochasticDepthRate, rs50.defaults.randAugmentMagnitude, rs50.arch.classes],
    [160, 0.25, 0, 10, 1000],
  );
  const rs420 = resolveModelSection({ name: 'resnet-rs-420' });
  assert.deepEqual([rs420.arch.imageSize, rs420.arch.dropoutRate, rs420.arch.stochasticDepthRate, rs420.defaults.randAugmentMagnitude], [320, 0.4, 0.1, 15]);
  assert.deepEqual(defaultsFor(350, 320), { imageSize: 320, dropoutRate: 0.4, stochasticDepthRate: 0.1, randAugmentLayers: 2, randAugmentMagnitude: 15 });
  assert.equal(defaultsFor(101, 192).randAugmentMagnitude, 15);
  const small = resolveModelSection({ name: FASHION_MNIST_MODEL });
  assert.deepEqual([small.arch.imageSize, small.arch.inputChannels, small.arch.classes, small.arch.widthMultiplier, small.arch.smallInput], [28, 1, 10, 0.25, true]);
  const custom = resolveModelSection({ name: 'resnet-rs-50', depth: 300, classes: 10, dropoutRate: 0.5 });
  assert.deepEqual([custom.arch.blocks, custom.arch.classes, custom.arch.dropoutRate, custom.arch.stochasticDepthRate], [[4, 36, 54, 4], 10, 0.5, 0.1]);
});
