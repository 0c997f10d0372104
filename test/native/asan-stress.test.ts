/**
 * The native data plane built with AddressSanitizer and UBSan (`npm run build:native:asan`), loaded
 * into a Node process that churns allocations, permissions, channels, refreshes and deletes while
 * ChannelData, Send indications and peer datagrams flow both ways over two threads, mutated
 * datagrams hit the listener and relay ports, RFC 8016 moves hand allocations from thread to thread
 * (operations queued behind them wait for them), and the server closes with allocations still
 * live, some in transit (test/fixtures/native/stress.ts). Any sanitizer report fails the run (halt_on_error).
 * Then the same build in a daemon and in turnpike-bench's native traffic engine (native/loadgen.cc):
 * c2p and p2c windows, ChannelData and Send/Data indications, two engine threads.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { aliceOnLoopback, startDaemon } from '../fixtures/helpers/daemon.js';
import { BENCH } from '../fixtures/helpers/load-tool.js';

const root = new URL('../../', import.meta.url).pathname;
const hasGcc = spawnSync('gcc', ['--version']).status === 0;
// Independent of the data plane the daemons run: CI's second pass (TURNPIKE_DATA_PLANE=js) skips it.
const jsPass = process.env['TURNPIKE_DATA_PLANE'] === 'js';

t.test(
  'churn under AddressSanitizer: no report, traffic relayed, clean shutdown',
  { timeout: 240_000, skip: jsPass && 'run in the native pass' },
  async (t) => {
    if (!hasGcc) {
      t.notOk(process.env['CI'], 'gcc is present in CI');
      return;
    }
    execFileSync(process.execPath, ['bin/build-native.js', '--asan'], { cwd: root, stdio: 'pipe' });
    const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/native/stress.ts', '12', '6'], {
      cwd: root,
      env: {
        ...process.env,
        LD_PRELOAD: libasan,
        // Node's own allocations at exit are not ours to judge; every other finding halts the process.
        ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0',
        UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
        TP_NATIVE_ADDON: `${root}build/asan/turnpike_dataplane.node`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    t.notMatch(stderr, /AddressSanitizer|runtime error|LeakSanitizer/, 'no sanitizer report');
    t.equal(code, 0, `the stress run exits 0 (stderr: ${stderr.slice(-3000)})`);
    const summary = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      allocations: number;
      deletes: number;
      kept: number;
      fuzzed: number;
      relayed: number;
      moves: number;
      directMoves: number;
      threads: {
        toPeerPackets: number;
        toClientPackets: number;
        droppedPayloadPolicy: number;
        droppedMaxBps: number;
        droppedUserMaxBps: number;
        droppedBpsCapacity: number;
      }[];
    };
    t.ok(summary.allocations >= 100, `allocations churned: ${summary.allocations}`);
    t.ok(summary.deletes > 0 && summary.kept > 0, 'some deleted, some left live for the shutdown');
    t.ok(summary.fuzzed >= 10_000, `mutated datagrams: ${summary.fuzzed}`);
    t.ok(summary.relayed >= 10_000, `relayed by the threads: ${summary.relayed}`);
    t.ok(summary.moves >= 50, `clients moved mid-traffic (RFC 8016): ${summary.moves}`);
    t.ok(summary.directMoves >= 200, `moves queued back to back on the addon: ${summary.directMoves}`);
    const sum = (f: (x: (typeof summary.threads)[number]) => number): number =>
      summary.threads.reduce((n, x) => n + f(x), 0);
    t.ok(sum((x) => x.droppedPayloadPolicy) > 0, 'the payload policy refused datagrams');
    t.ok(
      sum((x) => x.droppedMaxBps + x.droppedUserMaxBps + x.droppedBpsCapacity) > 0,
      'the bandwidth buckets dropped packets',
    );
    t.ok(
      summary.threads.every((th) => th.toPeerPackets > 0 && th.toClientPackets > 0),
      'both threads relayed both ways',
    );
  },
);

t.test(
  'daemon and load-tool engine under AddressSanitizer: both directions, both data paths, no report',
  { timeout: 240_000, skip: jsPass && 'run in the native pass' },
  async (t) => {
    if (!hasGcc) {
      t.notOk(process.env['CI'], 'gcc is present in CI');
      return;
    }
    const asanAddon = `${root}build/asan/turnpike_dataplane.node`;
    if (!existsSync(asanAddon)) {
      execFileSync(process.execPath, ['bin/build-native.js', '--asan'], { cwd: root, stdio: 'pipe' });
    }
    const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    const env: NodeJS.ProcessEnv = {
      LD_PRELOAD: libasan,
      ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
      TP_NATIVE_ADDON: asanAddon,
      TURNPIKE_DATA_PLANE: 'native',
    };
    const d = await startDaemon(
      [
        ...aliceOnLoopback(),
        '--allowed-peer-ip',
        '127.0.0.1',
        '--data-plane',
        'native',
        '--relay-threads',
        '2',
      ],
      { env },
    );
    t.teardown(() => d.stop());
    for (const direction of ['c2p', 'p2c']) {
      for (const path of ['channel', 'send']) {
        const args = [
          BENCH,
          '--server',
          `127.0.0.1:${d.port}`,
          '--user',
          'alice',
          '--password',
          'wonderland',
          '--allocations',
          '40',
          '--workers',
          '2',
          '--total-rate',
          '20000',
          '--direction',
          direction,
          '--path',
          path,
          '--engine',
          'native',
          '--warmup',
          '0.3',
          '--duration',
          '1',
          '--json',
          '--no-progress',
        ];
        const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          execFile(
            process.execPath,
            args,
            { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 1 << 24 },
            (err, stdout, stderr) =>
              resolve({
                code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1,
                stdout,
                stderr,
              }),
          );
        });
        const label = `${direction} ${path}`;
        t.notMatch(r.stderr, /AddressSanitizer|runtime error/, `${label}: no sanitizer report in the engine`);
        t.equal(r.code, 0, `${label}: the tool exits 0 (stderr: ${r.stderr.slice(-2000)})`);
        const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
          engine?: { used?: string };
          result?: { sent: number; received: number };
        };
        t.equal(out.engine?.used, 'native', `${label}: the native engine ran`);
        t.ok(
          (out.result?.received ?? 0) > 0.9 * (out.result?.sent ?? 1),
          `${label}: relayed ${out.result?.received} of ${out.result?.sent}`,
        );
      }
    }
    const code = await d.stop();
    t.notMatch(d.stderr(), /AddressSanitizer|runtime error/, 'no sanitizer report in the daemon');
    t.equal(code, 0, 'the daemon stopped cleanly');
  },
);
