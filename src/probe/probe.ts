/**
 * `turnpike probe`: is this TURN server working? One run of what a WebRTC client does, each step
 * timed and each failure put in plain words:
 *
 *   binding       STUN Binding (RFC 8489 §6): the server answers, and the mapped address
 *   allocate      Allocate (RFC 8656 §7) without credentials (the 401 gives realm and nonce), then
 *                 signed with the long-term key; 438 Stale Nonce is retried with the fresh nonce
 *   permission    CreatePermission (§9) for a peer socket the probe opens on a local address
 *   channel-bind  ChannelBind (§11) of channel 0x4000 to that peer
 *   relay         ChannelData to the peer through the relay; the peer echoes it back
 *   release       Refresh with LIFETIME 0 (§8): the allocation is given back
 *
 * The client is turnpike's own (src/client). Requests use MD5 long-term keys without
 * PASSWORD-ALGORITHM, which every TURN server accepts (RFC 5389 clients, browsers). Works against
 * any RFC 5766/8656 server (coturn included). This file holds the report types, the resolve, connect
 * and binding steps; `turn-steps.ts` the TURN ones; `explain.ts` the plain words.
 */
import { lookup } from 'node:dns/promises';
import {
  asFailure,
  buildBindingRequest,
  type ClientTransport,
  readMappedAddress,
  StreamTransport,
  type TransportFailure,
  TurnClient,
  UdpTransport,
} from '../client/index.js';
import { ipVersion } from '../core/ip.js';
import { hostPort } from '../credentials.js';
import { connectProblem } from './explain.js';
import { ask, ms, noAnswerStep, type ProbeRun, probeTurn, show } from './turn-steps.js';
import { formatServerUri, type ServerUri } from './uri.js';

export { explainError } from './explain.js';

export type StepName =
  | 'resolve'
  | 'connect'
  | 'binding'
  | 'allocate'
  | 'permission'
  | 'channel-bind'
  | 'relay'
  | 'release';

export interface StepResult {
  readonly name: StepName;
  readonly ok: boolean;
  /** Round-trip time of the step's (last) exchange, ms. */
  readonly rttMs?: number;
  /** What was found, in plain words. */
  readonly detail: string;
  /** What went wrong, in plain words (failed steps). */
  readonly problem?: string;
  /** What to check or change. */
  readonly hint?: string;
  /** STUN ERROR-CODE of the answer, when the server refused. */
  readonly code?: number;
}

export interface ProbeReport {
  readonly uri: string;
  readonly server: {
    readonly host: string;
    readonly address: string | undefined;
    readonly port: number;
    readonly transport: string;
  };
  readonly ok: boolean;
  readonly steps: readonly StepResult[];
  readonly mappedAddress: string | undefined;
  readonly relayedAddresses: readonly string[];
  readonly realm: string | undefined;
  readonly username: string | undefined;
  readonly peerAddress: string | undefined;
  readonly problems: readonly string[];
  readonly elapsedMs: number;
}

export interface ProbeOptions {
  readonly uri: ServerUri;
  /** Long-term credentials; undefined probes Binding (and shows whether Allocate wants credentials). */
  readonly credentials: { readonly username: string; readonly password: string } | undefined;
  /** Local IP for the peer socket (default: loopback for a loopback relay, else the client's local address). */
  readonly peerAddress?: string;
  /** How long each exchange may take, ms. */
  readonly timeoutMs: number;
  /** First UDP retransmission timeout, ms (RFC 8489 RTO; doubles each time). */
  readonly rtoMs?: number;
  /** Skip TLS certificate checks (turns:). */
  readonly insecure?: boolean;
  /** DNS lookup (tests replace it). */
  readonly resolve?: (host: string) => Promise<string>;
}

/** Runs the probe; never throws for network trouble (that is what it reports). */
export async function runProbe(o: ProbeOptions): Promise<ProbeReport> {
  const started = performance.now();
  const u = o.uri;
  const run: ProbeRun = {
    o,
    steps: [],
    where: `${hostPort(u.host, u.port)} over ${u.transport}`,
    rest: o.credentials !== undefined && /^\d+(:|$)/.test(o.credentials.username),
    client: undefined,
    peer: undefined,
    mapped: undefined,
    relayed: [],
    realm: undefined,
    peerText: undefined,
    bindingSilent: false,
  };
  let address: string | undefined;

  const finish = async (): Promise<ProbeReport> => {
    await run.client?.close();
    await run.peer?.close();
    const steps = run.steps;
    const problems = steps.filter((s) => !s.ok).map((s) => `${s.name}: ${s.problem ?? 'failed'}`);
    return {
      uri: formatServerUri(u),
      server: { host: u.host, address, port: u.port, transport: u.transport },
      ok: problems.length === 0 && steps.length > 0,
      steps,
      mappedAddress: run.mapped,
      relayedAddresses: run.relayed.map(show),
      realm: run.realm,
      username: o.credentials?.username,
      peerAddress: run.peerText,
      problems,
      elapsedMs: ms(performance.now() - started),
    };
  };

  // resolve
  if (ipVersion(u.host) !== 0) address = u.host;
  else {
    try {
      address = await (o.resolve ?? (async (h: string) => (await lookup(h)).address))(u.host);
    } catch (err) {
      run.steps.push({
        name: 'resolve',
        ok: false,
        detail: `cannot resolve ${u.host}`,
        problem: `cannot resolve ${u.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        hint: 'check the host name and this machine’s DNS',
      });
      return finish();
    }
  }
  run.where = `${hostPort(address, u.port)} over ${u.transport}`;

  // connect
  const transport = await open(o, address);
  if (!('kind' in transport)) {
    run.steps.push({
      name: 'connect',
      ok: false,
      detail: run.where,
      ...connectProblem(transport, run.where),
    });
    return finish();
  }
  const client = new TurnClient(transport, {
    credentials: o.credentials,
    // Over UDP, retransmit on the RFC 8489 schedule until the step's timeout, whatever the count.
    retransmit: { rtoMs: o.rtoMs ?? 250, transmissions: Number.POSITIVE_INFINITY, timeoutMs: o.timeoutMs },
    fingerprint: true,
    staleNonceRetries: 2,
  });
  run.client = client;
  if (u.transport !== 'udp') {
    run.steps.push({
      name: 'connect',
      ok: true,
      detail: `connected to ${run.where} from ${hostPort(transport.localAddress, transport.localPort)}`,
    });
  }

  // binding
  const binding = await ask(client.exchange(buildBindingRequest()));
  if ('kind' in binding) {
    run.steps.push(noAnswerStep(run, binding, 'binding'));
    // A refused port or a dead stream ends the probe; plain silence may be a server without STUN
    // (coturn --no-stun): Allocate still gets its chance.
    if (binding.kind === 'error') return finish();
    run.bindingSilent = true;
  } else if (!binding.ok) {
    run.steps.push({
      name: 'binding',
      ok: false,
      rttMs: binding.rttMs,
      code: binding.code ?? 0,
      detail: 'Binding refused',
      problem: `the server answered Binding with error ${binding.code}`,
    });
  } else {
    const m = readMappedAddress(binding.view);
    run.mapped = m === undefined ? undefined : show(m);
    run.steps.push({
      name: 'binding',
      ok: m !== undefined,
      rttMs: binding.rttMs,
      detail: m === undefined ? 'answered without a mapped address' : `mapped address ${run.mapped}`,
      ...(m === undefined ? { problem: 'the Binding success has no (XOR-)MAPPED-ADDRESS' } : {}),
    });
  }
  if (u.turn) await probeTurn(run);
  return finish();
}

/** Opens the transport of the URI, or says why it could not. */
async function open(o: ProbeOptions, address: string): Promise<ClientTransport | TransportFailure> {
  const u = o.uri;
  try {
    if (u.transport === 'udp') return await UdpTransport.open({ address, port: u.port, connect: true });
    return await StreamTransport.open({
      kind: u.transport,
      address,
      port: u.port,
      serverName: u.host,
      insecure: o.insecure ?? false,
      timeoutMs: o.timeoutMs,
    });
  } catch (err) {
    return asFailure(err as NodeJS.ErrnoException);
  }
}
