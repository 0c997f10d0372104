/**
 * The fleet's node registry as data: what each node publishes in its heartbeat, how loaded it is,
 * and which node a loaded or draining node sends new clients to. Pure: the shell
 * (`src/fleet/registry.ts`) reads and writes Redis and hands the reports in.
 */
import type { AlternateAddress } from '../turn/admission.js';

/** One node's heartbeat, as stored in Redis (JSON) and shown by `GET /admin/fleet`. */
export interface NodeReport {
  readonly id: string;
  /** Where other nodes redirect clients to this one (ALTERNATE-SERVER). */
  readonly address: string;
  readonly port: number;
  readonly allocations: number;
  /** Relayed packets and payload bytes per second, both directions, over the last heartbeat. */
  readonly pps: number;
  readonly bps: number;
  /** CPU use of the process over the last heartbeat, percent of one core. */
  readonly cpu: number;
  readonly draining: boolean;
  /** Load against the node's own thresholds: 1 or more means over them (see `loadOf`). */
  readonly load: number;
  /** Whether Redis-backed checks work on that node (it wrote this report, so yes when fresh). */
  readonly atMs: number;
}

/** A report of a node with nothing measured yet (no allocations, no traffic) at `atMs`. */
export function idleReport(self: { id: string; address: string; port: number }, atMs: number): NodeReport {
  return { ...self, allocations: 0, pps: 0, bps: 0, cpu: 0, draining: false, load: 0, atMs };
}

/** The load thresholds of one node (`fleet-max-allocations`, `fleet-max-cpu`; 0: none). */
export interface LoadLimits {
  readonly maxAllocations: number;
  readonly maxCpu: number;
}

/**
 * The load of a node against its thresholds: the highest of allocations / max-allocations and
 * cpu / max-cpu (1 or more: over). Without any threshold, a tiny number growing with allocations,
 * so that the least-loaded node is still the one with the fewest allocations.
 */
export function loadOf(allocations: number, cpu: number, limits: LoadLimits): number {
  let load = 0;
  let limited = false;
  if (limits.maxAllocations > 0) {
    load = Math.max(load, allocations / limits.maxAllocations);
    limited = true;
  }
  if (limits.maxCpu > 0) {
    load = Math.max(load, cpu / limits.maxCpu);
    limited = true;
  }
  return limited ? load : allocations / 1e9;
}

/** Whether a node at `load` (or draining) sends new allocations elsewhere. */
export function isOverloaded(load: number, draining: boolean): boolean {
  return draining || load >= 1;
}

/**
 * The node new allocations should go to instead of `selfId`: among the other nodes whose report is
 * fresh (no older than `maxAgeMs` at `nowMs`), not draining, not over their own thresholds and
 * reachable in address `family` (their address is of that family), the one with the lowest load,
 * then the fewest allocations, then the lowest id. Undefined when none.
 */
export function chooseAlternate(
  nodes: Iterable<NodeReport>,
  selfId: string,
  nowMs: number,
  maxAgeMs: number,
  family: 4 | 6 = 4,
): NodeReport | undefined {
  let best: NodeReport | undefined;
  for (const n of nodes) {
    if (n.id === selfId || nowMs - n.atMs > maxAgeMs || isOverloaded(n.load, n.draining)) continue;
    if ((n.address.includes(':') ? 6 : 4) !== family) continue;
    if (
      best === undefined ||
      n.load < best.load ||
      (n.load === best.load &&
        (n.allocations < best.allocations || (n.allocations === best.allocations && n.id < best.id)))
    )
      best = n;
  }
  return best;
}

/** The ALTERNATE-SERVER of a node. */
export function alternateOf(n: NodeReport): AlternateAddress {
  return { address: n.address, port: n.port };
}

/** A node report read back from Redis, or undefined when it is not one (never throws). */
export function parseNodeReport(text: string | null | undefined): NodeReport | undefined {
  if (typeof text !== 'string') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const num = (k: string): number | undefined =>
    typeof o[k] === 'number' && Number.isFinite(o[k]) ? (o[k] as number) : undefined;
  const id = o['id'];
  const address = o['address'];
  const port = num('port');
  if (typeof id !== 'string' || typeof address !== 'string' || port === undefined) return undefined;
  return {
    id,
    address,
    port,
    allocations: num('allocations') ?? 0,
    pps: num('pps') ?? 0,
    bps: num('bps') ?? 0,
    cpu: num('cpu') ?? 0,
    draining: o['draining'] === true,
    load: num('load') ?? 0,
    atMs: num('atMs') ?? 0,
  };
}
