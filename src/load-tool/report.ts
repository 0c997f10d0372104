/** The human-readable report of `turnpike-bench` (the JSON output is the result object itself). */
import type { BenchOptions } from './options.js';
import type { PhaseSummary, SetupSummary, TrialResult } from './results.js';
import type { SearchResult } from './run.js';

const intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const int = (n: number): string => (Number.isFinite(n) ? intFormat.format(n) : '-');
export const fixed = (n: number | undefined, digits: number): string =>
  n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
/** Microseconds with 3 significant digits (at least the integer part). */
export const micros = (n: number): string => {
  if (!Number.isFinite(n)) return '-';
  if (n >= 1000) return int(n);
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
};

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function failures(f: Readonly<Record<string, number>>): string {
  const entries = Object.entries(f);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k}×${v}`).join(', ');
}

function phase(name: string, p: PhaseSummary): string {
  return (
    `${name} ${p.succeeded}/${p.attempted} in ${p.seconds.toFixed(3)} s (${int(p.perSec)}/s)` +
    (p.retries > 0 ? `, ${p.retries} moved to a fresh port after 437` : '') +
    (Object.keys(p.failures).length > 0 ? `, failed: ${failures(p.failures)}` : '')
  );
}

export function describeLoad(o: BenchOptions, server: BenchOptions['server']): string {
  const path = o.path === 'channel' ? 'ChannelData' : 'Send/Data indications';
  const host = server.address.includes(':') ? `[${server.address}]` : server.address;
  return (
    `${host}:${server.port}, ${path}, ${o.direction}, ${int(o.allocations)} allocations × ${o.size} B, ` +
    `${o.workers} worker${o.workers === 1 ? '' : 's'}`
  );
}

export function formatSetup(s: SetupSummary): string {
  const lines = [
    `setup: ${phase('allocations', s.allocate)}`,
    `       ${phase('permissions', s.permission)}`,
  ];
  if (s.channel !== undefined) lines.push(`       ${phase('channels', s.channel)}`);
  if (s.sockets.succeeded < s.sockets.attempted) lines.push(`       ${phase('client sockets', s.sockets)}`);
  lines.push(
    `       ${int(s.active)} of ${int(s.requested)} allocations ready; ${int(s.transmissions)} requests sent (with retransmissions)`,
    `       ${s.engine} traffic engine${s.gso ? ' (UDP GSO)' : ''}${s.engineNote === undefined ? '' : ` (${s.engineNote})`}`,
  );
  return lines.join('\n');
}

export function formatTrial(r: TrialResult): string {
  const out: string[] = [];
  out.push(
    table(
      ['', 'offered', 'sent', 'received', 'loss %'],
      [
        ['pkt/s', int(r.offeredPps), int(r.sentPps), int(r.receivedPps), fixed(r.lossPct, 2)],
        ['Mbit/s', fixed(r.offeredMbps, 2), fixed(r.sentMbps, 2), fixed(r.receivedMbps, 2), ''],
        ['packets', int(r.offered), int(r.sent), int(r.received), ''],
      ],
    ),
  );
  out.push(
    `window ${r.durationSec.toFixed(2)} s` +
      (r.forwarded > 0 ? `; reached the peer: ${int(r.forwarded)}` : ''),
  );
  const extras: string[] = [];
  if (r.skipped > 0) extras.push(`skipped (tool behind schedule) ${int(r.skipped)}`);
  if (r.sendErrors > 0) extras.push(`send errors ${int(r.sendErrors)}`);
  if (r.late > 0) extras.push(`late from an earlier window ${int(r.late)}`);
  if (r.stray > 0) extras.push(`stray ${int(r.stray)}`);
  if (extras.length > 0) out.push(extras.join('; '));
  const l = r.latency;
  out.push(
    `latency ${l.kind} (µs): p50 ${micros(l.p50Us)}  p90 ${micros(l.p90Us)}  p99 ${micros(l.p99Us)}  ` +
      `p99.9 ${micros(l.p999Us)}  max ${micros(l.maxUs)}  (${int(l.samples)} samples)`,
  );
  out.push(
    `jitter (RFC 3550, mean over ${int(r.jitter.flows)} allocations): ${micros(r.jitter.meanUs)} µs ` +
      `(max ${micros(r.jitter.maxUs)} µs)`,
  );
  const workers = r.tool.workerCpuPct.map((p) => (p === null ? 'n/a' : `${p.toFixed(0)}%`)).join(' ');
  out.push(
    `tool: worker CPU ${workers}; process ${fixed(r.tool.processCpuPct, 0)}%; ` +
      `own socket drops ${r.tool.socketDrops === undefined ? 'n/a' : int(r.tool.socketDrops)}`,
  );
  if (r.server !== undefined) {
    out.push(
      `server: CPU ${fixed(r.server.cpuPct, 0)}%, ${fixed(r.server.cpuUsPerPacket, 2)} µs per relayed packet ` +
        `(${int(r.server.relayedPackets)} relayed); socket drops ` +
        (r.server.socketDrops === undefined ? 'n/a' : int(r.server.socketDrops)),
    );
  }
  if (r.metrics !== undefined) {
    if (r.metrics.error !== undefined) out.push(`metrics: ${r.metrics.error}`);
    for (const c of r.metrics.checks) {
      out.push(
        `metrics: server ${c.direction} +${int(c.server)} vs tool ${int(c.tool)} ` +
          `(${c.diffPct >= 0 ? '+' : ''}${c.diffPct.toFixed(2)}%: ${c.agree ? 'agree' : 'DISAGREE'})`,
      );
    }
  }
  out.push(
    `machine: other CPU ${fixed(r.machine.otherCpuPct, 0)}% of a core, steal ${fixed(r.machine.stealPct, 1)}%`,
  );
  out.push(r.tool.limited ? `TOOL-LIMITED: ${r.tool.reasons.join('; ')}` : 'tool-limited: no');
  return out.join('\n');
}

export function formatSearch(s: SearchResult): string {
  const rows = s.trials.map((t, i) => [
    String(i + 1),
    int(t.ratePps),
    int(t.result.sentPps),
    int(t.result.receivedPps),
    fixed(t.result.lossPct, 2),
    micros(t.result.latency.p99Us),
    t.result.tool.workerCpuPct.map((p) => (p === null ? 'n/a' : p.toFixed(0))).join('/'),
    t.result.server?.cpuPct === undefined ? '-' : fixed(t.result.server.cpuPct, 0),
    t.verdict,
  ]);
  const out = [
    table(
      [
        'trial',
        'offered pps',
        'sent pps',
        'recv pps',
        'loss %',
        'p99 µs',
        'tool CPU %',
        'server CPU %',
        'verdict',
      ],
      rows,
    ),
    '',
    `highest rate with < ${s.lossThresholdPct}% loss: ${int(s.bestRatePps)} pkt/s` +
      (s.reachedMax ? ' (the --search-max cap)' : '') +
      (s.toolLimited ? ' — TOOL-LIMITED: the tool was at its limit, so this is a lower bound' : ''),
  ];
  if (s.best !== undefined) out.push('', 'best trial:', formatTrial(s.best));
  return out.join('\n');
}
