/** `selftrain status`'s table: a few key numbers per stage kind, every line within 120 columns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StageRecord } from '../../pipeline/runner/record.js';
import { keyNumbers, statusTable } from '../../pipeline/runner/status-table.js';

const base = { format: 1 as const, fingerprint: 'f', version: '1', config: {}, deps: {}, inputs: {}, outputs: [], host: 'h', pid: 1, startedAt: '2026-01-01T10:00:00.000Z' };
const rec = (stage: string, kind: string, summary: Record<string, unknown>, extra: Partial<StageRecord> = {}): StageRecord => ({
  ...base,
  stage,
  kind,
  status: 'done',
  attempts: 1,
  totalMs: 26_000,
  backend: 'wasm',
  summary,
  ...extra,
});

// Summaries shaped as the stages write them (a Fashion-MNIST CI run's records), per-epoch arrays included.
const epochs = Array.from({ length: 30 }, (_, i) => ({ epoch: i + 1, step: i * 7, lr: 0.1, trainLoss: 2.3, trainAcc: 0.2, heldoutLoss: 1.5, heldoutAcc: 0.4, imagesPerSec: 80, seconds: 5 }));
const records = [
  rec('import', 'import', { labeled: { samples: 500, shards: 1, ref: 'datasets/train-80400cbeee/labeled' }, unlabeled: { samples: 5000, shards: 10 }, eval: { samples: 2000, shards: 4 } }, { backend: undefined }),
  rec('train-teacher-1', 'train', { role: 'teacher', labeled: 'file:///a/very/long/path/'.repeat(8), trainImages: 490, heldoutImages: 10, steps: 42, totalSteps: 42, imagesPerSec: 109.08, heldoutAcc: 0.5, epochs }),
  rec('infer-1', 'infer', { samples: 5000, skipped: 0, imagesPerSecond: 918.3, restarts: 0, teacher: 'resnet_rs_26_w0p25_small@38d3d438f9bc671b' }),
  rec('select-1', 'select', { target: 500, predicted: 5000, unique: 3581, pseudoLabeled: 4503, accuracy: 0.71879 }, { backend: undefined }),
  rec('train-student-10', 'train', { role: 'student', trainImages: 1_281_167, steps: 107_100, totalSteps: 107_100, imagesPerSec: 4123.4, heldoutAcc: 0.8123, pseudo: { unique: 130_000_000 }, epochs }),
  rec('evaluate', 'evaluate', { teacher: 0.6135, student: 0.613, baseline: 0.582, pseudoLabelPrecision: 0.71879, models: 3, charts: 5 }),
  rec('infer-2', 'infer', {}, { status: 'failed', attempts: 4, error: `infer: 3 shard(s) of s3://bucket/${'x'.repeat(200)} cannot be processed:\n  shard-000001: bad\n  shard-000002: bad` }),
];

test('one line per stage with its key numbers, all within 120 columns', () => {
  const lines = statusTable(records);
  for (const l of lines) assert.ok(l.length <= 120, `${l.length} columns: ${l}`);
  assert.match(lines[0]!, /^ {2}STAGE\s+STATUS\s+TRIES\s+TIME\s+BACKEND\s+KEY NUMBERS$/);
  const row = (id: string) => lines.find((l) => l.startsWith(`  ${id} `))!;
  assert.match(row('import'), /done\s+1\s+26\.0s\s+-\s+labeled 500, unlabeled 5,000, eval 2,000$/);
  assert.match(row('train-teacher-1'), /42\/42 steps, 490 images, held-out 50\.0%, 109 img\/s$/);
  assert.match(row('train-student-10'), /107K\/107K steps, 1\.28M\+130M pseudo images, held-out 81\.2%, 4123 img\/s$/);
  assert.match(row('infer-1'), /5,000 images, 0 skipped, 918 img\/s$/);
  assert.match(row('select-1'), /kept 3,581 of 5,000, 4,503 with repeats, accuracy 71\.9%$/);
  assert.match(row('evaluate'), /top-1 teacher 61\.4%, student 61\.3%, baseline 58\.2%; precision 71\.9%$/);
  assert.doesNotMatch(lines.join('\n'), /heldoutLoss|very\/long\/path|"epoch"/, 'no whole summaries or arrays');
  // A failure: its first line, cut to the width, and where the rest is.
  const error = lines[lines.indexOf(row('infer-2')) + 1]!;
  assert.match(error, /^\s+error: infer: 3 shard\(s\) of s3:\/\/bucket\/x+…$/);
  assert.match(row('infer-2'), /failed\s+4\s+26\.0s/);
});

test('stages of other kinds show their first numbers; a missing summary shows nothing', () => {
  assert.equal(keyNumbers({ kind: 'test', summary: { units: 5, executed: 3, skipped: 2, note: 'x' } }), 'units 5, executed 3, skipped 2');
  assert.equal(keyNumbers({ kind: 'train', summary: undefined }), '');
  assert.equal(keyNumbers({ kind: 'evaluate', summary: { teacher: 0.5, student: 0.6, baseline: null, pseudoLabelPrecision: null } }), 'top-1 teacher 50.0%, student 60.0%; precision -');
});
