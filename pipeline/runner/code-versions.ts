/**
 * Code versions of the stage kinds, hashed into every stage's fingerprint (pipeline/runner/
 * fingerprint.ts): when a stage kind's code changes what it produces, its version goes up and
 * every run's stages of that kind (and what depends on them) become stale — `plan` says
 * `stale: code changed (select v1 → v2)`, `run` re-runs exactly those. Outputs made by older code
 * are never silently reused.
 *
 * Kept honest by a lock file, stage-versions.lock.json at the repository root: per kind, the
 * version and the sha256 of every source file the kind's stage module loads (its transitive
 * imports inside the repository; `import type` lines excluded, they do not run) and the versions of
 * the npm packages it imports. test/runner/code-versions.test.ts fails when the sources no longer
 * match the lock: the change must be declared, either as a new version here, or as one that does
 * not change outputs (logging, messages, refactors):
 *
 *   npm run stage-versions -- --update                       record bumped versions' new hashes
 *   npm run stage-versions -- --update --same-output select  record select's new hashes, same version
 *
 * The update refuses a kind whose sources changed when it is neither bumped nor marked same-output.
 */
export const STAGE_CODE_VERSIONS = {
  // import 2, infer 2, evaluate 3: the eval transform and decoding (one sharp call per image,
  // reduced-scale JPEG decoding at 3x+; model.evalCrop). train 2: data-parallel workers by default
  // (per-worker BN statistics), the divergence guard's state in checkpoints, budgets of the control
  // and the bound. evaluate 4: with several rounds, the first teacher's top-1 in the summary and the
  // first teacher → all-labels gap closed in report.md. train 3, infer 3, evaluate 5: the wasm
  // backend's conv kernels multiply-add with one rounding (relaxed SIMD), and more convs take them.
  // evaluate 6: a student that started from trained weights (student.init) carries their images in
  // the report's budgets and in the control check. evaluate 7: the teacher is the control only with
  // at least the student's steps as well as its images (carried steps counted like carried images).
  import: 2,
  train: 3,
  infer: 3,
  select: 1,
  evaluate: 7,
} as const;

export type StageCodeVersions = Readonly<Record<keyof typeof STAGE_CODE_VERSIONS, number>>;
