/**
 * Stage records: one JSON object per stage at `<run>/state/<stage-id>.json`, rewritten atomically
 * (store `put`) at every status change. They are the runner's whole memory: `run` decides what to
 * skip from them, `plan` and `status` only read them.
 *
 * `runId` changes every time a stage completes; a downstream record remembers the runIds of its
 * inputs (`inputs`), so a stage whose upstream re-ran (even with an unchanged fingerprint, e.g.
 * because its outputs had been deleted) is known to be stale, across processes and crashes.
 */
import { z } from 'zod';
import type { ObjectStore } from '../store/types.js';
import { NotFoundError } from '../store/types.js';
import { redact } from '../log/redact.js';

export const stageStatuses = ['running', 'done', 'failed', 'interrupted'] as const;
export type StageStatus = (typeof stageStatuses)[number];

export const stageRecordSchema = z.object({
  format: z.literal(1),
  stage: z.string(),
  kind: z.string(),
  status: z.enum(stageStatuses),
  fingerprint: z.string(),
  version: z.string(),
  /** The stage's resolved config (redacted), kept to explain why a stage became stale. */
  config: z.unknown(),
  /** Upstream fingerprints at the time this stage started. */
  deps: z.record(z.string(), z.string()),
  /** Upstream runIds this stage's outputs were computed from. */
  inputs: z.record(z.string(), z.string()),
  runId: z.string().optional(),
  outputs: z.array(z.string()),
  backend: z.string().optional(),
  host: z.string(),
  pid: z.number(),
  /** Starts of this stage with this fingerprint (1 + resumes/retries). */
  attempts: z.number().int(),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  /** Wall time of the latest attempt. */
  durationMs: z.number().optional(),
  /** Wall time summed over all attempts with this fingerprint. */
  totalMs: z.number().optional(),
  error: z.string().optional(),
  summary: z.record(z.string(), z.unknown()).optional(),
});
export type StageRecord = z.infer<typeof stageRecordSchema>;

export const stateDir = 'state/';
export const recordKey = (stageId: string) => `${stateDir}${stageId}.json`;

export type RecordRead = { record: StageRecord } | { record: undefined; problem?: string };

/** The stage's record, or undefined (with the reason when the object exists but is unusable). */
export async function readRecord(run: ObjectStore, stageId: string): Promise<RecordRead> {
  let bytes: Buffer;
  try {
    bytes = await run.get(recordKey(stageId));
  } catch (err) {
    if (err instanceof NotFoundError) return { record: undefined };
    throw err;
  }
  try {
    const parsed = stageRecordSchema.safeParse(JSON.parse(bytes.toString('utf8')));
    if (parsed.success) return { record: parsed.data };
    return { record: undefined, problem: `record ${recordKey(stageId)} is not a valid stage record (${parsed.error.issues[0]?.message ?? 'unknown'})` };
  } catch {
    return { record: undefined, problem: `record ${recordKey(stageId)} is not valid JSON` };
  }
}

export async function writeRecord(run: ObjectStore, record: StageRecord): Promise<void> {
  await run.put(recordKey(record.stage), JSON.stringify(redact(record), null, 2) + '\n', { contentType: 'application/json' });
}

/** Every readable record in the run, sorted by stage id (for `status`). */
export async function listRecords(run: ObjectStore): Promise<{ records: StageRecord[]; problems: string[] }> {
  const records: StageRecord[] = [];
  const problems: string[] = [];
  for (const info of await run.list(stateDir)) {
    if (!info.key.endsWith('.json')) continue;
    const id = info.key.slice(stateDir.length, -'.json'.length);
    const r = await readRecord(run, id);
    if (r.record) records.push(r.record);
    else if ('problem' in r && r.problem) problems.push(r.problem);
  }
  return { records, problems };
}
