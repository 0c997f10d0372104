/**
 * The sans-I/O STUN service: a message, its source address and the endpoint it came on in; the
 * answer (if any) out through that endpoint. No sockets, no timers, no state kept per request.
 *
 * RFC 8489 §6.3 processing of a received message:
 *  - a message that fails to decode, or whose FINGERPRINT is wrong, is discarded silently;
 *  - responses (success/error class) are not expected by a server and are discarded;
 *  - a request with unknown comprehension-required attributes gets 420 with UNKNOWN-ATTRIBUTES;
 *  - Binding requests get a success with XOR-MAPPED-ADDRESS (§7.3.1), FINGERPRINT added when the
 *    request carried one; Binding indications are accepted and ignored;
 *  - TURN requests and Send indications go to the TURN service, when there is one.
 */
import { channelDataLength } from './channel-data.js';
import type { Clock } from './clock.js';
import { AttrType, CHANNEL_MAX, Class, ErrorCode, Method } from './constants.js';
import { classify, PacketKind } from './demux.js';
import { unmapped } from './ip.js';
import { SourceRateLimiter } from './rate-limit.js';
import { Stats } from './stats.js';
import { unknownRequiredAttributes } from './stun/attrs.js';
import { decodeStunInto, StunView } from './stun/decode.js';
import { StunWriter } from './stun/encode.js';
import { verifyFingerprint } from './stun/integrity.js';
import type { ClientEndpoint } from './transport.js';
import type { ClientDataSink } from './turn/forwarding.js';
import type { TurnService } from './turn/service.js';

const TURN_REQUESTS: ReadonlySet<number> = new Set([
  Method.Allocate,
  Method.Refresh,
  Method.CreatePermission,
  Method.ChannelBind,
  Method.Connect,
  Method.ConnectionBind,
]);

export interface StunCoreOptions {
  /** Text for a SOFTWARE attribute on every response, or undefined for none (the default: smaller answers). */
  readonly software: string | undefined;
}

export interface StunCoreDeps {
  readonly options: StunCoreOptions;
  readonly clock: Clock;
  readonly stats?: Stats;
  /** Budget for error responses to unauthenticated requests, per source IP (none: unlimited). */
  readonly limiter?: SourceRateLimiter;
  /** The TURN service; without it TURN methods get 400. */
  readonly turn?: TurnService;
  /** Where ChannelData from clients goes (the data plane); without it, it is dropped. */
  readonly channelData?: ClientDataSink;
  /** Highest channel number served: CHANNEL_MAX, or RFC5766_CHANNEL_MAX (`rfc5766-channel-numbers`). */
  readonly maxChannel?: number;
}

export class StunCore {
  readonly stats: Stats;
  private options: StunCoreOptions;
  private readonly clock: Clock;
  private readonly limiter: SourceRateLimiter;
  private readonly turn: TurnService | undefined;
  private readonly channelData: ClientDataSink | undefined;
  private maxChannel: number;
  /** Reused for every message: handling is synchronous, nothing keeps a reference. */
  private readonly view = new StunView();
  private readonly writer = new StunWriter(256);

  constructor(deps: StunCoreDeps) {
    this.options = deps.options;
    this.clock = deps.clock;
    this.stats = deps.stats ?? new Stats();
    this.limiter =
      deps.limiter ?? new SourceRateLimiter({ ratePerSec: 0, verifiedLifetimeMs: 0, maxVerified: 1 });
    this.turn = deps.turn;
    this.channelData = deps.channelData;
    this.maxChannel = deps.maxChannel ?? CHANNEL_MAX;
  }

  /** Applies new options (configuration reload). */
  setOptions(options: StunCoreOptions, maxChannel: number = this.maxChannel): void {
    this.options = options;
    this.maxChannel = maxChannel;
  }

  /** Channel numbers above 0x4FFF (RFC 5766's range) are served: stream framers need to know. */
  get legacyChannels(): boolean {
    return this.maxChannel > CHANNEL_MAX;
  }

  /**
   * One message from a client — a UDP datagram or a stream frame — demultiplexed by its first byte
   * (RFC 7983): STUN to `handle`, ChannelData to the data plane, anything else dropped. The one
   * place where a client's ChannelData enters the server.
   */
  receive(msg: Buffer, address: string, port: number, endpoint: ClientEndpoint): void {
    if (msg.length === 0) return;
    const kind = classify(msg[0]!, this.maxChannel > CHANNEL_MAX);
    if (kind === PacketKind.ChannelData) {
      // Hot path: client → peer over a channel. No object is built here.
      const len = channelDataLength(msg, this.maxChannel);
      if (len < 0) this.stats.droppedMalformed++;
      else if (this.channelData === undefined) this.stats.droppedNoAllocation++;
      else this.channelData.fromClient(endpoint, msg, len, address, port);
    } else if (kind === PacketKind.Stun) {
      this.handle(msg, address, port, endpoint);
    } else {
      this.stats.droppedMalformed++;
    }
  }

  /**
   * Handles one STUN message (already demultiplexed by its first byte) from `address`:`port`,
   * received on `endpoint`; an answer goes back through `endpoint`.
   */
  handle(buf: Buffer, address: string, port: number, endpoint: ClientEndpoint): void {
    const view = this.view;
    const failure = decodeStunInto(buf, view);
    if (failure !== null) {
      // Well formed but with more attributes than the index holds: a request gets 400 (RFC 8489
      // §6.3.1.1 leaves the limit to the server); anything else malformed is dropped silently.
      if (failure === 'too-many-attrs' && view.cls === Class.Request)
        this.error(view, ErrorCode.BadRequest, address, port, endpoint);
      else this.stats.droppedMalformed++;
      return;
    }
    if (!verifyFingerprint(view)) {
      this.stats.droppedFingerprint++;
      return;
    }
    this.stats.stunMessages++;
    if (view.cls === Class.Indication) {
      // RFC 8489 §6.3.2: an indication with unknown comprehension-required attributes is discarded.
      if (unknownRequiredAttributes(view).length > 0) this.stats.droppedUnsupported++;
      else if (view.method === Method.Binding) this.stats.bindingIndications++;
      else if (view.method === Method.Send && this.turn !== undefined)
        this.turn.handleSendIndication(view, endpoint, address, port);
      else this.stats.droppedUnsupported++;
      return;
    }
    if (view.cls !== Class.Request) {
      this.stats.droppedUnsupported++;
      return;
    }
    const unknown = unknownRequiredAttributes(view);
    if (unknown.length > 0) this.error(view, ErrorCode.UnknownAttribute, address, port, endpoint, unknown);
    else if (view.method === Method.Binding) this.binding(view, address, port, endpoint);
    else if (this.turn !== undefined && TURN_REQUESTS.has(view.method))
      this.turn.handleRequest(view, endpoint, address, port);
    // Methods this service does not implement (unknown methods, or TURN ones without TURN): 400.
    else this.error(view, ErrorCode.BadRequest, address, port, endpoint);
  }

  /** RFC 8489 §7.3.1: Binding success with XOR-MAPPED-ADDRESS of the request's source. */
  private binding(view: StunView, address: string, port: number, endpoint: ClientEndpoint): void {
    this.stats.bindingSuccess++;
    const w = this.writer.startResponse(Method.Binding, Class.Success, view.buf);
    w.addAddress(AttrType.XorMappedAddress, unmapped(address), port, true);
    endpoint.send(this.finish(view, w), address, port);
  }

  /**
   * An error to a request nobody authenticated: over UDP subject to the per-source rate limit (a
   * spoofed source could aim the answers at a victim). TCP/TLS sources cannot be spoofed past the
   * handshake, and a stream client never retransmits, so a dropped answer would only hang it.
   */
  private error(
    view: StunView,
    code: ErrorCode,
    address: string,
    port: number,
    endpoint: ClientEndpoint,
    unknown?: readonly number[],
  ): void {
    if (endpoint.transport === 'udp' && !this.limiter.allow(address, this.clock.nowMs(), 'error')) {
      this.stats.droppedRateLimited++;
      return;
    }
    this.stats.countError(code);
    const w = this.writer.startResponse(view.method, Class.Error, view.buf);
    w.addErrorCode(code, '');
    if (unknown !== undefined) w.addUnknownAttributes(unknown);
    endpoint.send(this.finish(view, w), address, port);
  }

  private finish(view: StunView, w: StunWriter): Buffer {
    if (this.options.software !== undefined) w.addString(AttrType.Software, this.options.software);
    if (view.fingerprintAt >= 0) w.addFingerprint();
    return w.finish();
  }
}
