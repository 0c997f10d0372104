/**
 * bench/binding's native load generator (BindGen, native/bindgen.cc): answers counted and nothing lost
 * against the built daemon on loopback at a modest window; the transaction-ID and header rules against a
 * scripted server (wrong IDs, short datagrams, a declared length beyond the datagram, error responses);
 * and bench:binding reporting which client ran.
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { loadBindGen, runNative } from '../../bench/binding/native-client.js';
import type { ClientConfig } from '../../bench/binding/types.js';
import { startDaemon } from '../fixtures/helpers/daemon.js';

const MAIN = fileURLToPath(new URL('../../dist/bench/binding/main.js', import.meta.url));

function config(port: number, over: Partial<ClientConfig> = {}): ClientConfig {
  return {
    host: '127.0.0.1',
    port,
    window: 16,
    sockets: 2,
    warmupMs: 200,
    durationMs: 800,
    timeoutMs: 500,
    fingerprint: false,
    expect: 'response',
    engine: 'native',
    ...over,
  };
}

/** A UDP server on 127.0.0.1 that answers each datagram with what `reply` returns. */
async function scripted(reply: (request: Buffer) => Buffer[]): Promise<{ socket: Socket; port: number }> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    for (const out of reply(msg)) socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port };
}

function response(request: Buffer, type: number, txXor = 0, length = 0): Buffer {
  const out = Buffer.alloc(20);
  request.copy(out, 0, 0, 20);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(length, 2);
  out.writeUInt32BE((out.readUInt32BE(16) ^ txXor) >>> 0, 16);
  return out;
}

const available = loadBindGen();
if ('error' in available) {
  t.plan(0, `native client not built: ${available.error}`);
} else {
  t.test('against the daemon: answers counted, nothing lost at window 16', async (t) => {
    const daemon = await startDaemon([
      '--listening-ip',
      '127.0.0.1',
      '--no-tcp',
      '--no-tls',
      '--drain-timeout',
      '0',
    ]);
    t.teardown(() => daemon.stop());
    let measuring = 0;
    const r = await runNative(config(daemon.port), () => measuring++);
    t.equal(measuring, 1, 'measurement start announced once');
    t.ok(r.answered > 100, `answered ${r.answered}`);
    t.equal(r.lost, 0, 'nothing lost');
    t.equal(r.errors, 0, 'no error responses');
    t.equal(r.socketErrors, 0, 'no socket errors');
    t.ok(r.sent >= r.answered && r.sent <= r.answered + 16 + 1, `sent ${r.sent} ≈ answered + window`);
    t.ok(r.elapsedMs >= 790 && r.elapsedMs < 1500, `window ${r.elapsedMs} ms`);
    t.ok(r.clientCpuPct > 0 && r.clientCpuPct <= 110, `client CPU ${r.clientCpuPct}%`);
    t.equal(r.requestsPerSec, (r.answered * 1000) / r.elapsedMs);
  });

  t.test('only a matching transaction ID with a sound header counts', async (t) => {
    const { socket, port } = await scripted((req) => [
      Buffer.from('short'),
      response(req, 0x0101, 1), // wrong transaction ID
      response(req, 0x0101, 0, 8), // declares 8 bytes of attributes it does not have
      response(req, 0x0101), // the answer
      response(req, 0x0101), // the same answer again: no longer outstanding
    ]);
    t.teardown(() => socket.close());
    const r = await runNative(config(port, { window: 4, sockets: 1 }), () => {});
    t.ok(r.answered > 50, `answered ${r.answered}`);
    t.equal(r.lost, 0, 'nothing lost');
    t.equal(r.errors, 0);
    // Four unmatched datagrams per answer, give or take the window at each end of the measurement.
    t.ok(Math.abs(r.unmatched - 4 * r.answered) <= 4 * 4 + 4, `unmatched ${r.unmatched}`);
  });

  t.test('a matched response of another type is an error response, not an answer', async (t) => {
    const { socket, port } = await scripted((req) => [response(req, 0x0111)]);
    t.teardown(() => socket.close());
    const r = await runNative(config(port, { window: 4, sockets: 1, durationMs: 400 }), () => {});
    t.equal(r.answered, 0);
    t.ok(r.errors > 50, `errors ${r.errors}`);
    t.equal(r.lost, 0);
  });

  t.test('unanswered requests count as lost; echo expectation with FINGERPRINT', async (t) => {
    const silent = await scripted(() => []);
    t.teardown(() => silent.socket.close());
    const lost = await runNative(
      config(silent.port, { window: 8, sockets: 2, timeoutMs: 50, durationMs: 400 }),
      () => {},
    );
    t.equal(lost.answered, 0);
    t.ok(lost.lost >= 8 * 4, `lost ${lost.lost}`);
    t.equal(lost.lossPct, 100);

    const echo = await scripted((req) => [req]);
    t.teardown(() => echo.socket.close());
    const r = await runNative(
      config(echo.port, { window: 4, sockets: 1, durationMs: 400, expect: 'echo', fingerprint: true }),
      () => {},
    );
    t.ok(r.answered > 50, `echoed ${r.answered}`);
    t.equal(r.lost, 0);
  });

  t.test('bench:binding says which client ran', async (t) => {
    const run = promisify(execFile);
    const { stdout } = await run(
      process.execPath,
      [MAIN, '--smoke', '--targets', 'turnpike-js', '--client', 'native', '--pin', 'off'],
      { timeout: 60_000 },
    );
    t.match(stdout, /^client: native \(BindGen/m);
    t.match(stdout, /^turnpike-js\s+[\d,]+/m);
    const js = await run(
      process.execPath,
      [MAIN, '--smoke', '--targets', 'echo', '--client', 'js', '--pin', 'off'],
      {
        timeout: 60_000,
      },
    );
    t.match(js.stdout, /^client: js \(client\.ts/m);
    t.match(js.stdout, /^echo\s+[\d,]+/m);
  });
}
