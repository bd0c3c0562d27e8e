/**
 * The train task of a pool worker (pipeline/parallel/worker-main.ts loads this module): builds its
 * model replica from the architecture, starts from the coordinator's weights, and answers
 * step / evaluate / state / load calls (see replicas.ts for the coordinator side).
 *
 * Test hook: SELFTRAIN_TEST_WORKER_EXIT="<rank>:<step>" makes that worker exit (code 70) as it
 * starts that step — a worker that dies mid-run, on demand (tests/train/parallel*.test.ts).
 */
import { getTf } from '../backend/select.js';
import type { ResNetRSArch } from '../model/family.js';
import { buildResNetRS } from '../model/resnet-rs.js';
import type { WorkerContext } from '../parallel/protocol.js';
import type { StoreSettings } from '../store/settings.js';
import type { NamedArray } from './checkpoint.js';
import type { ImageSet } from './data.js';
import { PSEUDO_CACHE_BYTES, attachPseudoSource, type PseudoIndex, type PseudoSource } from './pseudo.js';
import { Replica, type ReplicaPlan, type ReplicaState } from './replica.js';

export interface ReplicaPayload {
  arch: ResNetRSArch;
  plan: ReplicaPlan;
  train: ImageSet;
  heldout: ImageSet;
  pseudo?: PseudoIndex;
  /** The starting weights (model order); slots start at zero, EMA shadows at these weights. */
  weights: NamedArray[];
  /** How to reach the run's stores (the unlabeled shards a student reads). */
  storeSettings: StoreSettings;
}

export type ReplicaRequest =
  | { kind: 'step'; step: number; lr: number }
  | { kind: 'evaluate'; from: number; to: number }
  | { kind: 'state' }
  | { kind: 'digest' }
  | { kind: 'load'; state: ReplicaState }
  | { kind: 'close' };

export const TEST_EXIT_ENV = 'SELFTRAIN_TEST_WORKER_EXIT';

function exitHook(rank: number): number | undefined {
  const spec = process.env[TEST_EXIT_ENV];
  const m = spec ? /^(\d+):(\d+)$/.exec(spec) : null;
  return m && Number(m[1]) === rank ? Number(m[2]) : undefined;
}

export async function serve(ctx: WorkerContext<ReplicaPayload>): Promise<(request: unknown) => Promise<unknown>> {
  const tf = getTf();
  const p = ctx.payload;
  const model = buildResNetRS(p.arch);
  const weights = model.weights;
  if (weights.length !== p.weights.length) throw new Error(`replica model has ${weights.length} weights, the coordinator sent ${p.weights.length}`);
  tf.tidy(() => p.weights.forEach((a, i) => weights[i]!.write(tf.tensor(a.data, a.shape))));
  let pseudo: PseudoSource | undefined;
  // Each worker decodes only its slices' images: the decode cache budget is shared out, not multiplied.
  if (p.pseudo) pseudo = await attachPseudoSource({ ...p.pseudo, cacheBytes: Math.floor((p.pseudo.cacheBytes ?? PSEUDO_CACHE_BYTES) / ctx.size) }, { storeSettings: p.storeSettings });
  const replica = new Replica({ tf, model, plan: p.plan, train: p.train, heldout: p.heldout, pseudo, rank: ctx.rank, size: ctx.size, allReduce: ctx.allReduce });
  const exitAt = exitHook(ctx.rank);
  return async (raw) => {
    const r = raw as ReplicaRequest;
    switch (r.kind) {
      case 'step':
        if (r.step === exitAt) process.exit(70);
        return replica.step(r.step, r.lr);
      case 'evaluate':
        return replica.evaluate(r.from, r.to);
      case 'state':
        return replica.state();
      case 'digest':
        return replica.digest();
      case 'load':
        replica.load(r.state);
        return null;
      case 'close':
        replica.dispose();
        model.dispose();
        await pseudo?.close();
        return null;
    }
  };
}
