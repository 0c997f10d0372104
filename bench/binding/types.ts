/** Shapes shared by the orchestrator (`main.ts`) and the load generator (`client.ts`), which talk over IPC. */
import type { Expect } from '../shared/readiness.js';

/** Load generator settings, passed as JSON in `argv[2]`. */
export interface ClientConfig {
  /** Server address; always 127.0.0.1. */
  readonly host: string;
  readonly port: number;
  /** Requests kept in flight, spread over `sockets`. */
  readonly window: number;
  readonly sockets: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** A request not answered within this time counts as lost and its window slot is refilled. */
  readonly timeoutMs: number;
  /** Append a FINGERPRINT attribute (28-byte requests instead of 20). */
  readonly fingerprint: boolean;
  /** What the load generator expects back: a Binding success response, or its own request echoed. */
  readonly expect: Expect;
  /** Which load generator runs: client.ts's JS loop, or the addon's BindGen (native-client.ts). */
  readonly engine: ClientEngine;
}

/** The load generator's engine, as run (main.ts resolves `--client auto` to one of these). */
export type ClientEngine = 'js' | 'native';

/** Counters and rates of one measurement window (warm-up excluded). */
export interface ClientResult {
  /** Responses of the expected type whose transaction ID matched an outstanding request. */
  readonly answered: number;
  /** Requests that got no response within `timeoutMs`. */
  readonly lost: number;
  /** Matched responses of another type (e.g. a Binding error response). */
  readonly errors: number;
  /** Datagrams matching no outstanding request (late answers after a timeout, garbage). */
  readonly unmatched: number;
  /** Socket errors (e.g. ECONNREFUSED from an ICMP port unreachable). */
  readonly socketErrors: number;
  readonly sent: number;
  readonly elapsedMs: number;
  readonly requestsPerSec: number;
  /** lost / (answered + errors + lost), in percent. */
  readonly lossPct: number;
  /** The client's own CPU time over the window, in percent of one core. */
  readonly clientCpuPct: number;
}

/** Messages the client sends to its parent. */
export type ClientMessage =
  | { readonly kind: 'measuring' }
  | { readonly kind: 'result'; readonly result: ClientResult }
  | { readonly kind: 'error'; readonly message: string };
