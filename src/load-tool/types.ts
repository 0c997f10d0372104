/** Shapes shared by the load engine (in worker threads), its coordinator and the report. */
import type { HistogramSnapshot } from './hdr.js';
import type { EngineChoice, EngineName } from './native-engine.js';
import type { Credentials } from './turn-session.js';

export type DataPath = 'channel' | 'send';
/** c2p: client → relay → peer; p2c: peer → relay → client; echo: client → peer → client (round trip). */
export type Direction = 'c2p' | 'p2c' | 'echo';

export interface HostPort {
  readonly address: string;
  readonly port: number;
}

/** What one engine (one worker thread) runs: a contiguous slice of the allocations, and its own peers. */
export interface EngineConfig {
  readonly workerIndex: number;
  readonly server: HostPort;
  readonly clientIp: string;
  readonly peerIp: string;
  readonly credentials: Credentials;
  /** Global index of this engine's first allocation (the payload carries global indexes). */
  readonly firstFlow: number;
  readonly flowCount: number;
  /** Peer sockets of this engine; allocation k talks to peer k mod peerCount. */
  readonly peerCount: number;
  readonly path: DataPath;
  readonly direction: Direction;
  /** Application bytes per packet (the ChannelData or DATA payload). */
  readonly size: number;
  /** Setup transactions in flight at once. */
  readonly setupConcurrency: number;
  /** LIFETIME asked for in Allocate; undefined leaves it to the server. */
  readonly lifetimeSec: number | undefined;
  /** Relay addresses accepted besides loopback and the server's own address. */
  readonly allowedRelayIps: readonly string[];
  /** SO_RCVBUF/SO_SNDBUF of the tool's sockets; 0 keeps the OS default. */
  readonly sockBufBytes: number;
  /** Refresh allocations, permissions and channels this often while they are held (seconds). */
  readonly keepaliveSec: number;
  /** The traffic engine asked for (native-engine.ts): js, native, or auto (native when it can). */
  readonly engine: EngineChoice;
  /** The native engine may send with UDP GSO (when the kernel takes it). */
  readonly gso: boolean;
}

/** Outcome of one setup phase (Allocate, CreatePermission or ChannelBind) in one engine. */
export interface PhaseReport {
  readonly attempted: number;
  readonly succeeded: number;
  /** Allocate only: allocations moved to a fresh client socket after 437 Allocation Mismatch. */
  readonly retries: number;
  /** process.hrtime.bigint() values as numbers of ns, comparable across threads. */
  readonly startNs: number;
  readonly endNs: number;
  /** Failures by STUN error code, 'timeout', 'socket:<errno>', 'relay-address'… */
  readonly failures: Readonly<Record<string, number>>;
}

export interface SetupReport {
  /** The traffic engine this worker runs, and why not the native one when it was asked for. */
  readonly engine: EngineName;
  readonly engineNote: string | undefined;
  /** The native engine sends with UDP GSO. */
  readonly gso: boolean;
  readonly sockets: PhaseReport;
  readonly allocate: PhaseReport;
  readonly permission: PhaseReport;
  /** Absent on the Send/Data path. */
  readonly channel: PhaseReport | undefined;
  /** Allocations ready to carry traffic. */
  readonly active: number;
  /** Requests sent including retransmissions. */
  readonly transmissions: number;
  /** Local ports of the tool's client and peer sockets, and the relay addresses (for /proc/net/udp). */
  readonly clientPorts: readonly number[];
  readonly peerPorts: readonly number[];
  readonly relays: readonly HostPort[];
}

/** One engine's counters for one window. */
export interface WindowReport {
  readonly trial: number;
  /** Time spent sending (the window proper) and draining afterwards, in ms. */
  readonly sendMs: number;
  readonly drainMs: number;
  readonly offered: number;
  readonly sent: number;
  /** Offered but never sent: the engine fell more than 100 ms behind its schedule. */
  readonly skipped: number;
  readonly sendErrors: number;
  /** Packets of this window that reached their final destination (peer for c2p, client otherwise). */
  readonly received: number;
  /** echo only: packets of this window that reached the peer (and were sent back). */
  readonly forwarded: number;
  /** Datagrams that were not ours or named an unknown allocation. */
  readonly stray: number;
  /** Ours, but from an earlier window (late arrivals). */
  readonly late: number;
  /** The engine thread's CPU seconds while sending, or undefined when not measurable. */
  readonly cpuSec: number | undefined;
  readonly latency: HistogramSnapshot;
  /** Sum, count and maximum of the per-allocation RFC 3550 jitter at the end of the window, in ns. */
  readonly jitterSumNs: number;
  readonly jitterFlows: number;
  readonly jitterMaxNs: number;
}

export type WorkerRequest =
  | { readonly kind: 'open' }
  | { readonly kind: 'setup' }
  | {
      readonly kind: 'window';
      readonly trial: number;
      readonly ratePps: number;
      readonly durationMs: number;
    }
  /** End the current window early (no reply: the window's own reply follows). */
  | { readonly kind: 'stop' }
  | { readonly kind: 'close'; readonly release: boolean };

export type WorkerReply =
  | { readonly kind: 'opened' }
  | { readonly kind: 'setup-done'; readonly report: SetupReport }
  | { readonly kind: 'window-done'; readonly report: WindowReport }
  | { readonly kind: 'closed' }
  | { readonly kind: 'progress'; readonly sent: number; readonly received: number }
  | { readonly kind: 'error'; readonly message: string };
