/**
 * Typed failures of the client. Transactions report them as values (`TransactionOutcome`); the
 * throwing conveniences of `TurnClient` wrap them in these classes.
 */
import { METHOD_NAMES } from '../core/constants.js';
import type { TurnResponse } from './messages.js';

/** The server answered with an error response: its ERROR-CODE, reason and the whole response. */
export class TurnRequestError extends Error {
  /** ERROR-CODE (0 when the attribute was missing or malformed). */
  readonly code: number;
  readonly reason: string | undefined;
  readonly method: number;
  readonly response: TurnResponse;

  constructor(method: number, response: TurnResponse) {
    super(`${METHOD_NAMES[method] ?? String(method)} failed: ${response.code ?? 'unknown'}`);
    this.name = 'TurnRequestError';
    this.method = method;
    this.code = response.code ?? 0;
    this.reason = response.reason;
    this.response = response;
  }
}

/**
 * No usable answer: `timeout` after the last transmission's wait, or `error` with the socket's
 * code (ECONNREFUSED for an ICMP port unreachable, ECONNRESET, EPROTO for bytes that are not an
 * answer, ECLOSED after `close()`).
 */
export class TransactionError extends Error {
  readonly kind: 'timeout' | 'error';
  readonly code: string;
  readonly transmissions: number;

  constructor(kind: 'timeout' | 'error', code: string, message: string, transmissions: number) {
    super(message);
    this.name = 'TransactionError';
    this.kind = kind;
    this.code = code;
    this.transmissions = transmissions;
  }
}
