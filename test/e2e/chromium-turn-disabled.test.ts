/**
 * A server with no users and no secrets (TURN disabled) must make a browser give up at once and say
 * why, not leave it retrying until its own timeout. Chromium 156 discards an unauthenticated 400
 * to its Allocate ("Discarding unauthenticated error response") and retransmits for ~40 s; turnpike
 * answers every TURN request with a 401 whose reason phrase says TURN is disabled, and Chromium,
 * after retrying once with its credentials and getting the same 401, raises icecandidateerror.
 */
import t from 'tap';
import {
  CHROMIUM,
  chromiumAvailable,
  launchChromium,
  runRelayPair,
} from '../fixtures/helpers/browser-chromium.js';
import { startDaemon } from '../fixtures/helpers/daemon.js';

const skip =
  !chromiumAvailable() && !process.env['CI'] ? `${CHROMIUM} not installed (CI installs it)` : false;

t.test(
  'TURN disabled: Chromium reports icecandidateerror within a few seconds',
  { skip, timeout: 60000 },
  async (t) => {
    if (!chromiumAvailable()) {
      t.fail(`${CHROMIUM} is missing and CI is set: .ci/run must install Debian's chromium package`);
      return;
    }
    const d = await startDaemon(['--listening-ip', '127.0.0.1']);
    t.teardown(() => d.stop());
    const browser = await launchChromium();
    t.teardown(() => browser.close());
    const url = `turn:127.0.0.1:${d.port}?transport=udp`;
    const r = await runRelayPair(browser, {
      iceServer: { urls: url, username: 'alice', credential: 'wonderland' },
      messages: 1,
      timeoutMs: 15000,
    });
    const diag = { events: r.events, gatheringErrors: r.gatheringErrors, daemon: d.lines.slice(-5) };
    t.comment(
      `page: ${r.outcome} after ${r.elapsedMs} ms; ${r.gatheringErrors
        .map((e) => `${e['pc']} ${e['errorCode']} ${e['errorText']}`)
        .join('; ')}`,
    );
    t.equal(r.outcome, 'error', 'the page fails', diag);
    t.match(r.error, /gathered no relay candidate/, 'no relay candidate', diag);
    t.ok(r.gatheringErrors.length > 0, 'icecandidateerror raised', diag);
    t.ok(
      r.gatheringErrors.every((e) => e['errorCode'] === 401 && e['url'] === url),
      'every icecandidateerror is a 401 for the TURN URL',
      diag,
    );
    t.ok(
      r.elapsedMs < 5000,
      `given up within 5 s (${r.elapsedMs} ms), not at Chromium's ~40 s timeout`,
      diag,
    );
    t.notOk(
      d.lines.some((l) => l.includes('allocation created')),
      'nothing was allocated',
    );
    t.ok(
      d.lines.some((l) => l.includes('TURN is disabled')),
      'the daemon said at start that TURN is disabled',
    );
  },
);
