/**
 * `GET /test`: off by default (404), token in the query compared with the api-token, a static page
 * whose only script and style are allowed by hash in a strict Content-Security-Policy.
 */
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { defaults } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { RevocationList } from '../../src/credentials.js';
import { addOperatorRoutes } from '../../src/http/operator-api.js';
import { HttpApi } from '../../src/http/server.js';
import { TEST_PAGE_HEADERS, testPageHtml } from '../../src/http/test-page.js';
import { createLogger } from '../../src/log.js';

const TOKEN = 'page-token-abcdef';

async function api(t: Test, overrides: Partial<Config>): Promise<string> {
  const config: Config = { ...defaults(), apiToken: TOKEN, testPage: true, ...overrides };
  const http = new HttpApi(createLogger('silent'), config.apiToken);
  addOperatorRoutes(http, {
    config: () => config,
    turn: () => undefined,
    drain: () => {},
    revocations: new RevocationList(),
    log: createLogger('silent'),
  });
  await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close());
  return `http://127.0.0.1:${http.address().port}`;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64');

t.test('off by default: 404', async (t) => {
  t.equal(defaults().testPage, false);
  const base = await api(t, { testPage: false });
  const r = await fetch(`${base}/test?token=${TOKEN}`);
  t.equal(r.status, 404);
  await r.text();
});

t.test('the token: none configured 403, missing or wrong 401', async (t) => {
  const none = await api(t, { apiToken: undefined });
  const r0 = await fetch(`${none}/test?token=${TOKEN}`);
  t.equal(r0.status, 403);
  await r0.text();
  const base = await api(t, {});
  for (const query of ['', '?token=', '?token=page-token-abcdeX', `?token=${TOKEN}x`, '?tok=x']) {
    const r = await fetch(`${base}/test${query}`);
    t.equal(r.status, 401, query);
    t.notMatch(await r.text(), TOKEN);
  }
  const bearer = await fetch(`${base}/test`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(bearer.status, 401, 'the query token is the way in (a browser navigation sends no header)');
  await bearer.text();
});

t.test('the page: HTML, strict CSP allowing exactly its inline script and style', async (t) => {
  const base = await api(t, {});
  const r = await fetch(`${base}/test?token=${encodeURIComponent(TOKEN)}`);
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /^text\/html; charset=utf-8/);
  t.equal(r.headers.get('referrer-policy'), 'no-referrer');
  t.equal(r.headers.get('x-frame-options'), 'DENY');
  t.equal(r.headers.get('cache-control'), 'no-store');
  const html = await r.text();
  t.equal(html, testPageHtml());
  t.notMatch(html, TOKEN, 'the token is not in the page');

  const csp = r.headers.get('content-security-policy') ?? '';
  t.equal(csp, TEST_PAGE_HEADERS['content-security-policy']);
  const directives = new Map(
    csp.split(';').map((d) => {
      const [name = '', ...values] = d.trim().split(/\s+/);
      return [name, values] as const;
    }),
  );
  t.same(directives.get('default-src'), ["'none'"]);
  t.same(directives.get('connect-src'), ["'self'"]);
  t.same(directives.get('frame-ancestors'), ["'none'"]);
  t.same(directives.get('base-uri'), ["'none'"]);
  t.notMatch(csp, /unsafe/);

  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? '');
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? '');
  t.equal(scripts.length, 1, 'one inline script');
  t.equal(styles.length, 1, 'one inline style');
  t.same(directives.get('script-src'), [`'sha256-${sha256(scripts[0]!)}'`], 'script allowed by its hash');
  t.same(directives.get('style-src'), [`'sha256-${sha256(styles[0]!)}'`], 'style allowed by its hash');
  t.notMatch(
    html,
    /<script[^>]+src=|<link|<img|<iframe|\son[a-z]+=/i,
    'no external resource, no inline handler',
  );
  t.notMatch(scripts[0]!, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, 'text only');
  t.match(scripts[0]!, /fetch\('\/ice-servers\?'/, 'fetches its ICE configuration');
  t.match(scripts[0]!, /authorization: 'Bearer ' \+ token/, 'sends the token as a bearer header');
  t.match(scripts[0]!, /history\.replaceState/, 'drops the token from the address bar');
});
