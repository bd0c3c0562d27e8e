/** `selftrain validate <manifest>`: "ok" and a short summary, or every problem (exit 2). */
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
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        process.stderr.write(err.message + '\n');
        process.stderr.write(`${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} in ${file}\n`);
        process.exitCode = 2;
      }
    });
}
