/** bench:compare's summaries: medians over rounds, ratios, the targets and the markdown table. */
import t from 'tap';
import {
  evaluateTargets,
  markdown,
  metricDefs,
  RATE_CONFIGS,
  type RateRound,
  rateKey,
  summarizeMetrics,
  type TargetRound,
} from '../../bench/compare/report.js';
import type { TargetName } from '../../bench/compare/targets.js';

function round(target: TargetName, n: number, scale: number, limited = false): TargetRound {
  const rates: Record<string, RateRound> = {};
  for (const { size, allocations } of RATE_CONFIGS) {
    rates[rateKey(size, allocations)] = {
      bestPps: 100_000 * scale,
      toolLimited: limited,
      reachedMax: false,
      trials: 8,
      cpuUsPerPacket: 5 / scale,
      allocatePerSec: allocations === 1000 ? 2000 * scale : undefined,
      otherCpuPct: 3,
      stealPct: limited ? 20 : 0,
    };
  }
  return {
    round: n,
    target,
    rates,
    latency: {
      p50Us: 100 / scale,
      p99Us: 400 / scale,
      p999Us: 900,
      lossPct: 0,
      toolLimited: false,
      otherCpuPct: 2,
      stealPct: 0,
    },
    cpu: {
      ratePps: 20_000,
      usPerPacket: 6 / scale,
      serverCpuPct: 12,
      lossPct: 0,
      metricsAgree: true,
      toolLimited: false,
      otherCpuPct: 1,
      stealPct: 0,
    },
    setup: {
      allocatePerSec: 2000 * scale,
      cpuUsPerAllocation: 200 / scale,
      runs: 5,
      otherCpuPct: undefined,
      stealPct: limited ? 20 : 0,
    },
    rss: {
      idleKiB: 50_000,
      at1kKiB: 60_000,
      at10kKiB: 60_000 + 9000 * 6 * scale,
      active1k: 1000,
      active10k: 10_000,
      perAllocationKiB: 6 * scale,
      note: undefined,
    },
    errors: [],
  };
}

t.test('medians, ratios, targets and the table', async (t) => {
  const rounds = [
    round('forwarder', 1, 1),
    round('forwarder', 2, 1.2),
    round('forwarder', 3, 0.8, true),
    round('turnpike', 1, 0.9),
    round('turnpike', 2, 0.9),
    round('coturn', 1, 1.5),
  ];
  const targets: TargetName[] = ['forwarder', 'turnpike', 'coturn'];
  const defs = metricDefs(20_000);
  const s = summarizeMetrics(defs, rounds, targets);
  const rate = s.find((m) => m.key === 'rate-100B×100')!;
  t.same(rate.byTarget['forwarder'], {
    median: 100_000,
    min: 80_000,
    max: 120_000,
    rounds: 3,
    limitedRounds: 1,
    disturbedRounds: 1,
  });
  t.ok(Math.abs((rate.ratios['turnpike/forwarder'] ?? 0) - 0.9) < 1e-9);
  t.ok(Math.abs((rate.ratios['turnpike/coturn'] ?? 0) - 0.6) < 1e-9);
  t.equal(rate.ratios['turnpike/coturn-mt'], undefined, 'pair left out when a target is not measured');
  const setup = s.find((m) => m.key === 'setup')!;
  t.equal(setup.byTarget['turnpike']?.median, 1800);
  const setupCpu = s.find((m) => m.key === 'setup-cpu')!;
  t.equal(setupCpu.ratios['turnpike/coturn']?.toFixed(3), '1.667', '(200/0.9)/(200/1.5): lower is better');

  const checks = evaluateTargets(s);
  const byName = (prefix: string): boolean | undefined => checks.find((c) => c.name.startsWith(prefix))?.met;
  t.equal(byName('relay rate'), true, '0.9 >= 0.85');
  t.equal(byName('CPU per relayed packet'), true, '(6/0.9)/6 = 1.11 <= 1.2');
  t.equal(byName('RSS growth'), true, '5.4 KiB <= 8');
  t.equal(byName('allocation setup'), false, '1800 < 3000');
  t.equal(byName('server CPU per allocation'), false, '222 µs > 133 µs');
  t.equal(byName('latency p99'), true, '1.11 <= 1.2');

  const md = markdown(s, defs, targets, { echo: 100, turnpike: 95, coturn: 130, note: undefined }, checks, [
    'a note',
  ]);
  t.match(
    md,
    /^\| metric \| forwarder \| turnpike \| coturn -m 1 \| turnpike\/coturn \| turnpike\/forwarder \|$/m,
  );
  t.match(
    md,
    /\| max relay rate < 1% loss, ChannelData c2p, 100 B, 100 alloc \(pkt\/s\), higher is better \| 100,000 † ~1 \(80,000–120,000\) \| 90,000 \(90,000–90,000\) \| 150,000 \| 0\.600 \| 0\.900 \|/,
  );
  t.match(md, /Binding requests\/s.*\| 100 \(echo loop\) \| 95 \| 130 \| 0\.731 \| 0\.950 \|/);
  t.match(md, /\| allocation setup rate: turnpike\/coturn \(-m 1\) \| 0\.600 \| >= 1 \| NO \|/);
  t.match(md, /^- a note$/m);

  const empty = summarizeMetrics(defs, [], targets);
  t.equal(empty[0]?.byTarget['turnpike'], undefined);
  t.equal(evaluateTargets(empty)[0]?.met, undefined);
  t.match(markdown(empty, defs, targets, undefined, evaluateTargets(empty), []), /\| n\/a \| n\/a \|/);
});
