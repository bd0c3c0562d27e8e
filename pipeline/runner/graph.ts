/** Checks a stage chain before anything runs: unique ids, known deps listed before their users. */
import type { StageDefinition } from './stage.js';

const idPattern = /^[a-z0-9][a-z0-9._-]*$/i;

export function validateChain(stages: readonly StageDefinition[]): void {
  const seen = new Set<string>();
  for (const s of stages) {
    if (!idPattern.test(s.id)) throw new Error(`stage chain: invalid stage id ${JSON.stringify(s.id)} (letters, digits, ".", "_", "-")`);
    if (seen.has(s.id)) throw new Error(`stage chain: duplicate stage id "${s.id}"`);
    for (const d of s.deps) {
      if (!seen.has(d)) {
        const later = stages.some((o) => o.id === d);
        throw new Error(`stage chain: stage "${s.id}" depends on "${d}", which ${later ? 'comes after it (stages must be in dependency order)' : 'does not exist'}`);
      }
    }
    seen.add(s.id);
  }
}

/** The stage's output prefix inside the run: `<id>/`. */
export const outPrefixOf = (id: string) => `${id}/`;
