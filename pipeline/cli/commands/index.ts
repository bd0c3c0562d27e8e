import type { Command } from 'commander';

/** Each area adds its own module here (one line each). */
export function registerCommands(program: Command): void {
  void program;
}
