/**
 * bench:compare's summaries: medians over rounds, ratios, the targets of issue 13 and of earlier issues,
 * the markdown table; its options (workloads, targets) and the data-plane check of turnpike's metrics.
 */
import t from 'tap';
import { parseDataPlaneInfo } from '../../bench/compare/context.js';
import { DEFAULT_WORKLOADS, parseOptions } from '../../bench/compare/options.js';
import {
  bindingRate,
  checkLines,
  evaluateTargets,
  markdown,
  metricDefs,
  pooledPercentile,
  RATE_SPECS,
  type RateRound,
  rateKey,
  specKey,
  summarizeMetrics,
  type TargetRound,
} from '../../bench/compare/report.js';
import { DEFAULT_TARGETS, SMOKE_TARGETS, type TargetName } from '../../bench/compare/targets.js';
import { HdrHistogram } from '../../src/load-tool/hdr.js';

/** A round whose figures all scale with `scale` (higher is better); `allocs` adds the rate-allocs searches. */
function round(target: TargetName, n: number, scale: number, limited = false, allocs = false): TargetRound {
  const rates: Record<string, RateRound> = {};
  for (const spec of RATE_SPECS) {
    if (spec.workload === 'rate-allocs' && !allocs) continue;
    rates[specKey(spec)] = {
      bestPps: 100_000 * scale,
      toolLimited: limited,
      reachedMax: false,
      trials: 8,
      cpuUsPerPacket: 5 / scale,
      allocatePerSec: 2000 * scale,
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

t.test('rate keys: older records keep theirs', async (t) => {
  t.equal(rateKey(100, 100), '100B×100');
  t.equal(rateKey(100, 100, 'send'), 'send 100B×100');
  t.equal(rateKey(100, 100, 'channel', 'p2c'), 'p2c 100B×100');
  t.same(RATE_SPECS.filter((s) => s.workload !== 'rate-allocs').map(specKey), [
    '100B×100',
    '1200B×100',
    'send 100B×100',
    'p2c 100B×100',
  ]);
});

t.test('medians, ratios, earlier targets and the table (forwarder, turnpike, coturn)', async (t) => {
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

  const binding = { echo: 100, turnpike: 95, coturn: 130, note: undefined };
  const checks = evaluateTargets(s, binding);
  const met = (name: string): boolean | undefined => checks.find((c) => c.name === name)?.met;
  t.equal(met('relay rate, ChannelData 100 B × 100 alloc: turnpike/forwarder'), true, '0.9 >= 0.85');
  t.equal(met('CPU per relayed packet: turnpike/forwarder'), true, '(6/0.9)/6 = 1.11 <= 1.2');
  t.equal(met('RSS growth per live allocation (turnpike, KiB)'), true, '5.4 KiB <= 8');
  t.equal(met('allocation setup rate: turnpike/coturn (-m 1)'), false, '1800 < 3000');
  t.equal(met('server CPU per allocation set up and released: turnpike/coturn (-m 1)'), false);
  t.equal(met('latency p99 (50 × 50 pps × 160 B): turnpike/forwarder'), true, '1.11 <= 1.2');
  t.equal(met('relay rate, ChannelData c2p 100 B × 100 alloc, 1 thread: turnpike/coturn'), false, '0.6');
  t.equal(met('Binding requests/s: turnpike/coturn (bench/binding, 1 thread each)'), false, '95/130');
  t.equal(
    met('server CPU per relayed packet at the max rate, 2 threads against 1: turnpike-2t/turnpike'),
    undefined,
  );
  t.equal(met('allocation setup rate: turnpike/turnpike-js (the old control plane)'), undefined);

  const md = markdown(s, defs, targets, binding, checks, ['a note']);
  t.match(
    md,
    /^\| metric \| forwarder \| turnpike \| coturn -m 1 \| turnpike\/coturn \| turnpike\/forwarder \|$/m,
  );
  t.match(
    md,
    /\| max relay rate < 1% loss, ChannelData c2p, 100 B, 100 alloc \(pkt\/s\), higher is better \| 100,000 † ~1 \(80,000–120,000\) \| 90,000 \(90,000–90,000\) \| 150,000 \| 0\.600 \| 0\.900 \|/,
  );
  t.match(md, /Send indications c2p, 100 B, 100 alloc/);
  t.match(md, /ChannelData p2c, 100 B, 100 alloc/);
  t.notMatch(md, /100 B, 1 alloc/, 'rate-allocs rows left out when not measured');
  t.match(md, /Binding requests\/s.*\| 100 \(echo loop\) \| 95 \| 130 \| 0\.731 \| 0\.950 \|/);
  t.match(md, /\| allocation setup rate: turnpike\/coturn \(-m 1\) \| earlier \| 0\.600 \| >= 1 \| NO \|/);
  t.match(
    md,
    /^ {4}FAIL {2}relay rate, ChannelData c2p 100 B × 100 alloc, 1 thread: turnpike\/coturn = 0\.600 \(>= 1\.2\)$/m,
  );
  t.match(md, /^ {4}n\/a {3}allocation setup rate: turnpike\/turnpike-js/m);
  t.match(md, /^- a note$/m);

  const withAllocs = summarizeMetrics(defs, [round('turnpike', 1, 1, false, true)], ['turnpike']);
  t.match(markdown(withAllocs, defs, ['turnpike'], undefined, [], []), /ChannelData c2p, 1200 B, 1000 alloc/);

  const empty = summarizeMetrics(defs, [], targets);
  t.equal(empty[0]?.byTarget['turnpike'], undefined);
  t.equal(evaluateTargets(empty)[0]?.met, undefined);
  t.match(markdown(empty, defs, targets, undefined, evaluateTargets(empty), []), /\| n\/a \| n\/a \|/);
});

t.test(
  "issue 13's targets: turnpike (native, 1 thread), turnpike-2t, turnpike-js, coturn, coturn-2t",
  async (t) => {
    const targets: TargetName[] = ['turnpike', 'turnpike-2t', 'turnpike-js', 'coturn', 'coturn-2t'];
    const scales: Record<string, number> = {
      turnpike: 1.5,
      'turnpike-2t': 1.2,
      'turnpike-js': 0.8,
      coturn: 1,
      'coturn-2t': 1.1,
    };
    const rounds = targets.flatMap((x) => [round(x, 1, scales[x]!), round(x, 2, scales[x]!)]);
    const defs = metricDefs(20_000);
    const s = summarizeMetrics(defs, rounds, targets);
    const binding = {
      perTarget: { turnpike: 150, 'turnpike-js': 90, coturn: 100, echo: 120 },
      note: undefined,
    };
    t.equal(bindingRate(binding, 'turnpike-js'), 90);
    t.equal(bindingRate(binding, 'forwarder'), 120, 'the echo loop stands in for the forwarder');
    t.equal(bindingRate(binding, 'turnpike-2t'), undefined);
    const checks = evaluateTargets(s, binding);
    const issue = checks.filter((c) => c.group === 'issue 13');
    t.equal(issue.length, 12);
    const v = (prefix: string): [number | undefined, boolean | undefined] => {
      const c = issue.find((x) => x.name.startsWith(prefix))!;
      return [c.value === undefined ? undefined : Number(c.value.toFixed(3)), c.met];
    };
    t.same(v('relay rate, ChannelData c2p 100 B'), [1.5, true], '>= 1.2');
    t.same(v('server CPU per relayed packet at its max rate, 1 thread'), [0.667, true], '(6/1.5)/6 <= 0.8');
    t.same(v('relay rate, ChannelData c2p 1200 B'), [1.5, true]);
    t.same(v('relay rate, Send indications'), [1.5, true]);
    t.same(v('relay rate, ChannelData p2c'), [1.5, true]);
    t.same(v('latency p50'), [0.667, true]);
    t.same(v('latency p99'), [0.667, true]);
    t.same(v('RSS growth'), [9, false], '9 KiB > 8');
    t.same(v('Binding requests/s'), [1.5, true]);
    t.same(
      v('server CPU per relayed packet at the max rate, 2 threads'),
      [1.25, false],
      '(6/1.2)/(6/1.5) > 1.05',
    );
    t.same(v('allocation setup rate: turnpike/turnpike-js'), [1.875, true]);
    t.same(v('server CPU per allocation set up and released'), [0.533, true], '(200/1.5)/(200/0.8)');
    t.match(
      checkLines(issue).join('\n'),
      /^FAIL {2}RSS growth per live allocation \(turnpike, KiB\) = 9\.000 \(<= 8\)$/m,
    );

    const md = markdown(s, defs, targets, binding, checks, []);
    t.match(
      md,
      /^\| metric \| turnpike \| turnpike 2 threads \| turnpike JS plane \| coturn -m 1 \| coturn -m 2 \| turnpike\/coturn \| turnpike-2t\/coturn-2t \| turnpike\/turnpike-js \| turnpike-2t\/turnpike \|$/m,
    );
    t.match(
      md,
      /Binding requests\/s.*\| 150 \| n\/a \| 90 \| 100 \| n\/a \| 1\.500 \| n\/a \| 1\.667 \| n\/a \|/,
    );
    t.match(
      md,
      /^ {4}PASS {2}allocation setup rate: turnpike\/turnpike-js \(the old control plane\) = 1\.875 \(>= 1\.0\)$/m,
    );
  },
);

t.test('latency pooled over rounds: the p99 of all samples, not the median of per-round p99s', async (t) => {
  /** A round of 1000 echo RTTs: `slow` of them at 3 ms, the rest at `baseUs`. */
  const withHistogram = (target: TargetName, n: number, baseUs: number, slow: number): TargetRound => {
    const h = new HdrHistogram();
    for (let i = 0; i < 1000; i++) h.record((i < slow ? 3000 : baseUs) * 1000);
    const r = round(target, n, 1);
    return {
      ...r,
      latency: {
        ...r.latency!,
        p50Us: h.percentile(50) / 1000,
        p99Us: h.percentile(99) / 1000,
        histogram: h.toSparse(),
      },
    };
  };
  // turnpike: two of three rounds with a 1.5% tail (their p99 is 3 ms), one clean; coturn: a 0.8% tail
  // in every round (p99 at its base). Pooled, turnpike has 1% of its samples in the tail: its p99 is 3 ms
  // only at the boundary, and at p98.9 it is at its base.
  const rounds = [
    withHistogram('turnpike', 1, 150, 15),
    withHistogram('turnpike', 2, 150, 15),
    withHistogram('turnpike', 3, 150, 0),
    withHistogram('coturn', 1, 160, 8),
    withHistogram('coturn', 2, 160, 8),
    withHistogram('coturn', 3, 160, 8),
  ];
  const tp = rounds.filter((r) => r.target === 'turnpike');
  t.ok(Math.abs(pooledPercentile(tp, 50)! - 150) < 1, 'pooled p50');
  t.ok(Math.abs(pooledPercentile(tp, 98.9)! - 150) < 1, 'pooled p98.9 is at the base');
  t.ok(pooledPercentile(tp, 99.1)! > 2900, 'pooled p99.1 is in the tail');
  const defs = metricDefs(20_000);
  const s = summarizeMetrics(defs, rounds, ['turnpike', 'coturn']);
  const row = (key: string) => s.find((x) => x.key === key)!;
  t.ok(row('latency-p99').ratios['turnpike/coturn']! > 10, 'median of per-round p99s: 3 ms against 160 µs');
  const pooled = row('latency-p99-pooled');
  t.ok(pooled.byTarget['turnpike']!.max > 2900, 'the per-round range is kept');
  const check = evaluateTargets(s).find((c) => c.name.startsWith('latency p99 (50'))!;
  t.equal(check.value, pooled.ratios['turnpike/coturn'], 'the issue check uses the pooled figure');
  t.match(check.note, /pooled/);
  // A record without histograms (written before they were kept) falls back to the medians.
  const old = rounds.map((r): TargetRound => {
    const { histogram: _, ...latency } = r.latency!;
    return { ...r, latency };
  });
  const so = summarizeMetrics(defs, old, ['turnpike', 'coturn']);
  t.equal(so.find((x) => x.key === 'latency-p99-pooled')!.byTarget['turnpike'], undefined);
  const oldCheck = evaluateTargets(so).find((c) => c.name.startsWith('latency p99 (50'))!;
  t.equal(oldCheck.value, so.find((x) => x.key === 'latency-p99')!.ratios['turnpike/coturn']);
  t.match(oldCheck.note, /median of the rounds/);
  t.notMatch(
    markdown(so, defs, ['turnpike', 'coturn'], undefined, [], []),
    /pooled/,
    'an optional row without values is left out',
  );
});

t.test('options: workloads and targets', async (t) => {
  const root = '/repo';
  const o = parseOptions([], root)!;
  t.same([...o.workloads], [...DEFAULT_WORKLOADS]);
  t.notOk(o.workloads.has('rate-allocs'), 'rate-allocs only when asked for');
  t.same(o.targets, DEFAULT_TARGETS);
  const some = parseOptions(['--workloads', 'rate,rate-p2c,rate-allocs', '--skip', 'rate'], root)!;
  t.same([...some.workloads], ['rate-p2c', 'rate-allocs']);
  t.same([...parseOptions(['--skip', 'rss,binding'], root)!.workloads].includes('rss'), false);
  t.same(parseOptions(['--smoke'], root)!.targets, SMOKE_TARGETS);
  t.notOk(SMOKE_TARGETS.includes('turnpike-base'));
  t.same(parseOptions(['--smoke', '--targets', 'turnpike-js'], root)!.targets, ['turnpike-js']);
  t.throws(() => parseOptions(['--workloads', 'rate-9000'], root), /unknown rate-9000/);
  t.throws(() => parseOptions(['--skip', 'nope'], root), /unknown nope/);
  t.throws(() => parseOptions(['--targets', 'coturn-3t'], root), /unknown coturn-3t/);
});

t.test("turnpike's turn_data_plane_info", async (t) => {
  const text = [
    '# HELP turn_data_plane_info The data plane relaying UDP clients',
    '# TYPE turn_data_plane_info gauge',
    'turn_data_plane_info{plane="native",threads="2"} 1',
  ].join('\n');
  t.same(parseDataPlaneInfo(text), { plane: 'native', threads: 2 });
  t.same(parseDataPlaneInfo('turn_data_plane_info{threads="0",plane="js"} 1'), { plane: 'js', threads: 0 });
  t.equal(parseDataPlaneInfo('turn_relay_packets_total{direction="client_to_peer"} 5'), undefined);
});
