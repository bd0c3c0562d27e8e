/**
 * The toy chain used by runner tests: the real chain of a manifest (same stage ids, deps and
 * configs, so fingerprints and staleness behave exactly as for real runs) with toy work.
 * Options come from the test through environment variables read by the test-only entry script.
 */
import type { Manifest } from '../../../pipeline/manifest/schema.js';
import { buildChain } from '../../../pipeline/runner/chain.js';
import { STAGE_CODE_VERSIONS, type StageCodeVersions } from '../../../pipeline/runner/code-versions.js';
import { toyify, type ToyOptions } from './unit-stage.js';

/** `versions`: the stage kinds' code versions (default the real ones), to test upgrades. */
export function toyChain(opts: ToyOptions, versions: StageCodeVersions = STAGE_CODE_VERSIONS) {
  return (m: Manifest) => toyify(buildChain(m, versions), opts);
}

/** TOY_CODE_VERSIONS='{"select":2}': code versions over the real ones. */
export function toyVersionsFromEnv(env: NodeJS.ProcessEnv = process.env): StageCodeVersions {
  return { ...STAGE_CODE_VERSIONS, ...(env.TOY_CODE_VERSIONS ? (JSON.parse(env.TOY_CODE_VERSIONS) as Partial<StageCodeVersions>) : {}) };
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
