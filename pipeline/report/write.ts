/**
 * Writes a report into the store: charts (SVG), `report.md`, then `report.json` LAST — its
 * presence is the evaluate stage's commit, so a reader that finds it finds everything it names.
 */
import type { ObjectStore } from '../store/types.js';
import { renderSvg, reportCharts } from './charts.js';
import { renderMarkdown } from './markdown.js';
import type { Report } from './types.js';

import { REPORT_JSON, REPORT_MD } from '../contracts/evaluate.js';

export { REPORT_JSON, REPORT_MD };

/** `out` is rooted at the report's directory (e.g. `<run>/evaluate/`). */
export async function writeReport(out: ObjectStore, draft: Omit<Report, 'charts'>): Promise<Report> {
  const charts = reportCharts(draft.models, draft.pseudo, draft.curves);
  for (const c of charts) {
    await out.put(c.ref.file, await renderSvg(c.spec), { contentType: 'image/svg+xml' });
  }
  const report: Report = { ...draft, charts: charts.map((c) => c.ref) };
  await out.put(REPORT_MD, renderMarkdown(report) + '\n', { contentType: 'text/markdown; charset=utf-8' });
  await out.put(REPORT_JSON, JSON.stringify(report, null, 2) + '\n', { contentType: 'application/json' });
  return report;
}
