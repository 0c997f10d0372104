/**
 * TURN REST API ephemeral credentials (draft-uberti-behave-turn-rest-00 §2.2, §4): a web service
 * that shares a secret with the TURN server hands out
 *
 *   username = "<expiry unix seconds>:<user id>"  (or a bare "<expiry>")
 *   username = "<expiry unix seconds>:<user id>#<tag>"  (a tag the application adds for its own
 *                                                     accounting: a room, a session; turnpike's
 *                                                     usage records carry it, quotas ignore it)
 *   password = base64(HMAC-SHA1(secret, username))
 *
 * The TURN server recomputes the password from the username, so nothing per user is stored; the
 * usual long-term key MD5(username:realm:password) (or SHA-256 with PASSWORD-ALGORITHM) follows.
 * Several secrets may be valid at once so that a secret can be rotated without a cut-over.
 */
import { createHmac } from 'node:crypto';

/** A REST username split into its parts. */
export interface RestUsername {
  /** Unix seconds after which the credential is refused. */
  readonly expirySec: number;
  /**
   * The part after the first ':' up to a '#' (the quota and revocation key), or the whole username
   * when there is no ':'.
   */
  readonly userId: string;
  /** The part after the first '#' of what follows the ':' (undefined when there is no '#'). */
  readonly tag?: string;
}

/** Up to 12 digits: year 33658 is far enough, and the number stays an exact integer. */
const MAX_EXPIRY_DIGITS = 12;

/**
 * Parses `<expiry>` or `<expiry>:<user id>` where expiry is decimal digits only. Returns undefined
 * for anything else (such a username can only be a static user's). Never throws.
 */
export function parseRestUsername(username: string): RestUsername | undefined {
  const colon = username.indexOf(':');
  const end = colon < 0 ? username.length : colon;
  if (end === 0 || end > MAX_EXPIRY_DIGITS) return undefined;
  let expirySec = 0;
  for (let i = 0; i < end; i++) {
    const d = username.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    expirySec = expirySec * 10 + d;
  }
  const rest = colon < 0 ? '' : username.slice(colon + 1);
  const hash = rest.indexOf('#');
  if (hash > 0) return { expirySec, userId: rest.slice(0, hash), tag: rest.slice(hash + 1) };
  return { expirySec, userId: rest === '' ? username : rest };
}

/** The REST password for `username` under `secret`: base64 (with padding) of HMAC-SHA1. */
export function restPassword(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username, 'utf8').digest('base64');
}
