import type { Config } from './config/types.js';

/**
 * Runs the daemon until it is stopped by a signal: creates the logger, starts the listeners,
 * installs the signal handlers. Resolves when the daemon has shut down cleanly.
 */
export async function runDaemon(config: Config): Promise<void> {
  void config;
  throw new Error('not yet wired');
}
