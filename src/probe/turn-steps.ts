/**
 * The probe's TURN steps, after Binding: allocate (the 401 round by hand, to tell "TURN disabled",
 * "not a long-term credential server" and "credentials needed" apart), permission and channel-bind
 * for a local echo peer, the relay round trip, and release. Each pushes one StepResult.
 */
import { randomBytes } from 'node:crypto';
import {
  addUdpTransport,
  type Body,
  channelBindBody,
  type DataEvent,
  encodeChannelData,
  Inbox,
  permissionBody,
  readAllocateSuccess,
  refreshBody,
  type TransactionOutcome,
  type TurnClient,
  UdpPeer,
} from '../client/index.js';
import { AttrType, CHANNEL_MIN, Method } from '../core/constants.js';
import { ipVersion, parseIp } from '../core/ip.js';
import { readBytes, readString, type TransportAddress } from '../core/stun/attrs.js';
import { TURN_DISABLED_REASON } from '../core/turn/service.js';
import { hostPort } from '../credentials.js';
import { type Answer, type NoAnswer, refused, silenceProblem } from './explain.js';
import type { ProbeOptions, StepName, StepResult } from './probe.js';

/** The state of one probe run, filled in step by step. */
export interface ProbeRun {
  readonly o: ProbeOptions;
  readonly steps: StepResult[];
  /** "address:port over transport", for messages. */
  where: string;
  /** The user name looks like TURN REST credentials (for the hints). */
  readonly rest: boolean;
  client: TurnClient | undefined;
  peer: UdpPeer | undefined;
  mapped: string | undefined;
  relayed: TransportAddress[];
  realm: string | undefined;
  peerText: string | undefined;
  /** Binding went unanswered (a server without STUN may still answer Allocate). */
  bindingSilent: boolean;
}

export const ms = (n: number): number => Math.round(n * 100) / 100;
export const show = (a: TransportAddress): string => hostPort(a.address, a.port);

const isLoopback = (ip: string): boolean => {
  const b = parseIp(ip);
  if (b === undefined) return false;
  if (b.length === 4) return b[0] === 127;
  return b.every((x, i) => (i === 15 ? x === 1 : x === 0));
};

/** An exchange's answer with its rounded round-trip time, or how it ended without one. */
export async function ask(outcome: Promise<TransactionOutcome>): Promise<Answer | NoAnswer> {
  const out = await outcome;
  return out.kind === 'response' ? { ...out.response, rttMs: ms(out.rttMs) } : out;
}

export function noAnswerStep(run: ProbeRun, out: NoAnswer, step: StepName): StepResult {
  return { name: step, ok: false, detail: run.where, ...silenceProblem(out, run.where, run.o.timeoutMs) };
}

/** Allocate, then (with a relay address) permission, channel-bind, relay and release. */
export async function probeTurn(run: ProbeRun): Promise<void> {
  if (!(await allocate(run))) return;
  const c = run.client!;
  const relay = run.relayed[0]!;
  const release = (): Promise<void> => releaseStep(run);

  // The peer: on loopback for a loopback relay, else on the address this machine reaches the server from.
  const family = ipVersion(relay.address);
  let peerIp = run.o.peerAddress;
  const local = c.transport.localAddress;
  if (peerIp === undefined) {
    if (isLoopback(relay.address)) peerIp = family === 6 ? '::1' : '127.0.0.1';
    else if (ipVersion(local) === family) peerIp = local;
  }
  if (peerIp === undefined || ipVersion(peerIp) !== family) {
    run.steps.push({
      name: 'permission',
      ok: false,
      detail: 'no peer',
      problem: `no local IPv${family} address for a peer socket (the relay address ${show(relay)} is IPv${family})`,
      hint: `give --peer-address with an IPv${family} address of this machine`,
    });
    return release();
  }
  let peer: UdpPeer;
  try {
    peer = await UdpPeer.bind(peerIp);
  } catch (err) {
    run.steps.push({
      name: 'permission',
      ok: false,
      detail: 'no peer',
      problem: `cannot open the peer socket on ${peerIp}: ${(err as Error).message}`,
      hint: '--peer-address must be an address of this machine',
    });
    return release();
  }
  run.peer = peer;
  peer.echo = true;
  const p = peer.address;
  run.peerText = hostPort(p.address, p.port);
  const context = { peer: p.address, realm: run.realm, rest: run.rest };

  // permission, channel-bind: a refusal still releases the allocation; silence ends the probe.
  const channel = CHANNEL_MIN;
  const signedStep = async (step: StepName, body: Body, method: number, detail: string): Promise<boolean> => {
    const a = await ask(c.transact(method, body));
    if ('kind' in a) {
      run.steps.push(noAnswerStep(run, a, step));
      return false;
    }
    if (!a.ok) {
      run.steps.push(refused(a, step, context));
      await release();
      return false;
    }
    run.steps.push({ name: step, ok: true, rttMs: a.rttMs, detail, ...integrityProblem(c, a) });
    return true;
  };
  const permitted = `peer ${p.address} permitted`;
  if (!(await signedStep('permission', permissionBody([p]), Method.CreatePermission, permitted))) return;
  const bound = `channel 0x${channel.toString(16)} bound to ${run.peerText}`;
  if (!(await signedStep('channel-bind', channelBindBody(channel, p), Method.ChannelBind, bound))) return;

  await relayStep(run, c, peer, channel, relay);
  return release();
}

/** The 401 round by hand, then the signed Allocate; false when the probe ends here. */
async function allocate(run: ProbeRun): Promise<boolean> {
  const c = run.client!;
  const o = run.o;
  // First without credentials, as clients do.
  const first = await ask(
    c.exchange(c.buildRequest(Method.Allocate, addUdpTransport, { credentials: false })),
  );
  if ('kind' in first) {
    run.steps.push(
      run.bindingSilent
        ? {
            name: 'allocate',
            ok: false,
            detail: run.where,
            problem: `no answer from ${run.where} to Binding nor Allocate within ${o.timeoutMs} ms`,
            hint: 'is the server running, on this address and port, and is the port open in firewalls (UDP and TCP are separate)?',
          }
        : noAnswerStep(run, first, 'allocate'),
    );
    return false;
  }
  const fail = (detail: string, problem: string, hint?: string): false => {
    run.steps.push({
      name: 'allocate',
      ok: false,
      rttMs: first.rttMs,
      code: 401,
      detail,
      problem,
      ...(hint === undefined ? {} : { hint }),
    });
    return false;
  };
  let allocation: Answer | undefined;
  let challengeRtt: number | undefined;
  if (first.ok) {
    allocation = first; // a server without authentication
  } else if (first.code === 401 && first.reason === TURN_DISABLED_REASON) {
    // turnpike's answer while it has no users and no secrets: TURN cannot work, whatever the credentials.
    return fail(
      TURN_DISABLED_REASON,
      'TURN is disabled on this server (no users or secrets configured)',
      'configure a user (user = name:password) or use-auth-secret with static-auth-secret on the server, then reload it (SIGHUP)',
    );
  } else if (first.code === 401) {
    challengeRtt = first.rttMs;
    run.realm = readString(first.view, AttrType.Realm);
    if (run.realm === undefined || readBytes(first.view, AttrType.Nonce) === undefined) {
      return fail(
        'challenge without REALM or NONCE',
        'the 401 challenge lacks REALM or NONCE: not a long-term credential server',
      );
    }
    if (c.auth === undefined) {
      return fail(
        `realm "${run.realm}" asks for credentials`,
        'the server wants credentials for Allocate and none were given',
        'give --user and --password, or --secret (and --userid) for TURN REST credentials',
      );
    }
    c.auth.learn(first.view);
  } else {
    run.steps.push(refused(first, 'allocate', { realm: run.realm, rest: run.rest }));
    return false;
  }

  if (allocation === undefined) {
    const second = await ask(c.transact(Method.Allocate, addUdpTransport));
    if ('kind' in second) {
      run.steps.push(noAnswerStep(run, second, 'allocate'));
      return false;
    }
    if (!second.ok) {
      run.steps.push(refused(second, 'allocate', { realm: run.realm, rest: run.rest }));
      return false;
    }
    allocation = second;
  }
  const got = readAllocateSuccess(allocation.view);
  run.relayed = [...got.relayedAll];
  if (got.mapped !== undefined && run.mapped === undefined) run.mapped = show(got.mapped);
  const relay = run.relayed[0];
  const bad = integrityProblem(c, allocation);
  run.steps.push({
    name: 'allocate',
    ok: relay !== undefined && bad.problem === undefined,
    rttMs: allocation.rttMs,
    detail:
      relay === undefined
        ? 'success without XOR-RELAYED-ADDRESS'
        : `relay address ${run.relayed.map(show).join(', ')}` +
          (got.lifetimeSec === undefined ? '' : `, lifetime ${got.lifetimeSec} s`) +
          (run.realm === undefined ? ', no authentication' : `, realm "${run.realm}"`) +
          (challengeRtt === undefined ? '' : ` (401 challenge in ${challengeRtt} ms)`),
    ...(relay === undefined ? { problem: 'the Allocate success carries no relay address' } : bad),
  });
  return relay !== undefined && bad.problem === undefined;
}

/** A signed answer whose MESSAGE-INTEGRITY does not verify with our key. */
function integrityProblem(c: TurnClient, a: Answer): Partial<StepResult> {
  return c.auth?.canSign === true && a.view.integrityAt >= 0 && a.integrity === undefined
    ? {
        problem:
          'the response’s MESSAGE-INTEGRITY does not verify with the key derived from these credentials',
        hint: 'another server may be answering, or the realm changed',
      }
    : {};
}

/** ChannelData to the peer and its echo back, a few tries (UDP may lose one). */
async function relayStep(
  run: ProbeRun,
  c: TurnClient,
  peer: UdpPeer,
  channel: number,
  relay: TransportAddress,
): Promise<void> {
  const timeoutMs = run.o.timeoutMs;
  const received: { data: Buffer; from: string }[] = [];
  peer.onPacket = (pkt) => received.push({ data: pkt.data, from: hostPort(pkt.from.address, pkt.from.port) });
  const echoes = new Inbox<DataEvent>(64);
  const unsubscribe = c.onData((e) => {
    if (e.kind === 'channel') echoes.push(e);
  });
  const payload = Buffer.concat([Buffer.from('turnpike-probe:'), randomBytes(16)]);
  const frame = encodeChannelData(channel, payload, run.o.uri.transport !== 'udp');
  const deadline = performance.now() + timeoutMs;
  let echoed: number | undefined;
  for (let attempt = 0; attempt < 3 && echoed === undefined && performance.now() < deadline; attempt++) {
    const sentAt = performance.now();
    c.transport.send(frame);
    const wait = Math.max(1, Math.min(deadline - sentAt, timeoutMs / 3));
    for (;;) {
      const left = sentAt + wait - performance.now();
      if (left <= 0) break;
      const got = await echoes.next(left);
      if (got === undefined) break;
      if (got.kind === 'channel' && got.channel === channel && got.data.equals(payload)) {
        echoed = ms(performance.now() - sentAt);
        break;
      }
    }
  }
  unsubscribe();
  const seen = received.find((r) => r.data.equals(payload));
  const relayText = show(relay);
  const peerText = run.peerText!;
  const p = peer.address;
  if (echoed !== undefined) {
    const via =
      seen === undefined || seen.from === relayText
        ? ''
        : ` (the peer saw it come from ${seen.from}, not ${relayText})`;
    run.steps.push({
      name: 'relay',
      ok: true,
      rttMs: echoed,
      detail: `ChannelData round trip through ${relayText} to peer ${peerText}${via}`,
    });
  } else if (seen === undefined) {
    run.steps.push({
      name: 'relay',
      ok: false,
      detail: `peer ${peerText} got nothing`,
      problem: `data sent on channel 0x${channel.toString(16)} never reached the peer ${peerText} within ${timeoutMs} ms`,
      hint: isLoopback(p.address)
        ? 'the server accepted the channel but did not relay: see its log'
        : `the relay may not reach ${p.address} (a NAT or firewall between them); try --peer-address`,
    });
  } else {
    run.steps.push({
      name: 'relay',
      ok: false,
      detail: `peer ${peerText} got the data from ${seen.from}`,
      problem: `the peer received the data from ${seen.from} but its answer did not come back through the relay`,
      hint: `the relay address ${relayText} may not be reachable from the peer (external-ip / relay-ip settings, firewall on the relay port range)`,
    });
  }
}

/** Refresh with LIFETIME 0 (RFC 8656 §8): the allocation is given back. */
async function releaseStep(run: ProbeRun): Promise<void> {
  const out = await ask(run.client!.transact(Method.Refresh, refreshBody(0)));
  if ('kind' in out) {
    run.steps.push(noAnswerStep(run, out, 'release'));
    return;
  }
  if (!out.ok) {
    run.steps.push(refused(out, 'release', { realm: run.realm, rest: run.rest }));
    return;
  }
  run.steps.push({
    name: 'release',
    ok: true,
    rttMs: out.rttMs,
    detail: 'allocation deleted (Refresh, LIFETIME 0)',
  });
}
