/**
 * Which data plane runs, and the native one's threads: `data-plane`/`relay-threads`, the startup log
 * and `turn_data_plane_info`, the fallback when the addon is missing, exit 78 when `native` is asked
 * for and cannot run, and 100 UDP clients' flows spread over two threads with every packet counted
 * once (per allocation, per thread, in `turn_relay_*`), by the steering program (TURN requests then
 * go straight to the control plane) and by the kernel's own hash (`no-relay-steering`: the
 * threads hand them up).
 */
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { loadNativeAddon } from '../../src/io/native/addon.js';
import { aliceOnLoopback, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { byLabel, sample, scrape, total } from '../fixtures/helpers/prometheus.js';
import { sleep, TestPeer, TurnClient, type TurnCredentials } from '../fixtures/helpers/turn-client.js';

const ALICE: TurnCredentials = { username: 'alice', password: 'wonderland', realm: 'example.test' };
const BIN = new URL('../../bin/turnpike.js', import.meta.url).pathname;
const built = !('error' in loadNativeAddon());

for (const [steering, ip] of [
  [true, '127.0.0.1'],
  [true, '::1'],
  [false, '127.0.0.1'],
] as const)
  t.test(
    `relay-threads 2, steering ${steering ? 'on' : 'off (no-relay-steering)'}, ${ip}: 100 clients spread over both threads, every packet counted once`,
    (t) => spreadOverThreads(t, steering, ip),
  );

async function spreadOverThreads(t: Test, steering: boolean, ip: string): Promise<void> {
  if (!built) {
    t.notOk(process.env['CI'], 'the addon is built in CI');
    return;
  }
  const http = await freePort();
  const d = await startDaemon(
    [
      '--realm',
      'example.test',
      '--user',
      `${ALICE.username}:${ALICE.password}`,
      '--listening-ip',
      ip,
      '--allowed-peer-ip',
      ip,
      '--data-plane',
      'native',
      '--relay-threads',
      '2',
      ...(steering ? [] : ['--no-relay-steering']),
      '--prometheus',
      '--prometheus-port',
      String(http),
    ],
    { env: { TURNPIKE_DATA_PLANE: 'native' } },
  );
  t.teardown(() => d.stop());
  t.ok(
    d.lines.some(
      (l) =>
        l.includes('"dataPlane":"native"') &&
        l.includes('"relayThreads":2') &&
        l.includes(`"relaySteering":${steering}`),
    ),
    'the startup log names the native plane, its threads and the steering',
  );
  t.notOk(
    d.lines.some((l) => l.includes('kernel refused the steering program')),
    'no steering refusal logged',
  );
  let text = await scrape(http);
  t.equal(sample(text, 'turn_data_plane_info', 'plane="native",threads="2"'), 1);
  const names = readdirSync(`/proc/${d.proc.pid}/task`).map((tid) =>
    readFileSync(`/proc/${d.proc.pid}/task/${tid}/comm`, 'utf8').trim(),
  );
  t.same(
    names.filter((n) => n.startsWith('tp-relay-')).sort(),
    ['tp-relay-0', 'tp-relay-1'],
    'the relay threads are named for top -H and perf',
  );

  const peer = await TestPeer.bind(ip);
  t.teardown(() => peer.close());
  const clients: TurnClient[] = [];
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const PACKETS = 20;
  for (let i = 0; i < 100; i++) {
    const c = await TurnClient.connect(ip, d.port, ALICE);
    clients.push(c);
    await c.allocate(ip.includes(':') ? { family: 6 } : {});
    await c.channelBind(0x4000 + i, peer.address);
  }
  let received = 0;
  peer.onPacket = () => {
    received++;
  };
  // One client's burst at a time, each drained before the next: the peer's socket buffer (Linux's
  // default 208 KiB) holds a few hundred datagrams, and the threads relay faster than a test reads.
  for (const [i, c] of clients.entries()) {
    for (let k = 0; k < PACKETS; k++) await c.sendChannel(0x4000 + i, Buffer.alloc(100, k));
    for (let waited = 0; received < (i + 1) * PACKETS && waited < 2000; waited += 5) await sleep(5);
  }
  t.equal(received, 100 * PACKETS, 'the peer received every datagram (loopback, no loss)');

  text = await scrape(http);
  const perThread = byLabel(text, 'turn_data_plane_relayed_packets_total', 'thread');
  const shares = [...perThread.values()];
  t.equal(perThread.size, 2, 'two threads report');
  t.equal(
    shares.reduce((a, b) => a + b, 0),
    100 * PACKETS,
    'the threads relayed every packet once',
  );
  // 100 random source ports hashed over 2 sockets: each gets far more than 20% (binomial, p = 0.5).
  t.ok(
    shares.every((n) => n >= 0.2 * 100 * PACKETS),
    `both threads carry flows: ${shares.join(' / ')}`,
  );
  t.equal(
    sample(text, 'turn_relay_packets_total', 'direction="client_to_peer"'),
    100 * PACKETS,
    'turn_relay_packets_total agrees',
  );
  t.equal(total(text, 'turn_data_plane_upcall_drops_total'), 0, 'no upcall dropped');
  // 300 requests: 100 × (Allocate with its 401, ChannelBind).
  const control = total(text, 'turn_data_plane_control_datagrams_total');
  const upcalls = total(text, 'turn_data_plane_upcalls_total');
  if (steering) {
    t.equal(control, 300, 'steered: every TURN request went straight to the control plane');
    t.equal(upcalls, 0, 'steered: the threads handed nothing up');
  } else {
    t.equal(control, 0, 'not steered: no control socket');
    t.equal(upcalls, 300, 'not steered: the threads handed every TURN request up');
  }
}

t.test(
  'data-plane native where the addon cannot load: exit 78 naming the key; auto falls back',
  async (t) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TP_NATIVE_ADDON: '/nonexistent/turnpike_dataplane.node',
    };
    delete env['TURNPIKE_DATA_PLANE'];
    const r = spawnSync(process.execPath, [BIN, 'check-config', '--data-plane', 'native'], {
      env,
      encoding: 'utf8',
    });
    t.equal(r.status, 78, 'exit 78');
    t.match(r.stderr, /data-plane: native, but the native data plane is unavailable: not built/);

    const d = await startDaemon([...aliceOnLoopback()], {
      env: { TP_NATIVE_ADDON: '/nonexistent/x.node', TURNPIKE_DATA_PLANE: 'auto' },
    });
    t.teardown(() => d.stop());
    t.ok(
      d.lines.some((l) => l.includes('"dataPlane":"js"') && l.includes('native data plane unavailable')),
      'auto without the addon: the JS data plane, and the log says why',
    );
    const c = await TurnClient.connect('127.0.0.1', d.port, ALICE);
    t.teardown(() => c.close());
    const a = await c.allocate();
    t.ok(a.relayed.port > 0, 'TURN works on the JS data plane');
  },
);

t.test('data-plane js: the JS plane runs although the addon is built', async (t) => {
  const http = await freePort();
  const d = await startDaemon([...aliceOnLoopback(), '--prometheus', '--prometheus-port', String(http)], {
    env: { TURNPIKE_DATA_PLANE: 'js' },
  });
  t.teardown(() => d.stop());
  const text = await scrape(http);
  t.equal(sample(text, 'turn_data_plane_info', 'plane="js",threads="0"'), 1);
  t.ok(d.lines.some((l) => l.includes('"dataPlane":"js"') && l.includes('data-plane is js')));
});

t.test('kernel drops at full listening sockets are counted, per kind of socket', async (t) => {
  if (!built) {
    t.notOk(process.env['CI'], 'the addon is built in CI');
    return;
  }
  const http = await freePort();
  // The smallest receive buffers the kernel grants (it doubles 4096, and keeps a floor): a few dozen
  // datagrams each. The daemon is stopped while 400 TURN requests and 400 ChannelData messages
  // arrive, so most of them cannot be queued.
  const d = await startDaemon(
    [
      ...aliceOnLoopback(),
      '--data-plane',
      'native',
      '--relay-threads',
      '1',
      '--sock-buf-size',
      '4096',
      '--prometheus',
      '--prometheus-port',
      String(http),
    ],
    { env: { TURNPIKE_DATA_PLANE: 'native' } },
  );
  t.teardown(() => d.stop());
  let text = await scrape(http);
  t.equal(sample(text, 'turn_data_plane_socket_drops_total', 'socket="listener"'), 0, 'no drops yet');
  t.equal(sample(text, 'turn_data_plane_socket_drops_total', 'socket="control"'), 0);
  const before = total(text, 'turn_data_plane_control_datagrams_total');

  const sender = createSocket('udp4');
  t.teardown(() => sender.close());
  await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
  const N = 400;
  const pid = d.proc.pid!;
  process.kill(pid, 'SIGSTOP');
  try {
    for (let i = 0; i < N; i++) {
      const allocate = Buffer.alloc(20);
      allocate.writeUInt16BE(0x0003, 0); // Allocate request: steered to the control socket
      allocate.writeUInt32BE(0x2112a442, 4);
      allocate.writeUInt32BE(i, 16);
      const channel = Buffer.from([0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]); // to the thread's socket
      await new Promise<void>((resolve, reject) =>
        sender.send(allocate, d.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
      );
      await new Promise<void>((resolve, reject) =>
        sender.send(channel, d.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
      );
    }
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  let control = 0;
  let read = 0;
  for (let waited = 0; waited < 5000; waited += 50) {
    text = await scrape(http);
    control = sample(text, 'turn_data_plane_socket_drops_total', 'socket="control"') ?? -1;
    read = total(text, 'turn_data_plane_control_datagrams_total') - before;
    if (control + read >= N) break;
    await sleep(50);
  }
  const listener = sample(text, 'turn_data_plane_socket_drops_total', 'socket="listener"') ?? -1;
  t.ok(control > N / 2, `the control socket dropped ${control} of ${N} TURN requests`);
  t.equal(control + read, N, 'every TURN request was either read by the control plane or counted as dropped');
  t.ok(listener > N / 2, `the thread's socket dropped ${listener} of ${N} ChannelData messages`);
  t.ok(listener <= N);
  const c = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => c.close());
  t.ok((await c.allocate()).relayed.port > 0, 'the daemon serves on after the flood');
});
