/**
 * The fleet's Redis connections (the official `redis` client): one for commands, one for pub/sub
 * (revocations, keyspace notifications). Never blocks the daemon on Redis:
 *
 *  - the offline queue is off, so a command while disconnected fails at once instead of waiting;
 *  - every command has a deadline (`redis-timeout`), so a slow Redis answers "error" in time;
 *  - reconnects back off exponentially (100 ms doubling to 10 s, with jitter);
 *  - errors are counted and logged (at most one line per state change), never thrown at the
 *    event loop: no unhandled rejection, no crash.
 *
 * `onReady` callbacks run at every (re)connection, so the modules that replicate state from Redis
 * reload it then.
 */
import { createClient, type RedisClientType } from 'redis';
import type { Logger } from '../log.js';

/** Reconnect delay after `retries` failed attempts: 100 ms doubling to 10 s, ±20% jitter. */
export function reconnectDelayMs(retries: number, random: () => number = Math.random): number {
  const base = Math.min(10_000, 100 * 2 ** Math.min(retries, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** A command reply, as the client returns it for raw commands. */
export type Reply = unknown;

export class RedisLink {
  readonly client: RedisClientType;
  readonly subscriber: RedisClientType;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly readyListeners: Array<() => void> = [];
  private readonly subscriberReadyListeners: Array<() => void> = [];
  private closed = false;
  /** A connection error was logged at warn since the last successful connection (one line per outage). */
  private warned = false;
  /** Whether the command connection is ready. */
  up = false;
  /** Whether the pub/sub connection is ready (keyspace notifications and revocations arrive). */
  subscriberUp = false;
  /** Failed commands and connection errors. */
  errors = 0;
  /** Connections made (the first, then every reconnection). */
  connects = 0;

  constructor(options: { url: string; password: string | undefined; timeoutMs: number; log: Logger }) {
    this.log = options.log;
    this.timeoutMs = options.timeoutMs;
    this.client = createClient({
      url: options.url,
      ...(options.password === undefined ? {} : { password: options.password }),
      disableOfflineQueue: true,
      pingInterval: 5000,
      socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => reconnectDelayMs(retries) },
    }) as RedisClientType;
    this.subscriber = this.client.duplicate() as RedisClientType;
    this.client.on('error', (err: Error) => this.failed('command', err));
    this.subscriber.on('error', (err: Error) => this.failed('subscriber', err));
    this.client.on('ready', () => {
      this.connects++;
      if (!this.up) this.log.info('fleet: connected to Redis');
      this.up = true;
      this.warned = false;
      for (const fn of this.readyListeners) fn();
    });
    this.subscriber.on('ready', () => {
      this.subscriberUp = true;
      for (const fn of this.subscriberReadyListeners) fn();
    });
    this.subscriber.on('end', () => {
      this.subscriberUp = false;
    });
    this.subscriber.on('reconnecting', () => {
      this.subscriberUp = false;
    });
    this.client.on('end', () => {
      this.up = false;
    });
    this.client.on('reconnecting', () => {
      if (this.up) this.log.warn('fleet: lost Redis; reconnecting (local authentication and relaying go on)');
      this.up = false;
    });
  }

  /** Connects both clients; resolves when the command client is ready or after `waitMs`. */
  async start(waitMs: number): Promise<void> {
    const connected = Promise.all([this.client.connect(), this.subscriber.connect()]).then(
      () => true,
      (err: unknown) => {
        this.failed('connect', err);
        return false;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), waitMs);
    });
    const ok = await Promise.race([connected, waited]);
    clearTimeout(timer);
    if (!ok) this.log.warn('fleet: Redis is not reachable yet; starting without it (it is retried)');
  }

  /** Calls `fn` at every (re)connection of the command client (and at once when already up). */
  onReady(fn: () => void): void {
    this.readyListeners.push(fn);
    if (this.up) fn();
  }

  /** Calls `fn` at every (re)connection of the pub/sub client. */
  onSubscriberReady(fn: () => void): void {
    this.subscriberReadyListeners.push(fn);
  }

  /** A raw command with the deadline; rejects when Redis is down, slow or answers an error. */
  command(args: string[]): Promise<Reply> {
    if (!this.up) return Promise.reject(new Error('Redis is not connected'));
    return this.withDeadline(this.client.sendCommand(args));
  }

  /**
   * Several raw commands sent at once (the client pipelines them), under one deadline: resolves when
   * all are answered; rejects on the first error, when Redis is down, or at the deadline.
   */
  commands(list: readonly string[][]): Promise<Reply[]> {
    if (!this.up) return Promise.reject(new Error('Redis is not connected'));
    return this.withDeadline(Promise.all(list.map((args) => this.client.sendCommand(args))));
  }

  /**
   * A raw command without a deadline, for writes nobody waits on (a lease removal): it still fails
   * at once while Redis is down, and with the connection when that breaks.
   */
  send(args: string[]): Promise<Reply> {
    if (!this.up) return Promise.reject(new Error('Redis is not connected'));
    return this.client.sendCommand(args);
  }

  private withDeadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Redis did not answer within ${this.timeoutMs} ms`)),
          this.timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** `command`, counting and logging (at debug) a failure instead of rejecting: undefined then. */
  async tryCommand(args: string[], what: string): Promise<Reply | undefined> {
    try {
      return await this.command(args);
    } catch (err) {
      this.errors++;
      this.log.debug({ err: String(err), what }, 'fleet: Redis command failed');
      return undefined;
    }
  }

  private failed(which: string, err: unknown): void {
    this.errors++;
    if (this.closed) return;
    // The first error of an outage says why (refused, WRONGPASS, TLS…); the rest only at debug.
    if (!this.warned && !this.up) {
      this.warned = true;
      this.log.warn(
        { err: String(err), connection: which },
        'fleet: cannot reach Redis; retrying with backoff',
      );
    } else this.log.debug({ err: String(err), connection: which }, 'fleet: Redis error');
  }

  /**
   * Closes both connections: commands already sent get their answers first (at most `graceMs`),
   * then the sockets go.
   */
  async close(graceMs = 1000): Promise<void> {
    this.closed = true;
    this.up = false;
    const shut = async (c: RedisClientType): Promise<void> => {
      if (!c.isOpen) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        c.close().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (c.isOpen) c.destroy();
    };
    await Promise.all([shut(this.client), shut(this.subscriber)]);
  }
}
