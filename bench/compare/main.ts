/**
 * Side-by-side relay benchmark: turnpike, coturn (one relay thread; optionally all) and the bare Node
 * forwarder, driven by the same load tool (turnpike-bench) with the same workloads, in alternating
 * rounds, on 127.0.0.1. See bench/README.md for the method.
 *
 *   npm run bench:compare -- [--rounds 3] [--targets forwarder,turnpike,coturn] [--smoke] [--baseline]
 *
 * Per round and target (each on a freshly started server): echo latency at 50 × 50 pps × 160 B; server
 * CPU per relayed packet at a fixed rate; the highest rate under 1% loss for 100/1200-byte payloads and
 * 1/100/1000 allocations (with the Allocate rate of the 1000-allocation setups); then, on another fresh
 * server, its RSS with 1 000 and 10 000 live allocations. Once per run: bench/binding for Binding
 * requests/s. Results: bench/results/compare-<date>.json and .md, and the table on stdout.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machineCpu, openFilesLimit, processCpuSeconds, processRssBytes } from '../../src/bench/proc.js';
import type { TrialResult } from '../../src/bench/results.js';
import {
  type Child,
  ChildRegistry,
  freeUdpPort,
  pinningCpus,
  stopChildrenOnSignals,
} from '../binding/processes.js';
import { type Environment, environment, median } from '../binding/report.js';
import { waitUntilAnswering } from '../binding/targets.js';
import {
  COMMON_OPTIONS,
  commaList,
  integerOption,
  numberOption,
  parseCommandLine,
  pinOption,
  serverBinaries,
  targetsOption,
  UsageError,
} from '../shared/cli.js';
import {
  type BindingFigures,
  evaluateTargets,
  type MetricSummary,
  markdown,
  metricDefs,
  RATE_CONFIGS,
  type RateRound,
  rateKey,
  summarizeMetrics,
  type TargetCheck,
  type TargetRound,
} from './report.js';
import {
  buildTargets,
  COTURN_PORTS,
  DEFAULT_TARGETS,
  isTargetName,
  PASSWORD,
  type Target,
  type TargetName,
  TURNPIKE_PORTS,
  USER,
} from './targets.js';
import { holdAllocations, runTool, type ToolContext, ToolFailure } from './tool.js';

const USAGE = `Usage: npm run bench:compare -- [options]

  --rounds N            rounds, each measuring every target once, alternating (default 3)
  --targets LIST        from forwarder,turnpike,coturn,coturn-mt (default forwarder,turnpike,coturn)
  --skip LIST           leave out workloads: rate,latency,cpu,setup,rss,binding
  --trial-duration S    measured seconds per search trial (default 1.5; warm-up 0.5)
  --search-steps N      trials per search (default 12; a failing trial is repeated once)
  --cpu-rate PPS        fixed total rate of the CPU-per-packet workload (default 20000)
  --sock-buf BYTES      SO_RCVBUF/SO_SNDBUF for turnpike (--sock-buf-size) and the forwarder; default
                        4194304, what coturn sets on its listener (capped by rmem_max); 0: OS default
  --tool-workers N      worker threads of the load tool (default 1: it has one CPU of its own)
  --pin auto|off        pin the tool and single-threaded servers to separate CPUs (default auto)
  --out DIR             where compare-<date>.json/.md go (default bench/results)
  --baseline            also write bench/results/baseline-compare.json and .md
  --render FILE         only recompute and print the tables of a saved compare-<date>.json
  --smoke               seconds per target, tiny workloads, no thresholds: exit 0 iff every target
                        relayed something (CI)
  --turnpike-bin P      turnpike entry point (default bin/turnpike.js)
  --coturn-bin P        coturn server binary (default turnserver)
  -h, --help            this text
`;

const WORKLOADS = ['rate', 'latency', 'cpu', 'setup', 'rss', 'binding'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Options {
  readonly rounds: number;
  readonly targets: readonly TargetName[];
  readonly skip: ReadonlySet<Workload>;
  readonly trialSec: number;
  readonly searchSteps: number;
  readonly cpuRatePps: number;
  readonly sockBufBytes: number;
  readonly toolWorkers: number;
  readonly pin: boolean;
  readonly outDir: string;
  readonly baseline: boolean;
  readonly render: string | undefined;
  readonly smoke: boolean;
  readonly turnpikeBin: string;
  readonly coturnBin: string;
}

class TargetFailure extends Error {}

function parseOptions(argv: readonly string[], repoRoot: string): Options | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      rounds: { type: 'string' },
      skip: { type: 'string' },
      'trial-duration': { type: 'string' },
      'search-steps': { type: 'string' },
      'cpu-rate': { type: 'string' },
      'sock-buf': { type: 'string' },
      'tool-workers': { type: 'string' },
      out: { type: 'string' },
      baseline: { type: 'boolean', default: false },
      render: { type: 'string' },
      ...COMMON_OPTIONS,
    },
  });
  if (values.help) return undefined;
  const targets = targetsOption(values.targets, DEFAULT_TARGETS, isTargetName);
  const skip = commaList(values.skip ?? '');
  const badSkip = skip.filter((s) => !(WORKLOADS as readonly string[]).includes(s));
  if (badSkip.length > 0) throw new UsageError(`--skip: unknown ${badSkip.join(', ')}`);
  const pin = pinOption(values.pin);
  return {
    rounds: values.smoke ? 1 : integerOption(values.rounds, 'rounds', 3, 1, 50),
    targets,
    skip: new Set(skip as Workload[]),
    trialSec: numberOption(values['trial-duration'], 'trial-duration', 1.5, 0.2, 60),
    searchSteps: integerOption(values['search-steps'], 'search-steps', 12, 2, 30),
    cpuRatePps: numberOption(values['cpu-rate'], 'cpu-rate', 20_000, 100, 1_000_000),
    sockBufBytes: numberOption(values['sock-buf'], 'sock-buf', 4 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    toolWorkers: numberOption(values['tool-workers'], 'tool-workers', 1, 1, 16),
    pin,
    outDir: resolve(values.out ?? join(repoRoot, 'bench', 'results')),
    baseline: values.baseline,
    render: values.render,
    smoke: values.smoke,
    ...serverBinaries(values, repoRoot),
  };
}

/** A TCP port free right now on 127.0.0.1 (for turnpike's metrics listener). */
function freeTcpPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Context {
  readonly options: Options;
  readonly registry: ChildRegistry;
  readonly repoRoot: string;
  readonly toolMain: string;
  readonly pin: { readonly client: number; readonly server: number } | undefined;
  readonly tool: ToolContext;
  readonly abort: AbortSignal;
  /** Whether 10 000 allocations fit (open files, ports), or why not. */
  readonly tenK: { readonly ok: boolean; readonly note: string | undefined };
  readonly log: (line: string) => void;
}

interface RunningServer {
  readonly child: Child;
  readonly port: number;
  readonly metricsUrl: string | undefined;
  readonly workDir: string;
}

async function startServer(ctx: Context, target: Target): Promise<RunningServer> {
  const port = await freeUdpPort();
  const metricsPort = await freeTcpPort();
  const workDir = mkdtempSync(join(tmpdir(), 'turnpike-bench-compare-'));
  const launch = target.launch(port, metricsPort, workDir);
  let child: Child;
  try {
    child = await ctx.registry.start(
      target.name,
      launch.command,
      launch.args,
      target.pinnable ? ctx.pin?.server : undefined,
      { cwd: ctx.repoRoot },
    );
  } catch (err) {
    rmSync(workDir, { recursive: true, force: true });
    throw new TargetFailure(`could not start ${launch.command}: ${(err as Error).message}`);
  }
  const probe = await waitUntilAnswering(port, 'response', child, target.readyTimeoutMs);
  if (!probe.ok) {
    await stopServer(ctx, { child, port, metricsUrl: undefined, workDir });
    const out = child.output().trim().split('\n').slice(-10).join('\n');
    throw new TargetFailure(`${target.name}: ${probe.reason}${out.length > 0 ? `\n${out}` : ''}`);
  }
  let metricsUrl: string | undefined;
  if (target.hasMetrics) {
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    for (let i = 0; i < 50; i++) {
      try {
        const r = await fetch(metricsUrl, { signal: AbortSignal.timeout(1000) });
        if (r.ok) break;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
  }
  return { child, port, metricsUrl, workDir };
}

async function stopServer(ctx: Context, s: RunningServer): Promise<void> {
  await ctx.registry.stop(s.child);
  rmSync(s.workDir, { recursive: true, force: true });
}

function serverArgs(ctx: Context, target: Target, s: RunningServer): string[] {
  const args = [
    '--server',
    `127.0.0.1:${s.port}`,
    '--server-pid',
    String(s.child.pid),
    '--workers',
    String(ctx.options.toolWorkers),
  ];
  if (target.authenticated) args.push('--user', USER, '--password', PASSWORD);
  if (s.metricsUrl !== undefined) args.push('--metrics', s.metricsUrl);
  return args;
}

const f0 = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? 'n/a' : Math.round(n).toLocaleString('en-US');
const f2 = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(2));

function noise(r: TrialResult | undefined): string {
  if (r === undefined) return '';
  return `, other CPU ${f0(r.machine.otherCpuPct)}%, steal ${f0(r.machine.stealPct)}%`;
}

/** Runs one workload of a round: a failure of the tool is recorded in `rec` and logged, and the round goes on. */
async function workload(
  ctx: Context,
  rec: TargetRound,
  what: string,
  run: () => Promise<void>,
): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (!(err instanceof ToolFailure)) throw err;
    rec.errors.push(err.message);
    ctx.log(`round ${rec.round} ${rec.target} ${what} FAILED: ${err.message}`);
  }
}

/** The setup workload: runs per round and target after one warm-up run, and allocations per run. */
const SETUP_REPEATS = 5;
const SETUP_ALLOCATIONS = 1000;

/** Best rates of earlier rounds, to start later searches near them (fewer doubling steps). */
const previousBest = new Map<string, number>();

async function measureRelay(ctx: Context, target: Target, round: number, rec: TargetRound): Promise<void> {
  const o = ctx.options;
  const server = await startServer(ctx, target);
  const label = (w: string): string => `${target.name} r${round} ${w}`;
  try {
    const base = serverArgs(ctx, target, server);
    if (!o.skip.has('latency') && !ctx.abort.aborted) {
      await workload(ctx, rec, 'latency', async () => {
        const out = await runTool(
          ctx.tool,
          label('latency'),
          [
            ...base,
            '--allocations',
            '50',
            '--rate',
            '50',
            '--size',
            '160',
            '--direction',
            'echo',
            '--duration',
            '5',
            '--warmup',
            '1',
          ],
          120_000,
        );
        const r = out.result!;
        rec.latency = {
          p50Us: r.latency.p50Us,
          p99Us: r.latency.p99Us,
          p999Us: r.latency.p999Us,
          lossPct: r.lossPct,
          toolLimited: r.tool.limited,
          otherCpuPct: r.machine.otherCpuPct,
          stealPct: r.machine.stealPct,
        };
        ctx.log(
          `round ${round} ${target.name.padEnd(10)} latency: RTT p50 ${f0(r.latency.p50Us)} µs, p99 ${f0(r.latency.p99Us)} µs, loss ${f2(r.lossPct)}%${noise(r)}`,
        );
      });
    }
    if (!o.skip.has('cpu') && !ctx.abort.aborted) {
      await workload(ctx, rec, 'cpu', async () => {
        const out = await runTool(
          ctx.tool,
          label('cpu'),
          [
            ...base,
            '--allocations',
            '100',
            '--total-rate',
            String(o.cpuRatePps),
            '--size',
            '100',
            '--duration',
            '5',
            '--warmup',
            '1',
          ],
          120_000,
        );
        const r = out.result!;
        rec.cpu = {
          ratePps: o.cpuRatePps,
          usPerPacket: r.server?.cpuUsPerPacket,
          serverCpuPct: r.server?.cpuPct,
          lossPct: r.lossPct,
          metricsAgree: r.metrics === undefined ? undefined : r.metrics.checks.every((c) => c.agree),
          toolLimited: r.tool.limited,
          otherCpuPct: r.machine.otherCpuPct,
          stealPct: r.machine.stealPct,
        };
        ctx.log(
          `round ${round} ${target.name.padEnd(10)} cpu: ${f2(r.server?.cpuUsPerPacket)} µs/packet at ${f0(r.receivedPps)} pkt/s ` +
            `(server ${f0(r.server?.cpuPct)}%, loss ${f2(r.lossPct)}%` +
            (r.metrics === undefined ? '' : `, metrics ${rec.cpu.metricsAgree ? 'agree' : 'DISAGREE'}`) +
            `)${noise(r)}`,
        );
      });
    }
    if (!o.skip.has('setup') && !ctx.abort.aborted) {
      await workload(ctx, rec, 'setup', async () => {
        // Back-to-back set-ups of 1000 allocations (Allocate with its 401 round, CreatePermission,
        // ChannelBind), each released again (Refresh 0); the first warms the server up and is left
        // out. Allocate/s is the tool's; the CPU per allocation is the server's own (from /proc),
        // set-up and release together, which the load tool's speed does not cap.
        const rates: number[] = [];
        const cpuUs: number[] = [];
        const steal: number[] = [];
        for (let i = 0; i <= SETUP_REPEATS && !ctx.abort.aborted; i++) {
          const machineBefore = machineCpu();
          const before = processCpuSeconds(server.child.pid);
          const out = await runTool(
            ctx.tool,
            label(`setup ${i}`),
            [...base, '--allocations', String(SETUP_ALLOCATIONS), '--hold', '0.01'],
            120_000,
          );
          await sleep(200);
          const after = processCpuSeconds(server.child.pid);
          const machineAfter = machineCpu();
          const setup = out.setup;
          if (i === 0 || setup === undefined || setup.active === 0) continue;
          rates.push(setup.allocate.perSec);
          if (machineBefore !== undefined && machineAfter !== undefined) {
            const total = machineAfter.totalSec - machineBefore.totalSec;
            if (total > 0) steal.push((100 * (machineAfter.stealSec - machineBefore.stealSec)) / total);
          }
          if (before !== undefined && after !== undefined)
            cpuUs.push(((after - before) * 1e6) / setup.active);
        }
        rec.setup = {
          allocatePerSec: rates.length === 0 ? undefined : median(rates),
          cpuUsPerAllocation: cpuUs.length === 0 ? undefined : median(cpuUs),
          runs: rates.length,
          otherCpuPct: undefined,
          stealPct: steal.length === 0 ? undefined : median(steal),
        };
        ctx.log(
          `round ${round} ${target.name.padEnd(10)} setup: ${f0(rec.setup.allocatePerSec)} Allocate/s, ` +
            `${f0(rec.setup.cpuUsPerAllocation)} µs server CPU per allocation (median of ${rates.length}), ` +
            `steal ${f0(rec.setup.stealPct)}%`,
        );
      });
    }
    if (!o.skip.has('rate')) {
      for (const { size, allocations } of RATE_CONFIGS) {
        if (ctx.abort.aborted) break;
        const key = rateKey(size, allocations);
        const prev = previousBest.get(`${target.name} ${key}`);
        const start = prev === undefined ? 10_000 : Math.max(1000, Math.round(prev * 0.75));
        await workload(ctx, rec, `rate ${key}`, async () => {
          const out = await runTool(
            ctx.tool,
            label(`rate ${key}`),
            [
              ...base,
              '--search',
              '--allocations',
              String(allocations),
              '--size',
              String(size),
              '--search-start',
              String(start),
              '--search-steps',
              String(o.searchSteps),
              '--duration',
              String(o.trialSec),
              '--warmup',
              '0.5',
            ],
            20 * 60_000,
          );
          const s = out.search!;
          const rr: RateRound = {
            bestPps: s.bestRatePps,
            toolLimited: s.toolLimited,
            reachedMax: s.reachedMax,
            trials: s.trials.length,
            cpuUsPerPacket: s.best?.server?.cpuUsPerPacket,
            allocatePerSec: out.setup?.allocate.perSec,
            otherCpuPct: median(
              s.trials.flatMap((t) =>
                t.result.machine.otherCpuPct === undefined ? [] : [t.result.machine.otherCpuPct],
              ),
            ),
            stealPct: median(
              s.trials.flatMap((t) =>
                t.result.machine.stealPct === undefined ? [] : [t.result.machine.stealPct],
              ),
            ),
          };
          rec.rates[key] = rr;
          if (s.bestRatePps > 0) previousBest.set(`${target.name} ${key}`, s.bestRatePps);
          ctx.log(
            `round ${round} ${target.name.padEnd(10)} rate ${key.padEnd(10)}: ${f0(s.bestRatePps)} pkt/s` +
              `${s.toolLimited ? ' (tool-limited)' : ''} in ${s.trials.length} trials, ` +
              `${f2(rr.cpuUsPerPacket)} µs/packet, setup ${f0(rr.allocatePerSec)} Allocate/s${noise(s.best)}`,
          );
        });
      }
    }
    if (server.child.process.exitCode !== null || server.child.process.signalCode !== null) {
      rec.errors.push(`${target.name} exited during the round`);
    }
  } finally {
    await stopServer(ctx, server);
  }
}

/** RSS with 1 000, then 10 000 live allocations (each with a permission and a channel), on a fresh server. */
async function measureRss(ctx: Context, target: Target, round: number, rec: TargetRound): Promise<void> {
  const server = await startServer(ctx, target);
  const held: Child[] = [];
  const kib = (): number | undefined => {
    const b = processRssBytes(server.child.pid);
    return b === undefined ? undefined : b / 1024;
  };
  const settle = async (): Promise<number | undefined> => {
    // Let the server finish its setup work, then take the last of a few readings.
    let v: number | undefined;
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      v = kib();
    }
    return v;
  };
  try {
    await workload(ctx, rec, 'rss', async () => {
      const base = serverArgs(ctx, target, server);
      const idleKiB = kib();
      const a = await holdAllocations(
        ctx.tool,
        `${target.name} r${round} rss 1k`,
        [...base, '--allocations', '1000'],
        300_000,
      );
      held.push(a.child);
      const at1kKiB = await settle();
      let at10kKiB: number | undefined;
      let active10k = a.active;
      let note = ctx.tenK.note;
      if (ctx.tenK.ok && !ctx.abort.aborted) {
        const b = await holdAllocations(
          ctx.tool,
          `${target.name} r${round} rss 10k`,
          [...base, '--allocations', '9000'],
          600_000,
        );
        held.push(b.child);
        at10kKiB = await settle();
        active10k = a.active + b.active;
        if (b.active < 9000) note = `only ${b.active} of 9000 further allocations succeeded`;
      }
      const added = active10k - a.active;
      const perAllocationKiB =
        at1kKiB === undefined || at10kKiB === undefined || added <= 0
          ? undefined
          : (at10kKiB - at1kKiB) / added;
      rec.rss = { idleKiB, at1kKiB, at10kKiB, active1k: a.active, active10k, perAllocationKiB, note };
      ctx.log(
        `round ${round} ${target.name.padEnd(10)} rss: idle ${f0(idleKiB)} KiB, ${a.active} alloc ${f0(at1kKiB)} KiB, ` +
          `${active10k} alloc ${f0(at10kKiB)} KiB → ${f2(perAllocationKiB)} KiB per allocation${note === undefined ? '' : ` (${note})`}`,
      );
    });
  } finally {
    await Promise.all(held.map((c) => ctx.registry.stop(c, 10_000)));
    await stopServer(ctx, server);
  }
}

/** bench/binding once (its own rounds, its own pinning), for Binding requests/s. */
async function measureBinding(ctx: Context): Promise<BindingFigures> {
  const script = join(ctx.repoRoot, 'dist', 'bench', 'binding', 'main.js');
  if (!existsSync(script))
    return { echo: undefined, turnpike: undefined, coturn: undefined, note: `${script} missing` };
  const dir = mkdtempSync(join(tmpdir(), 'turnpike-bench-binding-'));
  const file = join(dir, 'binding.json');
  try {
    const args = [
      script,
      '--rounds',
      String(ctx.options.rounds),
      '--json',
      file,
      '--turnpike-bin',
      ctx.options.turnpikeBin,
    ];
    if (!ctx.options.pin) args.push('--pin', 'off');
    const child = await ctx.registry.start('bench:binding', process.execPath, args, undefined, {
      cwd: ctx.repoRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const status = await child.exited;
    if (!existsSync(file))
      return { echo: undefined, turnpike: undefined, coturn: undefined, note: `exit ${status.code}` };
    const record = JSON.parse(readFileSync(file, 'utf8')) as {
      summary: { target: string; status: string; medianRequestsPerSec: number }[];
    };
    const get = (t: string): number | undefined => {
      const s = record.summary.find((x) => x.target === t && x.status === 'measured');
      return s === undefined ? undefined : s.medianRequestsPerSec;
    };
    return { echo: get('echo'), turnpike: get('turnpike'), coturn: get('coturn'), note: undefined };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** --smoke: one tiny relay run per target. */
async function smoke(ctx: Context, targets: readonly Target[]): Promise<number> {
  const rows: string[] = [];
  let bad = 0;
  for (const target of targets) {
    if (ctx.abort.aborted) break;
    if (target.skipReason !== undefined) {
      rows.push(`${target.name.padEnd(10)} skipped: ${target.skipReason}`);
      continue;
    }
    try {
      const server = await startServer(ctx, target);
      try {
        const out = await runTool(
          ctx.tool,
          `${target.name} smoke`,
          [
            ...serverArgs(ctx, target, server),
            '--allocations',
            '2',
            '--rate',
            '100',
            '--duration',
            '1',
            '--warmup',
            '0.2',
          ],
          60_000,
        );
        const r = out.result!;
        const agree =
          r.metrics === undefined
            ? ''
            : `, metrics ${r.metrics.checks.every((c) => c.agree) ? 'agree' : 'DISAGREE'}`;
        rows.push(
          `${target.name.padEnd(10)} relayed ${r.received} of ${r.sent} packets, loss ${f2(r.lossPct)}%, ` +
            `p50 ${f0(r.latency.p50Us)} µs, server ${f2(r.server?.cpuUsPerPacket)} µs/packet${agree}`,
        );
        if (r.received === 0) bad++;
      } finally {
        await stopServer(ctx, server);
      }
    } catch (err) {
      if (!(err instanceof TargetFailure || err instanceof ToolFailure)) throw err;
      rows.push(`${target.name.padEnd(10)} FAILED: ${err.message}`);
      bad++;
    }
  }
  process.stdout.write(`\n${rows.join('\n')}\n`);
  return bad === 0 ? 0 : 1;
}

function portRangeSize(): number | undefined {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return lo === undefined || hi === undefined ? undefined : hi - lo + 1;
  } catch {
    return undefined;
  }
}

function tenKFeasibility(): { ok: boolean; note: string | undefined } {
  const nofile = openFilesLimit();
  const ephemeral = portRangeSize();
  const problems: string[] = [];
  // Each server needs a socket per allocation (+ its own); the tool holding 9 000 needs as many.
  if (nofile !== undefined && nofile < 10_500) problems.push(`ulimit -n is ${nofile} (< 10 500 needed)`);
  // The tool's client sockets and the forwarder's relay sockets come from the ephemeral range.
  if (ephemeral !== undefined && ephemeral < 20_500)
    problems.push(`ephemeral port range has ${ephemeral} ports (< 20 500)`);
  return problems.length === 0
    ? { ok: true, note: undefined }
    : { ok: false, note: `10 000 allocations skipped: ${problems.join('; ')}` };
}

function datedPath(dir: string, ext: string): string {
  const date = new Date().toISOString().slice(0, 10);
  let path = join(dir, `compare-${date}.${ext}`);
  for (let i = 2; existsSync(path) && i < 100; i++) path = join(dir, `compare-${date}-${i}.${ext}`);
  return path;
}

/**
 * Biome checks everything under bench/ (biome.json), results included, so the files written there are
 * passed through `biome format --write` when the project's Biome is installed. Best effort: without it
 * the files are still valid, just not in Biome's layout.
 */
function formatWithBiome(repoRoot: string, files: readonly string[]): void {
  const biome = join(repoRoot, 'node_modules', '.bin', 'biome');
  if (!existsSync(biome)) return;
  spawnSync(biome, ['format', '--write', ...files], { cwd: repoRoot, stdio: 'ignore', timeout: 30_000 });
}

/** The JSON record of a run (bench/results/compare-<date>.json). */
interface CompareRecord {
  readonly benchmark: 'compare';
  readonly environment: Environment;
  readonly config: {
    readonly cpuRatePps: number;
    readonly targets: readonly TargetName[];
    /** Targets that could run (records of older versions lack it and the next three). */
    readonly measured?: readonly TargetName[];
    readonly cpuCount?: number;
    readonly pinning: { readonly client: number; readonly server: number } | null;
    readonly tenK: { readonly ok: boolean; readonly note: string | undefined };
    readonly failed?: Readonly<Record<string, string>>;
    readonly descriptions?: Readonly<Record<string, string>>;
    readonly [key: string]: unknown;
  };
  readonly summary: readonly MetricSummary[];
  readonly targets: readonly TargetCheck[];
  readonly binding: BindingFigures | null;
  readonly rounds: readonly TargetRound[];
}

/** Summaries, the targets' evaluation and the markdown of a run (also used by --render on a saved one). */
function renderRecord(r: Omit<CompareRecord, 'summary' | 'targets'>): { record: CompareRecord; md: string } {
  const { config: c, environment: env, rounds } = r;
  const measured = c.measured ?? c.targets.filter((t) => rounds.some((x) => x.target === t));
  const defs = metricDefs(c.cpuRatePps);
  const summaries = summarizeMetrics(defs, rounds, measured);
  const checks = evaluateTargets(summaries);
  const other = rounds.flatMap((x) =>
    [x.latency?.otherCpuPct, x.cpu?.otherCpuPct, ...Object.values(x.rates).map((y) => y.otherCpuPct)].filter(
      (v): v is number => v !== undefined && Number.isFinite(v),
    ),
  );
  const steal = rounds.flatMap((x) =>
    [x.latency?.stealPct, x.cpu?.stealPct, ...Object.values(x.rates).map((y) => y.stealPct)].filter(
      (v): v is number => v !== undefined && Number.isFinite(v),
    ),
  );
  const max = (v: readonly number[]): number | undefined => (v.length === 0 ? undefined : Math.max(...v));
  const notes: string[] = [
    `${env.cpuModel ?? 'unknown CPU'} × ${c.cpuCount ?? env.cpuCount}, Linux ${env.kernel}, Node ${env.node}, ` +
      `turnpike ${env.gitSha?.slice(0, 7) ?? '?'}${env.gitDirty ? ' (dirty tree)' : ''}, ${env.date.slice(0, 10)}`,
    ...measured.flatMap((t) => (c.descriptions?.[t] === undefined ? [] : [`${t}: ${c.descriptions[t]}`])),
    c.pinning === null
      ? 'not pinned: tool and servers shared the CPUs'
      : `load tool pinned to CPU ${c.pinning.client}, single-threaded servers to CPU ${c.pinning.server}`,
    `machine noise over the measured windows: other processes median ${f0(median(other))}% of a core ` +
      `(max ${f0(max(other))}%), hypervisor steal median ${f0(median(steal))}% (max ${f0(max(steal))}%)`,
  ];
  if (c.tenK.note !== undefined) notes.push(c.tenK.note);
  for (const [t, why] of Object.entries(c.failed ?? {})) notes.push(`${t} failed: ${why.split('\n')[0]}`);
  for (const x of rounds)
    for (const e of x.errors) notes.push(`round ${x.round} ${x.target}: ${e.split('\n')[0]}`);
  const md = markdown(summaries, defs, measured, r.binding ?? undefined, checks, notes);
  return { record: { ...r, summary: summaries, targets: checks }, md };
}

/**
 * --render FILE: recompute a saved run's summaries and targets with the current code, print the table,
 * update FILE and write FILE's .md next to it. Target descriptions missing from older records are taken
 * from the current target table.
 */
function render(file: string, repoRoot: string): number {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as CompareRecord;
  let config = saved.config;
  if (config.descriptions === undefined) {
    const o = config as unknown as Partial<Options>;
    const table = buildTargets({
      repoRoot,
      turnpikeBin: o.turnpikeBin ?? join(repoRoot, 'bin', 'turnpike.js'),
      coturnBin: o.coturnBin ?? 'turnserver',
      toolMain: join(repoRoot, 'dist', 'src', 'bench', 'main.js'),
      cpuCount: config.cpuCount ?? saved.environment.cpuCount,
      sockBufBytes: o.sockBufBytes ?? 0,
    });
    config = { ...config, descriptions: Object.fromEntries([...table].map(([n, t]) => [n, t.description])) };
  }
  const { record, md } = renderRecord({ ...saved, config });
  process.stdout.write(`${md}\n`);
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  const mdPath = `${file.replace(/\.json$/, '')}.md`;
  writeFileSync(mdPath, `${md}\n`);
  formatWithBiome(repoRoot, [file, mdPath]);
  process.stdout.write(`\nupdated ${file}\nwrote ${mdPath}\n`);
  return 0;
}

async function main(): Promise<number> {
  const here = import.meta.dirname;
  // Compiled: dist/bench/compare → three levels up; under tsx: bench/compare → two.
  const repoRoot = import.meta.filename.endsWith('.ts')
    ? resolve(here, '..', '..')
    : resolve(here, '..', '..', '..');
  const options = parseCommandLine(() => parseOptions(process.argv.slice(2), repoRoot), USAGE);
  if (typeof options === 'number') return options;
  if (options.render !== undefined) return render(options.render, repoRoot);
  const toolMain = join(repoRoot, 'dist', 'src', 'bench', 'main.js');
  const cpuCount = availableParallelism();
  const pin = options.pin ? pinningCpus() : undefined;
  const all = buildTargets({
    repoRoot,
    turnpikeBin: options.turnpikeBin,
    coturnBin: options.coturnBin,
    toolMain,
    cpuCount,
    sockBufBytes: options.sockBufBytes,
  });
  const targets = options.targets.map((n) => all.get(n)!);
  const registry = new ChildRegistry();
  const abort = stopChildrenOnSignals(registry);

  const env = environment(repoRoot);
  const tenK = tenKFeasibility();
  const ctx: Context = {
    options,
    registry,
    repoRoot,
    toolMain,
    pin,
    tool: { registry, toolMain, clientCpu: pin?.client },
    abort,
    tenK,
    log: (line) => process.stdout.write(`${line}\n`),
  };
  process.stdout.write(
    `Relay comparison${options.smoke ? ' (smoke)' : ''}: ${options.targets.join(', ')}; ${options.rounds} round(s), 127.0.0.1\n` +
      `${env.cpuModel ?? 'unknown CPU'} × ${cpuCount}, Linux ${env.kernel}, Node ${env.node}\n` +
      (pin === undefined
        ? 'no CPU pinning: tool and server share all CPUs\n'
        : `pinned with taskset: load tool on CPU ${pin.client}, single-threaded servers on CPU ${pin.server}\n`) +
      `relay ports: turnpike ${TURNPIKE_PORTS.min}-${TURNPIKE_PORTS.max}, coturn ${COTURN_PORTS.min}-${COTURN_PORTS.max}` +
      `; ulimit -n ${openFilesLimit() ?? 'n/a'}; ${tenK.note ?? '10 000 allocations feasible'}\n\n`,
  );
  for (const t of targets)
    if (t.skipReason !== undefined) process.stdout.write(`${t.name}: skipped (${t.skipReason})\n`);

  if (options.smoke) {
    try {
      return await smoke(ctx, targets);
    } finally {
      await registry.stopAll();
    }
  }

  const rounds: TargetRound[] = [];
  const failed = new Map<TargetName, string>();
  let binding: BindingFigures | undefined;
  try {
    for (let round = 1; round <= options.rounds && !abort.aborted; round++) {
      const recs = new Map<TargetName, TargetRound>();
      for (const target of targets) {
        if (abort.aborted) break;
        if (target.skipReason !== undefined || failed.has(target.name)) continue;
        const rec: TargetRound = { round, target: target.name, rates: {}, errors: [] };
        recs.set(target.name, rec);
        rounds.push(rec);
        try {
          if (['rate', 'latency', 'cpu', 'setup'].some((w) => !options.skip.has(w as Workload))) {
            await measureRelay(ctx, target, round, rec);
          }
        } catch (err) {
          if (!(err instanceof TargetFailure)) throw err;
          failed.set(target.name, err.message);
          ctx.log(`round ${round} ${target.name}: FAILED: ${err.message}`);
        }
      }
      if (!options.skip.has('rss')) {
        for (const target of targets) {
          const rec = recs.get(target.name);
          if (abort.aborted || rec === undefined || failed.has(target.name)) continue;
          try {
            await measureRss(ctx, target, round, rec);
          } catch (err) {
            if (!(err instanceof TargetFailure)) throw err;
            rec.errors.push(err.message);
          }
        }
      }
    }
    if (!options.skip.has('binding') && !abort.aborted) {
      ctx.log('\nBinding requests/s (bench/binding):');
      binding = await measureBinding(ctx);
    }
  } finally {
    await registry.stopAll();
  }
  if (abort.aborted) return 130;

  const measured = options.targets.filter((t) => all.get(t)?.skipReason === undefined);
  const partial: Omit<CompareRecord, 'summary' | 'targets'> = {
    benchmark: 'compare',
    environment: env,
    config: {
      ...options,
      skip: [...options.skip],
      measured,
      cpuCount,
      pinning: pin ?? null,
      tenK,
      failed: Object.fromEntries(failed),
      descriptions: Object.fromEntries(targets.map((t) => [t.name, t.description])),
    },
    binding: binding ?? null,
    rounds,
  };
  const { record, md } = renderRecord(partial);
  process.stdout.write(`\n${md}\n`);
  mkdirSync(options.outDir, { recursive: true });
  const jsonPath = datedPath(options.outDir, 'json');
  const mdPath = jsonPath.replace(/\.json$/, '.md');
  writeFileSync(jsonPath, `${JSON.stringify(record, null, 2)}\n`);
  writeFileSync(mdPath, `${md}\n`);
  formatWithBiome(repoRoot, [jsonPath, mdPath]);
  process.stdout.write(`\nwrote ${jsonPath}\nwrote ${mdPath}\n`);
  if (options.baseline) {
    const base = join(resolve(repoRoot, 'bench', 'results'), 'baseline-compare');
    writeFileSync(`${base}.json`, `${JSON.stringify(record, null, 2)}\n`);
    writeFileSync(`${base}.md`, `${md}\n`);
    formatWithBiome(repoRoot, [`${base}.json`, `${base}.md`]);
    process.stdout.write(`wrote ${base}.json and .md\n`);
  }
  const nothing = measured.filter(
    (t) => !rounds.some((r) => r.target === t && Object.keys(r.rates).length + (r.latency ? 1 : 0) > 0),
  );
  return failed.size > 0 || (nothing.length > 0 && !options.skip.has('rate')) ? 1 : 0;
}

process.exitCode = await main();
