/**
 * ChannelData for clients (RFC 8656 §12.4): encoding reuses the core's `encodeChannelData`; decoding
 * takes what a client may receive, including RFC 5766 channel numbers up to 0x7FFE from older
 * servers, and ignores UDP padding (the length field counts, §12.5).
 */
import { CHANNEL_HEADER_LENGTH, CHANNEL_MIN, RFC5766_CHANNEL_MAX } from '../core/constants.js';

export { encodeChannelData } from '../core/channel-data.js';

/** A ChannelData message's channel number and application data (a view of the message). */
export interface ChannelDataMessage {
  readonly channel: number;
  readonly data: Buffer;
}

/** True when `first` (a message's first byte) starts a ChannelData message: 0x40–0x7F. */
export function isChannelDataByte(first: number): boolean {
  return first >= CHANNEL_MIN >> 8 && first <= RFC5766_CHANNEL_MAX >> 8;
}

/** Decodes one ChannelData message; undefined when it is shorter than its length field says. */
export function decodeChannelData(buf: Buffer): ChannelDataMessage | undefined {
  if (buf.length < CHANNEL_HEADER_LENGTH || !isChannelDataByte(buf[0]!)) return undefined;
  const len = buf.readUInt16BE(2);
  if (CHANNEL_HEADER_LENGTH + len > buf.length) return undefined;
  return {
    channel: buf.readUInt16BE(0),
    data: buf.subarray(CHANNEL_HEADER_LENGTH, CHANNEL_HEADER_LENGTH + len),
  };
}
