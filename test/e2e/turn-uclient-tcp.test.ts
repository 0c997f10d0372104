/**
 * Interop acceptance for RFC 6062: coturn's `turnutils_uclient -T` (TCP relay) through turnpike.
 * `-T` implies client-to-client (`-y`): each pair of uclient sessions allocates two TCP relays,
 * installs permissions for each other's relayed address, and one Connects to the other's relay; the
 * other hears a ConnectionAttempt; both bind data connections with ConnectionBind and exchange the
 * messages over them. No separate peer is involved, and the daemon runs with the default peer
 * policy (no allowed-peer-ip): a connection between two of its own relays is allowed.
 *
 * TLS (`-T -S`) is not run: coturn 4.6.1's uclient first offers TLS 1.0/1.1 on every connection
 * and, on the data connections, often does not retry with TLS 1.2+ after the refusal, so whole
 * sessions never start (a client limitation, seen as "tls_connect: cannot connect"). turnpike's TLS
 * data connections are covered by turn-tcp-relay.test.ts with this suite's own client.
 */
import t from 'tap';
import { assertHealthy } from '../fixtures/helpers/assertions.js';
import { freePort, metricsArgs, startDaemon } from '../fixtures/helpers/daemon.js';
import { byLabel, sample, scrape } from '../fixtures/helpers/prometheus.js';
import { runUclient, uclientArgs, uclientSkip } from '../fixtures/helpers/uclient.js';

const CLIENTS = 10;
const MESSAGES = 100;
/** uclient's default message length (-l). */
const LENGTH = 100;

t.test('turnutils_uclient -T (RFC 6062 TCP relay) through turnpike', { skip: uclientSkip }, async (t) => {
  const metricsPort = await freePort();
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    'example.test',
    '--user',
    'alice:wonderland',
    '--tcp-relay',
    ...metricsArgs(metricsPort),
  ]);
  t.teardown(() => d.stop());

  const r = await runUclient(['-T', ...uclientArgs({ port: d.port, clients: CLIENTS, messages: MESSAGES })]);
  const text = await scrape(metricsPort);
  const outcomes = byLabel(text, 'turn_tcp_relay_connections_total', 'outcome');
  const requests = (method: string, result: string): number =>
    sample(text, 'turn_stun_requests_total', `method="${method}",result="${result}"`) ?? 0;
  const toPeer = sample(text, 'turn_relay_bytes_total', 'direction="client_to_peer"') ?? 0;
  const toClient = sample(text, 'turn_relay_bytes_total', 'direction="peer_to_client"') ?? 0;
  t.comment(
    `uclient -T -m ${CLIENTS} -n ${MESSAGES}: ${(r.durationMs / 1000).toFixed(1)} s; sent ${r.sent}, ` +
      `received ${r.received}, lost ${r.lost}; RTT avg ${r.rtt?.avg} ms, max ${r.rtt?.max} ms; ` +
      `Connect ${requests('Connect', 'success')} ok / ${requests('Connect', 'error')} refused, ` +
      `ConnectionBind ${requests('ConnectionBind', 'success')} ok / ${requests('ConnectionBind', 'error')} refused; ` +
      `peer connections opened ${outcomes.get('opened')}, bound ${outcomes.get('bound')}; ` +
      `relayed ${toPeer} B client→peer, ${toClient} B peer→client`,
  );
  if (r.exitCode !== 0 || r.lost !== 0 || r.received !== r.sent)
    t.comment(r.output.split('\n').slice(-40).join('\n'));
  t.equal(r.exitCode, 0, 'uclient exit code 0');
  t.notMatch(r.output, /not enough/, 'every session got its data connections');
  t.ok(r.sent >= CLIENTS * MESSAGES, `sent ${r.sent} ≥ ${CLIENTS * MESSAGES}`);
  t.equal(r.received, r.sent, 'tot_recv_msgs == tot_send_msgs');
  t.equal(r.lost, 0, 'Total lost packets 0');
  t.ok(requests('Connect', 'success') > 0, 'Connect used');
  t.equal(requests('ConnectionBind', 'error'), 0, 'no ConnectionBind refused');
  t.equal(outcomes.get('bound'), outcomes.get('opened'), 'every peer connection opened was bound');
  // Each message crosses the relay twice (A's data connection → A's relay → B's relay → B's data
  // connection): once as client → peer at A's allocation, once as peer → client at B's.
  t.equal(toPeer, r.sent * LENGTH, 'every byte sent relayed toward the peer');
  t.equal(toClient, toPeer, 'and every byte delivered to the receiving client');
  t.ok(
    d.lines.some((l) => l.includes('"allocation created"') && l.includes('"relayTransport":"tcp"')),
    'TCP allocations logged as such',
  );
  assertHealthy(t, d);
});
