/**
 * The application data the tool sends through the relay. Every packet starts with a 24-byte header
 * (big-endian), the rest is filler:
 *
 *   0      4      8      12     16             24
 *   +------+------+------+------+--------------+-----------…
 *   |magic |trial | flow | seq  | send time ns | filler
 *   +------+------+------+------+--------------+-----------…
 *
 *  - magic: "TPB1", so stray datagrams are told apart;
 *  - trial: which measurement window sent it (warm-up and each trial have their own), so a packet from
 *    an earlier window that arrives late is not counted in the next one;
 *  - flow: the global index of the allocation the packet belongs to;
 *  - seq: per flow and window;
 *  - send time: `process.hrtime.bigint()` (CLOCK_MONOTONIC, shared by every thread of the process), so
 *    the receiving end (also this process) gets a one-way latency without clock synchronisation.
 */

export const PAYLOAD_MAGIC = 0x54504231; // "TPB1"
export const PAYLOAD_HEADER_BYTES = 24;
/** Smallest --size: the header must fit. */
export const MIN_PAYLOAD_BYTES = PAYLOAD_HEADER_BYTES;
/** Largest --size: a ChannelData or Send indication of this size still fits a 64 KiB datagram. */
export const MAX_PAYLOAD_BYTES = 65_000;

/** Writes the header at `off` of `buf`. The filler after it is the caller's business. */
export function writePayloadHeader(
  buf: Buffer,
  off: number,
  trial: number,
  flow: number,
  seq: number,
  sentNs: bigint,
): void {
  buf.writeUInt32BE(PAYLOAD_MAGIC, off);
  buf.writeUInt32BE(trial >>> 0, off + 4);
  buf.writeUInt32BE(flow >>> 0, off + 8);
  buf.writeUInt32BE(seq >>> 0, off + 12);
  buf.writeBigUInt64BE(sentNs, off + 16);
}

/** True when `len` bytes at `off` start with our header. */
export function isPayload(buf: Buffer, off: number, len: number): boolean {
  return len >= PAYLOAD_HEADER_BYTES && off + len <= buf.length && buf.readUInt32BE(off) === PAYLOAD_MAGIC;
}

export function payloadTrial(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 4);
}

export function payloadFlow(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 8);
}

export function payloadSeq(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 12);
}

/** Nanoseconds between the send time in the header and `nowNs`. */
export function payloadAgeNs(buf: Buffer, off: number, nowNs: bigint): number {
  return Number(nowNs - buf.readBigUInt64BE(off + 16));
}

/** A filler pattern of `size` bytes (deterministic, so nothing stale from memory goes on the wire). */
export function fillerTemplate(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}
