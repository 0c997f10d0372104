/**
 * One benchmark session: the workers' setup, then measured windows (a fixed rate, or the trials of a
 * search), each bracketed by the observations the main thread takes (server metrics, server and tool
 * CPU, socket drops, machine load), then the release of the allocations.
 *
 * Every window is preceded by a warm-up at the same rate whose packets carry their own trial number,
 * and a quiet gap (the warm-up's drain), so the measured window starts with nothing in flight and the
 * server's counters scraped at its edges cover exactly its packets.
 */
import { randomInt } from 'node:crypto';
import { Coordinator, sliceFlows } from './coordinator.js';
import { compareCounts, deltaCounts, type RelayCounts, scrapeRelayPackets } from './metrics.js';
import type { BenchOptions } from './options.js';
import { machineCpu, processCpuSeconds, procUdpKey, udpDrops } from './proc.js';
import {
  type MetricsResult,
  mergeSetup,
  mergeWindow,
  type Observations,
  type SetupSummary,
  type TrialResult,
} from './results.js';
import type { EngineConfig, SetupReport } from './types.js';

/** Why a search trial failed (or 'pass'). */
export type Verdict = 'pass' | 'loss' | 'tool-limited';

export interface SearchTrial {
  readonly ratePps: number;
  readonly verdict: Verdict;
  readonly result: TrialResult;
}

export interface SearchResult {
  /** Highest total rate that passed, or 0 when none did. */
  readonly bestRatePps: number;
  readonly best: TrialResult | undefined;
  readonly lossThresholdPct: number;
  /** True when a failing trial failed because of the tool: the best rate is then a lower bound. */
  readonly toolLimited: boolean;
  /** True when the search stopped at --search-max with every trial passing. */
  readonly reachedMax: boolean;
  readonly trials: readonly SearchTrial[];
}

export interface ProgressSink {
  phase(label: string): void;
}

function engineConfigs(o: BenchOptions, server: BenchOptions['server']): EngineConfig[] {
  return sliceFlows(o.allocations, o.workers).map((slice, workerIndex) => ({
    workerIndex,
    server,
    clientIp: o.clientIp,
    peerIp: o.peerIp,
    credentials: o.credentials,
    firstFlow: slice.first,
    flowCount: slice.count,
    peerCount: o.peersPerWorker ?? Math.max(1, Math.min(4, slice.count)),
    path: o.path,
    direction: o.direction,
    size: o.size,
    setupConcurrency: o.setupConcurrency,
    lifetimeSec: o.lifetimeSec,
    allowedRelayIps: o.allowRelayIps,
    sockBufBytes: o.sockBufBytes,
    keepaliveSec: 240,
    engine: o.engine,
    gso: o.gso,
  }));
}

export class Bench {
  readonly options: BenchOptions;
  readonly server: BenchOptions['server'];
  private readonly coordinator: Coordinator;
  private readonly sink: ProgressSink | undefined;
  private trial = randomInt(1, 2 ** 30);
  private toolKeys = new Set<string>();
  private serverKeys = new Set<string>();
  private stopping = false;
  setup: SetupSummary | undefined;

  constructor(options: BenchOptions, server: BenchOptions['server'], sink?: ProgressSink) {
    this.options = options;
    this.server = server;
    this.sink = sink;
    this.coordinator = new Coordinator(engineConfigs(options, server));
  }

  progress(): { sent: number; received: number } {
    return this.coordinator.progress();
  }

  /** Asks the engines to end the current window early (Ctrl-C). */
  stop(): void {
    this.stopping = true;
    this.coordinator.stop();
  }

  get stopped(): boolean {
    return this.stopping;
  }

  async start(): Promise<SetupSummary> {
    this.sink?.phase('setup');
    const reports = await this.coordinator.setup();
    this.setup = mergeSetup(this.options.allocations, reports);
    this.collectKeys(reports);
    return this.setup;
  }

  private collectKeys(reports: readonly SetupReport[]): void {
    const o = this.options;
    const clientAddr = o.clientIp === '0.0.0.0' ? '0.0.0.0' : o.clientIp;
    for (const r of reports) {
      for (const p of r.clientPorts) {
        const k = procUdpKey(clientAddr, p);
        if (k !== undefined) this.toolKeys.add(k);
      }
      for (const p of r.peerPorts) {
        const k = procUdpKey(o.peerIp, p);
        if (k !== undefined) this.toolKeys.add(k);
      }
      for (const relay of r.relays) {
        const k = procUdpKey(relay.address, relay.port);
        if (k !== undefined) this.serverKeys.add(k);
      }
    }
    const listen = procUdpKey(this.server.address, this.server.port);
    if (listen !== undefined) this.serverKeys.add(listen);
  }

  private async scrape(): Promise<RelayCounts | Error | undefined> {
    const url = this.options.metricsUrl;
    if (url === undefined) return undefined;
    try {
      return await scrapeRelayPackets(url);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /** A warm-up (when configured), then one measured window at `totalPps`, with observations. */
  async measure(totalPps: number, label = 'measure'): Promise<TrialResult> {
    const o = this.options;
    if (o.warmupSec > 0 && !this.stopping) {
      this.sink?.phase(`warm-up ${label}`);
      await this.coordinator.window(this.trial++, totalPps, o.warmupSec * 1000);
    }
    this.sink?.phase(label);
    const metricsBefore = await this.scrape();
    const pid = o.serverPid;
    const serverCpuBefore = pid === undefined ? undefined : processCpuSeconds(pid);
    const machineBefore = machineCpu();
    const toolDropsBefore = udpDrops(this.toolKeys);
    const serverDropsBefore = udpDrops(this.serverKeys);
    const toolCpuBefore = process.cpuUsage();
    const wallBefore = process.hrtime.bigint();

    const reports = await this.coordinator.window(this.trial++, totalPps, o.durationSec * 1000);

    const wallSec = Number(process.hrtime.bigint() - wallBefore) / 1e9;
    const toolCpu = process.cpuUsage(toolCpuBefore);
    const serverCpuAfter = pid === undefined ? undefined : processCpuSeconds(pid);
    const machineAfter = machineCpu();
    const toolDropsAfter = udpDrops(this.toolKeys);
    const serverDropsAfter = udpDrops(this.serverKeys);
    const metricsAfter = await this.scrape();

    let metrics: MetricsResult | undefined;
    if (o.metricsUrl !== undefined) {
      if (
        metricsBefore instanceof Error ||
        metricsAfter instanceof Error ||
        !metricsBefore ||
        !metricsAfter
      ) {
        const err = [metricsBefore, metricsAfter].find((m) => m instanceof Error);
        metrics = { url: o.metricsUrl, delta: {}, checks: [], error: err?.message ?? 'scrape failed' };
      } else {
        const delta = deltaCounts(metricsBefore, metricsAfter);
        const received = reports.reduce((n, r) => n + r.received, 0);
        const forwarded = reports.reduce((n, r) => n + r.forwarded, 0);
        const c2p = delta['client_to_peer'] ?? 0;
        const p2c = delta['peer_to_client'] ?? 0;
        const checks =
          o.direction === 'c2p'
            ? [compareCounts('client_to_peer', c2p, received)]
            : o.direction === 'p2c'
              ? [compareCounts('peer_to_client', p2c, received)]
              : [
                  compareCounts('client_to_peer', c2p, forwarded),
                  compareCounts('peer_to_client', p2c, received),
                ];
        metrics = { url: o.metricsUrl, delta, checks, error: undefined };
      }
    }
    const obs: Observations = {
      toolProcessCpuSec: (toolCpu.user + toolCpu.system) / 1e6,
      toolSocketDrops:
        toolDropsBefore === undefined || toolDropsAfter === undefined
          ? undefined
          : toolDropsAfter.drops - toolDropsBefore.drops,
      serverCpuSec:
        serverCpuBefore === undefined || serverCpuAfter === undefined
          ? undefined
          : serverCpuAfter - serverCpuBefore,
      serverSocketDrops:
        serverDropsBefore === undefined || serverDropsAfter === undefined || serverDropsAfter.sockets === 0
          ? undefined
          : serverDropsAfter.drops - serverDropsBefore.drops,
      machineBusySec:
        machineBefore === undefined || machineAfter === undefined
          ? undefined
          : machineAfter.busySec - machineBefore.busySec,
      machineStealPct:
        machineBefore === undefined ||
        machineAfter === undefined ||
        machineAfter.totalSec <= machineBefore.totalSec
          ? undefined
          : ((machineAfter.stealSec - machineBefore.stealSec) /
              (machineAfter.totalSec - machineBefore.totalSec)) *
            100,
      wallSec,
      metrics,
    };
    return mergeWindow(totalPps, o.size, o.direction, reports, obs);
  }

  /**
   * Highest total rate with loss under the threshold: doubles from the start rate until a trial fails,
   * then bisects between the best pass and the lowest failure until the bracket is within the
   * precision, or the step budget is spent.
   */
  async search(): Promise<SearchResult> {
    const s = this.options.search;
    const trials: SearchTrial[] = [];
    let best: TrialResult | undefined;
    let lowestFail: number | undefined;
    let rate = Math.max(1, Math.round(s.startPps));
    let reachedMax = false;
    let retried = 0;
    for (let step = 0; step < s.steps && !this.stopping; step++) {
      const result = await this.measure(rate, `trial ${step + 1}/${s.steps} @ ${rate} pps`);
      const verdict: Verdict = result.tool.reasons.some((r) => r.startsWith('sent '))
        ? 'tool-limited'
        : result.lossPct >= s.lossThresholdPct
          ? result.tool.limited
            ? 'tool-limited'
            : 'loss'
          : 'pass';
      trials.push({ ratePps: rate, verdict, result });
      if (verdict !== 'pass' && retried < s.retries && step + 1 < s.steps) {
        retried++; // same rate once more: a single disturbed trial should not end the climb
        continue;
      }
      retried = 0;
      if (verdict === 'pass') {
        if (best === undefined || rate > best.ratePps) best = result;
      } else {
        lowestFail = lowestFail === undefined ? rate : Math.min(lowestFail, rate);
      }
      const low = best?.ratePps ?? 0;
      let next: number;
      if (lowestFail === undefined) {
        if (rate >= s.maxPps) {
          reachedMax = true;
          break;
        }
        next = Math.min(s.maxPps, rate * 2);
      } else {
        if (lowestFail - low <= s.precision * lowestFail) break;
        next = low === 0 ? lowestFail / 2 : (low + lowestFail) / 2;
      }
      next = Math.max(1, Math.round(next));
      if (next === rate || next < 1) break;
      rate = next;
    }
    // The bracket's top was set by the tool, or the best trial already had the tool at its limit.
    const top = trials.findLast((t) => t.verdict !== 'pass' && t.ratePps === lowestFail);
    const toolLimited = top?.verdict === 'tool-limited' || best?.tool.limited === true;
    return {
      bestRatePps: best?.ratePps ?? 0,
      best,
      lossThresholdPct: s.lossThresholdPct,
      toolLimited,
      reachedMax,
      trials,
    };
  }

  async close(release: boolean): Promise<void> {
    this.sink?.phase('cleanup');
    await this.coordinator.close(release);
  }

  async terminate(): Promise<void> {
    await this.coordinator.terminate();
  }
}
