/**
 * Interop for RFC 8016 mobility: coturn's turnutils_uclient in its mobility mode (-M) against
 * turnpike with `mobility` on, in the data plane this run uses (two native threads in the native
 * pass, so moves land on either thread). With -M uclient asks for a ticket in every Allocate, then
 * opens a new socket (closing the old one half the time) and sends a Refresh with the ticket from
 * it — a move — before it binds channels and streams to turnutils_peer from the new socket.
 * Every allocation must move once, and the stream lose nothing.
 */
import t from 'tap';
import { assertHealthy } from '../fixtures/helpers/assertions.js';
import { freePort, metricsArgs, startDaemon } from '../fixtures/helpers/daemon.js';
import { byLabel, sample, scrape, total } from '../fixtures/helpers/prometheus.js';
import { freeUdpRange } from '../fixtures/helpers/turn-client.js';
import { runUclient, startPeer, uclientArgs, uclientSkip } from '../fixtures/helpers/uclient.js';

const CLIENTS = 10;
const MESSAGES = 100;

t.test('turnutils_uclient -M (mobility) through turnpike', { skip: uclientSkip }, async (t) => {
  const peerPort = await freeUdpRange(2);
  const metricsPort = await freePort();
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    'example.test',
    '--user',
    'alice:wonderland',
    '--allowed-peer-ip',
    '127.0.0.1',
    // coturn 4.6.1's uclient binds channels in 0x4000-0x7FFF (RFC 5766).
    '--rfc5766-channel-numbers',
    '--mobility',
    '--relay-threads',
    '2',
    ...metricsArgs(metricsPort),
  ]);
  t.teardown(() => d.stop());
  await startPeer(t, peerPort);
  const r = await runUclient([
    '-M',
    ...uclientArgs({ port: d.port, clients: CLIENTS, messages: MESSAGES, peerPort }),
  ]);
  const text = await scrape(metricsPort);
  const created = sample(text, 'turn_allocations_created_total') ?? 0;
  const moves = sample(text, 'turn_mobility_moves_total') ?? 0;
  const refused = total(text, 'turn_mobility_refused_total');
  t.comment(
    `${(r.durationMs / 1000).toFixed(1)} s: sent ${r.sent}, received ${r.received}, lost ${r.lost}; ` +
      `RTT avg ${r.rtt?.avg} ms, max ${r.rtt?.max} ms; ${created} allocations, ${moves} moves, ${refused} refused`,
  );
  t.equal(r.exitCode, 0, 'uclient exit code 0');
  t.ok(r.sent >= CLIENTS * MESSAGES, `sent ${r.sent} ≥ ${CLIENTS * MESSAGES}`);
  t.equal(r.lost, 0, 'Total lost packets 0');
  t.equal(r.received, r.sent, 'tot_recv_msgs == tot_send_msgs');
  // uclient makes probe allocations and the RTP and RTCP ones (15 for -m 10): every one moves.
  t.ok(created >= CLIENTS, `allocations: ${created}`);
  t.equal(moves, created, 'every allocation moved once (a Refresh with its ticket from a new socket)');
  t.equal(refused, 0, 'no ticket refused');
  t.same(byLabel(text, 'turn_stun_errors_total', 'code').get('405') ?? 0, 0, 'no 405');
  t.ok(
    d.lines.some((l) => l.includes('allocation moved (RFC 8016 mobility)') && l.includes('"user":"alice"')),
    'the moves are logged',
  );
  if (r.lost !== 0 || r.exitCode !== 0) t.comment(r.output.split('\n').slice(-40).join('\n'));
  assertHealthy(t, d);
});
