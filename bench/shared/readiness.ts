/**
 * The readiness probe both benchmarks use: after starting a server, send it Binding requests until it
 * answers one, so that no measurement starts before the server is listening.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { Child } from './processes.js';
import {
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  bindingRequestBytes,
  isStunHeader,
  readXorMappedAddress,
  writeBindingRequest,
} from './stun.js';

/** What answers a Binding request: a STUN server's success response, or an echo loop's own request. */
export type Expect = 'response' | 'echo';

/** Outcome of the readiness probe. */
export type ProbeResult =
  | { readonly ok: true; readonly warning: string | undefined }
  | { readonly ok: false; readonly reason: string };

/**
 * Sends a Binding request every 100 ms until the server answers one, the server exits, or `timeoutMs`
 * passes. For STUN servers it also checks that the answer is a success response whose XOR-MAPPED-ADDRESS
 * is the probe socket's own address (a mismatch is reported as a warning, not a failure).
 */
export function waitUntilAnswering(
  port: number,
  expect: Expect,
  server: Child,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const sentIds = new Set<string>();
    let interval: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearInterval(interval);
      clearTimeout(deadline);
      socket.close();
      resolve(result);
    };
    void server.exited.then((status) =>
      finish({
        ok: false,
        reason: `exited before answering (code ${status.code}, signal ${status.signal})`,
      }),
    );
    socket.on('error', () => {
      // Before the server binds, the kernel may report the port unreachable; keep probing.
    });
    socket.on('message', (msg) => {
      if (!isStunHeader(msg) || !sentIds.has(msg.subarray(8, 20).toString('hex'))) return;
      const type = msg.readUInt16BE(0);
      if (expect === 'echo') {
        if (type === BINDING_REQUEST) finish({ ok: true, warning: undefined });
        return;
      }
      if (type === BINDING_ERROR) {
        finish({ ok: false, reason: 'answered the Binding request with an error response' });
        return;
      }
      if (type !== BINDING_SUCCESS) return;
      const mapped = readXorMappedAddress(msg);
      const self = socket.address();
      const warning =
        mapped === undefined
          ? 'Binding success response has no valid XOR-MAPPED-ADDRESS'
          : mapped.address !== self.address || mapped.port !== self.port
            ? `XOR-MAPPED-ADDRESS ${mapped.address}:${mapped.port} is not the client ${self.address}:${self.port}`
            : undefined;
      finish({ ok: true, warning });
    });
    const send = (): void => {
      const id = randomBytes(12);
      sentIds.add(id.toString('hex'));
      const request = Buffer.allocUnsafe(bindingRequestBytes(false));
      writeBindingRequest(request, id.readInt32BE(0), id.readInt32BE(4), id.readInt32BE(8), false);
      socket.send(request, port, '127.0.0.1');
    };
    socket.bind(0, '127.0.0.1', () => {
      send();
      interval = setInterval(send, 100);
      deadline = setTimeout(
        () => finish({ ok: false, reason: `did not answer a Binding request within ${timeoutMs} ms` }),
        timeoutMs,
      );
    });
  });
}
