/**
 * Reading and validating the JSON objects stages hand each other: one place that turns a missing,
 * unparsable or mis-shaped object into an error naming the object's URI and what was expected.
 */
import type { z } from 'zod';
import { formatZodIssues } from '../log/errors.js';
import { NotFoundError, type ObjectStore } from '../store/types.js';
import { objectUri } from '../store/uri.js';

/** A stage's config, validated: `<kind> stage config: <field>: <problem>; …` when it does not fit. */
export function parseStageConfig<S extends z.ZodType>(schema: S, raw: unknown, kind: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`${kind} stage config: ${formatZodIssues(parsed.error)}`);
  return parsed.data;
}

/** The parsed object and its bytes (callers that hash what they read need both). */
export interface JsonRead<T> {
  value: T;
  bytes: Buffer;
}

/**
 * Reads `key` from `store` and validates it with `schema`. `what` names the object for people
 * ("the import stage's dataset list"); `missing` is added when the object does not exist (why it
 * might not, e.g. "the import stage has not finished").
 */
export async function readJsonObject<S extends z.ZodType>(store: ObjectStore, key: string, schema: S, what: string, missing = ''): Promise<JsonRead<z.output<S>>> {
  const where = objectUri(store, key);
  let bytes: Buffer;
  try {
    bytes = await store.get(key);
  } catch (err) {
    const hint = err instanceof NotFoundError && missing ? ` (${missing})` : '';
    throw new Error(`cannot read ${where} (${what})${hint}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${where} (${what}) is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`${where} is not ${what}: ${formatZodIssues(parsed.error)}`);
  return { value: parsed.data, bytes };
}

/**
 * Validates `value` with `schema` and writes it as JSON. The object written is `value` itself,
 * not zod's copy: its key order (and so its bytes) stays the producer's.
 */
export async function writeJsonObject<S extends z.ZodType>(store: ObjectStore, key: string, schema: S, value: z.input<S>, indent: number): Promise<void> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Error(`refusing to write ${objectUri(store, key)}: ${formatZodIssues(parsed.error)}`);
  await store.put(key, JSON.stringify(value, null, indent) + '\n', { contentType: 'application/json' });
}
