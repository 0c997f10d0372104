/**
 * Setting the engine's allocations up and tearing them down over TURN (RFC 8656): Allocate, then
 * CreatePermission, then ChannelBind, each phase for every allocation with `setupConcurrency`
 * transactions in flight, timed and counted per phase; the keep-alive refreshes of long runs; and the
 * release (Refresh with LIFETIME 0) at the end, bounded in time.
 */
import { AttrType, Class, Method } from '../core/constants.js';
import { StunWriter } from '../core/stun/encode.js';
import { BENCH_CHANNEL, type Flow, type Peer } from './flow.js';
import { SetupFailure, withConcurrency } from './turn-session.js';
import type { EngineConfig, PhaseReport, SetupReport } from './types.js';

const CLEANUP_MAX_MS = 5000;
/** Allocations moved to a fresh socket after 437, at most this many times each. */
const MAX_437_RETRIES = 5;

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** Attempts, successes, failures by reason and the time span of one setup phase. */
export class PhaseTracker {
  attempted = 0;
  succeeded = 0;
  /** Allocations moved to a fresh socket after 437 (a stale 5-tuple on the server). */
  retries = 0;
  startNs = 0;
  endNs = 0;
  readonly failures: Record<string, number> = {};

  begin(): void {
    this.startNs = Number(process.hrtime.bigint());
  }

  end(): void {
    this.endNs = Number(process.hrtime.bigint());
  }

  fail(err: unknown): void {
    const code =
      err instanceof SetupFailure
        ? err.code
        : `socket:${(err as NodeJS.ErrnoException).code ?? (err as Error).message ?? 'error'}`;
    this.failures[code] = (this.failures[code] ?? 0) + 1;
  }

  report(): PhaseReport {
    return {
      attempted: this.attempted,
      succeeded: this.succeeded,
      retries: this.retries,
      startNs: this.startNs,
      endNs: this.endNs,
      failures: { ...this.failures },
    };
  }
}

/** What setUpFlows works on: the engine's opened allocations and peers. */
export interface SetupContext {
  readonly config: EngineConfig;
  /** Allocations whose client socket is open, each with its peer. */
  readonly flows: readonly Flow[];
  readonly peers: readonly Peer[];
  /** The phase that opened the client sockets (reported with the others). */
  readonly sockets: PhaseTracker;
  /** Moves `flow` to a fresh client socket (after 437 Allocation Mismatch). */
  replaceSocket(flow: Flow): Promise<void>;
}

function relayAllowed(config: EngineConfig, address: string): boolean {
  return isLoopback(address) || address === config.server.address || config.allowedRelayIps.includes(address);
}

/** Send indication (RFC 8656 §10.1) head: STUN header, XOR-PEER-ADDRESS, DATA attribute header. */
function sendIndicationHead(config: EngineConfig, f: Flow): Buffer {
  const txid = Buffer.allocUnsafe(12);
  txid.writeUInt32BE(0x54504231, 0);
  txid.writeUInt32BE(f.index >>> 0, 4);
  txid.writeUInt32BE(config.workerIndex >>> 0, 8);
  const w = new StunWriter(64).start(Method.Send, Class.Indication, txid);
  w.addAddress(AttrType.XorPeerAddress, f.peer!.address, f.peer!.port, true);
  const start = w.finish();
  const head = Buffer.alloc(start.length + 4);
  start.copy(head, 0);
  const padded = (config.size + 3) & ~3;
  head.writeUInt16BE(start.length - 20 + 4 + padded, 2);
  head.writeUInt16BE(AttrType.Data, start.length);
  head.writeUInt16BE(config.size, start.length + 2);
  return head;
}

/**
 * Sets every allocation up: Allocate (moving an allocation to a fresh socket after 437, as the server
 * still holds a stale one for that 5-tuple), then CreatePermission, then ChannelBind on the channel path
 * (or the Send-indication head on the Send/Data path). Marks the allocations that came through as active
 * and returns them with the report.
 */
export async function setUpFlows(
  ctx: SetupContext,
): Promise<{ report: Omit<SetupReport, 'engine' | 'engineNote' | 'gso'>; ready: Flow[] }> {
  const c = ctx.config;
  const allocate = new PhaseTracker();
  const permission = new PhaseTracker();
  const channel = c.path === 'channel' ? new PhaseTracker() : undefined;

  allocate.begin();
  await withConcurrency(ctx.flows, c.setupConcurrency, async (f) => {
    allocate.attempted++;
    try {
      let r = await f.session.allocate(c.lifetimeSec).catch((err: unknown) => err as Error);
      for (let retry = 0; retry < MAX_437_RETRIES && r instanceof SetupFailure && r.code === '437'; retry++) {
        await ctx.replaceSocket(f);
        allocate.retries++;
        r = await f.session.allocate(c.lifetimeSec).catch((err: unknown) => err as Error);
      }
      if (r instanceof Error) throw r;
      if (!relayAllowed(c, r.relayed.address)) {
        throw new SetupFailure('relay-address', `relay address ${r.relayed.address} not allowed`);
      }
      f.relayAddress = r.relayed.address;
      f.relayPort = r.relayed.port;
      f.allocated = true;
      allocate.succeeded++;
    } catch (err) {
      allocate.fail(err);
    }
  });
  allocate.end();

  const allocated = ctx.flows.filter((f) => f.allocated);
  const okPermission = new Set<Flow>();
  permission.begin();
  await withConcurrency(allocated, c.setupConcurrency, async (f) => {
    permission.attempted++;
    try {
      await f.session.createPermission(f.peer!.address, f.peer!.port);
      okPermission.add(f);
      permission.succeeded++;
    } catch (err) {
      permission.fail(err);
    }
  });
  permission.end();

  let ready = allocated.filter((f) => okPermission.has(f));
  if (channel !== undefined) {
    const okChannel = new Set<Flow>();
    channel.begin();
    await withConcurrency(ready, c.setupConcurrency, async (f) => {
      channel.attempted++;
      try {
        await f.session.channelBind(BENCH_CHANNEL, f.peer!.address, f.peer!.port);
        okChannel.add(f);
        channel.succeeded++;
      } catch (err) {
        channel.fail(err);
      }
    });
    channel.end();
    ready = ready.filter((f) => okChannel.has(f));
  } else {
    for (const f of ready) f.sendHead = sendIndicationHead(c, f);
  }
  for (const f of ready) f.active = true;
  const report: Omit<SetupReport, 'engine' | 'engineNote' | 'gso'> = {
    sockets: ctx.sockets.report(),
    allocate: allocate.report(),
    permission: permission.report(),
    channel: channel?.report(),
    active: ready.length,
    transmissions: ctx.flows.reduce((n, f) => n + f.session.transmissions, 0),
    clientPorts: ctx.flows.map((f) => f.localPort),
    peerPorts: ctx.peers.map((p) => p.port),
    relays: allocated.map((f) => ({ address: f.relayAddress, port: f.relayPort })),
  };
  return { report, ready };
}

/** Keeps long runs alive: Refresh, CreatePermission and ChannelBind again (errors are ignored). */
export function refreshFlows(config: EngineConfig, flows: readonly Flow[]): void {
  void withConcurrency(flows, config.setupConcurrency, async (f) => {
    try {
      await f.session.refresh(config.lifetimeSec ?? 600);
      await f.session.createPermission(f.peer!.address, f.peer!.port);
      if (config.path === 'channel')
        await f.session.channelBind(BENCH_CHANNEL, f.peer!.address, f.peer!.port);
    } catch {
      // Reported indirectly: the allocation stops relaying and its packets count as lost.
    }
  });
}

/** Deletes the allocations (Refresh with LIFETIME 0), giving up after 5 s. */
export async function releaseFlows(config: EngineConfig, flows: readonly Flow[]): Promise<void> {
  const allocated = flows.filter((f) => f.allocated);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    withConcurrency(allocated, config.setupConcurrency, async (f) => {
      try {
        await f.session.refresh(0);
      } catch {
        // Already gone, or the server stopped answering: the sockets close either way.
      }
    }),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLEANUP_MAX_MS);
    }),
  ]);
  clearTimeout(timer);
}
