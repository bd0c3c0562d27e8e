/**
 * The divergence monitor on loss/accuracy sequences: the MNIST student (loss 6 → ~20,
 * held-out accuracy at 0.1-0.2) is caught after `patience` evaluations past warm-up; healthy
 * training (noisy, slowly falling loss) and a warm-up spike are not; retries back the LR off and
 * run out; the state survives a checkpoint round trip; the error names step, numbers and setting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DivergenceError, DivergenceMonitor, type Verdict } from '../../pipeline/train/divergence.js';

const feed = (m: DivergenceMonitor, losses: number[], accs: (number | null)[], warmFrom = 0): Verdict[] =>
  losses.map((l, i) => m.observe({ step: (i + 1) * 30, epoch: i + 1, trainLoss: l, heldoutAcc: accs[i] ?? null, warm: i >= warmFrom }));

test('a collapsing student (loss 6 → 20, held-out at chance) is caught at the third bad evaluation', () => {
  const m = new DivergenceMonitor(10);
  const v = feed(m, [6.1, 5.8, 9.5, 17.9, 19.6, 20.3, 20.1], [0.8, 0.82, 0.4, 0.2, 0.15, 0.1, 0.1], 1);
  const first = v.findIndex((x) => x.kind === 'diverged');
  // Loss above 3 × 5.8 = 17.4 at evaluations 4, 5, 6 → the 6th evaluation (index 5).
  assert.equal(first, 5);
  const d = v[first] as Extract<Verdict, { kind: 'diverged' }>;
  assert.equal(d.step, 180);
  assert.equal(d.runningMin, 5.8);
  assert.match(d.reason, /20\.3000 has stayed above 3 × its running minimum 5\.8000 for 3 evaluations/);
});

test('held-out accuracy stuck at chance is caught even when the loss looks calm', () => {
  const m = new DivergenceMonitor(10);
  const v = feed(m, [2.3, 2.3, 2.3, 2.3], [0.1, 0.11, 0.12, 0.09]);
  assert.deepEqual(v.map((x) => x.kind), ['ok', 'ok', 'diverged', 'diverged']);
  assert.match((v[2] as { reason: string }).reason, /held-out accuracy 0\.120 has stayed at chance \(≤ 0\.120 with 10 classes\) for 3 evaluations/);
  // Without a hold-out only the loss rule applies.
  assert.ok(feed(new DivergenceMonitor(10), [2.3, 2.3, 2.3, 2.3], [null, null, null, null]).every((x) => x.kind === 'ok'));
});

test('healthy training and a spike during warm-up are not divergence; a single spike after it is forgiven', () => {
  const healthy = [2.4, 1.9, 1.7, 1.75, 1.5, 1.52, 1.3, 1.35, 1.2];
  assert.ok(feed(new DivergenceMonitor(10), healthy, healthy.map(() => 0.6)).every((x) => x.kind === 'ok'));
  // Spike while warming up (not judged), and two spikes in a row after it (patience 3).
  const m = new DivergenceMonitor(10);
  assert.ok(feed(m, [2.0, 9.0, 9.0, 9.0, 1.8, 7.0, 7.0, 1.7], Array(8).fill(0.5), 4).every((x) => x.kind === 'ok'));
  // A non-finite loss is divergence at once.
  const n = new DivergenceMonitor(10).observe({ step: 5, epoch: 1, trainLoss: NaN, heldoutAcc: null, warm: false });
  assert.equal(n.kind, 'diverged');
});

test('retries halve the LR scale twice, then run out; state round-trips through a checkpoint', () => {
  const m = new DivergenceMonitor(10);
  feed(m, [3, 2], [0.5, 0.5]);
  assert.equal(m.retry(), 0.5);
  assert.equal(m.retry(), 0.25);
  assert.equal(m.retry(), null);
  assert.equal(m.retries, 2);
  const copy = new DivergenceMonitor(10);
  copy.load(JSON.parse(JSON.stringify(m.state())));
  assert.deepEqual(copy.state(), { runningMin: 2, lossStrikes: 0, chanceStrikes: 0, retries: 2 });
  assert.throws(() => copy.load({ runningMin: 1, lossStrikes: -1, chanceStrikes: 0, retries: 0 }), /invalid divergence monitor state/);
});

test('the error names the step, the numbers, the retries and the setting to change', () => {
  const m = new DivergenceMonitor(10);
  const v = feed(m, [6, 19, 19, 19], [0.8, 0.3, 0.3, 0.3]).find((x) => x.kind === 'diverged') as Extract<Verdict, { kind: 'diverged' }>;
  const e = new DivergenceError(v, { path: 'student.train.baseLr', value: 0.8 }, 2);
  assert.equal(
    e.message,
    'training diverged at step 120 (epoch 4): the training loss 19.0000 has stayed above 3 × its running minimum 6.0000 for 3 evaluations; held-out accuracy 0.300, ' +
      'still after 2 retries from the last good checkpoint with a smaller learning rate. Lower student.train.baseLr (now 0.8) or check the data',
  );
});
