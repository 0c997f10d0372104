/**
 * Plain counters bumped by the core and the shell; the metrics layer reads them when scraped.
 * Fields are numbers initialised in the constructor so the object keeps one shape (hot path).
 */
export class Stats {
  /** STUN messages decoded and handled. */
  stunMessages = 0;
  /** Binding requests answered with a success. */
  bindingSuccess = 0;
  /** Binding indications received (and ignored, as RFC 8489 §6.3.2 allows). */
  bindingIndications = 0;
  /** Input dropped because it was not STUN/ChannelData or failed to decode. */
  droppedMalformed = 0;
  /** STUN messages dropped for a bad FINGERPRINT. */
  droppedFingerprint = 0;
  /** Responses, indications for unsupported methods and other messages the server ignores. */
  droppedUnsupported = 0;
  /** Responses dropped because a stream client stopped reading (output budget exceeded). */
  droppedBackpressure = 0;
  /** Error responses sent, by code. */
  readonly errorResponses = new Map<number, number>();
  /** TCP/TLS connections accepted / refused (`max-tcp-connections`) / closed for a protocol violation or timeout. */
  streamAccepted = 0;
  streamRefused = 0;
  streamClosedBadFrame = 0;
  streamClosedTimeout = 0;
  /**
   * TCP/TLS connections closed to make room for a new one from the same IP: the oldest connection
   * holding no allocation, when the IP was at `max-tcp-connections-per-ip`.
   */
  streamEvicted = 0;

  /** TURN: requests answered from the retransmission cache. */
  retransmissions = 0;
  /** Unauthenticated error responses not sent because the source exceeded its rate. */
  droppedRateLimited = 0;
  /** 401 challenges to requests without credentials (the normal first step of an allocation). */
  authChallenges = 0;
  /** TURN requests refused because TURN is disabled (no users or secrets). */
  turnDisabledRefusals = 0;
  /** Allocates that failed after authentication (no relay port: 508). */
  allocateFailures = 0;
  allocationsCreated = 0;
  /** Allocations deleted, by reason (expired, refreshed-to-zero, connection-closed, …). */
  readonly allocationsDeleted = new Map<string, number>();
  /** RFC 8016: allocations moved to a new client 5-tuple by a MOBILITY-TICKET. */
  mobilityMoves = 0;
  /** RFC 8016: tickets refused (405), by reason (`TicketRefusal`). */
  readonly mobilityRefused = new Map<string, number>();
  /** Authentication failures by reason. */
  readonly authFailures = new Map<string, number>();
  /** CreatePermission/ChannelBind peers refused by the peer policy (403). */
  peerRefusals = 0;
  /**
   * RFC 6062 TCP relays: peer connections opened (Connect succeeded, or a peer connected and was
   * announced), bound to a client data connection, failed Connects (447), peer connections closed
   * unbound after the ConnectionBind timeout, incoming peer connections refused (no permission,
   * peer policy, the per-allocation cap).
   */
  tcpConnectionsOpened = 0;
  tcpConnectionsBound = 0;
  tcpConnectFailures = 0;
  tcpBindTimeouts = 0;
  tcpPeerConnectionsRefused = 0;
  /** Relay drops: no allocation for the client, no permission, peer policy, no channel. */
  droppedNoAllocation = 0;
  droppedNoPermission = 0;
  droppedPeerPolicy = 0;
  droppedNoChannel = 0;
  /** Peer datagrams too large to carry in ChannelData or a Data indication (over 64 KiB). */
  droppedOversize = 0;
  /** Relay drops by the payload policy and the bandwidth limits (per allocation, per user, server). */
  droppedPayloadPolicy = 0;
  droppedMaxBps = 0;
  droppedUserMaxBps = 0;
  droppedBpsCapacity = 0;
  /** Relayed traffic (payload bytes). */
  relayedToPeerPackets = 0;
  relayedToPeerBytes = 0;
  relayedToClientPackets = 0;
  relayedToClientBytes = 0;

  /** TURN responses by method: [successes, errors]. Binding successes are `bindingSuccess`. */
  readonly responses = new Map<number, [number, number]>();

  countResponse(method: number, success: boolean): void {
    let pair = this.responses.get(method);
    if (pair === undefined) {
      pair = [0, 0];
      this.responses.set(method, pair);
    }
    pair[success ? 0 : 1]++;
  }

  countAllocationDeleted(reason: string): void {
    this.allocationsDeleted.set(reason, (this.allocationsDeleted.get(reason) ?? 0) + 1);
  }

  countMobilityRefused(reason: string): void {
    this.mobilityRefused.set(reason, (this.mobilityRefused.get(reason) ?? 0) + 1);
  }

  countAuthFailure(reason: string): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
  }

  countError(code: number): void {
    this.errorResponses.set(code, (this.errorResponses.get(code) ?? 0) + 1);
  }
}
