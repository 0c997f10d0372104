/**
 * The operator's log of the TURN service, subscribed to its events: allocations created and
 * deleted (with duration and traffic), and authentication failures — at most 10 such lines a
 * second, since anyone can make authentication fail at will.
 */
import type { Clock } from './core/clock.js';
import { METHOD_NAMES } from './core/constants.js';
import type { TurnEventBus } from './core/turn/events.js';
import type { ForwardingTable } from './core/turn/forwarding.js';
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
        },
        'allocation created',
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
