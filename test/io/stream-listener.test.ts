/** TCP listener limits on real loopback sockets: cap, idle and stall timeouts, frame size, garbage. */
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { AttrType, Class } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import { StunCore } from '../../src/core/stun-core.js';
import { StreamListener, type StreamListenerOptions } from '../../src/io/stream-listener.js';
import { createLogger } from '../../src/log.js';
import { bindingRequest, tcpClient } from '../fixtures/helpers/stun-client.js';

async function listener(
  t: Test,
  overrides: Partial<StreamListenerOptions>,
): Promise<{ l: StreamListener; core: StunCore; port: number }> {
  const core = new StunCore({ software: undefined, reasonPhrases: false });
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
