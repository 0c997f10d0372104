import t from 'tap';
import { channelDataLength, encodeChannelData, streamPadding } from '../../src/core/channel-data.js';
import { AttrType, Class, Method } from '../../src/core/constants.js';
import { classify, PacketKind } from '../../src/core/demux.js';
import { StreamFramer } from '../../src/core/stream-framer.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { Rng } from '../fixtures/helpers/random.js';

const tid = Buffer.alloc(12, 1);
const stun = new StunWriter()
  .start(Method.Binding, Class.Request, tid)
  .addString(AttrType.Software, 'abc')
  .finish();
const chan = encodeChannelData(0x4000, Buffer.from('hello'), true); // 4 + 5 + 3 pad

function collect(
  framer: StreamFramer,
  chunks: Buffer[],
): { frames: Array<[number, string]>; error: string | null } {
  const frames: Array<[number, string]> = [];
  let error: string | null = null;
  for (const c of chunks) {
    error = framer.push(c, (f, k) => frames.push([k, f.toString('hex')]));
    if (error) break;
  }
  return { frames, error };
}

t.test('demux by first byte (RFC 7983)', async (t) => {
  t.equal(classify(0), PacketKind.Stun);
  t.equal(classify(3), PacketKind.Stun);
  t.equal(classify(4), PacketKind.Other);
  t.equal(classify(63), PacketKind.Other);
  t.equal(classify(64), PacketKind.ChannelData);
  t.equal(classify(79), PacketKind.ChannelData);
  t.equal(classify(80), PacketKind.Other);
  t.equal(classify(0x16), PacketKind.Other, 'TLS/DTLS record');
});

t.test('ChannelData helpers', async (t) => {
  t.equal(chan.length, 12);
  t.same(chan.subarray(9), Buffer.alloc(3), 'zero padding');
  t.equal(channelDataLength(chan), 5);
  t.equal(channelDataLength(encodeChannelData(0x3fff, Buffer.alloc(1), false)), -1, 'channel below range');
  t.equal(channelDataLength(encodeChannelData(0x5000, Buffer.alloc(1), false)), -1, 'channel above range');
  t.equal(channelDataLength(chan.subarray(0, 8)), -1, 'shorter than its length');
  t.equal(channelDataLength(Buffer.alloc(2)), -1);
  t.same([0, 1, 2, 3, 4, 5].map(streamPadding), [0, 3, 2, 1, 0, 3]);
});

t.test('frames split at every byte boundary come out whole, padding stripped', async (t) => {
  const stream = Buffer.concat([stun, chan, stun, encodeChannelData(0x4fff, Buffer.alloc(0), true)]);
  const expected = [
    [PacketKind.Stun, stun.toString('hex')],
    [PacketKind.ChannelData, chan.subarray(0, 9).toString('hex')],
    [PacketKind.Stun, stun.toString('hex')],
    [PacketKind.ChannelData, '4fff0000'],
  ];
  for (let cut = 0; cut <= stream.length; cut++) {
    const r = collect(new StreamFramer(65540), [stream.subarray(0, cut), stream.subarray(cut)]);
    t.same(r, { frames: expected, error: null }, `cut at ${cut}`);
  }
  const rng = new Rng(7);
  for (let round = 0; round < 200; round++) {
    const chunks: Buffer[] = [];
    for (let off = 0; off < stream.length; ) {
      const n = 1 + rng.int(7);
      chunks.push(stream.subarray(off, off + n));
      off += n;
    }
    t.same(collect(new StreamFramer(65540), chunks).frames, expected);
  }
});

t.test('buffered reports a message in progress', async (t) => {
  const f = new StreamFramer(65540);
  t.equal(
    f.push(stun.subarray(0, 10), () => {}),
    null,
  );
  t.equal(f.buffered, 10);
  t.equal(
    f.push(stun.subarray(10), () => {}),
    null,
  );
  t.equal(f.buffered, 0);
  f.push(Buffer.from([0x40]), () => {});
  t.equal(f.buffered, 1);
  f.reset();
  t.equal(f.buffered, 0);
});

t.test('garbage, oversize and bad STUN lengths close the stream', async (t) => {
  t.equal(collect(new StreamFramer(65540), [Buffer.from('POST / HTTP/1.1\r\n')]).error, 'garbage');
  t.equal(
    collect(new StreamFramer(65540), [Buffer.from('160301020001', 'hex')]).error,
    'garbage',
    'TLS record',
  );
  // "GET " starts like ChannelData 0x4745 of 21536 bytes: it waits, and the shell's frame timeout closes it.
  t.equal(collect(new StreamFramer(65540), [Buffer.from('GET / HTTP/1.1\r\n')]).error, null);
  t.equal(
    collect(new StreamFramer(100), [encodeChannelData(0x4000, Buffer.alloc(200), true)]).error,
    'too-large',
  );
  t.equal(
    collect(new StreamFramer(100), [Buffer.from([0x40, 0x00, 0xff])]).error,
    null,
    'needs 4 bytes to judge',
  );
  t.equal(
    collect(new StreamFramer(100), [Buffer.from([0x40, 0x00, 0xff]), Buffer.from([0xff])]).error,
    'too-large',
  );
  const bad = Buffer.from(stun);
  bad.writeUInt16BE(5, 2);
  t.equal(collect(new StreamFramer(65540), [bad]).error, 'bad-length');
  const r = collect(new StreamFramer(65540), [Buffer.concat([stun, Buffer.from([0x99, 0, 0, 0])])]);
  t.equal(r.frames.length, 1, 'messages before the garbage are delivered');
  t.equal(r.error, 'garbage');
});

t.test(
  'stop() inside a frame callback: nothing more is framed; the rest of the read is handed back as is',
  async (t) => {
    // RFC 6062 §5.4: after a ConnectionBind the connection carries raw bytes, garbage for the framer.
    const raw = Buffer.from('GET / raw bytes that are not STUN');
    const f = new StreamFramer(65540);
    const seen: number[] = [];
    t.equal(
      f.push(Buffer.concat([stun, raw]), (frame) => {
        seen.push(frame.length);
        f.stop();
      }),
      null,
    );
    t.same(seen, [stun.length], 'only the message that stopped it');
    t.same(f.takeRest(), raw);
    t.equal(f.takeRest(), undefined, 'once');
    t.equal(
      f.push(Buffer.from([0x99]), () => t.fail('no frame after stop')),
      null,
      'later reads are ignored',
    );
    // Stopped at the end of a read: no rest.
    const g = new StreamFramer(65540);
    g.push(stun, () => g.stop());
    t.equal(g.takeRest(), undefined);
  },
);
