/**
 * turnpike as a library: start a STUN/TURN server inside another Node.js program.
 *
 * ```ts
 * import { createServer } from 'turnpike';
 * const server = await createServer({
 *   'listening-ip': ['192.0.2.10'],
 *   realm: 'example.org',
 *   'use-auth-secret': true,
 *   'static-auth-secret': [secret],
 * });
 * // …
 * await server.close();
 * ```
 *
 * The settings are a configuration file's content (the keys of the README's configuration
 * reference, with their JSON types), checked by the same code as the file, the environment and the
 * command line: anything the daemon would refuse is a ConfigError naming the key, thrown before a
 * socket is bound. Nothing is read from the environment or from a file; a program that wants the
 * daemon's sources (defaults < file < `TURNPIKE_*` environment < options) calls `loadConfig`, then
 * `checkStartup` and `startServer`. Signals, systemd notification and SIGHUP reloads belong to the
 * daemon (`turnpike start`), not to the library: call `server.reconfigure()` and `server.close()`.
 */
import { configFromObject } from './config/load.js';
import { checkStartup, configWarnings } from './config/startup-checks.js';
import { createLogger, type Logger } from './log.js';
import { startServer, type TurnpikeServer } from './server.js';

export { configFromObject, type LoadOptions, loadConfig } from './config/load.js';
export { checkStartup, configWarnings } from './config/startup-checks.js';
export type { Config, LogLevel } from './config/types.js';
export { BindError, ConfigError, TurnError } from './errors.js';
export type { Logger } from './log.js';
export { startServer, type TurnpikeServer } from './server.js';

/** Configuration in the config-file shape: `{ 'listening-port': 3478, realm: 'example.org' }`. */
export type Settings = Readonly<Record<string, unknown>>;

export interface CreateServerOptions {
  /**
   * A pino logger; by default one writing to stdout at the `log-level` and `log-format` settings. Settings
   * that have no effect are logged on it at warn ('configuration warning').
   */
  readonly log?: Logger;
}

/**
 * Validates `settings` (defaults fill what is missing), runs the start-up checks, and starts the
 * server: every listener bound, or none (a failure closes what was bound). Rejects with a
 * ConfigError for a bad configuration and a BindError when a port cannot be bound.
 */
export async function createServer(
  settings: Settings,
  options: CreateServerOptions = {},
): Promise<TurnpikeServer> {
  const config = configFromObject(settings, 'createServer settings');
  checkStartup(config);
  const log = options.log ?? createLogger(config.logLevel, 1, config.logFormat);
  for (const warning of configWarnings(config)) log.warn({ warning }, 'configuration warning');
  return startServer(config, log);
}
