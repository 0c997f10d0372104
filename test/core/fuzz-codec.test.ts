import t from 'tap';
import { AttrType, Class, Method } from '../../src/core/constants.js';
import {
  readAddressAt,
  readErrorCode,
  readPasswordAlgorithms,
  readUnknownAttributes,
} from '../../src/core/stun/attrs.js';
import { decodeStun, decodeStunInto, StunView } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import {
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../../src/core/stun/integrity.js';
import { handleOnce, stunOnlyCore } from '../fixtures/helpers/core-endpoint.js';
import { Rng } from '../fixtures/helpers/random.js';

const METHODS = Object.values(Method);
const CLASSES = Object.values(Class);

interface RawMessage {
  method: number;
  cls: number;
  tid: Buffer;
  attrs: Array<{ type: number; value: Buffer }>;
}

function randomMessage(rng: Rng): RawMessage {
  const attrs: RawMessage['attrs'] = [];
  const n = rng.int(12);
  for (let i = 0; i < n; i++) {
    // Integrity and fingerprint types have positional rules; keep them out of the random body.
    let type = rng.next() & 0xffff;
    if (
      type === AttrType.MessageIntegrity ||
      type === AttrType.MessageIntegritySha256 ||
      type === AttrType.Fingerprint
    )
      type = AttrType.Software;
    attrs.push({ type, value: rng.bytes(rng.int(40)) });
  }
  return { method: rng.pick(METHODS), cls: rng.pick(CLASSES), tid: rng.bytes(12), attrs };
}

function encode(m: RawMessage): Buffer {
  const w = new StunWriter().start(m.method, m.cls, m.tid);
  for (const a of m.attrs) w.addBytes(a.type, a.value);
  return w.finish();
}

/** Exercises every reader on a view; none may throw. */
function touch(v: StunView): void {
  for (let i = 0; i < v.attrCount; i++) readAddressAt(v, i, (i & 1) === 0);
  readErrorCode(v);
  readUnknownAttributes(v);
  readPasswordAlgorithms(v);
  verifyFingerprint(v);
  verifyMessageIntegrity(v, Buffer.from('k'));
  verifyMessageIntegritySha256(v, Buffer.from('k'));
}

t.test('decode(encode(x)) == x for random messages', async (t) => {
  const rng = new Rng(0x5eed);
  let checked = 0;
  for (let i = 0; i < 3000; i++) {
    const m = randomMessage(rng);
    const r = decodeStun(encode(m));
    if (!r.ok) {
      t.fail(`round ${i}: ${r.reason}`);
      continue;
    }
    const v = r.view;
    const back: RawMessage = {
      method: v.method,
      cls: v.cls,
      tid: Buffer.from(v.transactionId),
      attrs: Array.from({ length: v.attrCount }, (_, k) => ({
        type: v.attrType[k]!,
        value: Buffer.from(v.value(k)),
      })),
    };
    if (JSON.stringify(back) !== JSON.stringify(m)) t.fail(`round ${i} differs`);
    else checked++;
  }
  t.equal(checked, 3000);
});

t.test('random and mutated bytes never throw, in decoder, readers or the Binding service', async (t) => {
  const rng = new Rng(0xf00d);
  const view = new StunView();
  const core = stunOnlyCore({ software: undefined });
  const seeds = Array.from({ length: 50 }, () => {
    const m = randomMessage(rng);
    m.method = Method.Binding;
    m.cls = Class.Request;
    const w = new StunWriter().start(m.method, m.cls, m.tid);
    for (const a of m.attrs) w.addBytes(a.type, a.value);
    if (rng.int(2)) w.addMessageIntegrity(Buffer.from('k'));
    if (rng.int(2)) w.addFingerprint();
    return w.finish();
  });
  let decoded = 0;
  for (let i = 0; i < 60000; i++) {
    let buf: Buffer;
    if (i % 3 === 0) {
      buf = rng.bytes(rng.int(120));
      if (buf.length >= 8 && rng.int(2)) buf.writeUInt32BE(0x2112a442, 4);
    } else {
      buf = Buffer.from(rng.pick(seeds));
      const flips = 1 + rng.int(4);
      for (let k = 0; k < flips; k++) buf[rng.int(buf.length)] = rng.next() & 0xff;
      if (rng.int(8) === 0) buf = buf.subarray(0, rng.int(buf.length + 1));
    }
    if (decodeStunInto(buf, view) === null) {
      decoded++;
      touch(view);
    }
    handleOnce(core, buf, i & 1 ? '192.0.2.1' : '2001:db8::1', 1 + (i % 65535));
  }
  t.ok(decoded > 1000, `some mutated messages still decode (${decoded})`);
});
