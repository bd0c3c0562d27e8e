/**
 * The student's training target for one pseudo-labeled sample.
 *
 * Soft labels follow Noisy Student's offline form: stored probabilities raised to 1/T and
 * renormalised. Only the teacher's top-k are stored, so the mass outside them (1 - sum of the
 * top-k) is unknown; it is dropped and the top-k renormalised, i.e. the target is the teacher's
 * distribution conditioned on its top-k. select reports the mean dropped mass per class so a
 * user can see when k is too small.
 */
import { at } from '../checked.js';

export type LabelKind = 'soft' | 'hard';

export interface Target {
  classes: number[];
  probs: number[];
}

export function makeTarget(classes: number[], probs: number[], kind: LabelKind, temperature: number): Target {
  if (kind === 'hard') return { classes: [at(classes, 0, 'pseudo-label target: top-1 class')], probs: [1] };
  // biome-ignore lint/style/useExponentiationOperator: the arithmetic stays as written, so stored targets stay byte-identical
  const powered = probs.map((p) => Math.pow(p, 1 / temperature));
  const sum = powered.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) return { classes: [at(classes, 0, 'pseudo-label target: top-1 class')], probs: [1] };
  return { classes: [...classes], probs: powered.map((p) => p / sum) };
}

/** Probability mass the stored top-k leave out (clamped: float sums can exceed 1 slightly). */
export function truncatedMass(probs: number[]): number {
  return Math.max(0, 1 - probs.reduce((a, b) => a + b, 0));
}
