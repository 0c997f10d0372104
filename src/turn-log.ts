/**
 * The operator's log of the TURN service, subscribed to its events: allocations created, moved
 * (RFC 8016) and deleted (with duration and traffic), and authentication failures — at most 10 such lines a
 * second, since anyone can make authentication fail at will.
 */
import type { Clock } from './core/clock.js';
import { METHOD_NAMES } from './core/constants.js';
import type { Allocation } from './core/turn/allocation.js';
import type { TurnEventBus } from './core/turn/events.js';
import type { ForwardingTable } from './core/turn/forwarding.js';
import type { AllocationInfo } from './core/turn/service.js';
import { LogBudget, type Logger } from './log.js';

export function subscribeTurnLog(
  events: TurnEventBus,
  plane: ForwardingTable,
  clock: Clock,
  log: Logger,
): void {
  const authLogBudget = new LogBudget(10);
  events.subscribe({
    allocationCreated: (a) =>
      log.info(
        {
          alloc: a.id,
          user: a.userId,
          client: `${a.endpoint.transport}:${a.clientAddress}:${a.clientPort}`,
          relay: a.relays.map((r) => `${r.advertisedAddress}:${r.port}`),
          lifetime: a.expiresAtSec - a.createdAtSec,
          // RFC 6062 TCP allocations say so; UDP ones keep the line as it was.
          ...(a.relayTransport === 'tcp' ? { relayTransport: 'tcp' } : {}),
        },
        'allocation created',
      ),
    allocationMoved: (a, from) =>
      log.info(
        {
          alloc: a.id,
          user: a.userId,
          from: `${from.transport}:${from.address}:${from.port}`,
          client: `${a.endpoint.transport}:${a.clientAddress}:${a.clientPort}`,
        },
        'allocation moved (RFC 8016 mobility)',
      ),
    allocationDeleted: (a, reason) => {
      const durationSec = Math.max(0, clock.nowSec() - a.createdAtSec);
      // Read before the data plane forgets the allocation: uninstall keeps the counters.
      const c = plane.counters(a);
      log.info(
        {
          alloc: a.id,
          user: a.userId,
          reason,
          durationSec,
          toPeer: { packets: c.packetsToPeer, bytes: c.bytesToPeer },
          toClient: { packets: c.packetsToClient, bytes: c.bytesToClient },
          ...(c.payloadRefused > 0 || c.bandwidthDropped > 0
            ? { dropped: { payloadPolicy: c.payloadRefused, bandwidth: c.bandwidthDropped } }
            : {}),
        },
        'allocation deleted',
      );
    },
    authFailed: (f) => {
      const suppressed = authLogBudget.take(clock.nowMs());
      if (suppressed < 0) return;
      log.info(
        {
          reason: f.reason,
          code: f.code,
          method: METHOD_NAMES[f.method] ?? f.method,
          user: f.username,
          realm: f.realm,
          client: `${f.transport}:${f.address}:${f.port}`,
          ...(suppressed > 0 ? { suppressed } : {}),
        },
        'authentication failed',
      );
    },
  });
}

/** An allocation is reported once this many of its packets were refused, more than it relayed. */
export const MOSTLY_REFUSED_MIN_PACKETS = 100;

/**
 * `relay-payload-policy webrtc`: an allocation whose traffic is mostly refused (something other
 * than WebRTC going through the relay: a tunnel) is logged once, at warn, with its user and client,
 * so that the operator can find the credential. Checked by the server's sweep every few seconds.
 */
export class RefusedTrafficLog {
  private readonly log: Logger;
  private readonly logged = new WeakSet<Allocation>();

  constructor(log: Logger) {
    this.log = log;
  }

  check(allocations: Iterable<AllocationInfo>): void {
    for (const { allocation: a, counters: c } of allocations) {
      if (c.payloadRefused < MOSTLY_REFUSED_MIN_PACKETS || this.logged.has(a)) continue;
      const relayed = c.packetsToPeer + c.packetsToClient;
      if (c.payloadRefused <= relayed) continue;
      this.logged.add(a);
      this.log.warn(
        {
          alloc: a.id,
          user: a.userId,
          client: `${a.endpoint.transport}:${a.clientAddress}:${a.clientPort}`,
          refused: c.payloadRefused,
          relayed,
        },
        'allocation traffic mostly refused by relay-payload-policy',
      );
    }
  }
}
