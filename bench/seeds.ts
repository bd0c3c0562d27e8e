/**
 * Is a recipe change real, or one lucky seed? Runs a manifest (default: the CI-sized
 * manifests/fashion-mnist-ci.yaml) end to end with several seeds, each from scratch in its own
 * store, and prints every seed's teacher, student and control top-1 with the student's gains and
 * their McNemar p-values (from each run's report.json summary), then the mean and spread of
 * student − teacher (and − control) over the seeds.
 *
 *   npx tsx bench/seeds.ts [--manifest manifests/fashion-mnist-ci.yaml] [--seeds 0,1,2] [--keep DIR]
 *
 * The seed is the manifest's `seed` (data split, initial weights, data order, noise): a different
 * seed is a different labeled set too, as a user with other labels would see. Wall time and the
 * CPU model are printed with the numbers, for comparing runs across machines.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import type { ReportSummary } from '../pipeline/report/types.js';
import { openStore } from '../pipeline/store/open.js';
import { startCli } from '../test/e2e/helpers.js';
import { repoRoot } from '../test/helpers/s3.js';

const { values: args } = parseArgs({
  options: {
    manifest: { type: 'string', default: path.join(repoRoot(), 'manifests', 'fashion-mnist-ci.yaml') },
    seeds: { type: 'string', default: '0,1,2' },
    keep: { type: 'string' },
  },
});

const seeds = args.seeds.split(',').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--seeds: "${s}" is not a non-negative integer (expected e.g. 0,1,2)`);
  return n;
});
const work = args.keep ?? mkdtempSync(path.join(tmpdir(), 'selftrain-seeds-'));
mkdirSync(work, { recursive: true }); // --keep may name a directory that does not exist yet

const pts = (d: number | null) => (d === null ? '-' : `${d >= 0 ? '+' : '−'}${Math.abs(d * 100).toFixed(2)}`);
const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(2)}%`);
const pv = (p: number | null) => (p === null ? '-' : p < 1e-4 ? p.toExponential(1) : p.toFixed(4));

function meanSd(xs: number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
}

async function runSeed(seed: number): Promise<ReportSummary & { seed: number; seconds: number }> {
  const doc = parseDocument(readFileSync(args.manifest, 'utf8'), { merge: true });
  const name = `${String(doc.get('name'))}-seed${seed}`;
  doc.set('name', name);
  doc.set('seed', seed);
  const store = pathToFileURL(path.join(work, 'runs')).href;
  doc.set('store', store);
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(file, doc.toString());
  const run = startCli(repoRoot(), ['run', file]);
  const r = await run.done;
  if (r.code !== 0) throw new Error(`seed ${seed}: selftrain run ${file} exited with ${r.code ?? r.signal}:\n${r.stderr.slice(-3000)}`);
  const root = openStore(store);
  try {
    const report = JSON.parse((await root.sub(name).get('evaluate/report.json')).toString('utf8')) as { summary: ReportSummary };
    return { ...report.summary, seed, seconds: r.ms / 1000 };
  } finally {
    await root.close();
  }
}

console.log(`bench/seeds: ${path.relative(repoRoot(), args.manifest)} with seeds ${seeds.join(', ')}; runs under ${work}`);
console.log(`CPU ${cpus()[0]?.model ?? '?'} x ${cpus().length}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const rows: Awaited<ReturnType<typeof runSeed>>[] = [];
for (const seed of seeds) {
  const t = performance.now();
  rows.push(await runSeed(seed));
  console.error(`seed ${seed} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
}
console.log('seed  teacher   student   control   student−teacher  p        student−control  p        wall');
for (const r of rows) {
  console.log(
    `${String(r.seed).padEnd(5)} ${pct(r.teacherTop1).padEnd(9)} ${pct(r.studentTop1).padEnd(9)} ${pct(r.controlTop1).padEnd(9)} ` +
      `${pts(r.studentMinusTeacher).padEnd(16)} ${pv(r.pValueVsTeacher).padEnd(8)} ${pts(r.studentMinusControl).padEnd(16)} ${pv(r.pValueVsControl).padEnd(8)} ${r.seconds.toFixed(0)} s`,
  );
}
for (const [what, key] of [['student − teacher', 'studentMinusTeacher'], ['student − control', 'studentMinusControl']] as const) {
  const xs = rows.map((r) => r[key]).filter((x): x is number => typeof x === 'number');
  if (xs.length === 0) {
    console.log(`${what}: no values (no ${what.split(' − ')[1]} in the reports)`);
    continue;
  }
  const { mean, sd } = meanSd(xs);
  console.log(`${what}: mean ${pts(mean)} points, sd ${(sd * 100).toFixed(2)}, min ${pts(Math.min(...xs))}, max ${pts(Math.max(...xs))} over ${xs.length} seed(s)`);
}
if (!args.keep) rmSync(work, { recursive: true, force: true });
