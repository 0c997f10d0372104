/**
 * Fleet mode (`redis-url`): many turnpike nodes run as one service through one Redis. This is the
 * composition of the fleet's parts, and the `AllocationAdmission` the TURN service consults:
 *
 *  - `FleetUserDb`      users and REST secrets in coturn's Redis layout (a live replica: the
 *                       authenticator's `CredentialSource`), and the realm's quotas;
 *  - `FleetQuota`       the fleet-wide per-user quota (leases checked by a Lua script, renewed);
 *  - `FleetRevocations` revocations from any node's admin API, applied on every node;
 *  - `FleetRegistry`    heartbeats, the fleet view, and redirects (300 Try Alternate);
 *  - `FleetUsage`       usage records to a Redis Stream, buffered while Redis is away.
 *
 * Without Redis (down, slow) relaying and local authentication go on; the quota check follows
 * `fleet-quota-on-error`; nothing here throws at the event loop.
 */
import { hostname } from 'node:os';
import { parseHostPort } from '../config/checks.js';
import type { Config } from '../config/types.js';
import type { Clock } from '../core/clock.js';
import type { NodeReport } from '../core/fleet/nodes.js';
import type { Stats } from '../core/stats.js';
import type { AdmissionVerdict, AllocationAdmission, AlternateAddress } from '../core/turn/admission.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { TurnEventBus } from '../core/turn/events.js';
import type { ForwardingTable } from '../core/turn/forwarding.js';
import type { TurnService } from '../core/turn/service.js';
import type { RevocationList } from '../credentials.js';
import type { Logger } from '../log.js';
import { FleetQuota } from './quota.js';
import { RedisLink } from './redis.js';
import { FleetRegistry, HEARTBEAT_MS } from './registry.js';
import { FleetRevocations } from './revocations.js';
import { FleetUsage } from './usage.js';
import { FleetUserDb } from './userdb.js';

/** How often revocations are read back in full (pub/sub carries them at once). */
const REVOCATION_RESYNC_MS = 5000;
/** How long start-up waits for Redis before going on without it. */
const CONNECT_WAIT_MS = 3000;
/** How long shutdown waits for the last usage records to be written. */
const CLOSE_FLUSH_MS = 2000;

export interface FleetDeps {
  /** The configuration at start. */
  readonly initial: Config;
  /** The configuration in force (fleet thresholds and quota apply live on SIGHUP; not called before start). */
  readonly config: () => Config;
  readonly stats: Stats;
  readonly plane: ForwardingTable;
  readonly events: TurnEventBus;
  readonly revocations: RevocationList;
  readonly clock: Clock;
  readonly log: Logger;
  /** The TURN service (built after the fleet, which it consults). */
  readonly turn: () => TurnService;
  /** Deletes the live REST allocations of a user id (a revocation from another node). */
  readonly disconnect: (userId: string) => number;
  /** The address other nodes redirect clients to, when `fleet-address` is unset. */
  readonly defaultAddress: string;
}

/** Fleet mode when `redis-url` is set, else undefined (a lone node). */
export function fleetFor(deps: FleetDeps): Fleet | undefined {
  return deps.initial.redisUrl === undefined ? undefined : new Fleet(deps);
}

/** This node's id: `node-id`, else the host name (cut to the allowed characters). */
export function nodeIdOf(config: Config): string {
  if (config.nodeId !== undefined) return config.nodeId;
  return (
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 64) || 'turnpike'
  );
}

/**
 * The address other nodes redirect to when `fleet-address` is unset: the first `external-ip` public
 * address, else the first concrete listening address, else the first relay address.
 */
export function defaultFleetAddress(
  config: Config,
  listening: readonly string[],
  relays: readonly string[],
): string {
  const external = config.externalIps[0]?.split('/')[0];
  if (external !== undefined && external !== '') return external;
  return listening.find((a) => a !== '0.0.0.0' && a !== '::') ?? relays[0] ?? '127.0.0.1';
}

/** The database number of a redis:// URL (its path), 0 when none. */
export function databaseOf(url: string): number {
  const db = new URL(url).pathname.replace(/^\//, '');
  return db === '' ? 0 : Number(db);
}

export class Fleet implements AllocationAdmission {
  readonly nodeId: string;
  readonly redis: RedisLink;
  readonly userdb: FleetUserDb;
  readonly quota: FleetQuota;
  readonly revocations: FleetRevocations;
  readonly registry: FleetRegistry;
  readonly usage: FleetUsage;
  private readonly deps: FleetDeps;
  private readonly log: Logger;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(deps: FleetDeps) {
    const config = deps.initial;
    const url = config.redisUrl;
    if (url === undefined) throw new Error('fleet mode needs redis-url');
    this.deps = deps;
    this.log = deps.log.child({ component: 'fleet' });
    this.nodeId = nodeIdOf(config);
    const prefix = config.redisKeyPrefix;
    const nowMs = (): number => deps.clock.nowMs();
    this.redis = new RedisLink({
      url,
      password: config.redisPassword,
      timeoutMs: config.redisTimeout,
      log: this.log,
    });
    this.userdb = new FleetUserDb(this.redis, config.realm, this.log);
    // Lease members carry this process's start, so a restarted node never mistakes an old lease for its own.
    this.quota = new FleetQuota(this.redis, this.log, prefix, `${this.nodeId}/${Date.now().toString(36)}`);
    this.revocations = new FleetRevocations({
      redis: this.redis,
      list: deps.revocations,
      prefix,
      log: this.log,
      nowSec: () => deps.clock.nowSec(),
      disconnect: deps.disconnect,
    });
    const address = parseHostPort(config.fleetAddress ?? deps.defaultAddress, config.listeningPort) ?? {
      address: deps.defaultAddress,
      port: config.listeningPort,
    };
    this.registry = new FleetRegistry({
      redis: this.redis,
      prefix,
      self: { id: this.nodeId, ...address },
      stats: deps.stats,
      local: {
        allocations: () => deps.turn().allocationCount,
        draining: () => deps.turn().draining,
        limits: () => {
          const c = deps.config();
          return { maxAllocations: c.fleetMaxAllocations, maxCpu: c.fleetMaxCpu };
        },
      },
      nowMs,
    });
    this.usage = new FleetUsage({
      redis: this.redis,
      events: deps.events,
      plane: deps.plane,
      log: this.log,
      prefix,
      nodeId: this.nodeId,
      nowMs,
      interimMs: () => deps.config().fleetUsageInterim * 1000,
      capacity: config.fleetUsageBuffer,
      streamMax: config.fleetUsageStreamMax,
    });
    deps.events.subscribe({ allocationDeleted: (a) => this.quota.release(a) });
    this.redis.onReady(() => {
      void this.userdb.refresh();
      void this.revocations.resync();
    });
  }

  /** Connects (waiting a few seconds at most: the node starts without Redis too) and starts the timers. */
  async start(): Promise<void> {
    const config = this.deps.initial;
    // Subscriptions made while Redis is unreachable fail with the connection: they are made again
    // when the pub/sub connection comes up (once made, the client renews them at each reconnection).
    let subscribed = false;
    let subscribing: Promise<void> | undefined;
    // Whatever changed while the pub/sub connection was away is read in full when it is back.
    const catchUp = (): Promise<void> =>
      Promise.all([this.userdb.refresh(), this.revocations.resync()]).then(() => undefined);
    const subscribe = (): Promise<void> => {
      if (subscribed) return catchUp();
      subscribing ??= Promise.all([
        this.revocations.subscribe(),
        this.userdb.subscribe(databaseOf(config.redisUrl!)),
      ])
        .then(() => {
          subscribed = true;
          return catchUp();
        })
        .catch((err: unknown) =>
          this.log.debug({ err: String(err) }, 'fleet: subscribing failed; retried at the next connection'),
        )
        .finally(() => {
          subscribing = undefined;
        });
      return subscribing;
    };
    this.redis.onSubscriberReady(() => void subscribe());
    await this.redis.start(CONNECT_WAIT_MS);
    if (this.redis.up) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        subscribe(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CONNECT_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
      await this.userdb.refresh();
      await this.revocations.resync();
      await this.registry.beat();
    }
    const every = (ms: number, fn: () => Promise<void> | void): void => {
      const t = setInterval(() => {
        if (!this.closed)
          void Promise.resolve(fn()).catch((err: unknown) =>
            this.log.debug({ err: String(err) }, 'fleet: periodic task failed'),
          );
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(HEARTBEAT_MS, async () => {
      this.usage.tick();
      // Without the pub/sub connection no change is announced: read the user database every beat
      // until it is back (the two connections reconnect on their own timers).
      if (this.redis.up && !this.redis.subscriberUp) void this.userdb.refresh();
      await this.registry.beat();
    });
    every(REVOCATION_RESYNC_MS, () => this.revocations.resync());
    every(config.redisUserdbPoll * 1000, () => this.userdb.refresh());
    const leaseMs = config.fleetLeaseTime * 1000;
    every(Math.max(500, Math.floor(leaseMs / 3)), () => this.quota.renew(leaseMs));
    this.log.info(
      {
        node: this.nodeId,
        address: `${this.registry.report.address}:${this.registry.report.port}`,
        redis: this.redis.up,
      },
      'fleet mode on',
    );
  }

  // AllocationAdmission ----------------------------------------------------------------------

  redirect(draining: boolean, family: 4 | 6): AlternateAddress | undefined {
    return this.registry.redirect(draining, family);
  }

  totalQuota(): number | undefined {
    return this.userdb.current.totalQuota;
  }

  /** The fleet-wide per-user limit: the realm's user-quota in Redis, else `fleet-user-quota` (0: none). */
  userQuota(): number {
    return this.userdb.current.userQuota ?? this.deps.config().fleetUserQuota;
  }

  admit(a: Allocation, done: (verdict: AdmissionVerdict) => void): void {
    const config = this.deps.config();
    const limit = this.userQuota();
    const finish = (verdict: AdmissionVerdict): void => {
      try {
        done(verdict);
      } catch (err) {
        this.log.error({ err: String(err) }, 'fleet: completing an admitted Allocate failed');
      }
    };
    if (limit <= 0) {
      queueMicrotask(() => finish(0));
      return;
    }
    void this.quota.admit(a, limit, config.fleetLeaseTime * 1000, config.fleetQuotaOnError).then(finish);
  }

  abandon(a: Allocation): void {
    this.quota.release(a);
  }

  // Views ------------------------------------------------------------------------------------

  /** Why /readyz should answer 503 (with `fleet-readyz-capacity` / `fleet-readyz-redis`), or undefined. */
  notReady(): string | undefined {
    const c = this.deps.config();
    if (c.fleetReadyzRedis && !this.redis.up) return 'redis unreachable';
    if (c.fleetReadyzCapacity && this.registry.overloaded(false)) return 'over capacity';
    return undefined;
  }

  /** What `GET /admin/fleet` shows. */
  view(): {
    node: string;
    redis: { up: boolean; errors: number };
    nodes: NodeReport[];
    quota: unknown;
    usage: unknown;
  } {
    const db = this.userdb.current;
    return {
      node: this.nodeId,
      redis: { up: this.redis.up, errors: this.redis.errors },
      nodes: this.registry.list(),
      quota: {
        userQuota: this.userQuota(),
        leaseTimeSec: this.deps.config().fleetLeaseTime,
        onError: this.deps.config().fleetQuotaOnError,
        leasesHeld: this.quota.held,
        realm: {
          users: db.users.size,
          secrets: db.secrets.length,
          userQuota: db.userQuota,
          totalQuota: db.totalQuota,
          maxBps: db.maxBps,
        },
      },
      usage: {
        stream: this.usage.stream,
        buffered: this.usage.buffer.size,
        dropped: this.usage.buffer.dropped,
        written: this.usage.written,
      },
    };
  }

  /** Stops the timers, writes the last usage records (briefly), leaves the registry, disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.userdb.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([this.usage.flush(), this.registry.leave()]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_FLUSH_MS);
      }),
    ]);
    clearTimeout(timer);
    if (this.usage.buffer.size > 0)
      this.log.warn(
        { records: this.usage.buffer.size },
        'fleet: usage records not written at shutdown (Redis unreachable)',
      );
    await this.redis.close();
  }
}
