/**
 * The native load generator of the Binding benchmark: `BindGen` from the addon (native/bindgen.cc), which
 * keeps the same window of Binding requests in flight as client.ts's JS loop, on one thread with
 * sendmmsg/recvmmsg. client.ts runs it when `ClientConfig.engine` is 'native'; main.ts picks the engine.
 */
import { loadNativeAddon } from '../../src/io/native/addon.js';
import { BINDING_REQUEST, BINDING_SUCCESS } from '../shared/stun.js';
import type { ClientConfig, ClientResult } from './types.js';

/** The counts of one run, as BindGen.result() returns them (cpuMs: the run thread's CPU over the window). */
type BindGenResult = Omit<ClientResult, 'requestsPerSec' | 'lossPct' | 'clientCpuPct'> & {
  readonly cpuMs: number;
  readonly error: string;
};

interface BindGenHandle {
  start(): void;
  /** 0 warm-up, 1 measuring, 2 done. */
  phase(): number;
  result(): BindGenResult;
  stop(): void;
  close(): void;
}

type BindGenClass = new (
  host: string,
  port: number,
  window: number,
  sockets: number,
  warmupMs: number,
  durationMs: number,
  timeoutMs: number,
  fingerprint: boolean,
  expectType: number,
) => BindGenHandle;

/** BindGen, or why it is not available (the addon is not built, or is an older build without it). */
export function loadBindGen(): { BindGen: BindGenClass } | { error: string } {
  const loaded = loadNativeAddon();
  if ('error' in loaded) return loaded;
  const BindGen = (loaded.addon as unknown as { BindGen?: unknown }).BindGen;
  if (typeof BindGen !== 'function') return { error: 'the addon has no BindGen (run npm run build:native)' };
  return { BindGen: BindGen as BindGenClass };
}

/** How often the JS thread looks at the run's phase (to say when measuring starts, and to collect the result). */
const POLL_MS = 5;

/**
 * Runs warm-up and measurement window on BindGen's thread; `onMeasuring` is called once the measurement
 * window has begun (within POLL_MS).
 */
export async function runNative(config: ClientConfig, onMeasuring: () => void): Promise<ClientResult> {
  const loaded = loadBindGen();
  if ('error' in loaded) throw new Error(`native client: ${loaded.error}`);
  const expectType = config.expect === 'echo' ? BINDING_REQUEST : BINDING_SUCCESS;
  const gen = new loaded.BindGen(
    config.host,
    config.port,
    config.window,
    config.sockets,
    config.warmupMs,
    config.durationMs,
    config.timeoutMs,
    config.fingerprint,
    expectType,
  );
  try {
    gen.start();
    let announced = false;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const phase = gen.phase();
        if (phase >= 1 && !announced) {
          announced = true;
          onMeasuring();
        }
        if (phase === 2) {
          clearInterval(timer);
          resolve();
        }
      }, POLL_MS);
    });
    const r = gen.result();
    if (r.error !== '') throw new Error(`native client: ${r.error}`);
    return {
      answered: r.answered,
      lost: r.lost,
      errors: r.errors,
      unmatched: r.unmatched,
      socketErrors: r.socketErrors,
      sent: r.sent,
      elapsedMs: r.elapsedMs,
      requestsPerSec: r.elapsedMs > 0 ? (r.answered * 1000) / r.elapsedMs : 0,
      lossPct: r.answered + r.errors + r.lost === 0 ? 100 : (100 * r.lost) / (r.answered + r.errors + r.lost),
      clientCpuPct: r.elapsedMs > 0 ? (r.cpuMs / r.elapsedMs) * 100 : 0,
    };
  } finally {
    gen.close();
  }
}
