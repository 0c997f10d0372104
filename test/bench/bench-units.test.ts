/**
 * The load tool's pure parts: the HDR histogram (≤ 1% relative error), RFC 3550 jitter, the payload
 * header, the Prometheus parser, option parsing, the allocation/rate split and the window merge.
 */
import t from 'tap';
import { sliceFlows, splitRate } from '../../src/load-tool/coordinator.js';
import {
  BUCKET_COUNT,
  bucketIndex,
  bucketRange,
  HdrHistogram,
  JitterEstimator,
} from '../../src/load-tool/hdr.js';
import { compareCounts, deltaCounts, parseRelayPackets } from '../../src/load-tool/metrics.js';
import { parseHostPort, parseOptions, UsageError } from '../../src/load-tool/options.js';
import {
  fillerTemplate,
  isPayload,
  PAYLOAD_HEADER_BYTES,
  payloadAgeNs,
  payloadFlow,
  payloadSeq,
  payloadTrial,
  writePayloadHeader,
} from '../../src/load-tool/payload.js';
import { fineCpuDelta, processCpuFine, procUdpKey } from '../../src/load-tool/proc.js';
import { mergeSetup, mergeWindow } from '../../src/load-tool/results.js';
import type { PhaseReport, WindowReport } from '../../src/load-tool/types.js';

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

t.test('histogram buckets cover values contiguously', async (t) => {
  let prevEnd = 0;
  for (let i = 0; i < BUCKET_COUNT; i++) {
    const { low, width } = bucketRange(i);
    if (low !== prevEnd) t.fail(`bucket ${i} starts at ${low}, expected ${prevEnd}`);
    if (bucketIndex(low) !== i || bucketIndex(low + width - 1) !== i) t.fail(`bucket ${i} round trip`);
    prevEnd = low + width;
  }
  t.equal(prevEnd, 2 ** 40, 'buckets reach 2^40');
  t.equal(bucketIndex(0), 0);
  t.equal(bucketIndex(127), 127);
  t.equal(bucketIndex(128), 128);
  t.equal(bucketIndex(2 ** 31), bucketIndex(2 ** 31 + 1), 'above 2^31 uses the high word');
});

t.test('histogram percentiles are within 1% of the exact ones', async (t) => {
  const random = rng(42);
  const values: number[] = [];
  const h = new HdrHistogram();
  for (let i = 0; i < 50_000; i++) {
    // Log-uniform from 1 µs to 1 s in ns, the range latencies span.
    const v = Math.floor(1000 * 10 ** (6 * random()));
    values.push(v);
    h.record(v);
  }
  values.sort((a, b) => a - b);
  for (const p of [1, 10, 50, 90, 99, 99.9, 99.99, 100]) {
    const exact = values[Math.max(0, Math.ceil((p / 100) * values.length) - 1)]!;
    const got = h.percentile(p);
    t.ok(Math.abs(got - exact) / exact <= 0.01, `p${p}: ${got} vs exact ${exact}`);
  }
  t.equal(h.total, 50_000);
  t.equal(h.min, values[0]);
  t.equal(h.max, values[values.length - 1]);
  t.ok(Math.abs(h.mean() - values.reduce((a, b) => a + b, 0) / values.length) < 1e-6 * h.mean());
});

t.test('histogram edge cases, merge and reset', async (t) => {
  const h = new HdrHistogram();
  t.ok(Number.isNaN(h.percentile(50)), 'empty: NaN');
  t.ok(Number.isNaN(h.mean()));
  h.record(-5);
  h.record(3.7);
  h.record(2 ** 50);
  t.equal(h.min, 0);
  t.equal(h.max, 2 ** 40 - 1, 'clamped');
  t.equal(h.percentile(50), 3);
  const other = new HdrHistogram();
  other.record(1000);
  h.merge(other.snapshot());
  h.merge(new HdrHistogram().snapshot());
  t.equal(h.total, 4);
  t.equal(h.percentile(0), 0);
  h.reset();
  t.equal(h.total, 0);
});

t.test('histogram to JSON and back (toSparse, mergeSparse)', async (t) => {
  const h = new HdrHistogram();
  for (let v = 1; v <= 5000; v += 7) h.record(v * 1000);
  const json = JSON.parse(JSON.stringify(h.toSparse()));
  t.ok(json.buckets.length < 1000, `sparse: ${json.buckets.length} buckets`);
  const back = new HdrHistogram();
  back.mergeSparse(json);
  t.equal(back.total, h.total);
  t.equal(back.min, h.min);
  t.equal(back.max, h.max);
  t.equal(back.sum, h.sum);
  for (const p of [1, 50, 99, 99.9]) t.equal(back.percentile(p), h.percentile(p), `p${p}`);
  // Pooling two windows is the same as one window holding both.
  const a = new HdrHistogram();
  const b = new HdrHistogram();
  const both = new HdrHistogram();
  const record = (n: number, ns: number, ...into: HdrHistogram[]): void => {
    for (let i = 0; i < n; i++) for (const x of into) x.record(ns);
  };
  record(990, 100_000, a, both);
  record(10, 5_000_000, a, both);
  record(1000, 120_000, b, both);
  const pooled = new HdrHistogram();
  pooled.mergeSparse(a.toSparse());
  pooled.mergeSparse(b.toSparse());
  t.equal(pooled.percentile(99), both.percentile(99));
  t.ok(
    a.percentile(99.5) > 4_000_000 && pooled.percentile(99.5) < 200_000,
    "one window's tail is diluted by the other's samples",
  );
  // Garbage from a file does not corrupt the counts.
  const g = new HdrHistogram();
  g.mergeSparse({
    buckets: [
      [-1, 5],
      [1e9, 5],
      [3, -2],
      [2.5, 1],
      [4, 2],
    ],
    min: 4,
    max: 4,
    sum: 8,
  });
  t.equal(g.total, 2);
  g.mergeSparse({ buckets: [], min: 0, max: 0, sum: 0 });
  t.equal(g.min, 4, 'an empty one changes nothing');
});

t.test('RFC 3550 jitter', async (t) => {
  const j = new JitterEstimator();
  j.update(100);
  t.equal(j.jitter, 0, 'first sample sets the reference');
  t.ok(j.samples);
  j.update(116);
  t.equal(j.jitter, 1, '|D| = 16, J += (16 − 0)/16');
  for (let i = 0; i < 500; i++) j.update(i % 2 === 0 ? 100 : 132);
  t.ok(Math.abs(j.jitter - 32) < 0.5, `alternating ±32 converges to 32 (${j.jitter})`);
  j.reset();
  t.notOk(j.samples);
});

t.test('payload header round trip', async (t) => {
  const buf = Buffer.alloc(4 + 100);
  const now = process.hrtime.bigint();
  writePayloadHeader(buf, 4, 7, 123456, 99, now - 5000n);
  t.ok(isPayload(buf, 4, 100));
  t.notOk(isPayload(buf, 0, 100), 'wrong offset');
  t.notOk(isPayload(buf, 4, PAYLOAD_HEADER_BYTES - 1), 'too short');
  t.equal(payloadTrial(buf, 4), 7);
  t.equal(payloadFlow(buf, 4), 123456);
  t.equal(payloadSeq(buf, 4), 99);
  t.equal(payloadAgeNs(buf, 4, now), 5000);
  const f = fillerTemplate(64);
  t.equal(f.length, 64);
  t.equal(f[1], 38);
});

t.test('Prometheus parsing and agreement', async (t) => {
  const text = [
    '# HELP turn_relay_packets_total Packets relayed, by direction.',
    '# TYPE turn_relay_packets_total counter',
    'turn_relay_packets_total{direction="client_to_peer"} 1500',
    'turn_relay_packets_total{direction="peer_to_client"} 20',
    'turn_relay_packets_total_other 5',
    'turn_relay_packets_total{broken 1',
    'turn_relay_packets_total 7',
    'turn_relay_packets_total{direction="peer_to_client"} NaNish',
    'turn_relay_bytes_total{direction="client_to_peer"} 9999',
  ].join('\n');
  const counts = parseRelayPackets(text);
  t.same(counts, { client_to_peer: 1500, peer_to_client: 20, '': 7 });
  t.same(deltaCounts({ client_to_peer: 1000 }, counts), { client_to_peer: 500, peer_to_client: 20, '': 7 });
  t.equal(compareCounts('client_to_peer', 1005, 1000).agree, true, '0.5% agrees');
  t.equal(compareCounts('client_to_peer', 1020, 1000).agree, false, '2% does not');
  t.equal(compareCounts('client_to_peer', 0, 0).agree, true);
  t.equal(compareCounts('client_to_peer', 3, 0).agree, false);
});

t.test('options', async (t) => {
  t.equal(parseOptions(['--help']), undefined);
  const o = parseOptions([
    '--server',
    '127.0.0.1:5000',
    '--user',
    'u',
    '--password',
    'p',
    '--allocations',
    '20',
  ])!;
  t.equal(o.mode, 'run');
  t.same(o.server, { address: '127.0.0.1', port: 5000 });
  t.equal(o.totalRatePps, 20 * 50, 'default 50 pps per allocation');
  t.equal(o.credentials.kind, 'static');
  t.equal(o.clientIp, '127.0.0.1');
  const s = parseOptions(['--search', '--total-rate', '5000', '--secret', 's', '--userid', 'x'])!;
  t.equal(s.mode, 'search');
  t.equal(s.search.startPps, 5000);
  t.equal(s.durationSec, 2);
  t.equal(s.credentials.kind, 'rest');
  t.equal(parseOptions(['--self-test'])!.mode, 'self-test');
  t.equal(parseOptions(['--hold', '3'])!.mode, 'hold');
  t.equal(parseOptions(['--server', '10.0.0.1'])!.clientIp, '0.0.0.0');
  t.equal(parseOptions(['--server', '[::1]:3478'])!.clientIp, '::1');
  t.equal(
    parseOptions(['--metrics', 'http://127.0.0.1:9641/metrics'])!.metricsUrl,
    'http://127.0.0.1:9641/metrics',
  );
  const bad: string[][] = [
    ['--server', 'localhost:3478'],
    ['--server', '127.0.0.1:0'],
    ['--user', 'u'],
    ['--user', 'u', '--password', 'p', '--secret', 's'],
    ['--userid', 'x'],
    ['--size', '10'],
    ['--path', 'tcp'],
    ['--workers', '5', '--allocations', '2'],
    ['--search', '--hold', '1'],
    ['--metrics', 'not a url'],
    ['--metrics', 'ftp://x/'],
    ['--rate', 'abc'],
    ['--allocations', '1.5'],
    ['--pin', 'maybe'],
  ];
  const usageError = (fn: () => unknown): boolean => {
    try {
      fn();
    } catch (err) {
      return err instanceof UsageError;
    }
    return false;
  };
  for (const argv of bad)
    t.ok(
      usageError(() => parseOptions(argv)),
      argv.join(' '),
    );
  t.same(parseHostPort('::1', 'x', 7), { address: '::1', port: 7 });
  t.ok(usageError(() => parseHostPort('1.2.3.4:99999', 'x', 1)));
});

t.test('allocation slices, rate split and /proc keys', async (t) => {
  t.same(sliceFlows(10, 3), [
    { first: 0, count: 4 },
    { first: 4, count: 3 },
    { first: 7, count: 3 },
  ]);
  t.same(splitRate(900, [1, 2, 0]), [300, 600, 0]);
  t.same(splitRate(900, [0, 0]), [0, 0]);
  t.equal(procUdpKey('127.0.0.1', 3478), '0100007F:0D96');
  t.equal(procUdpKey('::1', 1), undefined);
  t.equal(procUdpKey('1.2.3.999', 1), undefined);
});

t.test('merging setup and window reports', async (t) => {
  const phase = (attempted: number, ok: number, start: number, end: number, failures = {}): PhaseReport => ({
    attempted,
    succeeded: ok,
    retries: 0,
    startNs: start,
    endNs: end,
    failures,
  });
  const setup = mergeSetup(3, [
    {
      engine: 'native',
      engineNote: undefined,
      gso: true,
      sockets: phase(2, 2, 0, 1),
      allocate: phase(2, 1, 0, 1e9, { '401': 1 }),
      permission: phase(1, 1, 1e9, 2e9),
      channel: phase(1, 1, 2e9, 3e9),
      active: 1,
      transmissions: 5,
      clientPorts: [1],
      peerPorts: [2],
      relays: [],
    },
    {
      engine: 'js',
      engineNote: 'no descriptor',
      gso: false,
      sockets: phase(1, 1, 0, 1),
      allocate: phase(1, 1, 0, 2e9, { '401': 2, timeout: 1 }),
      permission: phase(1, 1, 2e9, 3e9),
      channel: undefined,
      active: 1,
      transmissions: 4,
      clientPorts: [3],
      peerPorts: [4],
      relays: [],
    },
  ]);
  t.equal(setup.engine, 'mixed', 'one worker fell back');
  t.equal(setup.engineNote, 'no descriptor');
  t.equal(setup.allocate.succeeded, 2);
  t.equal(setup.allocate.seconds, 2);
  t.equal(setup.allocate.perSec, 1);
  t.same(setup.allocate.failures, { '401': 3, timeout: 1 });
  t.equal(setup.channel?.succeeded, 1);
  t.equal(setup.active, 2);

  const h = new HdrHistogram();
  h.record(1000);
  h.record(3000);
  const w = (over: Partial<WindowReport>): WindowReport => ({
    trial: 1,
    sendMs: 1000,
    drainMs: 100,
    offered: 1000,
    sent: 1000,
    skipped: 0,
    sendErrors: 0,
    received: 990,
    forwarded: 995,
    stray: 0,
    late: 0,
    cpuSec: 0.95,
    latency: h.snapshot(),
    jitterSumNs: 2000,
    jitterFlows: 2,
    jitterMaxNs: 1500,
    ...over,
  });
  const r = mergeWindow(2000, 100, 'echo', [w({}), w({ sent: 900, received: 900, cpuSec: undefined })], {
    toolProcessCpuSec: 1,
    toolSocketDrops: 50,
    serverCpuSec: 0.5,
    serverSocketDrops: 0,
    machineBusySec: 2,
    machineStealPct: 1,
    wallSec: 1,
    metrics: {
      url: 'x',
      delta: { client_to_peer: 1990, peer_to_client: 1890 },
      checks: [],
      error: undefined,
    },
  });
  t.equal(r.sent, 1900);
  t.equal(r.received, 1890);
  t.ok(Math.abs(r.lossPct - (10 / 1900) * 100) < 1e-9);
  t.equal(r.sentPps, 1900);
  t.equal(r.receivedMbps, (1890 * 100 * 8) / 1e6);
  t.equal(r.latency.kind, 'round-trip');
  t.equal(r.latency.samples, 4);
  t.equal(r.jitter.meanUs, 1);
  t.equal(r.tool.limited, true);
  t.match(r.tool.reasons.join('\n'), /sent 95\.0% of offered/);
  t.match(r.tool.reasons.join('\n'), /worker 0 CPU 95%/);
  t.match(r.tool.reasons.join('\n'), /dropped 50/);
  t.same(r.tool.workerCpuPct, [95, null]);
  t.equal(r.server?.relayedPackets, 3880, 'relayed from the metrics, both directions');
  t.equal(r.server?.cpuUsPerPacket, 0.5e6 / 3880);
  t.equal(r.machine.otherCpuPct, 50);
  const quiet = mergeWindow(10, 100, 'c2p', [w({ sent: 0, received: 0, offered: 0, cpuSec: 0.1 })], {
    toolProcessCpuSec: undefined,
    toolSocketDrops: undefined,
    serverCpuSec: undefined,
    serverSocketDrops: undefined,
    machineBusySec: undefined,
    machineStealPct: undefined,
    wallSec: 0,
    metrics: undefined,
  });
  t.equal(quiet.lossPct, 0);
  t.equal(quiet.server, undefined);
  t.equal(quiet.tool.limited, false);
});

t.test('server CPU at nanosecond resolution, falling back to ticks when threads exited', async (t) => {
  const before = processCpuFine(process.pid);
  t.ok(before !== undefined, 'this process can be read');
  const end = Date.now() + 60;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  const after = processCpuFine(process.pid)!;
  const used = fineCpuDelta(before!, after);
  t.ok(used >= 0.04 && used < 5, `a 60 ms busy loop measured as ${used.toFixed(4)} s (${x > 0})`);
  t.equal(
    used,
    after.threadsSec - before!.threadsSec,
    "the threads' nanosecond sum, no thread having exited",
  );
  // A thread that exited took 0.5 s the thread sum no longer sees: the tick count stands.
  const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9;
  t.ok(close(fineCpuDelta({ threadsSec: 1, statSec: 1 }, { threadsSec: 1.1, statSec: 1.6 }), 0.6));
  // Within two ticks of rounding: the fine figure.
  t.ok(close(fineCpuDelta({ threadsSec: 1, statSec: 1 }, { threadsSec: 1.105, statSec: 1.11 }), 0.105));
});
