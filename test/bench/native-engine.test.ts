/**
 * turnpike-bench's native traffic engine (native/loadgen.cc) against the built daemon on loopback: the
 * same counts as the JS engine at a modest rate (20 000 pkt/s for 1 s, nothing lost, the daemon's own
 * counter agreeing), on both data paths; the fallback to the JS engine when the addon cannot run
 * (`auto`) and the error when it was asked for (`native`); p2c, where the engine reads the client
 * sockets; echo, where its peer sockets send back; and the self-test's native ceiling.
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { loadLoadGen } from '../../src/load-tool/native-engine.js';
import { type Daemon, freePort, metricsArgs, startDaemon } from '../fixtures/helpers/daemon.js';
import { BENCH } from '../fixtures/helpers/load-tool.js';

interface Out {
  engine: { requested: string; used?: string; note?: string };
  error?: string;
  setup?: { active: number; engine: string };
  result?: {
    offered: number;
    sent: number;
    received: number;
    forwarded: number;
    skipped: number;
    stray: number;
    late: number;
    lossPct: number;
    latency: { kind: string; samples: number; p50Us: number };
    jitter: { flows: number };
    tool: { workerCpuPct: (number | null)[] };
    metrics?: { checks: { direction: string; server: number; tool: number; agree: boolean }[] };
  };
  selfTest?: { nativeDirect?: { bestRatePps: number; trials: unknown[] } };
  search?: { bestRatePps: number };
}

function bench(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; out: Out; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BENCH, ...args, '--json', '--no-progress'],
      { timeout: 60_000, env },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        try {
          resolve({ code, out: JSON.parse(stdout.trim().split('\n').pop() ?? '') as Out, stderr });
        } catch {
          reject(new Error(`no JSON (exit ${code}): ${stdout}\n${stderr}`));
        }
      },
    );
  });
}

const available = loadLoadGen();
if ('error' in available) {
  t.plan(0, `native engine not built: ${available.error}`);
} else {
  let daemon: Daemon;
  let server: string[];

  t.before(async () => {
    const metricsPort = await freePort();
    daemon = await startDaemon([
      '--listening-ip',
      '127.0.0.1',
      '--no-tcp',
      '--no-tls',
      '--realm',
      'native.test',
      '--user',
      'bench:benchpass',
      '--allowed-peer-ip',
      '127.0.0.1',
      ...metricsArgs(metricsPort),
    ]);
    server = [
      '--server',
      `127.0.0.1:${daemon.port}`,
      '--user',
      'bench',
      '--password',
      'benchpass',
      '--metrics',
      `http://127.0.0.1:${metricsPort}/metrics`,
    ];
  });

  t.teardown(async () => {
    await daemon?.stop();
  });

  const LOAD = ['--allocations', '20', '--total-rate', '20000', '--duration', '1', '--warmup', '0.2'];

  for (const path of ['channel', 'send']) {
    t.test(`${path}: the native engine counts what the JS engine counts`, async (t) => {
      const runs: Record<string, Out> = {};
      for (const engine of ['js', 'native']) {
        const { code, out, stderr } = await bench([...server, ...LOAD, '--path', path, '--engine', engine]);
        t.equal(code, 0, stderr);
        t.equal(out.engine.used, engine, `${engine} engine ran`);
        t.equal(out.setup?.engine, engine);
        const r = out.result!;
        t.equal(r.offered, 20_000, `${engine}: offered 20 000`);
        t.equal(r.sent, 20_000, `${engine}: sent every offered packet`);
        t.equal(r.skipped, 0);
        t.equal(r.received, r.sent, `${engine}: received == sent`);
        t.equal(r.lossPct, 0);
        t.equal(r.stray, 0);
        t.equal(r.late, 0);
        t.equal(r.latency.kind, 'one-way');
        t.equal(r.latency.samples, r.received, `${engine}: a latency sample per packet`);
        t.ok(r.latency.p50Us > 0 && r.latency.p50Us < 50_000, `${engine}: p50 ${r.latency.p50Us} µs`);
        t.equal(r.jitter.flows, 20, `${engine}: jitter of every allocation`);
        t.ok((r.tool.workerCpuPct[0] ?? 0) > 0, `${engine}: engine CPU measured`);
        t.ok(r.latency.p50Us < 1000, `${engine}: p50 ${r.latency.p50Us} µs (kernel timestamps, not ticks)`);
        const check = r.metrics!.checks[0]!;
        t.equal(check.direction, 'client_to_peer');
        t.equal(check.server, check.tool, `${engine}: the daemon relayed exactly what the tool received`);
        runs[engine] = out;
      }
      t.equal(runs['native']!.result!.received, runs['js']!.result!.received, 'same counts');
    });
  }

  t.test('two workers, each with its own native engine', async (t) => {
    const { code, out } = await bench([...server, ...LOAD, '--workers', '2']);
    t.equal(code, 0);
    t.equal(out.engine.requested, 'auto');
    t.equal(out.engine.used, 'native', 'auto picks the native engine for c2p');
    t.equal(out.result?.received, 20_000);
    t.equal(out.result?.tool.workerCpuPct.length, 2);
  });

  for (const path of ['channel', 'send']) {
    t.test(`${path} p2c: the native engine reads the client sockets and counts as JS does`, async (t) => {
      const args = [...server, ...LOAD, '--path', path, '--direction', 'p2c'];
      for (const engine of ['js', 'native']) {
        const started = Date.now();
        const { code, out, stderr } = await bench([...args, '--engine', engine]);
        t.equal(code, 0, stderr);
        t.equal(out.engine.used, engine);
        const r = out.result!;
        t.equal(r.sent, 20_000, `${engine}: sent`);
        t.equal(r.received, 20_000, `${engine}: received`);
        t.equal(r.stray, 0, `${engine}: nothing unframed wrongly`);
        t.equal(r.latency.samples, 20_000);
        t.ok(r.latency.p50Us < 1000, `${engine}: p50 ${r.latency.p50Us} µs (kernel timestamps, not ticks)`);
        const check = r.metrics!.checks[0]!;
        t.equal(check.direction, 'peer_to_client');
        t.equal(check.server, check.tool, `${engine}: the daemon relayed exactly what the tool received`);
        // The release (Refresh 0) needs JS to read the client sockets again: no 5 s cleanup timeout.
        t.ok(Date.now() - started < 5000, `${engine}: done in ${Date.now() - started} ms`);
      }
    });
  }

  t.test('echo: the peer sockets send back at once, the client sockets are read, as JS does', async (t) => {
    const args = [...server, '--allocations', '20', '--rate', '100', '--size', '160', '--duration', '1'];
    for (const engine of ['js', 'native', 'auto']) {
      const started = Date.now();
      const { code, out, stderr } = await bench([
        ...args,
        '--warmup',
        '0.2',
        '--direction',
        'echo',
        '--engine',
        engine,
      ]);
      t.equal(code, 0, stderr);
      t.equal(out.engine.used, engine === 'auto' ? 'native' : engine, `${engine}: engine`);
      const r = out.result!;
      t.equal(r.sent, 2000, `${engine}: sent`);
      t.equal(r.forwarded, 2000, `${engine}: every payload echoed by a peer`);
      t.equal(r.received, 2000, `${engine}: every echo came back`);
      t.equal(r.stray, 0);
      t.equal(r.late, 0);
      t.equal(r.latency.kind, 'round-trip');
      t.equal(r.latency.samples, 2000, `${engine}: a round trip per packet`);
      t.ok(r.latency.p50Us > 0 && r.latency.p50Us < 5000, `${engine}: p50 ${r.latency.p50Us} µs`);
      t.same(
        r.metrics!.checks.map((c) => [c.direction, c.server, c.tool]),
        [
          ['client_to_peer', 2000, 2000],
          ['peer_to_client', 2000, 2000],
        ],
        `${engine}: the daemon relayed every packet to the peers and every echo back`,
      );
      // The release needs JS to read the client sockets again (native: libuv resumes after the window).
      t.ok(Date.now() - started < 5000, `${engine}: done in ${Date.now() - started} ms`);
    }
  });

  t.test('the addon cannot load: auto falls back to JS, native is an error', async (t) => {
    const missing = '/nonexistent/turnpike_dataplane.node';
    t.notOk(existsSync(missing));
    const env = { ...process.env, TP_NATIVE_ADDON: missing };
    const args = [...server, '--allocations', '2', '--rate', '200', '--duration', '0.3', '--warmup', '0'];
    const auto = await bench(args, env);
    t.equal(auto.code, 0, auto.stderr);
    t.equal(auto.out.engine.used, 'js', 'fell back to the JS engine');
    t.match(auto.out.engine.note ?? '', /not built|missing/);
    t.equal(auto.out.result?.received, auto.out.result?.sent);
    const native = await bench([...args, '--engine', 'native'], env);
    t.equal(native.code, 1);
    t.match(native.out.error ?? '', /--engine native/);
  });

  t.test('an unknown --engine is a usage error', async (t) => {
    const r = await new Promise<number>((resolve) => {
      execFile(process.execPath, [BENCH, '--engine', 'fast', '--direction', 'echo'], (err) =>
        resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1),
      );
    });
    t.equal(r, 2);
  });

  t.test('self-test reports the native engine ceiling too', async (t) => {
    const { code, out } = await bench([
      '--self-test',
      '--allocations',
      '4',
      '--search-start',
      '2000',
      '--search-max',
      '4000',
      '--search-steps',
      '2',
      '--duration',
      '0.3',
      '--warmup',
      '0.1',
      '--pin',
      'off',
    ]);
    t.equal(code, 0);
    t.equal(out.engine.used, 'native');
    t.ok((out.search?.bestRatePps ?? 0) >= 2000);
    const direct = out.selfTest?.nativeDirect;
    t.ok(direct !== undefined, 'native ceiling reported');
    t.ok((direct?.bestRatePps ?? 0) >= 2000, `native ceiling ${direct?.bestRatePps}`);
    t.ok((direct?.trials.length ?? 99) <= 2);
  });
}
