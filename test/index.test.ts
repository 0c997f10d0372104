/**
 * The programmatic API (src/index.ts) as a user gets it: the built dist/src/index.js, imported
 * through the package name (package.json "exports"; Node resolves a package's own name from inside
 * it). `npm test` builds first.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import { AttrType } from '../src/core/constants.js';
import { readAddress } from '../src/core/stun/attrs.js';
import { freePort } from './fixtures/helpers/daemon.js';
import { bindingRequest, udpRequest } from './fixtures/helpers/stun-client.js';

type Api = typeof import('../src/index.js');

// A variable specifier: type-checked against the source above, loaded from dist at run time.
const PACKAGE: string = 'turnpike';
const api = (await import(PACKAGE)) as Api;

t.test('package.json points main, types and exports at the built API', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    main: string;
    types: string;
    exports: { '.': { types: string; default: string } };
  };
  const dist = fileURLToPath(new URL('../dist/src/index.js', import.meta.url));
  t.equal(fileURLToPath(import.meta.resolve(PACKAGE)), dist, 'the package name resolves to dist');
  t.equal(`./${pkg.main}`, pkg.exports['.'].default);
  t.equal(`./${pkg.types}`, pkg.exports['.'].types);
  t.ok(readFileSync(new URL(`../${pkg.types}`, import.meta.url), 'utf8').includes('createServer'));
  t.type(api.createServer, 'function');
  t.type(api.loadConfig, 'function');
  t.type(api.ConfigError, 'function');
});

t.test('createServer: a server on 127.0.0.1 answers a STUN Binding, then closes', async (t) => {
  const lines: string[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const port = await freePort();
  const server = await api.createServer(
    { 'listening-ip': ['127.0.0.1'], 'listening-port': port, 'no-tcp': true, realm: 'example.test' },
    { log },
  );
  let closed = false;
  t.teardown(async () => {
    if (!closed) await server.close();
  });
  t.equal(server.udp.length, 1);
  t.same(server.udp[0]?.address(), { address: '127.0.0.1', port });
  t.equal(server.config().realm, 'example.test');
  t.ok(Object.isFrozen(server.config()), 'the config is frozen');

  const { view, localPort } = await udpRequest('127.0.0.1', port, bindingRequest());
  const mapped = readAddress(view, AttrType.XorMappedAddress);
  t.same(mapped && { address: mapped.address, port: mapped.port }, { address: '127.0.0.1', port: localPort });

  const warnings = lines.map((l) => JSON.parse(l) as { msg: string; warning?: string });
  t.same(
    warnings.filter((l) => l.msg === 'configuration warning').map((l) => l.warning),
    ['realm has no effect: TURN is off (no user, no use-auth-secret and no redis-url)'],
    'settings without effect are logged on the given logger',
  );

  await server.close();
  closed = true;
  await t.rejects(udpRequest('127.0.0.1', port, bindingRequest(), 100), 'no answer once closed');
});

t.test('createServer: bad settings reject with ConfigError before binding anything', async (t) => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [
      { 'listening-port': 0 },
      'listening-port',
      /must be an integer 1-65535, got 0 \(createServer settings\)/,
    ],
    [{ 'listen-port': 3478 }, 'listen-port', /unknown configuration key \(did you mean listening-port\?\)/],
    [{ 'use-auth-secret': true }, 'static-auth-secret', /at least one secret/],
    [{ 'no-udp': true, 'no-tcp': true }, 'no-udp', /no listener enabled/],
    [{ cert: '/nonexistent/c.pem', pkey: '/nonexistent/k.pem' }, 'cert', /cannot read/],
  ];
  for (const [settings, key, message] of cases) {
    const err = await api.createServer(settings).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof api.ConfigError, `${JSON.stringify(settings)}: a ConfigError`);
    t.match(err, { key, code: 'TURN_ERR_CONFIG', message }, JSON.stringify(settings));
  }
});
