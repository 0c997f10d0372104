/**
 * Operator endpoints of the HTTP listener, all behind the bearer token (`api-token`):
 *
 *   GET  /ice-servers?userid=…&ttl=…&transport=…   RTCConfiguration with TURN REST credentials
 *        &tag=…                                    a tag in the username, for usage records
 *        &format=rest                              the same credential and TURN URLs as the TURN
 *                                                  REST API draft's {username, password, ttl, uris}
 *   GET  /admin/allocations                        live allocations, with counters
 *   POST /admin/disconnect   {"user": "…"}         deletes a user's allocations (reason 'admin')
 *   POST /admin/revoke       {"userid": "…", "until": <unix s>}
 *                                                  refuses a REST user id until then (no secret
 *                                                  rotation) and deletes its allocations
 *   POST /admin/unrevoke     {"userid": "…"}       lifts a revocation
 *   GET  /admin/revocations                        revocations in force
 *   POST /admin/drain                              what SIGTERM starts: new Allocates are refused
 *                                                  (300/508), /readyz answers 503; the process stays
 *   GET  /test?token=…                             the ICE candidate test page (`test-page` on)
 *
 * Revocations live in memory (a restart forgets them; rotate the secret for anything permanent).
 * Revocations reach the authenticator through the RevocationList the server hands to every
 * Authenticator it builds (at start and on each SIGHUP).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config/types.js';
import { parseRestUsername } from '../core/auth/rest-secret.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { AllocationInfo as LiveAllocation, TurnService } from '../core/turn/service.js';
import {
  hostAddresses,
  hostPort,
  iceServers,
  MAX_TTL_SEC,
  parseCredentialFormat,
  type RevocationList,
  restApiAnswer,
} from '../credentials.js';
import type { Logger } from '../log.js';
import { turnEnabled } from '../settings.js';
import { type HttpApi, type HttpReply, json } from './server.js';
import { TEST_PAGE_HEADERS, testPageHtml } from './test-page.js';

/** What the routes need from the running server (closures: it is still being built). */
export interface OperatorDeps {
  /** The configuration in force (changes on SIGHUP). */
  readonly config: () => Config;
  /** The TURN service (absent in tests of the routes without one). */
  readonly turn: () => TurnService | undefined;
  /** Starts a drain (the server's `drain()`). */
  readonly drain: () => void;
  readonly revocations: RevocationList;
  /** Fleet mode: revocations are shared with every node. */
  readonly fleet?: FleetRevocationSink | undefined;
  /** Fleet mode: REST secrets from the Redis user database, after `static-auth-secret`. */
  readonly restSecrets?: (() => readonly string[]) | undefined;
  readonly log: Logger;
  /** Clock, ms (tests pin it). */
  readonly nowMs?: () => number;
  /** This host's addresses, for the default public host (tests pin them). */
  readonly hostAddresses?: () => readonly string[];
}

/** What `server.ts` hands over. */
export interface OperatorContext {
  /** The configuration in force; only called while serving requests. */
  readonly config: () => Config;
  readonly turn: TurnService;
  readonly revocations: RevocationList;
  readonly fleet?: FleetRevocationSink | undefined;
  readonly restSecrets?: (() => readonly string[]) | undefined;
  readonly drain: () => void;
  readonly log: Logger;
}

/** Where fleet mode hears of revocations made through this node's API (to tell the other nodes). */
export interface FleetRevocationSink {
  revoke(userid: string, until: number): void;
  unrevoke(userid: string): void;
}

/** Registers the operator routes on `http`; `revocations` is the list the authenticator consults. */
export function registerOperatorRoutes(http: HttpApi, ctx: OperatorContext): void {
  const turn = ctx.turn;
  addOperatorRoutes(http, {
    config: ctx.config,
    turn: () => turn,
    drain: ctx.drain,
    revocations: ctx.revocations,
    fleet: ctx.fleet,
    restSecrets: ctx.restSecrets,
    log: ctx.log.child({ component: 'operator-api' }),
  });
}

const error = (status: number, message: string): HttpReply => json(status, { error: message });

type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reply: HttpReply };

/**
 * The string `field` of a JSON object body: non-empty, at most 512 bytes, no control characters;
 * or the 400 to answer.
 */
function bodyName(text: string, field: string): Parsed<{ name: string; body: Record<string, unknown> }> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, reply: error(400, 'the body must be a JSON object') };
  }
  const fields = body as Record<string, unknown>;
  const v = fields[field];
  if (typeof v !== 'string' || v === '') {
    return { ok: false, reply: error(400, `"${field}" must be a non-empty string`) };
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
  if (Buffer.byteLength(v, 'utf8') > 512 || /[\u0000-\u001f\u007f]/.test(v)) {
    return {
      ok: false,
      reply: error(400, `"${field}" must be at most 512 bytes without control characters`),
    };
  }
  return { ok: true, value: { name: v, body: fields } };
}

/** One allocation as the admin API lists it. */
export interface AllocationInfo {
  readonly id: number;
  /** The quota key: REST user id or static user name. */
  readonly user: string;
  /** USERNAME the allocation was created with. */
  readonly username: string;
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly client: string;
  readonly relays: readonly string[];
  readonly ageSec: number;
  readonly expiresInSec: number;
  readonly toPeer: { readonly packets: number; readonly bytes: number };
  readonly toClient: { readonly packets: number; readonly bytes: number };
  /** Packets dropped (both directions): refused by relay-payload-policy, over a bandwidth limit. */
  readonly dropped: { readonly payloadPolicy: number; readonly bandwidth: number };
  readonly permissions: number;
  readonly channels: number;
  /** RFC 6062 TCP allocations only: their peer TCP connections (connecting, pending or bound). */
  readonly tcpRelay?: { readonly connections: number };
}

export function describeAllocation(live: LiveAllocation, nowSec: number): AllocationInfo {
  const { allocation: a, counters: c } = live;
  return {
    id: a.id,
    user: a.userId,
    username: a.username,
    transport: a.endpoint.transport,
    client: hostPort(a.clientAddress, a.clientPort),
    relays: a.relays.map((r) => hostPort(r.advertisedAddress, r.port)),
    ageSec: Math.max(0, nowSec - a.createdAtSec),
    expiresInSec: Math.max(0, a.expiresAtSec - nowSec),
    toPeer: { packets: c.packetsToPeer, bytes: c.bytesToPeer },
    toClient: { packets: c.packetsToClient, bytes: c.bytesToClient },
    dropped: { payloadPolicy: c.payloadRefused, bandwidth: c.bandwidthDropped },
    permissions: live.permissions,
    channels: live.channels,
    ...(a.relayTransport === 'tcp' ? { tcpRelay: { connections: live.tcpConnections } } : {}),
  };
}

/** Deletes the REST allocations of user id `userid` (a revocation; a static user of that name stays). */
export function disconnectRestUser(service: TurnService | undefined, userid: string): number {
  return disconnect(service, (a) => a.userId === userid && parseRestUsername(a.username) !== undefined);
}

/** One user's live allocations as the admin API sums them (drops by the relay limits). */
export interface UserSummary {
  readonly user: string;
  readonly allocations: number;
  readonly dropped: { readonly payloadPolicy: number; readonly bandwidth: number };
}

/** The allocations of `list` summed per user (quota key), in order of first appearance. */
export function perUser(list: readonly AllocationInfo[]): UserSummary[] {
  const users = new Map<string, { allocations: number; payloadPolicy: number; bandwidth: number }>();
  for (const a of list) {
    let u = users.get(a.user);
    if (u === undefined) {
      u = { allocations: 0, payloadPolicy: 0, bandwidth: 0 };
      users.set(a.user, u);
    }
    u.allocations++;
    u.payloadPolicy += a.dropped.payloadPolicy;
    u.bandwidth += a.dropped.bandwidth;
  }
  return [...users].map(([user, u]) => ({
    user,
    allocations: u.allocations,
    dropped: { payloadPolicy: u.payloadPolicy, bandwidth: u.bandwidth },
  }));
}

/** Deletes the allocations `match` selects (reason 'admin'); returns how many. */
function disconnect(service: TurnService | undefined, match: (a: Allocation) => boolean): number {
  if (service === undefined) return 0;
  // Pending ones too (still binding, or waiting for fleet admission): they would come alive after.
  const doomed = [...service.table.all()].filter((a) => !a.deleted && match(a));
  for (const a of doomed) service.deleteAllocation(a, 'admin');
  return doomed.length;
}

/** SHA-256 of a token: equal-length inputs for a constant-time comparison. */
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The routes themselves (tests call this with fakes). */
export function addOperatorRoutes(http: HttpApi, deps: OperatorDeps): void {
  const nowMs = deps.nowMs ?? Date.now;
  const nowSec = (): number => Math.floor(nowMs() / 1000);
  const hosts = deps.hostAddresses ?? hostAddresses;
  const guarded = { protected: true } as const;

  http.route(
    'GET',
    '/ice-servers',
    (_req, url) => {
      const q = url.searchParams;
      const format = parseCredentialFormat(q.get('format'));
      if (!format.ok) return error(400, format.error);
      const config = deps.config();
      const extra = deps.restSecrets?.() ?? [];
      const r = iceServers(
        // The first secret signs: a configured one, else (fleet mode) one from Redis.
        extra.length === 0
          ? config
          : { ...config, staticAuthSecrets: [...config.staticAuthSecrets, ...extra] },
        {
          userid: q.get('userid') ?? undefined,
          tag: q.get('tag') ?? undefined,
          ttl: q.get('ttl') ?? undefined,
          transports: q.getAll('transport').join(','),
          nowSec: nowSec(),
        },
        hosts,
      );
      if (!r.ok) return error(r.status, r.error);
      return json(200, format.format === 'rest' ? restApiAnswer(r.value) : r.value);
    },
    guarded,
  );

  http.route(
    'GET',
    '/admin/allocations',
    () => {
      const service = deps.turn();
      const now = nowSec();
      const list =
        service === undefined
          ? []
          : [...service.allocations()]
              .sort((a, b) => a.allocation.id - b.allocation.id)
              .map((a) => describeAllocation(a, now));
      // `turn`: whether TURN is served (users or secrets configured); allocations made before a
      // reload that switched it off are still listed until they end.
      const turn = service !== undefined && turnEnabled(deps.config());
      return json(200, { turn, count: list.length, allocations: list, users: perUser(list) });
    },
    guarded,
  );

  http.route(
    'POST',
    '/admin/disconnect',
    (_req, _url, text) => {
      const parsed = bodyName(text, 'user');
      if (!parsed.ok) return parsed.reply;
      const user = parsed.value.name;
      const n = disconnect(deps.turn(), (a) => a.userId === user || a.username === user);
      deps.log.info({ user, allocations: n }, 'admin: disconnected user');
      return json(200, { user, disconnected: n });
    },
    guarded,
  );

  http.route(
    'POST',
    '/admin/revoke',
    (_req, _url, text) => {
      const parsed = bodyName(text, 'userid');
      if (!parsed.ok) return parsed.reply;
      const userid = parsed.value.name;
      const now = nowSec();
      const until = parsed.value.body['until'] ?? now + MAX_TTL_SEC;
      if (typeof until !== 'number' || !Number.isSafeInteger(until) || until <= now) {
        return error(400, '"until" must be a whole number of unix seconds in the future');
      }
      if (!deps.revocations.revoke(userid, until, now)) {
        return error(503, `the revocation list is full (${deps.revocations.maxEntries} entries in force)`);
      }
      // REST allocations of that id only: a static user of the same name is not revoked.
      const n = disconnectRestUser(deps.turn(), userid);
      deps.fleet?.revoke(userid, until);
      deps.log.info({ userid, until, allocations: n }, 'admin: revoked REST user id');
      return json(200, { userid, until, disconnected: n });
    },
    guarded,
  );

  http.route(
    'POST',
    '/admin/unrevoke',
    (_req, _url, text) => {
      const parsed = bodyName(text, 'userid');
      if (!parsed.ok) return parsed.reply;
      const userid = parsed.value.name;
      const lifted = deps.revocations.lift(userid);
      deps.fleet?.unrevoke(userid);
      deps.log.info({ userid, lifted }, 'admin: lifted revocation');
      return json(200, { userid, lifted });
    },
    guarded,
  );

  http.route(
    'GET',
    '/admin/revocations',
    () => json(200, { revocations: deps.revocations.list(nowSec()) }),
    guarded,
  );

  http.route(
    'POST',
    '/admin/drain',
    () => {
      deps.drain();
      const allocations = deps.turn()?.allocationCount ?? 0;
      deps.log.info({ allocations }, 'admin: draining');
      return json(200, { draining: true, allocations });
    },
    guarded,
  );

  // The test page: a browser cannot add a bearer header to a navigation, so the token comes in the
  // query string (the page sends it on as a header, and asks for no Referer).
  http.route(
    'GET',
    '/test',
    (_req, url) => {
      const config = deps.config();
      if (!config.testPage) return { status: 404, body: 'not found\n' };
      if (config.apiToken === undefined) return { status: 403, body: 'disabled: no api-token configured\n' };
      const given = url.searchParams.get('token') ?? '';
      if (!timingSafeEqual(digest(given), digest(config.apiToken))) {
        return { status: 401, body: 'unauthorized: open /test?token=<api-token>\n' };
      }
      return {
        status: 200,
        contentType: 'text/html; charset=utf-8',
        headers: TEST_PAGE_HEADERS,
        body: testPageHtml(),
      };
    },
    { protected: false },
  );
}
