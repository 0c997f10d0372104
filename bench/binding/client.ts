/**
 * Load generator for the Binding benchmark, run by `main.ts` as a separate Node process (so it never shares
 * an event loop with the server under test): `node dist/bench/binding/client.js '<ClientConfig JSON>'`.
 *
 * It keeps a fixed window of Binding requests in flight over several connected UDP sockets. Each request
 * carries a fresh random 96-bit transaction ID; a datagram counts as answered only when its transaction ID
 * matches an outstanding request on the socket it arrived on. Every answer, and every request older than
 * `timeoutMs` (counted as lost), refills its window slot at once, so the offered load stays at `window`.
 *
 * With `engine: 'native'` the addon's BindGen (native-client.ts, native/bindgen.cc) runs the same window on
 * one thread instead of this loop, and this process only relays its messages.
 *
 * The run is bounded: warm-up, then the measurement window, then the sockets close and the result goes to
 * the parent over IPC (or to stdout when there is no IPC channel).
 */
import { randomFillSync } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import {
  BINDING_REQUEST,
  BINDING_SUCCESS,
  bindingRequestBytes,
  MAGIC_COOKIE,
  writeBindingRequest,
} from '../shared/stun.js';
import { runNative } from './native-client.js';
import type { ClientConfig, ClientMessage, ClientResult } from './types.js';

function post(message: ClientMessage, then: () => void): void {
  if (process.send !== undefined) {
    process.send(message, undefined, undefined, () => then());
  } else {
    process.stdout.write(`${JSON.stringify(message)}\n`, () => then());
  }
}

function fail(message: string): never {
  process.stderr.write(`client: ${message}\n`);
  process.exit(2);
}

function parseConfig(raw: string | undefined): ClientConfig {
  if (raw === undefined) fail('usage: client.js <ClientConfig JSON>');
  const c = JSON.parse(raw) as ClientConfig;
  const positive = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n) && n > 0;
  if (!positive(c.port) || !positive(c.window) || !positive(c.sockets) || !positive(c.durationMs)) {
    fail(`bad client config: ${raw}`);
  }
  if (c.engine !== 'js' && c.engine !== 'native') fail(`bad client engine: ${String(c.engine)}`);
  if (c.window < c.sockets) fail(`window (${c.window}) must be at least sockets (${c.sockets})`);
  return c;
}

/**
 * Random transaction IDs come from a pool filled 4 KiB at a time, read as three signed 32-bit words: small
 * integers on V8's fast path, and cheap to compare against a response without building a key string.
 */
class TransactionIds {
  #pool = Buffer.allocUnsafe(12 * 341);
  #offset = this.#pool.length;
  w0 = 0;
  w1 = 0;
  w2 = 0;

  next(): void {
    if (this.#offset + 12 > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    this.w0 = this.#pool.readInt32BE(this.#offset);
    this.w1 = this.#pool.readInt32BE(this.#offset + 4);
    this.w2 = this.#pool.readInt32BE(this.#offset + 8);
    this.#offset += 12;
  }
}

const config = parseConfig(process.argv[2]);
const expectedType = config.expect === 'echo' ? BINDING_REQUEST : BINDING_SUCCESS;
const requestBytes = bindingRequestBytes(config.fingerprint);
const ids = new TransactionIds();

// Window slots, struct-of-arrays. A slot belongs to one socket for the whole run.
const slotTx0 = new Int32Array(config.window);
const slotTx1 = new Int32Array(config.window);
const slotTx2 = new Int32Array(config.window);
const slotSentAt = new Float64Array(config.window);
const slotInFlight = new Uint8Array(config.window);
const slotSocket = new Uint16Array(config.window);
/**
 * One request buffer per slot, rewritten for the slot's next request. dgram must not see a buffer change
 * before its send completes: a matching response proves the request left, so the buffer is free again; after
 * a timeout there is no such proof, so the slot gets a new buffer (see sweep()).
 */
const slotRequest: Buffer[] = Array.from({ length: config.window }, () => Buffer.alloc(requestBytes));
const sockets: Socket[] = [];
/** Per socket: first transaction-ID word → slot. Collisions on that word are avoided when drawing an ID. */
const outstanding: Map<number, number>[] = [];

let running = true;
let answered = 0;
let lost = 0;
let errors = 0;
let unmatched = 0;
let socketErrors = 0;
let sent = 0;

function fire(slot: number): void {
  if (!running) {
    slotInFlight[slot] = 0;
    return;
  }
  const s = slotSocket[slot]!;
  const pending = outstanding[s]!;
  do ids.next();
  while (pending.has(ids.w0));
  pending.set(ids.w0, slot);
  slotTx0[slot] = ids.w0;
  slotTx1[slot] = ids.w1;
  slotTx2[slot] = ids.w2;
  slotInFlight[slot] = 1;
  const request = slotRequest[slot]!;
  writeBindingRequest(request, ids.w0, ids.w1, ids.w2, config.fingerprint);
  slotSentAt[slot] = performance.now();
  sent++;
  sockets[s]!.send(request);
}

function onMessage(socketIndex: number, msg: Buffer): void {
  if (msg.length < 20 || msg.readUInt32BE(4) !== MAGIC_COOKIE) {
    unmatched++;
    return;
  }
  const pending = outstanding[socketIndex]!;
  const w0 = msg.readInt32BE(8);
  const slot = pending.get(w0);
  if (slot === undefined || msg.readInt32BE(12) !== slotTx1[slot] || msg.readInt32BE(16) !== slotTx2[slot]) {
    unmatched++;
    return;
  }
  pending.delete(w0);
  if (msg.readUInt16BE(0) === expectedType) answered++;
  else errors++;
  fire(slot);
}

/** Expires requests older than timeoutMs; runs a few times per timeout period, not once per request. */
function sweep(): void {
  const now = performance.now();
  for (let slot = 0; slot < config.window; slot++) {
    if (slotInFlight[slot] === 1 && now - slotSentAt[slot]! > config.timeoutMs) {
      outstanding[slotSocket[slot]!]!.delete(slotTx0[slot]!);
      lost++;
      slotRequest[slot] = Buffer.alloc(requestBytes);
      fire(slot);
    }
  }
}

function openSocket(index: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.on('message', (msg) => onMessage(index, msg));
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      // Connected: send() skips the per-datagram address lookup, and only the server's datagrams arrive.
      socket.connect(config.port, config.host, () => {
        socket.off('error', reject);
        // From here on an error (ECONNREFUSED after an ICMP port unreachable, ENOBUFS) is counted, not fatal.
        socket.on('error', () => {
          socketErrors++;
        });
        resolve(socket);
      });
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function run(): Promise<ClientResult> {
  for (let i = 0; i < config.sockets; i++) {
    sockets.push(await openSocket(i));
    outstanding.push(new Map());
  }
  // Slot i goes to socket i % sockets, so the window is spread evenly.
  for (let slot = 0; slot < config.window; slot++) slotSocket[slot] = slot % config.sockets;
  const sweeper = setInterval(sweep, Math.max(5, Math.floor(config.timeoutMs / 4)));
  try {
    for (let slot = 0; slot < config.window; slot++) fire(slot);
    await sleep(config.warmupMs);

    answered = lost = errors = unmatched = socketErrors = sent = 0;
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    post({ kind: 'measuring' }, () => {});
    await sleep(config.durationMs);
    const elapsedMs = performance.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    const result: ClientResult = {
      answered,
      lost,
      errors,
      unmatched,
      socketErrors,
      sent,
      elapsedMs,
      requestsPerSec: (answered * 1000) / elapsedMs,
      lossPct: answered + errors + lost === 0 ? 100 : (100 * lost) / (answered + errors + lost),
      clientCpuPct: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
    };
    return result;
  } finally {
    running = false;
    clearInterval(sweeper);
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

(config.engine === 'native' ? runNative(config, () => post({ kind: 'measuring' }, () => {})) : run()).then(
  (result) => post({ kind: 'result', result }, () => process.exit(0)),
  (err: unknown) => post({ kind: 'error', message: String(err) }, () => process.exit(1)),
);
