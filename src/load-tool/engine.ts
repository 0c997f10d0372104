/**
 * The load engine of one worker thread: its slice of the allocations (one connected UDP client socket
 * and one TurnSession each), its own peer sockets, a paced sender and the receive-side accounting.
 *
 * Data path, per direction:
 *   - c2p:  client socket → server (ChannelData or Send indication) → relay → peer socket;
 *   - p2c:  peer socket → relay → server → client socket (ChannelData or Data indication);
 *   - echo: client → relay → peer, which sends the payload straight back → relay → client.
 * Each packet carries the payload header of payload.ts, so the receiving end (this same thread) knows
 * the allocation, the window and the send time: latency is one-way for c2p/p2c and the round trip for
 * echo, read from process.hrtime.bigint() on both ends.
 *
 * Pacing: a 1 ms timer sends what the schedule (rate × elapsed) says is due, round-robin over the
 * allocations, at most 4 ms worth per tick so a late timer does not turn into one huge burst. A backlog
 * above 100 ms worth is dropped and counted as `skipped`: offered but never sent, the sign that the tool
 * itself could not keep up. Each packet is a fresh buffer (never reused after send()), stamped just
 * before it is sent.
 *
 * The TURN side of setting the allocations up and releasing them is in setup.ts; this file keeps the
 * sockets, the windows and the hot path together, as one class whose fields the hot path reads directly.
 *
 * With the native engine (native-engine.ts, `--engine native|auto` on c2p) the allocations are set up
 * here just the same, but the peer sockets are the addon's and every window runs on its thread: this
 * class then only hands it the client socket descriptors and packet templates and reads its counters.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { AttrType, Class, Method } from '../core/constants.js';
import { messageType } from '../core/stun/decode.js';
import { BENCH_CHANNEL, Flow, Peer } from './flow.js';
import { HdrHistogram } from './hdr.js';
import {
  type EngineName,
  type LoadGenHandle,
  loadLoadGen,
  resolveEngine,
  runNativeWindow,
  setReceiving,
  socketFd,
} from './native-engine.js';
import {
  fillerTemplate,
  isPayload,
  PAYLOAD_HEADER_BYTES,
  payloadAgeNs,
  payloadFlow,
  payloadTrial,
  writePayloadHeader,
} from './payload.js';
import { threadCpuSeconds } from './proc.js';
import { PhaseTracker, refreshFlows, releaseFlows, setUpFlows } from './setup.js';
import { CredentialCache, TurnSession, withConcurrency } from './turn-session.js';
import type { EngineConfig, SetupReport, WindowReport } from './types.js';
import { bindSocket, connectSocket, literalSocket } from './udp.js';

const DATA_INDICATION = messageType(Method.Data, Class.Indication);
const TICK_MS = 1;
/** Most sent in one tick, in ms of schedule; and the backlog beyond which packets are skipped. */
const TICK_BUDGET_MS = 4;
const MAX_BACKLOG_MS = 100;
/** Drain after a window: stop when nothing arrived for QUIET_MS, or after DRAIN_MAX_MS. */
const QUIET_MS = 200;
const DRAIN_MAX_MS = 1000;

/** Counters of the current window; plain fields, bumped on the hot path. */
class WindowCounters {
  offered = 0;
  sent = 0;
  skipped = 0;
  sendErrors = 0;
  received = 0;
  forwarded = 0;
  stray = 0;
  late = 0;
}

export class Engine {
  readonly config: EngineConfig;
  private readonly flows: Flow[] = [];
  /** By local index (global index − firstFlow); undefined where the socket could not be opened. */
  private byIndex: (Flow | undefined)[] = [];
  private readonly peers: Peer[] = [];
  private active: Flow[] = [];
  /** Opening the client sockets, reported as the first setup phase. */
  private readonly socketPhase = new PhaseTracker();
  private readonly creds: CredentialCache;
  private readonly filler: Buffer;
  private readonly histogram = new HdrHistogram();
  private counters = new WindowCounters();
  private trial = 0;
  private lastArrivalNs = 0n;
  private keepalive: NodeJS.Timeout | undefined;
  private closed = false;
  private stopRequested = false;
  /** The native engine, when it runs this worker's windows. */
  private native: LoadGenHandle | undefined;
  private engineName: EngineName = 'js';
  private engineNote: string | undefined;

  constructor(config: EngineConfig) {
    this.config = config;
    this.creds = new CredentialCache(config.credentials);
    this.filler = fillerTemplate(config.size);
  }

  /** Live counters for the progress line. */
  progress(): { sent: number; received: number } {
    if (this.native !== undefined) {
      const [sent, received] = this.native.progress();
      return { sent, received };
    }
    return { sent: this.counters.sent, received: this.counters.received };
  }

  private applyBuffers(socket: Socket): void {
    const bytes = this.config.sockBufBytes;
    if (bytes <= 0) return;
    try {
      socket.setRecvBufferSize(bytes);
      socket.setSendBufferSize(bytes);
    } catch {
      // Above rmem_max/wmem_max the kernel caps it; an error here only means the default stays.
    }
  }

  private async openPeer(): Promise<Peer> {
    const socket = literalSocket(this.config.peerIp);
    const peer = new Peer(socket);
    await bindSocket(socket, this.config.peerIp, 0);
    this.applyBuffers(socket);
    const a = socket.address();
    peer.address = a.address;
    peer.port = a.port;
    socket.on('error', () => {
      this.counters.sendErrors++;
    });
    socket.on('message', (msg, rinfo) => this.onPeerMessage(peer, msg, rinfo));
    return peer;
  }

  private openNativePeer(native: LoadGenHandle): Peer {
    const port = native.openPeer(this.config.peerIp, this.config.sockBufBytes);
    if (port <= 0)
      throw new Error(`native engine: cannot bind a peer socket on ${this.config.peerIp} (${port})`);
    const peer = new Peer(undefined);
    peer.address = this.config.peerIp;
    peer.port = port;
    return peer;
  }

  /**
   * Picks the engine once the client sockets are open (their descriptors decide too): the native one
   * for `native`, or for `auto` when it can run; otherwise the JS engine, with the reason.
   */
  private chooseEngine(sample: Flow | undefined): void {
    const c = this.config;
    let { engine, reason } = resolveEngine(c.engine);
    if (engine === 'native' && sample !== undefined && socketFd(sample.socket) === undefined) {
      engine = 'js';
      reason = 'no descriptor on Node dgram sockets (socket._handle.fd)';
    } else if (engine === 'native' && c.direction !== 'c2p' && sample !== undefined) {
      // p2c, echo: the engine reads the client sockets, so libuv must be able to stop reading them.
      if (!setReceiving(sample.socket, false) || !setReceiving(sample.socket, true)) {
        engine = 'js';
        reason = 'Node dgram handles cannot stop reading (recvStop)';
      }
    }
    if (engine === 'js') {
      if (c.engine === 'native') throw new Error(`--engine native: ${reason ?? 'unavailable'}`);
      this.engineNote = reason;
      return;
    }
    const loaded = loadLoadGen();
    if ('error' in loaded) throw new Error(loaded.error); // resolveEngine has just loaded it
    this.native = new loaded.addon.LoadGen(c.firstFlow, Math.max(1, c.flowCount), c.direction === 'echo');
    if (!c.gso) this.native.gso(false);
    this.engineName = 'native';
  }

  /**
   * Gives the native engine every ready allocation: client socket descriptor and packet template
   * (c2p and echo: what the client sends; p2c: the bare payload a peer sends to the relay address).
   */
  private handOver(native: LoadGenHandle, ready: readonly Flow[]): void {
    const size = this.config.size;
    for (const f of ready) {
      const fd = socketFd(f.socket);
      if (fd === undefined) throw new Error(`native engine: no descriptor for allocation ${f.index}`);
      if (this.config.direction === 'p2c') {
        const payload = Buffer.alloc(size);
        this.filler.copy(payload, PAYLOAD_HEADER_BYTES, PAYLOAD_HEADER_BYTES);
        const peer = this.peers.indexOf(f.peer!);
        native.addFlow(f.index, fd, payload, 0, peer, f.relayAddress, f.relayPort);
        continue;
      }
      const head = f.sendHead;
      let template: Buffer;
      if (head === undefined) {
        template = Buffer.alloc(4 + size);
        template.writeUInt16BE(BENCH_CHANNEL, 0);
        template.writeUInt16BE(size, 2);
      } else {
        template = Buffer.alloc(head.length + ((size + 3) & ~3)); // zero padding included
        head.copy(template, 0);
      }
      const off = head === undefined ? 4 : head.length;
      this.filler.copy(template, off + PAYLOAD_HEADER_BYTES, PAYLOAD_HEADER_BYTES);
      native.addFlow(f.index, fd, template, off);
    }
  }

  private async openClientSocket(): Promise<{ socket: Socket; session: TurnSession }> {
    const { server, clientIp } = this.config;
    const socket = literalSocket(server.address);
    const session = new TurnSession((buf) => socket.send(buf), this.creds);
    try {
      await bindSocket(socket, clientIp, 0);
      await connectSocket(socket, server.address, server.port);
    } catch (err) {
      socket.close();
      throw err;
    }
    this.applyBuffers(socket);
    return { socket, session };
  }

  private wireFlow(flow: Flow): void {
    const socket = flow.socket;
    flow.localPort = socket.address().port;
    socket.on('error', () => {
      // ECONNREFUSED (ICMP port unreachable from a stopped server), ENOBUFS…
      this.counters.sendErrors++;
    });
    socket.on('message', (msg) => this.onClientMessage(flow, msg));
  }

  private async openFlow(index: number): Promise<Flow> {
    const { socket, session } = await this.openClientSocket();
    const flow = new Flow(index, socket, session);
    this.wireFlow(flow);
    return flow;
  }

  /**
   * After 437 Allocation Mismatch the server still holds an allocation for this 5-tuple (a port an
   * earlier run used and did not release): move the allocation to a fresh socket. The old one stays
   * open until the new one is bound, so the port differs.
   */
  private async replaceSocket(flow: Flow): Promise<void> {
    const fresh = await this.openClientSocket();
    flow.session.close();
    flow.socket.close();
    flow.socket = fresh.socket;
    flow.session = fresh.session;
    this.wireFlow(flow);
  }

  /** Opens the peer sockets and one connected client socket per allocation. */
  async open(): Promise<void> {
    const c = this.config;
    const sockets = this.socketPhase;
    sockets.begin();
    const indexes = Array.from({ length: c.flowCount }, (_, k) => c.firstFlow + k);
    const opened: (Flow | undefined)[] = new Array(indexes.length);
    await withConcurrency(indexes, c.setupConcurrency, async (index, k) => {
      sockets.attempted++;
      try {
        opened[k] = await this.openFlow(index);
        sockets.succeeded++;
      } catch (err) {
        sockets.fail(err);
      }
    });
    this.chooseEngine(opened.find((f) => f !== undefined));
    const native = this.native;
    for (let p = 0; p < c.peerCount; p++)
      this.peers.push(native === undefined ? await this.openPeer() : this.openNativePeer(native));
    sockets.end();
    this.byIndex = opened;
    for (let k = 0; k < opened.length; k++) {
      const f = opened[k];
      if (f === undefined) continue;
      f.peer = this.peers[k % this.peers.length];
      this.flows.push(f);
    }
  }

  /** Sets every allocation up: Allocate, then CreatePermission, then ChannelBind (each phase for all). */
  async setup(): Promise<SetupReport> {
    const c = this.config;
    const { report, ready } = await setUpFlows({
      config: c,
      flows: this.flows,
      peers: this.peers,
      sockets: this.socketPhase,
      replaceSocket: (f) => this.replaceSocket(f),
    });
    this.active = ready;
    if (this.native !== undefined) this.handOver(this.native, ready);
    if (c.keepaliveSec > 0 && ready.length > 0) {
      this.keepalive = setInterval(() => refreshFlows(c, this.active), c.keepaliveSec * 1000);
    }
    const gso = this.native?.gso() ?? false;
    return { ...report, engine: this.engineName, engineNote: this.engineNote, gso };
  }

  // ---- hot path: sending ------------------------------------------------------------------------

  private sendFromClient(f: Flow): void {
    const size = this.config.size;
    let buf: Buffer;
    let off: number;
    const head = f.sendHead;
    if (head === undefined) {
      buf = Buffer.allocUnsafe(4 + size);
      buf.writeUInt16BE(BENCH_CHANNEL, 0);
      buf.writeUInt16BE(size, 2);
      off = 4;
    } else {
      const padded = (size + 3) & ~3;
      buf = Buffer.allocUnsafe(head.length + padded);
      head.copy(buf, 0);
      off = head.length;
      if (padded > size) buf.fill(0, off + size);
    }
    this.filler.copy(buf, off + PAYLOAD_HEADER_BYTES, PAYLOAD_HEADER_BYTES);
    writePayloadHeader(buf, off, this.trial, f.index, f.seq++, process.hrtime.bigint());
    f.socket.send(buf);
  }

  private sendFromPeer(f: Flow): void {
    const size = this.config.size;
    const buf = Buffer.allocUnsafe(size);
    this.filler.copy(buf, PAYLOAD_HEADER_BYTES, PAYLOAD_HEADER_BYTES);
    writePayloadHeader(buf, 0, this.trial, f.index, f.seq++, process.hrtime.bigint());
    f.peer!.socket?.send(buf, f.relayPort, f.relayAddress);
  }

  // ---- hot path: receiving ----------------------------------------------------------------------

  /** A packet of ours reached its final destination: count it, record its latency and jitter. */
  private arrive(buf: Buffer, off: number, len: number, expected: Flow | undefined): void {
    const c = this.counters;
    if (!isPayload(buf, off, len)) {
      c.stray++;
      return;
    }
    const index = payloadFlow(buf, off) - this.config.firstFlow;
    const f = expected ?? this.byIndex[index];
    if (f === undefined || f.index !== payloadFlow(buf, off)) {
      c.stray++;
      return;
    }
    if (payloadTrial(buf, off) !== this.trial) {
      c.late++;
      return;
    }
    const now = process.hrtime.bigint();
    const transit = payloadAgeNs(buf, off, now);
    this.lastArrivalNs = now;
    c.received++;
    this.histogram.record(transit);
    f.jitter.update(transit);
  }

  private onClientMessage(f: Flow, msg: Buffer): void {
    const b0 = msg[0];
    if (b0 === undefined) return;
    if ((b0 & 0xc0) === 0x40) {
      // ChannelData: channel, length, data.
      if (msg.length >= 4) this.arrive(msg, 4, msg.readUInt16BE(2), f);
      return;
    }
    if (msg.length >= 20 && msg.readUInt16BE(0) === DATA_INDICATION) {
      // Data indication: find the DATA attribute.
      let off = 20;
      while (off + 4 <= msg.length) {
        const type = msg.readUInt16BE(off);
        const len = msg.readUInt16BE(off + 2);
        if (type === AttrType.Data) {
          this.arrive(msg, off + 4, len, f);
          return;
        }
        off += 4 + ((len + 3) & ~3);
      }
      this.counters.stray++;
      return;
    }
    f.session.onStun(msg);
  }

  private onPeerMessage(peer: Peer, msg: Buffer, rinfo: RemoteInfo): void {
    const direction = this.config.direction;
    if (direction === 'c2p') {
      this.arrive(msg, 0, msg.length, undefined);
    } else if (direction === 'echo') {
      // Straight back to the relay it came from; msg is never touched after this.
      peer.socket?.send(msg, rinfo.port, rinfo.address);
      if (isPayload(msg, 0, msg.length) && payloadTrial(msg, 0) === this.trial) this.counters.forwarded++;
    } else {
      this.counters.stray++;
    }
  }

  // ---- windows ----------------------------------------------------------------------------------

  /**
   * Sends at `ratePps` (this engine's share) for `durationMs` with payloads tagged `trial`, then
   * drains until nothing arrived for 200 ms (at most 1 s), and reports the counters.
   */
  runWindow(trial: number, ratePps: number, durationMs: number): Promise<WindowReport> {
    this.trial = trial;
    if (this.native !== undefined) {
      // A stop() before this window ends it at once, as the JS engine's first tick does.
      if (this.stopRequested) this.native.stop();
      if (this.config.direction === 'c2p') return runNativeWindow(this.native, trial, ratePps, durationMs);
      // p2c, echo: the engine reads the client sockets; libuv stops reading them for the window.
      const sockets = this.active.map((f) => f.socket);
      for (const s of sockets) setReceiving(s, false);
      const resume = (): void => {
        for (const s of sockets) setReceiving(s, true);
      };
      let window: Promise<WindowReport>;
      try {
        window = runNativeWindow(this.native, trial, ratePps, durationMs);
      } catch (err) {
        resume();
        throw err;
      }
      return window.finally(resume);
    }
    const c = new WindowCounters();
    this.counters = c;
    this.histogram.reset();
    for (const f of this.active) {
      f.jitter.reset();
      f.seq = 0;
    }
    const flows = this.active;
    const n = flows.length;
    const fromPeer = this.config.direction === 'p2c';
    const startNs = process.hrtime.bigint();
    const durationNs = BigInt(Math.round(durationMs * 1e6));
    const endNs = startNs + durationNs;
    const perNs = ratePps / 1e9;
    const tickBudget = Math.max(1, Math.ceil((ratePps * TICK_BUDGET_MS) / 1000));
    const maxBacklog = Math.max(tickBudget, Math.ceil((ratePps * MAX_BACKLOG_MS) / 1000));
    const cpuStart = threadCpuSeconds();
    this.lastArrivalNs = startNs;
    let cursor = 0;
    let cpuSec: number | undefined;
    let sendMs = 0;

    return new Promise((resolve) => {
      const finish = (drainStartNs: bigint): void => {
        const now = process.hrtime.bigint();
        const latency = this.histogram.snapshot();
        let jitterSum = 0;
        let jitterFlows = 0;
        let jitterMax = 0;
        for (const f of flows) {
          if (!f.jitter.samples) continue;
          jitterSum += f.jitter.jitter;
          jitterFlows++;
          if (f.jitter.jitter > jitterMax) jitterMax = f.jitter.jitter;
        }
        resolve({
          trial,
          sendMs,
          drainMs: Number(now - drainStartNs) / 1e6,
          offered: c.offered,
          sent: c.sent,
          skipped: c.skipped,
          sendErrors: c.sendErrors,
          received: c.received,
          forwarded: c.forwarded,
          stray: c.stray,
          late: c.late,
          cpuSec,
          latency,
          jitterSumNs: jitterSum,
          jitterFlows,
          jitterMaxNs: jitterMax,
        });
      };
      const drain = (drainStartNs: bigint): void => {
        const check = (): void => {
          const now = process.hrtime.bigint();
          const quiet = Number(now - this.lastArrivalNs) / 1e6 >= QUIET_MS;
          const tooLong = Number(now - drainStartNs) / 1e6 >= DRAIN_MAX_MS;
          if (quiet || tooLong || this.closed || this.stopRequested) finish(drainStartNs);
          else setTimeout(check, 10);
        };
        setTimeout(check, 10);
      };
      const tick = (): void => {
        const now = process.hrtime.bigint();
        const clamped = now < endNs ? now : endNs;
        const target = n === 0 ? 0 : Math.floor(Number(clamped - startNs) * perNs);
        // Scheduled so far minus handled (sent or skipped) so far.
        let due = target - c.sent - c.skipped;
        c.offered = target;
        if (due > maxBacklog) {
          c.skipped += due - maxBacklog;
          due = maxBacklog;
        }
        const burst = Math.min(due, tickBudget);
        for (let i = 0; i < burst; i++) {
          const f = flows[cursor]!;
          cursor = cursor + 1 === n ? 0 : cursor + 1;
          if (fromPeer) this.sendFromPeer(f);
          else this.sendFromClient(f);
        }
        c.sent += burst;
        if (now >= endNs || this.closed || this.stopRequested) {
          // Whatever is still due at the end was offered but never sent.
          c.skipped += due - burst;
          const cpuEnd = threadCpuSeconds();
          cpuSec = cpuStart === undefined || cpuEnd === undefined ? undefined : cpuEnd - cpuStart;
          sendMs = Number(now - startNs) / 1e6;
          drain(now);
          return;
        }
        setTimeout(tick, TICK_MS);
      };
      tick();
    });
  }

  /** Ends the current window (and any later one) at its next tick. */
  stop(): void {
    this.stopRequested = true;
    this.native?.stop();
  }

  /** Deletes the allocations (Refresh lifetime 0, when `release`), closes every socket. Bounded in time. */
  async close(release: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    // First: its thread may be sending on the client sockets closed below.
    this.native?.close();
    if (release) await releaseFlows(this.config, this.flows);
    for (const f of this.flows) {
      f.session.close();
      f.socket.close();
    }
    for (const p of this.peers) p.socket?.close();
  }
}
