/**
 * TURN client messages, pure: request and indication builders for Binding (RFC 8489 §6), Allocate
 * (RFC 8656 §7), Refresh (§8), CreatePermission (§9), Send (§10) and ChannelBind (§11), with the
 * long-term credential attributes of RFC 8489 §9.2; and readers that turn what the server sent into
 * plain values. No sockets, no timers: the transaction layer and the core's test harness share these.
 *
 * Requests are built with turnpike's own `StunWriter`; answers are read with `decodeStun` and the
 * attribute readers of `src/core/stun`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AttrType, Class, Family, Method, PasswordAlgorithm, Transport } from '../core/constants.js';
import {
  readAddress,
  readAddressErrorCode,
  readAddresses,
  readBytes,
  readErrorCode,
  readUint32,
  type TransportAddress,
} from '../core/stun/attrs.js';
import type { StunView } from '../core/stun/decode.js';
import { StunWriter } from '../core/stun/encode.js';

/** Adds a request's own attributes (those before the credentials). */
export type Body = (w: StunWriter) => void;

/** A peer (or any) transport address given to the client. */
export interface PeerAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * What signs a request with long-term credentials (RFC 8489 §9.2.4, §9.2.5). `LongTermAuth`
 * produces it from a 401/438; tests may build one by hand to sign with other credentials.
 */
export interface Signature {
  readonly username: string;
  readonly realm: string;
  readonly nonce: Buffer;
  /** The long-term key: MD5 or SHA-256 of "username:realm:password" (§9.2.2). */
  readonly key: Buffer;
  /**
   * PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256, echoing `passwordAlgorithms`;
   * otherwise MESSAGE-INTEGRITY (HMAC-SHA1) as every RFC 5389 client sends it.
   */
  readonly sha256?: boolean;
  /** PASSWORD-ALGORITHMS exactly as the server offered it (bid-down protection, §9.2.4). */
  readonly passwordAlgorithms?: Buffer | undefined;
  /** USERHASH instead of USERNAME (§14.4). */
  readonly userhash?: boolean;
}

export interface RequestOptions {
  /** 12 bytes; random by default. */
  readonly tid?: Buffer;
  /** Long-term credentials; an unsigned request without. */
  readonly sign?: Signature | undefined;
  /** FINGERPRINT last (§14.7). */
  readonly fingerprint?: boolean;
}

/** A fresh random transaction ID (RFC 8489 §6: 96 bits, uniformly random). */
export function newTransactionId(): Buffer {
  return randomBytes(12);
}

/** USERHASH (RFC 8489 §14.4): SHA-256 of "username:realm". */
export function userHash(username: string, realm: string): Buffer {
  return createHash('sha256').update(`${username}:${realm}`, 'utf8').digest();
}

/**
 * The credential attributes then the integrity attribute (RFC 8489 §9.2.4/§9.2.5):
 * USERNAME or USERHASH, NONCE, REALM (RFC 5769 §2.4 order), with SHA-256 also
 * PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM, then MESSAGE-INTEGRITY(-SHA256).
 */
export function addSignature(w: StunWriter, s: Signature): void {
  if (s.userhash === true) w.addBytes(AttrType.Userhash, userHash(s.username, s.realm));
  else w.addString(AttrType.Username, s.username);
  w.addBytes(AttrType.Nonce, s.nonce);
  w.addString(AttrType.Realm, s.realm);
  if (s.sha256 === true) {
    if (s.passwordAlgorithms !== undefined) w.addBytes(AttrType.PasswordAlgorithms, s.passwordAlgorithms);
    w.addPasswordAlgorithm(PasswordAlgorithm.SHA256);
    w.addMessageIntegritySha256(s.key);
  } else {
    w.addMessageIntegrity(s.key);
  }
}

/** A request of `method`: `body`'s attributes, the signature when given, FINGERPRINT when asked. */
export function buildRequest(method: number, body?: Body, o: RequestOptions = {}): Buffer {
  const w = new StunWriter(512).start(method, Class.Request, o.tid ?? newTransactionId());
  body?.(w);
  if (o.sign !== undefined) addSignature(w, o.sign);
  if (o.fingerprint === true) w.addFingerprint();
  return w.finish();
}

/** RFC 8489 §6: a Binding request (no attributes; FINGERPRINT when asked). */
export function buildBindingRequest(o: { tid?: Buffer; fingerprint?: boolean } = {}): Buffer {
  return buildRequest(Method.Binding, undefined, o);
}

/** RFC 8656 §10.1: a Send indication carrying `data` to `peer` (never signed, never answered). */
export function buildSendIndication(
  peer: PeerAddress,
  data: Uint8Array,
  o: { dontFragment?: boolean; tid?: Buffer } = {},
): Buffer {
  const w = new StunWriter(data.length + 64).start(
    Method.Send,
    Class.Indication,
    o.tid ?? newTransactionId(),
  );
  w.addAddress(AttrType.XorPeerAddress, peer.address, peer.port, true);
  if (o.dontFragment === true) w.addFlag(AttrType.DontFragment);
  w.addBytes(AttrType.Data, data);
  return w.finish();
}

// -------------------------------------------------------------------------------------------------
// Request bodies

export interface AllocateOptions {
  /** LIFETIME, seconds. */
  readonly lifetime?: number;
  /** EVEN-PORT; `reserve` sets the R bit (reserve port + 1). */
  readonly evenPort?: { readonly reserve: boolean };
  readonly reservationToken?: Buffer;
  /** REQUESTED-ADDRESS-FAMILY. */
  readonly family?: 4 | 6;
  /** ADDITIONAL-ADDRESS-FAMILY IPv6 (dual allocation, RFC 8656 §7.1). */
  readonly additionalIPv6?: boolean;
  readonly dontFragment?: boolean;
  /** REQUESTED-TRANSPORT protocol number (default UDP). */
  readonly transport?: number;
}

const familyCode = (family: 4 | 6): number => (family === 4 ? Family.IPv4 : Family.IPv6);

/** RFC 8656 §7.1: REQUESTED-TRANSPORT UDP, the one attribute every Allocate carries. */
export function addUdpTransport(w: StunWriter): void {
  w.addLeadingByte(AttrType.RequestedTransport, Transport.UDP);
}

/** RFC 8656 §7.1: the Allocate attributes. */
export function addAllocateAttributes(w: StunWriter, o: AllocateOptions): void {
  w.addLeadingByte(AttrType.RequestedTransport, o.transport ?? Transport.UDP);
  if (o.lifetime !== undefined) w.addUint32(AttrType.Lifetime, o.lifetime);
  if (o.family !== undefined) w.addLeadingByte(AttrType.RequestedAddressFamily, familyCode(o.family));
  if (o.additionalIPv6 === true) w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6);
  if (o.evenPort !== undefined) w.addEvenPort(o.evenPort.reserve);
  if (o.reservationToken !== undefined) w.addBytes(AttrType.ReservationToken, o.reservationToken);
  if (o.dontFragment === true) w.addFlag(AttrType.DontFragment);
}

/** RFC 8656 §8.1: LIFETIME (0 deletes the allocation), REQUESTED-ADDRESS-FAMILY for one half of a dual one. */
export function refreshBody(lifetimeSec: number, family?: 4 | 6): Body {
  return (w) => {
    w.addUint32(AttrType.Lifetime, lifetimeSec);
    if (family !== undefined) w.addLeadingByte(AttrType.RequestedAddressFamily, familyCode(family));
  };
}

/** RFC 8656 §9.1: one XOR-PEER-ADDRESS per peer (the server ignores the port; 0 when absent). */
export function permissionBody(peers: readonly { address: string; port?: number }[]): Body {
  return (w) => {
    for (const p of peers) w.addAddress(AttrType.XorPeerAddress, p.address, p.port ?? 0, true);
  };
}

/** RFC 8656 §11.1: CHANNEL-NUMBER and XOR-PEER-ADDRESS. */
export function channelBindBody(channel: number, peer: PeerAddress): Body {
  return (w) => {
    w.addChannelNumber(channel);
    w.addAddress(AttrType.XorPeerAddress, peer.address, peer.port, true);
  };
}

// -------------------------------------------------------------------------------------------------
// Reading what the server sent

/** A response as the client sees it. */
export interface TurnResponse {
  readonly raw: Buffer;
  readonly view: StunView;
  /** Success class. */
  readonly ok: boolean;
  /** ERROR-CODE of an error response (0 when the attribute is missing or malformed). */
  readonly code: number | undefined;
  /** The reason phrase of an error response. */
  readonly reason: string | undefined;
  /** Which integrity attribute verified with the client's key, if any. */
  readonly integrity: 'sha1' | 'sha256' | undefined;
}

/** A response's plain fields; `integrity` is the caller's verdict (see `LongTermAuth.verify`). */
export function toResponse(raw: Buffer, view: StunView, integrity?: 'sha1' | 'sha256'): TurnResponse {
  const ok = view.cls === Class.Success;
  const error = ok ? undefined : readErrorCode(view);
  return {
    raw,
    view,
    ok,
    code: ok ? undefined : (error?.code ?? 0),
    reason: error?.reason,
    integrity,
  };
}

/** What an Allocate success carries (RFC 8656 §7.3, RFC 6156 and RFC 8656 §7.2 for dual allocations). */
export interface AllocateSuccess {
  /** Every XOR-RELAYED-ADDRESS (two for a dual allocation; none for a broken server). */
  readonly relayedAll: readonly TransportAddress[];
  readonly mapped: TransportAddress | undefined;
  readonly lifetimeSec: number | undefined;
  readonly reservationToken: Buffer | undefined;
  /** ADDRESS-ERROR-CODE: the family that could not be allocated, and why. */
  readonly addressError: { readonly family: number; readonly code: number } | undefined;
}

export function readAllocateSuccess(view: StunView): AllocateSuccess {
  const token = readBytes(view, AttrType.ReservationToken);
  const addressError = readAddressErrorCode(view);
  return {
    relayedAll: readAddresses(view, AttrType.XorRelayedAddress) ?? [],
    mapped: readAddress(view, AttrType.XorMappedAddress),
    lifetimeSec: readUint32(view, AttrType.Lifetime),
    reservationToken: token === undefined ? undefined : Buffer.from(token),
    addressError:
      addressError === undefined ? undefined : { family: addressError.family, code: addressError.code },
  };
}

/** The mapped address of a Binding success: XOR-MAPPED-ADDRESS, else an RFC 3489 MAPPED-ADDRESS. */
export function readMappedAddress(view: StunView): TransportAddress | undefined {
  return readAddress(view, AttrType.XorMappedAddress) ?? readAddress(view, AttrType.MappedAddress);
}
