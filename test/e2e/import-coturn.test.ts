/**
 * Migrating from coturn, end to end, with the built command: Debian's shipped /etc/turnserver.conf
 * (and coturn's example file, where the package ships it), plus the lines an operator adds to serve
 * TURN (a user, a realm, loopback peers for this test's peer), is imported with `turnpike
 * import-coturn`, passes `turnpike check-config`, and a daemon started from the result serves
 * TURN to coturn's turnutils_uclient with the same credentials, losing nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { assertHealthy } from '../fixtures/helpers/assertions.js';
import { testDir } from '../fixtures/helpers/certificates.js';
import { BIN, startDaemon } from '../fixtures/helpers/daemon.js';
import { logged } from '../fixtures/helpers/daemon-log.js';
import { freeUdpRange } from '../fixtures/helpers/turn-client.js';
import { PEER, runUclient, startPeer, UCLIENT, uclientArgs } from '../fixtures/helpers/uclient.js';

const run = promisify(execFile);
const INPUTS = ['/etc/turnserver.conf', '/usr/share/doc/coturn/examples/etc/turnserver.conf'];
const skip =
  (!existsSync(INPUTS[0]!) || !existsSync(UCLIENT) || !existsSync(PEER)) && !process.env['CI']
    ? 'coturn not installed (CI installs it)'
    : false;

/** What an operator appends to Debian's file to serve TURN here (coturn spellings, coturn meanings). */
const OPERATOR_LINES = [
  '# added for the test: one user, a realm, loopback only, loopback peers',
  'lt-cred-mech',
  'realm=example.test',
  'user=alice:wonderland',
  'listening-ip=127.0.0.1',
  'allow-loopback-peers',
  'fingerprint',
  'no-cli',
];

const inputs = [...new Set(INPUTS.filter((p) => existsSync(p)).map((p) => readFileSync(p, 'utf8')))].map(
  (text, i) => ({
    text,
    name: INPUTS.find((p) => existsSync(p) && readFileSync(p, 'utf8') === text) ?? `input ${i}`,
  }),
);

t.test("import-coturn on coturn's shipped configuration", { skip }, async (t) => {
  t.ok(inputs.length > 0, `${inputs.length} distinct file(s): ${inputs.map((i) => i.name).join(', ')}`);
  for (const input of inputs) {
    await t.test(input.name, async (t) => {
      const dir = testDir(t);
      await t.test('as shipped: imported, checked, and not an open relay', async (t) => {
        const out = join(dir, 'shipped.json');
        const r = await run(process.execPath, [BIN, 'import-coturn', input.name, '-o', out], {
          timeout: 30_000,
        });
        t.comment(`${input.name} -> ${out}\n${r.stderr}${readFileSync(out, 'utf8')}`);
        t.match(r.stderr, /refuses TURN/, 'no users: TURN stays disabled');
        const check = await run(process.execPath, [BIN, 'check-config', '-c', out], { timeout: 30_000 });
        const effective = JSON.parse(check.stdout) as Record<string, unknown>;
        t.same(effective['user'], [], 'no users');
        t.equal(effective['use-auth-secret'], false, 'no REST secret');
      });

      await t.test(
        'with a user added: turnutils_uclient relays through the daemon started from it',
        async (t) => {
          const conf = join(dir, 'turnserver.conf');
          writeFileSync(conf, `${input.text}\n${OPERATOR_LINES.join('\n')}\n`);
          const out = join(dir, 'turnserver.json');
          const r = await run(process.execPath, [BIN, 'import-coturn', conf, '-o', out], { timeout: 30_000 });
          t.comment(r.stderr);
          const imported = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
          t.same(imported['user'], ['alice:wonderland']);
          t.same(imported['allowed-peer-ip'], ['127.0.0.0/8', '::1']);
          const check = await run(process.execPath, [BIN, 'check-config', '-c', out], { timeout: 30_000 });
          t.match(check.stdout, /"realm": "example.test"/, 'check-config passes');

          // startDaemon adds a free listening port and a relay range; the rest comes from the file.
          const d = await startDaemon(['-c', out]);
          t.teardown(() => d.stop());
          const peerPort = await freeUdpRange(2);
          await startPeer(t, peerPort);
          for (const [mode, flags] of [
            ['ChannelData', []],
            ['Send indications', ['-s']],
          ] as const) {
            const report = await runUclient([
              ...flags,
              ...uclientArgs({ port: d.port, clients: 5, messages: 50, peerPort }),
            ]);
            t.comment(`${mode}: sent ${report.sent}, received ${report.received}, lost ${report.lost}`);
            t.equal(report.exitCode, 0, `${mode}: uclient exit code 0`);
            t.ok(report.sent >= 250, `${mode}: sent ${report.sent}`);
            t.equal(report.lost, 0, `${mode}: nothing lost`);
            if (report.lost !== 0 || report.exitCode !== 0)
              t.comment(report.output.split('\n').slice(-30).join('\n'));
          }
          t.ok(
            d.lines.some((l) => l.includes('"allocation created"') && l.includes('"user":"alice"')),
            'allocations for alice',
          );
          assertHealthy(t, d);
        },
      );
    });
  }
});

t.test(
  "a daemon started with coturn's spellings logs that they are accepted for compatibility",
  async (t) => {
    const d = await startDaemon(['-L', '127.0.0.1', '-r', 'example.test', '--lt-cred-mech', '--fingerprint']);
    t.teardown(() => d.stop());
    const notes = logged(d.lines, 'accepted for compatibility with coturn') as { note?: string }[];
    t.same(
      notes.map((n) => n.note?.split(' ')[0]),
      ['-L', '-r', '--lt-cred-mech', '--fingerprint'],
      'one note each, logged at start',
    );
    t.match(notes[0]?.note, /it means --listening-ip/);
    t.ok(
      d.lines.some((l) => l.includes('"turnpike started"') && l.includes('"address":"127.0.0.1"')),
      '-L set the listening address',
    );
  },
);
