/**
 * The probe's plain words: what an ERROR-CODE, a failed connection or a silent server means, and
 * what to check or change.
 */

import type { TransactionOutcome, TransportFailure, TurnResponse } from '../client/index.js';
import { AttrType } from '../core/constants.js';
import { readAddress } from '../core/stun/attrs.js';
import { hostPort } from '../credentials.js';
import type { StepName, StepResult } from './probe.js';

/** An answer and how long it took, ms. */
export type Answer = TurnResponse & { readonly rttMs: number };

/** How an exchange ended without an answer. */
export type NoAnswer = Exclude<TransactionOutcome, { kind: 'response' }>;

/** Where the step failed, for `refused` and `explainError`. */
export interface ErrorContext {
  peer?: string | undefined;
  realm?: string | undefined;
  rest?: boolean;
}

/** Plain words for an ERROR-CODE a TURN server sent, and what to do about it. */
export function explainError(
  code: number,
  step: StepName,
  context: ErrorContext,
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

/** A failed step for an error response (with the alternate server of a 300). */
export function refused(a: Answer, step: StepName, context: ErrorContext): StepResult {
  const code = a.code ?? 0;
  const { problem, hint } = explainError(code, step, context);
  const alternate = code === 300 ? readAddress(a.view, AttrType.AlternateServer) : undefined;
  return {
    name: step,
    ok: false,
    rttMs: a.rttMs,
    code,
    detail: `error ${code}`,
    problem: alternate === undefined ? problem : `${problem}: ${hostPort(alternate.address, alternate.port)}`,
    ...(hint === undefined ? {} : { hint }),
  };
}

/** A connection that could not be set up. */
export function connectProblem(f: TransportFailure, where: string): { problem: string; hint: string } {
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

/** No answer: a timeout, or a socket error (ICMP unreachable, reset). */
export function silenceProblem(
  out: NoAnswer,
  where: string,
  timeoutMs: number,
): { problem: string; hint: string } {
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
