/**
 * `turnpike-bench`: a load generator for any TURN server over UDP. See bench/README.md and `--help`.
 *
 *   turnpike-bench --server 127.0.0.1:3478 --user u --password p --allocations 100 --rate 100 --size 160
 *   turnpike-bench … --search                 highest rate with < 1% loss
 *   turnpike-bench --self-test …              the tool's own ceiling, against a bare forwarder
 *   turnpike-bench forwarder --listen IP:PORT the bare forwarder on its own
 *
 * Everything the tool starts (worker threads, the self-test forwarder) is stopped on the way out, also
 * on errors and on SIGINT/SIGTERM (a second signal stops at once).
 */
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { parseArgs } from 'node:util';
import { isRunning } from './child.js';
import { runForwarder } from './forwarder.js';
import { type DirectCeiling, directCeiling } from './native-engine.js';
import { type BenchOptions, parseHostPort, parseOptions, USAGE, UsageError } from './options.js';
import { describeLoad, formatSearch, formatSetup, formatTrial, int } from './report.js';
import type { SetupSummary, TrialResult } from './results.js';
import { Bench, type ProgressSink, type SearchResult } from './run.js';
import { type ForwarderChild, startForwarder } from './self-test.js';

function packageVersion(): string | undefined {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'turnpike') return pkg.version;
    } catch {
      // try the next layout (compiled vs. source)
    }
  }
  return undefined;
}

/** The live progress line on stderr: phase, elapsed time, sent and received packets/s over the last second. */
class ProgressLine implements ProgressSink {
  private label = '';
  private startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private last = { sent: 0, received: 0, at: Date.now() };
  private source: (() => { sent: number; received: number }) | undefined;
  private stopped = false;

  attach(source: () => { sent: number; received: number }): void {
    this.source = source;
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  phase(label: string): void {
    this.label = label;
    this.startedAt = Date.now();
    this.last = { sent: 0, received: 0, at: Date.now() };
    this.draw();
  }

  private draw(): void {
    if (this.stopped) return;
    const now = Date.now();
    const p = this.source?.() ?? { sent: 0, received: 0 };
    const dt = (now - this.last.at) / 1000;
    const sent = dt > 0 ? Math.max(0, p.sent - this.last.sent) / dt : 0;
    const recv = dt > 0 ? Math.max(0, p.received - this.last.received) / dt : 0;
    this.last = { ...p, at: now };
    const elapsed = ((now - this.startedAt) / 1000).toFixed(0);
    process.stderr.write(
      `\r\u001b[K${this.label} ${elapsed} s  sent ${int(sent)} pkt/s  received ${int(recv)} pkt/s`,
    );
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    process.stderr.write('\r\u001b[K');
  }
}

function publicConfig(o: BenchOptions, server: BenchOptions['server']): Record<string, unknown> {
  const c = o.credentials;
  const credentials =
    c.kind === 'static'
      ? { kind: c.kind, username: c.username }
      : c.kind === 'rest'
        ? { kind: c.kind, userId: c.userId, ttlSec: c.ttlSec }
        : { kind: c.kind };
  return { ...o, server, credentials };
}

interface Output {
  tool: 'turnpike-bench';
  version: string | undefined;
  mode: BenchOptions['mode'];
  date: string;
  environment: Record<string, unknown>;
  config: Record<string, unknown>;
  /** The traffic engine asked for and the one that ran (undefined until the setup), and why not native. */
  engine: {
    requested: BenchOptions['engine'];
    used: SetupSummary['engine'] | undefined;
    /** The native engine sends with UDP GSO. */
    gso: boolean;
    note: string | undefined;
  };
  selfTest?: {
    forwarder: BenchOptions['server'];
    pinning: string;
    /** With the native engine: its own ceiling with no relay (client sockets straight to the peers). */
    nativeDirect?: DirectCeiling;
  };
  setup?: SetupSummary;
  result?: TrialResult;
  search?: SearchResult;
  hold?: { seconds: number };
  interrupted: boolean;
  error?: string;
}

async function forwarderCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      options: { listen: { type: 'string' }, 'sock-buf': { type: 'string' } },
    });
    const sockBuf = Number(values['sock-buf'] ?? '0');
    if (!Number.isInteger(sockBuf) || sockBuf < 0) throw new UsageError('--sock-buf must be a byte count');
    return await runForwarder(parseHostPort(values.listen ?? '127.0.0.1:3478', 'listen', 3478), sockBuf);
  } catch (err) {
    process.stderr.write(
      `${(err as Error).message}\n\nusage: turnpike-bench forwarder --listen IP:PORT [--sock-buf BYTES]\n`,
    );
    return 2;
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'forwarder') return forwarderCommand(argv.slice(1));
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(argv);
  } catch (err) {
    const known =
      err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    if (!known) throw err;
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }

  const out: Output = {
    tool: 'turnpike-bench',
    version: packageVersion(),
    mode: options.mode,
    date: new Date().toISOString(),
    environment: {
      node: process.version,
      platform: process.platform,
      kernel: release(),
      cpuModel: cpus()[0]?.model,
      cpus: cpus().length,
    },
    config: {},
    engine: { requested: options.engine, used: undefined, note: undefined, gso: false },
    interrupted: false,
  };

  let forwarder: ForwarderChild | undefined;
  let server = options.server;
  if (options.mode === 'self-test') {
    try {
      forwarder = await startForwarder(options.pin);
    } catch (err) {
      process.stderr.write(`self-test: ${(err as Error).message}\n`);
      return 1;
    }
    server = forwarder.address;
    options = { ...options, server, serverPid: forwarder.pid };
    // Last resort (an unexpected crash): never leave the forwarder running; it is stopped properly below.
    const child = forwarder.process;
    process.once('exit', () => {
      if (isRunning(child)) child.kill('SIGKILL');
    });
    out.selfTest = { forwarder: server, pinning: forwarder.pinning };
  }
  out.config = publicConfig(options, server);
  const o = options;
  const log = (line: string): void => {
    if (!o.json) process.stdout.write(`${line}\n`);
  };
  log(`turnpike-bench: ${describeLoad(o, server)}`);
  if (out.selfTest !== undefined) log(`self-test against the bare forwarder (${out.selfTest.pinning})`);

  const progress = o.progress ? new ProgressLine() : undefined;
  const bench = new Bench(o, server, progress);
  progress?.attach(() => bench.progress());

  let releaseHold: (() => void) | undefined;
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    out.interrupted = true;
    if (signals > 1) {
      void bench.terminate();
      void forwarder?.stop();
      process.exit(130);
    }
    bench.stop();
    releaseHold?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code = 0;
  try {
    const setup = await bench.start();
    out.setup = setup;
    out.engine = { requested: o.engine, used: setup.engine, note: setup.engineNote, gso: setup.gso };
    log(formatSetup(setup));
    if (setup.active === 0) {
      out.error = 'no allocation could be set up';
      code = 1;
    } else if (o.mode === 'hold') {
      const ready = { event: 'ready', active: setup.active, holdSec: o.holdSec };
      if (o.json) process.stdout.write(`${JSON.stringify(ready)}\n`);
      else
        log(
          `ready: holding ${int(setup.active)} allocations ${o.holdSec > 0 ? `for ${o.holdSec} s` : 'until SIGTERM/SIGINT'}`,
        );
      const started = Date.now();
      if (!bench.stopped) {
        await new Promise<void>((resolve) => {
          releaseHold = resolve;
          if (o.holdSec > 0) setTimeout(resolve, o.holdSec * 1000).unref();
        });
      }
      out.hold = { seconds: (Date.now() - started) / 1000 };
    } else if (o.mode === 'run') {
      out.result = await bench.measure(o.totalRatePps);
      progress?.stop();
      log(formatTrial(out.result));
    } else {
      out.search = await bench.search();
      progress?.stop();
      log(formatSearch(out.search));
      if (o.mode === 'self-test') {
        log(
          `\nself-test: with these settings the tool drives at least ${int(out.search.bestRatePps)} pkt/s through a bare ` +
            "forwarder; a server measured near that rate is measured near the tool's limit.",
        );
        if (out.setup?.engine === 'native' && out.selfTest !== undefined && !bench.stopped) {
          // The forwarder is one JS thread: with the native engine it, not the tool, is the limit
          // above. The engine's own ceiling is measured with no relay in between.
          const direct = await directCeiling({
            allocations: o.allocations,
            size: o.size,
            clientIp: o.clientIp,
            peerIp: o.peerIp,
            sockBufBytes: o.sockBufBytes,
            durationSec: o.durationSec,
            startPps: Math.max(o.search.startPps, out.search.bestRatePps),
            maxPps: o.search.maxPps,
            steps: o.search.steps,
            precision: o.search.precision,
            lossThresholdPct: o.search.lossThresholdPct,
          });
          out.selfTest.nativeDirect = direct;
          log(
            `self-test: the native engine alone (client sockets straight to its peers, no relay) sends and ` +
              `receives ${int(direct.bestRatePps)} pkt/s with < ${o.search.lossThresholdPct}% loss` +
              `${direct.reachedMax ? ' (--search-max reached)' : ''}: its own ceiling on this machine.`,
          );
        }
      }
    }
  } catch (err) {
    out.error = (err as Error).message;
    process.stderr.write(`turnpike-bench: ${(err as Error).message}\n`);
    code = 1;
  } finally {
    progress?.stop();
    await bench.close(o.cleanup);
    await forwarder?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (o.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else if (out.error !== undefined) log(`error: ${out.error}`);
  if (out.interrupted && code === 0) code = 130;
  return code;
}

process.exitCode = await main(process.argv.slice(2));
