/** A StageContext for driving stages directly in tests (quiet logger, no-op progress). */
import type { StageContext } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { stageContext } from '../helpers/stage-context.js';

export function testContext(run: ObjectStore, root: ObjectStore, outPrefix: string, lines: string[] = []): StageContext {
  const log = (level: string) => (msg: string) => void lines.push(`${level}: ${msg}`);
  return stageContext({ run, root, outPrefix, log: { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') } });
}
