/**
 * A StageContext for driving a stage directly (tests, bench scripts): quiet logger, no-op progress,
 * no runner records; `stageId` defaults to the output prefix without its slash, as the runner
 * names them. Any field can be overridden.
 */
import type { StageContext } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';

export function stageContext(o: Partial<StageContext> & { run: ObjectStore; outPrefix: string }): StageContext {
  const quiet = () => {};
  return {
    root: o.run,
    storeSettings: {},
    stageId: o.outPrefix.replace(/\/+$/, ''),
    log: { info: quiet, warn: quiet, error: quiet, debug: quiet },
    signal: new AbortController().signal,
    progress: () => ({ update: quiet, setTotal: quiet, stop: quiet }),
    stageRuns: async () => [],
    ...o,
  };
}
