/**
 * Composition root: configuration → sans-I/O core → listeners. `startServer` binds everything
 * or nothing (a failure closes what was already bound); `close` releases every socket.
 */
import type { Config } from './config/types.js';
import { StunCore } from './core/stun-core.js';
import { BindError } from './errors.js';
import { StreamListener } from './io/stream-listener.js';
import { UdpListener } from './io/udp-listener.js';
import type { Logger } from './log.js';

/** Output a TCP client may leave unread before responses to it are dropped. */
const MAX_PENDING_WRITE_BYTES = 256 * 1024;

export interface TurnpikeServer {
  readonly core: StunCore;
  readonly udp: readonly UdpListener[];
  readonly tcp: readonly StreamListener[];
  close(): Promise<void>;
}

/** Listen addresses: the configured ones, or both wildcards. */
export function listenAddresses(config: Config): { addresses: string[]; isDefault: boolean } {
  if (config.listeningIps.length > 0) return { addresses: [...config.listeningIps], isDefault: false };
  return { addresses: ['0.0.0.0', '::'], isDefault: true };
}

export async function startServer(config: Config, log: Logger): Promise<TurnpikeServer> {
  const core = new StunCore({
    software: config.softwareAttribute ? 'turnpike' : undefined,
    reasonPhrases: false,
  });
  const udp: UdpListener[] = [];
  const tcp: StreamListener[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all([...udp.map((l) => l.close()), ...tcp.map((l) => l.close())]);
  };
  const { addresses, isDefault } = listenAddresses(config);
  try {
    for (const address of addresses) {
      try {
        if (!config.noUdp) {
          const l = new UdpListener(
            { address, port: config.listeningPort, sockBufSize: config.sockBufSize },
            core,
            log,
          );
          await l.start();
          udp.push(l);
        }
        if (!config.noTcp) {
          const l = new StreamListener(
            {
              address,
              port: config.listeningPort,
              maxConnections: config.maxTcpConnections,
              idleTimeoutMs: config.tcpIdleTimeout * 1000,
              frameTimeoutMs: config.tcpFrameTimeout * 1000,
              maxFrameBytes: config.maxFrameBytes,
              maxPendingWriteBytes: MAX_PENDING_WRITE_BYTES,
            },
            core,
            log,
          );
          await l.start();
          tcp.push(l);
        }
      } catch (err) {
        // The default '::' wildcard is optional: a host without IPv6 still serves IPv4.
        const cause = (err as { cause?: { code?: string } }).cause;
        if (
          isDefault &&
          address === '::' &&
          (cause?.code === 'EAFNOSUPPORT' || cause?.code === 'EADDRNOTAVAIL')
        ) {
          log.warn({ address }, 'IPv6 is not available on this host; serving IPv4 only');
          continue;
        }
        throw err;
      }
    }
    if (udp.length === 0 && tcp.length === 0)
      throw new BindError('no listener enabled (no-udp and no-tcp both set)');
  } catch (err) {
    await closeAll();
    throw err;
  }
  return { core, udp, tcp, close: closeAll };
}
