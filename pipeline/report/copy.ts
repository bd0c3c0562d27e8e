/** Copies a run's report from the store to a local directory (for `selftrain report`). */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { NotFoundError, type ObjectStore } from '../store/types.js';
import type { Report } from './types.js';
import { REPORT_JSON, REPORT_MD } from './write.js';
import { objectUri } from '../store/uri.js';

/** Where the evaluate stage writes its report inside the run. */
export const REPORT_PREFIX = 'evaluate/';

export class NoReportError extends Error {}

/** Copies report.json, report.md and the charts report.json names; returns the relative paths written. */
export async function copyReport(run: ObjectStore, outDir: string): Promise<string[]> {
  const base = objectUri(run, REPORT_PREFIX);
  let json: Buffer;
  try {
    json = await run.get(`${REPORT_PREFIX}${REPORT_JSON}`);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new NoReportError(`no report at ${base}${REPORT_JSON}: the run's evaluate stage has not finished yet (run \`selftrain run <manifest>\` to complete it; \`selftrain status\` shows where it is)`);
    }
    throw err;
  }
  let report: Report;
  try {
    report = JSON.parse(json.toString('utf8')) as Report;
  } catch (err) {
    throw new Error(`${base}${REPORT_JSON} is not valid JSON: ${(err as Error).message}`);
  }
  const root = resolve(outDir);
  const files = [REPORT_JSON, REPORT_MD, ...(Array.isArray(report.charts) ? report.charts.map((c) => c.file) : [])];
  const written: string[] = [];
  for (const file of files) {
    const target = resolve(root, file);
    // A chart path from the store must not write outside --out (e.g. "../../x").
    if (typeof file !== 'string' || !target.startsWith(root + sep)) throw new Error(`${base}${REPORT_JSON}: chart path ${JSON.stringify(file)} leaves the report directory`);
    const body = file === REPORT_JSON ? json : await run.get(`${REPORT_PREFIX}${file}`);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, body);
    written.push(join(file));
  }
  return written;
}
