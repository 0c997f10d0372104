/**
 * Binding-request benchmark: how many STUN Binding requests per second turnpike answers on loopback,
 * next to coturn and to a bare node:dgram echo loop (the ceiling for a pure-JS server), all measured in
 * the same run by the same load generator. See bench/README.md for the method and how to read the output.
 *
 *   npm run bench:binding -- [--rounds 3] [--duration 5] [--warmup 1] [--window 128] [--sockets 4]
 *                            [--targets echo,turnpike,turnpike-js,coturn] [--json FILE] [--smoke]
 *                            [--pin auto|off] [--client auto|native|js]
 *
 * Each measurement starts the server as a child process on 127.0.0.1 and a free port, waits until it
 * answers a Binding request, runs the load generator (`client.ts`, its own process), then stops the server
 * by PID. Rounds alternate the targets (echo, turnpike, coturn, echo, …) and the report takes the median.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type MachineCpu, machineCpu, processCpuSeconds } from '../../src/load-tool/proc.js';
import {
  COMMON_OPTIONS,
  integerOption,
  numberOption,
  parseCommandLine,
  pinOption,
  serverBinaries,
  targetsOption,
  UsageError,
} from '../shared/cli.js';
import { environment } from '../shared/machine.js';
import {
  type Child,
  ChildRegistry,
  freeUdpPort,
  pinningCpus,
  stopChildrenOnSignals,
} from '../shared/processes.js';
import { waitUntilAnswering } from '../shared/readiness.js';
import { loadBindGen } from './native-client.js';
import { formatReport, type Measurement, ratios, summarize, TURNPIKE_OVER_ECHO_TARGET } from './report.js';
import { buildTargets, DEFAULT_TARGETS, isTargetName, type Target, type TargetName } from './targets.js';
import type { ClientConfig, ClientEngine, ClientMessage } from './types.js';

const USAGE = `Usage: npm run bench:binding -- [options]

  --rounds N          rounds, each measuring every target once, alternating (default 3)
  --duration S        measured seconds per target and round (default 5)
  --warmup S          warm-up seconds before each measurement (default 1)
  --window N          Binding requests kept in flight (default 128)
  --sockets N         client UDP sockets the window is spread over (default 4)
  --timeout MS        a request unanswered after this long counts as lost (default 200)
  --targets LIST      comma-separated, from echo,echo-literal,turnpike,turnpike-js,coturn,coturn-mt
                      (default echo,turnpike,turnpike-js,coturn); turnpike runs the native data
                      plane with one relay thread (like coturn --relay-threads=1), turnpike-js the
                      JS one
  --client E          load generator: native (the addon's BindGen, one thread, sendmmsg/recvmmsg),
                      js (client.ts's node:dgram loop) or auto: native when the addon is built
                      (default auto)
  --fingerprint       add a FINGERPRINT attribute to each request (28 bytes instead of 20)
  --pin auto|off      auto: pin client and single-threaded servers to separate CPUs with taskset
                      when available (default auto)
  --json FILE         also write the results, with git sha, Node, CPU and kernel, to FILE
  --smoke             one ~1 s round per target, for CI: exit 0 iff every target that ran answered
  --turnpike-bin P    turnpike entry point (default bin/turnpike.js)
  --coturn-bin P      coturn server binary (default turnserver)
  -h, --help          this text
`;

interface Options {
  readonly rounds: number;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly window: number;
  readonly sockets: number;
  readonly timeoutMs: number;
  readonly targets: readonly TargetName[];
  readonly fingerprint: boolean;
  /** The load generator as it will run (`--client auto` resolved). */
  readonly client: ClientEngine;
  /** Why `--client auto` fell back to the JS client, if it did. */
  readonly clientNote: string | undefined;
  readonly pin: boolean;
  readonly json: string | undefined;
  readonly smoke: boolean;
  readonly turnpikeBin: string;
  readonly coturnBin: string;
}

function parseOptions(argv: readonly string[], repoRoot: string): Options | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      window: { type: 'string' },
      sockets: { type: 'string' },
      timeout: { type: 'string' },
      fingerprint: { type: 'boolean', default: false },
      client: { type: 'string' },
      json: { type: 'string' },
      ...COMMON_OPTIONS,
    },
  });
  if (values.help) return undefined;
  const targets = targetsOption(values.targets, DEFAULT_TARGETS, isTargetName);
  const pin = pinOption(values.pin);
  const window = integerOption(values.window, 'window', 128, 1, 4096);
  const sockets = integerOption(values.sockets, 'sockets', 4, 1, 64);
  if (sockets > window) throw new UsageError('--sockets must not exceed --window');
  const smoke = values.smoke;
  const asked = values.client ?? 'auto';
  if (asked !== 'auto' && asked !== 'native' && asked !== 'js') {
    throw new UsageError(`--client must be auto, native or js (not ${asked})`);
  }
  let client: ClientEngine = 'js';
  let clientNote: string | undefined;
  if (asked !== 'js') {
    const loaded = loadBindGen();
    if ('error' in loaded) {
      if (asked === 'native') throw new UsageError(`--client native: ${loaded.error}`);
      clientNote = loaded.error;
    } else client = 'native';
  }
  return {
    rounds: smoke ? 1 : integerOption(values.rounds, 'rounds', 3, 1, 100),
    durationSec: smoke ? 1 : numberOption(values.duration, 'duration', 5, 0.1, 3600),
    warmupSec: smoke ? 0.25 : numberOption(values.warmup, 'warmup', 1, 0, 600),
    window,
    sockets,
    timeoutMs: integerOption(values.timeout, 'timeout', 200, 10, 10_000),
    targets,
    fingerprint: values.fingerprint,
    client,
    clientNote,
    pin,
    json: values.json,
    smoke,
    ...serverBinaries(values, repoRoot),
  };
}

/** A target that could not be measured in some round; it is dropped from later rounds. */
class TargetFailure extends Error {}

interface Context {
  readonly options: Options;
  readonly registry: ChildRegistry;
  readonly repoRoot: string;
  readonly benchDir: string;
  readonly pin: { readonly client: number; readonly server: number } | undefined;
  readonly abort: AbortSignal;
}

function describeOutput(child: Child): string {
  const tail = child.output().trim();
  return tail.length === 0
    ? ''
    : `\n--- last output of ${child.name} ---\n${tail.split('\n').slice(-15).join('\n')}`;
}

/**
 * Runs the load generator against `port` and samples the server's CPU time over the same window the client
 * measures (the client says when its measurement starts).
 */
async function runClient(
  ctx: Context,
  target: Target,
  port: number,
  server: Child,
): Promise<Pick<Measurement, 'result' | 'serverCpuPct' | 'otherCpuPct' | 'stealPct'>> {
  const { options } = ctx;
  const config: ClientConfig = {
    host: '127.0.0.1',
    port,
    window: options.window,
    sockets: options.sockets,
    warmupMs: options.warmupSec * 1000,
    durationMs: options.durationSec * 1000,
    timeoutMs: options.timeoutMs,
    fingerprint: options.fingerprint,
    expect: target.expect,
    engine: options.client,
  };
  const client = await ctx.registry.start(
    `client (${target.name})`,
    process.execPath,
    [join(ctx.benchDir, 'client.js'), JSON.stringify(config)],
    ctx.pin?.client,
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const limitMs = (options.warmupSec + options.durationSec) * 1000 + options.timeoutMs + 15_000;
  let watchdog: NodeJS.Timeout | undefined;
  try {
    return await new Promise((resolvePromise, reject) => {
      let serverStart: number | undefined;
      let machineStart: MachineCpu | undefined;
      let wallStart = 0;
      client.process.on('message', (raw) => {
        const message = raw as ClientMessage;
        if (message.kind === 'measuring') {
          serverStart = processCpuSeconds(server.pid);
          machineStart = machineCpu();
          wallStart = performance.now();
        } else if (message.kind === 'result') {
          const serverEnd = processCpuSeconds(server.pid);
          const machineEnd = machineCpu();
          const wallSec = (performance.now() - wallStart) / 1000;
          const { result } = message;
          const serverCpuPct =
            serverStart === undefined || serverEnd === undefined
              ? undefined
              : ((serverEnd - serverStart) / wallSec) * 100;
          let otherCpuPct: number | undefined;
          let stealPct: number | undefined;
          if (machineStart !== undefined && machineEnd !== undefined) {
            const busyPct = ((machineEnd.busySec - machineStart.busySec) / wallSec) * 100;
            otherCpuPct = Math.max(0, busyPct - result.clientCpuPct - (serverCpuPct ?? 0));
            const total = machineEnd.totalSec - machineStart.totalSec;
            stealPct = total > 0 ? ((machineEnd.stealSec - machineStart.stealSec) / total) * 100 : undefined;
          }
          resolvePromise({ result, serverCpuPct, otherCpuPct, stealPct });
        } else {
          reject(new TargetFailure(`load generator: ${message.message}`));
        }
      });
      void client.exited.then((status) =>
        reject(new TargetFailure(`load generator exited without a result (code ${status.code})`)),
      );
      watchdog = setTimeout(
        () => reject(new TargetFailure(`load generator still running after ${limitMs} ms`)),
        limitMs,
      );
    });
  } finally {
    clearTimeout(watchdog);
    await ctx.registry.stop(client);
  }
}

/** Starts the target's server, waits until it answers, measures it, stops it. */
async function measure(ctx: Context, target: Target, round: number): Promise<Measurement> {
  const port = await freeUdpPort();
  const workDir = mkdtempSync(join(tmpdir(), 'turnpike-bench-binding-'));
  let server: Child | undefined;
  try {
    const launch = target.launch(port, workDir);
    const started = performance.now();
    const cpu = target.pinnable ? ctx.pin?.server : undefined;
    try {
      server = await ctx.registry.start(target.name, launch.command, launch.args, cpu, { cwd: ctx.repoRoot });
    } catch (err) {
      throw new TargetFailure(`could not start ${launch.command}: ${(err as Error).message}`);
    }
    const probe = await waitUntilAnswering(port, target.expect, server, target.readyTimeoutMs);
    if (!probe.ok) throw new TargetFailure(`${probe.reason}${describeOutput(server)}`);
    const readyMs = Math.round(performance.now() - started);
    if (ctx.abort.aborted) throw new TargetFailure('interrupted');
    const sample = await runClient(ctx, target, port, server);
    if (server.process.exitCode !== null || server.process.signalCode !== null) {
      throw new TargetFailure(`server exited during the measurement${describeOutput(server)}`);
    }
    return { round, target: target.name, port, readyMs, warning: probe.warning, ...sample };
  } finally {
    if (server !== undefined) await ctx.registry.stop(server);
    rmSync(workDir, { recursive: true, force: true });
  }
}

function progressLine(rounds: number, m: Measurement): string {
  const r = m.result;
  const server = m.serverCpuPct === undefined ? '' : `, server CPU ${m.serverCpuPct.toFixed(0)}%`;
  const other = m.otherCpuPct === undefined ? '' : `, other CPU ${m.otherCpuPct.toFixed(0)}%`;
  const steal = m.stealPct === undefined ? '' : `, steal ${m.stealPct.toFixed(0)}%`;
  return (
    `round ${m.round}/${rounds} ${m.target.padEnd(12)} ${Math.round(r.requestsPerSec).toLocaleString('en-US')} req/s` +
    `, loss ${r.lossPct.toFixed(2)}%, client CPU ${r.clientCpuPct.toFixed(0)}%${server}${other}${steal}` +
    (r.errors > 0 ? `, ${r.errors} error responses` : '') +
    ` (ready in ${m.readyMs} ms)`
  );
}

async function main(): Promise<number> {
  const benchDir = import.meta.dirname;
  const repoRoot = resolve(benchDir, '..', '..', '..');
  const options = parseCommandLine(() => parseOptions(process.argv.slice(2), repoRoot), USAGE);
  if (typeof options === 'number') return options;

  const cpuCount = availableParallelism();
  const pin = options.pin ? pinningCpus() : undefined;
  const allTargets = buildTargets({
    repoRoot,
    benchDir,
    turnpikeBin: options.turnpikeBin,
    coturnBin: options.coturnBin,
    cpuCount,
  });
  const targets = options.targets.map((name) => allTargets.get(name)!);

  const registry = new ChildRegistry();
  const abort = stopChildrenOnSignals(registry);
  const ctx: Context = { options, registry, repoRoot, benchDir, pin, abort };

  const env = environment(repoRoot);
  process.stdout.write(
    `Binding benchmark${options.smoke ? ' (smoke)' : ''}: ${options.rounds} round(s) × ${options.durationSec} s ` +
      `(+${options.warmupSec} s warm-up), window ${options.window} over ${options.sockets} sockets, ` +
      `timeout ${options.timeoutMs} ms, ${options.fingerprint ? 28 : 20}-byte requests, 127.0.0.1\n` +
      (options.client === 'native'
        ? 'client: native (BindGen, one thread, sendmmsg/recvmmsg)\n'
        : `client: js (client.ts, node:dgram)${options.clientNote === undefined ? '' : `; native not available: ${options.clientNote}`}\n`) +
      `${env.cpuModel ?? 'unknown CPU'} × ${cpuCount}, Linux ${env.kernel}, Node ${env.node}\n` +
      (pin === undefined
        ? 'no CPU pinning: client and server share all CPUs\n'
        : `pinned with taskset: client on CPU ${pin.client}, single-threaded servers on CPU ${pin.server}\n`) +
      '\n',
  );

  const measurements: Measurement[] = [];
  const failures = new Map<TargetName, string>();
  try {
    for (let round = 1; round <= options.rounds && !abort.aborted; round++) {
      for (const target of targets) {
        if (abort.aborted) break;
        if (target.skipReason !== undefined || failures.has(target.name)) continue;
        try {
          const m = await measure(ctx, target, round);
          measurements.push(m);
          process.stdout.write(`${progressLine(options.rounds, m)}\n`);
        } catch (err) {
          if (!(err instanceof TargetFailure)) throw err;
          if (abort.aborted) break;
          failures.set(target.name, `round ${round}: ${err.message}`);
          process.stdout.write(
            `round ${round}/${options.rounds} ${target.name.padEnd(12)} FAILED: ${err.message}\n`,
          );
        }
      }
    }
  } finally {
    await registry.stopAll();
  }
  if (abort.aborted) return 130;

  const summaries = targets.map((t) => summarize(t, measurements, failures.get(t.name)));
  const ratioList = ratios(summaries);
  process.stdout.write(`\n${formatReport(summaries, ratioList)}\n`);

  if (options.json !== undefined) {
    const record = {
      benchmark: 'binding',
      environment: env,
      config: {
        ...options,
        turnpikeOverEchoTarget: TURNPIKE_OVER_ECHO_TARGET,
        pinning: pin ?? null,
      },
      summary: summaries,
      ratios: ratioList,
      measurements,
    };
    mkdirSync(dirname(resolve(options.json)), { recursive: true });
    writeFileSync(options.json, `${JSON.stringify(record, null, 2)}\n`);
    process.stdout.write(`\nwrote ${options.json}\n`);
  }

  // Every target that was not skipped must have been measured and must have answered something.
  const bad = summaries.filter(
    (s) =>
      s.status === 'failed' ||
      (s.status === 'measured' && measurements.some((m) => m.target === s.target && m.result.answered === 0)),
  );
  if (bad.length > 0) {
    process.stdout.write(`\nnot answering: ${bad.map((s) => s.target).join(', ')}\n`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
