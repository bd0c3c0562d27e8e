/**
 * Line logger for the CLI and the stages: plain human lines by default, one JSON object per line
 * with `--json-logs`. Every message and field passes through `redact` first, so no caller can leak
 * a secret by logging an error or a config object.
 *
 * Lines go to a `write` function rather than a stream so that, on a TTY, they can be routed
 * around live progress bars (see ./output.ts).
 */
import type { Logger, LogFields } from '../runner/stage.js';
import { redact, redactText } from './redact.js';
import { formatFields } from './format.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface RunLogger extends Logger {
  /** A logger that adds `fields` to every line (e.g. `{ stage: 'infer-1' }`). */
  child(fields: LogFields): RunLogger;
  /** Writes one raw line (already formatted), redacted; used by progress and by the CLI for results. */
  line(text: string): void;
  readonly json: boolean;
}

export interface LoggerOptions {
  json?: boolean;
  level?: LogLevel;
  write: (line: string) => void;
  /** Clock for timestamps (tests). */
  now?: () => Date;
}

export function createLogger(opts: LoggerOptions, context: LogFields = {}): RunLogger {
  const json = opts.json ?? false;
  const min = levelRank[opts.level ?? 'info'];
  const now = opts.now ?? (() => new Date());

  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (levelRank[level] < min) return;
    const all = redact({ ...context, ...fields });
    const text = redactText(msg);
    if (json) {
      opts.write(JSON.stringify({ ts: now().toISOString(), level, msg: text, ...all }));
      return;
    }
    const { stage, ...rest } = all as LogFields;
    const time = now().toISOString().slice(11, 19);
    const tag = level === 'info' ? '' : `${level}: `;
    const where = typeof stage === 'string' ? `[${stage}] ` : '';
    const extra = formatFields(rest);
    opts.write(`${time} ${where}${tag}${text}${extra ? ' ' + extra : ''}`);
  };

  return {
    json,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    line: (text) => opts.write(redactText(text)),
    child: (fields) => createLogger(opts, { ...context, ...fields }),
  };
}
