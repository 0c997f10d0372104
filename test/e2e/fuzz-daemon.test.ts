/**
 * Fuzzing a running daemon: 50 000 random datagrams, 60 000 mutated Binding requests and a few
 * hundred garbage TCP streams. The daemon must not crash or log a fatal error, must answer no
 * garbage, and must answer mutated requests only where the request is still valid.
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import t from 'tap';
import { Class, Method } from '../../src/core/constants.js';
import { decodeStun } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { assertHealthy } from '../fixtures/helpers/assertions.js';
import { handleOnce, stunOnlyCore } from '../fixtures/helpers/core-endpoint.js';
import { startDaemon } from '../fixtures/helpers/daemon.js';
import { Rng } from '../fixtures/helpers/random.js';
import { bindingRequest, udpRequest } from '../fixtures/helpers/stun-client.js';
import { sleep } from '../fixtures/helpers/turn-client.js';

const GARBAGE = 50_000;
const MUTATED = 60_000;
const STREAMS = 300;
/** How long a garbage stream may stay open: well past the 1 s frame and 2 s idle timeouts below. */
const STREAM_DEADLINE_MS = 10_000;

async function openSocket(): Promise<{ sock: Socket; responses: Buffer[] }> {
  const sock = createSocket('udp4');
  const responses: Buffer[] = [];
  sock.on('message', (m) => responses.push(m));
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  sock.setRecvBufferSize(4 * 1024 * 1024);
  return { sock, responses };
}

/** Sends all datagrams, 100 at a time with a pause, so loopback drops few of them (the machine may be busy). */
async function blast(sock: Socket, port: number, datagrams: Buffer[]): Promise<void> {
  for (let i = 0; i < datagrams.length; i += 100) {
    const batch = datagrams.slice(i, i + 100);
    await Promise.all(
      batch.map((d) => new Promise<void>((resolve) => sock.send(d, port, '127.0.0.1', () => resolve()))),
    );
    await sleep(3);
  }
  await sleep(300);
}

t.test('daemon survives fuzzing and answers nothing but valid requests', async (t) => {
  // No rate limit on error responses here: the in-process oracle below answers every 420 too.
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--tcp-frame-timeout',
    '1',
    '--tcp-idle-timeout',
    '2',
    '--unauthorized-ratelimit-rps',
    '0',
  ]);
  t.teardown(() => d.stop());
  const rng = new Rng(0xc0ffee);

  // 1. Random datagrams that are not STUN (checked with our own decoder before sending).
  const garbage: Buffer[] = [];
  while (garbage.length < GARBAGE) {
    const b = rng.bytes(1 + rng.int(200));
    if (rng.int(2) && b.length >= 8) b.writeUInt32BE(0x2112a442, 4); // cookie present, rest random
    if (rng.int(3) === 0) b[0] = rng.int(4); // STUN-looking first byte
    if (!decodeStun(b).ok) garbage.push(b);
  }
  const g = await openSocket();
  await blast(g.sock, d.port, garbage);
  t.equal(g.responses.length, 0, `no answer to ${GARBAGE} garbage datagrams`);
  g.sock.close();

  // 2. Mutated valid requests; an in-process core tells which ones deserve an answer.
  const oracle = stunOnlyCore({ software: undefined });
  const mutated: Buffer[] = [];
  const answerable = new Set<string>();
  for (let i = 0; i < MUTATED; i++) {
    const w = new StunWriter().start(Method.Binding, Class.Request, rng.bytes(12));
    const attrs = rng.int(4);
    for (let k = 0; k < attrs; k++)
      w.addBytes(rng.int(2) ? 0x8000 | rng.int(0x7fff) : rng.int(0x40), rng.bytes(rng.int(24)));
    if (rng.int(2)) w.addFingerprint();
    const b = w.finish();
    const flips = rng.int(4);
    for (let k = 0; k < flips; k++) b[rng.int(b.length)] = rng.next() & 0xff;
    mutated.push(b);
    if (handleOnce(oracle, b, '127.0.0.1', 1) !== null) answerable.add(b.subarray(8, 20).toString('hex'));
  }
  const m = await openSocket();
  await blast(m.sock, d.port, mutated);
  const unexpected = m.responses.filter((r) => !answerable.has(r.subarray(8, 20).toString('hex')));
  t.equal(unexpected.length, 0, 'every answer belongs to a request that deserved one');
  t.ok(
    m.responses.length >= answerable.size * 0.8,
    `answered ${m.responses.length} of ${answerable.size} valid requests`,
  );
  t.ok(answerable.size > 1000 && answerable.size < MUTATED, 'the mutations produced both kinds');
  m.sock.close();

  // 3. Garbage TCP streams: closed by the server within the deadline, never answered.
  let answeredBytes = 0;
  const closedByServer = await Promise.all(
    Array.from({ length: STREAMS }, (_, i) => {
      return new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: d.port });
        let connected = false;
        // Still open at the deadline: we close it ourselves, and it does not count as closed.
        const deadline = setTimeout(() => {
          resolve(false);
          s.destroy();
        }, STREAM_DEADLINE_MS);
        s.on('data', (b: Buffer) => {
          answeredBytes += b.length;
        });
        s.on('error', () => {});
        s.on('close', () => {
          clearTimeout(deadline);
          resolve(connected);
        });
        s.on('connect', () => {
          connected = true;
          const junk = rng.bytes(1 + rng.int(3000));
          if (i % 3 === 0)
            junk[0] = 0x80 + rng.int(0x80); // not STUN, not ChannelData: closed at once
          else if (i % 3 === 1)
            junk[0] = 0x40 + rng.int(16); // looks like ChannelData: framed, then judged
          else junk[0] = rng.int(4); // looks like STUN: bad length or stalls, then closed
          s.write(junk);
        });
      });
    }),
  );
  t.equal(
    closedByServer.filter(Boolean).length,
    STREAMS,
    `every garbage stream was closed by the server within ${STREAM_DEADLINE_MS} ms`,
  );
  t.equal(answeredBytes, 0, 'no bytes answered to garbage streams');

  // The daemon is alive, healthy and logged nothing fatal.
  const { view } = await udpRequest('127.0.0.1', d.port, bindingRequest());
  t.equal(view.cls, Class.Success);
  assertHealthy(t, d);
  t.equal(await d.stop(), 0);
});
