/**
 * Wires a logger and a progress factory to one output stream, choosing the display from the
 * environment: live bars only when the stream is a TTY and JSON logs were not asked for.
 */
import { createLogger, type LogLevel, type RunLogger } from './logger.js';
import { lineProgressFactory, TtyBars, type ProgressFactory } from './progress.js';

export interface CliOutput {
  log: RunLogger;
  progress: ProgressFactory;
  /** Stops live displays (on exit or on a signal). */
  close(): void;
}

export interface CliOutputOptions {
  json?: boolean;
  level?: LogLevel;
  stream?: NodeJS.WriteStream;
  /** Seconds between plain progress lines (non-TTY). */
  progressIntervalMs?: number;
}

export function createCliOutput(opts: CliOutputOptions = {}): CliOutput {
  const stream = opts.stream ?? process.stderr;
  const json = opts.json ?? false;
  const direct = (line: string) => {
    stream.write(line + '\n');
  };
  if (!json && stream.isTTY) {
    const bars = new TtyBars(stream);
    const log = createLogger({ json, level: opts.level, write: (line) => bars.writeLine(line, direct) });
    return { log, progress: bars.factory(log), close: () => bars.stop() };
  }
  const envInterval = Number(process.env.SELFTRAIN_PROGRESS_INTERVAL_S);
  const intervalMs = opts.progressIntervalMs ?? (envInterval > 0 ? envInterval * 1000 : 10_000);
  const log = createLogger({ json, level: opts.level, write: direct });
  return { log, progress: lineProgressFactory(log, intervalMs), close: () => {} };
}
