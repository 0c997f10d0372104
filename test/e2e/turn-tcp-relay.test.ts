/**
 * RFC 6062 TCP allocations end to end, with real sockets on loopback: a server started in-process
 * (so the 30 s timeouts can be shortened through its TURN options), this suite's own client
 * (test/fixtures/helpers/tcp-relay-client.ts) and TCP peers of its own.
 *
 *  - client-initiated: Connect, ConnectionBind on a new connection, bytes both ways (a few MB, so
 *    the pipe's backpressure is exercised), counted per allocation; over TCP and over TLS;
 *  - peer-initiated: a peer with a permission connects to the relayed address, the client hears a
 *    ConnectionAttempt and binds; what the peer sent before the bind arrives after it;
 *  - every error path: 442 (tcp-relay off), 400 (UDP client), 446, 447 (closed port; timeout), 403
 *    (denied peer; the server's own port), 400 (ConnectionBind on the control connection; unknown
 *    id), 441, the ConnectionBind timeout, the per-allocation cap, peers without permission;
 *  - every connection closes with its allocation (Refresh 0, control connection closed).
 *
 * The data plane follows TURNPIKE_DATA_PLANE like the daemon's suite run (TCP allocations are the
 * JavaScript plane's in both modes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer as createTcpServer, connect as netConnect, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { TurnClient, UdpTransport } from '../../src/client/index.js';
import { AttrType, Method, Transport } from '../../src/core/constants.js';
import { createServer, type TurnpikeServer } from '../../src/index.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { freePort, relayRange } from '../fixtures/helpers/daemon.js';
import { closedWithin, readBytes, TcpRelayClient } from '../fixtures/helpers/tcp-relay-client.js';

const HOST = '127.0.0.1';
const silent = { level: 'silent' } as const;

interface Setup {
  readonly server: TurnpikeServer;
  readonly port: number;
  readonly tlsPort: number | undefined;
}

async function server(t: Test, settings: Record<string, unknown> = {}, tls = false): Promise<Setup> {
  const port = await freePort();
  const [min, max] = relayRange();
  const extra: Record<string, unknown> = {};
  let tlsPort: number | undefined;
  if (tls) {
    const files = makeCertificate(testDir(t), 'turn.example.test');
    tlsPort = await freePort();
    Object.assign(extra, { 'tls-listening-port': tlsPort, cert: files.cert, pkey: files.key });
  }
  const { default: pino } = await import('pino');
  const s = await createServer(
    {
      'listening-ip': [HOST],
      'listening-port': port,
      realm: 'example.test',
      user: ['alice:wonderland', 'mallory:evil'],
      'allowed-peer-ip': [HOST],
      'min-port': min,
      'max-port': max,
      'tcp-relay': true,
      'data-plane': process.env['TURNPIKE_DATA_PLANE'] === 'js' ? 'js' : 'auto',
      ...extra,
      ...settings,
    },
    { log: pino(silent) },
  );
  t.teardown(() => s.close());
  return { server: s, port, tlsPort };
}

async function client(t: Test, port: number, tls = false): Promise<TcpRelayClient> {
  const c = await TcpRelayClient.open({ host: HOST, port, tls });
  t.teardown(() => c.close());
  return c;
}

/** A TCP server on loopback that keeps the sockets it accepts. */
async function tcpPeer(t: Test): Promise<{ server: Server; port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const srv = createTcpServer((s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return { server: srv, port: (srv.address() as { port: number }).port, accepted };
}

async function waitFor<T>(what: string, get: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Connect + ConnectionBind to a fresh peer; returns the pipe's two ends. */
async function connected(t: Test, c: TcpRelayClient) {
  const peer = await tcpPeer(t);
  const r = await c.connect(HOST, peer.port);
  t.ok(r.ok, 'Connect succeeded');
  const peerSocket = await waitFor('the peer connection', () => peer.accepted[0]);
  const { outcome, socket, early } = await c.dataConnection(r.connectionId!);
  t.teardown(() => socket.destroy());
  t.ok(outcome.ok, 'ConnectionBind succeeded');
  return { peer, peerSocket, data: socket, early, id: r.connectionId! };
}

for (const tls of [false, true]) {
  t.test(
    `client-initiated over ${tls ? 'TLS' : 'TCP'}: Connect, ConnectionBind, bytes both ways, counted`,
    async (t) => {
      const s = await server(t, {}, tls);
      const c = await client(t, tls ? s.tlsPort! : s.port, tls);
      const relayed = await c.allocate();
      t.equal(typeof relayed, 'object', 'TCP allocation granted');
      const { peer, peerSocket, data, early } = await connected(t, c);
      t.equal(peerSocket.remoteAddress, HOST, 'the server connects from the relay address');
      // Big transfers both ways at once: the pipe's backpressure must neither lose nor reorder.
      const up = pattern(3 << 20, 1);
      const down = pattern(2 << 20, 7);
      const gotUp = readBytes(peerSocket, up.length);
      const gotDown = readBytes(data, down.length, early);
      data.write(up);
      peerSocket.write(down);
      t.ok((await gotUp).equals(up), 'client → peer intact');
      t.ok((await gotDown).equals(down), 'peer → client intact');
      const info = [...s.server.turn.allocations()][0]!;
      t.equal(info.counters.bytesToPeer, up.length, 'allocation counter to the peer');
      t.equal(info.counters.bytesToClient, down.length, 'allocation counter to the client');
      t.equal(info.tcpConnections, 1);
      t.same(s.server.turn.tcp.counts(), { connecting: 0, pending: 0, bound: 1 });
      t.equal(s.server.core.stats.tcpConnectionsBound, 1);
      // The peer closing ends the data connection, and the peer is free for a new Connect.
      peerSocket.destroy();
      await closedWithin(data, 3000);
      await waitFor('the connection forgotten', () => (s.server.turn.tcp.size === 0 ? true : undefined));
      const again = await c.connect(HOST, peer.port);
      t.ok(again.ok, 'a new Connect to the same peer');
    },
  );
}

t.test(
  'peer-initiated: permission, ConnectionAttempt, ConnectionBind; bytes sent before the bind wait for it',
  async (t) => {
    const s = await server(t);
    const c = await client(t, s.port);
    const relayed = (await c.allocate()) as { address: string; port: number };
    // Without a permission the relay closes the connection at once, and says nothing to the client.
    const stranger = netConnect({ host: relayed.address, port: relayed.port });
    stranger.on('error', () => {});
    await closedWithin(stranger, 3000);
    t.equal(c.attempts.length, 0, 'no ConnectionAttempt without a permission');
    t.equal(s.server.core.stats.tcpPeerConnectionsRefused, 1);

    await c.createPermission(HOST);
    const peer = netConnect({ host: relayed.address, port: relayed.port });
    peer.on('error', () => {});
    await new Promise<void>((resolve) => peer.once('connect', () => resolve()));
    peer.write('early bytes');
    const attempt = await c.waitAttempt();
    t.equal(attempt.address, HOST);
    t.equal(attempt.port, peer.localPort, 'XOR-PEER-ADDRESS is the peer');
    const { outcome, socket, early } = await c.dataConnection(attempt.id);
    t.teardown(() => socket.destroy());
    t.ok(outcome.ok);
    t.equal((await readBytes(socket, 11, early)).toString(), 'early bytes');
    const got = readBytes(peer, 5);
    socket.write('hello');
    t.equal((await got).toString(), 'hello');
    peer.destroy();
  },
);

t.test('errors: 442 while tcp-relay is off, 400 from a UDP client', async (t) => {
  const off = await server(t, { 'tcp-relay': false });
  const c = await client(t, off.port);
  t.equal(await c.allocate(), 442);
  const on = await server(t);
  const udp = await UdpTransport.open({ address: HOST, port: on.port });
  const u = new TurnClient(udp, { credentials: { username: 'alice', password: 'wonderland' } });
  t.teardown(() => u.close());
  const r = await u.transactOrThrow(Method.Allocate, (w) =>
    w.addLeadingByte(AttrType.RequestedTransport, Transport.TCP),
  );
  t.equal(r.code, 400, 'RFC 6062 §5.1: a TCP allocation needs a TCP or TLS client connection');
});

t.test(
  'errors: 446, 447 (closed port), 403 (denied peer, our own port), 400 (ConnectionBind on the control connection, unknown id), 441',
  async (t) => {
    const s = await server(t);
    const c = await client(t, s.port);
    await c.allocate();
    const peer = await tcpPeer(t);
    const first = await c.connect(HOST, peer.port);
    t.ok(first.ok);
    t.equal((await c.connect(HOST, peer.port)).code, 446, 'a connection to that peer exists (pending)');
    // A closed loopback port: refused at once.
    const closed = await freePort();
    t.equal((await c.connect(HOST, closed)).code, 447);
    t.equal(
      (await c.connect('127.0.0.2', peer.port)).code,
      403,
      'a loopback address outside allowed-peer-ip',
    );
    t.equal((await c.connect(HOST, s.port)).code, 403, "the server's own listening port");
    t.equal((await c.bindHere(first.connectionId!)).code, 400, 'ConnectionBind on the control connection');
    const unknown = await c.dataConnection(first.connectionId! ^ 0x5a5a);
    t.equal(unknown.outcome.code, 400, 'an unknown CONNECTION-ID');
    unknown.socket.destroy();
    const other = await c.dataConnection(first.connectionId!, {
      credentials: { username: 'mallory', password: 'evil' },
    });
    t.equal(other.outcome.code, 441, 'another user');
    other.socket.destroy();
    // The pending connection still binds after all that.
    const ok = await c.dataConnection(first.connectionId!);
    t.ok(ok.outcome.ok);
    ok.socket.destroy();
  },
);

/**
 * A listening socket that never accepts: a child process listens with a backlog of 1, prints its
 * port and blocks its event loop. Once the accept queue is full the kernel drops further SYNs, so a
 * connection attempt hangs until its timeout.
 */
async function blackHole(t: Test): Promise<number> {
  const script = `
    const s = require('node:net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(String(s.address().port) + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
    });`;
  const proc: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
    proc.once('exit', () => reject(new Error('black hole exited')));
  });
  // Fill the accept queue (backlog + 1 on Linux), then one more whose SYN is dropped.
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const f = netConnect({ host: HOST, port });
    f.on('error', () => {});
    fillers.push(f);
  }
  t.teardown(() => {
    for (const f of fillers) f.destroy();
  });
  await new Promise((r) => setTimeout(r, 200));
  return port;
}

t.test('447 after the connect timeout (shortened from 30 s for the test)', async (t) => {
  const s = await server(t);
  s.server.turn.options = { ...s.server.turn.options, tcpConnectTimeoutMs: 700 };
  const c = await client(t, s.port);
  await c.allocate();
  const port = await blackHole(t);
  const started = Date.now();
  const r = await c.connect(HOST, port);
  t.equal(r.code, 447);
  t.ok(Date.now() - started >= 650, `gave up after the timeout (${Date.now() - started} ms)`);
  t.equal(s.server.core.stats.tcpConnectFailures, 1);
});

t.test(
  'a peer connection nobody binds is closed after the ConnectionBind timeout (shortened from 30 s)',
  async (t) => {
    const s = await server(t);
    s.server.turn.options = { ...s.server.turn.options, tcpConnectionBindTimeoutSec: 1 };
    const c = await client(t, s.port);
    await c.allocate();
    const peer = await tcpPeer(t);
    const r = await c.connect(HOST, peer.port);
    const peerSocket = await waitFor('the peer connection', () => peer.accepted[0]);
    await closedWithin(peerSocket, 4000);
    t.equal(s.server.core.stats.tcpBindTimeouts, 1);
    const late = await c.dataConnection(r.connectionId!);
    t.equal(late.outcome.code, 400, 'its CONNECTION-ID is gone');
    late.socket.destroy();
  },
);

t.test(
  'tcp-relay-max-connections: Connect beyond it gets 508, an incoming connection beyond it is closed',
  async (t) => {
    const s = await server(t, { 'tcp-relay-max-connections': 2 });
    const c = await client(t, s.port);
    const relayed = (await c.allocate()) as { address: string; port: number };
    const peer = await tcpPeer(t);
    t.ok((await c.connect(HOST, peer.port)).ok);
    await c.createPermission(HOST);
    const inbound = netConnect({ host: relayed.address, port: relayed.port });
    inbound.on('error', () => {});
    await c.waitAttempt();
    const other = await tcpPeer(t);
    t.equal((await c.connect(HOST, other.port)).code, 508);
    const extra = netConnect({ host: relayed.address, port: relayed.port });
    extra.on('error', () => {});
    await closedWithin(extra, 3000);
    t.equal(c.attempts.length, 1, 'no ConnectionAttempt beyond the cap');
    inbound.destroy();
  },
);

for (const how of ['Refresh 0', 'control connection closed'] as const) {
  t.test(`every connection closes with the allocation: ${how}`, async (t) => {
    const s = await server(t);
    const c = await client(t, s.port);
    const relayed = (await c.allocate()) as { address: string; port: number };
    const bound = await connected(t, c);
    const pendingPeer = await tcpPeer(t);
    await c.connect(HOST, pendingPeer.port);
    const pendingSocket = await waitFor('the pending peer connection', () => pendingPeer.accepted[0]);
    if (how === 'Refresh 0') await c.refresh(0);
    else await c.close();
    await closedWithin(bound.data, 3000);
    await closedWithin(bound.peerSocket, 3000);
    await closedWithin(pendingSocket, 3000);
    t.equal(s.server.turn.tcp.size, 0);
    t.equal(s.server.turn.allocationCount, 0);
    // The relayed address no longer accepts.
    const late = netConnect({ host: relayed.address, port: relayed.port });
    const refused = await new Promise<boolean>((resolve) => {
      late.once('error', () => resolve(true));
      late.once('connect', () => resolve(false));
    });
    late.destroy();
    t.ok(refused, 'the relay listener is closed');
  });
}

t.test('UDP allocations work alongside TCP ones with tcp-relay on', async (t) => {
  const s = await server(t);
  const udp = await UdpTransport.open({ address: HOST, port: s.port });
  const u = new TurnClient(udp, { credentials: { username: 'alice', password: 'wonderland' } });
  t.teardown(() => u.close());
  const c = await client(t, s.port);
  t.equal(typeof (await c.allocate()), 'object');
  const r = await u.allocate();
  t.ok(r.relayed.port > 0);
  t.equal(s.server.turn.allocationCount, 2);
});

t.test(
  '/admin/allocations lists a TCP allocation with its peer connections; admin delete closes them',
  async (t) => {
    const httpPort = await freePort();
    const s = await server(t, {
      prometheus: true,
      'prometheus-address': HOST,
      'prometheus-port': httpPort,
      'api-token': 'secret-token',
    });
    const c = await client(t, s.port);
    await c.allocate();
    const bound = await connected(t, c);
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://${HOST}:${httpPort}${path}`, {
        method,
        headers: { authorization: 'Bearer secret-token', 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return (await res.json()) as {
        allocations?: { transport: string; tcpRelay?: { connections: number }; toPeer: { bytes: number } }[];
      };
    };
    bound.data.write('12345');
    await readBytes(bound.peerSocket, 5);
    const list = await api('GET', '/admin/allocations');
    t.equal(list.allocations?.length, 1);
    t.same(list.allocations?.[0]?.tcpRelay, { connections: 1 });
    t.equal(list.allocations?.[0]?.toPeer.bytes, 5);
    const metrics = await (await fetch(`http://${HOST}:${httpPort}/metrics`)).text();
    t.match(metrics, /turn_tcp_relay_connections\{state="bound"\} 1/);
    t.match(metrics, /turn_tcp_relay_allocations 1/);
    await api('POST', '/admin/disconnect', { user: 'alice' });
    await closedWithin(bound.data, 3000);
    await closedWithin(bound.peerSocket, 3000);
    t.equal(s.server.turn.tcp.size, 0);
  },
);

t.test('tcp-relay applies live on reload; existing TCP allocations stay', async (t) => {
  const s = await server(t);
  const c = await client(t, s.port);
  await c.allocate();
  const bound = await connected(t, c);
  const off = s.server.reconfigure({ ...s.server.config(), tcpRelay: false });
  t.ok(off.applied.includes('tcp-relay'), 'tcp-relay is a live key');
  const late = await client(t, s.port);
  t.equal(await late.allocate(), 442, 'new TCP allocations refused');
  const got = readBytes(bound.peerSocket, 4);
  bound.data.write('live');
  t.equal((await got).toString(), 'live', 'the existing pipe keeps relaying');
  s.server.reconfigure({ ...s.server.config(), tcpRelay: true, tcpRelayMaxConnections: 1 });
  const other = await tcpPeer(t);
  t.equal((await c.connect(HOST, other.port)).code, 508, 'tcp-relay-max-connections applies live');
});

t.test(
  'relay-payload-policy webrtc refuses TCP allocations (442): a TCP relay carries any bytes',
  async (t) => {
    const s = await server(t, { 'relay-payload-policy': 'webrtc' });
    const c = await client(t, s.port);
    t.equal(await c.allocate(), 442);
  },
);

t.test('IPv6: a TCP allocation on ::1, Connect and an incoming connection, bytes both ways', async (t) => {
  const V6 = '::1';
  const s = await server(t, { 'listening-ip': [V6], 'allowed-peer-ip': [V6] });
  const c = await TcpRelayClient.open({ host: V6, port: s.port });
  t.teardown(() => c.close());
  const relayed = (await c.allocate()) as { address: string; port: number };
  t.equal(relayed.address, V6, 'an IPv6 relayed address');
  const accepted: Socket[] = [];
  const srv = createTcpServer((sock) => {
    sock.on('error', () => {});
    accepted.push(sock);
  });
  await new Promise<void>((resolve) => srv.listen(0, V6, resolve));
  t.teardown(() => {
    for (const x of accepted) x.destroy();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  const r = await c.connect(V6, (srv.address() as { port: number }).port);
  t.ok(r.ok, 'Connect to an IPv6 peer');
  const peerSocket = await waitFor('the peer connection', () => accepted[0]);
  const bound = await c.dataConnection(r.connectionId!);
  t.teardown(() => bound.socket.destroy());
  t.ok(bound.outcome.ok);
  const up = readBytes(peerSocket, 3);
  bound.socket.write('six');
  t.equal((await up).toString(), 'six');
  const down = readBytes(bound.socket, 4, bound.early);
  peerSocket.write('back');
  t.equal((await down).toString(), 'back');
  // Peer-initiated over IPv6.
  await c.createPermission(V6);
  const inbound = netConnect({ host: relayed.address, port: relayed.port });
  inbound.on('error', () => {});
  t.teardown(() => inbound.destroy());
  const attempt = await c.waitAttempt();
  t.equal(attempt.address, V6);
  const second = await c.dataConnection(attempt.id);
  t.teardown(() => second.socket.destroy());
  t.ok(second.outcome.ok);
});

t.test('shutdown closes every pipe and peer connection', async (t) => {
  const port = await freePort();
  const [min, max] = relayRange();
  const { default: pino } = await import('pino');
  const s = await createServer(
    {
      'listening-ip': [HOST],
      'listening-port': port,
      realm: 'example.test',
      user: ['alice:wonderland'],
      'allowed-peer-ip': [HOST],
      'min-port': min,
      'max-port': max,
      'tcp-relay': true,
      'data-plane': process.env['TURNPIKE_DATA_PLANE'] === 'js' ? 'js' : 'auto',
    },
    { log: pino(silent) },
  );
  let closed = false;
  t.teardown(() => (closed ? undefined : s.close()));
  const c = await client(t, port);
  await c.allocate();
  const bound = await connected(t, c);
  await s.close();
  closed = true;
  await closedWithin(bound.data, 3000);
  await closedWithin(bound.peerSocket, 3000);
  t.equal(s.turn.tcp.size, 0);
});
