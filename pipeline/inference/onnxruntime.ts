/**
 * ONNX Runtime for Node (`onnxruntime-node`), an optional dependency like tfjs-node: loaded on
 * demand, and its absence (an unsupported platform, an install that dropped it) is a reason to
 * report, not an error, unless ONNX was asked for explicitly.
 *
 * Only the few calls used here are typed (below), so the project builds where the package is
 * absent. The CPU execution provider ships inside the npm package; the CUDA provider is a separate
 * download (`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install`):
 * when its library is present it is tried first, and a failure to start it falls back to the CPU
 * with the reason in the description.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ORT_PACKAGE = 'onnxruntime-node';

/** The part of the onnxruntime-node API this project uses. */
export interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
  dispose?(): void;
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtSessionOptions {
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'layout' | 'all';
  executionMode?: 'sequential' | 'parallel';
  executionProviders?: string[];
  /** Session config entries, nested by dots: { session: { intra_op: { allow_spinning: '0' } } }. */
  extra?: Record<string, unknown>;
}
export interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options?: OrtSessionOptions): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
  listSupportedBackends?: () => { name: string; bundled: boolean }[];
}

export interface OrtRuntime {
  ort: OrtModule;
  version: string;
  /** Directory of the native libraries (where an installed CUDA provider would be). */
  binDir: string;
  cudaInstalled: boolean;
}

let cached: Promise<OrtRuntime> | undefined;

/** Loads onnxruntime-node once per process; rejects with a one-line reason when it cannot be used. */
export function loadOrt(): Promise<OrtRuntime> {
  cached ??= load();
  return cached;
}

async function load(): Promise<OrtRuntime> {
  let main: string;
  try {
    // import.meta.resolve, not require.resolve: module hooks (a test hiding the package) apply.
    main = fileURLToPath(import.meta.resolve(ORT_PACKAGE));
  } catch {
    throw new Error(`${ORT_PACKAGE} is not installed`);
  }
  let mod: OrtModule & { default?: OrtModule };
  try {
    // A variable specifier: the package is optional and absent at type-check time on some machines.
    const spec: string = ORT_PACKAGE;
    mod = (await import(spec)) as typeof mod;
  } catch (err) {
    throw new Error(`${ORT_PACKAGE} failed to load: ${(err as Error).message.split('\n')[0]}`);
  }
  const ort = (mod.InferenceSession ? mod : mod.default) as OrtModule | undefined;
  if (!ort?.InferenceSession || !ort.Tensor) throw new Error(`${ORT_PACKAGE} did not export InferenceSession and Tensor`);
  const binDir = path.join(path.dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
  const cudaInstalled = existsSync(path.join(binDir, 'libonnxruntime_providers_cuda.so'));
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(path.join(path.dirname(main), '..', 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    /* only used in descriptions */
  }
  return { ort, version, binDir, cudaInstalled };
}

/** Why ONNX Runtime cannot be used here, or undefined when it can. */
export async function ortUnavailableReason(): Promise<string | undefined> {
  try {
    await loadOrt();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export interface OrtSessionHandle {
  session: OrtSession;
  runtime: OrtRuntime;
  /**
   * e.g. "onnxruntime-node 1.30.0 cpu": what computed the results, recorded with them (the thread
   * count is left out: it does not change the results, and predictions must not depend on how the
   * work was split).
   */
  description: string;
  /** For logs: threads, and why an installed CUDA provider was not used. */
  detail: string;
  provider: 'cuda' | 'cpu';
}

/**
 * A session for `model` (ONNX bytes) with `threads` intra-op threads. Graph optimisation 'all'
 * (constant folding, Conv+BN fusion, layout transforms); sequential execution, since this
 * network is a chain and the parallelism is inside each op.
 *
 * `spin` (ONNX Runtime's default) keeps idle pool threads busy-waiting between ops: a little
 * faster on an otherwise idle machine, but the waiting burns the CPU that image decoding in the
 * same process, other workers or other jobs need — so the pipeline turns it off (spin: false).
 */
export async function createOrtSession(model: Uint8Array, o: { threads: number; gpu?: boolean; spin?: boolean }): Promise<OrtSessionHandle> {
  const runtime = await loadOrt();
  const base: OrtSessionOptions = { intraOpNumThreads: o.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
  if (o.spin === false) base.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
  let note = '';
  if ((o.gpu ?? true) && runtime.cudaInstalled) {
    try {
      const session = await runtime.ort.InferenceSession.create(model, { ...base, executionProviders: ['cuda', 'cpu'] });
      return { session, runtime, provider: 'cuda', description: `${ORT_PACKAGE} ${runtime.version} cuda`, detail: 'CUDA execution provider' };
    } catch (err) {
      note = `; cuda provider installed but unusable: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  const session = await runtime.ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] });
  return { session, runtime, provider: 'cpu', description: `${ORT_PACKAGE} ${runtime.version} cpu`, detail: `${o.threads} thread(s)${o.spin === false ? ', no spinning' : ''}${note}` };
}
