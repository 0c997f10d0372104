/**
 * The control plane of one allocation, as the load tool drives it over UDP: Allocate with the long-term
 * credential dance (RFC 8489 §9.2: first request unsigned, the 401 gives REALM and NONCE, the request is
 * sent again signed; a 438 Stale Nonce takes the new nonce and retries once), CreatePermission,
 * ChannelBind and Refresh (RFC 8656 §7–§12). Requests are built with turnpike's own codec and
 * retransmitted on a short loopback schedule (RFC 8489 §6.2.1 shape: RTO doubling, a bounded number of
 * transmissions, a last wait), so every transaction ends within a few seconds.
 *
 * A session does not own its socket: the engine's socket handler passes it every STUN message that is
 * not a Data indication (`onStun`). Responses are matched by transaction ID. Integrity of responses is
 * not verified: this is a load generator talking to a server under test on a local network.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { AttrType, Class, Method, Transport } from '../core/constants.js';
import {
  readAddress,
  readErrorCode,
  readString,
  readUint32,
  type TransportAddress,
} from '../core/stun/attrs.js';
import { decodeStunInto, StunView } from '../core/stun/decode.js';
import { StunWriter } from '../core/stun/encode.js';
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

/** Retransmission schedule: first RTO, number of transmissions, wait after the last one. */
export interface RetransmitPolicy {
  readonly rtoMs: number;
  readonly transmissions: number;
  readonly lastWaitMs: number;
}

export const DEFAULT_RETRANSMIT: RetransmitPolicy = { rtoMs: 200, transmissions: 5, lastWaitMs: 1600 };

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

const writer = new StunWriter(512);

export class TurnSession {
  private readonly sendBytes: (buf: Buffer) => void;
  private readonly cache: CredentialCache;
  private readonly policy: RetransmitPolicy;
  private readonly pending = new Map<string, Pending>();
  private realm: string | undefined;
  private nonce: Buffer | undefined;
  private username = '';
  private key: Buffer | undefined;
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
        if (p.sent >= this.policy.transmissions) {
          this.finish(id, p);
          reject(new SetupFailure('timeout', `no answer after ${p.sent} transmissions`));
          return;
        }
        p.sent++;
        this.transmissions++;
        this.sendBytes(bytes);
        const wait =
          p.sent >= this.policy.transmissions
            ? this.policy.lastWaitMs
            : this.policy.rtoMs * 2 ** (p.sent - 1);
        p.timer = setTimeout(fire, wait);
      };
      this.pending.set(id, p);
      fire();
    });
  }

  /** Builds a request, signed with the session's key when it has one. */
  private build(method: number, add: (w: StunWriter) => void): Buffer {
    const w = writer.start(method, Class.Request, randomBytes(12));
    add(w);
    if (this.key !== undefined && this.realm !== undefined && this.nonce !== undefined) {
      w.addString(AttrType.Username, this.username);
      w.addString(AttrType.Realm, this.realm);
      w.addBytes(AttrType.Nonce, this.nonce);
      w.addMessageIntegrity(this.key);
    }
    return w.finish();
  }

  /** Takes REALM and NONCE from a 401/438 and derives the key; false when they are missing. */
  private learnChallenge(view: StunView): boolean {
    const realm = readString(view, AttrType.Realm);
    const nonceIndex = view.find(AttrType.Nonce);
    if (realm === undefined || nonceIndex < 0) return false;
    this.realm = realm;
    this.nonce = Buffer.from(view.value(nonceIndex));
    const { username, password } = this.cache.current(Math.floor(Date.now() / 1000));
    this.username = username;
    this.key = this.cache.key(username, realm, password);
    return true;
  }

  /**
   * One request with the credential dance: an unsigned first attempt when no challenge is known yet,
   * a signed retry after 401, one more after 438. Resolves with the success response.
   */
  private async request(method: number, add: (w: StunWriter) => void): Promise<StunView> {
    let challenged = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const view = await this.transact(method, this.build(method, add));
      if (view.cls === Class.Success) return view;
      const code = readErrorCode(view)?.code;
      const retry =
        (code === 401 && this.cache.required && this.key === undefined && challenged === 0) ||
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
    const view = await this.request(Method.Allocate, (w) => {
      w.addLeadingByte(AttrType.RequestedTransport, Transport.UDP);
      if (lifetimeSec !== undefined) w.addUint32(AttrType.Lifetime, lifetimeSec);
    });
    const relayed = readAddress(view, AttrType.XorRelayedAddress);
    if (relayed === undefined)
      throw new SetupFailure('malformed', 'Allocate success without XOR-RELAYED-ADDRESS');
    return {
      relayed,
      mapped: readAddress(view, AttrType.XorMappedAddress),
      lifetimeSec: readUint32(view, AttrType.Lifetime),
    };
  }

  /** RFC 8656 §9: CreatePermission for one peer. */
  async createPermission(peerAddress: string, peerPort: number): Promise<void> {
    await this.request(Method.CreatePermission, (w) =>
      w.addAddress(AttrType.XorPeerAddress, peerAddress, peerPort, true),
    );
  }

  /** RFC 8656 §11: ChannelBind `channel` to the peer (also installs or refreshes the permission). */
  async channelBind(channel: number, peerAddress: string, peerPort: number): Promise<void> {
    await this.request(Method.ChannelBind, (w) => {
      w.addChannelNumber(channel);
      w.addAddress(AttrType.XorPeerAddress, peerAddress, peerPort, true);
    });
  }

  /** RFC 8656 §8: Refresh; lifetime 0 deletes the allocation. */
  async refresh(lifetimeSec: number): Promise<void> {
    await this.request(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, lifetimeSec));
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
