/**
 * The relay limits end to end, on whichever data plane the daemon runs (CI runs the suite natively
 * and with TURNPIKE_DATA_PLANE=js):
 *  - `relay-payload-policy webrtc`: QUIC-shaped and tunnelled-TCP datagrams refused client→peer
 *    (ChannelData and Send indications) and peer→client (ChannelData and Data indications); STUN,
 *    DTLS, RTP and RTCP relayed; counted in `turn_packets_dropped_total{reason="payload_policy"}`,
 *    per allocation and per user in `/admin/allocations`; an allocation mostly refused logged once;
 *    `any` again on SIGHUP;
 *  - `max-bps`: the load tool offering 3× the limit receives the limit ±10% at the peer; a flow
 *    under the limit loses nothing;
 *  - `user-max-bps` (two allocations of one user, peer→client) and `bps-capacity` (set live by SIGHUP).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { testDir } from '../fixtures/helpers/certificates.js';
import { type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { bench } from '../fixtures/helpers/load-tool.js';
import { TUNNEL_PAYLOADS, WEBRTC_PAYLOADS } from '../fixtures/helpers/payloads.js';
import { sample, scrape } from '../fixtures/helpers/prometheus.js';
import { sleep, TestPeer, TurnClient, type TurnCredentials } from '../fixtures/helpers/turn-client.js';

const ALICE: TurnCredentials = { username: 'alice', password: 'wonderland', realm: 'example.test' };
const TOKEN = 'relay-limits-token-0123456789';

interface Started {
  d: Daemon;
  http: number;
  file: string;
  base: Record<string, unknown>;
  /** Rewrites the configuration file with `extra` and reloads (SIGHUP); resolves once reloaded. */
  reload(extra: Record<string, unknown>): Promise<void>;
}

async function start(t: Test, extra: Record<string, unknown>): Promise<Started> {
  const file = join(testDir(t, 'turnpike-limits-'), 'turnpike.json');
  const http = await freePort();
  const base = {
    'listening-ip': ['127.0.0.1'],
    realm: 'example.test',
    user: ['alice:wonderland'],
    'allowed-peer-ip': ['127.0.0.1'],
    'no-tcp': true,
    'no-tls': true,
    prometheus: true,
    'prometheus-port': http,
    'api-token': TOKEN,
  };
  writeFileSync(file, JSON.stringify({ ...base, ...extra }));
  const d = await startDaemon(['--config', file]);
  t.teardown(() => d.stop());
  let reloads = 0;
  return {
    d,
    http,
    file,
    base,
    async reload(next) {
      writeFileSync(file, JSON.stringify({ ...base, ...next }));
      reloads++;
      d.proc.kill('SIGHUP');
      for (let i = 0; i < 100; i++) {
        if (d.lines.filter((l) => l.includes('"configuration reloaded')).length >= reloads) return;
        await sleep(50);
      }
      throw new Error('no reload in the log');
    },
  };
}

const hex = (bufs: Iterable<Buffer>): string[] => [...bufs].map((b) => b.toString('hex')).sort();

t.test('relay-payload-policy webrtc: tunnels refused both ways, WebRTC relayed, counted', async (t) => {
  const s = await start(t, { 'relay-payload-policy': 'webrtc' });
  const c = await TurnClient.connect('127.0.0.1', s.d.port, ALICE);
  t.teardown(() => c.close());
  const a = await c.allocate();
  const peer = await TestPeer.bind('127.0.0.1');
  const other = await TestPeer.bind('127.0.0.1'); // no channel: Data indications
  t.teardown(() => Promise.all([peer.close(), other.close()]));
  await c.channelBind(0x4000, peer.address);
  await c.createPermission(other.address);

  const tunnels = Object.values(TUNNEL_PAYLOADS);
  const webrtc = Object.values(WEBRTC_PAYLOADS);
  const refusedEachWay = 2 * (tunnels.length + 1); // two paths each way; the empty datagram too
  // Client → peer: ChannelData and Send indications.
  for (const p of [...tunnels, Buffer.alloc(0), ...webrtc]) {
    await c.sendChannel(0x4000, p);
    await c.send(peer.address, p);
  }
  const atPeer = await peer.collect(400);
  t.same(
    hex(atPeer.map((p) => p.data)),
    hex([...webrtc, ...webrtc]),
    'the peer received the WebRTC datagrams (both paths), and nothing else',
  );

  // Peer → client: ChannelData (the bound peer) and Data indications (the other one).
  c.clearData();
  for (const p of [...tunnels, Buffer.alloc(0), ...webrtc]) {
    await peer.send(p, a.relayed);
    await other.send(p, a.relayed);
  }
  const atClient = await c.collectData(400);
  t.same(
    hex(atClient.map((e) => e.data)),
    hex([...webrtc, ...webrtc]),
    'the client received the WebRTC datagrams (ChannelData and Data indications), and nothing else',
  );
  t.same(
    atClient.map((e) => e.kind).sort(),
    [...webrtc.map(() => 'channel'), ...webrtc.map(() => 'indication')].sort(),
  );

  const refused = 2 * refusedEachWay;
  const text = await scrape(s.http);
  t.equal(sample(text, 'turn_packets_dropped_total', 'reason="payload_policy"'), refused, 'metric by reason');
  const admin = async () => {
    const r = await fetch(`http://127.0.0.1:${s.http}/admin/allocations`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return (await r.json()) as {
      allocations: { dropped: { payloadPolicy: number; bandwidth: number }; toPeer: { packets: number } }[];
      users: { user: string; dropped: { payloadPolicy: number } }[];
    };
  };
  let list = await admin();
  t.same(list.allocations[0]?.dropped, { payloadPolicy: refused, bandwidth: 0 }, 'per allocation');
  t.equal(list.allocations[0]?.toPeer.packets, 2 * webrtc.length);
  t.same(list.users, [{ user: 'alice', allocations: 1, dropped: { payloadPolicy: refused, bandwidth: 0 } }]);

  // Mostly refused (100 refused, more than relayed): one warn line with the user and client.
  for (let i = 0; i < 100; i++) await c.sendChannel(0x4000, TUNNEL_PAYLOADS['quicLong']!);
  const warned = (): string[] => s.d.lines.filter((l) => l.includes('mostly refused'));
  for (let i = 0; i < 80 && warned().length === 0; i++) await sleep(50);
  t.equal(warned().length, 1, 'logged');
  t.match(JSON.parse(warned()[0]!), {
    level: 'warn',
    user: 'alice',
    client: `udp:127.0.0.1:${c.socket.address().port}`,
    refused: Number,
  });
  await sleep(2500);
  t.equal(warned().length, 1, 'once per allocation');

  // Live: `any` again on SIGHUP.
  await s.reload({});
  await c.sendChannel(0x4000, TUNNEL_PAYLOADS['quicLong']!);
  t.same(hex((await peer.collect(300)).map((p) => p.data)), hex([TUNNEL_PAYLOADS['quicLong']!]), 'relayed');
  list = await admin();
  t.equal(list.allocations[0]?.dropped.payloadPolicy, refused + 100, 'nothing more refused');
});

/** The load tool against the daemon for `args` (1 s warm-up, 3 s measured). */
async function load(s: Started, args: string[]) {
  const { code, out } = await bench([
    '--server',
    `127.0.0.1:${s.d.port}`,
    '--user',
    'alice',
    '--password',
    'wonderland',
    '--warmup',
    '1',
    '--duration',
    '3',
    ...args,
  ]);
  if (code !== 0 || out.result === undefined) throw new Error(`turnpike-bench: ${code} ${out.error}`);
  return out.result;
}

/** Payload bytes per second received, from a load-tool result with `size`-byte packets. */
const bytesPerSec = (r: { receivedPps: number }, size: number): number => r.receivedPps * size;

const LIMIT = 250_000; // bytes/s
const SIZE = 1000;

t.test('max-bps: 3× the limit offered, the limit ±10% at the peer; under it, nothing lost', async (t) => {
  const s = await start(t, { 'max-bps': LIMIT });
  const over = await load(s, [
    '--allocations',
    '1',
    '--total-rate',
    String((3 * LIMIT) / SIZE),
    '--size',
    String(SIZE),
  ]);
  const got = bytesPerSec(over, SIZE);
  t.ok(
    Math.abs(got - LIMIT) <= 0.1 * LIMIT,
    `received ${Math.round(got)} B/s of ${3 * LIMIT} offered (limit ${LIMIT})`,
  );
  const under = await load(s, [
    '--allocations',
    '1',
    '--total-rate',
    String((0.6 * LIMIT) / SIZE),
    '--size',
    String(SIZE),
  ]);
  t.ok(under.sent > 0);
  t.equal(under.received, under.sent, `under the limit: ${under.received} of ${under.sent} received`);
  const text = await scrape(s.http);
  t.ok((sample(text, 'turn_packets_dropped_total', 'reason="max_bps"') ?? 0) > 0, 'drops counted as max_bps');
});

t.test('user-max-bps across two allocations, then bps-capacity set live by SIGHUP', async (t) => {
  const s = await start(t, { 'user-max-bps': LIMIT });
  const twoAllocations = ['--allocations', '2', '--direction', 'p2c', '--size', String(SIZE)];
  const user = await load(s, [...twoAllocations, '--total-rate', String((3 * LIMIT) / SIZE)]);
  const got = bytesPerSec(user, SIZE);
  t.ok(
    Math.abs(got - LIMIT) <= 0.1 * LIMIT,
    `one user's two allocations: ${Math.round(got)} B/s at the clients`,
  );

  await s.reload({ 'bps-capacity': LIMIT / 2 });
  const server = await load(s, [...twoAllocations, '--total-rate', String((1.5 * LIMIT) / SIZE)]);
  const gotServer = bytesPerSec(server, SIZE);
  t.ok(
    Math.abs(gotServer - LIMIT / 2) <= 0.1 * (LIMIT / 2),
    `bps-capacity ${LIMIT / 2}: ${Math.round(gotServer)} B/s (user-max-bps 0 now)`,
  );
  const text = await scrape(s.http);
  t.ok(
    (sample(text, 'turn_packets_dropped_total', 'reason="user_max_bps"') ?? 0) > 0,
    'user_max_bps counted',
  );
  t.ok(
    (sample(text, 'turn_packets_dropped_total', 'reason="bps_capacity"') ?? 0) > 0,
    'bps_capacity counted',
  );
});
