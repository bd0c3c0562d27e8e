/**
 * Torture harness: do kills and store faults change what a run produces?
 *
 *   npx tsx bench/torture.ts --kills 8 --store s3 --seed 1 [--faults 0.02]
 *   npx tsx bench/torture.ts --kills 2 --store file --seed 3
 *
 * 1. Runs the manifest (default manifests/fashion-mnist-ci.yaml) once, undisturbed: the reference.
 * 2. Runs it again from scratch into another store root, sending N SIGKILLs to the whole process
 *    group (runner and infer workers) at seeded random moments across the stages, each a seeded
 *    fraction of the way into a stage weighted by how long the reference spent in it, and
 *    restarting `selftrain run` after each. With --faults RATE every store request of this run goes
 *    through a fault proxy (test/store/fault-proxy.ts) that answers 503, resets connections, stalls
 *    and cuts response bodies short at that rate (S3 only).
 * 3. Compares every object under the two roots (datasets and run) byte for byte with
 *    bench/compare-runs.ts, except the timing fields of bench/run-timings.rules and the attempt
 *    bookkeeping of bench/torture.rules (each rule, and each object it excused, is printed), and
 *    checks the disturbed run with `selftrain verify`.
 *
 * Prints `torture: N kills, F faults injected, M objects compared, D differ` and the names of any
 * that differ. Runs are CPU-heavy (the CI manifest takes minutes on 2 cores): run it on an idle
 * machine; `--reference <root-uri>` reuses a reference run kept with `--keep`.
 */
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { rng } from '../pipeline/data/rng.js';
import { stageRecordSchema, type StageRecord } from '../pipeline/runner/record.js';
import { verifyRun } from '../pipeline/runner/verify-run.js';
import { openStore } from '../pipeline/store/open.js';
import type { ObjectStore } from '../pipeline/store/types.js';
import { loadManifest } from '../pipeline/manifest/load.js';
import { createTestBucket, deleteTestBucket, repoRoot, s3TestEnv } from '../test/helpers/s3.js';
import { startCli, type CliRun } from '../test/e2e/helpers.js';
import { startFaultProxy, type FaultProxy } from '../test/store/fault-proxy.js';
import { compareStores, formatResult, parseIgnoreRule, parseTextIgnoreRule, readRules, realDifferences } from './compare-runs.js';

const { values: args } = parseArgs({
  options: {
    kills: { type: 'string', default: '8' },
    store: { type: 'string', default: 'file' },
    seed: { type: 'string', default: '1' },
    faults: { type: 'string', default: '0' },
    manifest: { type: 'string', default: path.join(repoRoot(), 'manifests', 'fashion-mnist-ci.yaml') },
    reference: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const kills = Number(args.kills);
const seed = Number(args.seed);
const faultRate = Number(args.faults);
if (!Number.isInteger(kills) || kills < 0) throw new Error(`--kills must be a whole number (got ${args.kills})`);
if (!(faultRate >= 0 && faultRate < 1)) throw new Error(`--faults must be a rate in [0, 1) (got ${args.faults})`);
if (args.store !== 'file' && args.store !== 's3') throw new Error(`--store must be file or s3 (got ${args.store})`);
if (faultRate > 0 && args.store !== 's3') throw new Error('--faults needs --store s3 (the proxy sits in front of the S3 endpoint)');

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
const say = (line: string) => console.log(`[torture ${elapsed()}] ${line}`);
const { manifest } = await loadManifest(args.manifest);
const stageIds: string[] = [];

console.log(`CPU: ${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}; node ${process.version}`);
console.log(`manifest ${args.manifest} (${manifest.name}); ${kills} kills, store ${args.store}, seed ${seed}, faults ${faultRate}`);

// ---- stores
const work = mkdtempSync(path.join(tmpdir(), `selftrain-torture-${seed}-`));
let bucket: string | undefined;
const env = args.store === 's3' ? await s3TestEnv() : undefined;
if (args.store === 's3' && !env) throw new Error('--store s3: no S3 endpoint (set SELFTRAIN_TEST_S3_ENDPOINT, or install Swift; see infra/local-s3/README.md)');
if (env) bucket = await createTestBucket(env);
const rootUri = (name: string) => (bucket ? `s3://${bucket}/${name}` : `file://${work}/${name}`);
const refUri = args.reference ?? rootUri('reference');
const tortureUri = rootUri('torture');
console.log(`reference ${refUri}; disturbed ${tortureUri}`);

async function cleanup(): Promise<void> {
  if (args.keep) {
    console.log(`kept: ${refUri} and ${tortureUri}${bucket ? ` (bucket ${bucket})` : ''}`);
    return;
  }
  if (env && bucket) await deleteTestBucket(env, bucket);
  rmSync(work, { recursive: true, force: true });
}

/** One `selftrain run` of the manifest into `root`, with `childEnv`. */
function startRun(root: string, childEnv: NodeJS.ProcessEnv): CliRun {
  return startCli(work, ['run', args.manifest, '--store', root], childEnv);
}

async function records(root: ObjectStore): Promise<StageRecord[]> {
  const run = root.sub(manifest.name);
  const out: StageRecord[] = [];
  for (const o of await run.list('state/')) {
    const parsed = stageRecordSchema.safeParse(JSON.parse((await run.get(o.key)).toString('utf8')));
    if (parsed.success) out.push(parsed.data);
  }
  return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

try {
  // ---- 1. reference
  const refRoot = openStore(refUri);
  if (!args.reference) {
    say('reference run (undisturbed)');
    const ref = await startRun(refUri, process.env).done;
    if (ref.code !== 0) throw new Error(`the reference run failed (exit ${ref.code}):\n${ref.stderr.slice(-4000)}`);
    say(`reference done in ${(ref.ms / 1000).toFixed(0)} s`);
  }
  const refRecords = await records(refRoot);
  for (const r of refRecords) stageIds.push(r.stage);
  if (refRecords.some((r) => r.status !== 'done')) throw new Error(`the reference run ${refUri} is not complete`);

  // ---- 2. kill plan: stages weighted by their reference duration, a seeded fraction into each
  const random = rng(seed);
  const weights = refRecords.map((r) => Math.max(1, r.durationMs ?? 1));
  const sum = weights.reduce((a, b) => a + b, 0);
  const plan = Array.from({ length: kills }, () => {
    let x = random() * sum;
    let i = 0;
    while (i < weights.length - 1 && x >= weights[i]!) x -= weights[i++]!;
    return { stage: refRecords[i]!.stage, index: i, delayMs: Math.round((0.05 + 0.9 * random()) * weights[i]!) };
  }).sort((a, b) => a.index - b.index || a.delayMs - b.delayMs);
  say(`kill plan: ${plan.map((k) => `${k.stage}+${(k.delayMs / 1000).toFixed(1)}s`).join(', ') || 'none'}`);

  // ---- 3. the disturbed run
  let proxy: FaultProxy | undefined;
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  if (faultRate > 0 && env) {
    proxy = await startFaultProxy(env.endpoint);
    proxy.setRate(faultRate, seed);
    childEnv.AWS_ENDPOINT_URL = proxy.endpoint;
    delete childEnv.AWS_ENDPOINT_URL_S3;
  }
  const landed: string[] = [];
  const failures: string[] = [];
  let finished = false;
  for (const [n, k] of plan.entries()) {
    const cli = startRun(tortureUri, childEnv);
    // The target stage starts (or resumes) in this attempt; if it was already done, the next one that runs.
    const later = new Set(stageIds.slice(k.index));
    const started = await new Promise<string | undefined>((resolve) => {
      const timer = setInterval(() => {
        for (const m of cli.stderr().matchAll(/\[([\w.-]+)\] (running|resuming):/g)) {
          if (later.has(m[1]!)) {
            clearInterval(timer);
            resolve(m[1]);
            return;
          }
        }
      }, 50);
      void cli.done.then(() => {
        clearInterval(timer);
        resolve(undefined);
      });
    });
    if (started) {
      await Promise.race([new Promise((r) => setTimeout(r, k.delayMs)), cli.done]);
      cli.killAll();
    }
    const res = await cli.done;
    if (res.signal === 'SIGKILL') {
      const running = (await records(openStore(tortureUri))).filter((r) => r.status === 'running').map((r) => r.stage);
      landed.push(`kill ${n + 1}: ${started}+${(k.delayMs / 1000).toFixed(1)}s, stage(s) running: ${running.join(', ') || 'none (between stages)'}`);
      say(landed.at(-1)!);
    } else if (res.code === 0) {
      finished = true;
      say(`kill ${n + 1} not sent: the run finished first`);
      break;
    } else {
      failures.push(`attempt before kill ${n + 1} exited ${res.code}: ${res.stderr.split('\n').filter((l) => /failed|error/.test(l)).slice(-3).join(' | ')}`);
      say(failures.at(-1)!);
    }
  }
  for (let extra = 0; !finished && extra < 3; extra++) {
    const res = await startRun(tortureUri, childEnv).done;
    if (res.code === 0) finished = true;
    else {
      failures.push(`final run exited ${res.code}: ${res.stderr.split('\n').filter((l) => /failed|error/.test(l)).slice(-3).join(' | ')}`);
      say(failures.at(-1)!);
    }
  }
  await proxy?.close();
  if (!finished) throw new Error(`the disturbed run did not complete:\n  ${failures.join('\n  ')}`);
  say('disturbed run complete');
  const torRecords = await records(openStore(tortureUri));
  for (const r of torRecords) console.log(`  ${r.stage.padEnd(18)} attempts ${r.attempts}  total ${((r.totalMs ?? 0) / 1000).toFixed(1)} s (reference ${((refRecords.find((x) => x.stage === r.stage)?.totalMs ?? 0) / 1000).toFixed(1)} s)`);

  // ---- 4. compare and verify
  const rules = [path.join(repoRoot(), 'bench', 'run-timings.rules'), path.join(repoRoot(), 'bench', 'torture.rules')].map(readRules);
  const ignore = rules.flatMap((r) => r.ignore).map(parseIgnoreRule);
  const ignoreText = rules.flatMap((r) => r['ignore-text']).map(parseTextIgnoreRule);
  const skip = rules.flatMap((r) => r.skip);
  const torRoot = openStore(tortureUri);
  const cmp = await compareStores(refRoot, torRoot, { ignore, ignoreText, skip, normalizeRoots: true });
  const verified = await verifyRun(torRoot.sub(manifest.name), torRoot);
  const injected = proxy ? Object.values(proxy.injected).reduce((a, b) => a + b, 0) : 0;
  console.log('excluded from the byte comparison (bench/run-timings.rules, bench/torture.rules): the store roots\' own URIs, and');
  for (const r of ignore) console.log(`  field ${r.field} in ${r.key}`);
  for (const r of ignoreText) console.log(`  text /${r.pattern}/ in ${r.key}`);
  for (const k of skip) console.log(`  objects ${k}`);
  console.log(formatResult(cmp));
  if (proxy) console.log(`faults injected: ${JSON.stringify(proxy.injected)} over ${proxy.requests} requests`);
  if (failures.length) console.log(`run attempts that failed (not killed): ${failures.length}\n  ${failures.join('\n  ')}`);
  console.log(`verify of the disturbed run: ${verified.problems.length === 0 ? 'ok' : `${verified.problems.length} problem(s)`} (${verified.objects} objects, ${verified.recorded} with recorded sha256)`);
  for (const p of verified.problems) console.log(`  problem: ${p}`);
  const differ = realDifferences(cmp);
  console.log(`torture: ${landed.length} kills, ${injected} faults injected, ${cmp.objects} objects compared, ${differ.length} differ${differ.length ? `: ${differ.map((d) => d.key).join(', ')}` : ''}`);
  process.exitCode = differ.length === 0 && verified.problems.length === 0 ? 0 : 1;
} finally {
  await cleanup();
}
