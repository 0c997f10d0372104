/**
 * The node registry: every second each node writes its heartbeat (`<prefix>:node:<id>`, JSON, with
 * a 5 s expiry, and its id in the set `<prefix>:nodes`) and reads everyone's back. The replica it
 * keeps answers, synchronously, where a loaded or draining node sends new clients, and feeds
 * `GET /admin/fleet`. A node whose heartbeat expired (it died, or lost Redis) is dropped from the
 * set by the next reader.
 */
import { cpuUsage } from 'node:process';
import {
  alternateOf,
  chooseAlternate,
  idleReport,
  isOverloaded,
  type LoadLimits,
  loadOf,
  type NodeReport,
  parseNodeReport,
} from '../core/fleet/nodes.js';
import type { Stats } from '../core/stats.js';
import type { AlternateAddress } from '../core/turn/admission.js';
import type { RedisLink } from './redis.js';

/** Heartbeat period, and how long a heartbeat stays valid. */
export const HEARTBEAT_MS = 1000;
export const NODE_TTL_MS = 5000;

export interface LocalState {
  readonly allocations: () => number;
  readonly draining: () => boolean;
  readonly limits: () => LoadLimits;
}

export class FleetRegistry {
  private readonly redis: RedisLink;
  private readonly prefix: string;
  private readonly self: { id: string; address: string; port: number };
  private readonly stats: Stats;
  private readonly local: LocalState;
  private readonly nowMs: () => number;
  /** Other nodes' reports (and this node's own, as read back), by id. */
  private nodes = new Map<string, NodeReport>();
  private last = { atMs: 0, cpuMicros: 0, packets: 0, bytes: 0 };
  /** This node's latest report. */
  report: NodeReport;
  /** Redirects answered (300 with another node's address). */
  redirects = 0;

  constructor(o: {
    redis: RedisLink;
    prefix: string;
    self: { id: string; address: string; port: number };
    stats: Stats;
    local: LocalState;
    nowMs: () => number;
  }) {
    this.redis = o.redis;
    this.prefix = o.prefix;
    this.self = o.self;
    this.stats = o.stats;
    this.local = o.local;
    this.nowMs = o.nowMs;
    this.report = idleReport(o.self, o.nowMs());
  }

  /** Measures this node: allocations, relay rates and CPU since the last call, load, drain state. */
  measure(): NodeReport {
    const now = this.nowMs();
    const cpu = cpuUsage();
    const cpuMicros = cpu.user + cpu.system;
    const s = this.stats;
    const packets = s.relayedToPeerPackets + s.relayedToClientPackets;
    const bytes = s.relayedToPeerBytes + s.relayedToClientBytes;
    const dtSec = this.last.atMs === 0 ? 0 : (now - this.last.atMs) / 1000;
    const rate = (delta: number): number => (dtSec > 0 ? Math.round(delta / dtSec) : 0);
    const cpuPercent = dtSec > 0 ? Math.round((cpuMicros - this.last.cpuMicros) / 100 / dtSec) / 100 : 0;
    const allocations = this.local.allocations();
    const draining = this.local.draining();
    this.report = {
      id: this.self.id,
      address: this.self.address,
      port: this.self.port,
      allocations,
      pps: rate(packets - this.last.packets),
      bps: rate((bytes - this.last.bytes) * 8),
      cpu: cpuPercent,
      draining,
      load: loadOf(allocations, cpuPercent, this.local.limits()),
      atMs: now,
    };
    this.last = { atMs: now, cpuMicros, packets, bytes };
    return this.report;
  }

  /** Whether this node sends new allocations elsewhere now (over its thresholds, or draining). */
  overloaded(draining: boolean): boolean {
    const load = loadOf(this.local.allocations(), this.report.cpu, this.local.limits());
    return isOverloaded(load, draining);
  }

  /** The node to redirect a new Allocate to, when this one is overloaded or draining. */
  redirect(draining: boolean, family: 4 | 6): AlternateAddress | undefined {
    if (!this.overloaded(draining)) return undefined;
    const best = chooseAlternate(this.nodes.values(), this.self.id, this.nowMs(), NODE_TTL_MS, family);
    if (best === undefined) return undefined;
    this.redirects++;
    return alternateOf(best);
  }

  /** Every node known, this one first (its live report), then the others by id. */
  list(): NodeReport[] {
    const others = [...this.nodes.values()]
      .filter((n) => n.id !== this.self.id)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    return [this.report, ...others];
  }

  /** Healthy nodes seen (fresh heartbeat), this one included when Redis is up. */
  healthy(): number {
    const now = this.nowMs();
    let n = 0;
    for (const r of this.nodes.values()) if (now - r.atMs <= NODE_TTL_MS) n++;
    return n;
  }

  /** One heartbeat: publish this node's report, read everyone's. */
  async beat(): Promise<void> {
    const report = this.measure();
    if (!this.redis.up) {
      this.nodes = new Map();
      return;
    }
    const setKey = `${this.prefix}:nodes`;
    const key = (id: string): string => `${this.prefix}:node:${id}`;
    const writes = [
      this.redis.tryCommand(
        ['SET', key(report.id), JSON.stringify(report), 'PX', String(NODE_TTL_MS)],
        'heartbeat',
      ),
      this.redis.tryCommand(['SADD', setKey, report.id], 'heartbeat'),
    ];
    const ids = (await this.redis.tryCommand(['SMEMBERS', setKey], 'read nodes')) as string[] | undefined;
    await Promise.all(writes);
    if (ids === undefined) return;
    const values =
      ids.length === 0
        ? []
        : ((await this.redis.tryCommand(['MGET', ...ids.map(key)], 'read nodes')) as
            | Array<string | null>
            | undefined);
    if (values === undefined) return;
    const next = new Map<string, NodeReport>();
    const now = this.nowMs();
    for (let i = 0; i < ids.length; i++) {
      const r = parseNodeReport(values[i]);
      if (r === undefined) {
        if (ids[i] !== this.self.id) void this.redis.tryCommand(['SREM', setKey, ids[i]!], 'prune nodes');
        continue;
      }
      // Freshness by this node's clock: the report was read now, and it expires in Redis within NODE_TTL_MS.
      next.set(r.id, { ...r, atMs: now });
    }
    this.nodes = next;
  }

  /** Removes this node's heartbeat (shutdown). */
  async leave(): Promise<void> {
    await this.redis.tryCommand(['DEL', `${this.prefix}:node:${this.self.id}`], 'leave');
    await this.redis.tryCommand(['SREM', `${this.prefix}:nodes`, this.self.id], 'leave');
  }
}
