/**
 * Progress displays for long stages. On a TTY: live bars (cli-progress) with rate and ETA. Not on a
 * TTY (CI, files, pipes) or with --json-logs: one line every `intervalMs` with done/total, rate and
 * ETA, plus a final line — a log file then shows progress without carriage-return noise.
 *
 * Rate and ETA count only units done by THIS process: after a resume, `update(done)` starts from
 * the units already committed, which must not inflate the rate.
 */
import cliProgress from 'cli-progress';
import type { LogFields, Progress } from '../runner/stage.js';
import type { RunLogger } from './logger.js';
import { formatDuration, formatFields, formatRate } from './format.js';
import { redact } from './redact.js';

export type ProgressFactory = (label: string, total: number, unit?: string) => Progress;

/**
 * Rate/ETA bookkeeping shared by both displays. The rate is measured from the FIRST update (its
 * value and time), so units skipped on resume — reported all at once at the start — do not count.
 */
class Meter {
  private readonly createdMs = Date.now();
  private firstMs: number | undefined;
  private base = 0;
  done = 0;
  constructor(public total: number) {}
  update(done: number) {
    if (this.firstMs === undefined) {
      this.firstMs = Date.now();
      this.base = done;
    }
    this.done = done;
  }
  /** Since the display was created (for "done in ..."). */
  get elapsedMs() {
    return Date.now() - this.createdMs;
  }
  /** Units per second done by this process since its first update. */
  get rate() {
    const s = this.firstMs === undefined ? 0 : (Date.now() - this.firstMs) / 1000;
    return s > 0 ? (this.done - this.base) / s : NaN;
  }
  get etaMs() {
    const r = this.rate;
    return r > 0 && this.total > 0 ? (Math.max(0, this.total - this.done) / r) * 1000 : NaN;
  }
}

/** Periodic plain (or JSON) lines through the logger. */
export function lineProgressFactory(log: RunLogger, intervalMs = 10_000): ProgressFactory {
  return (label, total, unit = 'items') => {
    const meter = new Meter(total);
    // The first line comes one interval after the start: an instant line says nothing about rate.
    let lastLine = Date.now();
    let lastFields: LogFields = {};
    let stopped = false;
    const emit = (final: boolean) => {
      const pct = meter.total > 0 ? ` (${Math.floor((meter.done / meter.total) * 100)}%)` : '';
      const rate = Number.isFinite(meter.rate) ? `${formatRate(meter.rate)} ${unit}/s ` : '';
      const eta = final ? `in ${formatDuration(meter.elapsedMs)}` : `ETA ${formatDuration(meter.etaMs)}`;
      const fields = { ...lastFields };
      if (log.json) {
        log.info('progress', {
          label,
          done: meter.done,
          total: meter.total,
          unit,
          rate: Number.isFinite(meter.rate) ? meter.rate : null,
          etaS: final ? 0 : Number.isFinite(meter.etaMs) ? meter.etaMs / 1000 : null,
          final,
          ...fields,
        });
      } else {
        const extra = formatFields(redact(fields));
        log.info(`${label}: ${meter.done}/${meter.total} ${unit}${pct} ${rate}${eta}${extra ? ' ' + extra : ''}`);
      }
    };
    return {
      update(done, fields) {
        if (stopped) return;
        meter.update(done);
        if (fields) lastFields = fields;
        const now = Date.now();
        // At the total, the final line from stop() says it all.
        if (now - lastLine >= intervalMs && !(meter.total > 0 && done >= meter.total)) {
          lastLine = now;
          emit(false);
        }
      },
      setTotal(t) {
        meter.total = t;
      },
      stop() {
        if (stopped) return;
        stopped = true;
        emit(true);
      },
    };
  };
}

/** Live bars on a TTY; `log` lines are printed above the bars while they run. */
export class TtyBars {
  private readonly multibar: cliProgress.MultiBar;
  private active = 0;

  constructor(stream: NodeJS.WriteStream) {
    this.multibar = new cliProgress.MultiBar(
      {
        stream,
        format: '{label} |{bar}| {percentage}% {value}/{total} {unit} | {rate}/s | ETA {etaText} {extra}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        gracefulExit: false, // signals are handled by the runner, which stops the bars itself
        autopadding: true,
        fps: 5,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  /** Prints a line without tearing the bars (or directly when none is active). */
  writeLine(line: string, fallback: (line: string) => void) {
    if (this.active > 0) this.multibar.log(line + '\n');
    else fallback(line);
  }

  factory(log: RunLogger): ProgressFactory {
    return (label, total, unit = 'items') => {
      const meter = new Meter(total);
      const bar = this.multibar.create(total, 0, { label, unit, rate: '?', etaText: '?', extra: '' });
      this.active++;
      let stopped = false;
      const payload = (fields?: LogFields) => ({
        label,
        unit,
        rate: formatRate(meter.rate),
        etaText: formatDuration(meter.etaMs),
        extra: fields ? formatFields(redact(fields)) : '',
      });
      return {
        update(done, fields) {
          if (stopped) return;
          meter.update(done);
          bar.update(done, payload(fields));
        },
        setTotal(t) {
          meter.total = t;
          bar.setTotal(t);
        },
        stop: () => {
          if (stopped) return;
          stopped = true;
          this.multibar.remove(bar);
          this.active--;
          if (this.active === 0) this.multibar.stop();
          const rate = Number.isFinite(meter.rate) ? ` (${formatRate(meter.rate)} ${unit}/s)` : '';
          log.info(`${label}: ${meter.done}/${meter.total} ${unit} in ${formatDuration(meter.elapsedMs)}${rate}`);
        },
      };
    };
  }

  stop() {
    this.multibar.stop();
    this.active = 0;
  }
}
