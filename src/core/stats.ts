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
  /** TCP/TLS connections accepted / refused (cap) / closed for a protocol violation or timeout. */
  streamAccepted = 0;
  streamRefused = 0;
  streamClosedBadFrame = 0;
  streamClosedTimeout = 0;

  countError(code: number): void {
    this.errorResponses.set(code, (this.errorResponses.get(code) ?? 0) + 1);
  }
}
