/**
 * The Data indication (RFC 8656 §10.3) that carries a peer's datagram to a client without a
 * channel: the STUN header, XOR-PEER-ADDRESS and the DATA attribute header, built into one small
 * buffer; the payload and its padding follow as separate buffers (scatter/gather). Indications
 * get fresh random transaction IDs (RFC 8489 §6), taken from a pool of random bytes refilled in
 * bulk rather than one `randomBytes` call per packet.
 */
import { randomBytes } from 'node:crypto';
import { streamPadding } from '../channel-data.js';
import { AttrType, Family, HEADER_LENGTH, MAGIC_COOKIE } from '../constants.js';
import { writeIPv4, writeIPv6 } from '../ip.js';

const DATA_INDICATION_TYPE = 0x0017; // method Data (0x007), class indication
const TID_LENGTH = 12;
const TID_POOL_BYTES = TID_LENGTH * 1024;

let tidPool = randomBytes(TID_POOL_BYTES);
let tidOffset = 0;

/** Copies 12 fresh random bytes into `b` at offset 8 (the transaction ID). */
function fillTransactionId(b: Buffer): void {
  if (tidOffset + TID_LENGTH > tidPool.length) {
    tidPool = randomBytes(TID_POOL_BYTES);
    tidOffset = 0;
  }
  tidPool.copy(b, 8, tidOffset, tidOffset + TID_LENGTH);
  tidOffset += TID_LENGTH;
}

/**
 * The head of a Data indication carrying `dataLength` bytes from `peerAddress`:`peerPort` (of
 * `family`), or undefined when the message would exceed 64 KiB or the address is not of `family`.
 */
export function dataIndicationHead(
  peerAddress: string,
  peerPort: number,
  dataLength: number,
  family: 4 | 6,
): Buffer | undefined {
  const addrLen = family === 4 ? 8 : 20;
  const headLen = HEADER_LENGTH + 4 + addrLen + 4;
  const total = headLen - HEADER_LENGTH + dataLength + streamPadding(dataLength);
  if (total > 0xffff) return undefined;
  const b = Buffer.allocUnsafe(headLen);
  // The address bytes go straight into place (no intermediate array), then are XORed in place.
  const ipLen = family === 4 ? 4 : 16;
  if (!(family === 4 ? writeIPv4(peerAddress, b, 28) : writeIPv6(peerAddress, b, 28))) return undefined;
  b.writeUInt16BE(DATA_INDICATION_TYPE, 0);
  b.writeUInt16BE(total, 2);
  b.writeUInt32BE(MAGIC_COOKIE, 4);
  fillTransactionId(b);
  b.writeUInt16BE(AttrType.XorPeerAddress, 20);
  b.writeUInt16BE(addrLen, 22);
  b[24] = 0;
  b[25] = family === 4 ? Family.IPv4 : Family.IPv6;
  b.writeUInt16BE((peerPort ^ (MAGIC_COOKIE >>> 16)) & 0xffff, 26);
  // XOR with the magic cookie, then (IPv6) the transaction ID: bytes 4..19 of the header.
  for (let k = 0; k < ipLen; k++) b[28 + k] = b[28 + k]! ^ b[4 + k]!;
  const dataAt = 28 + ipLen;
  b.writeUInt16BE(AttrType.Data, dataAt);
  b.writeUInt16BE(dataLength, dataAt + 2);
  return b;
}
