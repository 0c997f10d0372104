/**
 * IP address text ↔ bytes, without sockets. Used by the codec (address attributes) and by the
 * peer policy (canonical comparisons). Never throws on bad input: parsers return false/undefined.
 */

/** Writes the 4 bytes of a dotted-quad IPv4 address at `off`. Returns false when `ip` is not one. */
export function writeIPv4(ip: string, out: Uint8Array, off: number): boolean {
  let part = 0;
  let digits = 0;
  let idx = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || idx > 2) return false;
      out[off + idx++] = part;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      // Leading zeros are refused: "010" is octal to some parsers and decimal to others.
      if (digits > 0 && part === 0) return false;
      part = part * 10 + (c - 0x30);
      if (part > 255 || ++digits > 3) return false;
    } else {
      return false;
    }
  }
  if (digits === 0 || idx !== 3) return false;
  out[off + 3] = part;
  return true;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Writes the 16 bytes of an IPv6 address (RFC 4291 §2.2 text forms, including `::` and a trailing
 * dotted quad; a `%zone` suffix is ignored) at `off`. Returns false when `ip` is not one.
 */
export function writeIPv6(ip: string, out: Uint8Array, off: number): boolean {
  const pct = ip.indexOf('%');
  const s = pct >= 0 ? ip.slice(0, pct) : ip;
  if (s.length < 2) return false;
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (s.startsWith('::')) {
    gap = 0;
    i = 2;
    if (s.length === 2) {
      out.fill(0, off, off + 16);
      return true;
    }
  } else if (s.charCodeAt(0) === 0x3a) {
    return false;
  }
  while (i < s.length) {
    // A dotted quad may end the address (IPv4-mapped and friends).
    const rest = s.slice(i);
    if (rest.includes('.') && !rest.includes(':')) {
      if (groups.length > 6) return false;
      const v4 = new Uint8Array(4);
      if (!writeIPv4(rest, v4, 0)) return false;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      i = s.length;
      break;
    }
    let value = 0;
    let digits = 0;
    while (i < s.length) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      value = (value << 4) | h;
      if (++digits > 4) return false;
      i++;
    }
    if (digits === 0) return false;
    groups.push(value);
    if (i === s.length) break;
    if (s.charCodeAt(i) !== 0x3a) return false;
    i++;
    if (i < s.length && s.charCodeAt(i) === 0x3a) {
      if (gap >= 0) return false;
      gap = groups.length;
      i++;
      if (i === s.length) break;
    } else if (i === s.length) {
      return false; // trailing single colon
    }
  }
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return false;
  const zeros = 8 - groups.length;
  let w = off;
  for (let g = 0; g < groups.length; g++) {
    if (g === gap) for (let z = 0; z < zeros; z++, w += 2) out[w] = out[w + 1] = 0;
    const v = groups[g]!;
    out[w++] = v >> 8;
    out[w++] = v & 0xff;
  }
  if (gap === groups.length) for (let z = 0; z < zeros; z++, w += 2) out[w] = out[w + 1] = 0;
  return true;
}

/** Parses an IP literal to 4 or 16 bytes; undefined when it is neither. */
export function parseIp(ip: string): Uint8Array | undefined {
  const v4 = new Uint8Array(4);
  if (writeIPv4(ip, v4, 0)) return v4;
  const v6 = new Uint8Array(16);
  if (writeIPv6(ip, v6, 0)) return v6;
  return undefined;
}

/** Formats 4 bytes at `off` as a dotted quad. */
export function formatIPv4(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** Formats 16 bytes at `off` in RFC 5952 canonical form (lower case, longest zero run compressed). */
export function formatIPv6(b: Uint8Array, off: number): string {
  const g = new Array<number>(8);
  for (let i = 0; i < 8; i++) g[i] = (b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!;
  let bestStart = -1;
  let bestLen = 1; // RFC 5952 §4.2.2: a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses keep the dotted quad (RFC 5952 §5).
  if (bestStart === 0 && bestLen === 5 && g[5] === 0xffff) return `::ffff:${formatIPv4(b, off + 12)}`;
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      parts.push(i === 0 ? ':' : '');
      i += bestLen - 1;
      if (i === 7) parts.push('');
      continue;
    }
    parts.push(g[i]!.toString(16));
  }
  return parts.join(':');
}

/** 4 or 16 bytes → text. */
export function formatIp(b: Uint8Array): string {
  return b.length === 4 ? formatIPv4(b, 0) : formatIPv6(b, 0);
}

/** `4` for a dotted quad, `6` for IPv6 text, `0` otherwise (like node:net isIP, without sockets). */
export function ipVersion(ip: string): 0 | 4 | 6 {
  const scratch = new Uint8Array(16);
  if (writeIPv4(ip, scratch, 0)) return 4;
  if (writeIPv6(ip, scratch, 0)) return 6;
  return 0;
}

/**
 * A client reaching a dual-stack socket over IPv4 appears as ::ffff:a.b.c.d: it is the IPv4 client
 * a.b.c.d. Other addresses are returned as they are.
 */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
