/**
 * Loads the teacher checkpoint for inference and refuses one that is not the model the manifest
 * describes (a stale or foreign checkpoint would otherwise label the whole unlabeled set with
 * the wrong network, or fail deep inside tfjs with a shape error).
 */
import { ARCH_METADATA_KEY, archOf } from '../model/resnet-rs.js';
import { loadModel, modelIdOf, MODEL_JSON_KEY } from '../model/store-io.js';
import type { ResNetRSArch } from '../model/family.js';
import type { ObjectStore } from '../store/types.js';
import { teacherFromModel, type Teacher, type TeacherPreprocessing } from './teacher.js';
import { objectUri, trimUri } from '../store/uri.js';

/** Fields that decide the network's shape; regularisation (dropout etc.) is irrelevant at inference. */
const SHAPE_FIELDS = ['depth', 'blocks', 'widthMultiplier', 'imageSize', 'inputChannels', 'classes', 'smallInput'] as const;

export type ExpectedArch = Omit<Pick<ResNetRSArch, (typeof SHAPE_FIELDS)[number]>, 'blocks'> & { blocks: readonly number[] };

export function archMismatches(actual: Partial<ResNetRSArch>, expected: ExpectedArch): string[] {
  return SHAPE_FIELDS.filter((f) => JSON.stringify(actual[f]) !== JSON.stringify(expected[f])).map(
    (f) => `${f}: checkpoint ${JSON.stringify(actual[f])}, manifest ${JSON.stringify(expected[f])}`,
  );
}

/**
 * The teacher id: `<model name>@<16 hex of sha256(model.json)>` (modelIdOf). model.json names the
 * content-addressed weights file, so the hash identifies the exact weights — and not their
 * location: the same checkpoint in S3 or a local directory has the same id.
 */
export const teacherIdOf = modelIdOf;

export interface TeacherInfo {
  id: string;
  /** Eval preprocessing recorded by the train stage (`userDefinedMetadata.preprocessing`), if any. */
  preprocessing?: TeacherPreprocessing;
}

/** Id and recorded preprocessing of the checkpoint at `store`, without loading the weights. */
export async function readTeacherInfo(store: ObjectStore): Promise<TeacherInfo> {
  const uri = trimUri(store.uri);
  const json = await store.get(MODEL_JSON_KEY).catch((err: Error) => {
    throw new Error(`teacher checkpoint ${uri}: ${err.message}`, { cause: err });
  });
  const info: TeacherInfo = { id: teacherIdOf(json) };
  let meta: { preprocessing?: Record<string, unknown> } | undefined;
  try {
    meta = (JSON.parse(json.toString('utf8')) as { userDefinedMetadata?: typeof meta }).userDefinedMetadata;
  } catch {
    return info; // reported with a proper message when the model is loaded
  }
  const p = meta?.preprocessing;
  if (p) {
    const { imageSize, channels, mean, std, evalCrop } = p as { imageSize?: unknown; channels?: unknown; mean?: unknown; std?: unknown; evalCrop?: unknown };
    const numbers = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
    if (typeof imageSize !== 'number' || (channels !== 1 && channels !== 3) || !numbers(mean) || !numbers(std)) {
      throw new Error(`teacher checkpoint ${uri}/${MODEL_JSON_KEY}: userDefinedMetadata.preprocessing is malformed: ${JSON.stringify(p).slice(0, 200)}`);
    }
    info.preprocessing = { imageSize, channels, mean: mean as number[], std: std as number[], cropFraction: typeof evalCrop === 'number' ? evalCrop : 0.875 };
  }
  return info;
}

/** The architecture the checkpoint records (what it was trained as), read from model.json alone. */
export async function recordedArch(store: ObjectStore): Promise<ExpectedArch> {
  const where = objectUri(store, MODEL_JSON_KEY);
  const json = await store.get(MODEL_JSON_KEY).catch((err: Error) => {
    throw new Error(`teacher checkpoint ${trimUri(store.uri)}: ${err.message}`, { cause: err });
  });
  let meta: Record<string, unknown> | undefined;
  try {
    meta = (JSON.parse(json.toString('utf8')) as { userDefinedMetadata?: Record<string, unknown> }).userDefinedMetadata;
  } catch (err) {
    throw new Error(`${where}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const arch = meta?.[ARCH_METADATA_KEY] as ExpectedArch | undefined;
  if (!arch) throw new Error(`${where}: records no ResNet-RS architecture (not saved by selftrain?)`);
  return arch;
}

export async function loadTeacher(store: ObjectStore, expected: ExpectedArch, preprocessing: TeacherPreprocessing): Promise<Teacher> {
  const uri = trimUri(store.uri);
  const json = await store.get(MODEL_JSON_KEY).catch((err: Error) => {
    throw new Error(`teacher checkpoint ${uri}: ${err.message}`, { cause: err });
  });
  const model = await loadModel(store).catch((err: Error) => {
    throw new Error(`teacher checkpoint ${uri} cannot be loaded: ${err.message}`, { cause: err });
  });
  const arch = archOf(model);
  const problems = arch ? archMismatches(arch, expected) : ['the checkpoint records no ResNet-RS architecture (not saved by selftrain?)'];
  if (!arch || problems.length > 0) {
    model.dispose();
    throw new Error(`teacher checkpoint ${uri} does not match the manifest's teacher model: ${problems.join('; ')}`);
  }
  if (preprocessing.imageSize !== arch.imageSize || preprocessing.channels !== arch.inputChannels) {
    model.dispose();
    throw new Error(`teacher checkpoint ${uri}: preprocessing ${preprocessing.imageSize}px x${preprocessing.channels} does not fit the model input ${arch.imageSize}px x${arch.inputChannels}`);
  }
  const id = teacherIdOf(json);
  return teacherFromModel(model, id, arch, preprocessing);
}
