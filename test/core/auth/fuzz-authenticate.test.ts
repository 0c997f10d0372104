/**
 * Property tests: random mutations of valid authenticated requests never make `authenticate` throw,
 * and never authenticate unless every byte covered by the verified integrity attribute is unchanged
 * (the header's length field aside: the HMAC input rewrites it). Seeded, so failures reproduce.
 */
import { createHmac } from 'node:crypto';
import t from 'tap';
import { Authenticator, type AuthOptions } from '../../../src/core/auth/authenticate.js';
import { userHash } from '../../../src/core/auth/credentials.js';
import { AttrType, Class, ErrorCode, Method, PasswordAlgorithm } from '../../../src/core/constants.js';
import { readString } from '../../../src/core/stun/attrs.js';
import { decodeStun } from '../../../src/core/stun/decode.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import { longTermKey } from '../../../src/core/stun/integrity.js';
import {
  buildRequest,
  type RequestSpec,
  SERVER_ALGORITHMS,
  TID,
  view,
} from '../../fixtures/helpers/auth-requests.js';
import { Rng } from '../../fixtures/helpers/random.js';

const REALM = 'example.org';
const NOW = 1_700_000_000;
const IP = '203.0.113.9';
const PORT = 41000;

const OPTIONS: AuthOptions = {
  realm: REALM,
  users: ['alice:wonderland'],
  useAuthSecret: true,
  staticAuthSecrets: ['s1', 's2'],
  staleNonceSec: 600,
  nonceSecret: Buffer.alloc(32, 3),
};

function nonceFor(auth: Authenticator, offer: boolean): string {
  const w = new StunWriter().start(Method.Allocate, Class.Error, TID).addErrorCode(ErrorCode.Unauthorized);
  auth.addChallenge(w, IP, PORT, NOW, offer);
  return readString(view(w.finish()), AttrType.Nonce) ?? '';
}

/** End of the integrity attribute `authenticate` verifies (MI-SHA256 when present, else MI). */
function coveredEnd(buf: Buffer): number {
  const v = view(buf);
  const at = v.integritySha256At >= 0 ? v.integritySha256At : v.integrityAt;
  return at + 4 + buf.readUInt16BE(at + 2);
}

function mutate(rng: Rng, orig: Buffer): Buffer {
  let b = Buffer.from(orig);
  const ops = 1 + rng.int(3);
  for (let k = 0; k < ops; k++) {
    switch (rng.int(7)) {
      case 0: // flip one bit
        if (b.length > 0) b[rng.int(b.length)]! ^= 1 << rng.int(8);
        break;
      case 1: // overwrite one byte
        if (b.length > 0) b[rng.int(b.length)] = rng.int(256);
        break;
      case 2: // truncate
        b = b.subarray(0, rng.int(b.length + 1));
        break;
      case 3: // append a whole random attribute (keeps the framing valid more often)
        b = Buffer.concat([b, Buffer.from([rng.int(256), rng.int(256), 0, 4]), rng.bytes(4)]);
        break;
      case 4: {
        // insert or delete 4 bytes somewhere after the header
        const at = 20 + rng.int(Math.max(1, b.length - 19));
        b = rng.int(2)
          ? Buffer.concat([b.subarray(0, at), rng.bytes(4), b.subarray(at)])
          : Buffer.concat([b.subarray(0, at), b.subarray(at + 4)]);
        break;
      }
      case 5: // hit the last 12 bytes (often FINGERPRINT or the end of an integrity value)
        if (b.length > 12) b[b.length - 1 - rng.int(12)] = rng.int(256);
        break;
      default: // hit an attribute header (type or length)
        if (b.length > 24) b[20 + rng.int(Math.min(b.length - 20, 120))] = rng.int(256);
        break;
    }
  }
  // Usually make the header length agree with the bytes, so that mutations get past the decoder.
  if (b.length >= 20 && rng.int(4) !== 0) b.writeUInt16BE((b.length - 20) & 0xffff, 2);
  return b;
}

t.test(
  'mutated authenticated requests never throw and never authenticate when covered bytes change',
  async (t) => {
    const auth = new Authenticator(OPTIONS);
    const cookie = nonceFor(auth, true);
    const plain = nonceFor(auth, false);
    const rest = `${NOW + 600}:fuzz`;
    const restPw = createHmac('sha1', 's2').update(rest).digest('base64');
    const specs: Array<[string, RequestSpec]> = [
      [
        'RFC 5389 MD5',
        {
          username: 'alice',
          realm: REALM,
          nonce: plain,
          mi: longTermKey('alice', REALM, 'wonderland'),
          fingerprint: true,
        },
      ],
      [
        'SHA-256 + USERHASH',
        {
          userhash: userHash('alice', REALM),
          realm: REALM,
          nonce: cookie,
          algorithms: SERVER_ALGORITHMS,
          algorithm: PasswordAlgorithm.SHA256,
          miSha256: longTermKey('alice', REALM, 'wonderland', 'sha256'),
          fingerprint: true,
        },
      ],
      [
        'MI + MI-SHA256',
        {
          username: 'alice',
          realm: REALM,
          nonce: cookie,
          algorithms: SERVER_ALGORITHMS,
          algorithm: PasswordAlgorithm.SHA256,
          mi: longTermKey('alice', REALM, 'wonderland', 'sha256'),
          miSha256: longTermKey('alice', REALM, 'wonderland', 'sha256'),
        },
      ],
      [
        'REST',
        {
          username: rest,
          realm: REALM,
          nonce: plain,
          mi: longTermKey(rest, REALM, restPw),
          fingerprint: true,
        },
      ],
    ];

    const rng = new Rng(0x5eed_a117);
    for (const [name, spec] of specs) {
      const orig = buildRequest(spec);
      t.equal(auth.authenticate(view(orig), IP, PORT, NOW).ok, true, `${name}: original authenticates`);
      let decoded = 0;
      let authenticated = 0;
      let violations = 0;
      let throws = 0;
      for (let i = 0; i < 3000; i++) {
        const m = mutate(rng, orig);
        const d = decodeStun(m);
        if (!d.ok) continue;
        decoded++;
        let ok = false;
        try {
          ok = auth.authenticate(d.view, IP, PORT, NOW).ok;
          auth.authenticate(d.view, IP, PORT + 1, NOW + 1000);
        } catch {
          throws++;
          continue;
        }
        if (!ok) continue;
        authenticated++;
        // Covered bytes: those under the integrity attribute that was verified in the mutant. (Turning
        // MI-SHA256 into something else leaves a valid MI over the same, unchanged, prefix.)
        const end = coveredEnd(m);
        const same =
          end <= orig.length &&
          m.readUInt16BE(0) === orig.readUInt16BE(0) &&
          m.subarray(4, end).equals(orig.subarray(4, end));
        if (!same) violations++;
      }
      t.equal(throws, 0, `${name}: never throws`);
      t.equal(violations, 0, `${name}: never authenticates a change to covered bytes`);
      t.ok(decoded > 500, `${name}: mutations reach authenticate (${decoded})`);
      t.ok(
        authenticated > 0,
        `${name}: uncovered-byte changes still authenticate (${authenticated}), so the check is live`,
      );
    }
  },
);

t.test('random credential-shaped messages never throw', async (t) => {
  const auth = new Authenticator(OPTIONS);
  const cookie = Buffer.from(nonceFor(auth, true));
  const types = [
    AttrType.Username,
    AttrType.Userhash,
    AttrType.Realm,
    AttrType.Nonce,
    AttrType.PasswordAlgorithm,
    AttrType.PasswordAlgorithms,
    AttrType.Software,
  ];
  const rng = new Rng(77);
  let throws = 0;
  let ok = 0;
  for (let i = 0; i < 3000; i++) {
    const w = new StunWriter().start(Method.Refresh, Class.Request, rng.bytes(12));
    const n = rng.int(8);
    for (let k = 0; k < n; k++) {
      const type = rng.pick(types);
      const value =
        type === AttrType.Nonce && rng.int(2)
          ? cookie
          : type === AttrType.Realm && rng.int(2)
            ? Buffer.from(REALM)
            : rng.bytes(rng.int(rng.int(4) === 0 ? 600 : 40));
      w.addBytes(type, value);
    }
    const key = rng.bytes(16);
    if (rng.int(2)) w.addMessageIntegrity(key);
    if (rng.int(2)) w.addMessageIntegritySha256(key);
    const d = decodeStun(w.finish());
    if (!d.ok) continue;
    try {
      if (auth.authenticate(d.view, IP, PORT, NOW).ok) ok++;
    } catch {
      throws++;
    }
  }
  t.equal(throws, 0, 'never throws');
  t.equal(ok, 0, 'random keys never authenticate');
});
