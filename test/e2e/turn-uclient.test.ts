/**
 * Interop acceptance: coturn's turnutils_uclient relays through turnpike to turnutils_peer (a UDP
 * echo server) over ChannelData, over Send/Data indications, and client to client, first with
 * static long-term credentials, then with TURN REST credentials. Every UDP run must lose nothing; over
 * TCP/TLS turnpike's own counters must show every message relayed both ways (see that test for why
 * uclient's count gets 1% of slack there).
 *
 * Debian's coturn 4.6.1 uclient picks channel numbers from RFC 5766's range 0x4000-0x7FFF; RFC
 * 8656 narrowed it to 0x4000-0x4FFF, so the daemon runs with --rfc5766-channel-numbers.
 *
 * uclient sends RTP to the peer port Q and RTCP to Q + 1; turnutils_peer listens on both.
 */
import t, { type Test } from 'tap';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { type Daemon, freePort, metricsArgs, startDaemon, tlsArgs } from '../fixtures/helpers/daemon.js';
import { sample, scrape, total } from '../fixtures/helpers/prometheus.js';
import { freeUdpRange, restCredentials, TurnClient } from '../fixtures/helpers/turn-client.js';
import { runUclient, startPeer, type UclientReport, uclientSkip } from '../fixtures/helpers/uclient.js';

const CLIENTS = 10;
const MESSAGES = 100;
const SECRET = 'rest-secret-for-tests';
const REALM = 'example.test';

const skip = uclientSkip;

const MODES = [
  { name: 'ChannelData', flags: [] as string[] },
  { name: 'Send indications', flags: ['-s'] },
  { name: 'client to client', flags: ['-y'] },
] as const;

async function startTurnpike(t: Test, auth: string[]): Promise<Daemon> {
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    REALM,
    ...auth,
    '--allowed-peer-ip',
    '127.0.0.1',
    // The relay range comes from startDaemon: 500 ports outside the ephemeral range, so the other
    // tests' client sockets cannot take them (uclient's EVEN-PORT pairs need two free ports).
    // coturn 4.6.1's uclient binds channels in 0x4000-0x7FFF (RFC 5766); RFC 8656 allows 0x4000-0x4FFF.
    '--rfc5766-channel-numbers',
  ]);
  t.teardown(() => d.stop());
  return d;
}

/** The three uclient modes at once against one daemon and one peer. */
async function interop(t: Test, d: Daemon, peerPort: number, credentials: string[]): Promise<void> {
  const base = ['-p', String(d.port), '-m', String(CLIENTS), '-n', String(MESSAGES), ...credentials];
  const reports = await Promise.all(
    MODES.map((mode) =>
      runUclient([...mode.flags, ...base, '-e', '127.0.0.1', '-r', String(peerPort), '127.0.0.1']),
    ),
  );
  for (const [i, mode] of MODES.entries()) {
    const r = reports[i]!;
    await t.test(`${mode.name}${mode.flags.length > 0 ? ` (${mode.flags.join(' ')})` : ''}`, async (t) => {
      t.comment(
        `${(r.durationMs / 1000).toFixed(1)} s: sent ${r.sent}, received ${r.received}, lost ${r.lost}; ` +
          `RTT avg ${r.rtt?.avg} ms, min ${r.rtt?.min} ms, max ${r.rtt?.max} ms; jitter avg ${r.jitterAvg} ms`,
      );
      t.equal(r.exitCode, 0, 'uclient exit code 0');
      t.ok(r.sent >= CLIENTS * MESSAGES, `sent ${r.sent} ≥ ${CLIENTS * MESSAGES}`);
      t.equal(r.lost, 0, 'Total lost packets 0');
      t.equal(r.received, r.sent, 'tot_recv_msgs == tot_send_msgs');
      if (r.lost !== 0 || r.exitCode !== 0) t.comment(r.output.split('\n').slice(-40).join('\n'));
    });
  }
}

t.test('turnutils_uclient through turnpike', { skip }, async (t) => {
  t.test('static long-term credentials (--user alice:wonderland)', async (t) => {
    const peerPort = await freeUdpRange(2);
    const d = await startTurnpike(t, ['--user', 'alice:wonderland']);
    await startPeer(t, peerPort);
    await interop(t, d, peerPort, ['-u', 'alice', '-w', 'wonderland']);
    t.ok(
      d.lines.some((l) => l.includes('"allocation created"') && l.includes('"user":"alice"')),
      'allocations logged for alice',
    );
    assertHealthy(t, d);
  });

  t.test('over TCP (-t) and TLS (-t -S): the client leg on a stream, the peer leg on UDP', async (t) => {
    const peerPort = await freeUdpRange(2);
    const tlsPort = await freePort();
    const metricsPort = await freePort();
    const { cert, key } = makeCertificate(testDir(t));
    // coturn 4.6.1's uclient first offers TLS 1.0 and 1.1 (refused: turnpike speaks TLS 1.2+), then
    // retries with TLS 1.2/1.3. Its 40 sessions all start with a 401 from 127.0.0.1: over TCP/TLS
    // those are not rate-limited (a stream client never retransmits a request).
    const d = await startTurnpike(t, [
      '--user',
      'alice:wonderland',
      ...tlsArgs({ cert, key }, tlsPort),
      ...metricsArgs(metricsPort),
    ]);
    await startPeer(t, peerPort);
    const counters = async (): Promise<{ toPeer: number; toClient: number; dropped: number }> => {
      const text = await scrape(metricsPort);
      return {
        toPeer: sample(text, 'turn_relay_packets_total', 'direction="client_to_peer"') ?? 0,
        toClient: sample(text, 'turn_relay_packets_total', 'direction="peer_to_client"') ?? 0,
        dropped: total(text, 'turn_packets_dropped_total'),
      };
    };
    const common = ['-m', String(CLIENTS), '-n', String(MESSAGES), '-u', 'alice', '-w', 'wonderland'];
    const peer = ['-e', '127.0.0.1', '-r', String(peerPort), '127.0.0.1'];
    // One after the other: each is 20 stream sessions; on a busy 2-core machine TLS run in
    // parallel with TCP made late echoes arrive after uclient stopped waiting (counted as lost).
    const runs: { name: string; report: UclientReport; toPeer: number; toClient: number; dropped: number }[] =
      [];
    for (const [name, flags] of [
      ['TCP (-t)', ['-t', '-p', String(d.port)]],
      ['TLS (-t -S)', ['-t', '-S', '-p', String(tlsPort)]],
    ] as const) {
      const before = await counters();
      const report = await runUclient([...flags, ...common, ...peer]);
      const after = await counters();
      runs.push({
        name,
        report,
        toPeer: after.toPeer - before.toPeer,
        toClient: after.toClient - before.toClient,
        dropped: after.dropped - before.dropped,
      });
    }
    for (const { name, report: r, toPeer, toClient, dropped } of runs) {
      await t.test(name, async (t) => {
        t.comment(
          `${(r.durationMs / 1000).toFixed(1)} s: sent ${r.sent}, received ${r.received}, lost ${r.lost}; ` +
            `RTT avg ${r.rtt?.avg} ms, max ${r.rtt?.max} ms; turnpike relayed ${toPeer} to the peer, ` +
            `${toClient} to the client, dropped ${dropped}`,
        );
        t.equal(r.exitCode, 0, 'uclient exit code 0');
        t.ok(r.sent >= CLIENTS * MESSAGES, `sent ${r.sent} ≥ ${CLIENTS * MESSAGES}`);
        // What turnpike controls, exactly: every message that came over the stream went to the peer,
        // every echo went back onto the client's stream, and nothing was dropped on the way.
        t.equal(toPeer, r.sent, 'turnpike relayed every message to the peer');
        t.equal(toClient, toPeer, 'turnpike relayed every echo back to the client');
        t.equal(dropped, 0, 'turnpike dropped nothing');
        // uclient itself, with 20 stream sessions on a busy 2-core machine, can miss a few of the
        // echoes turnpike wrote to its (reliable) stream: coturn 4.6.1 under the same CPU load lost
        // 0-2 of 1000 the same way. Its own count may fall short by at most 1%.
        t.ok(r.lost >= 0 && r.lost <= r.sent / 100, `uclient lost ${r.lost} ≤ 1% of ${r.sent}`);
        t.ok(r.received >= r.sent - r.sent / 100, 'tot_recv_msgs within 1% of tot_send_msgs');
        if (r.lost !== 0 || r.exitCode !== 0) t.comment(r.output.split('\n').slice(-40).join('\n'));
      });
    }
    t.ok(
      d.lines.some((l) => l.includes('"client":"tls:')),
      'allocations over TLS logged',
    );
    t.ok(
      d.lines.some((l) => l.includes('"client":"tcp:')),
      'allocations over TCP logged',
    );
    assertHealthy(t, d);
  });

  t.test('TURN REST credentials (--use-auth-secret; uclient -W secret, -u userid)', async (t) => {
    const peerPort = await freeUdpRange(2);
    const d = await startTurnpike(t, ['--use-auth-secret', '--static-auth-secret', SECRET]);
    await startPeer(t, peerPort);
    await interop(t, d, peerPort, ['-u', 'alice', '-W', SECRET]);
    t.ok(
      d.lines.some((l) => l.includes('"allocation created"') && l.includes('"user":"alice"')),
      'allocations counted for the REST userid alice',
    );

    await t.test('own client with REST credentials', async (t) => {
      const ok = await TurnClient.connect('127.0.0.1', d.port, {
        ...restCredentials(SECRET, 'carol'),
        realm: REALM,
      });
      t.teardown(() => ok.close());
      t.ok((await ok.allocate()).relayed.port > 0, 'valid REST credentials allocate');
      for (const [what, creds] of [
        ['another secret', restCredentials('not-the-secret', 'carol')],
        ['an expired username', restCredentials(SECRET, 'carol', -60)],
      ] as const) {
        const c = await TurnClient.connect('127.0.0.1', d.port, { ...creds, realm: REALM });
        t.teardown(() => c.close());
        t.equal(await refusalCode(c.allocate()), 401, `${what}: 401`);
      }
    });
    assertHealthy(t, d);
  });
});
