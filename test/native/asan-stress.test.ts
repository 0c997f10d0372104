/**
 * The native data plane built with AddressSanitizer and UBSan (`npm run build:native:asan`), loaded
 * into a Node process that churns allocations, permissions, channels, refreshes and deletes while
 * ChannelData, Send indications and peer datagrams flow both ways over two threads, mutated
 * datagrams hit the listener and relay ports, RFC 8016 moves hand allocations from thread to thread
 * (operations queued behind them wait for them), and the server closes with allocations still
 * live, some in transit (test/fixtures/native/stress.ts). Any sanitizer report fails the run (halt_on_error).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import t from 'tap';

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
