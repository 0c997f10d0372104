/**
 * Reload against the running configuration, and TURN switched on and off live:
 *  - a SIGHUP that changes a restart-only key (listening-ip) warns, and `/ice-servers` keeps
 *    describing the address actually bound; changing the file back clears the warning;
 *  - without users or secrets, TURN requests get a 401 that says TURN is disabled (and `probe`
 *    says so); adding a user with SIGHUP enables TURN at once, removing it disables it again.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readErrorCode } from '../../src/core/stun/attrs.js';
import { TURN_DISABLED_REASON } from '../../src/core/turn/service.js';
import { refusal, refusalCode } from '../fixtures/helpers/assertions.js';
import { testDir } from '../fixtures/helpers/certificates.js';
import { BIN, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { sleep, TestPeer, TurnClient } from '../fixtures/helpers/turn-client.js';

const TOKEN = 'reload-test-token-0123456789';

async function reloaded(lines: string[], count: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const done = lines.filter((l) => l.includes('"configuration reloaded'));
    if (done.length >= count) return JSON.parse(done[count - 1]!) as Record<string, unknown>;
    await sleep(50);
  }
  throw new Error(`no reload #${count} in the log`);
}

t.test(
  'a restart-only change keeps describing what is bound; changing it back clears the warning',
  async (t) => {
    const dir = testDir(t, 'turnpike-reload-');
    const file = join(dir, 'turnpike.json');
    const metricsPort = await freePort();
    const base = {
      realm: 'example.test',
      'use-auth-secret': true,
      'static-auth-secret': ['s3cret'],
      prometheus: true,
      'prometheus-port': metricsPort,
      'api-token': TOKEN,
    };
    writeFileSync(file, JSON.stringify({ ...base, 'listening-ip': ['127.0.0.1'] }));
    const d = await startDaemon(['--config', file]);
    t.teardown(() => d.stop());
    const ice = async (): Promise<string[]> => {
      const r = await fetch(`http://127.0.0.1:${metricsPort}/ice-servers?userid=u`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const body = (await r.json()) as { iceServers: { urls: string[] }[] };
      return body.iceServers.flatMap((s) => s.urls);
    };
    const bound = `127.0.0.1:${d.port}`;
    t.ok(
      (await ice()).every((u) => u.includes(bound)),
      'before: the bound address',
    );

    writeFileSync(file, JSON.stringify({ ...base, 'listening-ip': ['127.0.0.2'] }));
    d.proc.kill('SIGHUP');
    const first = await reloaded(d.lines, 1);
    t.same(first['needsRestart'], ['listening-ip'], 'the change needs a restart, and the log says so');
    const urls = await ice();
    t.ok(
      urls.length > 0 && urls.every((u) => u.includes(bound)),
      `after: still the bound address (${urls[0]})`,
    );

    writeFileSync(file, JSON.stringify({ ...base, 'listening-ip': ['127.0.0.1'] }));
    d.proc.kill('SIGHUP');
    const second = await reloaded(d.lines, 2);
    t.same(second['needsRestart'], [], 'back to the running value: nothing needs a restart');
    t.equal(second['msg'], 'configuration reloaded');
  },
);

t.test('TURN off without credentials (a 401 that says so), on and off again by SIGHUP', async (t) => {
  const dir = testDir(t, 'turnpike-reload-');
  const file = join(dir, 'turnpike.json');
  const base = { realm: 'example.test', 'listening-ip': ['127.0.0.1'] };
  writeFileSync(file, JSON.stringify(base));
  const d = await startDaemon(['--config', file]);
  t.teardown(() => d.stop());
  const alice = { username: 'alice', password: 'wonderland', realm: 'example.test' };

  /** A fresh client allocates and releases: `'accepted'`, or the code it is refused with. */
  const tryAllocate = async (): Promise<number | string> => {
    const c = await TurnClient.connect('127.0.0.1', d.port, alice);
    try {
      return await refusalCode(c.allocate().then(() => c.refresh(0)));
    } finally {
      await c.close();
    }
  };
  const disabled = await TurnClient.connect('127.0.0.1', d.port, alice);
  t.teardown(() => disabled.close());
  const off = await refusal(disabled.allocate());
  t.equal(off.code, 401, 'disabled: 401');
  t.equal(
    readErrorCode(off.response.view)?.reason,
    TURN_DISABLED_REASON,
    'with a reason phrase that says why',
  );

  const probe = spawnSync(
    process.execPath,
    [
      BIN,
      'probe',
      `turn:127.0.0.1:${d.port}`,
      '--user',
      'alice',
      '--password',
      'wonderland',
      '--timeout',
      '2000',
    ],
    {
      encoding: 'utf8',
      timeout: 20000,
    },
  );
  t.equal(probe.status, 1, 'probe fails');
  t.match(probe.stdout, /TURN is disabled on this server \(no users or secrets configured\)/, 'and says why');

  writeFileSync(file, JSON.stringify({ ...base, user: ['alice:wonderland'] }));
  d.proc.kill('SIGHUP');
  const on = await reloaded(d.lines, 1);
  t.same(on['needsRestart'], [], 'adding the first user needs no restart');
  t.equal(await tryAllocate(), 'accepted', 'TURN works right after the reload');
  t.ok(
    d.lines.some((l) => l.includes('"TURN enabled"')),
    'the log says TURN is now enabled',
  );

  writeFileSync(file, JSON.stringify(base));
  d.proc.kill('SIGHUP');
  await reloaded(d.lines, 2);
  t.equal(await tryAllocate(), 401, 'removing the last user disables it again');
});

t.test('a reload that denies a peer stops Send indications to it at once (either data plane)', async (t) => {
  const dir = testDir(t, 'turnpike-reload-peer-');
  const file = join(dir, 'turnpike.json');
  const base = { realm: 'example.test', user: ['alice:wonderland'], 'listening-ip': ['127.0.0.1'] };
  writeFileSync(file, JSON.stringify({ ...base, 'allowed-peer-ip': ['127.0.0.1'] }));
  const d = await startDaemon(['--config', file]);
  t.teardown(() => d.stop());
  const peer = await TestPeer.bind('127.0.0.1');
  t.teardown(() => peer.close());
  const c = await TurnClient.connect('127.0.0.1', d.port, {
    username: 'alice',
    password: 'wonderland',
    realm: 'example.test',
  });
  t.teardown(() => c.close());
  await c.allocate();
  await c.createPermission(peer.address);
  await c.send(peer.address, Buffer.from('before'));
  t.equal((await peer.next()).data.toString(), 'before', 'relayed while allowed');

  // 127.0.0.1 is loopback: without the allow line the policy denies it again.
  writeFileSync(file, JSON.stringify(base));
  d.proc.kill('SIGHUP');
  await reloaded(d.lines, 1);
  await c.send(peer.address, Buffer.from('after'));
  const late = await peer.collect(500);
  t.same(
    late.map((p) => p.data.toString()),
    [],
    'the permission installed before the reload no longer carries Send indications',
  );
});
