/**
 * turnpike's TURN client library (RFC 8489/8656 client side), used by `turnpike probe`, the load
 * tool and the tests:
 *
 *   messages.ts      pure request/indication builders and response readers
 *   auth.ts          long-term credential state (401/438 → signature, response verification)
 *   channel-data.ts  ChannelData encode/decode
 *   transactions.ts  RFC 8489 retransmission schedule and pending requests
 *   transport.ts     UDP and TCP/TLS (RFC 8656 §12.5 framing) transports
 *   client.ts        TurnClient: the credential dance, the TURN methods, data events
 *   peer.ts, inbox.ts  a UDP peer socket; a queue with timed waits
 */
export {
  type ChallengeFailure,
  describeChallengeFailure,
  LongTermAuth,
  type LongTermCredentials,
  restCredentials,
} from './auth.js';
export {
  type ChannelDataMessage,
  decodeChannelData,
  encodeChannelData,
  isChannelDataByte,
} from './channel-data.js';
export { type AllocateResult, type DataEvent, TurnClient, type TurnClientOptions } from './client.js';
export { TransactionError, TurnRequestError } from './errors.js';
export { Inbox } from './inbox.js';
export {
  type AllocateOptions,
  type AllocateSuccess,
  addAllocateAttributes,
  addSignature,
  addUdpTransport,
  type Body,
  buildBindingRequest,
  buildRequest,
  buildSendIndication,
  channelBindBody,
  newTransactionId,
  type PeerAddress,
  permissionBody,
  type RequestOptions,
  readAllocateSuccess,
  readMappedAddress,
  refreshBody,
  type Signature,
  type TurnResponse,
  toResponse,
  userHash,
} from './messages.js';
export { type PeerPacket, UdpPeer } from './peer.js';
export {
  nextStep,
  type RetransmitPolicy,
  RFC8489_RETRANSMIT,
  STREAM_TIMEOUT_MS,
  type TransactionOutcome,
} from './transactions.js';
export {
  asFailure,
  type ClientTransport,
  type Receiver,
  type StreamOptions,
  StreamTransport,
  TransportError,
  type TransportFailure,
  type TransportKind,
  type UdpOptions,
  UdpTransport,
} from './transport.js';
