/**
 * `--metrics URL`: the server's Prometheus text exposition, scraped before and after a measured window,
 * so the server's own count of relayed packets (`turn_relay_packets_total{direction}`) can be printed
 * next to the tool's. Only that family is read; any server exposing it (turnpike does) can be checked.
 */

export const RELAY_PACKETS_METRIC = 'turn_relay_packets_total';

/** Counter values by `direction` label (client_to_peer, peer_to_client); unlabelled series sum under ''. */
export type RelayCounts = Readonly<Record<string, number>>;

/** Parses the samples of `turn_relay_packets_total` from a text exposition. */
export function parseRelayPackets(text: string, metric = RELAY_PACKETS_METRIC): RelayCounts {
  const out: Record<string, number> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    let labels = '';
    let valueText: string;
    if (rest.startsWith('{')) {
      const close = rest.indexOf('}');
      if (close < 0) continue;
      labels = rest.slice(1, close);
      valueText = rest.slice(close + 1).trim();
    } else if (rest.startsWith(' ')) {
      valueText = rest.trim();
    } else {
      continue; // another metric sharing the prefix
    }
    const value = Number(valueText.split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    const direction = /(?:^|,)\s*direction="([^"]*)"/.exec(labels)?.[1] ?? '';
    out[direction] = (out[direction] ?? 0) + value;
  }
  return out;
}

/** GETs `url` (3 s timeout) and parses it. Rejects on HTTP errors and timeouts. */
export async function scrapeRelayPackets(url: string): Promise<RelayCounts> {
  const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return parseRelayPackets(await response.text());
}

/** after − before, per direction present in either. */
export function deltaCounts(before: RelayCounts, after: RelayCounts): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    out[k] = (after[k] ?? 0) - (before[k] ?? 0);
  }
  return out;
}

/** One server-versus-tool comparison. */
export interface MetricsCheck {
  readonly direction: 'client_to_peer' | 'peer_to_client';
  /** What the server says it relayed over the window. */
  readonly server: number;
  /** What the tool saw come out of the relay in that direction. */
  readonly tool: number;
  /** (server − tool) / tool, percent. */
  readonly diffPct: number;
  /** |diffPct| ≤ 1 (within 1%). */
  readonly agree: boolean;
}

export const AGREEMENT_PCT = 1;

export function compareCounts(
  direction: MetricsCheck['direction'],
  server: number,
  tool: number,
): MetricsCheck {
  const diffPct = tool === 0 ? (server === 0 ? 0 : 100) : ((server - tool) / tool) * 100;
  return { direction, server, tool, diffPct, agree: Math.abs(diffPct) <= AGREEMENT_PCT };
}
