/**
 * Peer-address policy: the SSRF guard of the TURN relay (RFC 8656 §2.7 and §21 leave peer filtering to the
 * server). A TURN server is an authenticated open proxy, so internal destinations are denied unless the
 * operator opens them. Pure: no sockets, no DNS; the TURN core calls it on CreatePermission, ChannelBind and
 * every Send indication (and RFC 6062 Connect), so `check` allocates nothing (a linear scan over typed arrays).
 *
 * Decision order of `check(address, port)`; the first rule that matches decides:
 *  1. `invalid`: the address is not an IPv4/IPv6 literal (4 or 16 bytes for `checkBytes`), or the port is
 *     not an integer 0-65535.
 *  2. Canonicalise. An IPv6 address that embeds an IPv4 address (see `embeddedIPv4`: IPv4-mapped
 *     ::ffff:0:0/96, IPv4-compatible ::/96 other than :: and ::1, NAT64 64:ff9b::/96, 6to4 2002::/16) is
 *     "disguised": steps 3-7 judge its embedded IPv4 address exactly as they judge that plain address, against
 *     the IPv4 defaults and the operator's IPv4 items. Its raw IPv6 form is seen only by steps 3 and 8.
 *  3. `denied-always`: 0.0.0.0/8 (Linux sends it to loopback, CVE-2020-26262), `::` (same), Teredo 2001::/32
 *     (its client address is obfuscated, so it cannot be canonicalised). No list opens these.
 *  4. `denied-own-service`: the (canonical address, port) pair is one of the server's own sockets. No list
 *     opens these; another port on the same address is judged by the next steps.
 *  5. `allowed`: an `allowed-peer-ip` item matches. The allow list beats both the defaults and the operator's
 *     deny list (as in coturn). A disguised address is matched only by IPv4 items: an IPv6 item such as
 *     `::/0` or `2002::/16` must never re-open 127.0.0.1 behind a 6to4 disguise.
 *  6. `denied-default`: a built-in range matches (DEFAULT_DENIED_PEERS: loopback, RFC 1918, link-local, …).
 *  7. `denied-list`: a `denied-peer-ip` item matches.
 *  8. `denied-list` (disguised addresses only): an IPv6 `denied-peer-ip` item matches the raw IPv6 form (say
 *     `64:ff9b::/96` to refuse NAT64), unless an IPv6 `allowed-peer-ip` item matches the raw form too. So IPv6
 *     items can add a denial to a disguised address, never lift a denial of the IPv4 address inside it.
 *  9. `allowed`.
 *
 * Config items (`checkPeerPattern` in config/schema.ts): a single address, a CIDR (host bits are ignored:
 * 10.1.2.3/8 is 10.0.0.0/8) or an `a-b` range of one family. Items lying wholly inside ::ffff:0:0/96 are
 * stored as the IPv4 items they are (`::ffff:127.0.0.1` ≡ `127.0.0.1`, as for the sockets API). Other IPv6
 * items are raw IPv6 ranges; an item naming a NAT64, 6to4 or IPv4-compatible form (`64:ff9b::a00:1`) is not
 * translated, so it only takes effect through step 8. A `%zone` suffix is ignored, as by `parseIp`.
 *
 * Representation: IPv4 as one unsigned 32-bit number, IPv6 as four unsigned 32-bit words compared
 * lexicographically. Ranges are closed intervals in flat Uint32Arrays (IPv4: lo,hi; IPv6: lo0-3,hi0-3).
 */

import { parseIp, writeIPv4, writeIPv6 } from './ip.js';

export type PeerVerdict =
  | 'allowed'
  | 'denied-default'
  | 'denied-list'
  | 'denied-always'
  | 'denied-own-service'
  | 'invalid';

export interface PeerPolicyOptions {
  /** `allowed-peer-ip` config items: address, CIDR or `a-b` range. */
  readonly allowed: readonly string[];
  /** `denied-peer-ip` config items: address, CIDR or `a-b` range. */
  readonly denied: readonly string[];
  /** The server's own sockets (listeners, relay-facing admin/metrics…), with concrete addresses. */
  readonly ownServices: readonly { readonly address: string; readonly port: number }[];
}

/** Denied whatever the lists say. */
export const ALWAYS_DENIED_PEERS: readonly (readonly [pattern: string, reason: string])[] = [
  ['0.0.0.0/8', '"this network"; Linux routes 0.0.0.0 to loopback (CVE-2020-26262)'],
  ['::/128', 'unspecified; Linux routes it to loopback (CVE-2020-26262)'],
  ['2001::/32', 'Teredo; the client address is obfuscated and cannot be checked'],
];

/** Denied unless an `allowed-peer-ip` item opens them. Embedded IPv4 forms are judged as IPv4. */
export const DEFAULT_DENIED_PEERS: readonly (readonly [pattern: string, reason: string])[] = [
  ['10.0.0.0/8', 'private (RFC 1918)'],
  ['100.64.0.0/10', 'shared address space, CGNAT (RFC 6598)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local, incl. cloud metadata 169.254.169.254'],
  ['172.16.0.0/12', 'private (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation (TEST-NET-1)'],
  ['192.88.99.0/24', '6to4 relay anycast (deprecated)'],
  ['192.168.0.0/16', 'private (RFC 1918)'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation (TEST-NET-2)'],
  ['203.0.113.0/24', 'documentation (TEST-NET-3)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved, incl. broadcast 255.255.255.255'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0:0/96', 'IPv4-translated (SIIT, RFC 2765)'],
  ['64:ff9b:1::/48', 'local-use NAT64 (RFC 8215); the IPv4 position varies, so it cannot be canonicalised'],
  ['100::/64', 'discard-only'],
  ['2001:2::/48', 'benchmarking'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation (RFC 9637)'],
  ['fc00::/7', 'unique local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local (deprecated)'],
  ['ff00::/8', 'multicast'],
];

/** Reads 4 bytes big-endian as an unsigned 32-bit number. */
function word(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** The embedded IPv4 address of the IPv6 address w0:w1:w2:w3 as a number, or -1 (see `embeddedIPv4`). */
function embedded(w0: number, w1: number, w2: number, w3: number): number {
  if (w0 === 0 && w1 === 0) {
    if (w2 === 0xffff) return w3; // ::ffff:a.b.c.d, IPv4-mapped
    if (w2 === 0 && w3 > 1) return w3; // ::a.b.c.d, IPv4-compatible (deprecated); not :: or ::1
    return -1;
  }
  if (w0 === 0x0064ff9b && w1 === 0 && w2 === 0) return w3; // 64:ff9b::a.b.c.d, NAT64 (RFC 6052)
  if (w0 >>> 16 === 0x2002) return ((w0 << 16) | (w1 >>> 16)) >>> 0; // 2002:aabb:ccdd::/48, 6to4
  return -1;
}

/**
 * The IPv4 address embedded in an IPv6 address (mapped, compatible, NAT64 /96, 6to4), or undefined.
 * Returns a view into `ip16` (no copy). `::` and `::1` are not IPv4-compatible addresses; Teredo and
 * local-use NAT64 (64:ff9b:1::/48) are not unwrapped.
 */
export function embeddedIPv4(ip16: Uint8Array): Uint8Array | undefined {
  if (ip16.length !== 16) return undefined;
  const w0 = word(ip16, 0);
  const v4 = embedded(w0, word(ip16, 4), word(ip16, 8), word(ip16, 12));
  if (v4 < 0) return undefined;
  return w0 >>> 16 === 0x2002 ? ip16.subarray(2, 6) : ip16.subarray(12, 16);
}

/** Whether x is inside one of the closed intervals lo,hi in `ranges`. */
function inRanges4(ranges: Uint32Array, x: number): boolean {
  for (let i = 0; i < ranges.length; i += 2) {
    if (x >= ranges[i]! && x <= ranges[i + 1]!) return true;
  }
  return false;
}

/** Sign of (x0:x1:x2:x3 − the IPv6 address at r[off..off+3]). */
function compare6(x0: number, x1: number, x2: number, x3: number, r: Uint32Array, off: number): number {
  if (x0 !== r[off]) return x0 < r[off]! ? -1 : 1;
  if (x1 !== r[off + 1]) return x1 < r[off + 1]! ? -1 : 1;
  if (x2 !== r[off + 2]) return x2 < r[off + 2]! ? -1 : 1;
  if (x3 !== r[off + 3]) return x3 < r[off + 3]! ? -1 : 1;
  return 0;
}

/** Whether w0:w1:w2:w3 is inside one of the closed intervals lo0-3,hi0-3 in `ranges`. */
function inRanges6(ranges: Uint32Array, w0: number, w1: number, w2: number, w3: number): boolean {
  for (let i = 0; i < ranges.length; i += 8) {
    if (compare6(w0, w1, w2, w3, ranges, i) >= 0 && compare6(w0, w1, w2, w3, ranges, i + 4) <= 0) return true;
  }
  return false;
}

/** Ranges parsed from config items, by family (IPv4: lo,hi pairs; IPv6: 8 words per range). */
interface RangeLists {
  readonly v4: Uint32Array;
  readonly v6: Uint32Array;
}

/** Parses the prefix length of a CIDR: 1-3 ASCII digits (as `checkPeerPattern`), at most `max`; else -1. */
function prefixLength(text: string, max: number): number {
  if (text.length === 0 || text.length > 3) return -1;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    bits = bits * 10 + (c - 0x30);
  }
  return bits <= max ? bits : -1;
}

/** The mask of the `bits` leading bits of a 32-bit word (0-32 bits). */
function wordMask(bits: number): number {
  if (bits <= 0) return 0;
  return bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * Parses one config item (address, CIDR, `a-b` range) into an interval of words: [lo, hi] for IPv4,
 * [lo0-3, hi0-3] for IPv6; undefined when `checkPeerPattern` would refuse it.
 */
function parsePattern(item: string): number[] | undefined {
  let first: Uint8Array | undefined;
  let last: Uint8Array | undefined;
  let bits = -1;
  const slash = item.indexOf('/');
  const dash = item.indexOf('-');
  if (slash >= 0) {
    first = last = parseIp(item.slice(0, slash));
    if (first !== undefined) bits = prefixLength(item.slice(slash + 1), first.length * 8);
    if (bits < 0) return undefined;
  } else if (dash >= 0) {
    first = parseIp(item.slice(0, dash));
    last = parseIp(item.slice(dash + 1));
  } else {
    first = last = parseIp(item);
  }
  if (first === undefined || last === undefined || first.length !== last.length) return undefined;
  const words = first.length / 4;
  const lo: number[] = [];
  const hi: number[] = [];
  for (let i = 0; i < words; i++) {
    const mask = bits < 0 ? 0xffffffff : wordMask(bits - 32 * i);
    lo.push((word(first, 4 * i) & mask) >>> 0);
    hi.push((word(last, 4 * i) | ~mask) >>> 0);
  }
  for (let i = 0; i < words; i++) {
    if (lo[i] !== hi[i]) {
      if (lo[i]! > hi[i]!) return undefined; // range start after its end
      break;
    }
  }
  return [...lo, ...hi];
}

/** Whether the IPv6 interval lies wholly inside ::ffff:0:0/96 (then it is an IPv4 interval). */
function isMappedRange(r: readonly number[]): boolean {
  return r[0] === 0 && r[1] === 0 && r[2] === 0xffff && r[4] === 0 && r[5] === 0 && r[6] === 0xffff;
}

function parseList(items: readonly string[], what: string): RangeLists {
  const v4: number[] = [];
  const v6: number[] = [];
  for (const item of items) {
    const r = parsePattern(item);
    if (r === undefined) {
      throw new TypeError(`${what}: not an IP address, CIDR or a-b range: ${JSON.stringify(item)}`);
    }
    if (r.length === 2) v4.push(...r);
    else if (isMappedRange(r)) v4.push(r[3]!, r[7]!);
    else v6.push(...r);
  }
  return { v4: Uint32Array.from(v4), v6: Uint32Array.from(v6) };
}

const ALWAYS = parseList(
  ALWAYS_DENIED_PEERS.map(([pattern]) => pattern),
  'ALWAYS_DENIED_PEERS',
);
const DEFAULTS = parseList(
  DEFAULT_DENIED_PEERS.map(([pattern]) => pattern),
  'DEFAULT_DENIED_PEERS',
);

/** The peer policy of one configuration; immutable (build a new one on reload). */
export class PeerPolicy {
  readonly #allow: RangeLists;
  readonly #deny: RangeLists;
  /** Own IPv4 (and disguised IPv4) sockets: address, port pairs. */
  readonly #own4: Uint32Array;
  /** Own IPv6 sockets: 4 address words, port. */
  readonly #own6: Uint32Array;
  /** Parse target of `check`, so a text address costs no allocation here. */
  readonly #scratch = new Uint8Array(16);

  /** Throws TypeError on an item the config validation would have refused. */
  constructor(options: PeerPolicyOptions) {
    this.#allow = parseList(options.allowed, 'allowed-peer-ip');
    this.#deny = parseList(options.denied, 'denied-peer-ip');
    const own4: number[] = [];
    const own6: number[] = [];
    for (const { address, port } of options.ownServices) {
      const ip = parseIp(address);
      if (ip === undefined || !isPort(port)) {
        throw new TypeError(`own service: not an IP address and port: ${JSON.stringify({ address, port })}`);
      }
      if (ip.length === 4) {
        own4.push(word(ip, 0), port);
        continue;
      }
      const w0 = word(ip, 0);
      const w1 = word(ip, 4);
      const w2 = word(ip, 8);
      const w3 = word(ip, 12);
      const v4 = embedded(w0, w1, w2, w3);
      if (v4 >= 0) own4.push(v4, port);
      else own6.push(w0, w1, w2, w3, port);
    }
    this.#own4 = Uint32Array.from(own4);
    this.#own6 = Uint32Array.from(own6);
  }

  /** Judges a peer given as IP text (any IPv4/IPv6 form; a `%zone` suffix is ignored). */
  check(address: string, port: number): PeerVerdict {
    const b = this.#scratch;
    if (writeIPv4(address, b, 0)) return this.#check4(word(b, 0), port);
    if (writeIPv6(address, b, 0)) return this.#check6(word(b, 0), word(b, 4), word(b, 8), word(b, 12), port);
    return 'invalid';
  }

  /** Judges a peer given as 4 or 16 address bytes (as decoded from XOR-PEER-ADDRESS). */
  checkBytes(ip: Uint8Array, port: number): PeerVerdict {
    if (ip.length === 4) return this.#check4(word(ip, 0), port);
    if (ip.length === 16) return this.#check6(word(ip, 0), word(ip, 4), word(ip, 8), word(ip, 12), port);
    return 'invalid';
  }

  /**
   * The ports of the server's own sockets on `address` (plain or disguised IPv4): the only ports
   * whose verdict for this IP differs from the others'. Not on the hot path.
   */
  ownPorts(address: string): number[] {
    const b = this.#scratch;
    const ports: number[] = [];
    let v4 = -1;
    if (writeIPv4(address, b, 0)) v4 = word(b, 0);
    else if (writeIPv6(address, b, 0)) {
      const [w0, w1, w2, w3] = [word(b, 0), word(b, 4), word(b, 8), word(b, 12)];
      v4 = embedded(w0, w1, w2, w3);
      if (v4 < 0) {
        const own = this.#own6;
        for (let i = 0; i < own.length; i += 5)
          if (own[i] === w0 && own[i + 1] === w1 && own[i + 2] === w2 && own[i + 3] === w3)
            ports.push(own[i + 4]!);
        return ports;
      }
    } else return ports;
    const own = this.#own4;
    for (let i = 0; i < own.length; i += 2) if (own[i] === v4) ports.push(own[i + 1]!);
    return ports;
  }

  isAllowed(address: string, port: number): boolean {
    return this.check(address, port) === 'allowed';
  }

  /** Steps 1, 3-7 for an IPv4 address (plain or canonicalised), see the top of the file. */
  #check4(v4: number, port: number): PeerVerdict {
    if (!isPort(port)) return 'invalid';
    if (inRanges4(ALWAYS.v4, v4)) return 'denied-always';
    const own = this.#own4;
    for (let i = 0; i < own.length; i += 2) {
      if (own[i] === v4 && own[i + 1] === port) return 'denied-own-service';
    }
    if (inRanges4(this.#allow.v4, v4)) return 'allowed';
    if (inRanges4(DEFAULTS.v4, v4)) return 'denied-default';
    if (inRanges4(this.#deny.v4, v4)) return 'denied-list';
    return 'allowed';
  }

  /** Steps 1-9 for an IPv6 address, see the top of the file. */
  #check6(w0: number, w1: number, w2: number, w3: number, port: number): PeerVerdict {
    if (!isPort(port)) return 'invalid';
    if (inRanges6(ALWAYS.v6, w0, w1, w2, w3)) return 'denied-always';
    const v4 = embedded(w0, w1, w2, w3);
    if (v4 >= 0) {
      const verdict = this.#check4(v4, port);
      if (verdict !== 'allowed' || inRanges4(this.#allow.v4, v4)) return verdict;
      const deny = this.#deny.v6;
      if (deny.length > 0 && inRanges6(deny, w0, w1, w2, w3) && !inRanges6(this.#allow.v6, w0, w1, w2, w3)) {
        return 'denied-list';
      }
      return 'allowed';
    }
    const own = this.#own6;
    for (let i = 0; i < own.length; i += 5) {
      if (
        own[i] === w0 &&
        own[i + 1] === w1 &&
        own[i + 2] === w2 &&
        own[i + 3] === w3 &&
        own[i + 4] === port
      ) {
        return 'denied-own-service';
      }
    }
    if (inRanges6(this.#allow.v6, w0, w1, w2, w3)) return 'allowed';
    if (inRanges6(DEFAULTS.v6, w0, w1, w2, w3)) return 'denied-default';
    if (inRanges6(this.#deny.v6, w0, w1, w2, w3)) return 'denied-list';
    return 'allowed';
  }
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 0xffff;
}
