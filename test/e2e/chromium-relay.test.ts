/**
 * Acceptance: headless Chromium through turnpike. Two RTCPeerConnections in one page, both with
 * iceTransportPolicy 'relay' and turnpike as their only ICE server, connect relay-to-relay, open a data
 * channel and send 200 messages each way. Four cases: TURN over UDP with a static user and with TURN
 * REST API credentials (use-auth-secret), TURN over TCP (`turn:…?transport=tcp`) and TURN over TLS
 * (`turns:…?transport=tcp`, a self-signed certificate made with the openssl CLI for the test). Over
 * TCP and TLS only the client-to-server leg changes: the relays, and so the candidates, stay UDP, and
 * getStats' `relayProtocol` of the local candidate says which transport reached the TURN server.
 *
 * What the browser reports (getStats on both sides) is checked against what the daemon logs
 * ("allocation created" with the client transport and the relay addresses, "allocation deleted" with
 * the packet counters).
 *
 * TURN over TLS and the certificate: Chromium verifies a TURN server's certificate like any other and
 * rejects a self-signed one (TLS alert certificate_unknown, icecandidateerror 701, no allocation; the
 * case checks this first with the ordinary browser). The TLS case then launches a second Chromium with
 * `--ignore-certificate-errors-spki-list=<base64 SHA-256 of the certificate's SPKI>` (trustSpkiArgs in
 * the helper, which documents what was tried): that accepts this one key only, where
 * `--ignore-certificate-errors` would accept anything.
 *
 * Chromium and loopback: the TURN server and the relay addresses are all 127.0.0.1. Chromium 156 does
 * not filter a TURN URL or relay candidates on loopback, but WebRTC's network manager ignores loopback
 * *interfaces* when it enumerates networks to gather on: on a host (or network namespace, as some CI
 * runners are) whose only interface is `lo`, it finds no network at all, gathers no candidate, creates
 * no allocation and raises no icecandidateerror; the page just waits (seen here in a netns with only
 * `lo`). `--allow-loopback-in-peer-connection` (see CHROMIUM_ARGS) lets it gather on `lo`. On a host
 * with another interface the test passes with or without that flag.
 */
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import t from 'tap';
import {
  type CandidateInfo,
  CHROMIUM,
  chromiumAvailable,
  type IceServer,
  launchChromium,
  type RelayPairResult,
  restCredentials,
  runRelayPair,
  spkiPin,
  trustSpkiArgs,
} from '../fixtures/helpers/browser-chromium.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { freePort, relayRange, startDaemon } from '../fixtures/helpers/daemon.js';
import { logged, waitUntil } from '../fixtures/helpers/daemon-log.js';

const MESSAGES = 200;
/** The page's own bound; a passing run takes well under a second. */
const PAGE_TIMEOUT_MS = 8000;
/** The TLS case's first run, expected to fail while gathering (in a few hundred ms). */
const REJECTED_PAGE_TIMEOUT_MS = 4000;
const REALM = 'example.test';
const SECRET = 'turnpike-chromium-test-secret';

/** How Chromium reaches the TURN server (getStats' relayProtocol); the relay side is always UDP. */
type Transport = 'udp' | 'tcp' | 'tls';

interface Case {
  readonly name: string;
  readonly transport: Transport;
  readonly args: readonly string[];
  readonly credentials: () => { username: string; credential: string };
  /** The user id the daemon logs for the allocations. */
  readonly user: string;
}

/** The relay carries WebRTC only (RFC 7983 first bytes): a browser's call must lose nothing to it. */
const WEBRTC_ONLY = ['--relay-payload-policy', 'webrtc'] as const;

const staticUser = {
  args: ['--user', 'alice:wonderland'],
  credentials: () => ({ username: 'alice', credential: 'wonderland' }),
  user: 'alice',
} as const;

const CASES: readonly Case[] = [
  {
    name: 'static user (long-term credentials), relay-payload-policy webrtc',
    transport: 'udp',
    ...staticUser,
    args: [...staticUser.args, ...WEBRTC_ONLY],
  },
  {
    name: 'TURN REST API credentials (use-auth-secret)',
    transport: 'udp',
    args: ['--use-auth-secret', '--static-auth-secret', SECRET],
    credentials: () => restCredentials(SECRET, 'webrtc-test', 3600),
    user: 'webrtc-test',
  },
  {
    name: 'TURN over TCP (turn:?transport=tcp), relay-payload-policy webrtc',
    transport: 'tcp',
    ...staticUser,
    args: [...staticUser.args, ...WEBRTC_ONLY],
  },
  { name: 'TURN over TLS (turns:?transport=tcp, self-signed certificate)', transport: 'tls', ...staticUser },
];

function show(c: CandidateInfo | null | undefined): string {
  return c ? `${c.candidateType} ${c.protocol ?? '?'} ${c.address ?? '?'}:${c.port ?? '?'}` : 'none';
}

function pageDiag(result: RelayPairResult | undefined): unknown {
  return (
    result && {
      outcome: result.outcome,
      error: result.error,
      events: result.events,
      candidates: result.candidates,
      gatheringErrors: result.gatheringErrors,
      helloReceived: result.helloReceived,
      channelStates: result.channelStates,
      sctpStates: result.sctpStates,
      stats: result.stats,
    }
  );
}

const skip =
  !chromiumAvailable() && !process.env['CI'] ? `${CHROMIUM} not installed (CI installs it)` : false;

t.test('headless Chromium through turnpike', { skip, timeout: 60000 }, async (t) => {
  if (!chromiumAvailable()) {
    t.fail(`${CHROMIUM} is missing and CI is set: .ci/run must install Debian's chromium package`);
    return;
  }
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  t.comment(`Chromium ${browser.version()}`);

  for (const c of CASES) {
    t.test(c.name, { timeout: c.transport === 'tls' ? 20000 : 15000 }, async (t) => {
      // A window of relay ports no other test uses (busy ports are skipped by the pool).
      const [minPort, maxPort] = relayRange();
      const tlsArgs: string[] = [];
      let tls: { port: number; pin: string } | undefined;
      if (c.transport === 'tls') {
        const dir = testDir(t, 'turnpike-chromium-tls-');
        let made: ReturnType<typeof makeCertificate>;
        try {
          made = makeCertificate(dir);
        } catch (err) {
          t.fail(`openssl could not make the certificate (.ci/run installs openssl): ${String(err)}`);
          return;
        }
        tls = { port: await freePort(), pin: spkiPin(await readFile(made.cert, 'utf8')) };
        tlsArgs.push('--tls-listening-port', String(tls.port), '--cert', made.cert, '--pkey', made.key);
      }
      const d = await startDaemon([
        '--listening-ip',
        '127.0.0.1',
        '--realm',
        REALM,
        ...c.args,
        ...tlsArgs,
        '--allowed-peer-ip',
        '127.0.0.1',
        '--min-port',
        String(minPort),
        '--max-port',
        String(maxPort),
      ]);
      t.teardown(() => d.stop());
      const url =
        tls === undefined
          ? `turn:127.0.0.1:${d.port}?transport=${c.transport}`
          : `turns:127.0.0.1:${tls.port}?transport=tcp`;
      const iceServer: IceServer = { urls: url, ...c.credentials() };

      let pageBrowser: Browser = browser;
      if (tls !== undefined) {
        // First the ordinary browser: it must refuse the self-signed certificate, or the pin below
        // would prove nothing (and Chromium would not be verifying TURN server certificates at all).
        const rejected = await runRelayPair(browser, {
          iceServer,
          messages: MESSAGES,
          timeoutMs: REJECTED_PAGE_TIMEOUT_MS,
        });
        const diag = { page: pageDiag(rejected), daemonLog: d.lines };
        t.equal(rejected.outcome, 'error', 'without the pin: the page fails', diag);
        t.match(rejected.error, /gathered no relay candidate/, 'without the pin: no relay candidate', diag);
        t.ok(rejected.gatheringErrors.length > 0, 'without the pin: icecandidateerror raised', diag);
        t.ok(
          rejected.gatheringErrors.every((e) => e['errorCode'] === 701 && e['url'] === url),
          'without the pin: every icecandidateerror is 701 for the turns: URL',
          diag,
        );
        t.equal(logged(d.lines, 'allocation created').length, 0, 'without the pin: no allocation', diag);
        t.comment(
          `without the pin: ${rejected.error?.split('\n')[0]} after ${rejected.elapsedMs} ms ` +
            `(${rejected.gatheringErrors.map((e) => `${e['pc']} ${e['errorCode']} ${e['errorText']}`).join('; ')})`,
        );
        const args = trustSpkiArgs(tls.pin);
        pageBrowser = await launchChromium(10000, args);
        t.teardown(() => pageBrowser.close());
        t.comment(`TLS: second Chromium with ${args.join(' ')}`);
      }

      let result: RelayPairResult | undefined;
      let pageError: unknown;
      try {
        result = await runRelayPair(pageBrowser, {
          iceServer,
          messages: MESSAGES,
          timeoutMs: PAGE_TIMEOUT_MS,
        });
      } catch (err) {
        pageError = err;
      }
      // The page is closed now; Chromium deallocates (Refresh lifetime 0). Whatever is left the
      // daemon deletes on SIGTERM, so every allocation ends with its "allocation deleted" counters.
      await waitUntil(
        () => logged(d.lines, 'allocation deleted').length >= logged(d.lines, 'allocation created').length,
        3000,
      );
      t.equal(await d.stop(), 0, 'daemon stops with exit 0');

      const diag = { daemonLog: d.lines, daemonStderr: d.stderr(), page: pageDiag(result) };
      if (result === undefined) {
        t.fail(`page failed: ${String(pageError)}\ndaemon log:\n${d.lines.join('\n')}`, diag);
        return;
      }
      const r = result;
      t.equal(r.outcome, 'ok', `page finished: ${r.error ?? r.outcome}`, diag);
      t.equal(r.received.b, MESSAGES, `a → b: ${r.received.b} of ${MESSAGES} messages arrived`, diag);
      t.equal(r.received.a, MESSAGES, `b → a: ${r.received.a} of ${MESSAGES} messages arrived`, diag);
      t.same(r.bad, { a: 0, b: 0 }, 'no message altered');
      t.same(r.outOfOrder, { a: 0, b: 0 }, 'ordered channel: messages in order');

      const relayPorts: number[] = [];
      for (const side of ['a', 'b'] as const) {
        const pair = r.stats[side].pair;
        t.ok(pair, `${side}: getStats has a selected candidate pair`, diag);
        // Chromium sets a pair back to 'in-progress' while one of its checks (ICE consent, every few
        // seconds) awaits an answer, so a pair that has succeeded can read either way; the answers it
        // got are what show the checks through the relays succeeded.
        t.match(
          pair?.state,
          /^(succeeded|in-progress)$/,
          `${side}: selected pair state ${pair?.state}`,
          diag,
        );
        t.equal(pair?.nominated, true, `${side}: selected pair nominated`, diag);
        t.ok(
          (pair?.responsesReceived ?? 0) > 0,
          `${side}: ${pair?.responsesReceived} of ${pair?.requestsSent} connectivity checks answered`,
          diag,
        );
        t.equal(pair?.local?.candidateType, 'relay', `${side}: local candidate is relay`, diag);
        t.equal(pair?.remote?.candidateType, 'relay', `${side}: remote candidate is relay`, diag);
        // relayProtocol is defined for local candidates only (the client-to-TURN transport); the
        // relay itself, and so the candidate's protocol, is UDP whatever reached the server.
        t.equal(
          pair?.local?.relayProtocol,
          c.transport,
          `${side}: local relayProtocol is ${c.transport}`,
          diag,
        );
        t.equal(pair?.local?.url, url, `${side}: local candidate from ${url}`, diag);
        for (const end of ['local', 'remote'] as const) {
          const cand = pair?.[end];
          t.equal(cand?.protocol, 'udp', `${side} ${end}: protocol udp`);
          t.equal(cand?.address, '127.0.0.1', `${side} ${end}: relay address 127.0.0.1`, diag);
          const port = cand?.port ?? -1;
          t.ok(
            port >= minPort && port <= maxPort,
            `${side} ${end}: relay port ${port} in [${minPort}, ${maxPort}]`,
            diag,
          );
        }
        if (pair?.local?.port != null) relayPorts.push(pair.local.port);
      }
      const [pa, pb] = [r.stats.a.pair, r.stats.b.pair];
      t.equal(pa?.local?.port, pb?.remote?.port, "a's relay is b's remote candidate");
      t.equal(pb?.local?.port, pa?.remote?.port, "b's relay is a's remote candidate");

      // The daemon's side: two allocations for the user, made over the case's transport, on exactly
      // the relays Chromium used.
      const created = logged(d.lines, 'allocation created');
      t.equal(created.length, 2, 'daemon logged two allocations', diag);
      t.same(
        created.map((l) => l.user),
        [c.user, c.user],
        `allocations belong to ${c.user}`,
      );
      t.ok(
        created.every((l) => l.client?.startsWith(`${c.transport}:127.0.0.1:`)),
        `allocations made over ${c.transport}: ${created.map((l) => l.client).join(', ')}`,
        diag,
      );
      t.same(
        created.flatMap((l) => l.relay ?? []).sort(),
        relayPorts.map((p) => `127.0.0.1:${p}`).sort(),
        'daemon relays are the selected relay candidates',
        diag,
      );
      const deleted = logged(d.lines, 'allocation deleted');
      t.equal(deleted.length, created.length, 'every allocation deleted', diag);
      for (const l of deleted) {
        // Each side's 200 messages (plus SCTP acks) went out through its own relay to the other.
        t.ok((l.toPeer?.packets ?? 0) >= MESSAGES, `relayed to peer: ${l.toPeer?.packets} packets`, diag);
        t.ok(
          (l.toClient?.packets ?? 0) >= MESSAGES,
          `relayed to client: ${l.toClient?.packets} packets`,
          diag,
        );
        if (c.args.includes('webrtc'))
          t.same(l.dropped, undefined, 'relay-payload-policy webrtc refused none of the call', diag);
      }

      t.comment(
        `${c.name}: ${url}; a → b ${r.received.b}/${MESSAGES}, b → a ${r.received.a}/${MESSAGES} in ` +
          `${r.elapsedMs} ms; a: ${show(pa?.local)} ⇄ ${show(pa?.remote)} (relayProtocol ` +
          `${pa?.local?.relayProtocol}); b: ${show(pb?.local)} ⇄ ${show(pb?.remote)} (relayProtocol ` +
          `${pb?.local?.relayProtocol}); relay ports [${minPort}, ${maxPort}]; daemon clients ` +
          `${created.map((l) => l.client).join(', ')}: ` +
          deleted
            .map(
              (l) =>
                `${l.reason} toPeer ${l.toPeer?.packets} pkts/${l.toPeer?.bytes} B, ` +
                `toClient ${l.toClient?.packets} pkts/${l.toClient?.bytes} B`,
            )
            .join('; '),
      );
    });
  }
});
