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
 * The client is built from turnpike's own codec (StunWriter, decodeStun, the attribute readers,
 * longTermKey). Requests use MD5 long-term keys without PASSWORD-ALGORITHM, which every TURN server
 * accepts (RFC 5389 clients, browsers). Works against any RFC 5766/8656 server (coturn included).
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { encodeChannelData } from '../core/channel-data.js';
import { AttrType, CHANNEL_MIN, Class, Method, Transport } from '../core/constants.js';
import { ipVersion, parseIp } from '../core/ip.js';
import {
  readAddress,
  readAddresses,
  readBytes,
  readErrorCode,
  readString,
  readUint32,
  type TransportAddress,
} from '../core/stun/attrs.js';
import { decodeStun, type StunView } from '../core/stun/decode.js';
import { StunWriter } from '../core/stun/encode.js';
import { longTermKey, verifyMessageIntegrity } from '../core/stun/integrity.js';
import { TURN_DISABLED_REASON } from '../core/turn/service.js';
import { hostPort } from '../credentials.js';
import { type Outcome, ProbeConnection } from './transport.js';
import { formatServerUri, type ServerUri } from './uri.js';

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

const ms = (n: number): number => Math.round(n * 100) / 100;
const show = (a: TransportAddress): string => hostPort(a.address, a.port);

const isLoopback = (ip: string): boolean => {
  const b = parseIp(ip);
  if (b === undefined) return false;
  if (b.length === 4) return b[0] === 127;
  return b.every((x, i) => (i === 15 ? x === 1 : x === 0));
};

/** Plain words for an ERROR-CODE a TURN server sent, and what to do about it. */
export function explainError(
  code: number,
  step: StepName,
  context: { peer?: string | undefined; realm?: string | undefined; rest?: boolean },
): { problem: string; hint?: string } {
  switch (code) {
    case 300:
      return {
        problem: '300 Try Alternate: the server redirects new allocations elsewhere (it is draining)',
        hint: 'probe the alternate server, or wait for this one to restart',
      };
    case 400:
      return { problem: `400 Bad Request: the server could not parse the ${step} request` };
    case 401:
      return {
        problem:
          'credentials rejected: the server answered 401 Unauthenticated again after the credentials were sent',
        hint: context.rest
          ? 'check the shared secret (static-auth-secret), that the server has use-auth-secret on, that both clocks are right (the user name holds the expiry), and that the user id is not revoked'
          : `check the user name and password${context.realm === undefined ? '' : ` for realm "${context.realm}"`} (a user configured with another realm has another key)`,
      };
    case 403:
      return {
        problem: `403 Forbidden: the server refuses ${context.peer === undefined ? 'the peer' : `peer ${context.peer}`} (its peer policy denies this address)`,
        hint: `loopback and private addresses are denied by default: allow the peer with allowed-peer-ip=${context.peer ?? '<ip>'} (turnpike and coturn; coturn also has --allow-loopback-peers), or probe with --peer-address set to a public address of this machine`,
      };
    case 420:
      return { problem: '420 Unknown Attribute: the server does not understand an attribute the probe sent' };
    case 437:
      return {
        problem:
          '437 Allocation Mismatch: this client address already has an allocation, or has none any more',
        hint: 'run the probe again (it uses a new local port each time)',
      };
    case 438:
      return {
        problem: '438 Stale Nonce: the server kept refusing its own nonce',
        hint: 'check that the server clock is steady and that only one server answers on this address',
      };
    case 440:
      return { problem: '440 Address Family not Supported: the server has no relay address of this family' };
    case 441:
      return { problem: '441 Wrong Credentials: the request used other credentials than the allocation' };
    case 442:
      return { problem: '442 Unsupported Transport Protocol: the server does not relay UDP' };
    case 443:
      return { problem: '443 Peer Address Family Mismatch: the peer address family differs from the relay' };
    case 486:
      return {
        problem:
          '486 Allocation Quota Reached: this user already has as many allocations as user-quota allows',
        hint: 'raise user-quota, or wait for old allocations to expire',
      };
    case 500:
      return {
        problem: '500 Server Error: the server failed while handling the request',
        hint: 'see its log',
      };
    case 508:
      return step === 'allocate'
        ? {
            problem:
              '508 Insufficient Capacity: the server has no free relay port, is at total-quota, or is draining',
            hint: 'check min-port/max-port (the relay port range), total-quota, and whether the server is shutting down',
          }
        : { problem: `508 Insufficient Capacity: the server refused the ${step} request (limit reached)` };
    default:
      return { problem: `the server refused the ${step} request with error ${code}` };
  }
}

/** A datagram the peer socket received. */
interface PeerPacket {
  readonly data: Buffer;
  readonly from: string;
}

/** The peer: a UDP socket that echoes every datagram back to where it came from. */
class EchoPeer {
  readonly socket: UdpSocket;
  readonly received: PeerPacket[] = [];
  constructor(socket: UdpSocket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      this.received.push({ data: Buffer.from(msg), from: hostPort(rinfo.address, rinfo.port) });
      socket.send(msg, rinfo.port, rinfo.address);
    });
    socket.on('error', () => {
      // ICMP errors from the relay side: the round trip shows what got through.
    });
  }

  static async bind(address: string): Promise<EchoPeer | string> {
    const socket = createSocket(ipVersion(address) === 6 ? 'udp6' : 'udp4');
    return new Promise((resolve) => {
      socket.once('error', (err) => {
        socket.close();
        resolve(err.message);
      });
      socket.bind(0, address, () => {
        socket.removeAllListeners('error');
        resolve(new EchoPeer(socket));
      });
    });
  }

  get address(): { address: string; port: number } {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  close(): void {
    this.socket.close();
  }
}

interface Answer {
  readonly view: StunView;
  readonly success: boolean;
  readonly code: number | undefined;
  readonly rttMs: number;
}

/** Runs the probe; never throws for network trouble (that is what it reports). */
export async function runProbe(o: ProbeOptions): Promise<ProbeReport> {
  const started = performance.now();
  const steps: StepResult[] = [];
  const u = o.uri;
  const rest = o.credentials !== undefined && /^\d+(:|$)/.test(o.credentials.username);
  let address: string | undefined;
  let mapped: string | undefined;
  let relayed: TransportAddress[] = [];
  let realm: string | undefined;
  let peerText: string | undefined;
  let conn: ProbeConnection | undefined;
  let peer: EchoPeer | undefined;
  const where = (): string => `${hostPort(address ?? u.host, u.port)} over ${u.transport}`;

  const finish = (): ProbeReport => {
    conn?.close();
    peer?.close();
    const problems = steps.filter((s) => !s.ok).map((s) => `${s.name}: ${s.problem ?? 'failed'}`);
    return {
      uri: formatServerUri(u),
      server: { host: u.host, address, port: u.port, transport: u.transport },
      ok: problems.length === 0 && steps.length > 0,
      steps,
      mappedAddress: mapped,
      relayedAddresses: relayed.map(show),
      realm,
      username: o.credentials?.username,
      peerAddress: peerText,
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
      steps.push({
        name: 'resolve',
        ok: false,
        detail: `cannot resolve ${u.host}`,
        problem: `cannot resolve ${u.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        hint: 'check the host name and this machine’s DNS',
      });
      return finish();
    }
  }

  // connect
  const opened = await ProbeConnection.open({
    transport: u.transport,
    address,
    port: u.port,
    serverName: u.host,
    timeoutMs: o.timeoutMs,
    rtoMs: o.rtoMs ?? 250,
    insecure: o.insecure ?? false,
  });
  if (!(opened instanceof ProbeConnection)) {
    steps.push({ name: 'connect', ok: false, detail: where(), ...connectProblem(opened, where()) });
    return finish();
  }
  conn = opened;
  const c = conn;
  if (u.transport !== 'udp') {
    steps.push({
      name: 'connect',
      ok: true,
      detail: `connected to ${where()} from ${hostPort(c.localAddress, c.localPort)}`,
    });
  }

  const exchange = async (raw: Buffer, method: number): Promise<Answer | Outcome> => {
    const out = await c.request(raw, o.timeoutMs);
    if (out.kind !== 'response') return out;
    const d = decodeStun(out.buf);
    if (!d.ok || d.view.method !== method || (d.view.cls !== Class.Success && d.view.cls !== Class.Error)) {
      return { kind: 'error', code: 'EPROTO', message: 'the answer is not a STUN response to the request' };
    }
    return {
      view: d.view,
      success: d.view.cls === Class.Success,
      code: d.view.cls === Class.Error ? (readErrorCode(d.view)?.code ?? 0) : undefined,
      rttMs: ms(out.rttMs),
    };
  };
  const noAnswer = (out: Outcome, step: StepName): StepResult => ({
    name: step,
    ok: false,
    detail: where(),
    ...silenceProblem(out, where(), o.timeoutMs),
  });

  // binding
  const binding = await exchange(
    new StunWriter(64).start(Method.Binding, Class.Request, randomBytes(12)).finish(),
    Method.Binding,
  );
  let bindingSilent = false;
  if ('kind' in binding) {
    steps.push(noAnswer(binding, 'binding'));
    // A refused port or a dead stream ends the probe; plain silence may be a server without STUN
    // (coturn --no-stun): Allocate still gets its chance.
    if (binding.kind === 'error') return finish();
    bindingSilent = true;
  } else if (!binding.success) {
    steps.push({
      name: 'binding',
      ok: false,
      rttMs: binding.rttMs,
      code: binding.code ?? 0,
      detail: 'Binding refused',
      problem: `the server answered Binding with error ${binding.code}`,
    });
  } else {
    const m =
      readAddress(binding.view, AttrType.XorMappedAddress) ??
      readAddress(binding.view, AttrType.MappedAddress);
    mapped = m === undefined ? undefined : show(m);
    steps.push({
      name: 'binding',
      ok: m !== undefined,
      rttMs: binding.rttMs,
      detail: m === undefined ? 'answered without a mapped address' : `mapped address ${mapped}`,
      ...(m === undefined ? { problem: 'the Binding success has no (XOR-)MAPPED-ADDRESS' } : {}),
    });
  }
  if (!u.turn) return finish();

  // allocate: first without credentials, as clients do
  let key: Buffer | undefined;
  let nonce: Buffer | undefined;
  const allocateBody = (w: StunWriter): void => {
    w.addLeadingByte(AttrType.RequestedTransport, Transport.UDP);
  };
  const first = await exchange(request(Method.Allocate, allocateBody), Method.Allocate);
  if ('kind' in first) {
    steps.push(
      bindingSilent
        ? {
            name: 'allocate',
            ok: false,
            detail: where(),
            problem: `no answer from ${where()} to Binding nor Allocate within ${o.timeoutMs} ms`,
            hint: 'is the server running, on this address and port, and is the port open in firewalls (UDP and TCP are separate)?',
          }
        : noAnswer(first, 'allocate'),
    );
    return finish();
  }
  let allocation: Answer | undefined;
  let challengeRtt: number | undefined;
  if (first.success) {
    allocation = first; // a server without authentication
  } else if (first.code === 401 && readErrorCode(first.view)?.reason === TURN_DISABLED_REASON) {
    // turnpike's answer while it has no users and no secrets: TURN cannot work, whatever the credentials.
    steps.push({
      name: 'allocate',
      ok: false,
      rttMs: first.rttMs,
      code: 401,
      detail: TURN_DISABLED_REASON,
      problem: 'TURN is disabled on this server (no users or secrets configured)',
      hint: 'configure a user (user = name:password) or use-auth-secret with static-auth-secret on the server, then reload it (SIGHUP)',
    });
    return finish();
  } else if (first.code === 401) {
    challengeRtt = first.rttMs;
    realm = readString(first.view, AttrType.Realm);
    const n = readBytes(first.view, AttrType.Nonce);
    nonce = n === undefined ? undefined : Buffer.from(n);
    if (realm === undefined || nonce === undefined) {
      steps.push({
        name: 'allocate',
        ok: false,
        rttMs: first.rttMs,
        code: 401,
        detail: 'challenge without REALM or NONCE',
        problem: 'the 401 challenge lacks REALM or NONCE: not a long-term credential server',
      });
      return finish();
    }
    if (o.credentials === undefined) {
      steps.push({
        name: 'allocate',
        ok: false,
        rttMs: first.rttMs,
        code: 401,
        detail: `realm "${realm}" asks for credentials`,
        problem: 'the server wants credentials for Allocate and none were given',
        hint: 'give --user and --password, or --secret (and --userid) for TURN REST credentials',
      });
      return finish();
    }
    key = longTermKey(o.credentials.username, realm, o.credentials.password, 'md5');
  } else {
    steps.push(refused(first, 'allocate', { realm, rest }));
    return finish();
  }

  /** Signed request: attributes, then USERNAME, REALM, NONCE, MESSAGE-INTEGRITY, FINGERPRINT. */
  function request(method: number, body: (w: StunWriter) => void): Buffer {
    const w = new StunWriter(256).start(method, Class.Request, randomBytes(12));
    body(w);
    if (key !== undefined && nonce !== undefined && realm !== undefined && o.credentials !== undefined) {
      w.addString(AttrType.Username, o.credentials.username);
      w.addString(AttrType.Realm, realm);
      w.addBytes(AttrType.Nonce, nonce);
      w.addMessageIntegrity(key);
    }
    w.addFingerprint();
    return w.finish();
  }

  /** A signed exchange; a 438 (stale nonce) is retried with the new nonce, twice at most. */
  async function signed(method: number, body: (w: StunWriter) => void): Promise<Answer | Outcome> {
    let answer = await exchange(request(method, body), method);
    for (let retry = 0; retry < 2 && !('kind' in answer) && answer.code === 438; retry++) {
      const n = readBytes(answer.view, AttrType.Nonce);
      if (n === undefined) break;
      nonce = Buffer.from(n);
      answer = await exchange(request(method, body), method);
    }
    return answer;
  }

  const integrityProblem = (a: Answer): Partial<StepResult> =>
    key !== undefined && a.view.integrityAt >= 0 && !verifyMessageIntegrity(a.view, key)
      ? {
          problem:
            'the response’s MESSAGE-INTEGRITY does not verify with the key derived from these credentials',
          hint: 'another server may be answering, or the realm changed',
        }
      : {};

  if (allocation === undefined) {
    const second = await signed(Method.Allocate, allocateBody);
    if ('kind' in second) {
      steps.push(noAnswer(second, 'allocate'));
      return finish();
    }
    if (!second.success) {
      steps.push(refused(second, 'allocate', { realm, rest }));
      return finish();
    }
    allocation = second;
  }
  relayed = readAddresses(allocation.view, AttrType.XorRelayedAddress) ?? [];
  const m = readAddress(allocation.view, AttrType.XorMappedAddress);
  if (m !== undefined && mapped === undefined) mapped = show(m);
  const lifetime = readUint32(allocation.view, AttrType.Lifetime);
  const relay = relayed[0];
  const bad = integrityProblem(allocation);
  steps.push({
    name: 'allocate',
    ok: relay !== undefined && bad.problem === undefined,
    rttMs: allocation.rttMs,
    detail:
      relay === undefined
        ? 'success without XOR-RELAYED-ADDRESS'
        : `relay address ${relayed.map(show).join(', ')}` +
          (lifetime === undefined ? '' : `, lifetime ${lifetime} s`) +
          (realm === undefined ? ', no authentication' : `, realm "${realm}"`) +
          (challengeRtt === undefined ? '' : ` (401 challenge in ${challengeRtt} ms)`),
    ...(relay === undefined ? { problem: 'the Allocate success carries no relay address' } : bad),
  });
  if (relay === undefined || bad.problem !== undefined) return finish();

  // The peer: on loopback for a loopback relay, else on the address this machine reaches the server from.
  const family = ipVersion(relay.address);
  let peerIp = o.peerAddress;
  if (peerIp === undefined) {
    if (isLoopback(relay.address)) peerIp = family === 6 ? '::1' : '127.0.0.1';
    else if (ipVersion(c.localAddress) === family) peerIp = c.localAddress;
  }
  if (peerIp === undefined || ipVersion(peerIp) !== family) {
    steps.push({
      name: 'permission',
      ok: false,
      detail: 'no peer',
      problem: `no local IPv${family} address for a peer socket (the relay address ${show(relay)} is IPv${family})`,
      hint: `give --peer-address with an IPv${family} address of this machine`,
    });
    await release();
    return finish();
  }
  const bound = await EchoPeer.bind(peerIp);
  if (typeof bound === 'string') {
    steps.push({
      name: 'permission',
      ok: false,
      detail: 'no peer',
      problem: `cannot open the peer socket on ${peerIp}: ${bound}`,
      hint: '--peer-address must be an address of this machine',
    });
    await release();
    return finish();
  }
  peer = bound;
  const p = peer.address;
  peerText = hostPort(p.address, p.port);

  // permission
  const perm = await signed(Method.CreatePermission, (w) =>
    w.addAddress(AttrType.XorPeerAddress, p.address, p.port, true),
  );
  if ('kind' in perm) {
    steps.push(noAnswer(perm, 'permission'));
    return finish();
  }
  if (!perm.success) {
    steps.push(refused(perm, 'permission', { peer: p.address, realm, rest }));
    await release();
    return finish();
  }
  steps.push({
    name: 'permission',
    ok: true,
    rttMs: perm.rttMs,
    detail: `peer ${p.address} permitted`,
    ...integrityProblem(perm),
  });

  // channel-bind
  const channel = CHANNEL_MIN;
  const bind = await signed(Method.ChannelBind, (w) => {
    w.addChannelNumber(channel);
    w.addAddress(AttrType.XorPeerAddress, p.address, p.port, true);
  });
  if ('kind' in bind) {
    steps.push(noAnswer(bind, 'channel-bind'));
    return finish();
  }
  if (!bind.success) {
    steps.push(refused(bind, 'channel-bind', { peer: p.address, realm, rest }));
    await release();
    return finish();
  }
  steps.push({
    name: 'channel-bind',
    ok: true,
    rttMs: bind.rttMs,
    detail: `channel 0x${channel.toString(16)} bound to ${peerText}`,
    ...integrityProblem(bind),
  });

  // relay: ChannelData to the peer and its echo back, a few tries (UDP may lose one)
  const payload = Buffer.concat([Buffer.from('turnpike-probe:'), randomBytes(16)]);
  const frame = encodeChannelData(channel, payload, u.transport !== 'udp');
  const deadline = performance.now() + o.timeoutMs;
  let echoed: number | undefined;
  for (let attempt = 0; attempt < 3 && echoed === undefined && performance.now() < deadline; attempt++) {
    const sentAt = performance.now();
    c.write(frame);
    const wait = Math.max(1, Math.min(deadline - sentAt, o.timeoutMs / 3));
    for (;;) {
      const left = sentAt + wait - performance.now();
      if (left <= 0) break;
      const got = await c.nextChannelData(left);
      if (got === undefined) break;
      if (got.readUInt16BE(0) === channel && got.subarray(4).equals(payload)) {
        echoed = ms(performance.now() - sentAt);
        break;
      }
    }
  }
  const seen = peer.received.find((r) => r.data.equals(payload));
  const relayText = show(relay);
  if (echoed !== undefined) {
    const via =
      seen === undefined
        ? ''
        : seen.from === relayText
          ? ''
          : ` (the peer saw it come from ${seen.from}, not ${relayText})`;
    steps.push({
      name: 'relay',
      ok: true,
      rttMs: echoed,
      detail: `ChannelData round trip through ${relayText} to peer ${peerText}${via}`,
    });
  } else if (seen === undefined) {
    steps.push({
      name: 'relay',
      ok: false,
      detail: `peer ${peerText} got nothing`,
      problem: `data sent on channel 0x${channel.toString(16)} never reached the peer ${peerText} within ${o.timeoutMs} ms`,
      hint: isLoopback(p.address)
        ? 'the server accepted the channel but did not relay: see its log'
        : `the relay may not reach ${p.address} (a NAT or firewall between them); try --peer-address`,
    });
  } else {
    steps.push({
      name: 'relay',
      ok: false,
      detail: `peer ${peerText} got the data from ${seen.from}`,
      problem: `the peer received the data from ${seen.from} but its answer did not come back through the relay`,
      hint: `the relay address ${relayText} may not be reachable from the peer (external-ip / relay-ip settings, firewall on the relay port range)`,
    });
  }

  await release();
  return finish();

  async function release(): Promise<void> {
    const out = await signed(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 0));
    if ('kind' in out) {
      steps.push(noAnswer(out, 'release'));
      return;
    }
    if (!out.success) {
      steps.push(refused(out, 'release', { realm, rest }));
      return;
    }
    steps.push({
      name: 'release',
      ok: true,
      rttMs: out.rttMs,
      detail: 'allocation deleted (Refresh, LIFETIME 0)',
    });
  }
}

function refused(
  a: Answer,
  step: StepName,
  context: { peer?: string | undefined; realm?: string | undefined; rest?: boolean },
): StepResult {
  const code = a.code ?? 0;
  const { problem, hint } = explainError(code, step, context);
  const alternate = code === 300 ? readAddress(a.view, AttrType.AlternateServer) : undefined;
  return {
    name: step,
    ok: false,
    rttMs: a.rttMs,
    code,
    detail: `error ${code}`,
    problem: alternate === undefined ? problem : `${problem}: ${show(alternate)}`,
    ...(hint === undefined ? {} : { hint }),
  };
}

function connectProblem(
  f: { code: string; message: string },
  where: string,
): { problem: string; hint: string } {
  switch (f.code) {
    case 'ECONNREFUSED':
      return {
        problem: `connection refused: nothing listens on ${where}`,
        hint: 'is the server running, with this transport enabled, on this port?',
      };
    case 'ETIMEDOUT':
      return { problem: `${f.message} to ${where}`, hint: 'is the port open in firewalls?' };
    default:
      return {
        problem: `cannot connect to ${where}: ${f.message}`,
        hint:
          f.code.startsWith('ERR_TLS') || f.code.includes('CERT')
            ? 'TLS certificate trouble: fix the certificate, or pass --insecure to probe anyway'
            : 'check the address and port',
      };
  }
}

function silenceProblem(out: Outcome, where: string, timeoutMs: number): { problem: string; hint: string } {
  if (out.kind === 'error') {
    if (out.code === 'ECONNREFUSED') {
      return {
        problem: `no answer: nothing listens on ${where} (the host reported the port unreachable)`,
        hint: 'is the server running, with this transport enabled, on this port?',
      };
    }
    return { problem: `no answer from ${where}: ${out.message}`, hint: 'see the server log' };
  }
  return {
    problem: `no answer from ${where} within ${timeoutMs} ms (${out.kind === 'timeout' ? out.transmissions : 1} transmissions)`,
    hint: 'is the server running, on this address and port, and is the port open in firewalls?',
  };
}
