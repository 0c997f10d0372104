/**
 * First-byte demultiplexing (RFC 7983 §7, as narrowed by RFC 8656 §12): 0–3 is STUN,
 * 64–79 is TURN ChannelData, anything else is not ours and is dropped.
 */
export const PacketKind = { Stun: 1, ChannelData: 2, Other: 0 } as const;
export type PacketKind = (typeof PacketKind)[keyof typeof PacketKind];

/**
 * `legacyChannels`: also 80–127, the upper part of RFC 5766's channel range (0x4000–0x7FFE), for
 * operators who allow it (`rfc5766-channel-numbers`).
 */
export function classify(firstByte: number, legacyChannels = false): PacketKind {
  if (firstByte < 4) return PacketKind.Stun;
  if (firstByte >= 64 && (firstByte <= 79 || (legacyChannels && firstByte <= 127)))
    return PacketKind.ChannelData;
  return PacketKind.Other;
}
