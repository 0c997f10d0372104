/**
 * Many clients behind one IP (carrier-grade NAT, a corporate egress) against a daemon with the
 * default unauthenticated-response limit (10 answers a second per source IP, burst 20). Every
 * allocation starts with a 401 challenge; once one request from the IP carried valid
 * MESSAGE-INTEGRITY the IP is verified, and its challenges are no longer limited. Sources that
 * never authenticate (a spoofed victim address) stay limited to the configured rate.
 */
import { createSocket, type Socket } from 'node:dgram';
import t, { type Test } from 'tap';
import { AttrType, Class, Method, Transport } from '../../src/core/constants.js';
import { readErrorCode } from '../../src/core/stun/attrs.js';
import { decodeStun } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { aliceOnLoopback, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { sample, scrape } from '../fixtures/helpers/prometheus.js';
import { Rng } from '../fixtures/helpers/random.js';
import { sleep, TurnClient } from '../fixtures/helpers/turn-client.js';

const REALM = 'example.test';
const ALICE = { username: 'alice', password: 'wonderland', realm: REALM };
/** The daemon's default unauthorized-ratelimit-rps and its burst. */
const RATE = 10;
const BURST = 2 * RATE;

async function daemon(t: Test): Promise<{ port: number; metrics: () => Promise<string> }> {
  const metricsPort = await freePort();
  // Default limits: only a user, a realm and the metrics listener are configured.
  const d = await startDaemon([
    ...aliceOnLoopback(REALM),
    '--prometheus',
    '--prometheus-port',
    String(metricsPort),
  ]);
  t.teardown(() => d.stop());
  return {
    port: d.port,
    metrics: () => scrape(metricsPort),
  };
}

t.test(
  '2000 allocations from one IP, 25 in flight, all complete with the default configuration',
  async (t) => {
    const d = await daemon(t);
    const fresh = await d.metrics();
    for (const transport of ['udp', 'tcp', 'tls'])
      t.equal(
        sample(fresh, 'turn_allocations', `transport="${transport}",family="ipv4"`),
        0,
        `turn_allocations{transport="${transport}"} is exported at 0 before any allocation`,
      );
    const ATTEMPTS = 2000;
    const IN_FLIGHT = 25;
    let started = 0;
    let completed = 0;
    let retransmissions = 0;
    const failures: string[] = [];
    const t0 = Date.now();
    // Each attempt is a new client (new source port) doing what a browser does: Allocate, 401,
    // Allocate with credentials; then it releases the allocation (Refresh 0).
    const worker = async (): Promise<void> => {
      while (started < ATTEMPTS && Date.now() - t0 < 60_000) {
        started++;
        const c = await TurnClient.connect('127.0.0.1', d.port, ALICE);
        try {
          await c.allocate();
          await c.refresh(0);
          completed++;
        } catch (e) {
          failures.push(String(e));
        } finally {
          retransmissions += c.retransmissions;
          await c.close();
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, () => worker()));
    const elapsedMs = Date.now() - t0;
    t.comment(
      `${completed} of ${ATTEMPTS} allocations from 127.0.0.1 in ${elapsedMs} ms ` +
        `(${((completed * 1000) / elapsedMs).toFixed(0)}/s, ${retransmissions} retransmissions)`,
    );
    t.same(failures.slice(0, 5), [], 'no attempt failed');
    t.equal(completed, ATTEMPTS, 'every attempt completed');
    const m = await d.metrics();
    t.ok(
      (sample(m, 'turn_auth_challenges_total') ?? 0) >= ATTEMPTS,
      'every attempt got its challenge (counted as a challenge)',
    );
    t.equal(
      sample(m, 'turn_auth_failures_total', 'reason="missing-credentials"'),
      undefined,
      'not as a failure',
    );
    t.ok((sample(m, 'turn_verified_sources') ?? 0) >= 1, 'the egress IP is verified');
    t.equal(
      sample(m, 'turn_allocations', 'transport="udp",family="ipv4"'),
      0,
      'all released (the series is exported at 0)',
    );
  },
);

t.test('sources that never authenticate get at most the configured rate, at 10x that rate', async (t) => {
  const d = await daemon(t);
  // A verified client on 127.0.0.1 must not exempt anyone else.
  const verified = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => verified.close());
  await verified.allocate();

  const rng = new Rng(0x5b00f);
  const victims = ['127.0.0.61', '127.0.0.62', '127.0.0.63'];
  const sockets: Socket[] = [];
  const answers = new Map<string, number>();
  const codes = new Set<number>();
  for (const address of victims) {
    answers.set(address, 0);
    // Four source ports per address: the budget is per IP, not per 5-tuple.
    for (let k = 0; k < 4; k++) {
      const s = createSocket('udp4');
      await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
      s.on('message', (m: Buffer) => {
        answers.set(address, (answers.get(address) ?? 0) + 1);
        const v = decodeStun(m);
        codes.add(v.ok ? (readErrorCode(v.view)?.code ?? 0) : -1);
      });
      s.on('error', () => {});
      sockets.push(s);
    }
  }
  t.teardown(() => {
    for (const s of sockets) s.close();
  });
  const before = await d.metrics();
  // 10x the limit: 100 requests a second per address, for 3 seconds (bounded: 300 per address).
  const SECONDS = 3;
  const PER_SECOND = 10 * RATE;
  const t0 = Date.now();
  for (let tick = 0; tick < SECONDS * 10; tick++) {
    for (const s of sockets) {
      for (let i = 0; i < PER_SECOND / 10 / 4; i++) {
        const req = new StunWriter(64)
          .start(Method.Allocate, Class.Request, rng.bytes(12))
          .addLeadingByte(AttrType.RequestedTransport, Transport.UDP)
          .finish();
        s.send(req, d.port, '127.0.0.1');
      }
    }
    await sleep(t0 + (tick + 1) * 100 - Date.now());
  }
  await sleep(300);
  const windowMs = Date.now() - t0;
  const most = BURST + Math.ceil((RATE * windowMs) / 1000) + 1;
  for (const [address, n] of answers) {
    t.comment(
      `${address}: ${SECONDS * PER_SECOND} requests, ${n} answers in ${windowMs} ms (at most ${most})`,
    );
    t.ok(n >= BURST && n <= most, `${address}: ${n} answers within [${BURST}, ${most}]`);
  }
  t.same([...codes], [401], 'only 401 challenges');
  const after = await d.metrics();
  const limited =
    (sample(after, 'turn_rate_limited_total', 'reason="challenge"') ?? 0) -
    (sample(before, 'turn_rate_limited_total', 'reason="challenge"') ?? 0);
  const answered = [...answers.values()].reduce((a, b) => a + b, 0);
  t.comment(`turn_rate_limited_total{reason="challenge"} grew by ${limited}`);
  t.ok(
    limited >= victims.length * SECONDS * PER_SECOND * 0.9 - answered,
    `${limited} challenges withheld and counted`,
  );
  // The verified client is still served at once.
  t.equal(await verified.refresh(600), 600, 'the verified client keeps working');
});
