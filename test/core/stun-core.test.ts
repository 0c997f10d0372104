import t from 'tap';
import { AttrType, Class, Method } from '../../src/core/constants.js';
import { readAddress, readErrorCode, readString, readUnknownAttributes } from '../../src/core/stun/attrs.js';
import { decodeStun, type StunView } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { verifyFingerprint } from '../../src/core/stun/integrity.js';
import type { StunCore } from '../../src/core/stun-core.js';
import { handleOnce, stunOnlyCore } from '../fixtures/helpers/core-endpoint.js';

const tid = Buffer.from('a1a2a3a4a5a6a7a8a9aaabac', 'hex');
const core = stunOnlyCore({ software: undefined });

function answer(c: StunCore, req: Buffer, address = '192.0.2.33', port = 40000): StunView | null {
  const out = handleOnce(c, req, address, port);
  if (out === null) return null;
  const r = decodeStun(out);
  if (!r.ok) throw new Error(r.reason);
  return r.view;
}

t.test('Binding request → success with XOR-MAPPED-ADDRESS, same transaction ID, minimal size', async (t) => {
  const req = new StunWriter().start(Method.Binding, Class.Request, tid).finish();
  const out = handleOnce(core, req, '192.0.2.33', 40000)!;
  t.equal(out.length, 32, '20-byte header + 12-byte XOR-MAPPED-ADDRESS, nothing else');
  const v = answer(core, req)!;
  t.equal(v.cls, Class.Success);
  t.equal(v.method, Method.Binding);
  t.same(v.transactionId, tid);
  t.same(readAddress(v, AttrType.XorMappedAddress), { family: 1, address: '192.0.2.33', port: 40000 });
  t.equal(v.fingerprintAt, -1, 'no FINGERPRINT when the request had none');
  const v6 = answer(core, req, '2001:db8::7', 1)!;
  t.same(readAddress(v6, AttrType.XorMappedAddress), { family: 2, address: '2001:db8::7', port: 1 });
  const mapped = answer(core, req, '::ffff:192.0.2.9', 2)!;
  t.same(readAddress(mapped, AttrType.XorMappedAddress), { family: 1, address: '192.0.2.9', port: 2 });
});

t.test('FINGERPRINT is echoed when the request carried one; a bad one is dropped', async (t) => {
  const req = new StunWriter().start(Method.Binding, Class.Request, tid).addFingerprint().finish();
  const v = answer(core, req)!;
  t.ok(v.fingerprintAt > 0);
  t.ok(verifyFingerprint(v));
  const bad = Buffer.from(req);
  bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 1, bad.length - 1);
  t.equal(handleOnce(core, bad, '192.0.2.1', 1), null);
});

t.test('SOFTWARE only when configured', async (t) => {
  const c = stunOnlyCore({ software: 'turnpike' });
  const v = answer(c, new StunWriter().start(Method.Binding, Class.Request, tid).finish())!;
  t.equal(readString(v, AttrType.Software), 'turnpike');
});

t.test('unknown comprehension-required attributes → 420 with UNKNOWN-ATTRIBUTES', async (t) => {
  const req = new StunWriter()
    .start(Method.Binding, Class.Request, tid)
    .addBytes(0x0003, Buffer.alloc(4))
    .addBytes(0x8123, Buffer.alloc(4))
    .finish();
  const v = answer(core, req)!;
  t.equal(v.cls, Class.Error);
  t.same(readErrorCode(v), { code: 420, reason: '' });
  t.same(readUnknownAttributes(v), [0x0003]);
});

t.test('ICE attributes in a Binding request are understood', async (t) => {
  const req = new StunWriter()
    .start(Method.Binding, Class.Request, tid)
    .addUint32(AttrType.Priority, 1)
    .addFlag(AttrType.UseCandidate)
    .addBytes(AttrType.IceControlling, Buffer.alloc(8))
    .finish();
  t.equal(answer(core, req)!.cls, Class.Success);
});

t.test('indications, responses, malformed bytes and other methods', async (t) => {
  const c = stunOnlyCore({ software: undefined });
  t.equal(
    handleOnce(c, new StunWriter().start(Method.Binding, Class.Indication, tid).finish(), '192.0.2.1', 1),
    null,
  );
  t.equal(c.stats.bindingIndications, 1);
  t.equal(
    handleOnce(c, new StunWriter().start(Method.Binding, Class.Success, tid).finish(), '192.0.2.1', 1),
    null,
  );
  t.equal(
    handleOnce(c, new StunWriter().start(Method.Binding, Class.Error, tid).finish(), '192.0.2.1', 1),
    null,
  );
  t.equal(handleOnce(c, Buffer.from('not stun at all, not at all'), '192.0.2.1', 1), null);
  t.equal(c.stats.droppedMalformed, 1);
  const other = answer(c, new StunWriter().start(0x0abc, Class.Request, tid).finish())!;
  t.same(readErrorCode(other)?.code, 400);
  t.equal(c.stats.errorResponses.get(400), 1);
});

t.test(
  'a request with more attributes than the index holds → 400; such an indication is dropped',
  async (t) => {
    const c = stunOnlyCore({ software: undefined });
    const w = new StunWriter(2048).start(Method.Binding, Class.Request, Buffer.alloc(12, 7));
    for (let i = 0; i < 60; i++) w.addFlag(0x8100 + i);
    const res = answer(c, w.finish());
    t.ok(res, 'answered');
    t.equal(res?.cls, Class.Error);
    t.equal(res === null ? undefined : readErrorCode(res)?.code, 400);
    t.same(res?.buf.subarray(8, 20), Buffer.alloc(12, 7), 'same transaction ID');
    const ind = new StunWriter(2048).start(Method.Binding, Class.Indication, Buffer.alloc(12, 7));
    for (let i = 0; i < 60; i++) ind.addFlag(0x8100 + i);
    t.equal(handleOnce(c, ind.finish(), '192.0.2.33', 40000), null, 'indication dropped');
  },
);
