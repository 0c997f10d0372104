/**
 * Merging the engines' reports into one result per window, with the derived figures (rates, loss,
 * percentiles, jitter) and the self-checks that say when the tool, not the server, was the limit.
 */
import { HdrHistogram, type SparseHistogram } from './hdr.js';
import type { MetricsCheck } from './metrics.js';
import type { EngineName } from './native-engine.js';
import type { Direction, PhaseReport, SetupReport, WindowReport } from './types.js';

/** A worker thread at or above this share of a core was saturated. */
export const TOOL_CPU_SATURATED_PCT = 90;
/** Sent below this share of offered: the tool could not keep its own schedule. */
export const MIN_SENT_RATIO = 0.98;
/** Receive drops at the tool's own sockets above this share of sent: loss is (partly) the tool's. */
export const TOOL_DROPS_RATIO = 0.002;

export interface PhaseSummary {
  readonly attempted: number;
  readonly succeeded: number;
  readonly retries: number;
  readonly seconds: number;
  /** succeeded / seconds, from the first start to the last end over all workers. */
  readonly perSec: number;
  readonly failures: Readonly<Record<string, number>>;
}

export interface SetupSummary {
  /** The traffic engine that ran (every worker runs the same one unless one fell back). */
  readonly engine: EngineName | 'mixed';
  /** Why the native engine did not run, when it was asked for (`auto`) and did not. */
  readonly engineNote: string | undefined;
  /** Every worker's native engine sends with UDP GSO. */
  readonly gso: boolean;
  readonly requested: number;
  readonly sockets: PhaseSummary;
  readonly allocate: PhaseSummary;
  readonly permission: PhaseSummary;
  readonly channel: PhaseSummary | undefined;
  readonly active: number;
  readonly transmissions: number;
}

function mergePhase(phases: readonly PhaseReport[]): PhaseSummary {
  const attempted = phases.reduce((n, p) => n + p.attempted, 0);
  const succeeded = phases.reduce((n, p) => n + p.succeeded, 0);
  const started = phases.filter((p) => p.attempted > 0);
  const seconds =
    started.length === 0
      ? 0
      : (Math.max(...started.map((p) => p.endNs)) - Math.min(...started.map((p) => p.startNs))) / 1e9;
  const failures: Record<string, number> = {};
  for (const p of phases)
    for (const [k, v] of Object.entries(p.failures)) failures[k] = (failures[k] ?? 0) + v;
  const retries = phases.reduce((n, p) => n + p.retries, 0);
  return { attempted, succeeded, retries, seconds, perSec: seconds > 0 ? succeeded / seconds : 0, failures };
}

export function mergeSetup(requested: number, reports: readonly SetupReport[]): SetupSummary {
  const channels = reports.flatMap((r) => (r.channel === undefined ? [] : [r.channel]));
  const engines = new Set(reports.map((r) => r.engine));
  const [only] = engines;
  return {
    engine: engines.size === 1 && only !== undefined ? only : engines.size === 0 ? 'js' : 'mixed',
    engineNote: reports.find((r) => r.engineNote !== undefined)?.engineNote,
    gso: reports.length > 0 && reports.every((r) => r.gso),
    requested,
    sockets: mergePhase(reports.map((r) => r.sockets)),
    allocate: mergePhase(reports.map((r) => r.allocate)),
    permission: mergePhase(reports.map((r) => r.permission)),
    channel: channels.length === 0 ? undefined : mergePhase(channels),
    active: reports.reduce((n, r) => n + r.active, 0),
    transmissions: reports.reduce((n, r) => n + r.transmissions, 0),
  };
}

export interface LatencySummary {
  /** one-way for c2p and p2c, round-trip for echo. */
  readonly kind: 'one-way' | 'round-trip';
  readonly samples: number;
  readonly minUs: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
  /** The whole distribution (nanoseconds), so that windows can be pooled (bench:compare does). */
  readonly histogram: SparseHistogram;
}

/** Extra observations taken around a window by the main thread. */
export interface Observations {
  /** process.cpuUsage() delta of the whole tool, seconds. */
  readonly toolProcessCpuSec: number | undefined;
  readonly toolSocketDrops: number | undefined;
  readonly serverCpuSec: number | undefined;
  readonly serverSocketDrops: number | undefined;
  /** Machine busy CPU minus tool and server, and steal, over the window. */
  readonly machineBusySec: number | undefined;
  readonly machineStealPct: number | undefined;
  readonly wallSec: number;
  readonly metrics: MetricsResult | undefined;
}

export interface MetricsResult {
  readonly url: string;
  readonly delta: Readonly<Record<string, number>>;
  readonly checks: readonly MetricsCheck[];
  readonly error: string | undefined;
}

/** A trial's counters: the engines' WindowReport counters, summed. */
type TrialCounters = Pick<
  WindowReport,
  'trial' | 'offered' | 'sent' | 'skipped' | 'sendErrors' | 'received' | 'forwarded' | 'stray' | 'late'
>;

export interface TrialResult extends TrialCounters {
  readonly ratePps: number;
  readonly durationSec: number;
  readonly offeredPps: number;
  readonly sentPps: number;
  readonly receivedPps: number;
  readonly offeredMbps: number;
  readonly sentMbps: number;
  readonly receivedMbps: number;
  readonly lossPct: number;
  readonly latency: LatencySummary;
  readonly jitter: { readonly meanUs: number; readonly maxUs: number; readonly flows: number };
  readonly tool: {
    /** Per worker thread, percent of one core while sending; null where not measurable. */
    readonly workerCpuPct: readonly (number | null)[];
    readonly processCpuPct: number | undefined;
    readonly socketDrops: number | undefined;
    /** True when the tool, not the server, may have been the limit. */
    readonly limited: boolean;
    readonly reasons: readonly string[];
  };
  readonly server:
    | {
        readonly cpuPct: number | undefined;
        /** Server CPU per relayed packet (each relay hop counts: echo relays every packet twice). */
        readonly cpuUsPerPacket: number | undefined;
        readonly relayedPackets: number;
        readonly socketDrops: number | undefined;
      }
    | undefined;
  readonly machine: { readonly otherCpuPct: number | undefined; readonly stealPct: number | undefined };
  readonly metrics: MetricsResult | undefined;
}

const us = (ns: number): number => ns / 1000;

export function mergeWindow(
  ratePps: number,
  size: number,
  direction: Direction,
  reports: readonly WindowReport[],
  obs: Observations,
): TrialResult {
  const sum = (pick: (r: WindowReport) => number): number => reports.reduce((n, r) => n + pick(r), 0);
  const durationSec = Math.max(0, ...reports.map((r) => r.sendMs)) / 1000;
  const offered = sum((r) => r.offered);
  const sent = sum((r) => r.sent);
  const received = sum((r) => r.received);
  const forwarded = sum((r) => r.forwarded);
  const h = new HdrHistogram();
  for (const r of reports) h.merge(r.latency);
  const perSec = (n: number): number => (durationSec > 0 ? n / durationSec : 0);
  const mbps = (n: number): number => (perSec(n) * size * 8) / 1e6;
  const lossPct = sent === 0 ? 0 : Math.max(0, ((sent - received) / sent) * 100);
  const jitterFlows = sum((r) => r.jitterFlows);

  const workerCpuPct = reports.map((r) =>
    r.cpuSec === undefined || r.sendMs <= 0 ? null : (r.cpuSec / (r.sendMs / 1000)) * 100,
  );
  const reasons: string[] = [];
  if (offered > 0 && sent < MIN_SENT_RATIO * offered) {
    reasons.push(`sent ${((sent / offered) * 100).toFixed(1)}% of offered (< ${MIN_SENT_RATIO * 100}%)`);
  }
  workerCpuPct.forEach((pct, i) => {
    if (pct !== null && Math.round(pct) >= TOOL_CPU_SATURATED_PCT) {
      reasons.push(`worker ${i} CPU ${pct.toFixed(0)}% (>= ${TOOL_CPU_SATURATED_PCT}% of a core)`);
    }
  });
  if (obs.toolSocketDrops !== undefined && sent > 0 && obs.toolSocketDrops > TOOL_DROPS_RATIO * sent) {
    reasons.push(`the tool's own sockets dropped ${obs.toolSocketDrops} datagrams (receive buffer full)`);
  }

  const relayedByTool = direction === 'echo' ? forwarded + received : received;
  const metricsRelayed =
    obs.metrics !== undefined && obs.metrics.error === undefined
      ? (obs.metrics.delta['client_to_peer'] ?? 0) + (obs.metrics.delta['peer_to_client'] ?? 0)
      : undefined;
  const relayedPackets = metricsRelayed ?? relayedByTool;
  const wall = obs.wallSec > 0 ? obs.wallSec : durationSec;
  const toolCpu = obs.toolProcessCpuSec;
  let otherCpuPct: number | undefined;
  if (obs.machineBusySec !== undefined && wall > 0) {
    otherCpuPct = Math.max(0, ((obs.machineBusySec - (toolCpu ?? 0) - (obs.serverCpuSec ?? 0)) / wall) * 100);
  }

  return {
    trial: reports[0]?.trial ?? 0,
    ratePps,
    durationSec,
    offered,
    sent,
    skipped: sum((r) => r.skipped),
    sendErrors: sum((r) => r.sendErrors),
    received,
    forwarded,
    stray: sum((r) => r.stray),
    late: sum((r) => r.late),
    offeredPps: perSec(offered),
    sentPps: perSec(sent),
    receivedPps: perSec(received),
    offeredMbps: mbps(offered),
    sentMbps: mbps(sent),
    receivedMbps: mbps(received),
    lossPct,
    latency: {
      kind: direction === 'echo' ? 'round-trip' : 'one-way',
      samples: h.total,
      minUs: h.total === 0 ? Number.NaN : us(h.min),
      p50Us: us(h.percentile(50)),
      p90Us: us(h.percentile(90)),
      p99Us: us(h.percentile(99)),
      p999Us: us(h.percentile(99.9)),
      maxUs: h.total === 0 ? Number.NaN : us(h.max),
      meanUs: us(h.mean()),
      histogram: h.toSparse(),
    },
    jitter: {
      meanUs: jitterFlows === 0 ? Number.NaN : us(sum((r) => r.jitterSumNs) / jitterFlows),
      maxUs: jitterFlows === 0 ? Number.NaN : us(Math.max(...reports.map((r) => r.jitterMaxNs))),
      flows: jitterFlows,
    },
    tool: {
      workerCpuPct,
      processCpuPct: toolCpu === undefined || wall <= 0 ? undefined : (toolCpu / wall) * 100,
      socketDrops: obs.toolSocketDrops,
      limited: reasons.length > 0,
      reasons,
    },
    server:
      obs.serverCpuSec === undefined && obs.serverSocketDrops === undefined
        ? undefined
        : {
            cpuPct: obs.serverCpuSec === undefined || wall <= 0 ? undefined : (obs.serverCpuSec / wall) * 100,
            cpuUsPerPacket:
              obs.serverCpuSec === undefined || relayedPackets <= 0
                ? undefined
                : (obs.serverCpuSec * 1e6) / relayedPackets,
            relayedPackets,
            socketDrops: obs.serverSocketDrops,
          },
    machine: { otherCpuPct, stealPct: obs.machineStealPct },
    metrics: obs.metrics,
  };
}
