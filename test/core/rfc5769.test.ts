import t from 'tap';
import { AttrType, Class, Method } from '../../src/core/constants.js';
import { readAddress, readString, readUint32 } from '../../src/core/stun/attrs.js';
import { decodeStun, type StunView } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { longTermKey, verifyFingerprint, verifyMessageIntegrity } from '../../src/core/stun/integrity.js';
import {
  LONG_TERM_NONCE,
  LONG_TERM_PASSWORD,
  LONG_TERM_REALM,
  LONG_TERM_USERNAME,
  SAMPLE_IPV4_RESPONSE,
  SAMPLE_IPV6_RESPONSE,
  SAMPLE_LONG_TERM_REQUEST,
  SAMPLE_REQUEST,
  SHORT_TERM_PASSWORD,
} from '../fixtures/rfc5769/vectors.js';

const shortKey = Buffer.from(SHORT_TERM_PASSWORD, 'utf8');

function decoded(buf: Buffer): StunView {
  const r = decodeStun(buf);
  if (!r.ok) throw new Error(`decode failed: ${r.reason}`);
  return r.view;
}

/** Copy of `buf` with every attribute's padding set to zero, as RFC 8489 senders produce it. */
function zeroPadding(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  let off = 20;
  while (off < out.length) {
    const len = out.readUInt16BE(off + 2);
    const end = off + 4 + len;
    const padded = off + 4 + ((len + 3) & ~3);
    out.fill(0, end, padded);
    off = padded;
  }
  return out;
}

t.test('§2.1 sample request: decodes, integrity and fingerprint verify on the raw bytes', async (t) => {
  const v = decoded(SAMPLE_REQUEST);
  t.equal(v.method, Method.Binding);
  t.equal(v.cls, Class.Request);
  t.equal(readString(v, AttrType.Software), 'STUN test client');
  t.equal(readString(v, AttrType.Username), 'evtj:h6vY');
  t.equal(readUint32(v, AttrType.Priority), 0x6e0001ff);
  t.ok(verifyMessageIntegrity(v, shortKey), 'MESSAGE-INTEGRITY');
  t.ok(verifyFingerprint(v), 'FINGERPRINT');
  t.notOk(verifyMessageIntegrity(v, Buffer.from('wrong')), 'wrong key refused');
  const flipped = Buffer.from(SAMPLE_REQUEST);
  flipped[30] = (flipped[30] ?? 0) ^ 1; // inside SOFTWARE
  const fv = decoded(flipped);
  t.notOk(verifyMessageIntegrity(fv, shortKey), 'a flipped covered bit breaks MI');
  t.notOk(verifyFingerprint(fv), 'and FINGERPRINT');
});

t.test(
  '§2.1 re-encoded: same bytes as the vector with zero padding, own MI/FINGERPRINT verify',
  async (t) => {
    const v = decoded(SAMPLE_REQUEST);
    const w = new StunWriter()
      .start(Method.Binding, Class.Request, v.transactionId)
      .addString(AttrType.Software, 'STUN test client')
      .addUint32(AttrType.Priority, 0x6e0001ff)
      .addBytes(AttrType.IceControlled, Buffer.from('932ff9b151263b36', 'hex'))
      .addString(AttrType.Username, 'evtj:h6vY')
      .addMessageIntegrity(shortKey)
      .addFingerprint();
    const out = w.finish();
    const expected = zeroPadding(SAMPLE_REQUEST);
    t.same(out.subarray(0, 80), expected.subarray(0, 80), 'header and attributes up to MI identical');
    t.equal(out.length, SAMPLE_REQUEST.length);
    const ov = decoded(out);
    t.ok(verifyMessageIntegrity(ov, shortKey));
    t.ok(verifyFingerprint(ov));
  },
);

for (const [name, vec, address] of [
  ['§2.2 IPv4 response', SAMPLE_IPV4_RESPONSE, '192.0.2.1'],
  ['§2.3 IPv6 response', SAMPLE_IPV6_RESPONSE, '2001:db8:1234:5678:11:2233:4455:6677'],
] as const) {
  t.test(name, async (t) => {
    const v = decoded(vec);
    t.equal(v.cls, Class.Success);
    t.equal(readString(v, AttrType.Software), 'test vector');
    t.same(readAddress(v, AttrType.XorMappedAddress), {
      family: address.includes(':') ? 2 : 1,
      address,
      port: 32853,
    });
    t.ok(verifyMessageIntegrity(v, shortKey));
    t.ok(verifyFingerprint(v));
    // Re-encode: the XOR-MAPPED-ADDRESS bytes come out identical.
    const out = new StunWriter()
      .start(Method.Binding, Class.Success, v.transactionId)
      .addString(AttrType.Software, 'test vector')
      .addAddress(AttrType.XorMappedAddress, address, 32853, true)
      .addMessageIntegrity(shortKey)
      .addFingerprint()
      .finish();
    t.equal(out.length, vec.length);
    const miAt = v.integrityAt;
    t.same(out.subarray(0, miAt), zeroPadding(vec).subarray(0, miAt));
    const ov = decoded(out);
    t.ok(verifyMessageIntegrity(ov, shortKey));
    t.ok(verifyFingerprint(ov));
  });
}

t.test('§2.4 long-term request: verifies with MD5(user:realm:pass), re-encodes byte for byte', async (t) => {
  const v = decoded(SAMPLE_LONG_TERM_REQUEST);
  t.equal(readString(v, AttrType.Username), LONG_TERM_USERNAME);
  t.equal(readString(v, AttrType.Nonce), LONG_TERM_NONCE);
  t.equal(readString(v, AttrType.Realm), LONG_TERM_REALM);
  const key = longTermKey(LONG_TERM_USERNAME, LONG_TERM_REALM, LONG_TERM_PASSWORD);
  t.ok(verifyMessageIntegrity(v, key));
  t.notOk(verifyMessageIntegrity(v, longTermKey(LONG_TERM_USERNAME, LONG_TERM_REALM, 'thematrix')));
  const out = new StunWriter()
    .start(Method.Binding, Class.Request, v.transactionId)
    .addString(AttrType.Username, LONG_TERM_USERNAME)
    .addString(AttrType.Nonce, LONG_TERM_NONCE)
    .addString(AttrType.Realm, LONG_TERM_REALM)
    .addMessageIntegrity(key)
    .finish();
  t.same(out, SAMPLE_LONG_TERM_REQUEST, 'identical bytes, MI included');
});
