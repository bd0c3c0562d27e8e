/**
 * ResNet-RS in TensorFlow.js — the public surface of pipeline/model/:
 * - family.ts: names, block layouts, per-model defaults (resolution, dropout, stochastic depth,
 *   RandAugment magnitude), `resolveModel(choice)` → { arch, defaults }, FASHION_MNIST_MODEL.
 * - count.ts: analytic parameters / FLOPs (`selftrain model info`).
 * - resnet-rs.ts: `buildResNetRS(arch)` / `buildModel(choice)` → tf.LayersModel (logits output),
 *   `archOf(model)` reads the architecture back from a built or loaded model.
 * - noise.ts: the seedable generator behind stochastic depth and dropout (save/restore its state).
 * - store-io.ts: save/load through the ObjectStore (weights first, model.json last).
 * Call `initBackend()` (pipeline/backend/select.ts) before building or loading a model.
 */
export * from './family.js';
export { countResNetRS, type ModelCounts } from './count.js';
export { archOf, buildModel, buildResNetRS, modelNameFor, ARCH_METADATA_KEY, type LayersModel } from './resnet-rs.js';
export { drawUniforms, modelNoiseState, seedModelNoise, setModelNoiseState, type ModelNoiseState } from './noise.js';
export { loadModel, loadModelFrom, saveModelTo, storeModelIO, MODEL_JSON_KEY } from './store-io.js';
export { registerModelLayers } from './layers.js';
