#!/usr/bin/env node
/**
 * `selftrain` command-line entry. Each command group lives in its own module under
 * pipeline/cli/commands/ and registers itself on the commander program.
 */
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command();
program
  .name('selftrain')
  .description('ResNet-RS Noisy Student self-training: teacher -> pseudo-labels -> noised student')
  .showHelpAfterError();
registerCommands(program);
await program.parseAsync(process.argv);
