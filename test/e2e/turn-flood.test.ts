/**
 * A flood of unauthenticated Allocate requests (200 sockets × 250 requests, all from 127.0.0.1,
 * each with a new transaction ID) against a running daemon. Nothing is stored per unauthenticated
 * request (stateless nonces), so memory stays flat; the 401 answers go through the per-source-IP
 * rate limit (unauthorized-ratelimit-rps, default 10/s with a burst of 20), so the flood gets back
 * a tiny fraction of what it sends. Meanwhile a client from another source address is served at
 * once, and afterwards a client from the flooding address is served too.
 */
import { createSocket, type Socket } from 'node:dgram';
import t from 'tap';
import { AttrType, Class, Method, Transport } from '../../src/core/constants.js';
import { readErrorCode } from '../../src/core/stun/attrs.js';
import { decodeStun } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { assertHealthy } from '../fixtures/helpers/assertions.js';
import { aliceOnLoopback, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { sample, scrape } from '../fixtures/helpers/prometheus.js';
import { Rng } from '../fixtures/helpers/random.js';
import { bindingRequest, udpRequest } from '../fixtures/helpers/stun-client.js';
import { freeUdpRange, rssKiB, sleep, TurnClient } from '../fixtures/helpers/turn-client.js';

const SOCKETS = 200;
const PER_SOCKET = 250;
const REQUESTS = SOCKETS * PER_SOCKET;
/** The daemon's default unauthorized-ratelimit-rps, and its burst (twice the rate). */
const RATE = 10;
const BURST = 2 * RATE;
const REALM = 'example.test';
const ALICE = { username: 'alice', password: 'wonderland', realm: REALM };

/**
 * Most answers the flood may get within `windowMs` from its start: the bucket of 127.0.0.1 starts
 * with BURST tokens and refills at RATE per second (the warm-up and bystander clients spend the
 * buckets of 127.0.0.8 and 127.0.0.9).
 */
function limit(windowMs: number): number {
  return BURST + Math.ceil((RATE * windowMs) / 1000) + 1;
}

function allocateRequest(rng: Rng): Buffer {
  return new StunWriter(64)
    .start(Method.Allocate, Class.Request, rng.bytes(12))
    .addLeadingByte(AttrType.RequestedTransport, Transport.UDP)
    .finish();
}

t.test('unauthenticated Allocate flood: bounded memory, rate-limited answers', async (t) => {
  const relayStart = await freeUdpRange(1);
  const metricsPort = await freePort();
  const d = await startDaemon([
    '--prometheus',
    '--prometheus-port',
    String(metricsPort),
    ...aliceOnLoopback(REALM),
    '--min-port',
    String(relayStart),
    '--max-port',
    String(relayStart + 31),
  ]);
  t.teardown(() => d.stop());
  const pid = d.proc.pid!;
  const rng = new Rng(0xf100d);

  // Warm the daemon a little (one full TURN session) before the baseline.
  const warm = await TurnClient.connect('127.0.0.1', d.port, ALICE, { localAddress: '127.0.0.8' });
  t.teardown(() => warm.close());
  await warm.allocate();
  await sleep(300);
  const rssBefore = await rssKiB(pid);

  const sockets: Socket[] = [];
  let answers = 0;
  let answerBytes = 0;
  const codes = new Map<number, number>();
  for (let i = 0; i < SOCKETS; i++) {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    s.on('message', (m: Buffer) => {
      answers++;
      answerBytes += m.length;
      const v = decodeStun(m);
      const code = v.ok ? (readErrorCode(v.view)?.code ?? 0) : -1;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    });
    s.on('error', () => {});
    sockets.push(s);
  }
  t.teardown(() => {
    for (const s of sockets) s.close();
  });

  // During the flood: a client from another source address gets its 401 and allocates.
  const bystander = TurnClient.connect('127.0.0.1', d.port, ALICE, { localAddress: '127.0.0.9' }).then(
    async (c) => {
      t.teardown(() => c.close());
      await sleep(200);
      return c.allocate();
    },
  );

  let requestBytes = 0;
  const started = Date.now();
  for (let round = 0; round < PER_SOCKET; round++) {
    await Promise.all(
      sockets.map((s) => {
        const req = allocateRequest(rng);
        requestBytes += req.length;
        return new Promise<void>((resolve) => s.send(req, d.port, '127.0.0.1', () => resolve()));
      }),
    );
    await sleep(2);
  }
  const floodMs = Date.now() - started;
  const during = await bystander;
  await sleep(500);
  const rssAfter = await rssKiB(pid);
  const answered = answers;
  const metrics = await scrape(metricsPort);
  // Every answer counted so far, and every token the daemon spent, fell within this window.
  const windowMs = Date.now() - started;
  const seen = sample(metrics, 'turn_auth_challenges_total') ?? 0;
  const limited = sample(metrics, 'turn_packets_dropped_total', 'reason="rate_limit"') ?? 0;
  const amplification = answerBytes / requestBytes;
  t.comment(
    `flood: ${REQUESTS} requests (${requestBytes} bytes) from ${SOCKETS} ports in ${floodMs} ms; ` +
      `${answers} answers (${answerBytes} bytes), codes ${JSON.stringify(Object.fromEntries(codes))}`,
  );
  t.comment(
    `daemon counters: ${seen} unauthenticated requests seen, ${limited} answers suppressed by the rate limit`,
  );
  t.comment(`aggregate byte amplification: ${amplification.toFixed(5)} (answer bytes / request bytes)`);
  t.comment(
    `one 401 is ${answerBytes / Math.max(1, answers)} bytes for a ${requestBytes / REQUESTS}-byte request`,
  );
  t.comment(
    `daemon RSS: before ${(rssBefore / 1024).toFixed(1)} MiB, after ${(rssAfter / 1024).toFixed(1)} MiB`,
  );

  t.ok(
    seen >= 0.5 * REQUESTS,
    `the daemon processed ${seen} of ${REQUESTS} (the rest: loopback buffer overflow)`,
  );
  // `seen` also counts the first requests of the warm-up and bystander clients (other buckets).
  t.ok(
    seen - limited <= limit(windowMs) + 2,
    `${seen - limited} answered by the daemon: all but the budget suppressed`,
  );
  t.same([...codes.keys()], [401], 'the flood only ever got 401s');
  t.ok(
    answered >= BURST && answered <= limit(windowMs),
    `${answered} answers within [${BURST}, ${limit(windowMs)}]`,
  );
  t.ok(amplification < 0.05, `amplification ${amplification.toFixed(5)} < 0.05`);
  // Nothing per unauthenticated request is kept; 32 MiB covers GC timing and socket buffers.
  t.ok(rssBefore > 0 && rssAfter - rssBefore < 32 * 1024, `RSS grew ${rssAfter - rssBefore} KiB < 32 MiB`);

  t.ok(during.relayed.port > 0, 'a client on another address allocated during the flood');
  const { view } = await udpRequest('127.0.0.1', d.port, bindingRequest());
  t.equal(view.cls, Class.Success, 'Binding answered after the flood');
  const after = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => after.close());
  const a = await after.allocate();
  t.ok(
    a.relayed.port > 0,
    `a client from the flooding address allocates (${after.retransmissions} retransmissions)`,
  );

  assertHealthy(t, d);
});
