/**
 * End-to-end: the built daemon answers STUN Binding over UDP and TCP, on IPv4 and IPv6, to
 * coturn's turnutils_stunclient and to our own client; stops cleanly on SIGTERM and SIGINT.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import t from 'tap';
import { AttrType, Class } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import { verifyFingerprint } from '../../src/core/stun/integrity.js';
import { startDaemon } from '../fixtures/helpers/daemon.js';
import { bindingRequest, tcpClient, udpRequest } from '../fixtures/helpers/stun-client.js';
import { sleep } from '../fixtures/helpers/turn-client.js';

const run = promisify(execFile);
const STUNCLIENT = '/usr/bin/turnutils_stunclient';

t.test('Binding over UDP, TCP, IPv4 and IPv6', async (t) => {
  const d = await startDaemon(['--listening-ip', '127.0.0.1', '--listening-ip', '::1']);
  t.teardown(() => d.stop());

  t.test(
    'turnutils_stunclient (coturn) gets its mapped address over UDP',
    { skip: !existsSync(STUNCLIENT) && !process.env['CI'] ? 'coturn not installed (CI installs it)' : false },
    async (t) => {
      // -L 127.0.0.2: the client sends from another loopback address, so the answer must reflect the source.
      const { stdout } = await run(STUNCLIENT, ['-p', String(d.port), '-L', '127.0.0.2', '127.0.0.1'], {
        timeout: 10000,
      });
      const m = /UDP reflexive addr: ([\d.]+):(\d+)/.exec(stdout);
      t.ok(m, `reflexive address printed: ${stdout.trim()}`);
      t.equal(m?.[1], '127.0.0.2');
      t.ok(Number(m?.[2]) > 0);
    },
  );

  t.test('own client over UDP IPv4: address and port of the source', async (t) => {
    const { view, localPort } = await udpRequest('127.0.0.1', d.port, bindingRequest({ fingerprint: true }));
    t.equal(view.cls, Class.Success);
    t.same(readAddress(view, AttrType.XorMappedAddress), {
      family: 1,
      address: '127.0.0.1',
      port: localPort,
    });
    t.ok(verifyFingerprint(view) && view.fingerprintAt > 0, 'FINGERPRINT echoed');
  });

  t.test('own client over UDP IPv6 (::1)', async (t) => {
    const { view, localPort } = await udpRequest('::1', d.port, bindingRequest());
    t.same(readAddress(view, AttrType.XorMappedAddress), { family: 2, address: '::1', port: localPort });
  });

  for (const host of ['127.0.0.1', '::1']) {
    t.test(`own client over TCP ${host}: several requests on one connection`, async (t) => {
      const c = await tcpClient(host, d.port);
      t.teardown(() => c.socket.destroy());
      for (let i = 0; i < 3; i++) {
        const v = await c.request(bindingRequest());
        t.same(readAddress(v, AttrType.XorMappedAddress), {
          family: host.includes(':') ? 2 : 1,
          address: host,
          port: c.socket.localPort,
        });
      }
      // Two messages in one write come back as two responses.
      const a = bindingRequest();
      const b = bindingRequest();
      const both = Promise.all([c.request(a), c.request(b)]);
      const [va, vb] = await both;
      t.same(va.transactionId, a.subarray(8, 20));
      t.same(vb.transactionId, b.subarray(8, 20));
    });
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} stops cleanly with exit 0 and frees the port`, async (t) => {
    const d = await startDaemon(['--listening-ip', '127.0.0.1']);
    t.equal(await d.stop(signal), 0);
    t.ok(
      d.lines.some((l) => l.includes('"stopped"')),
      'logged "stopped"',
    );
    // The same port can be bound again at once.
    const again = await startDaemon(['--listening-ip', '127.0.0.1'], { port: d.port });
    t.equal(await again.stop(), 0);
  });
}

t.test('SIGHUP does not kill the daemon', async (t) => {
  const d = await startDaemon(['--listening-ip', '127.0.0.1']);
  t.teardown(() => d.stop());
  d.proc.kill('SIGHUP');
  await sleep(200);
  const { view } = await udpRequest('127.0.0.1', d.port, bindingRequest());
  t.equal(view.cls, Class.Success);
});

t.test('a port already in use is a clear fatal error, exit 1', async (t) => {
  const d = await startDaemon(['--listening-ip', '127.0.0.1']);
  t.teardown(() => d.stop());
  await t.rejects(startDaemon(['--listening-ip', '127.0.0.1'], { port: d.port }), /exited \(1\)/);
});
