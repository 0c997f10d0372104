import t from 'tap';
import { AttrType, Class, Family, Method, PasswordAlgorithm } from '../../src/core/constants.js';
import {
  readAddress,
  readAddressErrorCode,
  readAddresses,
  readBytes,
  readChannelNumber,
  readErrorCode,
  readEvenPort,
  readIcmp,
  readLeadingByte,
  readPasswordAlgorithm,
  readPasswordAlgorithms,
  readString,
  readUint32,
  readUnknownAttributes,
  unknownRequiredAttributes,
} from '../../src/core/stun/attrs.js';
import { classOf, decodeStun, messageType, methodOf, type StunView } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import {
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../../src/core/stun/integrity.js';

const tid = Buffer.from('0102030405060708090a0b0c', 'hex');

function decoded(buf: Buffer): StunView {
  const r = decodeStun(buf);
  if (!r.ok) throw new Error(`decode failed: ${r.reason}`);
  return r.view;
}

t.test('message type interleaving (RFC 8489 §5)', async (t) => {
  t.equal(messageType(Method.Binding, Class.Request), 0x0001);
  t.equal(messageType(Method.Binding, Class.Success), 0x0101);
  t.equal(messageType(Method.Binding, Class.Error), 0x0111);
  t.equal(messageType(Method.Allocate, Class.Error), 0x0113);
  t.equal(messageType(Method.Send, Class.Indication), 0x0016);
  t.equal(messageType(Method.Data, Class.Indication), 0x0017);
  for (let m = 0; m < 0x1000; m++) {
    for (const c of [0, 0x10, 0x100, 0x110]) {
      const type = messageType(m, c);
      if (methodOf(type) !== m || classOf(type) !== c) t.fail(`method ${m} class ${c}`);
    }
  }
});

t.test('every RFC 8489 and TURN attribute round-trips through writer and readers', async (t) => {
  const key = Buffer.from('0123456789abcdef');
  const buf = new StunWriter(64) // small capacity: exercises growth
    .start(Method.Allocate, Class.Request, tid)
    .addAddress(AttrType.MappedAddress, '203.0.113.5', 1234, false)
    .addAddress(AttrType.XorMappedAddress, '2001:db8::1', 4321, true)
    .addString(AttrType.Username, 'alice')
    .addBytes(AttrType.Userhash, Buffer.alloc(32, 7))
    .addErrorCode(438, 'Stale Nonce')
    .addString(AttrType.Realm, 'example.test')
    .addString(AttrType.Nonce, 'abcdef')
    .addPasswordAlgorithms([PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5])
    .addPasswordAlgorithm(PasswordAlgorithm.SHA256)
    .addUnknownAttributes([0x7777, 0x0033])
    .addString(AttrType.Software, 'turnpike test')
    .addAddress(AttrType.AlternateServer, '198.51.100.7', 3478, false)
    .addString(AttrType.AlternateDomain, 'turn.example.test')
    .addChannelNumber(0x4001)
    .addUint32(AttrType.Lifetime, 600)
    .addAddress(AttrType.XorPeerAddress, '192.0.2.10', 5000, true)
    .addAddress(AttrType.XorPeerAddress, '2001:db8::10', 5001, true)
    .addBytes(AttrType.Data, Buffer.from('hello'))
    .addAddress(AttrType.XorRelayedAddress, '192.0.2.20', 50000, true)
    .addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv6)
    .addEvenPort(true)
    .addLeadingByte(AttrType.RequestedTransport, 17)
    .addFlag(AttrType.DontFragment)
    .addBytes(AttrType.ReservationToken, Buffer.from('0011223344556677', 'hex'))
    .addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)
    .addAddressErrorCode(Family.IPv6, 440, 'Address Family not Supported')
    .addIcmp(3, 13, 0xdeadbeef)
    .addUint32(AttrType.ConnectionId, 0x12345678)
    .addBytes(AttrType.MobilityTicket, Buffer.from('ticket'))
    .addMessageIntegrity(key)
    .addMessageIntegritySha256(key)
    .addFingerprint()
    .finish();
  const v = decoded(buf);
  t.equal(v.method, Method.Allocate);
  t.equal(v.cls, Class.Request);
  t.same(v.transactionId, tid);
  t.same(readAddress(v, AttrType.MappedAddress), { family: 1, address: '203.0.113.5', port: 1234 });
  t.same(readAddress(v, AttrType.XorMappedAddress), { family: 2, address: '2001:db8::1', port: 4321 });
  t.equal(readString(v, AttrType.Username), 'alice');
  t.same(readBytes(v, AttrType.Userhash), Buffer.alloc(32, 7));
  t.same(readErrorCode(v), { code: 438, reason: 'Stale Nonce' });
  t.equal(readString(v, AttrType.Realm), 'example.test');
  t.equal(readString(v, AttrType.Nonce), 'abcdef');
  t.same(
    readPasswordAlgorithms(v)?.map((a) => a.algorithm),
    [PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5],
  );
  t.equal(readPasswordAlgorithm(v)?.algorithm, PasswordAlgorithm.SHA256);
  t.same(readUnknownAttributes(v), [0x7777, 0x0033]);
  t.equal(readString(v, AttrType.Software), 'turnpike test');
  t.same(readAddress(v, AttrType.AlternateServer), { family: 1, address: '198.51.100.7', port: 3478 });
  t.equal(readString(v, AttrType.AlternateDomain), 'turn.example.test');
  t.equal(readChannelNumber(v), 0x4001);
  t.equal(readUint32(v, AttrType.Lifetime), 600);
  t.same(readAddresses(v, AttrType.XorPeerAddress), [
    { family: 1, address: '192.0.2.10', port: 5000 },
    { family: 2, address: '2001:db8::10', port: 5001 },
  ]);
  t.same(readBytes(v, AttrType.Data), Buffer.from('hello'));
  t.same(readAddress(v, AttrType.XorRelayedAddress), { family: 1, address: '192.0.2.20', port: 50000 });
  t.equal(readLeadingByte(v, AttrType.RequestedAddressFamily), Family.IPv6);
  t.same(readEvenPort(v), { reserveNext: true });
  t.equal(readLeadingByte(v, AttrType.RequestedTransport), 17);
  t.ok(v.has(AttrType.DontFragment));
  t.same(readBytes(v, AttrType.ReservationToken), Buffer.from('0011223344556677', 'hex'));
  t.equal(readLeadingByte(v, AttrType.AdditionalAddressFamily), Family.IPv6);
  t.same(readAddressErrorCode(v), { family: 2, code: 440, reason: 'Address Family not Supported' });
  t.same(readIcmp(v), { type: 3, code: 13, data: 0xdeadbeef });
  t.equal(readUint32(v, AttrType.ConnectionId), 0x12345678);
  t.same(readBytes(v, AttrType.MobilityTicket), Buffer.from('ticket'));
  t.ok(verifyMessageIntegrity(v, key));
  t.ok(verifyMessageIntegritySha256(v, key));
  t.ok(verifyFingerprint(v));
  t.notOk(verifyMessageIntegritySha256(v, Buffer.from('other')));
  t.same(unknownRequiredAttributes(v), [], 'all attributes known');
});

t.test('padding is zero; lengths stay multiples of 4', async (t) => {
  const buf = new StunWriter()
    .start(Method.Binding, Class.Request, tid)
    .addString(AttrType.Username, 'a')
    .finish();
  t.equal(buf.length, 28);
  t.equal(buf.readUInt16BE(2), 8);
  t.same(buf.subarray(25), Buffer.alloc(3));
});

t.test('attributes after MESSAGE-INTEGRITY are ignored except MI-SHA256 and FINGERPRINT', async (t) => {
  const key = Buffer.from('k');
  const w = new StunWriter().start(Method.Binding, Class.Request, tid).addString(AttrType.Username, 'u');
  w.addMessageIntegrity(key);
  w.addBytes(0x0033, Buffer.from('xx')); // unknown comprehension-required, after MI: ignored
  w.addString(AttrType.Realm, 'ignored');
  w.addMessageIntegritySha256(key);
  w.addString(AttrType.Nonce, 'ignored too');
  const v = decoded(w.addFingerprint().finish());
  t.equal(readString(v, AttrType.Realm), undefined);
  t.equal(readString(v, AttrType.Nonce), undefined);
  t.same(unknownRequiredAttributes(v), []);
  t.ok(verifyMessageIntegrity(v, key));
  t.ok(verifyMessageIntegritySha256(v, key));
  t.ok(verifyFingerprint(v));
});

t.test('unknown comprehension-required attributes are listed once; optional ones are not', async (t) => {
  const v = decoded(
    new StunWriter()
      .start(Method.Binding, Class.Request, tid)
      .addBytes(0x0003, Buffer.alloc(4)) // CHANGE-REQUEST (RFC 5780), not served
      .addBytes(0x0003, Buffer.alloc(4))
      .addBytes(0xc001, Buffer.alloc(4)) // comprehension-optional
      .finish(),
  );
  t.same(unknownRequiredAttributes(v), [0x0003]);
});

t.test('decode refuses malformed input with a reason, never throws', async (t) => {
  const good = new StunWriter()
    .start(Method.Binding, Class.Request, tid)
    .addString(AttrType.Username, 'ab')
    .finish();
  const cases: Array<[string, Buffer, string]> = [
    ['empty', Buffer.alloc(0), 'short'],
    ['19 bytes', good.subarray(0, 19), 'short'],
    ['top bits', Buffer.concat([Buffer.from([0xc0]), good.subarray(1)]), 'type'],
    ['cookie', Buffer.concat([good.subarray(0, 4), Buffer.alloc(4), good.subarray(8)]), 'cookie'],
    ['truncated', good.subarray(0, good.length - 4), 'length'],
    ['trailing bytes', Buffer.concat([good, Buffer.alloc(4)]), 'length'],
  ];
  const odd = Buffer.from(good);
  odd.writeUInt16BE(7, 2);
  cases.push(['length not multiple of 4', odd, 'length']);
  const overrun = Buffer.from(good);
  overrun.writeUInt16BE(200, 22);
  cases.push(['attribute overruns', overrun, 'attr']);
  const afterFp = new StunWriter()
    .start(Method.Binding, Class.Request, tid)
    .addFingerprint()
    .addString(AttrType.Username, 'x')
    .finish();
  cases.push(['attribute after FINGERPRINT', afterFp, 'attr']);
  const badMi = new StunWriter()
    .start(Method.Binding, Class.Request, tid)
    .addBytes(AttrType.MessageIntegrity, Buffer.alloc(8))
    .finish();
  cases.push(['MI of wrong size', badMi, 'attr']);
  const many = new StunWriter(2048).start(Method.Binding, Class.Request, tid);
  for (let i = 0; i < 60; i++) many.addFlag(0x8100 + i);
  cases.push(['too many attributes', many.finish(), 'too-many-attrs']);
  // Too many, and malformed after the index is full: malformed wins.
  const manyBad = Buffer.concat([many.finish(), Buffer.from([0x80, 0x22, 0x00, 0x08, 1, 2, 3, 4])]);
  manyBad.writeUInt16BE(manyBad.length - 20, 2);
  cases.push(['too many attributes, then a truncated one', manyBad, 'attr']);
  for (const [name, buf, reason] of cases) {
    const r = decodeStun(buf);
    t.same(r.ok ? 'ok' : r.reason, reason, name);
  }
});

t.test('readers refuse malformed values', async (t) => {
  const v = decoded(
    new StunWriter()
      .start(Method.Binding, Class.Request, tid)
      .addBytes(AttrType.XorMappedAddress, Buffer.from('0003000001020304', 'hex')) // family 3
      .addBytes(AttrType.Lifetime, Buffer.alloc(2))
      .addBytes(AttrType.ErrorCode, Buffer.from('00000901', 'hex')) // class 9
      .addBytes(AttrType.UnknownAttributes, Buffer.alloc(3))
      .addBytes(AttrType.PasswordAlgorithms, Buffer.from('000100ff', 'hex'))
      .addBytes(AttrType.ChannelNumber, Buffer.alloc(2))
      .finish(),
  );
  t.equal(readAddress(v, AttrType.XorMappedAddress), undefined);
  t.equal(readUint32(v, AttrType.Lifetime), undefined);
  t.equal(readErrorCode(v), undefined);
  t.equal(readUnknownAttributes(v), undefined);
  t.equal(readPasswordAlgorithms(v), undefined);
  t.equal(readChannelNumber(v), undefined);
  t.equal(readAddresses(v, AttrType.XorMappedAddress), undefined);
});
