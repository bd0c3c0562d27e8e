/**
 * ResNet-RS in TensorFlow.js — the public surface of pipeline/model/:
 * - registry.ts: one named entry per variant with its full config and source (MODEL_REGISTRY,
 *   `lookupModel(name)`, FASHION_MNIST_MODEL).
 * - family.ts: `resolveModel(choice)` → { entry, arch, defaults, preprocessing }; a choice whose
 *   depth/width/stem contradicts its name is a ModelChoiceError naming the field.
 * - count.ts: analytic parameters / FLOPs (`selftrain model info`).
 * - resnet-rs.ts: `buildResNetRS(arch)` / `buildModel(choice)` → tf.LayersModel (logits output),
 *   `archOf(model)` reads the architecture back from a built or loaded model.
 * - noise.ts: the seedable generator behind stochastic depth and dropout (save/restore its state).
 * - store-io.ts: save/load through the ObjectStore (weights first, model.json last); modelIdOf.
 * - onnx-export.ts: the ONNX graph of an architecture + weights (opset 13), from the same walk;
 *   onnx-file.ts: model.onnx beside a saved model (ensureOnnx exports a missing or stale one).
 * Call `initBackend()` (pipeline/backend/select.ts) before building or loading a model.
 */
export * from './family.js';
export { findModel, lookupModel, MODEL_NAMES, MODEL_REGISTRY, IMAGENET_NORMALIZATION, type EntryStatus, type Normalization } from './registry.js';
export { countResNetRS, type ModelCounts } from './count.js';
export { archOf, buildModel, buildResNetRS, modelNameFor, ARCH_METADATA_KEY, type LayersModel } from './resnet-rs.js';
export { drawUniforms, modelNoiseState, seedModelNoise, setModelNoiseState, type ModelNoiseState } from './noise.js';
export { loadModel, loadModelFrom, modelIdOf, saveModelTo, storeModelIO, MODEL_JSON_KEY } from './store-io.js';
export { exportResNetRSToOnnx, ONNX_OPSET, ONNX_INPUT, ONNX_OUTPUT, type WeightLookup } from './onnx-export.js';
export { ensureOnnx, onnxFromLayersModel, onnxInfo, ONNX_KEY, type OnnxFile } from './onnx-file.js';
export { registerModelLayers } from './layers.js';
