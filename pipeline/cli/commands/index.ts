import type { Command } from 'commander';
import { registerRunCommands } from './run.js';
import { registerModelCommands } from './model.js';
import { registerWorkerCommands } from './worker.js';
import { registerDatasetCommands } from './dataset.js';
import { registerReportCommands } from './report.js';
import { registerVerifyCommand } from './verify.js';

/** Each area adds its own module here (one line each). */
export function registerCommands(program: Command): void {
  registerRunCommands(program);
  registerModelCommands(program);
  registerWorkerCommands(program);
  registerDatasetCommands(program);
  registerReportCommands(program);
  registerVerifyCommand(program);
}
