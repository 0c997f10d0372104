/**
 * Relay sockets: one UDP socket per allocation and family, bound to a relay address and a port of
 * the relay range. Implements the core's RelayAllocator.
 *
 *  - Several relay addresses per family spread the load: each allocation goes to the address with
 *    the most free ports, so more than one port range's worth of allocations fit.
 *  - Ports are picked at random within the range (unpredictable relay ports), skipping ports in use;
 *    a port another process holds (EADDRINUSE) is skipped and retried later.
 *  - EVEN-PORT with the R bit reserves port + 1 under an 8-byte RESERVATION-TOKEN for 30 s
 *    (RFC 8656 §7.2, §14.9).
 *  - A host behind 1:1 NAT advertises `external-ip` and keeps binding the private address.
 * Port exhaustion answers 508 through the core; nothing here throws on a full pool.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import type { Allocation, RelayHandle } from '../core/turn/allocation.js';
import type { RelayAllocator, RelayRequest, RelayResult, TurnService } from '../core/turn/service.js';
import type { Logger } from '../log.js';
import { ipLiteralLookup } from './ip-lookup.js';

/** A relay address: the local one sockets bind to, and the one advertised to clients. */
export interface RelayAddress {
  readonly family: 4 | 6;
  readonly local: string;
  readonly advertised: string;
}

const FREE = 0;
const USED = 1;
const RESERVED = 2;
/** Held by another process: skipped until the next sweep clears it. */
const BUSY = 3;
const RESERVATION_SEC = 30;
const BIND_ATTEMPTS = 16;

class AddressPool {
  readonly address: RelayAddress;
  readonly state = new Uint8Array(65536);
  free: number;

  constructor(address: RelayAddress, minPort: number, maxPort: number) {
    this.address = address;
    this.free = maxPort - minPort + 1;
  }
}

class UdpRelay implements RelayHandle {
  readonly family: 4 | 6;
  readonly localAddress: string;
  readonly port: number;
  readonly advertisedAddress: string;
  readonly socket: Socket;
  private readonly pool: AddressPool;
  private readonly owner: RelayPool;
  private closed = false;

  constructor(pool: AddressPool, port: number, socket: Socket, owner: RelayPool) {
    this.family = pool.address.family;
    this.localAddress = pool.address.local;
    this.advertisedAddress = pool.address.advertised;
    this.port = port;
    this.socket = socket;
    this.pool = pool;
    this.owner = owner;
  }

  send(data: Buffer, port: number, address: string): void {
    try {
      this.socket.send(data, port, address);
    } catch {
      // dgram throws synchronously on an address it cannot send to; one bad peer must not stop the
      // listener whose callback this runs in (the core already refuses port 0).
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.owner.active--;
    this.owner.release(this.pool, this.port);
  }
}

export class RelayPool implements RelayAllocator {
  private readonly pools: AddressPool[];
  private readonly minPort: number;
  private readonly maxPort: number;
  private readonly sockBufSize: number;
  private readonly log: Logger;
  private readonly own = new Set<string>();
  private readonly localByAdvertised = new Map<string, string>();
  private readonly advertisedByLocal = new Map<string, string>();
  private readonly reservations = new Map<
    string,
    { pool: AddressPool; port: number; expiresAtSec: number }
  >();
  /** Set after construction (the service and the pool refer to each other). */
  service: TurnService | undefined;
  /** Live relay sockets. */
  active = 0;

  constructor(
    addresses: readonly RelayAddress[],
    minPort: number,
    maxPort: number,
    sockBufSize: number,
    log: Logger,
  ) {
    this.pools = addresses.map((a) => new AddressPool(a, minPort, maxPort));
    this.minPort = minPort;
    this.maxPort = maxPort;
    this.sockBufSize = sockBufSize;
    this.log = log;
    for (const a of addresses) {
      this.own.add(a.local);
      this.own.add(a.advertised);
      if (a.local !== a.advertised) {
        this.localByAdvertised.set(a.advertised, a.local);
        this.advertisedByLocal.set(a.local, a.advertised);
      }
    }
  }

  get addresses(): RelayAddress[] {
    return this.pools.map((p) => p.address);
  }

  supports(family: 4 | 6): boolean {
    return this.pools.some((p) => p.address.family === family);
  }

  isOwnRelayAddress(address: string): boolean {
    return this.own.has(address);
  }

  localAddressFor(advertised: string): string | undefined {
    return this.localByAdvertised.size === 0 ? undefined : this.localByAdvertised.get(advertised);
  }

  advertisedAddressFor(local: string): string | undefined {
    return this.advertisedByLocal.size === 0 ? undefined : this.advertisedByLocal.get(local);
  }

  allocate(
    owner: Allocation,
    requests: readonly RelayRequest[],
    done: (results: RelayResult[]) => void,
  ): void {
    const finish = (results: RelayResult[]): void => {
      try {
        done(results);
      } catch (err) {
        this.log.error(
          { err: (err as Error).message, stack: (err as Error).stack },
          'allocate completion failed',
        );
      }
    };
    Promise.all(requests.map((r) => this.bindOne(owner, r))).then(finish, (err: unknown) => {
      this.log.error({ err: (err as Error).message }, 'relay allocation failed');
      finish(requests.map(() => ({ ok: false, code: 508 }) as const));
    });
  }

  private async bindOne(owner: Allocation, request: RelayRequest): Promise<RelayResult> {
    if (request.reservationToken !== undefined) {
      const key = request.reservationToken.toString('hex');
      const r = this.reservations.get(key);
      if (r === undefined || r.pool.state[r.port] !== RESERVED) return { ok: false, code: 508 };
      this.reservations.delete(key);
      r.pool.state[r.port] = USED;
      const socket = await this.bind(r.pool, r.port);
      if (socket === undefined) {
        this.release(r.pool, r.port);
        return { ok: false, code: 508 };
      }
      return { ok: true, relay: this.wire(owner, r.pool, r.port, socket), reservationToken: undefined };
    }
    for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
      const pool = this.pick(request.family);
      if (pool === undefined) return { ok: false, code: 508 };
      const port = this.choosePort(pool, request.evenPort, request.reserveNext);
      if (port < 0) return { ok: false, code: 508 };
      pool.state[port] = USED;
      pool.free--;
      if (request.reserveNext) {
        pool.state[port + 1] = RESERVED;
        pool.free--;
      }
      const socket = await this.bind(pool, port);
      if (socket === undefined) {
        pool.state[port] = BUSY; // another process holds it; the sweep frees the mark later
        if (request.reserveNext) this.release(pool, port + 1);
        continue;
      }
      let token: Buffer | undefined;
      if (request.reserveNext) {
        token = randomBytes(8);
        const nowSec = Math.floor(Date.now() / 1000);
        this.reservations.set(token.toString('hex'), {
          pool,
          port: port + 1,
          expiresAtSec: nowSec + RESERVATION_SEC,
        });
      }
      return { ok: true, relay: this.wire(owner, pool, port, socket), reservationToken: token };
    }
    return { ok: false, code: 508 };
  }

  /** The pool of `family` with the most free ports. */
  private pick(family: 4 | 6): AddressPool | undefined {
    let best: AddressPool | undefined;
    for (const p of this.pools)
      if (p.address.family === family && p.free > 0 && (!best || p.free > best.free)) best = p;
    return best;
  }

  /** A free port (even, and with a free successor, when asked), starting at a random place. */
  private choosePort(pool: AddressPool, even: boolean, reserveNext: boolean): number {
    const span = this.maxPort - this.minPort + 1;
    const start = randomInt(span);
    for (let i = 0; i < span; i++) {
      const port = this.minPort + ((start + i) % span);
      if (pool.state[port] !== FREE) continue;
      if (even && port % 2 !== 0) continue;
      if (reserveNext && (port + 1 > this.maxPort || pool.state[port + 1] !== FREE)) continue;
      return port;
    }
    return -1;
  }

  private bind(pool: AddressPool, port: number): Promise<Socket | undefined> {
    const { family, local } = pool.address;
    return new Promise((resolve) => {
      const socket = createSocket({
        type: family === 6 ? 'udp6' : 'udp4',
        ipv6Only: family === 6,
        lookup: ipLiteralLookup,
      });
      const onError = (err: NodeJS.ErrnoException): void => {
        socket.close();
        if (err.code !== 'EADDRINUSE')
          this.log.warn({ err: err.message, address: local, port }, 'relay bind failed');
        resolve(undefined);
      };
      socket.once('error', onError);
      socket.bind({ address: local, port, exclusive: true }, () => {
        socket.off('error', onError);
        socket.on('error', () => {
          // ICMP errors from peers (ECONNREFUSED…) are routine on relay sockets.
        });
        if (this.sockBufSize > 0) {
          socket.setRecvBufferSize(this.sockBufSize);
          socket.setSendBufferSize(this.sockBufSize);
        }
        resolve(socket);
      });
    });
  }

  /** Connects a bound socket to its allocation: one listener per socket, created once. */
  private wire(owner: Allocation, pool: AddressPool, port: number, socket: Socket): UdpRelay {
    const relay = new UdpRelay(pool, port, socket, this);
    const service = this.service!;
    socket.on('message', (msg, rinfo) => service.onPeerPacket(owner, relay, msg, rinfo.address, rinfo.port));
    this.active++;
    return relay;
  }

  release(pool: AddressPool, port: number): void {
    if (pool.state[port] !== FREE) {
      pool.state[port] = FREE;
      pool.free++;
    }
  }

  /** Expires reservations; forgets ports marked busy by other processes so they are tried again. */
  sweep(nowSec: number): void {
    for (const [key, r] of this.reservations) {
      if (r.expiresAtSec > nowSec) continue;
      this.reservations.delete(key);
      if (r.pool.state[r.port] === RESERVED) this.release(r.pool, r.port);
    }
    if (nowSec % 60 === 0) {
      for (const pool of this.pools) {
        for (let p = this.minPort; p <= this.maxPort; p++) if (pool.state[p] === BUSY) this.release(pool, p);
      }
    }
  }
}
