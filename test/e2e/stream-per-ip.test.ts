/**
 * `max-tcp-connections-per-ip` against the real daemon with its default limits (256 per IP, 10000
 * in total): the cap counts only connections that hold no allocation, and a new connection from an
 * IP at the cap closes the oldest idle one of that IP instead of being refused. Many clients behind
 * one address (corporate egress, CGNAT) can therefore hold far more allocated connections than the
 * cap, and a flood of idle connections cannot lock a real client out.
 */
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { AttrType, Method } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import {
  aliceOnLoopback,
  type Daemon,
  freePort,
  relayRange,
  startDaemon,
} from '../fixtures/helpers/daemon.js';
import { byLabel, scrape } from '../fixtures/helpers/prometheus.js';
import { sleep } from '../fixtures/helpers/turn-client.js';
import { StreamTurnClient } from '../fixtures/helpers/turn-stream-client.js';

const DEFAULT_PER_IP_CAP = 256;

/**
 * The daemon with only credentials (every limit at its default), Prometheus on a free port and
 * `args`; stopped when `t` ends.
 */
async function daemon(t: Test, args: readonly string[] = []): Promise<{ d: Daemon; metrics: number }> {
  const metrics = await freePort();
  const d = await startDaemon([
    ...aliceOnLoopback(),
    '--prometheus',
    '--prometheus-port',
    String(metrics),
    ...args,
  ]);
  t.teardown(() => d.stop());
  return { d, metrics };
}

/** `turn_stream_connections_total` by outcome, scraped from the daemon. */
async function streamOutcomes(metrics: number): Promise<Map<string, number>> {
  return byLabel(await scrape(metrics), 'turn_stream_connections_total', 'outcome');
}

/**
 * Runs `task(0..n-1)` with at most `concurrency` in flight; the results in order, a failure as
 * the Error.
 */
async function bounded<T>(
  n: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<Array<T | Error>> {
  const results = new Array<T | Error>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        results[i] = await task(i);
      } catch (e) {
        results[i] = e instanceof Error ? e : new Error(String(e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return results;
}

interface Idle {
  readonly socket: Socket;
  closed: boolean;
}

/** A TCP connection that never sends anything. */
function openIdle(port: number): Promise<Idle> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const idle: Idle = { socket, closed: false };
    socket.on('error', () => {});
    socket.once('close', () => {
      idle.closed = true;
    });
    socket.once('connect', () => resolve(idle));
    socket.once('error', reject);
  });
}

interface Client {
  readonly client: StreamTurnClient;
  closed: boolean;
}

async function turnClient(port: number): Promise<Client> {
  const client = await StreamTurnClient.connect({
    host: '127.0.0.1',
    port,
    username: 'alice',
    password: 'wonderland',
  });
  const c: Client = { client, closed: false };
  void client.closed.then(() => {
    c.closed = true;
  });
  return c;
}

/** `p`, or a rejection as soon as the daemon closes the connection (rather than a 3 s response timeout). */
function unlessClosed<T>(c: Client, p: Promise<T>): Promise<T> {
  // Not Promise.race: its losing branch would reject unhandled when the connection closes later.
  return new Promise<T>((resolve, reject) => {
    p.then(resolve, reject);
    void c.client.closed.then(() => reject(new Error('the daemon closed the connection')));
  });
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

t.test('1000 idle connections from one IP do not lock out a new client from that IP', async (t) => {
  const started = Date.now();
  const { d, metrics } = await daemon(t);
  const IDLE = 1000;
  const idle: Idle[] = [];
  t.teardown(() => {
    for (const c of idle) c.socket.destroy();
  });
  const opened = await bounded(IDLE, 100, async (i) => {
    const c = await openIdle(d.port);
    idle[i] = c;
    return c;
  });
  t.equal(opened.filter((r) => r instanceof Error).length, 0, 'every idle connection was accepted by TCP');

  const fresh = await turnClient(d.port);
  t.teardown(() => fresh.client.close());
  const binding = await unlessClosed(fresh, fresh.client.binding());
  t.equal(
    readAddress(binding, AttrType.XorMappedAddress)?.port,
    fresh.client.socket.localPort,
    'Binding answered',
  );
  const relayed = await unlessClosed(fresh, fresh.client.allocate());
  t.ok(relayed.port > 0, `Allocate succeeded with XOR-RELAYED-ADDRESS ${relayed.address}:${relayed.port}`);

  // The daemon keeps the newest 256 unauthenticated connections: the new client and 255 idle ones.
  const evicted = IDLE + 1 - DEFAULT_PER_IP_CAP;
  const closedCount = (): number => idle.filter((c) => c.closed).length;
  t.ok(await until(() => closedCount() >= evicted, 10_000), 'the oldest idle connections were closed');
  await sleep(300);
  t.equal(closedCount(), evicted, `exactly ${evicted} idle connections closed`);
  t.ok(
    idle.slice(0, 100).every((c) => c.closed),
    'the first 100 opened are gone',
  );
  t.ok(
    idle.slice(IDLE - 100).every((c) => !c.closed),
    'the last 100 opened are still open',
  );
  t.notOk(fresh.closed, 'the new client is still connected');
  const outcomes = await streamOutcomes(metrics);
  t.equal(outcomes.get('evicted_per_ip'), evicted, 'turn_stream_connections_total{outcome="evicted_per_ip"}');
  t.equal(outcomes.get('refused'), 0, 'nothing refused');
  t.equal(outcomes.get('accepted'), IDLE + 1);
  t.comment(`test took ${Date.now() - started} ms`);
});

t.test('2000 connections from one IP that each hold an allocation all stay up', async (t) => {
  const started = Date.now();
  // 2000 relay sockets need a port range that wide (the test helper's default range has 500).
  const [minPort, maxPort] = relayRange(5);
  const { d, metrics } = await daemon(t, ['--min-port', String(minPort), '--max-port', String(maxPort)]);
  const N = 2000;
  const clients: Client[] = [];
  t.teardown(() => {
    for (const c of clients) c?.client.close();
  });
  const allocate = async (i: number): Promise<{ address: string; port: number }> => {
    const c = await turnClient(d.port);
    clients[i] = c;
    return unlessClosed(c, c.client.allocate());
  };
  // The first one authenticates the source IP, which exempts it from the rate limit on 401s that
  // the other clients' first Allocates get.
  const first = await allocate(0);
  const rest = await bounded(N - 1, 64, (i) => allocate(i + 1));
  const results = [first, ...rest];
  const failures = results.filter((r) => r instanceof Error);
  t.equal(failures.length, 0, `every Allocate succeeded${failures.length > 0 ? `: ${failures[0]}` : ''}`);
  const relayPorts = new Set(results.flatMap((r) => (r instanceof Error ? [] : [r.port])));
  t.equal(relayPorts.size, N, `${N} distinct relay ports`);
  t.comment(`${N} allocations in ${Date.now() - started} ms`);

  // Several sweeps of the listener (at most 1 s apart) later, nothing has been closed.
  await sleep(3000);
  t.equal(clients.filter((c) => c.closed).length, 0, 'every connection is still open');
  const refreshed = await bounded(N, 100, async (i) => {
    const c = clients[i]!;
    const r = await unlessClosed(
      c,
      c.client.request(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 600)),
    );
    if (!r.ok) throw new Error(`Refresh failed: ${r.code}`);
    return r;
  });
  t.equal(refreshed.filter((r) => r instanceof Error).length, 0, 'a Refresh succeeds on every connection');
  const outcomes = await streamOutcomes(metrics);
  t.equal(outcomes.get('accepted'), N);
  t.equal(outcomes.get('evicted_per_ip'), 0, 'no connection evicted');
  t.equal(outcomes.get('refused'), 0, 'no connection refused');
  t.comment(`test took ${Date.now() - started} ms`);
});
