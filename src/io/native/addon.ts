/**
 * Loading the native data plane (`native/`, built by node-gyp at `npm ci` into
 * `build/Release/turnpike_dataplane.node`). The build is optional: when it is missing or does not
 * load, the daemon runs the JavaScript data plane and says so once at start.
 * `TP_NATIVE_ADDON` names another build (the AddressSanitizer build of the CI).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Per-thread counters, in the order of `StatIndex` in native/dataplane.h. */
export const THREAD_STATS = [
  'packetsIn',
  'bindings',
  'toPeerPackets',
  'toPeerBytes',
  'toClientPackets',
  'toClientBytes',
  'droppedNoPermission',
  'droppedPeerPolicy',
  'droppedOversize',
  'upcalls',
  'upcallDrops',
  'sendErrors',
  'recvBatches',
  'truncated',
  'gsoSends',
  'droppedPayloadPolicy',
  'droppedMaxBps',
  'droppedUserMaxBps',
  'droppedBpsCapacity',
] as const;
export type ThreadStat = (typeof THREAD_STATS)[number];

/** A datagram the native threads hand up: listener index, thread, data, source. */
export type Upcall = (listener: number, thread: number, buf: Buffer, address: string, port: number) => void;

/** The addon's `DataPlane` object (native/addon.cc). */
export interface NativeHandle {
  readonly threads: number;
  /**
   * Binds one SO_REUSEPORT socket per thread and, with `steer`, the control socket the JS thread
   * reads (native/steer.h); throws an Error with `code` (EADDRINUSE…). `notSteered`: "" when TURN
   * requests are steered to the control socket, else why not (the threads then hand them up).
   */
  openListener(
    address: string,
    port: number,
    sockBuf: number,
    steer: boolean,
  ): [index: number, port: number, notSteered: string];
  /** Datagrams read from the control sockets so far, and control sockets closed after a poll error. */
  controlStats(): [datagrams: number, failures: number];
  /** Datagrams the kernel dropped so far at the threads' listening sockets and at the control sockets. */
  socketDrops(): [listener: number, control: number];
  send(
    listener: number,
    thread: number,
    data: Buffer | readonly Buffer[],
    address: string,
    port: number,
  ): boolean;
  /** A relay socket bound to address:port: its descriptor, or -errno. */
  bindRelay(address: string, port: number, sockBuf: number): number;
  relaySend(fd: number, data: Buffer | readonly Buffer[], address: string, port: number): boolean;
  closeFd(fd: number): void;
  install(
    thread: number,
    listener: number,
    clientAddress: string,
    clientPort: number,
    relayFds: number[],
    /** The user whose bandwidth bucket (`user-max-bps`) the allocation shares. */
    userId: string,
  ): number;
  uninstall(id: number): void;
  /**
   * RFC 8016: the allocation's client is now address:port, reached through `listener` on `thread`
   * (its relay sockets, permissions and channels follow it there); false when the arguments are
   * not valid (unknown id, thread or listener, a family the listener does not serve).
   */
  move(id: number, thread: number, listener: number, clientAddress: string, clientPort: number): boolean;
  /** Ports allowed for Send indications to the peer: [lo, hi] except `denied` (lo > hi: none). */
  permission(
    id: number,
    peerAddress: string,
    expiresAtSec: number,
    lo: number,
    hi: number,
    denied: readonly number[],
  ): void;
  channel(id: number, number: number, peerAddress: string, peerPort: number, expiresAtSec: number): void;
  /** Into `out` (6): packets, bytes to the peer; to the client; payload refused; bandwidth drops. */
  counters(id: number, out: Float64Array): boolean;
  threadStats(thread: number, out: Float64Array): boolean;
  setSoftware(text: string | undefined): void;
  /** The payload policy and bandwidth limits (bytes/s, 0 = none), seen by the threads from their next batch. */
  setLimits(webrtcOnly: boolean, maxBps: number, userMaxBps: number, bpsCapacity: number): void;
  /**
   * Wakes the threads for the table operations queued so far: install, permission and channel
   * (and uninstall) queue without waking (a thread also applies them before it handles its next datagrams).
   */
  flush(): void;
  close(): void;
}

export interface NativeAddon {
  readonly DataPlane: new (
    threads: number,
    addressMap: readonly (readonly [local: string, advertised: string])[],
    upcall: Upcall,
  ) => NativeHandle;
  readonly STATS: number;
}

/** The package root: the nearest folder above this module with a package.json (src/ or dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

let cached: { addon: NativeAddon } | { error: string } | undefined;

/** The addon, or why it is not available. Loaded once per process. */
export function loadNativeAddon(): { addon: NativeAddon } | { error: string } {
  if (cached !== undefined) return cached;
  const path =
    process.env['TP_NATIVE_ADDON'] ?? join(packageRoot(), 'build', 'Release', 'turnpike_dataplane.node');
  if (process.platform !== 'linux') cached = { error: `the native data plane is built for Linux only` };
  else if (!existsSync(path)) cached = { error: `not built (${path} is missing; see npm ci output)` };
  else {
    try {
      const addon = createRequire(import.meta.url)(path) as NativeAddon;
      if (typeof addon.DataPlane !== 'function' || addon.STATS !== THREAD_STATS.length)
        cached = { error: `${path} is from another version (run npm run build:native)` };
      else cached = { addon };
    } catch (err) {
      cached = { error: `${path} does not load: ${(err as Error).message}` };
    }
  }
  return cached;
}
