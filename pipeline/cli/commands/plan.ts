/**
 * `selftrain plan <manifest>`: each stage as done / pending / stale with the reason, and estimates
 * of what it costs (images processed, storage left in the store, compute); runs nothing.
 *
 * The estimates need no data (pipeline/runner/estimate.ts): when the store cannot be read (no
 * credentials, endpoint unreachable, bucket missing — e.g. the paper's ImageNet manifest on a
 * machine without that bucket) the stage states print as `unknown`, one `note:` line says why,
 * and the command still exits 0: the plan was printed, which is what was asked. Manifest and
 * --store syntax errors still exit 2, and anything unexpected exits 1.
 */
import type { Command } from 'commander';
import { reportCommandError } from './fail.js';
import type { RunnerCommandHooks } from './run.js';
import { trimUri } from '../../store/uri.js';

interface PlanFlags {
  store?: string;
  json?: boolean;
  localGflops?: number;
}

interface Row {
  id: string;
  kind: string;
  deps: string[];
  state: string;
  action?: string;
  reason: string;
  fingerprint?: string;
}

export function registerPlanCommand(program: Command, hooks: RunnerCommandHooks = {}): void {
  program
    .command('plan')
    .description('show what `run` would do: each stage as done, pending or stale, and why, with estimated images, storage and compute (runs nothing)')
    .argument('<manifest>', 'manifest file (.yaml, .yml or .json)')
    .option('--store <uri>', "store root overriding the manifest's")
    .option('--json', 'print the plan as JSON')
    .option('--local-gflops <n>', "this machine's sustained GFLOP/s per core for the time estimate (default: wasm as measured by bench/model.ts, 10 training / 23 inference)", (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`--local-gflops: expected a positive number, got "${v}"`);
      return n;
    })
    .action(async (file: string, flags: PlanFlags) => {
      const { loadManifest } = await import('../../manifest/load.js');
      const { openRun, openStoreUri } = await import('../../runner/open-run.js');
      const { planStages } = await import('../../runner/plan.js');
      const { StoreError } = await import('../../store/types.js');
      const est = await import('../../runner/estimate.js');
      let root: { close(): Promise<void> } | undefined;
      try {
        const { manifest } = await loadManifest(file);
        const buildChain = hooks.buildChain ?? (await import('../../runner/chain.js')).buildChain;
        const stages = buildChain(manifest);

        // States from the records; a store we cannot read leaves them unknown (estimates still print).
        let rows: Row[];
        let runUri: string;
        let storeProblem: string | undefined;
        let opened: Awaited<ReturnType<typeof openRun>> | undefined;
        try {
          opened = await openRun(manifest, flags.store);
          root = opened.root;
          runUri = opened.run.uri;
          const plan = await planStages(stages, opened.run);
          rows = plan.map(({ id, kind, deps, state, action, reason, fingerprint }) => ({ id, kind, deps, state, action, reason, fingerprint }));
        } catch (err) {
          if (!(err instanceof StoreError)) throw err;
          storeProblem = est.oneLine(err);
          runUri = opened?.run.uri ?? `${trimUri(flags.store ?? manifest.store)}/${manifest.name}`;
          opened = undefined;
          rows = stages.map((s) => ({ id: s.id, kind: s.kind, deps: s.deps, state: 'unknown', reason: 'store not readable' }));
        }

        const openedRoot = opened?.root;
        const { sizes, notes } = await est.resolveDatasetSizes(
          manifest,
          opened?.run,
          openedRoot
            ? async (ref) => {
                if (ref.includes('://')) {
                  const store = await openStoreUri(ref, manifest);
                  return { store, close: () => store.close() };
                }
                return { store: openedRoot.sub(ref), close: async () => {} };
              }
            : undefined,
        );
        const estimates = est.estimateStages(manifest, stages, sizes);
        const throughputs = { ...est.DEFAULT_THROUGHPUTS, ...(flags.localGflops ? { localInfer: flags.localGflops * 1e9, localTrain: flags.localGflops * 1e9 } : {}) };
        const totals = est.totalEstimates(estimates, throughputs);
        const { labeledMemoryWarnings } = await import('../../train/labeled-memory.js');
        const warnings = labeledMemoryWarnings(stages, { labeled: sizes.labeled.samples, unlabeled: sizes.unlabeled.samples, labeledRef: manifest.datasets.labeled });

        if (flags.json) {
          const byId = new Map(estimates.map((e) => [e.id, e]));
          const out = {
            run: runUri,
            ...(storeProblem ? { storeProblem } : {}),
            stages: rows.map((r) => {
              const e = byId.get(r.id);
              return { ...r, estimate: e ? { images: e.images ?? null, storageBytes: e.storageBytes ?? null, flops: e.flops ?? null, note: e.note } : null };
            }),
            datasets: Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, { samples: v.samples ?? null, bytes: v.bytes ?? null, classes: v.classes ?? null, origin: v.origin }])),
            datasetNotes: notes,
            warnings,
            totals: { ...nullify(totals), throughputs: { tpuV3CoreFlops: throughputs.tpuV3Core, localInferFlops: throughputs.localInfer, localTrainFlops: throughputs.localTrain } },
          };
          process.stdout.write(JSON.stringify(out, null, 2) + '\n');
          return;
        }

        // The state table keeps its shape (`<id>  <state>  <why>`); the estimates follow as a second table.
        const lines = [`plan for ${manifest.name} at ${runUri}`];
        if (storeProblem) lines.push(`note: stage states unknown, the store could not be read: ${storeProblem}`);
        const idWidth = Math.max(...rows.map((r) => r.id.length));
        for (const r of rows) lines.push(`  ${r.id.padEnd(idWidth)}  ${r.state.padEnd(7)}  ${r.reason}`);

        lines.push('estimates (order of magnitude, from the manifest and the dataset sizes; no image is read):');
        const table = estimates.map((e) => [e.id, est.fmtImages(e.images), est.fmtBytes(e.storageBytes), est.fmtFlops(e.flops), e.note]);
        table.push(['total', est.fmtImages(totals.images), est.fmtBytes(totals.storageBytes), est.fmtFlops(totals.flops), '']);
        const header = ['stage', 'images', 'storage', 'compute', 'how'];
        const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
        const fmtRow = (cells: string[]) =>
          ('  ' + cells.map((c, i) => (i === cells.length - 1 ? c : i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).trimEnd();
        lines.push(fmtRow(header));
        for (const t of table) lines.push(fmtRow(t));
        const ds = (['labeled', 'unlabeled', 'eval'] as const)
          .map((n) => `${n} ${est.fmtImages(sizes[n].samples)}${sizes[n].bytes !== undefined ? ` (${est.fmtBytes(sizes[n].bytes)})` : ''} [${sizes[n].origin}]`)
          .join(', ');
        lines.push(`  datasets: ${ds}`);
        for (const n of notes) lines.push(`  note: ${n}`);
        lines.push(
          `  compute ${est.fmtFlops(totals.flops)} ≈ ${est.fmtDuration(totals.tpuV3CoreSeconds)} of one TPUv3 core at ${throughputs.tpuV3Core / 1e12} TFLOP/s (bf16 peak), ` +
            `≈ ${est.fmtDuration(totals.localCoreSeconds)} of one core here (wasm backend as measured by bench/model.ts: ${throughputs.localTrain / 1e9} GFLOP/s training, ${throughputs.localInfer / 1e9} GFLOP/s inference; --local-gflops to change)`,
        );
        for (const w of warnings) lines.push(`warning: ${w}`);

        if (opened) {
          const { leaseKey, judgeLease, defaultLeaseTtlMs } = await import('../../runner/lease.js');
          const lease = await opened.run.get(leaseKey).then(
            (b) => JSON.parse(b.toString('utf8')) as Parameters<typeof judgeLease>[0],
            () => undefined,
          );
          if (lease) {
            const verdict = judgeLease(lease, defaultLeaseTtlMs);
            lines.push(verdict.takeable === 'no' ? `note: a runner is active right now: ${verdict.why}` : `note: a stale lease is left: ${verdict.why}`);
          }
          const todo = rows.filter((p) => p.action !== 'skip').length;
          lines.push(todo === 0 ? 'everything is up to date' : `${todo} of ${rows.length} stages would run`);
        } else {
          lines.push(`${rows.length} stages; states unknown until the store is readable`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      } catch (err) {
        await reportCommandError(err);
      } finally {
        await root?.close().catch(() => {});
      }
    });
}

function nullify<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> | null } {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v ?? null])) as { [K in keyof T]: Exclude<T[K], undefined> | null };
}
