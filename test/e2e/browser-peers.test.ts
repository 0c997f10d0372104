/**
 * Two browsers, two processes, one call through turnpike: the NAT lab's browser side
 * (test/fixtures/lab: signaling.js, peer-page.js, the peer driver) on loopback, without namespaces.
 * Each case starts a daemon, and two peer drivers as child processes (each its own headless browser,
 * as the lab runs one per host namespace) that meet in a room of the signaling server, connect with
 * iceTransportPolicy 'relay' (so through turnpike or not at all), and send 200 data-channel messages
 * each way; the media case also sends a WebAudio oscillator each way and measures the RTP received.
 *
 * - Chromium ↔ Chromium, TURN over UDP.
 * - Chromium ↔ Firefox, TURN over UDP: Firefox's TURN client is another implementation (nICEr: Send
 *   indications, no channels), so this is the Firefox relay check of issue 12.
 * - Firefox ↔ Chromium with audio both ways (Firefox makes the offer): ~50 RTP packets/s (Opus,
 *   20 ms) received on each side, loss under 1%.
 * - Chromium ↔ Firefox over TURN/TLS (`turns:localhost`, a self-signed certificate): trusted by an
 *   SPKI pin in Chromium and by a certificate override in Firefox's profile (see peer.ts). Firefox
 *   ignores a `turns:` URL with an IP address, hence `localhost`. First, Firefox alone without the
 *   override must refuse the certificate (icecandidateerror 701, no allocation).
 *
 * Checked on both sides and against the daemon's log: the selected pair is relay ⇄ relay, each side's
 * relay is the other's remote candidate, the relays are allocations the daemon logged, they carried
 * the messages, and the browsers deleted them themselves when the pages closed (Refresh lifetime 0
 * over UDP, the connection closed over TLS) before the daemon is stopped. Firefox now and then
 * leaves behind an allocation it abandoned while gathering (no traffic; see below).
 *
 * Firefox and loopback: with no capture running, Firefox gathers only on the interface of the default
 * route (it finds it by connecting a UDP socket towards a public address); on a host without a
 * default route it gathers nothing. The Firefox cases say so instead of failing obscurely.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { logged, waitUntil } from '../fixtures/helpers/daemon-log.js';
import {
  browserAvailable,
  browserPath,
  type LabBrowser,
  type LabCandidate,
  type LabIceServer,
  type LabPeerOptions,
  type PeerRun,
  spawnPeer,
} from '../fixtures/lab/peer.js';

const SIGNALING = fileURLToPath(new URL('../fixtures/lab/signaling.js', import.meta.url));
const MESSAGES = 200;
const REALM = 'example.test';
/** Opus at 20 ms a packet. */
const EXPECTED_PPS = 50;

interface Case {
  readonly name: string;
  readonly a: LabBrowser;
  readonly b: LabBrowser;
  readonly transport: 'udp' | 'tls';
  readonly media: boolean;
  readonly timeoutMs: number;
}

const CASES: readonly Case[] = [
  {
    name: 'Chromium ↔ Chromium, TURN/UDP',
    a: 'chromium',
    b: 'chromium',
    transport: 'udp',
    media: false,
    timeoutMs: 15000,
  },
  {
    name: 'Chromium ↔ Firefox, TURN/UDP',
    a: 'chromium',
    b: 'firefox',
    transport: 'udp',
    media: false,
    timeoutMs: 15000,
  },
  {
    name: 'Firefox ↔ Chromium, TURN/UDP, audio both ways',
    a: 'firefox',
    b: 'chromium',
    transport: 'udp',
    media: true,
    timeoutMs: 20000,
  },
  {
    name: 'Chromium ↔ Firefox, TURN/TLS (turns:, self-signed)',
    a: 'chromium',
    b: 'firefox',
    transport: 'tls',
    media: false,
    timeoutMs: 15000,
  },
];

/** Bytes of the `n` data-channel messages one side sends (peer-page.js: `<from>:<i>:<body>`). */
function payloadBytes(n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += `a:${i}:`.length + 16 + ((i * 131) % 1009);
  return total;
}

/** An IPv4 default route in this namespace (/proc/net/route: destination 00000000). */
function hasDefaultRoute(): boolean {
  try {
    return readFileSync('/proc/net/route', 'utf8')
      .split('\n')
      .slice(1)
      .some((line) => line.split(/\s+/)[1] === '00000000');
  } catch {
    return true;
  }
}

/** Why a case cannot run here, or null. */
function missing(c: Case): string | null {
  for (const browser of new Set([c.a, c.b])) {
    if (!browserAvailable(browser)) {
      return `${browserPath(browser)} is not installed (.ci/run installs ${browser === 'chromium' ? 'chromium' : 'firefox-esr'})`;
    }
  }
  if ((c.a === 'firefox' || c.b === 'firefox') && !hasDefaultRoute()) {
    return 'no default route: Firefox gathers only on the default route interface (see the header)';
  }
  return null;
}

/** Starts signaling.js on 127.0.0.1 and resolves to its page URL; stopped (by PID) in teardown. */
async function startSignaling(t: Test): Promise<string> {
  const proc: ChildProcess = spawn(process.execPath, [SIGNALING, '127.0.0.1', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`signaling did not start: ${stderr}`)), 5000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve((JSON.parse(out.slice(0, nl)) as { listening: number }).listening);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`signaling exited (${code}): ${stderr}`));
    });
  });
  return `http://127.0.0.1:${port}/page`;
}

function summary(run: PeerRun | null): unknown {
  return (
    run && {
      browser: run.browserVersion,
      outcome: run.outcome,
      error: run.error,
      gathered: run.candidates.gathered,
      iceCandidateErrors: run.iceCandidateErrors,
      selectedPair: run.selectedPair,
      messages: run.messages,
      media: run.media,
      events: run.events,
    }
  );
}

const show = (run: PeerRun): string => {
  const p = run.selectedPair;
  const end = (c: LabCandidate | null) => (c ? `${c.candidateType} ${c.address}:${c.port}` : 'none');
  return (
    `${run.browserVersion} ${end(p?.local ?? null)} ⇄ ${end(p?.remote ?? null)} (relayProtocol ` +
    `${p?.local?.relayProtocol}, rtt ${run.currentRoundTripTime ?? '?'} s), connected at ` +
    `${run.timings.connected} ms, done at ${run.timings.done} ms, driver ${run.driverMs} ms`
  );
};

t.test(
  'browsers as separate peers through turnpike (the NAT lab on loopback)',
  { timeout: 90000 },
  async (t) => {
    // One signaling server for every case (each case its own room), when any case can run.
    const pageUrl = CASES.some((c) => missing(c) === null) ? await startSignaling(t) : '';

    for (const c of CASES) {
      const why = missing(c);
      const skip = why !== null && !process.env['CI'] ? why : false;
      t.test(c.name, { skip, timeout: c.timeoutMs + 25000 }, async (t) => {
        if (why !== null) {
          t.fail(`${why}; CI is set, so this must not be skipped`);
          return;
        }
        const daemonArgs = ['--listening-ip', '127.0.0.1', '--realm', REALM, '--user', 'alice:wonderland'];
        const certFiles: string[] = [];
        let url: string;
        if (c.transport === 'tls') {
          const made = makeCertificate(testDir(t, 'turnpike-browser-peers-'));
          const tlsPort = await freePort();
          daemonArgs.push('--tls-listening-port', String(tlsPort), '--cert', made.cert, '--pkey', made.key);
          certFiles.push(made.cert);
          url = `turns:localhost:${tlsPort}?transport=tcp`;
        }
        const d = await startDaemon([...daemonArgs, '--allowed-peer-ip', '127.0.0.1']);
        t.teardown(() => d.stop());
        url ??= `turn:127.0.0.1:${d.port}`;
        const iceServers: LabIceServer[] = [{ urls: url, username: 'alice', credential: 'wonderland' }];

        if (c.transport === 'tls') {
          // First Firefox on its own without the override: it must refuse the certificate, or the
          // override would prove nothing (and Firefox would not be verifying TURN servers at all).
          const { code, run, stderr } = await spawnPeer({
            browser: 'firefox',
            url: pageUrl,
            peer: {
              role: 'a',
              room: `t-${randomBytes(6).toString('hex')}`,
              iceServers,
              iceTransportPolicy: 'relay',
              timeoutMs: 8000,
            },
          }).done;
          const diag = { run: summary(run), stderr: stderr.slice(-3000), daemonLog: d.lines };
          t.equal(code, 0, 'untrusted: driver exit 0 (an ICE failure is a result)', diag);
          t.equal(run?.outcome, 'failed', 'untrusted: Firefox fails', diag);
          t.match(run?.error, /gathered no candidate/, 'untrusted: no candidate gathered', diag);
          t.ok(
            (run?.iceCandidateErrors.length ?? 0) > 0 &&
              run?.iceCandidateErrors.every((e) => e.code === 701 && e.url === url),
            `untrusted: icecandidateerror 701 for ${url}`,
            diag,
          );
          t.equal(logged(d.lines, 'allocation created').length, 0, 'untrusted: no allocation', diag);
          t.comment(`untrusted Firefox: ${run?.error} after ${run?.elapsedMs} ms`);
        }

        const room = `t-${randomBytes(6).toString('hex')}`;
        const peer = (role: 'a' | 'b'): LabPeerOptions => ({
          role,
          room,
          iceServers,
          iceTransportPolicy: 'relay',
          messages: MESSAGES,
          media: c.media,
          timeoutMs: c.timeoutMs,
        });
        const started = Date.now();
        const drive = (role: 'a' | 'b') =>
          spawnPeer({
            browser: role === 'a' ? c.a : c.b,
            url: pageUrl,
            peer: peer(role),
            trustCertFiles: certFiles,
          }).done;
        const [ra, rb] = await Promise.all([drive('a'), drive('b')]);
        const wallMs = Date.now() - started;
        // The browsers are closed: their allocations should be gone by their own doing already.
        await waitUntil(
          () => logged(d.lines, 'allocation deleted').length >= logged(d.lines, 'allocation created').length,
          3000,
        );
        const created = logged(d.lines, 'allocation created');
        const deleted = logged(d.lines, 'allocation deleted');
        t.equal(await d.stop(), 0, 'daemon stops with exit 0');
        // What the browsers left, deleted by the daemon's shutdown (with its counters).
        const atShutdown = logged(d.lines, 'allocation deleted').slice(deleted.length);

        const diag = {
          a: summary(ra.run),
          b: summary(rb.run),
          aStderr: ra.stderr.slice(-3000),
          bStderr: rb.stderr.slice(-3000),
          daemonLog: d.lines.filter((l) => l.includes('allocation')),
        };
        const runs: [string, LabBrowser, typeof ra][] = [
          ['a', c.a, ra],
          ['b', c.b, rb],
        ];
        for (const [side, browser, r] of runs) {
          t.equal(r.code, 0, `${side} (${browser}): driver exit 0`, {
            failure: r.failure,
            stderr: r.stderr.slice(-3000),
          });
          t.ok(r.run, `${side} (${browser}): one JSON result line`, { stdout: r.stdout.slice(-2000) });
        }
        const a = ra.run;
        const b = rb.run;
        if (a === null || b === null) return;

        for (const [side, browser, run, other] of [
          ['a', c.a, a, b],
          ['b', c.b, b, a],
        ] as const) {
          t.match(
            run.userAgent,
            browser === 'firefox' ? /Firefox\// : /Chrome\//,
            `${side} runs in ${browser}`,
          );
          t.equal(run.outcome, 'connected', `${side} (${browser}): connected`, diag);
          t.equal(run.error, null, `${side} (${browser}): no error`, diag);
          t.equal(
            run.messages.received,
            MESSAGES,
            `${side}: ${run.messages.received}/${MESSAGES} messages arrived`,
            diag,
          );
          t.equal(run.messages.bad, 0, `${side}: no message altered`, diag);
          t.equal(run.messages.outOfOrder, 0, `${side}: messages in order`, diag);
          t.equal(run.messages.peerReceived, MESSAGES, `${side}: the peer confirmed all ${MESSAGES}`, diag);
          t.same(run.gatheredTypes, ['relay'], `${side}: relay candidates only`, diag);
          const pair = run.selectedPair;
          t.equal(pair?.local?.candidateType, 'relay', `${side}: local candidate relay`, diag);
          t.equal(pair?.remote?.candidateType, 'relay', `${side}: remote candidate relay`, diag);
          t.equal(pair?.local?.relayProtocol, c.transport, `${side}: relayProtocol ${c.transport}`, diag);
          t.equal(pair?.local?.protocol, 'udp', `${side}: the relay itself is UDP`, diag);
          t.equal(pair?.local?.address, '127.0.0.1', `${side}: relay address 127.0.0.1`, diag);
          t.equal(
            pair?.remote?.port,
            other.selectedPair?.local?.port,
            `${side}: remote is the other's relay`,
            diag,
          );

          if (c.media) {
            const m = run.media;
            const w = m?.received?.window;
            t.equal(m?.audioContext, 'running', `${side}: AudioContext running`, diag);
            t.equal(m?.codec?.mimeType.toLowerCase(), 'audio/opus', `${side}: Opus`, diag);
            t.ok(
              w !== undefined &&
                w.packetsPerSecond !== null &&
                Math.abs(w.packetsPerSecond - EXPECTED_PPS) <= 5,
              `${side}: ${w?.packetsPerSecond} RTP packets/s received (expected ${EXPECTED_PPS})`,
              diag,
            );
            t.ok(w !== undefined && w.ms >= 2500, `${side}: measured over ${w?.ms} ms`, diag);
            t.ok(
              w?.lossFraction !== null && w?.lossFraction !== undefined && w.lossFraction < 0.01,
              `${side}: loss ${w?.lost} of ${w ? w.packets + w.lost : '?'} (< 1%)`,
              diag,
            );
          }
        }

        // The daemon's view: the selected relays are its allocations, they carried the messages, and
        // the browsers removed every allocation themselves when their pages closed.
        const relays = created.flatMap((l) => l.relay ?? []);
        const selected = [a, b].map(
          (r) => `${r.selectedPair?.local?.address}:${r.selectedPair?.local?.port}`,
        );
        for (const relay of selected) t.ok(relays.includes(relay), `daemon allocated ${relay}`, diag);
        // Every allocation that carried anything was deleted by its browser. Firefox sometimes
        // leaves one it abandoned while gathering (created and, as a rule, refreshed to 0 within
        // ~30 ms; now and then never, as if the Allocate answer came after it had dropped the
        // transport): that one relayed nothing and would live until its lifetime (3600 s) ends.
        t.ok(
          atShutdown.every((l) => (l.toPeer?.packets ?? 0) === 0 && (l.toClient?.packets ?? 0) === 0),
          `the browsers deleted ${deleted.length} of ${created.length} allocations before the daemon ` +
            `stopped; any left relayed nothing`,
          diag,
        );
        if (atShutdown.length > 0) {
          t.comment(
            `left by a browser (no traffic), deleted at shutdown: ` +
              atShutdown
                .map((l) => `alloc ${l.alloc} ${created.find((x) => x.alloc === l.alloc)?.client}`)
                .join(', '),
          );
        }
        // Over UDP the browsers deallocate with a Refresh of lifetime 0; over TLS closing the
        // connection is enough (and some send the Refresh first anyway). Never expiry or shutdown.
        const reasons =
          c.transport === 'udp' ? ['refreshed-to-zero'] : ['refreshed-to-zero', 'connection-closed'];
        t.ok(
          deleted.every((l) => reasons.includes(l.reason ?? '')),
          `allocations deleted: ${deleted.map((l) => l.reason).join(', ')}`,
          diag,
        );
        // SCTP bundles small messages, so count bytes, not packets: DTLS only adds to the payload.
        const payload = payloadBytes(MESSAGES);
        for (const relay of selected) {
          const id = created.find((l) => l.relay?.includes(relay))?.alloc;
          const gone = deleted.find((l) => l.alloc === id);
          t.ok(
            (gone?.toPeer?.bytes ?? 0) >= payload && (gone?.toClient?.bytes ?? 0) >= payload,
            `${relay} deleted by its browser; relayed ${gone?.toPeer?.bytes} bytes to the peer, ` +
              `${gone?.toClient?.bytes} to the ` +
              `client (the messages: ${payload} bytes each way)`,
            diag,
          );
        }

        t.comment(`${c.name} (${wallMs} ms): a ${show(a)}; b ${show(b)}`);
        if (c.media) {
          for (const [side, run] of [
            ['a', a],
            ['b', b],
          ] as const) {
            const w = run.media?.received?.window;
            t.comment(
              `${side} received ${w?.packets} RTP packets in ${w?.ms} ms (${w?.packetsPerSecond}/s), ` +
                `lost ${w?.lost}, jitter ${w?.jitter} s, codec ${run.media?.codec?.mimeType}`,
            );
          }
        }
      });
    }
  },
);
