/**
 * TCP listener limits on real loopback sockets: cap, idle and stall timeouts, frame size, garbage;
 * the per-IP cap on unauthenticated connections (oldest evicted, allocated ones not counted).
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import t, { type Test } from 'tap';
import { AttrType, Class, Method, Transport } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import type { StunWriter } from '../../src/core/stun/encode.js';
import type { StunCore } from '../../src/core/stun-core.js';
import {
  StreamListener,
  type StreamListenerOptions,
  type StreamSessions,
} from '../../src/io/stream-listener.js';
import { createLogger } from '../../src/log.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { stunOnlyCore } from '../fixtures/helpers/core-endpoint.js';
import { bindingRequest, tcpClient } from '../fixtures/helpers/stun-client.js';
import { sleep } from '../fixtures/helpers/turn-client.js';
import { Harness } from '../fixtures/helpers/turn-core-harness.js';
import { StreamTurnClient } from '../fixtures/helpers/turn-stream-client.js';

async function listener(
  t: Test,
  overrides: Partial<StreamListenerOptions>,
  core: StunCore = stunOnlyCore(),
  sessions?: StreamSessions,
): Promise<{ l: StreamListener; core: StunCore; port: number }> {
  const l = new StreamListener(
    {
      address: '127.0.0.1',
      port: 0,
      budget: { open: 0, max: 100 },
      maxConnectionsPerIp: 0,
      proxyProtocol: false,
      idleTimeoutMs: 10_000,
      frameTimeoutMs: 10_000,
      maxFrameBytes: 65540,
      maxPendingWriteBytes: 65536,
      plain: true,
      ...overrides,
    },
    core,
    createLogger('silent'),
    sessions,
  );
  await l.start();
  t.teardown(() => l.close());
  return { l, core, port: l.address().port };
}

async function open(
  port: number,
): Promise<{ socket: Socket; closedAt: Promise<number>; received: () => number }> {
  const socket = connect({ host: '127.0.0.1', port });
  let bytes = 0;
  socket.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  socket.on('error', () => {});
  const closedAt = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, closedAt, received: () => bytes };
}

t.test('connection cap: extra connections are refused, existing ones keep working', async (t) => {
  const { l, core, port } = await listener(t, { budget: { open: 0, max: 5 } });
  const working = await tcpClient('127.0.0.1', port);
  t.teardown(() => working.socket.destroy());
  const others = await Promise.all([1, 2, 3, 4].map(() => open(port)));
  t.teardown(() => {
    for (const o of others) o.socket.destroy();
  });
  const extra = await open(port);
  await extra.closedAt;
  t.equal(core.stats.streamRefused, 1, 'the sixth was dropped');
  t.equal(l.connectionCount, 5);
  const v = await working.request(bindingRequest());
  t.equal(v.cls, Class.Success);
});

t.test(
  'a connection that stalls in the middle of a message is closed within the frame timeout',
  async (t) => {
    const { core, port } = await listener(t, { frameTimeoutMs: 300 });
    const healthy = await tcpClient('127.0.0.1', port);
    t.teardown(() => healthy.socket.destroy());
    const stalled = await open(port);
    const start = Date.now();
    stalled.socket.write(bindingRequest().subarray(0, 11));
    // The healthy client keeps being served while the other one hangs.
    for (let i = 0; i < 3; i++) t.equal((await healthy.request(bindingRequest())).cls, Class.Success);
    const closedAt = await stalled.closedAt;
    t.ok(closedAt - start >= 250 && closedAt - start < 1500, `closed after ${closedAt - start} ms`);
    t.equal(core.stats.streamClosedTimeout, 1);
    t.equal(stalled.received(), 0, 'nothing answered');
    t.equal((await healthy.request(bindingRequest())).cls, Class.Success, 'healthy connection unaffected');
  },
);

t.test('trickling bytes does not extend the frame timeout', async (t) => {
  const { port } = await listener(t, { frameTimeoutMs: 400 });
  const slow = await open(port);
  const req = bindingRequest();
  const start = Date.now();
  let i = 0;
  const timer = setInterval(() => {
    if (i < req.length - 1) slow.socket.write(req.subarray(i, ++i));
  }, 50);
  t.teardown(() => clearInterval(timer));
  const closedAt = await slow.closedAt;
  t.ok(closedAt - start < 1500, `closed after ${closedAt - start} ms though bytes kept coming`);
});

t.test('idle connections are closed after the idle timeout', async (t) => {
  const { core, port } = await listener(t, { idleTimeoutMs: 300 });
  const idle = await open(port);
  const start = Date.now();
  const closedAt = await idle.closedAt;
  t.ok(closedAt - start >= 250 && closedAt - start < 1500, `closed after ${closedAt - start} ms`);
  t.equal(core.stats.streamClosedTimeout, 1);
});

t.test('oversize frames and garbage close the connection without an answer', async (t) => {
  const { core, port } = await listener(t, { maxFrameBytes: 512 });
  const big = await open(port);
  big.socket.write(Buffer.from([0x40, 0x00, 0x04, 0x00])); // ChannelData of 1024 bytes
  await big.closedAt;
  const junk = await open(port);
  junk.socket.write(Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'latin1'));
  await junk.closedAt;
  t.equal(big.received() + junk.received(), 0);
  t.equal(core.stats.streamClosedBadFrame, 2);
  const ok = await tcpClient('127.0.0.1', port);
  t.teardown(() => ok.socket.destroy());
  const v = await ok.request(bindingRequest());
  t.same(readAddress(v, AttrType.XorMappedAddress)?.port, ok.socket.localPort);
});

// -------------------------------------------------------------------------------------------------
// Per-IP cap: only connections holding no allocation count; at the cap the oldest one is closed.

/** A listener whose core serves TURN (the in-memory harness: alice/wonderland, fake relay sockets). */
async function turnListener(
  t: Test,
  overrides: Partial<StreamListenerOptions>,
): Promise<{ l: StreamListener; h: Harness; port: number }> {
  const h = new Harness();
  const { l, port } = await listener(t, overrides, h.core, h.service);
  return { l, h, port };
}

/** Polls `cond` every 10 ms; fails the test after `timeoutMs`. */
async function until(t: Test, what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) {
      t.fail(`timed out waiting for ${what}`);
      return;
    }
    await sleep(10);
  }
}

type Opened = Awaited<ReturnType<typeof open>>;

/** Opens a connection and waits until the listener has accepted it (so accept order is connect order). */
async function openAccepted(t: Test, core: StunCore, port: number): Promise<Opened> {
  const before = core.stats.streamAccepted;
  const c = await open(port);
  t.teardown(() => c.socket.destroy());
  await until(t, 'the accept', () => core.stats.streamAccepted > before);
  return c;
}

const isOpen = (c: { socket: Socket }): boolean => !c.socket.destroyed && c.socket.readyState === 'open';

async function turnClient(t: Test, port: number, head?: Buffer): Promise<StreamTurnClient> {
  const c = await StreamTurnClient.connect({
    host: '127.0.0.1',
    port,
    username: 'alice',
    password: 'wonderland',
    ...(head === undefined ? {} : { head }),
  });
  t.teardown(() => c.close());
  return c;
}

const allocateRequest = (w: StunWriter): void => {
  w.addLeadingByte(AttrType.RequestedTransport, Transport.UDP);
};

t.test('per-IP cap: a new connection closes the oldest unauthenticated one of its IP', async (t) => {
  const { l, core, port } = await listener(t, { maxConnectionsPerIp: 3 });
  const first = await openAccepted(t, core, port);
  const second = await openAccepted(t, core, port);
  const third = await openAccepted(t, core, port);
  t.equal(l.unauthenticatedCount('127.0.0.1'), 3);
  const fourth = await tcpClient('127.0.0.1', port);
  t.teardown(() => fourth.socket.destroy());
  t.equal((await fourth.request(bindingRequest())).cls, Class.Success, 'the new connection is served');
  await first.closedAt;
  t.equal(core.stats.streamEvicted, 1);
  t.equal(core.stats.streamRefused, 0, 'nothing refused');
  t.ok(isOpen(second) && isOpen(third), 'the newer ones stay');
  t.equal(first.received(), 0);
  // Next in line is the second one, then the third: oldest first, however they were used.
  third.socket.write(bindingRequest());
  await until(t, 'the answer', () => third.received() > 0);
  await openAccepted(t, core, port);
  await second.closedAt;
  t.ok(isOpen(third), 'a Binding does not make a connection newer');
  await openAccepted(t, core, port);
  await third.closedAt;
  t.equal(core.stats.streamEvicted, 3);
  t.equal(l.connectionCount, 3);
  t.equal(l.unauthenticatedCount('127.0.0.1'), 3);
});

t.test('per-IP cap: the global cap still refuses, without evicting anyone', async (t) => {
  const { l, core, port } = await listener(t, { budget: { open: 0, max: 2 }, maxConnectionsPerIp: 2 });
  const a = await openAccepted(t, core, port);
  const b = await openAccepted(t, core, port);
  const extra = await open(port);
  await extra.closedAt;
  t.equal(core.stats.streamRefused, 1);
  t.equal(core.stats.streamEvicted, 0);
  t.ok(isOpen(a) && isOpen(b));
  t.equal(l.connectionCount, 2);
});

t.test(
  'connections holding an allocation (pending or not) do not count against the per-IP cap',
  async (t) => {
    const { l, h, port } = await turnListener(t, { maxConnectionsPerIp: 2 });
    h.allocator.mode = 'async'; // the allocation stays pending until complete()
    const allocated = await turnClient(t, port);
    t.equal(l.unauthenticatedCount('127.0.0.1'), 1);
    const pending = allocated.allocate();
    await until(t, 'the pending allocation', () => h.service.table.size === 1);
    t.equal(l.unauthenticatedCount('127.0.0.1'), 0, 'a pending allocation already counts as allocated');
    t.equal(h.allocator.complete(), 1);
    const relayed = await pending;
    t.ok(relayed.port > 0, 'allocated');
    t.equal(l.unauthenticatedCount('127.0.0.1'), 0);
    l.sweep(Date.now());
    t.equal(l.unauthenticatedCount('127.0.0.1'), 0, 'the sweep agrees');

    const idle1 = await openAccepted(t, h.core, port);
    const idle2 = await openAccepted(t, h.core, port);
    t.equal(l.unauthenticatedCount('127.0.0.1'), 2);
    t.equal(h.stats.streamEvicted, 0, 'the allocated connection left room for two');
    const idle3 = await openAccepted(t, h.core, port);
    await idle1.closedAt;
    t.equal(h.stats.streamEvicted, 1, 'the oldest unauthenticated one went, not the allocated one');
    t.ok(isOpen(idle2) && isOpen(idle3));
    h.allocator.mode = 'sync';
    const r = await allocated.request(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 600));
    t.ok(r.ok, 'the allocated connection still works');
    t.equal(l.connectionCount, 3);
  },
);

t.test(
  'an allocation that ends makes its connection count again (Refresh 0, expiry, failed bind)',
  async (t) => {
    const { l, h, port } = await turnListener(t, { maxConnectionsPerIp: 2 });
    const a = await turnClient(t, port);
    await a.allocate();
    const b = await openAccepted(t, h.core, port);
    const c = await openAccepted(t, h.core, port);
    t.equal(l.unauthenticatedCount('127.0.0.1'), 2);

    // Refresh 0: noticed as soon as the request is handled; the IP is then over its cap.
    const r = await a.request(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 0));
    t.ok(r.ok, 'deleted');
    await b.closedAt;
    t.equal(h.stats.streamEvicted, 1, 'the oldest unauthenticated connection made room');
    t.ok(isOpen(c), 'the newer one stays');
    t.equal(l.unauthenticatedCount('127.0.0.1'), 2, 'the refreshed-to-zero one and the newer idle one');

    // Expiry: the core's sweep deletes it; the listener's sweep notices.
    await a.allocate();
    t.equal(l.unauthenticatedCount('127.0.0.1'), 1);
    h.advance(4000);
    t.equal(h.service.table.size, 0, 'expired');
    t.equal(l.unauthenticatedCount('127.0.0.1'), 1, 'not seen before the sweep');
    l.sweep(Date.now());
    t.equal(l.unauthenticatedCount('127.0.0.1'), 2, 'counted again');
    t.equal(h.stats.streamEvicted, 1, 'still within the cap');
    t.ok(isOpen(c));

    // A pending allocation whose relay bind fails (508).
    h.allocator.mode = 'async';
    h.allocator.failing = true;
    const failed = a.request(Method.Allocate, allocateRequest);
    await until(t, 'the pending allocation', () => h.service.table.size === 1);
    t.equal(l.unauthenticatedCount('127.0.0.1'), 1, 'pending: not counted');
    h.allocator.complete();
    t.equal((await failed).code, 508);
    l.sweep(Date.now());
    t.equal(l.unauthenticatedCount('127.0.0.1'), 2, 'failed: counted again');
    t.ok(isOpen(c) && !a.socket.destroyed, 'both still open');
    t.equal(h.stats.streamEvicted, 1);
  },
);

t.test('no per-IP entry outlives its connections, whatever state they closed in', async (t) => {
  const dir = testDir(t);
  const pair = makeCertificate(dir);
  const context = createSecureContext({ cert: readFileSync(pair.cert), key: readFileSync(pair.key) });
  const { l, h, port } = await turnListener(t, {
    maxConnectionsPerIp: 10,
    proxyProtocol: true,
    tls: { context: () => context, handshakeTimeoutMs: 10_000 },
    plain: true,
  });
  const head = Buffer.from('PROXY TCP4 203.0.113.5 127.0.0.1 5555 3478\r\n', 'latin1');
  // 1. PROXY header incomplete; 2. TLS handshake started, never finished; 3. open, Binding only;
  // 4. allocated (its PROXY address is the client address, the TCP peer is the cap address).
  const proxyPending = await openAccepted(t, h.core, port);
  proxyPending.socket.write(head.subarray(0, 10));
  const handshake = await openAccepted(t, h.core, port);
  handshake.socket.write(Buffer.concat([head, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01])]));
  const binding = await openAccepted(t, h.core, port);
  binding.socket.write(Buffer.concat([head, bindingRequest()]));
  await until(t, 'the Binding answer', () => binding.received() > 0);
  const allocated = await turnClient(t, port, head);
  await allocated.allocate();
  t.equal(h.service.table.size, 1);
  t.equal(l.connectionCount, 4);
  t.equal(l.unauthenticatedCount('127.0.0.1'), 3, 'counted by the TCP peer');
  t.equal(l.unauthenticatedCount('203.0.113.5'), 0, 'not by the PROXY address');
  t.equal(l.trackedIpCount, 1);

  for (const c of [proxyPending, handshake, binding]) c.socket.destroy();
  allocated.close();
  await until(t, 'every close', () => l.connectionCount === 0);
  t.equal(l.trackedIpCount, 0, 'no per-IP entry left');
  t.equal(l.unauthenticatedCount('127.0.0.1'), 0);
  t.equal(l.options.budget.open, 0, 'budget returned');
  t.equal(h.service.table.size, 0, 'the allocation ended with its connection');

  // Evicted connections and a cap of one leave nothing behind either.
  const { l: one, core, port: port1 } = await listener(t, { maxConnectionsPerIp: 1 });
  const older = await openAccepted(t, core, port1);
  const newer = await openAccepted(t, core, port1);
  await older.closedAt;
  t.equal(one.unauthenticatedCount('127.0.0.1'), 1);
  newer.socket.destroy();
  await until(t, 'the close', () => one.connectionCount === 0);
  t.equal(one.trackedIpCount, 0);
});
