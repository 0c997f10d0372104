/**
 * The servers the Binding benchmark measures, how each is launched on 127.0.0.1, and the readiness probe
 * that waits until a freshly started server answers a Binding request.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { coturnLaunch, coturnStatus, type Launch, turnpikeLaunch } from '../shared/servers.js';
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
import type { Expect } from './types.js';

export const TARGET_NAMES = ['echo', 'echo-literal', 'turnpike', 'coturn', 'coturn-mt'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
export const DEFAULT_TARGETS: readonly TargetName[] = ['echo', 'turnpike', 'coturn'];

export function isTargetName(name: string): name is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(name);
}

export interface Target {
  readonly name: TargetName;
  /** One line for the report: what runs, with which threads. */
  readonly description: string;
  readonly expect: Expect;
  /** Single-threaded servers are pinned to the server CPU; coturn-mt keeps its threads free. */
  readonly pinnable: boolean;
  readonly readyTimeoutMs: number;
  /** Why the target cannot run here (binary missing), or undefined when it can. */
  readonly skipReason: string | undefined;
  /** `workDir` is a private temporary directory for pid files and databases. */
  launch(port: number, workDir: string): Launch;
}

export interface TargetOptions {
  readonly repoRoot: string;
  /** Compiled benchmark directory (dist/bench/binding). */
  readonly benchDir: string;
  readonly turnpikeBin: string;
  readonly coturnBin: string;
  readonly cpuCount: number;
}

/** coturn as a pure STUN server: no TURN, so no relay ports or credentials. */
const STUN_ONLY = ['--stun-only'];

export function buildTargets(options: TargetOptions): Map<TargetName, Target> {
  const node = process.execPath;
  const echoScript = join(options.benchDir, 'echo-server.js');
  const coturn = coturnStatus(options.coturnBin);
  const targets: Target[] = [
    {
      name: 'echo',
      description: 'bare node:dgram echo loop (ceiling for a pure-JS server)',
      expect: 'echo',
      pinnable: true,
      readyTimeoutMs: 10_000,
      skipReason: existsSync(echoScript) ? undefined : `${echoScript} missing (run npm run build)`,
      launch: (port) => ({ command: node, args: [echoScript, String(port)] }),
    },
    {
      name: 'echo-literal',
      description: 'node:dgram echo loop with a synchronous IP-literal lookup, as turnpike sends',
      expect: 'echo',
      pinnable: true,
      readyTimeoutMs: 10_000,
      skipReason: existsSync(echoScript) ? undefined : `${echoScript} missing (run npm run build)`,
      launch: (port) => ({ command: node, args: [echoScript, String(port), '--literal-lookup'] }),
    },
    {
      name: 'turnpike',
      description: `turnpike (${options.turnpikeBin})`,
      expect: 'response',
      pinnable: true,
      readyTimeoutMs: 15_000,
      skipReason: existsSync(options.turnpikeBin) ? undefined : `${options.turnpikeBin} missing`,
      launch: (port) => turnpikeLaunch(options.turnpikeBin, port),
    },
    {
      name: 'coturn',
      description: `${coturn.label} --stun-only --relay-threads=1 (one UDP thread)`,
      expect: 'response',
      pinnable: true,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, workDir) => coturnLaunch(options.coturnBin, port, workDir, 1, STUN_ONLY),
    },
    {
      name: 'coturn-mt',
      description: `${coturn.label} --stun-only, default relay threads (${options.cpuCount} here), unpinned`,
      expect: 'response',
      pinnable: false,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, workDir) => coturnLaunch(options.coturnBin, port, workDir, undefined, STUN_ONLY),
    },
  ];
  return new Map(targets.map((t) => [t.name, t]));
}

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
