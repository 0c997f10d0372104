/**
 * ChannelData messages (RFC 8656 §12.4): a 2-byte channel number (0x4000–0x4FFF), a 2-byte
 * length of the application data, then the data. Over TCP and TLS the message is padded to a
 * multiple of 4 bytes (§12.5); over UDP padding is optional and the length field is what counts.
 */
import { CHANNEL_HEADER_LENGTH, CHANNEL_MAX, CHANNEL_MIN } from './constants.js';

/** `max` is CHANNEL_MAX (RFC 8656), or RFC5766_CHANNEL_MAX when the operator allows the old range. */
export function isValidChannel(channel: number, max: number = CHANNEL_MAX): boolean {
  return channel >= CHANNEL_MIN && channel <= max;
}

/**
 * The application-data length of a ChannelData datagram, or -1 when the datagram is not one we
 * relay (channel out of range, or shorter than its length field says).
 */
export function channelDataLength(buf: Buffer, max: number = CHANNEL_MAX): number {
  if (buf.length < CHANNEL_HEADER_LENGTH) return -1;
  const channel = buf.readUInt16BE(0);
  if (!isValidChannel(channel, max)) return -1;
  const len = buf.readUInt16BE(2);
  return CHANNEL_HEADER_LENGTH + len <= buf.length ? len : -1;
}

/** Writes a ChannelData header into `out` (4 bytes). */
export function writeChannelHeader(out: Buffer, channel: number, length: number): void {
  out.writeUInt16BE(channel, 0);
  out.writeUInt16BE(length, 2);
}

/** Bytes of zero padding a stream ChannelData message of `length` data bytes needs (0–3). */
export function streamPadding(length: number): number {
  return (4 - (length & 3)) & 3;
}

/** Shared, never-mutated zero buffers for stream padding: PADDING[n] has n bytes. */
export const PADDING: readonly Buffer[] = Object.freeze([
  Buffer.alloc(0),
  Buffer.alloc(1),
  Buffer.alloc(2),
  Buffer.alloc(3),
]);

/** Encodes one ChannelData message (copying); `pad` for streams. For tests and the control path. */
export function encodeChannelData(channel: number, data: Uint8Array, pad: boolean): Buffer {
  const padLen = pad ? streamPadding(data.length) : 0;
  const out = Buffer.alloc(CHANNEL_HEADER_LENGTH + data.length + padLen);
  writeChannelHeader(out, channel, data.length);
  out.set(data, CHANNEL_HEADER_LENGTH);
  return out;
}
