/**
 * The toy chain used by runner tests: the real chain of a manifest (same stage ids, deps and
 * configs, so fingerprints and staleness behave exactly as for real runs) with toy work.
 * Options come from the test through environment variables read by the test-only entry script.
 */
import type { Manifest } from '../../../pipeline/manifest/schema.js';
import { buildChain } from '../../../pipeline/runner/chain.js';
import { toyify, type ToyOptions } from './unit-stage.js';

export function toyChain(opts: ToyOptions) {
  return (m: Manifest) => toyify(buildChain(m), opts);
}

export function toyOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ToyOptions {
  return {
    units: Number(env.TOY_UNITS ?? 5),
    unitMs: Number(env.TOY_UNIT_MS ?? 1),
    journal: env.TOY_JOURNAL || undefined,
    failAt: env.TOY_FAIL_AT || undefined,
    unitBytes: Number(env.TOY_UNIT_BYTES ?? 0),
  };
}
