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
import { createServer, type Server } from 'node:net';
import type { Clock } from '../core/clock.js';
import type { ClientEndpoint, RelayAddressBook, RelayHandle } from '../core/transport.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { PeerDataSink } from '../core/turn/forwarding.js';
import type { RelayAllocator, RelayRequest, RelayResult } from '../core/turn/types.js';
import type { Logger } from '../log.js';
import { ipLiteralLookup } from './ip-lookup.js';
import type { TcpPeerSink } from './tcp-relay.js';

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
/** How often ports marked BUSY are tried again. */
const BUSY_RETRY_SEC = 60;
const CAPACITY: RelayResult = Object.freeze({ ok: false, code: 508 });

/** ICMP errors from peers (ECONNREFUSED…) are routine on relay sockets. */
function ignoreRelayError(): void {}
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

/**
 * Relay sockets of the native data plane: bound by the addon, read by its threads. Allocations of
 * the clients it serves get these; the others get `dgram` sockets.
 */
export interface NativeRelaySockets {
  serves(endpoint: ClientEndpoint): boolean;
  /** A socket bound to address:port: its descriptor, or -errno. */
  bind(address: string, port: number, sockBuf: number): number;
  send(fd: number, data: Buffer, address: string, port: number): void;
  /** Closes a socket no thread owns yet. */
  close(fd: number): void;
}

/** A bound socket not yet wired to an allocation (or held for a reservation). */
type Held =
  | { readonly socket: Socket; readonly fd?: undefined }
  | { readonly socket?: undefined; readonly fd: number };

/** A relay port of the pool: its address and port, and giving the port back exactly once. */
abstract class PooledRelay implements RelayHandle {
  readonly family: 4 | 6;
  readonly localAddress: string;
  readonly port: number;
  readonly advertisedAddress: string;
  private readonly pool: AddressPool;
  private readonly owner: RelayPool;
  protected closed = false;

  constructor(pool: AddressPool, port: number, owner: RelayPool) {
    this.family = pool.address.family;
    this.localAddress = pool.address.local;
    this.advertisedAddress = pool.address.advertised;
    this.port = port;
    this.pool = pool;
    this.owner = owner;
  }

  abstract send(data: Buffer, port: number, address: string): void;

  /** Closes the socket (`closeSocket`) and returns the port to the pool; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeSocket();
    this.owner.active--;
    this.owner.release(this.pool, this.port);
  }

  protected abstract closeSocket(): void;
}

class NativeUdpRelay extends PooledRelay {
  readonly nativeFd: number;
  private readonly sockets: NativeRelaySockets;
  private handedOver = false;

  constructor(pool: AddressPool, port: number, fd: number, owner: RelayPool, sockets: NativeRelaySockets) {
    super(pool, port, owner);
    this.nativeFd = fd;
    this.sockets = sockets;
  }

  handOver(): void {
    this.handedOver = true;
  }

  send(data: Buffer, port: number, address: string): void {
    if (!this.closed) this.sockets.send(this.nativeFd, data, address, port);
  }

  protected closeSocket(): void {
    // Once installed, the owning thread closes the socket when it applies the uninstall (queued
    // before this); closing it here could close a descriptor number already reused.
    if (!this.handedOver) this.sockets.close(this.nativeFd);
  }
}

/**
 * RFC 6062: the relayed address of a TCP allocation, a TCP listening socket peers connect to. It
 * sends no datagrams (Send indications and ChannelData do not apply to TCP allocations).
 */
class TcpListenerRelay extends PooledRelay {
  readonly server: Server;

  constructor(pool: AddressPool, port: number, server: Server, owner: RelayPool) {
    super(pool, port, owner);
    this.server = server;
  }

  send(): void {}

  protected closeSocket(): void {
    this.server.close();
  }
}

class UdpRelay extends PooledRelay {
  readonly socket: Socket;

  constructor(pool: AddressPool, port: number, socket: Socket, owner: RelayPool) {
    super(pool, port, owner);
    this.socket = socket;
  }

  send(data: Buffer, port: number, address: string): void {
    try {
      this.socket.send(data, port, address);
    } catch {
      // dgram throws synchronously on an address it cannot send to; one bad peer must not stop the
      // listener whose callback this runs in (the core already refuses port 0).
    }
  }

  protected closeSocket(): void {
    this.socket.close();
  }
}

export interface RelayPoolOptions {
  readonly addresses: readonly RelayAddress[];
  /** The same addresses as a local ↔ advertised table (shared with the data plane). */
  readonly book: RelayAddressBook;
  readonly minPort: number;
  readonly maxPort: number;
  /** SO_RCVBUF/SO_SNDBUF of relay sockets; 0 keeps the OS default. */
  readonly sockBufSize: number;
  /** Where peer datagrams go (the data plane). */
  readonly sink: PeerDataSink;
  /** The native data plane's sockets, when it runs. */
  readonly native?: NativeRelaySockets | undefined;
  /** RFC 6062: where TCP allocations' relay listeners hand peer connections (none: no TCP relays). */
  readonly tcpSink?: TcpPeerSink | undefined;
  readonly clock: Clock;
  readonly log: Logger;
}

export class RelayPool implements RelayAllocator {
  private readonly pools: AddressPool[];
  private readonly minPort: number;
  private readonly maxPort: number;
  private readonly sockBufSize: number;
  private readonly sink: PeerDataSink;
  private readonly native: NativeRelaySockets | undefined;
  private readonly tcpSink: TcpPeerSink | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly book: RelayAddressBook;
  private lastBusyRetrySec: number;
  /** Reserved ports (EVEN-PORT R bit) by RESERVATION-TOKEN (hex), each held by a bound socket. */
  private readonly reservations = new Map<
    string,
    { pool: AddressPool; port: number; held: Held; expiresAtSec: number }
  >();
  /** Live relay sockets. */
  active = 0;

  constructor(options: RelayPoolOptions) {
    this.pools = options.addresses.map((a) => new AddressPool(a, options.minPort, options.maxPort));
    this.minPort = options.minPort;
    this.maxPort = options.maxPort;
    this.sockBufSize = options.sockBufSize;
    this.sink = options.sink;
    this.native = options.native;
    this.tcpSink = options.tcpSink;
    this.clock = options.clock;
    this.log = options.log;
    this.book = options.book;
    this.lastBusyRetrySec = options.clock.nowSec();
  }

  get addresses(): RelayAddress[] {
    return this.pools.map((p) => p.address);
  }

  supports(family: 4 | 6): boolean {
    return this.pools.some((p) => p.address.family === family);
  }

  isOwnRelayAddress(address: string): boolean {
    return this.book.isOwnRelayAddress(address);
  }

  localAddressFor(advertised: string): string | undefined {
    return this.book.localAddressFor(advertised);
  }

  advertisedAddressFor(local: string): string | undefined {
    return this.book.advertisedAddressFor(local);
  }

  allocate(
    owner: Allocation,
    requests: readonly RelayRequest[],
    done: (results: RelayResult[]) => void,
  ): void {
    // Callbacks rather than promises: this runs once per Allocate, and the setup rate is a target.
    const results: RelayResult[] = new Array(requests.length);
    let left = requests.length;
    const settle = (i: number, result: RelayResult): void => {
      results[i] = result;
      if (--left > 0) return;
      try {
        done(results);
      } catch (err) {
        this.log.error(
          { err: (err as Error).message, stack: (err as Error).stack },
          'allocate completion failed',
        );
      }
    };
    for (let i = 0; i < requests.length; i++) {
      this.bindOne(owner, requests[i]!, BIND_ATTEMPTS, (result) => settle(i, result));
    }
  }

  private bindOne(
    owner: Allocation,
    request: RelayRequest,
    attemptsLeft: number,
    cb: (result: RelayResult) => void,
  ): void {
    if (request.transport === 'tcp') {
      this.bindTcpOne(owner, request, attemptsLeft, cb);
      return;
    }
    const native = this.native?.serves(owner.endpoint) === true;
    if (request.reservationToken !== undefined) {
      // The port was bound when it was reserved: the held socket becomes the relay.
      const key = request.reservationToken.toString('hex');
      const r = this.reservations.get(key);
      if (r === undefined) {
        cb(CAPACITY);
        return;
      }
      this.reservations.delete(key);
      r.pool.state[r.port] = USED;
      if ((r.held.fd !== undefined) === native) {
        cb({ ok: true, relay: this.wire(owner, r.pool, r.port, r.held), reservationToken: undefined });
        return;
      }
      // Reserved through one data plane, redeemed through the other: the same port, rebound.
      this.closeHeld(r.held);
      this.bind(r.pool, r.port, native, (held) => {
        if (held === undefined) {
          this.release(r.pool, r.port);
          cb(CAPACITY);
        } else cb({ ok: true, relay: this.wire(owner, r.pool, r.port, held), reservationToken: undefined });
      });
      return;
    }
    if (attemptsLeft <= 0) {
      cb(CAPACITY);
      return;
    }
    const pool = this.pick(request.family);
    if (pool === undefined) {
      cb(CAPACITY);
      return;
    }
    const port = this.choosePort(pool, request.evenPort, request.reserveNext);
    if (port < 0) {
      cb(CAPACITY);
      return;
    }
    pool.state[port] = USED;
    pool.free--;
    if (request.reserveNext) {
      pool.state[port + 1] = RESERVED;
      pool.free--;
    }
    this.bind(pool, port, native, (socket) => {
      if (socket === undefined) {
        pool.state[port] = BUSY; // another process holds it; the sweep frees the mark later
        if (request.reserveNext) this.release(pool, port + 1);
        this.bindOne(owner, request, attemptsLeft - 1, cb);
        return;
      }
      if (!request.reserveNext) {
        cb({ ok: true, relay: this.wire(owner, pool, port, socket), reservationToken: undefined });
        return;
      }
      // RFC 8656 §7.2: port + 1 is held for the RESERVATION-TOKEN, bound now so that no other process
      // can take it before the token is redeemed. Datagrams reaching it meanwhile have no listener.
      this.bind(pool, port + 1, native, (held) => {
        if (held === undefined) {
          this.closeHeld(socket);
          this.release(pool, port);
          pool.state[port + 1] = BUSY;
          this.bindOne(owner, request, attemptsLeft - 1, cb);
          return;
        }
        const token = randomBytes(8);
        this.reservations.set(token.toString('hex'), {
          pool,
          port: port + 1,
          held,
          expiresAtSec: this.clock.nowSec() + RESERVATION_SEC,
        });
        cb({ ok: true, relay: this.wire(owner, pool, port, socket), reservationToken: token });
      });
    });
  }

  /** RFC 6062 §5.1: a TCP listening socket on a free relay port, for a TCP allocation. */
  private bindTcpOne(
    owner: Allocation,
    request: RelayRequest,
    attemptsLeft: number,
    cb: (result: RelayResult) => void,
  ): void {
    const sink = this.tcpSink;
    const pool = attemptsLeft > 0 && sink !== undefined ? this.pick(request.family) : undefined;
    const port = pool === undefined ? -1 : this.choosePort(pool, false, false);
    if (pool === undefined || port < 0 || sink === undefined) {
      cb(CAPACITY);
      return;
    }
    pool.state[port] = USED;
    pool.free--;
    const server = createServer({ noDelay: true, pauseOnConnect: true });
    const onError = (err: NodeJS.ErrnoException): void => {
      server.close();
      if (err.code !== 'EADDRINUSE')
        this.log.warn({ err: err.message, address: pool.address.local, port }, 'tcp relay listen failed');
      pool.state[port] = BUSY; // another process holds it; the sweep frees the mark later
      this.bindTcpOne(owner, request, attemptsLeft - 1, cb);
    };
    server.once('error', onError);
    server.listen(
      { host: pool.address.local, port, exclusive: true, ipv6Only: pool.address.family === 6, backlog: 64 },
      () => {
        server.off('error', onError);
        server.on('error', ignoreRelayError);
        server.on('connection', (socket) => sink.accepted(owner, socket));
        this.active++;
        cb({ ok: true, relay: new TcpListenerRelay(pool, port, server, this), reservationToken: undefined });
      },
    );
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

  /** Binds a relay socket to `port` of `pool`'s address; `cb(undefined)` when the port is taken or the bind fails. */
  private bind(pool: AddressPool, port: number, native: boolean, cb: (held: Held | undefined) => void): void {
    const { family, local } = pool.address;
    if (native && this.native !== undefined) {
      const fd = this.native.bind(local, port, this.sockBufSize);
      if (fd >= 0) cb({ fd });
      else {
        // -98 is EADDRINUSE on Linux: another process holds the port (routine, not logged).
        if (fd !== -98) this.log.warn({ errno: fd, address: local, port }, 'relay bind failed');
        cb(undefined);
      }
      return;
    }
    let socket: Socket;
    try {
      socket = createSocket({
        type: family === 6 ? 'udp6' : 'udp4',
        ipv6Only: family === 6,
        lookup: ipLiteralLookup,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, address: local, port }, 'relay socket failed');
      cb(undefined);
      return;
    }
    const onError = (err: NodeJS.ErrnoException): void => {
      socket.close();
      if (err.code !== 'EADDRINUSE')
        this.log.warn({ err: err.message, address: local, port }, 'relay bind failed');
      cb(undefined);
    };
    socket.once('error', onError);
    socket.bind({ address: local, port, exclusive: true }, () => {
      socket.off('error', onError);
      socket.on('error', ignoreRelayError);
      if (this.sockBufSize > 0) {
        socket.setRecvBufferSize(this.sockBufSize);
        socket.setSendBufferSize(this.sockBufSize);
      }
      cb({ socket });
    });
  }

  private closeHeld(held: Held): void {
    if (held.socket !== undefined) held.socket.close();
    else this.native?.close(held.fd);
  }

  /** Connects a bound socket to its allocation: one listener per socket, created once. */
  private wire(owner: Allocation, pool: AddressPool, port: number, held: Held): RelayHandle {
    this.active++;
    if (held.socket === undefined) return new NativeUdpRelay(pool, port, held.fd, this, this.native!);
    const socket = held.socket;
    const relay = new UdpRelay(pool, port, socket, this);
    const sink = this.sink;
    socket.on('message', (msg, rinfo) => sink.fromPeer(owner, relay, msg, rinfo.address, rinfo.port));
    return relay;
  }

  release(pool: AddressPool, port: number): void {
    if (pool.state[port] !== FREE) {
      pool.state[port] = FREE;
      pool.free++;
    }
  }

  /**
   * Relay ports per address family: how many the min-port..max-port range gives over all relay
   * addresses of the family, and how many are free (not in use, reserved, or held by another process).
   */
  portUsage(): { family: 4 | 6; capacity: number; free: number }[] {
    const span = this.maxPort - this.minPort + 1;
    const out: { family: 4 | 6; capacity: number; free: number }[] = [];
    for (const family of [4, 6] as const) {
      const pools = this.pools.filter((p) => p.address.family === family);
      if (pools.length === 0) continue;
      out.push({ family, capacity: span * pools.length, free: pools.reduce((n, p) => n + p.free, 0) });
    }
    return out;
  }

  /** Closes the sockets holding reserved ports (shutdown). */
  closeReservations(): void {
    for (const r of this.reservations.values()) {
      this.closeHeld(r.held);
      this.release(r.pool, r.port);
    }
    this.reservations.clear();
  }

  /** Expires reservations; forgets ports marked busy by other processes so they are tried again. */
  sweep(): void {
    const nowSec = this.clock.nowSec();
    for (const [key, r] of this.reservations) {
      if (r.expiresAtSec > nowSec) continue;
      this.reservations.delete(key);
      this.closeHeld(r.held);
      if (r.pool.state[r.port] === RESERVED) this.release(r.pool, r.port);
    }
    // Elapsed time, not `nowSec % 60`: a tick that slips past the exact second must not skip it.
    if (nowSec - this.lastBusyRetrySec >= BUSY_RETRY_SEC) {
      this.lastBusyRetrySec = nowSec;
      for (const pool of this.pools) {
        for (let p = this.minPort; p <= this.maxPort; p++) if (pool.state[p] === BUSY) this.release(pool, p);
      }
    }
  }
}
