/**
 * The control plane of one allocation, as the load tool drives it over UDP: Allocate with the long-term
 * credential dance (RFC 8489 §9.2: first request unsigned, the 401 gives REALM and NONCE, the request is
 * sent again signed; a 438 Stale Nonce takes the new nonce and retries once), CreatePermission,
 * ChannelBind and Refresh (RFC 8656 §7–§12). Requests are built and answers read with the project's
 * TURN client library (`src/client`), and retransmitted on its RFC 8489 §6.2.1 schedule with short
 * loopback timings (RTO doubling, a bounded number of transmissions, a last wait), so every
 * transaction ends within a few seconds. The transaction loop is the tool's own: a session shares its
 * socket with the engine's data path, and the sessions of a worker share one credential cache.
 *
 * A session does not own its socket: the engine's socket handler passes it every STUN message that is
 * not a Data indication (`onStun`). Responses are matched by transaction ID. Integrity of responses is
 * not verified: this is a load generator talking to a server under test on a local network.
 */
import { createHmac } from 'node:crypto';
import {
  addAllocateAttributes,
  type Body,
  buildRequest,
  channelBindBody,
  permissionBody,
  readAllocateSuccess,
  refreshBody,
  type Signature,
} from '../client/messages.js';
import { nextStep, type RetransmitPolicy } from '../client/transactions.js';
import { AttrType, Class, Method } from '../core/constants.js';
import { readErrorCode, readString, type TransportAddress } from '../core/stun/attrs.js';
import { decodeStunInto, StunView } from '../core/stun/decode.js';
import { longTermKey } from '../core/stun/integrity.js';

/** How the tool authenticates. `none`: the server answers Allocate without a challenge (the forwarder). */
export type Credentials =
  | { readonly kind: 'none' }
  | { readonly kind: 'static'; readonly username: string; readonly password: string }
  | { readonly kind: 'rest'; readonly secret: string; readonly userId: string; readonly ttlSec: number };

/** A failed setup step; `code` is the STUN error code as text, or 'timeout', 'malformed', 'closed'. */
export class SetupFailure extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Loopback timings: RTO 200 ms, 5 transmissions, a last wait of 8 × RTO (about 4.6 s in all). */
export const DEFAULT_RETRANSMIT: RetransmitPolicy = { rtoMs: 200, transmissions: 5, lastWaitFactor: 8 };

/** Username/password pairs and derived keys, shared by the sessions of one worker. */
export class CredentialCache {
  private readonly creds: Credentials;
  private readonly keys = new Map<string, Buffer>();
  private rest: { username: string; password: string; expirySec: number } | undefined;

  constructor(creds: Credentials) {
    this.creds = creds;
  }

  get required(): boolean {
    return this.creds.kind !== 'none';
  }

  /** Username and password to sign with; REST credentials are minted once per worker and renewed late. */
  current(nowSec: number): { username: string; password: string } {
    const c = this.creds;
    if (c.kind === 'static') return { username: c.username, password: c.password };
    if (c.kind === 'none') return { username: '', password: '' };
    if (this.rest === undefined || this.rest.expirySec - nowSec < c.ttlSec / 2) {
      const expirySec = nowSec + c.ttlSec;
      const username = `${expirySec}:${c.userId}`;
      const password = createHmac('sha1', c.secret).update(username, 'utf8').digest('base64');
      this.rest = { username, password, expirySec };
    }
    return { username: this.rest.username, password: this.rest.password };
  }

  /** MD5(username:realm:password), derived once per (username, realm). */
  key(username: string, realm: string, password: string): Buffer {
    const id = `${username}\u0000${realm}`;
    let k = this.keys.get(id);
    if (k === undefined) {
      k = longTermKey(username, realm, password, 'md5');
      this.keys.set(id, k);
    }
    return k;
  }
}

interface Pending {
  readonly method: number;
  readonly bytes: Buffer;
  sent: number;
  timer: NodeJS.Timeout | undefined;
  resolve(view: StunView): void;
  reject(err: SetupFailure): void;
}

/** What a successful Allocate returned. */
export interface AllocateResult {
  readonly relayed: TransportAddress;
  readonly mapped: TransportAddress | undefined;
  readonly lifetimeSec: number | undefined;
}

export class TurnSession {
  private readonly sendBytes: (buf: Buffer) => void;
  private readonly cache: CredentialCache;
  private readonly policy: RetransmitPolicy;
  private readonly pending = new Map<string, Pending>();
  /** The long-term credentials once a challenge gave REALM and NONCE. */
  private signature: Signature | undefined;
  private closed = false;
  /** Transactions sent, including retransmissions (for the report). */
  transmissions = 0;

  constructor(sendBytes: (buf: Buffer) => void, cache: CredentialCache, policy = DEFAULT_RETRANSMIT) {
    this.sendBytes = sendBytes;
    this.cache = cache;
    this.policy = policy;
  }

  /** A STUN message from the server (a response to one of ours, or something we ignore). */
  onStun(msg: Buffer): void {
    if (msg.length < 20) return;
    const id = msg.toString('latin1', 8, 20);
    const p = this.pending.get(id);
    if (p === undefined) return;
    const view = new StunView();
    if (decodeStunInto(msg, view) !== null || view.method !== p.method || view.cls === Class.Request) {
      return; // not a response to this transaction; keep waiting
    }
    this.finish(id, p);
    p.resolve(view);
  }

  private finish(id: string, p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(id);
  }

  /** Sends `bytes` (a request with transaction ID `id`) and retransmits until answered or timed out. */
  private transact(method: number, bytes: Buffer): Promise<StunView> {
    if (this.closed) return Promise.reject(new SetupFailure('closed', 'session closed'));
    const id = bytes.toString('latin1', 8, 20);
    return new Promise<StunView>((resolve, reject) => {
      const p: Pending = { method, bytes, sent: 0, timer: undefined, resolve, reject };
      const fire = (): void => {
        p.sent++;
        this.transmissions++;
        this.sendBytes(bytes);
        const step = nextStep(this.policy, false, p.sent, Number.POSITIVE_INFINITY);
        p.timer = setTimeout(() => {
          if (step.retransmit) fire();
          else {
            this.finish(id, p);
            reject(new SetupFailure('timeout', `no answer after ${p.sent} transmissions`));
          }
        }, step.waitMs);
      };
      this.pending.set(id, p);
      fire();
    });
  }

  /** Takes REALM and NONCE from a 401/438 and derives the key; false when they are missing. */
  private learnChallenge(view: StunView): boolean {
    const realm = readString(view, AttrType.Realm);
    const nonceIndex = view.find(AttrType.Nonce);
    if (realm === undefined || nonceIndex < 0) return false;
    const { username, password } = this.cache.current(Math.floor(Date.now() / 1000));
    this.signature = {
      username,
      realm,
      nonce: Buffer.from(view.value(nonceIndex)),
      key: this.cache.key(username, realm, password),
    };
    return true;
  }

  /**
   * One request with the credential dance: an unsigned first attempt when no challenge is known yet,
   * a signed retry after 401, one more after 438. Resolves with the success response.
   */
  private async request(method: number, body: Body): Promise<StunView> {
    let challenged = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const view = await this.transact(method, buildRequest(method, body, { sign: this.signature }));
      if (view.cls === Class.Success) return view;
      const code = readErrorCode(view)?.code;
      const retry =
        (code === 401 && this.cache.required && this.signature === undefined && challenged === 0) ||
        (code === 438 && challenged < 2);
      if (retry && this.learnChallenge(view)) {
        challenged++;
        continue;
      }
      throw new SetupFailure(
        code === undefined ? 'malformed' : String(code),
        `error response ${code ?? '?'}`,
      );
    }
    throw new SetupFailure('401', 'still unauthorized after the challenge');
  }

  /** RFC 8656 §7.1: Allocate a UDP relay (REQUESTED-TRANSPORT 17). */
  async allocate(lifetimeSec?: number): Promise<AllocateResult> {
    const view = await this.request(Method.Allocate, (w) =>
      addAllocateAttributes(w, lifetimeSec === undefined ? {} : { lifetime: lifetimeSec }),
    );
    const success = readAllocateSuccess(view);
    const relayed = success.relayedAll[0];
    if (relayed === undefined)
      throw new SetupFailure('malformed', 'Allocate success without XOR-RELAYED-ADDRESS');
    return { relayed, mapped: success.mapped, lifetimeSec: success.lifetimeSec };
  }

  /** RFC 8656 §9: CreatePermission for one peer. */
  async createPermission(peerAddress: string, peerPort: number): Promise<void> {
    await this.request(Method.CreatePermission, permissionBody([{ address: peerAddress, port: peerPort }]));
  }

  /** RFC 8656 §11: ChannelBind `channel` to the peer (also installs or refreshes the permission). */
  async channelBind(channel: number, peerAddress: string, peerPort: number): Promise<void> {
    await this.request(
      Method.ChannelBind,
      channelBindBody(channel, { address: peerAddress, port: peerPort }),
    );
  }

  /** RFC 8656 §8: Refresh; lifetime 0 deletes the allocation. */
  async refresh(lifetimeSec: number): Promise<void> {
    await this.request(Method.Refresh, refreshBody(lifetimeSec));
  }

  /** Cancels every outstanding transaction (they reject with 'closed'). */
  close(): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.finish(id, p);
      p.reject(new SetupFailure('closed', 'session closed'));
    }
  }
}

/** Runs `task` over `items` with at most `limit` in flight; resolves when all have settled. */
export async function withConcurrency<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await task(items[i]!, i);
    }
  };
  const lanes: Promise<void>[] = [];
  for (let k = 0; k < Math.min(limit, items.length); k++) lanes.push(lane());
  await Promise.all(lanes);
}
