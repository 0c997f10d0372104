/**
 * Operations end to end: SIGHUP reload without loss, drain on SIGTERM (300 Try Alternate,
 * readiness, exit when drained or at the deadline), systemd notifications over a real AF_UNIX
 * datagram socket, the systemd unit verified by systemd-analyze, metrics that count exactly.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { AttrType } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import { refusal, refusalCode } from '../fixtures/helpers/assertions.js';
import { testDir } from '../fixtures/helpers/certificates.js';
import { aliceOnLoopback, BIN, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { sample, scrape } from '../fixtures/helpers/prometheus.js';
import { sleep, TestPeer, TurnClient } from '../fixtures/helpers/turn-client.js';

const run = promisify(execFile);
const ANALYZE = '/usr/bin/systemd-analyze';

const LOOPBACK_PEERS = ['--allowed-peer-ip', '127.0.0.1'];

/** A TURN client of the daemon on 127.0.0.1:`port`, closed when `t` ends. */
async function turnClient(
  t: Test,
  port: number,
  username = 'alice',
  password = 'wonderland',
): Promise<TurnClient> {
  const client = await TurnClient.connect('127.0.0.1', port, { username, password });
  t.teardown(() => client.close());
  return client;
}

/** Alice's allocation with channel 0x4001 bound to a peer on 127.0.0.1; both closed when `t` ends. */
async function relayPair(t: Test, port: number) {
  const client = await turnClient(t, port);
  const peer = await TestPeer.bind('127.0.0.1');
  t.teardown(() => peer.close());
  const { relayed } = await client.allocate();
  await client.channelBind(0x4001, peer.address);
  return { client, peer, relayed };
}

t.test('SIGHUP: users change while an allocation keeps relaying without loss', async (t) => {
  const dir = testDir(t, 'turnpike-lifecycle-');
  const file = join(dir, 'turnpike.json');
  const base = { realm: 'example.test', 'allowed-peer-ip': ['127.0.0.1'], 'listening-ip': ['127.0.0.1'] };
  writeFileSync(file, JSON.stringify({ ...base, user: ['alice:wonderland', 'bob:builder'] }));
  const d = await startDaemon(['--config', file]);
  t.teardown(() => d.stop());
  const { client, peer } = await relayPair(t, d.port);

  const total = 300;
  const sending = (async () => {
    for (let i = 0; i < total; i++) {
      const b = Buffer.alloc(8);
      b.writeUInt32BE(i, 0);
      await client.sendChannel(0x4001, b);
      await sleep(3);
    }
  })();
  await sleep(150);
  writeFileSync(file, JSON.stringify({ ...base, user: ['alice:wonderland', 'carol:secret'] }));
  d.proc.kill('SIGHUP');
  await sending;
  const got = await peer.collect(500);
  const seen = new Set(got.map((p) => p.data.readUInt32BE(0)));
  t.equal(seen.size, total, `all ${total} packets relayed across the reload`);
  t.ok(
    d.lines.some((l) => l.includes('"configuration reloaded"') && l.includes('"user"')),
    'reload logged with the user key applied',
  );

  const carol = await turnClient(t, d.port, 'carol', 'secret');
  t.ok((await carol.allocate()).relayed.port > 0, 'the added user can allocate');
  const bob = await turnClient(t, d.port, 'bob', 'builder');
  t.equal(await refusalCode(bob.allocate()), 401, 'the removed user is refused');

  // A broken file keeps the running configuration.
  writeFileSync(file, JSON.stringify({ ...base, user: ['alice:wonderland'], 'no-such-key': 1 }));
  d.proc.kill('SIGHUP');
  await sleep(300);
  t.ok(
    d.lines.some((l) => l.includes('configuration reload failed') && l.includes('no-such-key')),
    'the failure says which key',
  );
  const carol2 = await turnClient(t, d.port, 'carol', 'secret');
  t.ok((await carol2.allocate()).relayed.port > 0, 'the previous configuration still stands');
  await client.sendChannel(0x4001, Buffer.from('still here'));
  t.same((await peer.next()).data, Buffer.from('still here'));
});

t.test(
  'SIGTERM drains: 300 Try Alternate, 503 readiness, relaying goes on, exit 0 when drained',
  async (t) => {
    const http = await freePort();
    const d = await startDaemon([
      ...aliceOnLoopback(),
      ...LOOPBACK_PEERS,
      '--alternate-server',
      '192.0.2.7:3479',
      '--drain-timeout',
      '20',
      '--prometheus',
      '--prometheus-port',
      String(http),
    ]);
    t.teardown(() => d.stop('SIGKILL'));
    const { client, peer } = await relayPair(t, d.port);
    t.equal((await fetch(`http://127.0.0.1:${http}/readyz`)).status, 200);

    d.proc.kill('SIGTERM');
    await sleep(300);
    t.equal((await fetch(`http://127.0.0.1:${http}/readyz`)).status, 503, 'not ready while draining');
    const late = await turnClient(t, d.port);
    const e = await refusal(late.allocate());
    t.equal(e.code, 300, 'new Allocate gets 300 Try Alternate');
    t.same(
      readAddress(e.response.view, AttrType.AlternateServer),
      { family: 1, address: '192.0.2.7', port: 3479 },
      'ALTERNATE-SERVER names the alternate',
    );
    await client.sendChannel(0x4001, Buffer.from('during drain'));
    t.same((await peer.next()).data, Buffer.from('during drain'), 'the existing allocation still relays');
    t.equal(d.proc.exitCode, null, 'still running with an allocation left');
    const start = Date.now();
    await client.refresh(0);
    t.equal(await d.exited(), 0, 'exit 0 once drained');
    t.ok(Date.now() - start < 3000, `exited ${Date.now() - start} ms after the last allocation ended`);
    t.ok(d.lines.some((l) => l.includes('"drained"')));
  },
);

t.test('drain deadline: exit 0 after drain-timeout even with allocations left', async (t) => {
  const d = await startDaemon([...aliceOnLoopback(), '--drain-timeout', '1']);
  t.teardown(() => d.stop('SIGKILL'));
  const client = await turnClient(t, d.port);
  await client.allocate();
  const start = Date.now();
  d.proc.kill('SIGTERM');
  t.equal(await d.exited(), 0);
  const took = Date.now() - start;
  t.ok(took >= 900 && took < 4000, `exited after ${took} ms`);
  t.ok(d.lines.some((l) => l.includes('drain deadline reached')));
});

t.test('systemd notify protocol over a real AF_UNIX datagram socket', async (t) => {
  const dir = testDir(t, 'turnpike-lifecycle-');
  const sock = join(dir, 'notify.sock');
  // python3 stands in for systemd: it owns NOTIFY_SOCKET and prints each datagram as a JSON line.
  const listener: ChildProcess = spawn(
    'python3',
    [
      '-c',
      [
        'import socket, sys, json',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
        `s.bind(${JSON.stringify(sock)})`,
        'print("listening", flush=True)',
        's.settimeout(30)',
        'while True:',
        '    data = s.recv(4096)',
        '    print(json.dumps(data.decode()), flush=True)',
      ].join('\n'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => listener.kill('SIGKILL'));
  const messages: string[] = [];
  await new Promise<void>((resolve) => {
    listener.stdout!.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (line === 'listening') resolve();
        else if (line !== '') messages.push(JSON.parse(line) as string);
      }
    });
  });
  const d = await startDaemon(['--listening-ip', '127.0.0.1'], {
    env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' },
  });
  t.teardown(() => d.stop('SIGKILL'));
  const waitFor = async (pred: (m: string) => boolean, what: string): Promise<string> => {
    for (let i = 0; i < 100; i++) {
      const m = messages.find(pred);
      if (m !== undefined) return m;
      await sleep(50);
    }
    throw new Error(`no ${what}; got ${JSON.stringify(messages)}`);
  };
  const ready = await waitFor((m) => m.includes('READY=1'), 'READY=1');
  t.match(ready, `MAINPID=${d.proc.pid}`, 'MAINPID is the daemon');
  t.match(ready, /STATUS=serving on udp:\d+ tcp:\d+/);
  await waitFor((m) => m.includes('WATCHDOG=1'), 'watchdog ping');
  messages.length = 0;
  d.proc.kill('SIGHUP');
  await waitFor((m) => m.includes('RELOADING=1'), 'RELOADING=1');
  await waitFor((m) => m.includes('READY=1'), 'READY=1 after reload');
  d.proc.kill('SIGTERM');
  await waitFor((m) => m.includes('STOPPING=1'), 'STOPPING=1');
  t.equal(await d.exited(), 0);
});

const analyzeSkip =
  !existsSync(ANALYZE) && !process.env['CI'] ? 'systemd-analyze not installed (CI installs systemd)' : false;

t.test('conf/turnpike.service passes systemd-analyze verify', { skip: analyzeSkip }, async (t) => {
  if (!existsSync(ANALYZE)) {
    t.fail(`${ANALYZE} is missing and CI is set: .ci/run must install Debian's systemd package`);
    return;
  }
  const dir = testDir(t, 'turnpike-lifecycle-');
  const unit = readFileSync(new URL('../../conf/turnpike.service', import.meta.url), 'utf8')
    // Point ExecStart at this checkout so the verification also checks the real command.
    .replace(
      /^ExecStart=.*$/m,
      `ExecStart=${process.execPath} ${BIN} --config /etc/turnpike/turnserver.json`,
    );
  const path = join(dir, 'turnpike.service');
  writeFileSync(path, unit);
  const { stdout, stderr } = await run(ANALYZE, ['verify', path]).catch(
    (e: { stdout: string; stderr: string }) => e,
  );
  t.equal(`${stdout}${stderr}`.trim(), '', 'no warnings');
  t.match(unit, /^Type=notify$/m);
  t.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  t.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
  t.notMatch(unit, /^MemoryDenyWriteExecute=yes/m, 'V8 needs W+X memory');
  t.match(unit, /^RestartPreventExitStatus=78$/m);
  const timeoutStop = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
  t.ok(timeoutStop > 60, 'TimeoutStopSec longer than the default drain window');
});

t.test('metrics count relayed packets, bytes and error codes exactly', async (t) => {
  const http = await freePort();
  const d = await startDaemon([
    ...aliceOnLoopback(),
    ...LOOPBACK_PEERS,
    '--prometheus',
    '--prometheus-port',
    String(http),
  ]);
  t.teardown(() => d.stop());
  const metric = async (series: string): Promise<number> => sample(await scrape(http), series) ?? 0;
  const { client, peer, relayed } = await relayPair(t, d.port);
  for (let i = 0; i < 100; i++) {
    await client.sendChannel(0x4001, Buffer.alloc(37, i));
    await peer.send(Buffer.alloc(53, i), relayed);
    if (i % 10 === 9) await sleep(5);
  }
  t.equal((await peer.collect(300)).length, 100, 'the peer got 100');
  t.equal((await client.collectData(300)).length, 100, 'the client got 100');
  t.equal(await metric('turn_relay_packets_total{direction="client_to_peer"}'), 100);
  t.equal(await metric('turn_relay_packets_total{direction="peer_to_client"}'), 100);
  t.equal(await metric('turn_relay_bytes_total{direction="client_to_peer"}'), 3700);
  t.equal(await metric('turn_relay_bytes_total{direction="peer_to_client"}'), 5300);
  t.equal(await metric('turn_allocations{transport="udp",family="ipv4"}'), 1);
  t.equal(await metric('turn_channels'), 1);
  // One allocation set up: its setup time is observed once, well under a second on loopback.
  t.equal(await metric('turn_allocate_duration_seconds_count'), 1, 'one allocation setup observed');
  const setupSec = await metric('turn_allocate_duration_seconds_sum');
  t.ok(setupSec > 0 && setupSec < 1, `setup took ${setupSec} s`);
  t.equal(await metric('turn_allocate_duration_seconds_bucket{le="1"}'), 1);
  const before403 = await metric('turn_stun_errors_total{code="403"}');
  t.equal(await refusalCode(client.createPermission({ address: '10.0.0.1' })), 403);
  t.equal(await metric('turn_stun_errors_total{code="403"}'), before403 + 1, 'the 403 is counted');
  t.ok((await metric('turn_stun_errors_total{code="401"}')) >= 1, 'the 401 challenge is counted');
  await client.refresh(0);
  t.equal(await metric('turn_allocations_deleted_total{reason="refreshed-to-zero"}'), 1);
  t.equal(await metric('turn_allocation_lifetime_seconds_count'), 1);
});
