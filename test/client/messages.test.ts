/**
 * The client's pure builders and readers: byte-exact against RFC 5769 where the vectors fit (the
 * long-term request of §2.4; the responses of §2.2/§2.3, read over their space padding), and
 * attribute by attribute for the TURN methods, the SHA-256 signature and ChannelData.
 */
import t from 'tap';
import {
  addAllocateAttributes,
  buildBindingRequest,
  buildRequest,
  buildSendIndication,
  channelBindBody,
  decodeChannelData,
  encodeChannelData,
  permissionBody,
  readAllocateSuccess,
  readMappedAddress,
  refreshBody,
  type Signature,
  toResponse,
  userHash,
} from '../../src/client/index.js';
import { AttrType, Class, Family, Method, PasswordAlgorithm, Transport } from '../../src/core/constants.js';
import {
  readAddress,
  readAddresses,
  readBytes,
  readChannelNumber,
  readLeadingByte,
  readPasswordAlgorithm,
  readString,
  readUint32,
} from '../../src/core/stun/attrs.js';
import { decodeStun, type StunView } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import {
  longTermKey,
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../../src/core/stun/integrity.js';
import * as rfc5769 from '../fixtures/rfc5769/vectors.js';

const decoded = (buf: Buffer): StunView => {
  const d = decodeStun(buf);
  if (!d.ok) throw new Error(`undecodable: ${d.reason}`);
  return d.view;
};
const types = (v: StunView): number[] => Array.from(v.attrType.subarray(0, v.attrCount));
const TID = Buffer.from('0123456789abcdef01234567', 'hex');

t.test('RFC 5769 §2.4: a signed request is the sample byte for byte', async (t) => {
  const sign: Signature = {
    username: rfc5769.LONG_TERM_USERNAME,
    realm: rfc5769.LONG_TERM_REALM,
    nonce: Buffer.from(rfc5769.LONG_TERM_NONCE),
    key: longTermKey(rfc5769.LONG_TERM_USERNAME, rfc5769.LONG_TERM_REALM, rfc5769.LONG_TERM_PASSWORD),
  };
  const raw = buildRequest(Method.Binding, undefined, {
    tid: rfc5769.SAMPLE_LONG_TERM_REQUEST.subarray(8, 20),
    sign,
  });
  t.same(raw.toString('hex'), rfc5769.SAMPLE_LONG_TERM_REQUEST.toString('hex'));
});

t.test('RFC 5769 §2.2/§2.3: responses read over their space padding', async (t) => {
  const key = Buffer.from(rfc5769.SHORT_TERM_PASSWORD);
  for (const [raw, mapped] of [
    [rfc5769.SAMPLE_IPV4_RESPONSE, { family: Family.IPv4, address: '192.0.2.1', port: 32853 }],
    [
      rfc5769.SAMPLE_IPV6_RESPONSE,
      { family: Family.IPv6, address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 },
    ],
  ] as const) {
    const v = decoded(raw);
    const r = toResponse(raw, v, verifyMessageIntegrity(v, key) ? 'sha1' : undefined);
    t.match(r, { ok: true, code: undefined, reason: undefined, integrity: 'sha1' });
    t.same(readMappedAddress(v), mapped);
  }
});

t.test('Binding and Send indication', async (t) => {
  const b = decoded(buildBindingRequest({ tid: TID, fingerprint: true }));
  t.same([b.method, b.cls, b.transactionId], [Method.Binding, Class.Request, TID]);
  t.same(types(b), [AttrType.Fingerprint]);
  t.ok(verifyFingerprint(b));
  t.equal(decoded(buildBindingRequest()).attrCount, 0, 'no attributes by default');

  const data = Buffer.from('hello peer');
  const s = decoded(buildSendIndication({ address: '192.0.2.7', port: 4000 }, data, { dontFragment: true }));
  t.same([s.method, s.cls], [Method.Send, Class.Indication]);
  t.same(types(s), [AttrType.XorPeerAddress, AttrType.DontFragment, AttrType.Data]);
  t.same(readAddress(s, AttrType.XorPeerAddress), { family: Family.IPv4, address: '192.0.2.7', port: 4000 });
  t.same(readBytes(s, AttrType.Data), data);
});

t.test('TURN request bodies', async (t) => {
  const token = Buffer.from('0102030405060708', 'hex');
  const a = decoded(
    buildRequest(Method.Allocate, (w) =>
      addAllocateAttributes(w, {
        lifetime: 1200,
        family: 6,
        evenPort: { reserve: true },
        reservationToken: token,
        dontFragment: true,
      }),
    ),
  );
  t.same(types(a), [
    AttrType.RequestedTransport,
    AttrType.Lifetime,
    AttrType.RequestedAddressFamily,
    AttrType.EvenPort,
    AttrType.ReservationToken,
    AttrType.DontFragment,
  ]);
  t.equal(readLeadingByte(a, AttrType.RequestedTransport), Transport.UDP);
  t.equal(readLeadingByte(a, AttrType.RequestedAddressFamily), Family.IPv6);
  t.equal(readUint32(a, AttrType.Lifetime), 1200);
  t.same(readBytes(a, AttrType.ReservationToken), token);
  const dual = decoded(
    buildRequest(Method.Allocate, (w) => addAllocateAttributes(w, { additionalIPv6: true })),
  );
  t.equal(readLeadingByte(dual, AttrType.AdditionalAddressFamily), Family.IPv6);

  const r = decoded(buildRequest(Method.Refresh, refreshBody(0, 4)));
  t.same(
    [readUint32(r, AttrType.Lifetime), readLeadingByte(r, AttrType.RequestedAddressFamily)],
    [0, Family.IPv4],
  );
  t.same(types(decoded(buildRequest(Method.Refresh, refreshBody(600)))), [AttrType.Lifetime]);

  const p = decoded(
    buildRequest(
      Method.CreatePermission,
      permissionBody([{ address: '192.0.2.1' }, { address: '2001:db8::1', port: 9 }]),
    ),
  );
  t.same(readAddresses(p, AttrType.XorPeerAddress), [
    { family: Family.IPv4, address: '192.0.2.1', port: 0 },
    { family: Family.IPv6, address: '2001:db8::1', port: 9 },
  ]);

  const c = decoded(
    buildRequest(Method.ChannelBind, channelBindBody(0x4001, { address: '192.0.2.2', port: 5000 })),
  );
  t.equal(readChannelNumber(c), 0x4001);
  t.same(readAddress(c, AttrType.XorPeerAddress), { family: Family.IPv4, address: '192.0.2.2', port: 5000 });
});

t.test('SHA-256 signature: USERHASH, PASSWORD-ALGORITHMS echoed, MESSAGE-INTEGRITY-SHA256', async (t) => {
  const offered = Buffer.from('0002000000010000', 'hex'); // SHA-256, MD5: as the server sent it
  const key = longTermKey('alice', 'example.org', 'wonderland', 'sha256');
  const raw = buildRequest(Method.Refresh, refreshBody(600), {
    sign: {
      username: 'alice',
      realm: 'example.org',
      nonce: Buffer.from('obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA'),
      key,
      sha256: true,
      passwordAlgorithms: offered,
      userhash: true,
    },
    fingerprint: true,
  });
  const v = decoded(raw);
  t.same(types(v), [
    AttrType.Lifetime,
    AttrType.Userhash,
    AttrType.Nonce,
    AttrType.Realm,
    AttrType.PasswordAlgorithms,
    AttrType.PasswordAlgorithm,
    AttrType.MessageIntegritySha256,
    AttrType.Fingerprint,
  ]);
  t.same(readBytes(v, AttrType.Userhash), userHash('alice', 'example.org'));
  t.same(readBytes(v, AttrType.PasswordAlgorithms), offered, 'byte for byte');
  t.equal(readPasswordAlgorithm(v)?.algorithm, PasswordAlgorithm.SHA256);
  t.ok(verifyMessageIntegritySha256(v, key), 'MESSAGE-INTEGRITY-SHA256 verifies');
  t.ok(verifyFingerprint(v));
  t.equal(v.integrityAt, -1, 'no MESSAGE-INTEGRITY');
  t.equal(readString(v, AttrType.Realm), 'example.org');
  t.equal(userHash('alice', 'example.org').length, 32);
});

t.test('responses: error code and reason; Allocate success fields', async (t) => {
  const err = new StunWriter()
    .start(Method.Allocate, Class.Error, TID)
    .addErrorCode(486, 'Allocation Quota Reached');
  const e = err.finish();
  t.match(toResponse(e, decoded(e)), {
    ok: false,
    code: 486,
    reason: 'Allocation Quota Reached',
    integrity: undefined,
  });
  const bare = new StunWriter().start(Method.Allocate, Class.Error, TID).finish();
  t.equal(toResponse(bare, decoded(bare)).code, 0, 'an error without ERROR-CODE');

  const w = new StunWriter().start(Method.Allocate, Class.Success, TID);
  w.addAddress(AttrType.XorRelayedAddress, '203.0.113.4', 50000, true);
  w.addAddress(AttrType.XorRelayedAddress, '2001:db8::4', 50002, true);
  w.addAddress(AttrType.XorMappedAddress, '198.51.100.9', 3333, true);
  w.addUint32(AttrType.Lifetime, 600);
  w.addBytes(AttrType.ReservationToken, Buffer.alloc(8, 7));
  w.addAddressErrorCode(Family.IPv6, 440);
  const s = readAllocateSuccess(decoded(w.finish()));
  t.same(s, {
    relayedAll: [
      { family: Family.IPv4, address: '203.0.113.4', port: 50000 },
      { family: Family.IPv6, address: '2001:db8::4', port: 50002 },
    ],
    mapped: { family: Family.IPv4, address: '198.51.100.9', port: 3333 },
    lifetimeSec: 600,
    reservationToken: Buffer.alloc(8, 7),
    addressError: { family: Family.IPv6, code: 440 },
  });
  const empty = readAllocateSuccess(
    decoded(new StunWriter().start(Method.Allocate, Class.Success, TID).finish()),
  );
  t.same(empty, {
    relayedAll: [],
    mapped: undefined,
    lifetimeSec: undefined,
    reservationToken: undefined,
    addressError: undefined,
  });
});

t.test('ChannelData', async (t) => {
  const data = Buffer.from('abcde');
  const udp = encodeChannelData(0x4000, data, false);
  const stream = encodeChannelData(0x4000, data, true);
  t.equal(udp.length, 9);
  t.equal(stream.length, 12, 'padded to 4 over streams');
  t.same(decodeChannelData(udp), { channel: 0x4000, data });
  t.same(decodeChannelData(stream), { channel: 0x4000, data }, 'padding is not data');
  t.same(decodeChannelData(encodeChannelData(0x7ffe, data, false))?.channel, 0x7ffe, 'RFC 5766 range');
  t.equal(decodeChannelData(udp.subarray(0, 8)), undefined, 'shorter than its length field');
  t.equal(decodeChannelData(Buffer.from([0x40, 0])), undefined, 'shorter than a header');
  t.equal(decodeChannelData(Buffer.from([0x80, 0, 0, 0])), undefined, 'not a channel');
  t.same(decodeChannelData(encodeChannelData(0x4fff, Buffer.alloc(0), false)), {
    channel: 0x4fff,
    data: Buffer.alloc(0),
  });
});
