/**
 * Stage fingerprints: sha256 over canonical JSON of the stage's kind, code version, resolved
 * config and its upstream stages' fingerprints. Canonical = object keys sorted at every level and
 * `undefined` dropped, so the same settings always hash the same whatever order a manifest lists
 * them in.
 */
import { createHash } from 'node:crypto';
import type { StageDefinition } from './stage.js';

export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalize(value, '(config)'));
}

function canonicalize(value: unknown, where: string): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    // NaN/Infinity would all serialise as null and collide; they are never valid settings.
    if (!Number.isFinite(value)) throw new Error(`cannot fingerprint ${where}: ${value} is not a finite number`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => canonicalize(v === undefined ? null : v, `${where}[${i}]`));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonicalize(v, `${where}.${key}`);
    }
    return out;
  }
  throw new Error(`cannot fingerprint ${where}: unsupported ${typeof value}`);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export const defaultStageVersion = '1';

export function stageFingerprint(stage: StageDefinition, depFingerprints: Record<string, string>): string {
  return sha256(
    canonicalJson({
      kind: stage.kind,
      version: stage.version ?? defaultStageVersion,
      config: stage.config,
      deps: depFingerprints,
    }),
  );
}

/** Leaf paths whose values differ between two configs, as `path: old → new` (for "why stale"). */
export function configDiff(before: unknown, after: unknown, limit = 3): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (out.length > limit) return;
    const plainA = a !== null && typeof a === 'object' && !Array.isArray(a);
    const plainB = b !== null && typeof b === 'object' && !Array.isArray(b);
    if (plainA && plainB) {
      const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
      for (const k of keys) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      return;
    }
    if (canonicalJson(a ?? null) !== canonicalJson(b ?? null)) out.push(`${path || '(config)'}: ${short(a)} → ${short(b)}`);
  };
  walk(before, after, '');
  return out.length > limit ? [...out.slice(0, limit), 'and more'] : out;
}

function short(v: unknown): string {
  if (v === undefined) return '(unset)';
  const s = JSON.stringify(v);
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}
