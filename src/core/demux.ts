/**
 * First-byte demultiplexing (RFC 7983 §7, as narrowed by RFC 8656 §12): 0–3 is STUN,
 * 64–79 is TURN ChannelData, anything else is not ours and is dropped.
 */
export const PacketKind = { Stun: 1, ChannelData: 2, Other: 0 } as const;
export type PacketKind = (typeof PacketKind)[keyof typeof PacketKind];

export function classify(firstByte: number): PacketKind {
  if (firstByte < 4) return PacketKind.Stun;
  if (firstByte >= 64 && firstByte <= 79) return PacketKind.ChannelData;
  return PacketKind.Other;
}
