/**
 * Building TURN responses: errors from the `ErrorCode` table, successes, and the attributes every
 * response ends with (SOFTWARE when configured; MESSAGE-INTEGRITY(-SHA256) with the requester's key
 * for authenticated requests; FINGERPRINT when the request had one). One writer, reused: a
 * response is finished before the next one starts.
 */
import type { Authenticator, AuthSuccess } from '../auth/authenticate.js';
import { AttrType, Class, HEADER_LENGTH } from '../constants.js';
import type { Stats } from '../stats.js';
import type { StunView } from '../stun/decode.js';
import { StunWriter } from '../stun/encode.js';
import type { StunError } from './errors.js';

export interface ResponseOptions {
  /** Text of a SOFTWARE attribute on every response, or undefined for none. */
  readonly software: string | undefined;
}

export class Responder {
  private readonly writer = new StunWriter(512);
  private readonly stats: Stats;
  private options: ResponseOptions;
  private auth: Authenticator;

  constructor(stats: Stats, options: ResponseOptions, auth: Authenticator) {
    this.stats = stats;
    this.options = options;
    this.auth = auth;
  }

  configure(options: ResponseOptions, auth: Authenticator): void {
    this.options = options;
    this.auth = auth;
  }

  /** Starts a success response to `request` (the whole request message). */
  success(method: number, request: Buffer): StunWriter {
    return this.writer.startResponse(method, Class.Success, request);
  }

  /** Starts an error response with ERROR-CODE `code` (no reason phrase: smaller answers), counted. */
  error(method: number, request: Buffer, code: number, reason = ''): StunWriter {
    this.stats.countError(code);
    return this.writer.startResponse(method, Class.Error, request).addErrorCode(code, reason);
  }

  /** The signed error response for a refusal of an authenticated request. */
  refusal(view: StunView, e: StunError, auth: AuthSuccess): Buffer {
    const w = this.error(view.method, view.buf, e.code);
    if (e.unknown !== undefined) w.addUnknownAttributes(e.unknown);
    if (e.alternate !== undefined)
      w.addAddress(AttrType.AlternateServer, e.alternate.address, e.alternate.port, false);
    return this.signed(w, auth, view.buf);
  }

  /** Finishes a response to an authenticated request: SOFTWARE, integrity with its key, FINGERPRINT. */
  signed(w: StunWriter, auth: AuthSuccess, request: Buffer): Buffer {
    this.stats.countResponse(w.method, w.cls === Class.Success);
    if (this.options.software !== undefined) w.addString(AttrType.Software, this.options.software);
    this.auth.sign(w, auth);
    if (hasFingerprint(request)) w.addFingerprint();
    return w.finish();
  }

  /** Finishes a response to an unauthenticated request: SOFTWARE and FINGERPRINT only. */
  unsigned(w: StunWriter, view: StunView): Buffer {
    this.stats.countResponse(view.method, false);
    if (this.options.software !== undefined) w.addString(AttrType.Software, this.options.software);
    if (view.fingerprintAt >= 0) w.addFingerprint();
    return w.finish();
  }
}

/** Whether a (valid) STUN message ends with FINGERPRINT. */
function hasFingerprint(msg: Buffer): boolean {
  return msg.length >= HEADER_LENGTH + 8 && msg.readUInt16BE(msg.length - 8) === AttrType.Fingerprint;
}
