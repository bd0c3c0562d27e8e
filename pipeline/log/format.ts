/** Small, dependency-free formatting helpers shared by logs, progress lines, plan and status. */

/** 850ms, 12.3s, 3m05s, 1h02m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, '0')}m`;
}

/** 3 significant digits for rates: 0.0123, 1.23, 12.3, 1234. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '?';
  if (perSecond >= 100) return String(Math.round(perSecond));
  return perSecond.toPrecision(3);
}

/** `key=value` pairs for plain log lines; strings with spaces are quoted. */
export function formatFields(fields: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    let text: string;
    if (typeof v === 'number') text = Number.isInteger(v) ? String(v) : v.toPrecision(4);
    else if (typeof v === 'string') text = /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
    else text = JSON.stringify(v);
    parts.push(`${k}=${text}`);
  }
  return parts.join(' ');
}
