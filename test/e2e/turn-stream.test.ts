import type { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import t, { type Test } from 'tap';
import { AttrType } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { sample, scrape } from '../fixtures/helpers/prometheus.js';
import { bindingRequest } from '../fixtures/helpers/stun-client.js';
import { sleep, TestPeer, udpPortFree } from '../fixtures/helpers/turn-client.js';
import { StreamTurnClient } from '../fixtures/helpers/turn-stream-client.js';

const USER = ['--realm', 'example.test', '--user', 'alice:wonderland', '--allowed-peer-ip', '127.0.0.1'];

/** The daemon on 127.0.0.1 with `args`, stopped when `t` ends. */
async function daemon(t: Test, args: readonly string[]): Promise<Daemon> {
  const d = await startDaemon(['--listening-ip', '127.0.0.1', ...args]);
  t.teardown(() => d.stop());
  return d;
}

/** Options for a TLS listener on `port` with the certificate `pair`. */
function tlsListener(port: number, pair: { cert: string; key: string }): string[] {
  return ['--tls-listening-port', String(port), '--cert', pair.cert, '--pkey', pair.key];
}

/** A TCP (or TLS) TURN client of 127.0.0.1:`port`, as alice unless told otherwise, closed when `t` ends. */
async function streamClient(
  t: Test,
  port: number,
  opts: { tls?: boolean; username?: string; password?: string; head?: Buffer } = {},
): Promise<StreamTurnClient> {
  const client = await StreamTurnClient.connect({
    host: '127.0.0.1',
    port,
    username: 'alice',
    password: 'wonderland',
    ...opts,
  });
  t.teardown(() => client.close());
  return client;
}

/** A UDP peer on 127.0.0.1, closed when `t` ends. */
async function testPeer(t: Test): Promise<TestPeer> {
  const peer = await TestPeer.bind('127.0.0.1');
  t.teardown(() => peer.close());
  return peer;
}

/** Subject CN of the certificate a fresh TLS handshake gets. */
function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = s.getPeerX509Certificate?.() as X509Certificate | undefined;
      resolve(cert?.subject ?? '');
      s.destroy();
    });
    s.on('error', reject);
  });
}

for (const tls of [false, true]) {
  t.test(
    `TURN over ${tls ? 'TLS' : 'TCP'}: ChannelData both ways, allocation ends with the connection`,
    async (t) => {
      const dir = testDir(t);
      const tlsPort = await freePort();
      const d = await daemon(t, [...USER, ...tlsListener(tlsPort, makeCertificate(dir, 'turnpike-a'))]);
      const client = await streamClient(t, tls ? tlsPort : d.port, { tls });
      const peer = await testPeer(t);
      const relayed = await client.allocate();
      await client.channelBind(0x4000, peer.address);
      for (const size of [1, 2, 3, 4, 5, 100, 1201]) {
        const data = Buffer.alloc(size, size);
        client.sendChannel(0x4000, data);
        t.same((await peer.next()).data, data, `client → peer ${size} bytes (padding stripped)`);
        await peer.send(data, relayed);
      }
      const got = await client.waitReceived(7);
      t.same(
        got.map((b) => b.length),
        [1, 2, 3, 4, 5, 100, 1201],
        'peer → client, padded frames decoded',
      );
      client.close();
      await client.closed;
      await sleep(200);
      t.ok(await udpPortFree(relayed.port), 'relay port freed at once when the connection closed');
      t.ok(
        d.lines.some((l) => l.includes('"connection-closed"')),
        'deleted with reason connection-closed',
      );
    },
  );
}

t.test(
  'a certificate swapped on disk serves new handshakes; an old TLS connection keeps relaying',
  async (t) => {
    const dir = testDir(t);
    const a = makeCertificate(dir, 'turnpike-a');
    const b = makeCertificate(dir, 'turnpike-b');
    const certPath = join(dir, 'live.crt');
    const keyPath = join(dir, 'live.key');
    writeFileSync(certPath, readFileSync(a.cert));
    writeFileSync(keyPath, readFileSync(a.key));
    const tlsPort = await freePort();
    const d = await daemon(t, [...USER, ...tlsListener(tlsPort, { cert: certPath, key: keyPath })]);
    t.equal(await servedCertificate(tlsPort), 'CN=turnpike-a');
    const old = await streamClient(t, tlsPort, { tls: true });
    const peer = await testPeer(t);
    await old.allocate();
    await old.channelBind(0x4001, peer.address);

    // A broken pair first (key of B, chain of A): refused, the old one stays.
    writeFileSync(keyPath, readFileSync(b.key));
    d.proc.kill('SIGHUP');
    await sleep(300);
    t.ok(
      d.lines.some((l) => l.includes('keeping the previous certificate')),
      'broken pair refused and logged',
    );
    t.equal(await servedCertificate(tlsPort), 'CN=turnpike-a');

    // The ACME way: new files renamed into place; the watcher picks them up without a signal.
    writeFileSync(join(dir, 'new.crt'), readFileSync(b.cert));
    renameSync(join(dir, 'new.crt'), certPath);
    let served = '';
    for (let i = 0; i < 40 && served !== 'CN=turnpike-b'; i++) {
      await sleep(250);
      served = await servedCertificate(tlsPort);
    }
    t.equal(served, 'CN=turnpike-b', 'a new handshake gets the new certificate');
    old.sendChannel(0x4001, Buffer.from('after the swap'));
    t.same((await peer.next()).data, Buffer.from('after the swap'), 'the old connection still relays');
  },
);

t.test(
  'PROXY protocol: the header address is the client address; without the option it is bad input',
  async (t) => {
    const d = await daemon(t, ['--proxy-protocol']);
    const v2 = Buffer.concat([
      Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
      Buffer.from([0x21, 0x11, 0x00, 0x0c]),
      Buffer.from([203, 0, 113, 9, 127, 0, 0, 1]),
      Buffer.from([0x11, 0x5c, 0x0d, 0x96]), // source port 4444, destination 3478
    ]);
    const viaV2 = await streamClient(t, d.port, { username: 'x', password: 'y', head: v2 });
    t.same(readAddress(await viaV2.binding(), AttrType.XorMappedAddress), {
      family: 1,
      address: '203.0.113.9',
      port: 4444,
    });
    const v1 = Buffer.from('PROXY TCP6 2001:db8::5 ::1 5555 3478\r\n', 'latin1');
    const viaV1 = await streamClient(t, d.port, { username: 'x', password: 'y', head: v1 });
    t.same(readAddress(await viaV1.binding(), AttrType.XorMappedAddress), {
      family: 2,
      address: '2001:db8::5',
      port: 5555,
    });
    // No header at all: the connection is closed, nothing answered.
    const bare = connect({ host: '127.0.0.1', port: d.port });
    let answered = 0;
    bare.on('data', () => answered++);
    bare.on('error', () => {});
    bare.write(bindingRequest());
    await new Promise((r) => bare.once('close', r));
    t.equal(answered, 0);

    // Behind a load balancer on the TLS port: the PROXY header comes before the TLS handshake; the TCP
    // port (serving TLS too, by the first byte after the header) likewise.
    const tlsPort = await freePort();
    const withTls = await daemon(t, [
      '--proxy-protocol',
      ...tlsListener(tlsPort, makeCertificate(testDir(t), 'turnpike-p')),
    ]);
    for (const port of [tlsPort, withTls.port]) {
      const viaTls = await streamClient(t, port, { username: 'x', password: 'y', head: v2, tls: true });
      t.same(
        readAddress(await viaTls.binding(), AttrType.XorMappedAddress),
        { family: 1, address: '203.0.113.9', port: 4444 },
        `PROXY v2 then TLS on port ${port === tlsPort ? 'tls-listening-port' : 'listening-port'}`,
      );
    }

    const plain = await daemon(t, []);
    const s = connect({ host: '127.0.0.1', port: plain.port });
    s.on('error', () => {});
    s.write(Buffer.concat([v2, bindingRequest()]));
    let bytes = 0;
    s.on('data', (x: Buffer) => {
      bytes += x.length;
    });
    await new Promise((r) => s.once('close', r));
    t.equal(bytes, 0, 'a PROXY header without proxy-protocol closes the connection unanswered');
  },
);

t.test('1000 idle connections do not harm a working client; idle ones are closed later', async (t) => {
  const d = await daemon(t, [...USER, '--max-tcp-connections-per-ip', '2000', '--tcp-idle-timeout', '4']);
  const idle: Socket[] = [];
  t.teardown(() => {
    for (const s of idle) s.destroy();
  });
  let closedByServer = 0;
  for (let i = 0; i < 1000; i++) {
    const s = connect({ host: '127.0.0.1', port: d.port });
    s.on('error', () => {});
    s.on('close', () => closedByServer++);
    idle.push(s);
    if (i % 100 === 99) await sleep(20);
  }
  await sleep(300);
  const client = await streamClient(t, d.port);
  const peer = await testPeer(t);
  const start = Date.now();
  const relayed = await client.allocate();
  await client.channelBind(0x4002, peer.address);
  for (let i = 0; i < 50; i++) {
    client.sendChannel(0x4002, Buffer.from(`m${i}`));
    await peer.send(Buffer.from(`r${i}`), relayed);
  }
  await client.waitReceived(50);
  t.equal((await peer.collect(200)).length, 50);
  t.ok(Date.now() - start < 3000, `the working client was served in ${Date.now() - start} ms`);
  // Idle timeout 4 s, swept every second: all gone within a few seconds more (bounded wait).
  for (let i = 0; i < 100 && closedByServer < 1000; i++) await sleep(100);
  t.equal(closedByServer, 1000, 'idle connections without an allocation were closed after the idle timeout');
  client.sendChannel(0x4002, Buffer.from('still open'));
  t.same((await peer.next()).data, Buffer.from('still open'), 'the connection with an allocation stays open');
});

t.test('a TLS connection stalled in the middle of a frame is closed within the timeout', async (t) => {
  const dir = testDir(t);
  const pair = makeCertificate(dir, 'turnpike-a');
  const tlsPort = await freePort();
  await daemon(t, [...tlsListener(tlsPort, pair), '--tcp-frame-timeout', '1']);
  const s = tlsConnect({ host: '127.0.0.1', port: tlsPort, rejectUnauthorized: false });
  s.on('error', () => {});
  await new Promise((r) => s.once('secureConnect', r));
  const start = Date.now();
  s.write(bindingRequest().subarray(0, 9));
  await new Promise((r) => s.once('close', r));
  const took = Date.now() - start;
  t.ok(took >= 900 && took < 4000, `closed after ${took} ms`);
  // A handshake that never completes is closed too (tls-handshake-timeout 1).
  const d2 = await daemon(t, [...tlsListener(await freePort(), pair), '--tls-handshake-timeout', '1']);
  const tlsPort2 = Number(
    /"serves":"tcp\+tls","address":"127.0.0.1","port":(\d+)/.exec(d2.lines.join('\n'))?.[1],
  );
  const raw = connect({ host: '127.0.0.1', port: tlsPort2 });
  raw.on('error', () => {});
  const t0 = Date.now();
  await new Promise((r) => raw.once('close', r));
  t.ok(Date.now() - t0 < 4000, `silent TLS client closed after ${Date.now() - t0} ms`);
});

t.test('a client that stops reading does not grow RSS without bound', async (t) => {
  const http = await freePort();
  const d = await daemon(t, [...USER, '--prometheus', '--prometheus-port', String(http)]);
  const client = await streamClient(t, d.port);
  const peer = await testPeer(t);
  const relayed = await client.allocate();
  await client.channelBind(0x4003, peer.address);
  client.socket.pause(); // stop reading: the kernel buffers fill, then turnpike's budget
  const rss = (): number =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))?.[1]) / 1024;
  const before = rss();
  const payload = Buffer.alloc(1200, 7);
  for (let i = 0; i < 40_000; i++) {
    peer.socket.send(payload, relayed.port, relayed.address);
    if (i % 200 === 199) await sleep(2);
  }
  await sleep(500);
  const after = rss();
  const dropped = sample(await scrape(http), 'turn_packets_dropped_total', 'reason="backpressure"') ?? 0;
  t.comment(
    `RSS ${before.toFixed(1)} MiB → ${after.toFixed(1)} MiB after 48 MB sent to a non-reading client; ${dropped} dropped for backpressure`,
  );
  t.ok(dropped > 10_000, 'most of it dropped and counted, not queued');
  // The real bound is the output budget (the drops above); RSS only shows nothing was kept: it grows
  // by what the GC has not collected yet (25-42 MiB seen, the top on a loaded machine), always less
  // than the 48 MB (45.8 MiB) offered, which queueing would keep whole.
  t.ok(after - before < 45.8, `RSS grew ${(after - before).toFixed(1)} MiB, less than the 45.8 MiB offered`);
  t.equal(d.proc.exitCode, null);
});

t.test(
  'each stream port serves TCP and TLS (first byte); one port for both; --no-tcp keeps TLS only',
  async (t) => {
    const dir = testDir(t);
    const pair = makeCertificate(dir, 'turnpike-a');
    const relayBoth = async (client: StreamTurnClient): Promise<void> => {
      const peer = await testPeer(t);
      const relayed = await client.allocate();
      await client.channelBind(0x4002, peer.address);
      client.sendChannel(0x4002, Buffer.from('out'));
      t.same((await peer.next()).data, Buffer.from('out'));
      await peer.send(Buffer.from('back'), relayed);
      t.same(await client.waitReceived(1), [Buffer.from('back')]);
    };

    await t.test('TLS on listening-port, plain TCP on tls-listening-port', async (t) => {
      const tlsPort = await freePort();
      const d = await daemon(t, [...USER, ...tlsListener(tlsPort, pair)]);
      await relayBoth(await streamClient(t, d.port, { tls: true }));
      await relayBoth(await streamClient(t, tlsPort));
      t.ok(
        d.lines.some((l) => l.includes(`"client":"tls:127.0.0.1:`)),
        'TLS on the TCP port is a TLS client',
      );
      t.ok(
        d.lines.some((l) => l.includes(`"client":"tcp:127.0.0.1:`)),
        'plain on the TLS port is a TCP client',
      );
    });

    await t.test('tls-listening-port equal to listening-port: one listener for both', async (t) => {
      const port = await freePort();
      const d = await startDaemon(['--listening-ip', '127.0.0.1', ...USER, ...tlsListener(port, pair)], {
        port,
      });
      t.teardown(() => d.stop());
      await relayBoth(await streamClient(t, port, { tls: true }));
      await relayBoth(await streamClient(t, port));
    });

    await t.test('--no-tcp: the TLS port does not serve plain TCP', async (t) => {
      const tlsPort = await freePort();
      const d = await daemon(t, [...USER, ...tlsListener(tlsPort, pair), '--no-tcp']);
      await relayBoth(await streamClient(t, tlsPort, { tls: true }));
      const s = connect({ host: '127.0.0.1', port: tlsPort });
      s.on('error', () => {});
      let bytes = 0;
      s.on('data', (x: Buffer) => {
        bytes += x.length;
      });
      s.write(bindingRequest());
      await new Promise((r) => s.once('close', r));
      t.equal(bytes, 0, 'a plain Binding request is not answered; the connection is closed');
      const tcp = connect({ host: '127.0.0.1', port: d.port });
      const refused = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(true));
        tcp.once('connect', () => resolve(false));
      });
      tcp.destroy();
      t.ok(refused, 'and nothing listens on the TCP port');
    });
  },
);
