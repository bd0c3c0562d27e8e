/**
 * Divergence detection for the training loop, as a pure state machine over the per-evaluation
 * numbers the loop already computes (epoch training loss, held-out accuracy), so that a bad setting
 * fails loudly instead of silently training a worse model:
 *
 *   - the training loss stays above `lossFactor` × its running minimum for `patience` consecutive
 *     evaluations after warm-up (a student whose loss climbs from 6 to 20 and stays there), or
 *   - the held-out accuracy stays at chance (≤ 1/K + `chanceMargin`) for `patience` consecutive
 *     evaluations after warm-up.
 *
 * The loop decides what to do with a verdict (restore the last good checkpoint with the learning
 * rate scaled by `backoff`, at most `maxRetries` times, then stop with `DivergenceError`); the
 * monitor only judges, keeps the backoff count, and round-trips its state through a checkpoint.
 * The running minimum includes warm-up evaluations; only the judging waits for warm-up to end.
 */

export interface DivergenceSettings {
  lossFactor: number;
  patience: number;
  chanceMargin: number;
  backoff: number;
  maxRetries: number;
}

export const DIVERGENCE_DEFAULTS: DivergenceSettings = { lossFactor: 3, patience: 3, chanceMargin: 0.02, backoff: 0.5, maxRetries: 2 };

export interface Evaluation {
  step: number;
  epoch: number;
  trainLoss: number;
  heldoutAcc: number | null;
  /** True once the learning-rate warm-up is over. */
  warm: boolean;
}

export type Verdict =
  | { kind: 'ok' }
  | { kind: 'diverged'; step: number; epoch: number; reason: string; trainLoss: number; runningMin: number; heldoutAcc: number | null };

export interface DivergenceState {
  runningMin: number | null;
  lossStrikes: number;
  chanceStrikes: number;
  retries: number;
}

export class DivergenceMonitor {
  private s: DivergenceState = { runningMin: null, lossStrikes: 0, chanceStrikes: 0, retries: 0 };

  constructor(
    readonly numClasses: number,
    readonly settings: DivergenceSettings = DIVERGENCE_DEFAULTS,
  ) {
    if (!(numClasses >= 2)) throw new RangeError(`divergence monitor needs at least 2 classes (got ${numClasses})`);
  }

  observe(e: Evaluation): Verdict {
    const { lossFactor, patience, chanceMargin } = this.settings;
    const s = this.s;
    if (!Number.isFinite(e.trainLoss)) {
      return { kind: 'diverged', step: e.step, epoch: e.epoch, reason: `the training loss is ${e.trainLoss}`, trainLoss: e.trainLoss, runningMin: s.runningMin ?? NaN, heldoutAcc: e.heldoutAcc };
    }
    const min = s.runningMin === null ? e.trainLoss : Math.min(s.runningMin, e.trainLoss);
    s.runningMin = min;
    if (!e.warm) return { kind: 'ok' };
    s.lossStrikes = e.trainLoss > lossFactor * min ? s.lossStrikes + 1 : 0;
    const chance = 1 / this.numClasses + chanceMargin;
    s.chanceStrikes = e.heldoutAcc !== null && e.heldoutAcc <= chance ? s.chanceStrikes + 1 : 0;
    if (s.lossStrikes >= patience) {
      return {
        kind: 'diverged', step: e.step, epoch: e.epoch, trainLoss: e.trainLoss, runningMin: min, heldoutAcc: e.heldoutAcc,
        reason: `the training loss ${e.trainLoss.toFixed(4)} has stayed above ${lossFactor} × its running minimum ${min.toFixed(4)} for ${patience} evaluations`,
      };
    }
    if (s.chanceStrikes >= patience) {
      return {
        kind: 'diverged', step: e.step, epoch: e.epoch, trainLoss: e.trainLoss, runningMin: min, heldoutAcc: e.heldoutAcc,
        reason: `the held-out accuracy ${e.heldoutAcc!.toFixed(3)} has stayed at chance (≤ ${chance.toFixed(3)} with ${this.numClasses} classes) for ${patience} evaluations`,
      };
    }
    return { kind: 'ok' };
  }

  /**
   * After a divergence: the learning-rate scale for the retry from the last good checkpoint, or
   * null when the retries are used up. Strikes reset; the running minimum is kept (the checkpoint
   * came before the blow-up).
   */
  retry(): number | null {
    if (this.s.retries >= this.settings.maxRetries) return null;
    this.s.retries++;
    this.s.lossStrikes = 0;
    this.s.chanceStrikes = 0;
    return this.settings.backoff ** this.s.retries;
  }

  get retries(): number {
    return this.s.retries;
  }

  state(): DivergenceState {
    return { ...this.s };
  }

  load(state: DivergenceState): void {
    const ok = (state.runningMin === null || Number.isFinite(state.runningMin)) && [state.lossStrikes, state.chanceStrikes, state.retries].every((n) => Number.isInteger(n) && n >= 0);
    if (!ok) throw new Error(`invalid divergence monitor state ${JSON.stringify(state)}`);
    this.s = { ...state };
  }
}

/** The error a loop throws when the retries are used up: the step, the numbers and what to change. */
export class DivergenceError extends Error {
  constructor(
    readonly verdict: Extract<Verdict, { kind: 'diverged' }>,
    readonly setting: { path: string; value: number },
    retries: number,
  ) {
    super(
      `training diverged at step ${verdict.step} (epoch ${verdict.epoch}): ${verdict.reason}` +
        (verdict.heldoutAcc !== null ? `; held-out accuracy ${verdict.heldoutAcc.toFixed(3)}` : '') +
        (retries > 0 ? `, still after ${retries} retr${retries === 1 ? 'y' : 'ies'} from the last good checkpoint with a smaller learning rate` : '') +
        `. Lower ${setting.path} (now ${setting.value}) or check the data`,
    );
    this.name = 'DivergenceError';
  }
}
