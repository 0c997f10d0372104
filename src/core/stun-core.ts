/**
 * The sans-I/O STUN service: bytes and a source address in, response bytes (or nothing) out.
 * No sockets, no timers, no state kept per request.
 *
 * RFC 8489 §6.3 processing of a received message:
 *  - a message that fails to decode, or whose FINGERPRINT is wrong, is discarded silently;
 *  - responses (success/error class) are not expected by a server and are discarded;
 *  - a request with unknown comprehension-required attributes gets 420 with UNKNOWN-ATTRIBUTES;
 *  - Binding requests get a success with XOR-MAPPED-ADDRESS (§7.3.1), FINGERPRINT added when the
 *    request carried one; Binding indications are accepted and ignored.
 */
import { AttrType, CHANNEL_MAX, Class, Method, REASON_PHRASES } from './constants.js';
import { unmapped } from './ip.js';
import { SourceRateLimiter } from './rate-limit.js';
import { Stats } from './stats.js';
import type { ClientEndpoint } from './turn/allocation.js';
import type { TurnService } from './turn/service.js';

const TURN_REQUESTS: ReadonlySet<number> = new Set([
  Method.Allocate,
  Method.Refresh,
  Method.CreatePermission,
  Method.ChannelBind,
]);

import { unknownRequiredAttributes } from './stun/attrs.js';
import { decodeStunInto, StunView } from './stun/decode.js';
import { StunWriter } from './stun/encode.js';
import { verifyFingerprint } from './stun/integrity.js';

export interface StunCoreOptions {
  /** Text for a SOFTWARE attribute on every response, or undefined for none (the default: smaller answers). */
  readonly software: string | undefined;
  /** Put RFC reason phrases into ERROR-CODE (off keeps error responses small). */
  readonly reasonPhrases: boolean;
}

export class StunCore {
  readonly stats: Stats;
  private options: StunCoreOptions;
  /** The TURN service, when credentials are configured; without it TURN methods get 400. */
  turn: TurnService | undefined;
  /** Highest channel number served: CHANNEL_MAX, or RFC5766_CHANNEL_MAX with `rfc5766-channel-numbers`. */
  maxChannel: number = CHANNEL_MAX;
  /** Budget for error responses to unauthenticated requests, per source IP. */
  readonly limiter: SourceRateLimiter;
  /** Reused for every message: handling is synchronous, nothing keeps a reference. */
  private readonly view = new StunView();
  private readonly writer = new StunWriter(256);

  constructor(options: StunCoreOptions, stats: Stats = new Stats(), limiter = new SourceRateLimiter(0)) {
    this.options = options;
    this.stats = stats;
    this.limiter = limiter;
    this.turn = undefined;
  }

  /** Applies new options (configuration reload). */
  setOptions(options: StunCoreOptions): void {
    this.options = options;
  }

  /**
   * Handles one STUN message (already demultiplexed by its first byte) from `address`:`port`,
   * received on `endpoint`. Returns the response to send back, or null to send nothing (dropped,
   * or answered later through the endpoint).
   */
  handle(buf: Buffer, address: string, port: number, endpoint?: ClientEndpoint): Buffer | null {
    const view = this.view;
    const failure = decodeStunInto(buf, view);
    if (failure !== null) {
      // Well formed but with more attributes than the index holds: a request gets 400 (RFC 8489
      // §6.3.1.1 leaves the limit to the server); anything else malformed is dropped silently.
      if (failure === 'too-many-attrs' && view.cls === Class.Request)
        return this.error(view, 400, address, endpoint);
      this.stats.droppedMalformed++;
      return null;
    }
    if (!verifyFingerprint(view)) {
      this.stats.droppedFingerprint++;
      return null;
    }
    this.stats.stunMessages++;
    if (view.cls === Class.Indication) {
      // RFC 8489 §6.3.2: an indication with unknown comprehension-required attributes is discarded.
      if (unknownRequiredAttributes(view).length > 0) {
        this.stats.droppedUnsupported++;
        return null;
      }
      if (view.method === Method.Binding) this.stats.bindingIndications++;
      else if (view.method === Method.Send && this.turn !== undefined && endpoint !== undefined)
        this.turn.sendIndication(view, endpoint, address, port);
      else this.stats.droppedUnsupported++;
      return null;
    }
    if (view.cls !== Class.Request) {
      this.stats.droppedUnsupported++;
      return null;
    }
    const unknown = unknownRequiredAttributes(view);
    if (unknown.length > 0) {
      return this.error(view, 420, address, endpoint, unknown);
    }
    if (view.method === Method.Binding) return this.binding(view, address, port);
    if (this.turn !== undefined && endpoint !== undefined && TURN_REQUESTS.has(view.method)) {
      return this.turn.handleRequest(view, endpoint, address, port, Date.now());
    }
    // Methods this service does not implement (TURN without credentials configured, RFC 6062's
    // TCP relaying, unknown methods): 400.
    return this.error(view, 400, address, endpoint);
  }

  /** RFC 8489 §7.3.1: Binding success with XOR-MAPPED-ADDRESS of the request's source. */
  private binding(view: StunView, address: string, port: number): Buffer {
    this.stats.bindingSuccess++;
    const w = this.writer.startResponse(Method.Binding, Class.Success, view.buf);
    w.addAddress(AttrType.XorMappedAddress, unmapped(address), port, true);
    return this.finish(view, w);
  }

  /**
   * An error to a request nobody authenticated: over UDP subject to the per-source rate limit (a
   * spoofed source could aim the answers at a victim). TCP/TLS sources cannot be spoofed past the
   * handshake, and a stream client never retransmits, so a dropped answer would only hang it.
   */
  private error(
    view: StunView,
    code: number,
    address: string,
    endpoint: ClientEndpoint | undefined,
    unknown?: readonly number[],
  ): Buffer | null {
    if (
      (endpoint === undefined || endpoint.transport === 'udp') &&
      !this.limiter.allow(address, Date.now(), 'error')
    ) {
      this.stats.droppedRateLimited++;
      return null;
    }
    this.stats.countError(code);
    const w = this.writer.startResponse(view.method, Class.Error, view.buf);
    w.addErrorCode(code, this.options.reasonPhrases ? (REASON_PHRASES[code] ?? '') : '');
    if (unknown !== undefined) w.addUnknownAttributes(unknown);
    return this.finish(view, w);
  }

  private finish(view: StunView, w: StunWriter): Buffer {
    if (this.options.software !== undefined) w.addString(AttrType.Software, this.options.software);
    if (view.fingerprintAt >= 0) w.addFingerprint();
    return w.finish();
  }
}
