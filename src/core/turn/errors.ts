/**
 * A protocol refusal: a handler throws `new StunError(ErrorCode.AllocationMismatch)` and the
 * dispatcher answers with that ERROR-CODE (signed, since the request was authenticated). Every
 * code comes from the `ErrorCode` table; anything else a handler throws is a bug (500 and a log).
 */
import type { ErrorCode } from '../constants.js';

export interface AlternateServer {
  readonly address: string;
  readonly port: number;
}

export class StunError {
  readonly code: ErrorCode;
  /** UNKNOWN-ATTRIBUTES of a 420. */
  readonly unknown: readonly number[] | undefined;
  /** ALTERNATE-SERVER of a 300 Try Alternate. */
  readonly alternate: AlternateServer | undefined;

  constructor(code: ErrorCode, extra: { unknown?: readonly number[]; alternate?: AlternateServer } = {}) {
    this.code = code;
    this.unknown = extra.unknown;
    this.alternate = extra.alternate;
  }
}
