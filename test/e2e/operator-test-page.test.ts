/**
 * The /test page in headless Chromium against a daemon: it fetches its ICE configuration with the
 * token from its address, gathers candidates through turnpike and lists a relay candidate; the CSP
 * lets its own script run (no violation reported) and the token leaves the address bar.
 */
import t from 'tap';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../fixtures/helpers/browser-chromium.js';
import { freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { freeUdpRange } from '../fixtures/helpers/turn-client.js';

const TOKEN = 'page-e2e-token';

t.test(
  'the test page gathers a relay candidate through turnpike',
  {
    skip: chromiumAvailable() || process.env['CI'] ? false : `${CHROMIUM} not installed`,
  },
  async (t) => {
    const httpPort = await freePort();
    const relay = await freeUdpRange(1);
    const d = await startDaemon([
      '--listening-ip',
      '127.0.0.1',
      '--use-auth-secret',
      '--static-auth-secret',
      'page-secret',
      '--min-port',
      String(relay),
      '--max-port',
      String(Math.min(65535, relay + 99)),
      '--prometheus',
      '--prometheus-port',
      String(httpPort),
      '--api-token',
      TOKEN,
      '--test-page',
    ]);
    t.teardown(() => d.stop());
    const browser = await launchChromium();
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    const console: string[] = [];
    page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));

    await page.goto(`http://127.0.0.1:${httpPort}/test?token=${TOKEN}`);
    await page.waitForSelector('#status[data-state^="done"]', { timeout: 20000 });
    // A string expression: the project's tsconfig has no DOM library.
    const { status, rows, servers } = (await page.evaluate(`(() => ({
    status: document.getElementById('status').textContent,
    rows: [...document.querySelectorAll('#candidates tr')].map((tr) =>
      [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    servers: [...document.querySelectorAll('#servers tr td:first-child')].map((td) => td.textContent),
  }))()`)) as { status: string; rows: string[][]; servers: string[] };
    const url = page.url();
    await page.close();

    t.match(status, /^TURN works: relay candidate gathered/, `status: ${status}\n${console.join('\n')}`);
    t.ok(
      rows.some((r) => r[1] === 'relay' && r[3] === '127.0.0.1'),
      `a relay candidate on 127.0.0.1 in ${JSON.stringify(rows)}`,
    );
    t.same(servers, [
      `stun:127.0.0.1:${d.port}`,
      `turn:127.0.0.1:${d.port}?transport=udp`,
      `turn:127.0.0.1:${d.port}?transport=tcp`,
    ]);
    t.equal(url, `http://127.0.0.1:${httpPort}/test`, 'the token left the address bar');
    t.same(
      console.filter((l) => /Content Security Policy|Refused to/i.test(l)),
      [],
      'no CSP violation',
    );
    t.ok(
      d.lines.some((l) => l.includes('"allocation created"') && l.includes('"user":"test-page"')),
      'the daemon allocated for user id test-page',
    );
  },
);
