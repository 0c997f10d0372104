/**
 * HMAC-SHA1 and HMAC-SHA256 (RFC 2104 over FIPS 180-4 SHA-1 and SHA-256) in plain JavaScript, with
 * each key's inner and outer states computed once.
 *
 * Why not node:crypto: every `createHmac` call builds an OpenSSL context and looks the digest up by
 * name (about 6 µs on the reference machine, more than the hashing itself), and a TURN request costs
 * two or three of them (nonce, MESSAGE-INTEGRITY check, the response's MESSAGE-INTEGRITY). Here a MAC
 * over a typical 100-byte request is three or four compression calls on preallocated state and no
 * allocation. Keys are precomputed per user (static users) or cached by the caller; one instance is
 * for one thread of control (it owns scratch state), which is all a Node event loop has.
 *
 * The message is fed in pieces (`update`), so a STUN MAC over "the header with its length field
 * rewritten, then the attributes" needs no copy. Tested against node:crypto on random keys and
 * lengths (test/core/crypto/hmac.test.ts).
 */

const BLOCK = 64;

/** One SHA-1 or SHA-256 compression function over 64-byte blocks; state is big-endian words. */
interface Compressor {
  readonly digestBytes: number;
  readonly stateWords: number;
  readonly iv: Int32Array;
  compress(state: Int32Array, data: Uint8Array, off: number, w: Int32Array): void;
}

function readWord(d: Uint8Array, i: number): number {
  return (d[i]! << 24) | (d[i + 1]! << 16) | (d[i + 2]! << 8) | d[i + 3]!;
}

const SHA1: Compressor = {
  digestBytes: 20,
  stateWords: 5,
  iv: Int32Array.from([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]),
  compress(s, d, off, w) {
    for (let t = 0; t < 16; t++) w[t] = readWord(d, off + 4 * t);
    for (let t = 16; t < 80; t++) {
      const x = w[t - 3]! ^ w[t - 8]! ^ w[t - 14]! ^ w[t - 16]!;
      w[t] = (x << 1) | (x >>> 31);
    }
    let a = s[0]!;
    let b = s[1]!;
    let c = s[2]!;
    let d4 = s[3]!;
    let e = s[4]!;
    // FIPS 180-4 §6.1.2, the 80 rounds in their four groups (no branch per round).
    for (let t = 0; t < 20; t++) {
      const tmp = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d4)) + e + 0x5a827999 + w[t]!) | 0;
      e = d4;
      d4 = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = tmp;
    }
    for (let t = 20; t < 40; t++) {
      const tmp = (((a << 5) | (a >>> 27)) + (b ^ c ^ d4) + e + 0x6ed9eba1 + w[t]!) | 0;
      e = d4;
      d4 = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = tmp;
    }
    for (let t = 40; t < 60; t++) {
      const tmp = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d4) | (c & d4)) + e + 0x8f1bbcdc + w[t]!) | 0;
      e = d4;
      d4 = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = tmp;
    }
    for (let t = 60; t < 80; t++) {
      const tmp = (((a << 5) | (a >>> 27)) + (b ^ c ^ d4) + e + 0xca62c1d6 + w[t]!) | 0;
      e = d4;
      d4 = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = tmp;
    }
    s[0] = (s[0]! + a) | 0;
    s[1] = (s[1]! + b) | 0;
    s[2] = (s[2]! + c) | 0;
    s[3] = (s[3]! + d4) | 0;
    s[4] = (s[4]! + e) | 0;
  },
};

/** FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K256 = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

const SHA256: Compressor = {
  digestBytes: 32,
  stateWords: 8,
  iv: Int32Array.from([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]),
  compress(s, d, off, w) {
    for (let t = 0; t < 16; t++) w[t] = readWord(d, off + 4 * t);
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15]!;
      const y = w[t - 2]!;
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) | 0;
    }
    let a = s[0]!;
    let b = s[1]!;
    let c = s[2]!;
    let d4 = s[3]!;
    let e = s[4]!;
    let f = s[5]!;
    let g = s[6]!;
    let h = s[7]!;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K256[t]! + w[t]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g;
      g = f;
      f = e;
      e = (d4 + t1) | 0;
      d4 = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    s[0] = (s[0]! + a) | 0;
    s[1] = (s[1]! + b) | 0;
    s[2] = (s[2]! + c) | 0;
    s[3] = (s[3]! + d4) | 0;
    s[4] = (s[4]! + e) | 0;
    s[5] = (s[5]! + f) | 0;
    s[6] = (s[6]! + g) | 0;
    s[7] = (s[7]! + h) | 0;
  },
};

/** A running SHA-1/SHA-256 computation with its own block buffer and message schedule. */
class HashState {
  readonly c: Compressor;
  readonly state: Int32Array;
  private readonly block = new Uint8Array(BLOCK);
  private readonly w: Int32Array;
  private blockLen = 0;
  /** Bytes hashed so far (a STUN message is far below 2^53). */
  private total = 0;

  constructor(c: Compressor) {
    this.c = c;
    this.state = new Int32Array(c.stateWords);
    this.w = new Int32Array(c === SHA1 ? 80 : 64);
  }

  /** Starts from `state` after `total` bytes (a multiple of 64) were hashed. */
  resume(state: Int32Array, total: number): void {
    this.state.set(state);
    this.blockLen = 0;
    this.total = total;
  }

  update(data: Uint8Array, start: number, end: number): void {
    let i = start;
    this.total += end - start;
    if (this.blockLen > 0) {
      while (this.blockLen < BLOCK && i < end) this.block[this.blockLen++] = data[i++]!;
      if (this.blockLen < BLOCK) return;
      this.c.compress(this.state, this.block, 0, this.w);
      this.blockLen = 0;
    }
    for (; i + BLOCK <= end; i += BLOCK) this.c.compress(this.state, data, i, this.w);
    while (i < end) this.block[this.blockLen++] = data[i++]!;
  }

  /** Pads, finishes and writes the digest to `out[off..]`. The state is spent afterwards. */
  finish(out: Uint8Array, off: number): void {
    const bits = this.total * 8;
    const block = this.block;
    block[this.blockLen++] = 0x80;
    if (this.blockLen > BLOCK - 8) {
      block.fill(0, this.blockLen);
      this.c.compress(this.state, block, 0, this.w);
      this.blockLen = 0;
    }
    block.fill(0, this.blockLen, BLOCK - 8);
    const hi = Math.floor(bits / 0x100000000);
    writeWord(block, BLOCK - 8, hi);
    writeWord(block, BLOCK - 4, bits >>> 0);
    this.c.compress(this.state, block, 0, this.w);
    this.blockLen = 0;
    const words = this.c.digestBytes / 4;
    for (let k = 0; k < words; k++) writeWord(out, off + 4 * k, this.state[k]!);
  }
}

function writeWord(out: Uint8Array, off: number, v: number): void {
  out[off] = v >>> 24;
  out[off + 1] = (v >>> 16) & 0xff;
  out[off + 2] = (v >>> 8) & 0xff;
  out[off + 3] = v & 0xff;
}

/** Scratch shared by every key of one algorithm (single thread of control). */
const SCRATCH = new Map<Compressor, { run: HashState; inner: Uint8Array }>();
function scratchFor(c: Compressor): { run: HashState; inner: Uint8Array } {
  let s = SCRATCH.get(c);
  if (s === undefined) {
    s = { run: new HashState(c), inner: new Uint8Array(c.digestBytes) };
    SCRATCH.set(c, s);
  }
  return s;
}

export type HmacAlgorithm = 'sha1' | 'sha256';

/**
 * An HMAC key with its inner (key ⊕ ipad) and outer (key ⊕ opad) states precomputed. Usage:
 * `begin()`, then `update()` with the message in pieces, then `end(out, off)`. A second `begin()`
 * abandons a computation in progress. Instances share scratch state per algorithm: do not
 * interleave two computations.
 */
export class HmacKey {
  readonly algorithm: HmacAlgorithm;
  /** Digest length in bytes (20 or 32). */
  readonly length: number;
  private readonly innerState: Int32Array;
  private readonly outerState: Int32Array;
  private readonly run: HashState;
  private readonly inner: Uint8Array;

  constructor(algorithm: HmacAlgorithm, key: Uint8Array) {
    const c = algorithm === 'sha1' ? SHA1 : SHA256;
    this.algorithm = algorithm;
    this.length = c.digestBytes;
    const scratch = scratchFor(c);
    this.run = scratch.run;
    this.inner = scratch.inner;
    // RFC 2104 §2: a key longer than the block is hashed first, then zero-padded to the block.
    const k = new Uint8Array(BLOCK);
    if (key.length > BLOCK) {
      const h = new HashState(c);
      h.resume(c.iv, 0);
      h.update(key, 0, key.length);
      h.finish(k, 0);
    } else {
      k.set(key);
    }
    const pad = new Uint8Array(BLOCK);
    const h = new HashState(c);
    for (let i = 0; i < BLOCK; i++) pad[i] = k[i]! ^ 0x36;
    h.resume(c.iv, 0);
    h.update(pad, 0, BLOCK);
    this.innerState = Int32Array.from(h.state);
    for (let i = 0; i < BLOCK; i++) pad[i] = k[i]! ^ 0x5c;
    h.resume(c.iv, 0);
    h.update(pad, 0, BLOCK);
    this.outerState = Int32Array.from(h.state);
    k.fill(0);
    pad.fill(0);
  }

  begin(): this {
    this.run.resume(this.innerState, BLOCK);
    return this;
  }

  update(data: Uint8Array, start = 0, end = data.length): this {
    this.run.update(data, start, end);
    return this;
  }

  /** Writes the MAC (`length` bytes) to `out[off..]`. */
  end(out: Uint8Array, off = 0): void {
    const run = this.run;
    run.finish(this.inner, 0);
    run.resume(this.outerState, BLOCK);
    run.update(this.inner, 0, this.inner.length);
    run.finish(out, off);
  }

  /** One-shot convenience (allocates the result): HMAC over `data`. */
  digest(data: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(this.length);
    this.begin().update(data).end(out, 0);
    return out;
  }
}
