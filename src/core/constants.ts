/**
 * Wire constants of STUN (RFC 8489) and TURN (RFC 8656, RFC 6156, RFC 6062, RFC 8016).
 * Tables are `as const` objects with a matching union type (no enums: erasable syntax only).
 */

/** RFC 8489 §5: the fixed magic cookie in bytes 4..7 of every STUN message. */
export const MAGIC_COOKIE = 0x2112a442;
/** RFC 8489 §5: the STUN header is 20 bytes. */
export const HEADER_LENGTH = 20;
/** RFC 8656 §12: a ChannelData header is 4 bytes (channel number, length). */
export const CHANNEL_HEADER_LENGTH = 4;
/** RFC 8489 §14.7: FINGERPRINT is CRC-32 of the message XOR this value. */
export const FINGERPRINT_XOR = 0x5354554e;
/** Highest number of attributes the decoder indexes; a message with more is malformed for us. */
export const MAX_ATTRIBUTES = 48;

/** RFC 8489 §5 message classes (the C1/C0 bits already placed in the 14-bit type). */
export const Class = {
  Request: 0x000,
  Indication: 0x010,
  Success: 0x100,
  Error: 0x110,
} as const;
export type Class = (typeof Class)[keyof typeof Class];

/** Methods: RFC 8489 §18.2 (Binding), RFC 8656 §17 (TURN), RFC 6062 §6.1 (TCP relay). */
export const Method = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
  Connect: 0x00a,
  ConnectionBind: 0x00b,
  ConnectionAttempt: 0x00c,
} as const;
export type Method = (typeof Method)[keyof typeof Method];

export const METHOD_NAMES: Readonly<Record<number, string>> = {
  [Method.Binding]: 'Binding',
  [Method.Allocate]: 'Allocate',
  [Method.Refresh]: 'Refresh',
  [Method.Send]: 'Send',
  [Method.Data]: 'Data',
  [Method.CreatePermission]: 'CreatePermission',
  [Method.ChannelBind]: 'ChannelBind',
  [Method.Connect]: 'Connect',
  [Method.ConnectionBind]: 'ConnectionBind',
  [Method.ConnectionAttempt]: 'ConnectionAttempt',
};

/**
 * Attribute types. 0x0000–0x7FFF are comprehension-required, 0x8000–0xFFFF comprehension-optional
 * (RFC 8489 §14, §18.3).
 */
export const AttrType = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  Realm: 0x0014,
  Nonce: 0x0015,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  Userhash: 0x001e,
  XorMappedAddress: 0x0020,
  ReservationToken: 0x0022,
  ConnectionId: 0x002a,
  PasswordAlgorithms: 0x8002,
  AlternateDomain: 0x8003,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  AdditionalAddressFamily: 0x8032,
  AddressErrorCode: 0x8033,
  Icmp: 0x8004,
  MobilityTicket: 0x8030,
  // ICE (RFC 8445 §16.1): understood so that a connectivity check sent to the server is answered.
  Priority: 0x0024,
  UseCandidate: 0x0025,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
} as const;
export type AttrType = (typeof AttrType)[keyof typeof AttrType];

/** Error codes with their RFC reason phrases (RFC 8489 §14.8, RFC 8656 §18, RFC 6156 §10.2, RFC 6062). */
export const ErrorCode = {
  TryAlternate: 300,
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  MobilityForbidden: 405,
  UnknownAttribute: 420,
  AllocationMismatch: 437,
  StaleNonce: 438,
  AddressFamilyNotSupported: 440,
  WrongCredentials: 441,
  UnsupportedTransportProtocol: 442,
  PeerAddressFamilyMismatch: 443,
  ConnectionAlreadyExists: 446,
  ConnectionTimeoutOrFailure: 447,
  AllocationQuotaReached: 486,
  RoleConflict: 487,
  ServerError: 500,
  InsufficientCapacity: 508,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const REASON_PHRASES: Readonly<Record<number, string>> = {
  300: 'Try Alternate',
  400: 'Bad Request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  405: 'Mobility Forbidden',
  420: 'Unknown Attribute',
  437: 'Allocation Mismatch',
  438: 'Stale Nonce',
  440: 'Address Family not Supported',
  441: 'Wrong Credentials',
  442: 'Unsupported Transport Protocol',
  443: 'Peer Address Family Mismatch',
  446: 'Connection Already Exists',
  447: 'Connection Timeout or Failure',
  486: 'Allocation Quota Reached',
  487: 'Role Conflict',
  500: 'Server Error',
  508: 'Insufficient Capacity',
};

/** Address families of the (XOR-)address attributes (RFC 8489 §14.1). */
export const Family = { IPv4: 0x01, IPv6: 0x02 } as const;
export type Family = (typeof Family)[keyof typeof Family];

/** PASSWORD-ALGORITHM values (RFC 8489 §18.5). */
export const PasswordAlgorithm = { MD5: 0x0001, SHA256: 0x0002 } as const;
export type PasswordAlgorithm = (typeof PasswordAlgorithm)[keyof typeof PasswordAlgorithm];

/** REQUESTED-TRANSPORT protocol numbers (RFC 8656 §18.7, RFC 6062). */
export const Transport = { UDP: 17, TCP: 6 } as const;

/** RFC 8656 §12: channel numbers 0x4000 through 0x4FFF. */
export const CHANNEL_MIN = 0x4000;
export const CHANNEL_MAX = 0x4fff;
/** RFC 5766 allowed 0x4000 through 0x7FFE; older clients (coturn 4.6's uclient) still pick from it. */
export const RFC5766_CHANNEL_MAX = 0x7ffe;
