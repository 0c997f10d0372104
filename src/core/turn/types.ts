/**
 * Types shared by the TURN service and its handlers: options, the relay allocator the shell
 * provides, one request's context, and the state a handler may use.
 */
import type { Authenticator, AuthSuccess } from '../auth/authenticate.js';
import type { Clock } from '../clock.js';
import type { Stats } from '../stats.js';
import type { StunView } from '../stun/decode.js';
import type { ClientEndpoint, RelayAddressMap, RelayHandle } from '../transport.js';
import type { AllocationAdmission } from './admission.js';
import type { Allocation } from './allocation.js';
import type { DeleteReason, TurnEventBus } from './events.js';
import type { ForwardingTable } from './forwarding.js';
import type { TicketBook } from './mobility.js';
import type { ResponseCache } from './response-cache.js';
import type { Responder } from './responses.js';
import type { AllocationTable } from './table.js';
import type { TcpConnections, TcpConnector } from './tcp-relay.js';

/** What the core asks of the shell for one relay socket. */
export interface RelayRequest {
  readonly family: 4 | 6;
  /** EVEN-PORT: an even port; with `reserveNext`, also reserve port + 1 and return a token. */
  readonly evenPort: boolean;
  readonly reserveNext: boolean;
  /** RESERVATION-TOKEN from an earlier EVEN-PORT Allocate. */
  readonly reservationToken: Buffer | undefined;
  /** RFC 6062: 'tcp' binds a TCP listening socket (peers connect to it) instead of a UDP socket. */
  readonly transport?: 'udp' | 'tcp';
}

export type RelayResult =
  | { readonly ok: true; readonly relay: RelayHandle; readonly reservationToken: Buffer | undefined }
  | { readonly ok: false; readonly code: 508 };

export interface RelayAllocator extends RelayAddressMap {
  /** Whether relay addresses of `family` exist at all (else 440). */
  supports(family: 4 | 6): boolean;
  /**
   * Binds one relay socket per request for `owner` and calls `done` once with the results in
   * order. Packets the sockets receive go to the data plane (`PeerDataSink.fromPeer`).
   */
  allocate(
    owner: Allocation,
    requests: readonly RelayRequest[],
    done: (results: RelayResult[]) => void,
  ): void;
}

export interface TurnOptions {
  /**
   * TURN is served (users or REST secrets are configured). When false, TURN requests get a 401
   * saying TURN is disabled; switching it on or off is a reconfiguration, not a restart.
   */
  readonly enabled: boolean;
  readonly defaultLifetimeSec: number;
  readonly maxLifetimeSec: number;
  readonly permissionLifetimeSec: number;
  readonly channelLifetimeSec: number;
  readonly userQuota: number;
  readonly totalQuota: number;
  readonly maxPermissions: number;
  readonly maxChannels: number;
  readonly offerSha256: boolean;
  readonly software: string | undefined;
  readonly minRelayPort: number;
  readonly maxRelayPort: number;
  /** Highest channel number accepted in ChannelBind (0x4FFF, or 0x7FFE for RFC 5766 clients). */
  readonly maxChannel: number;
  /**
   * Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY: 'ipv4' (RFC 8656 §7.2), 'ipv6', or
   * 'keep' (the client's own family). Undefined: 'ipv4'. When the server has no relay address of that
   * family the other one is used (the client asked for none in particular).
   */
  readonly defaultFamily?: 'ipv4' | 'ipv6' | 'keep';
  /**
   * RFC 6062 TCP allocations are served (`tcp-relay`, and a shell that can open TCP relays).
   * Undefined: false (REQUESTED-TRANSPORT TCP gets 442).
   */
  readonly tcpRelay?: boolean;
  /** Peer TCP connections per TCP allocation (`tcp-relay-max-connections`); undefined: 32. */
  readonly tcpRelayMaxConnections?: number;
  /**
   * Seconds a peer data connection waits for its ConnectionBind (RFC 6062 §5.2, §5.3: 30);
   * undefined: 30. Only tests shorten it.
   */
  readonly tcpConnectionBindTimeoutSec?: number;
  /** Milliseconds a Connect waits for the peer (RFC 6062 §5.2: at least 30 s); undefined: 30 s. Only tests shorten it. */
  readonly tcpConnectTimeoutMs?: number;
  /** Where new Allocates go while draining (300 Try Alternate); empty: they get 508. */
  readonly alternateServers?: readonly { readonly address: string; readonly port: number }[];
  /**
   * RFC 8016 mobility (`mobility`): an Allocate with an empty MOBILITY-TICKET gets a mobile
   * allocation, whose tickets move it to a new 5-tuple. Off or undefined: such an Allocate, and a
   * Refresh with a ticket from a new 5-tuple, get 405 Mobility Forbidden.
   */
  readonly mobility?: boolean;
}

/** One authenticated request, as the handlers see it. `view` is valid only during the call. */
export interface TurnRequest {
  readonly view: StunView;
  readonly endpoint: ClientEndpoint;
  readonly address: string;
  readonly port: number;
  readonly nowSec: number;
  readonly auth: AuthSuccess;
  /** Key of the retransmission cache (Allocate and Refresh), '' otherwise. */
  readonly cacheKey: string;
}

/** What the handlers may use of the service. */
export interface TurnState {
  readonly options: TurnOptions;
  readonly auth: Authenticator;
  readonly allocator: RelayAllocator;
  readonly plane: ForwardingTable;
  readonly table: AllocationTable;
  readonly stats: Stats;
  readonly clock: Clock;
  readonly events: TurnEventBus;
  readonly responder: Responder;
  readonly cache: ResponseCache;
  /** RFC 8016 tickets and the mobile allocations they lead to. */
  readonly tickets: TicketBook;
  readonly draining: boolean;
  /** Fleet mode's redirect and admission (undefined: a lone node). */
  readonly admission: AllocationAdmission | undefined;
  nextAlternate: number;
  /** RFC 6062: the peer data connections of TCP allocations, and the shell's connector (none: no TCP relaying). */
  readonly tcp: TcpConnections;
  readonly tcpConnector: TcpConnector | undefined;
  newAllocationId(): number;
  ownAllocation(r: TurnRequest): Allocation;
  peerAllowed(address: string, port: number | undefined, bytes?: Uint8Array): boolean;
  activate(a: Allocation): void;
  /**
   * RFC 8016: moves `a` to the client 5-tuple (endpoint, address, port), which holds no allocation;
   * false (nothing changed) when the data plane cannot serve `a` from there.
   */
  moveAllocation(a: Allocation, endpoint: ClientEndpoint, address: string, port: number): boolean;
  deleteAllocation(a: Allocation, reason: DeleteReason): void;
}
