/**
 * Process lifecycle: logger, listeners, signals, fatal errors.
 *  - SIGTERM / SIGINT: close every socket and exit 0; a second signal exits at once.
 *  - SIGHUP: reloads the TLS certificate and key (full configuration reload arrives with the
 *    operations work); it never kills the daemon, which is Node's default for SIGHUP.
 *  - uncaught exceptions and unhandled rejections: logged at fatal (synchronously), exit 1.
 */
import type { Config } from './config/types.js';
import { createLogger, type Logger } from './log.js';
import { listenAddresses, startServer, type TurnpikeServer } from './server.js';

export async function runDaemon(config: Config, log: Logger = createLogger(config.logLevel)): Promise<void> {
  installFatalHandlers(log);
  let server: TurnpikeServer;
  try {
    server = await startServer(config, log);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    throw err;
  }
  const listening = [
    ...server.udp.map((l) => ({ transport: 'udp', ...l.address() })),
    ...server.tcp.map((l) => ({ transport: l.options.tls ? 'tls' : 'tcp', ...l.address() })),
  ];
  const relay = server.turn?.pool.addresses.map((a) =>
    a.local === a.advertised ? a.local : `${a.advertised}/${a.local}`,
  );
  log.info(
    { listening, default: listenAddresses(config).isDefault, turn: server.turn !== undefined, relay },
    'turnpike started',
  );

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second stop signal: exiting now');
        process.exit(0);
      }
      stopping = true;
      log.info({ signal }, 'stopping');
      server.close().then(
        () => {
          log.info('stopped');
          resolve();
        },
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'error while closing');
          resolve();
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => {
      if (server.certificates !== undefined) server.certificates.reload('SIGHUP');
      else
        log.info(
          'SIGHUP received: nothing to reload (configuration reload is not supported by this version)',
        );
    });
  });
}

function installFatalHandlers(log: Logger): void {
  process.on('uncaughtException', (err) => {
    log.fatal({ err: err.message, stack: err.stack }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason instanceof Error ? reason.message : String(reason) }, 'unhandled rejection');
    process.exit(1);
  });
}
