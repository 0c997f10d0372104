/**
 * The native traffic engine (native/loadgen.cc, the addon's `LoadGen`): c2p, p2c and echo windows sent
 * with sendmmsg and received with recvmmsg on a native thread, so a window at several hundred thousand
 * packets/s costs the tool no JS per packet, and an echo round trip carries no event-loop delay of the
 * tool's. The allocations are still set up in JS (setup.ts); the engine gets each one's client socket
 * descriptor and packet template, and opens the peer sockets itself so JS can CreatePermission and
 * ChannelBind to their ports. For p2c and echo the engine reads the client sockets: libuv stops reading
 * them for the window (setReceiving) and resumes after it. For echo the peer sockets send each datagram
 * back to the relay address it came from as soon as it arrives.
 *
 * Which engine runs (`--engine`): `js` always the JS engine; `native` the native one or an error;
 * `auto` the native one when the addon loads, else the JS engine, with the reason in the report. The
 * latency and jitter accounting is the same as the JS engine's: payload.ts header, hdr.ts buckets,
 * RFC 3550 jitter.
 */
import type { Socket } from 'node:dgram';
import { loadNativeAddon } from '../io/native/addon.js';
import { BUCKET_COUNT, type HistogramSnapshot } from './hdr.js';
import type { WindowReport } from './types.js';

export type EngineName = 'js' | 'native';
export type EngineChoice = EngineName | 'auto';

/** Result slots of `LoadGen.result`, in the order of `Counter` in native/loadgen.cc. */
export const NATIVE_COUNTERS = [
  'offered',
  'sent',
  'skipped',
  'sendErrors',
  'received',
  'stray',
  'late',
  'cpuSec',
  'sendMs',
  'drainMs',
  'histTotal',
  'histMin',
  'histMax',
  'histSum',
  'jitterSum',
  'jitterFlows',
  'jitterMax',
  'forwarded',
] as const;
type NativeCounter = (typeof NATIVE_COUNTERS)[number];

/** The addon's `LoadGen` object. */
export interface LoadGenHandle {
  /** A peer socket bound to address:0: its port, or −errno. */
  openPeer(address: string, sockBuf: number): number;
  /**
   * One allocation: its global index, connected client socket, template, payload header offset; for
   * p2c also the peer socket (index in openPeer order) that sends the template to the relay address.
   */
  addFlow(
    index: number,
    fd: number,
    template: Buffer,
    payloadOffset: number,
    peer?: number,
    relayAddress?: string,
    relayPort?: number,
  ): void;
  start(trial: number, ratePps: number, durationMs: number): void;
  done(): boolean;
  progress(): [sent: number, received: number];
  /** Joins the finished window; fills `counters` (NATIVE_COUNTERS) and `buckets` (hdr.ts). */
  result(counters: Float64Array, buckets: Float64Array): void;
  stop(): void;
  close(): void;
  /** false: no UDP GSO from now on. Returns whether the engine sends with GSO (the kernel takes it). */
  gso(on?: boolean): boolean;
}

interface LoadGenAddon {
  /** `echo`: the peer sockets send back what reaches them, and the client sockets are read. */
  readonly LoadGen: new (
    firstFlow: number,
    flowSlots: number,
    echo?: boolean,
  ) => LoadGenHandle;
  readonly LOADGEN_COUNTERS: number;
  readonly LOADGEN_BUCKETS: number;
}

/** The addon's LoadGen, or why it cannot be used. */
export function loadLoadGen(): { addon: LoadGenAddon } | { error: string } {
  const loaded = loadNativeAddon();
  if ('error' in loaded) return { error: `native addon: ${loaded.error}` };
  const addon = loaded.addon as unknown as Partial<LoadGenAddon>;
  if (
    typeof addon.LoadGen !== 'function' ||
    addon.LOADGEN_COUNTERS !== NATIVE_COUNTERS.length ||
    addon.LOADGEN_BUCKETS !== BUCKET_COUNT
  ) {
    return { error: 'native addon has no matching LoadGen (run npm run build:native)' };
  }
  return { addon: addon as LoadGenAddon };
}

/**
 * The engine to run for `choice`: the native one only when it can, with the reason when it cannot
 * (an error for an explicit `native`, a fallback for `auto`).
 */
export function resolveEngine(choice: EngineChoice): { engine: EngineName; reason: string | undefined } {
  if (choice === 'js') return { engine: 'js', reason: undefined };
  const reason = loadLoadGenError();
  return reason === undefined ? { engine: 'native', reason: undefined } : { engine: 'js', reason };
}

function loadLoadGenError(): string | undefined {
  const r = loadLoadGen();
  return 'error' in r ? r.error : undefined;
}

/**
 * The descriptor of a bound dgram socket: Node's internal state (the `_handle` the deprecated getter
 * returns, reached without its warning), else `_handle.fd`. Undefined when neither gives a number
 * (another platform or Node version): the caller falls back to the JS engine.
 */
export function socketFd(socket: Socket): number | undefined {
  const record = socket as unknown as Record<symbol, unknown>;
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const state = record[sym] as { handle?: { fd?: unknown } } | undefined;
    if (state === null || typeof state !== 'object' || state.handle === undefined) continue;
    const fd = state.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Node's UDP handle of a dgram socket (the internal state's `handle`, else `_handle`). */
function udpHandle(socket: Socket): { recvStart?: unknown; recvStop?: unknown } | undefined {
  const record = socket as unknown as Record<symbol, unknown>;
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const state = record[sym] as { handle?: { recvStart?: unknown; recvStop?: unknown } } | undefined;
    if (state !== null && typeof state === 'object' && typeof state.handle === 'object') return state.handle;
  }
  return (socket as unknown as { _handle?: { recvStart?: unknown; recvStop?: unknown } })._handle;
}

/**
 * Stops (`on` false) or resumes libuv's reading of `socket`, so the native engine alone reads it
 * during a p2c window. False when the handle has no recvStart/recvStop (then p2c stays on JS).
 */
export function setReceiving(socket: Socket, on: boolean): boolean {
  const h = udpHandle(socket);
  const fn = on ? h?.recvStart : h?.recvStop;
  if (typeof fn !== 'function') return false;
  (fn as () => number).call(h);
  return true;
}

/** Polling period for the end of a native window (the JS engine's drain polls every 10 ms). */
const POLL_MS = 5;

/** Runs one window on `handle` and turns its counters into the JS engine's WindowReport. */
export function runNativeWindow(
  handle: LoadGenHandle,
  trial: number,
  ratePps: number,
  durationMs: number,
): Promise<WindowReport> {
  handle.start(trial >>> 0, ratePps, durationMs);
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      try {
        if (!handle.done()) {
          setTimeout(poll, POLL_MS);
          return;
        }
        const counters = new Float64Array(NATIVE_COUNTERS.length);
        const buckets = new Float64Array(BUCKET_COUNT);
        handle.result(counters, buckets);
        const c = (name: NativeCounter): number => counters[NATIVE_COUNTERS.indexOf(name)]!;
        const latency: HistogramSnapshot = {
          counts: buckets,
          total: c('histTotal'),
          min: c('histMin'),
          max: c('histMax'),
          sum: c('histSum'),
        };
        resolve({
          trial,
          sendMs: c('sendMs'),
          drainMs: c('drainMs'),
          offered: c('offered'),
          sent: c('sent'),
          skipped: c('skipped'),
          sendErrors: c('sendErrors'),
          received: c('received'),
          forwarded: c('forwarded'),
          stray: c('stray'),
          late: c('late'),
          cpuSec: c('cpuSec') < 0 ? undefined : c('cpuSec'),
          latency,
          jitterSumNs: c('jitterSum'),
          jitterFlows: c('jitterFlows'),
          jitterMaxNs: c('jitterMax'),
        });
      } catch (err) {
        reject(err as Error);
      }
    };
    setTimeout(poll, Math.min(POLL_MS, Math.max(0, durationMs)));
  });
}

/** One trial of `directCeiling`. */
export interface DirectTrial {
  readonly ratePps: number;
  readonly sentPps: number;
  readonly receivedPps: number;
  readonly lossPct: number;
  /** The engine thread's CPU while sending, % of a core (undefined when not measurable). */
  readonly cpuPct: number | undefined;
  readonly pass: boolean;
}

export interface DirectCeiling {
  /** Highest rate that passed: loss under the threshold and ≥ 98% of the offered rate sent. */
  readonly bestRatePps: number;
  readonly reachedMax: boolean;
  readonly trials: readonly DirectTrial[];
}

export interface DirectOptions {
  readonly allocations: number;
  readonly size: number;
  readonly clientIp: string;
  readonly peerIp: string;
  readonly sockBufBytes: number;
  readonly durationSec: number;
  readonly startPps: number;
  readonly maxPps: number;
  readonly steps: number;
  readonly precision: number;
  readonly lossThresholdPct: number;
}

/**
 * `--self-test`'s second figure with the native engine: its own ceiling with no relay at all. The
 * same number of client sockets (Node dgram sockets, connected straight to the engine's peer sockets)
 * carry bare payloads (no TURN framing) at rates doubled from `startPps`, then bisected, as --search
 * does. Against the bare forwarder the native engine mostly measures the forwarder (one JS thread);
 * this is the rate the engine itself sends and receives on this machine.
 */
export async function directCeiling(o: DirectOptions): Promise<DirectCeiling> {
  const loaded = loadLoadGen();
  if ('error' in loaded) throw new Error(loaded.error);
  const { createSocket } = await import('node:dgram');
  const handle = new loaded.addon.LoadGen(0, o.allocations);
  const sockets: Socket[] = [];
  try {
    const peers: number[] = [];
    for (let p = 0; p < Math.min(4, o.allocations); p++) {
      const port = handle.openPeer(o.peerIp, o.sockBufBytes);
      if (port <= 0) throw new Error(`native engine: cannot bind a peer socket (${port})`);
      peers.push(port);
    }
    const template = Buffer.alloc(o.size);
    for (let i = 0; i < o.size; i++) template[i] = (i * 31 + 7) & 0xff;
    for (let i = 0; i < o.allocations; i++) {
      const s = createSocket(o.clientIp.includes(':') ? 'udp6' : 'udp4');
      sockets.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(0, o.clientIp, () => s.connect(peers[i % peers.length]!, o.peerIp, () => resolve()));
      });
      s.on('error', () => {});
      if (o.sockBufBytes > 0) s.setSendBufferSize(o.sockBufBytes);
      const fd = socketFd(s);
      if (fd === undefined) throw new Error('no descriptor on Node dgram sockets');
      handle.addFlow(i, fd, template, 0);
    }
    const trials: DirectTrial[] = [];
    let best = 0;
    let lowestFail: number | undefined;
    let rate = Math.max(1, Math.round(o.startPps));
    let reachedMax = false;
    for (let step = 0; step < o.steps; step++) {
      const r = await runNativeWindow(handle, step + 1, rate, o.durationSec * 1000);
      const sec = r.sendMs / 1000;
      const lossPct = r.sent === 0 ? 0 : Math.max(0, ((r.sent - r.received) / r.sent) * 100);
      const pass = lossPct < o.lossThresholdPct && r.sent >= 0.98 * r.offered;
      trials.push({
        ratePps: rate,
        sentPps: sec > 0 ? r.sent / sec : 0,
        receivedPps: sec > 0 ? r.received / sec : 0,
        lossPct,
        cpuPct: r.cpuSec === undefined || sec <= 0 ? undefined : (r.cpuSec / sec) * 100,
        pass,
      });
      if (pass) best = Math.max(best, rate);
      else lowestFail = lowestFail === undefined ? rate : Math.min(lowestFail, rate);
      let next: number;
      if (lowestFail === undefined) {
        if (rate >= o.maxPps) {
          reachedMax = true;
          break;
        }
        next = Math.min(o.maxPps, rate * 2);
      } else {
        if (lowestFail - best <= o.precision * lowestFail) break;
        next = best === 0 ? lowestFail / 2 : (best + lowestFail) / 2;
      }
      next = Math.max(1, Math.round(next));
      if (next === rate) break;
      rate = next;
    }
    return { bestRatePps: best, reachedMax, trials };
  } finally {
    handle.close();
    for (const s of sockets) s.close();
  }
}
