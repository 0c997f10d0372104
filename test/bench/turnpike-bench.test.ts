/**
 * turnpike-bench against the built daemon on loopback, for a few seconds per run: its counts must agree
 * with the daemon's own turn_relay_packets_total within 1% (both directions, both data paths, static and
 * REST credentials, one and two worker threads), and its other modes (search, hold, self-test) and
 * error paths work.
 */
import { spawn } from 'node:child_process';
import t, { type Test } from 'tap';
import { type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { BENCH, bench, type BenchOutput as Output, runBench as run } from '../fixtures/helpers/load-tool.js';

const REALM = 'bench.test';

let daemon: Daemon;
let metricsUrl: string;
let server: string[];

t.before(async () => {
  const metricsPort = await freePort();
  daemon = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--no-tcp',
    '--no-tls',
    '--realm',
    REALM,
    '--user',
    'bench:benchpass',
    '--use-auth-secret',
    '--static-auth-secret',
    'rest-secret',
    '--allowed-peer-ip',
    '127.0.0.1',
    '--prometheus',
    '--prometheus-address',
    '127.0.0.1',
    '--prometheus-port',
    String(metricsPort),
    '--drain-timeout',
    '0',
  ]);
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  server = [
    '--server',
    `127.0.0.1:${daemon.port}`,
    '--metrics',
    metricsUrl,
    '--server-pid',
    String(daemon.proc.pid),
  ];
});

t.teardown(async () => {
  await daemon?.stop();
});

const STATIC = ['--user', 'bench', '--password', 'benchpass'];
const SHORT = ['--duration', '1.5', '--warmup', '0.3'];

function agreeWithin1Pct(t: Test, out: Output, directions: string[]): void {
  const r = out.result!;
  t.equal(r.metrics?.error, undefined, 'metrics scraped');
  t.same(
    r.metrics!.checks.map((c) => c.direction),
    directions,
    'compared in the expected directions',
  );
  for (const c of r.metrics!.checks) {
    t.ok(Math.abs(c.diffPct) <= 1, `${c.direction}: server ${c.server} vs tool ${c.tool} within 1%`);
    t.ok(c.agree);
    t.ok(c.tool > 0, `${c.direction}: packets relayed`);
  }
}

t.test('ChannelData client→peer: counts agree with the daemon', async (t) => {
  const { code, out } = await bench([...server, ...STATIC, '--allocations', '20', '--rate', '100', ...SHORT]);
  t.equal(code, 0);
  t.equal(out.setup?.active, 20, 'every allocation set up');
  const r = out.result!;
  t.ok(r.sent > 2000, `sent ${r.sent}`);
  t.ok(r.lossPct < 1, `loss ${r.lossPct}%`);
  t.equal(r.latency.kind, 'one-way');
  t.ok(r.latency.samples > 0 && r.latency.p50Us > 0, 'latency measured');
  t.ok((r.server?.cpuUsPerPacket ?? 0) > 0, 'server CPU per packet from /proc');
  agreeWithin1Pct(t, out, ['client_to_peer']);
});

t.test('Send/Data echo with REST credentials over two workers', async (t) => {
  const { code, out } = await bench([
    ...server,
    '--secret',
    'rest-secret',
    '--userid',
    'loadtest',
    '--path',
    'send',
    '--direction',
    'echo',
    '--workers',
    '2',
    '--allocations',
    '10',
    '--rate',
    '100',
    ...SHORT,
  ]);
  t.equal(code, 0);
  t.equal(out.setup?.active, 10);
  t.equal(out.result?.latency.kind, 'round-trip');
  t.equal(out.result?.tool.workerCpuPct.length, 2);
  t.ok((out.result?.forwarded ?? 0) > 0);
  agreeWithin1Pct(t, out, ['client_to_peer', 'peer_to_client']);
});

t.test('ChannelData peer→client', async (t) => {
  const { code, out } = await bench([
    ...server,
    ...STATIC,
    '--direction',
    'p2c',
    '--allocations',
    '5',
    '--rate',
    '200',
    ...SHORT,
  ]);
  t.equal(code, 0);
  agreeWithin1Pct(t, out, ['peer_to_client']);
});

t.test('the human report', async (t) => {
  const r = await run([
    ...server,
    ...STATIC,
    '--allocations',
    '2',
    '--rate',
    '50',
    '--duration',
    '0.5',
    '--warmup',
    '0',
    '--path',
    'send',
    '--direction',
    'p2c',
    '--progress',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /setup: allocations 2\/2/);
  t.match(r.stdout, /^pkt\/s\s+[\d,]+/m);
  t.match(r.stdout, /latency one-way \(µs\): p50/);
  t.match(r.stdout, /metrics: server peer_to_client \+[\d,]+ vs tool [\d,]+ \(.*agree\)/);
});

t.test('search finds a passing rate within its bounds', async (t) => {
  const { code, out } = await bench([
    ...server,
    ...STATIC,
    '--search',
    '--allocations',
    '4',
    '--search-start',
    '200',
    '--search-max',
    '400',
    '--search-steps',
    '3',
    '--duration',
    '0.5',
    '--warmup',
    '0.2',
  ]);
  t.equal(code, 0);
  t.ok((out.search?.bestRatePps ?? 0) >= 200, `best ${out.search?.bestRatePps}`);
  t.ok((out.search?.trials.length ?? 99) <= 3);
});

t.test('hold keeps allocations until SIGTERM, then releases them', async (t) => {
  const child = spawn(
    process.execPath,
    [BENCH, ...server, ...STATIC, '--allocations', '3', '--hold', '0', '--json', '--no-progress'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not ready')), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('"event":"ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const metrics = await (await fetch(metricsUrl)).text();
  t.match(metrics, /turn_allocations/, 'daemon exposes its allocations');
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 130, 'interrupted exit code');
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as Output;
  t.equal(out.interrupted, true);
  t.ok(out.hold !== undefined);
});

t.test('self-test finds the tool ceiling against its own forwarder', async (t) => {
  const { code, out } = await bench([
    '--self-test',
    '--allocations',
    '4',
    '--search-start',
    '500',
    '--search-max',
    '1000',
    '--search-steps',
    '2',
    '--duration',
    '0.5',
    '--warmup',
    '0.2',
    '--pin',
    'off',
  ]);
  t.equal(code, 0);
  t.equal(out.mode, 'self-test');
  t.match(out.selfTest?.pinning ?? '', /not pinned/);
  t.ok((out.search?.bestRatePps ?? 0) >= 500);
});

t.test('wrong credentials: setup failures by error code, exit 1', async (t) => {
  const { code, out } = await bench([
    ...server,
    '--user',
    'bench',
    '--password',
    'wrong',
    '--allocations',
    '2',
  ]);
  t.equal(code, 1);
  t.equal(out.setup?.active, 0);
  t.same(Object.keys(out.setup?.allocate.failures ?? {}), ['401']);
  t.match(out.error ?? '', /no allocation/);
});

t.test('usage errors and help', async (t) => {
  const bad = await run(['--size', '3']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--size/);
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: turnpike-bench/);
  const fwd = await run(['forwarder', '--listen', 'nowhere']);
  t.equal(fwd.code, 2);
});
