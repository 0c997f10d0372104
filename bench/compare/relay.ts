/**
 * The relay workloads of one round on one freshly started server (see bench/README.md): echo latency at
 * 50 × 50 pps × 160 B, server CPU per relayed packet at a fixed rate, back-to-back setups of 1000
 * allocations, and the highest rate under 1% loss per payload size and allocation count; and `--smoke`,
 * one tiny relay run per target.
 */
import { fineCpuDelta, machineCpu, processCpuFine } from '../../src/load-tool/proc.js';
import type { TrialResult } from '../../src/load-tool/results.js';
import { median } from '../shared/stats.js';
import {
  type Context,
  f0,
  f2,
  noise,
  type RunningServer,
  serverArgs,
  sleep,
  startServer,
  stopServer,
  TargetFailure,
  workload,
} from './context.js';
import { RATE_SPECS, type RateRound, specKey, type TargetRound } from './report.js';
import type { Target } from './targets.js';
import { runTool, ToolFailure } from './tool.js';

/** The setup workload: runs per round and target after one warm-up run, and allocations per run. */
const SETUP_REPEATS = 5;
const SETUP_ALLOCATIONS = 1000;

/** Best rates of earlier rounds, to start later searches near them (fewer doubling steps). */
const previousBest = new Map<string, number>();

/** One target's server in one round, as each relay workload gets it. */
interface RelayRun {
  readonly ctx: Context;
  readonly target: Target;
  readonly round: number;
  readonly rec: TargetRound;
  readonly server: RunningServer;
  /** The load tool's arguments for this server. */
  readonly base: readonly string[];
  /** The load tool's label for workload `w`. */
  label(w: string): string;
}

/** One measured run of the load tool against this round's server: 1 s warm-up, then a 5 s window. */
async function measureWindow(run: RelayRun, what: string, args: readonly string[]): Promise<TrialResult> {
  const window = ['--duration', '5', '--warmup', '1'];
  const out = await runTool(run.ctx.tool, run.label(what), [...run.base, ...args, ...window], 120_000);
  return out.result!;
}

/** Echo round-trip latency at a light load: 50 allocations × 50 pps × 160 B. */
async function latency(run: RelayRun): Promise<void> {
  const { ctx, target, round, rec } = run;
  const args = ['--allocations', '50', '--rate', '50', '--size', '160', '--direction', 'echo'];
  const r = await measureWindow(run, 'latency', args);
  rec.latency = {
    p50Us: r.latency.p50Us,
    p99Us: r.latency.p99Us,
    p999Us: r.latency.p999Us,
    histogram: r.latency.histogram,
    lossPct: r.lossPct,
    toolLimited: r.tool.limited,
    otherCpuPct: r.machine.otherCpuPct,
    stealPct: r.machine.stealPct,
  };
  ctx.log(
    `round ${round} ${target.name.padEnd(13)} latency: RTT p50 ${f0(r.latency.p50Us)} µs, p99 ${f0(r.latency.p99Us)} µs, loss ${f2(r.lossPct)}%${noise(r)}`,
  );
}

/** Server CPU per relayed packet at the fixed --cpu-rate over 100 allocations. */
async function cpuPerPacket(run: RelayRun): Promise<void> {
  const { ctx, target, round, rec } = run;
  const o = ctx.options;
  const args = ['--allocations', '100', '--total-rate', String(o.cpuRatePps), '--size', '100'];
  const r = await measureWindow(run, 'cpu', args);
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
    `round ${round} ${target.name.padEnd(13)} cpu: ${f2(r.server?.cpuUsPerPacket)} µs/packet at ${f0(r.receivedPps)} pkt/s ` +
      `(server ${f0(r.server?.cpuPct)}%, loss ${f2(r.lossPct)}%` +
      (r.metrics === undefined ? '' : `, metrics ${rec.cpu.metricsAgree ? 'agree' : 'DISAGREE'}`) +
      `)${noise(r)}`,
  );
}

/** Allocate/s and server CPU per allocation over back-to-back setups of 1000 allocations. */
async function setupRate(run: RelayRun): Promise<void> {
  const { ctx, target, round, rec, server, base, label } = run;
  // Back-to-back set-ups of 1000 allocations (Allocate with its 401 round, CreatePermission,
  // ChannelBind), each released again (Refresh 0); the first warms the server up and is left
  // out. Allocate/s is the tool's; the CPU per allocation is the server's own (from its threads'
  // schedstat, nanoseconds: /proc/PID/stat's 10 ms ticks are ±7% of a 1000-allocation run), set-up
  // and release together, which the load tool's speed does not cap. The tool, one JS thread, is
  // itself busy most of a setup run, so the rate moves less than the server's CPU does.
  const rates: number[] = [];
  const cpuUs: number[] = [];
  const steal: number[] = [];
  for (let i = 0; i <= SETUP_REPEATS && !ctx.abort.aborted; i++) {
    const machineBefore = machineCpu();
    const before = processCpuFine(server.child.pid);
    const out = await runTool(
      ctx.tool,
      label(`setup ${i}`),
      [...base, '--allocations', String(SETUP_ALLOCATIONS), '--hold', '0.01'],
      120_000,
    );
    await sleep(200);
    const after = processCpuFine(server.child.pid);
    const machineAfter = machineCpu();
    const setup = out.setup;
    if (i === 0 || setup === undefined || setup.active === 0) continue;
    rates.push(setup.allocate.perSec);
    if (machineBefore !== undefined && machineAfter !== undefined) {
      const total = machineAfter.totalSec - machineBefore.totalSec;
      if (total > 0) steal.push((100 * (machineAfter.stealSec - machineBefore.stealSec)) / total);
    }
    if (before !== undefined && after !== undefined)
      cpuUs.push((fineCpuDelta(before, after) * 1e6) / setup.active);
  }
  rec.setup = {
    allocatePerSec: rates.length === 0 ? undefined : median(rates),
    cpuUsPerAllocation: cpuUs.length === 0 ? undefined : median(cpuUs),
    runs: rates.length,
    otherCpuPct: undefined,
    stealPct: steal.length === 0 ? undefined : median(steal),
  };
  ctx.log(
    `round ${round} ${target.name.padEnd(13)} setup: ${f0(rec.setup.allocatePerSec)} Allocate/s, ` +
      `${f0(rec.setup.cpuUsPerAllocation)} µs server CPU per allocation (median of ${rates.length}), ` +
      `steal ${f0(rec.setup.stealPct)}%`,
  );
}

/**
 * The highest rate under 1% loss for each rate search of RATE_SPECS whose workload runs (`rate`,
 * `rate-1200`, `rate-send`, `rate-p2c`, `rate-allocs`).
 */
async function rates(run: RelayRun): Promise<void> {
  const { ctx, target, round, rec, base, label } = run;
  const o = ctx.options;
  for (const spec of RATE_SPECS) {
    if (ctx.abort.aborted) break;
    if (!o.workloads.has(spec.workload)) continue;
    const { size, allocations, path, direction } = spec;
    const key = specKey(spec);
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
          '--path',
          path,
          '--direction',
          direction,
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
        `round ${round} ${target.name.padEnd(13)} rate ${key.padEnd(13)}: ${f0(s.bestRatePps)} pkt/s` +
          `${s.toolLimited ? ' (tool-limited)' : ''} in ${s.trials.length} trials, ` +
          `${f2(rr.cpuUsPerPacket)} µs/packet, setup ${f0(rr.allocatePerSec)} Allocate/s${noise(s.best)}`,
      );
    });
  }
}

/** The relay workloads not skipped, one after another on one freshly started server. */
export async function measureRelay(
  ctx: Context,
  target: Target,
  round: number,
  rec: TargetRound,
): Promise<void> {
  const o = ctx.options;
  const server = await startServer(ctx, target);
  const label = (w: string): string => `${target.name} r${round} ${w}`;
  try {
    const run: RelayRun = { ctx, target, round, rec, server, base: serverArgs(ctx, target, server), label };
    const w = o.workloads;
    if (w.has('latency') && !ctx.abort.aborted) await workload(ctx, rec, 'latency', () => latency(run));
    if (w.has('cpu') && !ctx.abort.aborted) await workload(ctx, rec, 'cpu', () => cpuPerPacket(run));
    if (w.has('setup') && !ctx.abort.aborted) await workload(ctx, rec, 'setup', () => setupRate(run));
    await rates(run);
    if (server.child.process.exitCode !== null || server.child.process.signalCode !== null) {
      rec.errors.push(`${target.name} exited during the round`);
    }
  } finally {
    await stopServer(ctx, server);
  }
}

/** --smoke: one tiny relay run per target. */
export async function smoke(ctx: Context, targets: readonly Target[]): Promise<number> {
  const rows: string[] = [];
  let bad = 0;
  for (const target of targets) {
    if (ctx.abort.aborted) break;
    if (target.skipReason !== undefined) {
      rows.push(`${target.name.padEnd(13)} skipped: ${target.skipReason}`);
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
        const plane =
          server.dataPlane === undefined
            ? ''
            : `, ${server.dataPlane.plane} data plane` +
              (server.dataPlane.plane === 'native'
                ? `, ${server.dataPlane.threads} relay thread${server.dataPlane.threads === 1 ? '' : 's'}`
                : '');
        rows.push(
          `${target.name.padEnd(13)} relayed ${r.received} of ${r.sent} packets, loss ${f2(r.lossPct)}%, ` +
            `p50 ${f0(r.latency.p50Us)} µs, server ${f2(r.server?.cpuUsPerPacket)} µs/packet${agree}${plane}`,
        );
        if (r.received === 0) bad++;
      } finally {
        await stopServer(ctx, server);
      }
    } catch (err) {
      if (!(err instanceof TargetFailure || err instanceof ToolFailure)) throw err;
      rows.push(`${target.name.padEnd(13)} FAILED: ${err.message}`);
      bad++;
    }
  }
  process.stdout.write(`\n${rows.join('\n')}\n`);
  return bad === 0 ? 0 : 1;
}
