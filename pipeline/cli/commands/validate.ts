/**
 * `selftrain validate <manifest>`: "ok" and a short summary, or every problem (exit 2). A valid
 * manifest that cannot train as is (a labeled set over the train stage's in-memory limit, sized
 * from `datasets.sizes` or a known source) gets a warning on stderr; the exit code stays 0.
 */
import type { Command } from 'commander';
import type { RunnerCommandHooks } from './run.js';
import { trimUri } from '../../store/uri.js';

export function registerValidateCommand(program: Command, hooks: RunnerCommandHooks = {}): void {
  program
    .command('validate')
    .description('check a manifest against the schema; print a summary or every problem with its field path')
    .argument('<manifest>', 'manifest file (.yaml, .yml or .json)')
    .action(async (file: string) => {
      const { loadManifest, ManifestError } = await import('../../manifest/load.js');
      try {
        const { manifest } = await loadManifest(file);
        const buildChain = hooks.buildChain ?? (await import('../../runner/chain.js')).buildChain;
        const stages = buildChain(manifest);
        const lines = [
          `ok: ${file}`,
          `  name:       ${manifest.name}`,
          `  store:      ${manifest.store}${manifest.s3?.endpoint ? ` (endpoint ${manifest.s3.endpoint})` : ''}`,
          `  run:        ${trimUri(manifest.store)}/${manifest.name}/`,
          `  backend:    ${manifest.backend}`,
          `  seed:       ${manifest.seed}, iterations: ${manifest.iterations}`,
          `  models:     teacher ${manifest.teacher.model.name}, student ${manifest.student.model.name}`,
          `  stages (${stages.length}): ${stages.map((s) => s.id).join(' → ')}`,
        ];
        process.stdout.write(lines.join('\n') + '\n');
        // Valid, but not runnable as is: say so now rather than hours into the run.
        const { manifestDatasetSizes } = await import('../../runner/estimate.js');
        const { labeledMemoryWarnings } = await import('../../train/labeled-memory.js');
        const sizes = manifestDatasetSizes(manifest);
        for (const w of labeledMemoryWarnings(stages, { labeled: sizes.labeled.samples, unlabeled: sizes.unlabeled.samples, labeledRef: manifest.datasets.labeled })) process.stderr.write(`warning: ${w}\n`);
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        process.stderr.write(err.message + '\n');
        process.stderr.write(`${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} in ${file}\n`);
        process.exitCode = 2;
      }
    });
}
