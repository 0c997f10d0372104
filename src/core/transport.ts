/**
 * The transport interface between the core and the sockets the shell (or a data plane) owns. The
 * core receives datagrams and stream frames from the listeners and emits every send through these
 * interfaces: one output path, for immediate responses and for answers that come later (an
 * Allocate waits for its relay sockets to be bound).
 */

/** How the core reaches a client: a UDP listener socket, or one TCP/TLS connection. */
export interface ClientEndpoint {
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** Sends one message to the client (UDP: a datagram to address:port; streams: the connection). */
  send(buf: Buffer, address: string, port: number): void;
  /** Sends the concatenation of `bufs` as one message (scatter/gather, no copy). */
  sendv(bufs: readonly Buffer[], address: string, port: number): void;
}

/** A bound relay socket, as the shell hands it to the core. */
export interface RelayHandle {
  readonly family: 4 | 6;
  /** Address the socket is bound to. */
  readonly localAddress: string;
  readonly port: number;
  /** Address advertised in XOR-RELAYED-ADDRESS: the external (public) address behind 1:1 NAT, else localAddress. */
  readonly advertisedAddress: string;
  /** Sends `data` to a peer. */
  send(data: Buffer, port: number, address: string): void;
  /** Closes the socket and returns the port to the pool; idempotent. */
  close(): void;
}

/**
 * The server's relay addresses behind 1:1 NAT (`external-ip`): peers know a relay by its advertised
 * address, sockets are bound to the local one.
 */
export interface RelayAddressMap {
  /** True when `address` is one of this server's relay addresses (local or advertised). */
  isOwnRelayAddress(address: string): boolean;
  /** For an advertised (public) relay address, the local address to send to instead. */
  localAddressFor(advertised: string): string | undefined;
  /** For a local relay address, the advertised one peers know (the inverse of localAddressFor). */
  advertisedAddressFor(local: string): string | undefined;
}

/** A table of relay addresses (local ↔ advertised), built once from the configuration. */
export class RelayAddressBook implements RelayAddressMap {
  private readonly own = new Set<string>();
  private readonly localByAdvertised = new Map<string, string>();
  private readonly advertisedByLocal = new Map<string, string>();

  constructor(addresses: readonly { readonly local: string; readonly advertised: string }[]) {
    for (const a of addresses) {
      this.own.add(a.local);
      this.own.add(a.advertised);
      if (a.local !== a.advertised) {
        this.localByAdvertised.set(a.advertised, a.local);
        this.advertisedByLocal.set(a.local, a.advertised);
      }
    }
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
}
