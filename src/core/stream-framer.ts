/**
 * Splits a TCP/TLS byte stream into STUN and ChannelData messages (RFC 8656 §12.5 framing):
 * a STUN message is 20 + its length field bytes; a ChannelData message is 4 + its length
 * field bytes, padded up to a multiple of 4. Anything else at a message boundary means the
 * stream is not ours and must be closed.
 *
 * Chunks are not concatenated on the common path: complete messages inside one chunk are handed
 * out as views of that chunk. Only a message split across chunks is joined, once, when it is
 * complete.
 */
import { CHANNEL_HEADER_LENGTH, HEADER_LENGTH } from './constants.js';
import { PacketKind } from './demux.js';

export type FrameError = 'garbage' | 'too-large' | 'bad-length';

/** Receives one complete message: `frame` is a view, valid until the callback returns. */
export type FrameHandler = (frame: Buffer, kind: PacketKind) => void;

export class StreamFramer {
  private readonly maxFrameBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed before the pending message can be handed out (4 until its header is known). */
  private need = 0;
  /** `stop()` was called: `push` hands out nothing more; the bytes after the last frame are `rest`. */
  private stopped = false;
  private rest: Buffer | undefined = undefined;

  private readonly lastChannelByte: number;

  /** `legacyChannels`: frame RFC 5766 channel numbers up to 0x7FFE as ChannelData too. */
  constructor(maxFrameBytes: number, legacyChannels = false) {
    this.maxFrameBytes = maxFrameBytes;
    this.lastChannelByte = legacyChannels ? 127 : 79;
  }

  /** Bytes buffered of an incomplete message; > 0 means the peer stopped mid-message. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Feeds one chunk. Calls `onFrame` for every complete message, in order. Returns null, or the
   * reason the stream must be closed (nothing after the bad message is delivered).
   */
  push(chunk: Buffer, onFrame: FrameHandler): FrameError | null {
    if (this.stopped) return null;
    let buf: Buffer;
    if (this.pendingBytes === 0) {
      buf = chunk;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.need) return null;
      buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let off = 0;
    while (buf.length - off >= CHANNEL_HEADER_LENGTH) {
      const size = this.frameSize(buf, off);
      if (typeof size === 'string') return size;
      if (buf.length - off < size) break;
      const first = buf[off]!;
      if (first < 4) {
        onFrame(buf.subarray(off, off + size), PacketKind.Stun);
      } else {
        // Padding is stripped: the handler sees header + data only.
        onFrame(
          buf.subarray(off, off + CHANNEL_HEADER_LENGTH + buf.readUInt16BE(off + 2)),
          PacketKind.ChannelData,
        );
      }
      off += size;
      if (this.stopped) {
        // The stream stops being STUN here (RFC 6062 §5.4): what follows is the caller's, as is.
        if (off < buf.length) this.rest = buf.subarray(off);
        return null;
      }
    }
    if (off < buf.length) {
      const rest = buf.subarray(off);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
      const size = rest.length >= CHANNEL_HEADER_LENGTH ? this.frameSize(rest, 0) : CHANNEL_HEADER_LENGTH;
      if (typeof size === 'string') return size;
      this.need = size;
    }
    return null;
  }

  /** Total on-the-wire size of the message starting at `off` (header known), or why it is bad. */
  private frameSize(buf: Buffer, off: number): number | FrameError {
    const first = buf[off]!;
    const len = buf.readUInt16BE(off + 2);
    let size: number;
    if (first < 4) {
      if (len & 3) return 'bad-length';
      size = HEADER_LENGTH + len;
    } else if (first >= 64 && first <= this.lastChannelByte) {
      size = CHANNEL_HEADER_LENGTH + ((len + 3) & ~3);
    } else {
      return 'garbage';
    }
    return size > this.maxFrameBytes ? 'too-large' : size;
  }

  /**
   * Called from `onFrame`: no further message is handed out; the bytes received after the current
   * message (in this chunk) are kept for `takeRest`.
   */
  stop(): void {
    this.stopped = true;
  }

  /** The bytes after the message during which `stop` was called, once. */
  takeRest(): Buffer | undefined {
    const r = this.rest;
    this.rest = undefined;
    return r;
  }

  /** Drops buffered bytes (connection closed). */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.need = 0;
  }
}
