/**
 * Process lifecycle: logger, listeners, signals, systemd notification, fatal errors.
 *  - SIGHUP: reads the configuration again (same file, environment and command line) and applies
 *    what can change live — users, secrets, peer policy, quotas, lifetimes, log level, TLS
 *    certificates — without dropping an allocation. A bad new configuration keeps the old one and
 *    the log says why; keys that need a restart are named.
 *  - SIGTERM / SIGINT: drain. New Allocates get 300 Try Alternate (with `alternate-server`) or
 *    508; existing allocations keep relaying until they end or `drain-timeout` passes; then every
 *    socket is closed and the process exits 0. A second signal stops at once.
 *  - systemd (Type=notify): READY=1 once listening, RELOADING=1/READY=1 around a reload,
 *    STOPPING=1 at shutdown, WATCHDOG=1 pings when WatchdogSec= is set.
 *  - uncaught exceptions and unhandled rejections: logged at fatal (synchronously), exit 1.
 */
import type { Config } from './config/types.js';
import { SystemdNotifier } from './io/sd-notify.js';
import { createLogger, type Logger } from './log.js';
import { listenAddresses, startServer, type TurnpikeServer } from './server.js';
import { turnEnabled } from './settings.js';

/** `address:port`, with IPv6 addresses in brackets. */
function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export interface DaemonOptions {
  /** Loads the configuration again for SIGHUP (throws ConfigError when it is bad). */
  readonly reload?: () => Config;
  readonly log?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** Settings that have no effect (`configWarnings`), logged at warn once the logger exists. */
  readonly warnings?: readonly string[];
  /** coturn spellings accepted on the command line (`compatArgs`), logged at info once the logger exists. */
  readonly notes?: readonly string[];
}

export async function runDaemon(config: Config, options: DaemonOptions = {}): Promise<void> {
  const log = options.log ?? createLogger(config.logLevel, 1, config.logFormat);
  for (const warning of options.warnings ?? []) log.warn({ warning }, 'configuration warning');
  for (const note of options.notes ?? []) log.info({ note }, 'accepted for compatibility with coturn');
  installFatalHandlers(log);
  const systemd = new SystemdNotifier(options.env ?? process.env, log);
  let server: TurnpikeServer;
  try {
    server = await startServer(config, log);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    throw err;
  }
  // Every listener with what it serves: udp, tcp, tls, or tcp+tls (one port told apart by the
  // first byte); http for metrics, health and the operator API.
  const listening = [
    ...server.udp.map((l) => ({ serves: 'udp', ...l.address() })),
    ...server.tcp.map((l) => ({
      serves: l.options.tls === undefined ? 'tcp' : l.options.plain ? 'tcp+tls' : 'tls',
      ...l.address(),
    })),
    ...(server.http ? [{ serves: 'http', ...server.http.address() }] : []),
  ];
  for (const l of listening) log.info(l, `listening: ${l.serves} on ${hostPort(l.address, l.port)}`);
  const relay = server.relays.addresses.map((a) =>
    a.local === a.advertised ? a.local : `${a.advertised}/${a.local}`,
  );
  const turn = turnEnabled(config);
  if (!turn)
    log.warn(
      'TURN is disabled: no user and no static-auth-secret configured, so TURN requests are refused (STUN Binding is served). Adding one and reloading (SIGHUP) enables TURN without a restart.',
    );
  log.info({ listening, default: listenAddresses(config).isDefault, turn, relay }, 'turnpike started');
  systemd.notify('READY=1', `STATUS=serving on ${listening.map((l) => `${l.serves}:${l.port}`).join(' ')}`);

  const reload = (): void => {
    if (options.reload === undefined) {
      server.certificates?.reload('SIGHUP');
      return;
    }
    systemd.notify('RELOADING=1');
    try {
      const next = options.reload();
      const { applied, needsRestart } = server.reconfigure(next);
      log.info(
        { applied, needsRestart },
        needsRestart.length > 0
          ? 'configuration reloaded; some changes need a restart'
          : 'configuration reloaded',
      );
    } catch (err) {
      log.error(
        { err: (err as Error).message },
        'configuration reload failed; keeping the running configuration',
      );
    }
    systemd.notify('READY=1');
  };

  await new Promise<void>((resolve) => {
    let stopping = false;
    let drainTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      if (drainTimer !== undefined) clearInterval(drainTimer);
      systemd.stopWatchdog();
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
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second stop signal: stopping now');
        finish();
        return;
      }
      stopping = true;
      systemd.notify('STOPPING=1');
      server.drain();
      const deadline = Date.now() + server.config().drainTimeout * 1000;
      const remaining = (): number => server.turn.allocationCount;
      log.info(
        { signal, allocations: remaining(), drainTimeoutSec: server.config().drainTimeout },
        'draining',
      );
      const check = (): void => {
        if (remaining() === 0 || Date.now() >= deadline) {
          log.info({ allocations: remaining() }, remaining() === 0 ? 'drained' : 'drain deadline reached');
          finish();
        }
      };
      drainTimer = setInterval(check, 250);
      check();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', reload);
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
