/**
 * A TURN client (RFC 8656) over one transport: STUN transactions with long-term credentials
 * (RFC 8489 §9.2.5: the first request unsigned, the 401 teaches realm and nonce, the request is sent
 * again signed; a 438 teaches a fresh nonce and the request is retried), the TURN methods, and the
 * application data the server relays back (ChannelData and Data indications).
 *
 * Two levels: `exchange` and `transact` report every ending as a value (`TransactionOutcome`), for
 * callers that explain failures (the probe); `request`, `allocate`, `refresh`… throw
 * `TransactionError` when nothing usable came back and `TurnRequestError` for an error response.
 */
import { AttrType, Class, METHOD_NAMES, Method } from '../core/constants.js';
import { readAddress, readBytes, type TransportAddress } from '../core/stun/attrs.js';
import { decodeStun, methodOf } from '../core/stun/decode.js';
import { describeChallengeFailure, LongTermAuth, type LongTermCredentials } from './auth.js';
import { decodeChannelData, encodeChannelData, isChannelDataByte } from './channel-data.js';
import { TurnRequestError } from './errors.js';
import {
  type AllocateOptions,
  type AllocateSuccess,
  addAllocateAttributes,
  type Body,
  buildBindingRequest,
  buildRequest,
  buildSendIndication,
  channelBindBody,
  type PeerAddress,
  permissionBody,
  readAllocateSuccess,
  refreshBody,
  type TurnResponse,
  toResponse,
} from './messages.js';
import {
  outcomeError,
  type RetransmitPolicy,
  RFC8489_RETRANSMIT,
  type TransactionOutcome,
  Transactions,
} from './transactions.js';
import type { ClientTransport } from './transport.js';

/** Application data from the server: ChannelData or a Data indication. */
export type DataEvent =
  | { readonly kind: 'channel'; readonly channel: number; readonly data: Buffer }
  | { readonly kind: 'indication'; readonly peer: TransportAddress; readonly data: Buffer };

export interface TurnClientOptions {
  /** Long-term credentials; without, requests are never signed (a server without authentication). */
  readonly credentials?: LongTermCredentials | undefined;
  /** Retransmission schedule and deadline (RFC 8489 defaults). */
  readonly retransmit?: Partial<RetransmitPolicy>;
  /** FINGERPRINT in every request. */
  readonly fingerprint?: boolean;
  /** How many times one request is retried after a 438 Stale Nonce (default 1). */
  readonly staleNonceRetries?: number;
}

/** What a successful Allocate returned. */
export interface AllocateResult extends AllocateSuccess {
  /** The first XOR-RELAYED-ADDRESS. */
  readonly relayed: TransportAddress;
  readonly response: TurnResponse;
}

export class TurnClient {
  readonly transport: ClientTransport;
  /** The credential state; undefined without credentials. */
  readonly auth: LongTermAuth | undefined;
  readonly policy: RetransmitPolicy;
  private readonly transactions: Transactions;
  private readonly fingerprint: boolean;
  private readonly staleNonceRetries: number;
  private readonly listeners = new Set<(e: DataEvent) => void>();
  /** The first transport failure: every pending and later transaction ends with it. */
  private failure: { code: string; message: string } | undefined;
  private closed = false;
  /** 438 answers seen (each followed by a retry with the fresh nonce). */
  staleNonces = 0;
  /** Messages that were neither an answer to a pending request nor data (late duplicates, strays). */
  strays = 0;

  constructor(transport: ClientTransport, o: TurnClientOptions = {}) {
    this.transport = transport;
    this.auth = o.credentials === undefined ? undefined : new LongTermAuth(o.credentials);
    this.policy = { ...RFC8489_RETRANSMIT, ...o.retransmit };
    this.fingerprint = o.fingerprint ?? false;
    this.staleNonceRetries = o.staleNonceRetries ?? 1;
    this.transactions = new Transactions((b) => transport.send(b), transport.kind !== 'udp');
    transport.attach({
      message: (buf) => {
        if (!this.receive(buf)) this.strays++;
      },
      failed: (f) => this.fail(f.code, f.message),
    });
  }

  /** Request messages sent again after a timeout. */
  get retransmissions(): number {
    return this.transactions.retransmissions;
  }

  /** Request messages sent in all. */
  get transmissions(): number {
    return this.transactions.transmissions;
  }

  // -----------------------------------------------------------------------------------------------
  // Requests

  /**
   * A request of `method`: `body`'s attributes, then (once a challenge was learnt, unless
   * `credentials` is false) the signature, then FINGERPRINT when configured.
   */
  buildRequest(
    method: number,
    body?: Body,
    o: { tid?: Buffer; credentials?: boolean; fingerprint?: boolean } = {},
  ): Buffer {
    const sign = o.credentials === false ? undefined : this.auth?.signature();
    return buildRequest(method, body, {
      ...(o.tid === undefined ? {} : { tid: o.tid }),
      sign,
      fingerprint: o.fingerprint ?? this.fingerprint,
    });
  }

  /** Sends `raw` (a request) and reports how it ended; never rejects. */
  exchange(raw: Buffer, policy: Partial<RetransmitPolicy> = {}): Promise<TransactionOutcome> {
    if (this.failure !== undefined) return Promise.resolve({ kind: 'error', ...this.failure });
    const method = raw.length >= 20 ? methodOf(raw.readUInt16BE(0)) : -1;
    return this.transactions.run(raw, method, { ...this.policy, ...policy });
  }

  /** Sends `raw` and resolves with the response; throws `TransactionError` when none came. */
  async request(raw: Buffer, policy: Partial<RetransmitPolicy> = {}): Promise<TurnResponse> {
    const o = await this.exchange(raw, policy);
    if (o.kind !== 'response') throw outcomeError(o, `transaction ${raw.toString('hex', 8, 20)}`);
    return o.response;
  }

  /**
   * One request with the credential dance: signed when a challenge is known; a 401 to an unsigned
   * request teaches realm and nonce and the request is sent again signed, once; a 438 teaches the
   * fresh nonce, up to `staleNonceRetries` times. A challenge without NONCE (or with another realm
   * than the expected one) is not retried. Reports the last exchange; never rejects.
   */
  async transact(method: number, body?: Body): Promise<TransactionOutcome> {
    let challenged = false;
    let stale = 0;
    for (;;) {
      const signed = this.auth?.canSign === true;
      const o = await this.exchange(this.buildRequest(method, body));
      if (o.kind !== 'response' || this.auth === undefined) return o;
      const code = o.response.code;
      const retry =
        (code === 401 && !signed && !challenged) || (code === 438 && stale < this.staleNonceRetries);
      if (!retry) return o;
      if (this.auth.learn(o.response.view) !== undefined) return o;
      if (code === 401) challenged = true;
      else {
        stale++;
        this.staleNonces++;
      }
    }
  }

  /** `transact`, throwing `TransactionError` when nothing usable came back. */
  async transactOrThrow(method: number, body?: Body): Promise<TurnResponse> {
    const o = await this.transact(method, body);
    if (o.kind !== 'response') throw outcomeError(o, METHOD_NAMES[method] ?? `method ${method}`);
    return o.response;
  }

  /** An unsigned Allocate to learn realm and nonce: resolves with the 401 (or 438). */
  async challenge(): Promise<TurnResponse> {
    const r = await this.request(
      this.buildRequest(Method.Allocate, (w) => addAllocateAttributes(w, {}), { credentials: false }),
    );
    if (r.code !== 401 && r.code !== 438) {
      throw new Error(`expected a 401 challenge, got ${r.ok ? 'success' : `error ${r.code}`}`);
    }
    const failed = this.auth?.learn(r.view);
    if (failed !== undefined) throw new Error(describeChallengeFailure(failed, r.code));
    return r;
  }

  /** A success, signed when the request was: anything else throws. */
  private async must(method: number, body: Body): Promise<TurnResponse> {
    const r = await this.transactOrThrow(method, body);
    if (!r.ok) throw new TurnRequestError(method, r);
    if (this.auth?.canSign === true && r.integrity === undefined) {
      throw new Error(`${METHOD_NAMES[method] ?? method} success without valid integrity`);
    }
    return r;
  }

  // -----------------------------------------------------------------------------------------------
  // TURN methods

  /** RFC 8489 §6: Binding; resolves with the response (`readMappedAddress` reads it). */
  binding(): Promise<TurnResponse> {
    return this.request(buildBindingRequest({ fingerprint: this.fingerprint }));
  }

  /** RFC 8656 §7: Allocate; resolves with the relayed and mapped addresses and the lifetime. */
  async allocate(o: AllocateOptions = {}): Promise<AllocateResult> {
    const r = await this.must(Method.Allocate, (w) => addAllocateAttributes(w, o));
    const success = readAllocateSuccess(r.view);
    const relayed = success.relayedAll[0];
    if (relayed === undefined) throw new Error('Allocate success without XOR-RELAYED-ADDRESS');
    return { ...success, relayed, response: r };
  }

  /** RFC 8656 §8: Refresh; resolves with the granted LIFETIME (0: the allocation is deleted). */
  async refresh(lifetimeSec: number, o: { family?: 4 | 6 } = {}): Promise<number | undefined> {
    const r = await this.must(Method.Refresh, refreshBody(lifetimeSec, o.family));
    return readAllocateSuccess(r.view).lifetimeSec;
  }

  /** RFC 8656 §9: CreatePermission for every peer. */
  createPermission(...peers: Array<{ address: string; port?: number }>): Promise<TurnResponse> {
    return this.must(Method.CreatePermission, permissionBody(peers));
  }

  /** RFC 8656 §11: ChannelBind `channel` ↔ `peer`. */
  channelBind(channel: number, peer: PeerAddress): Promise<TurnResponse> {
    return this.must(Method.ChannelBind, channelBindBody(channel, peer));
  }

  /** RFC 8656 §10: a Send indication carrying `data` to `peer`. */
  send(peer: PeerAddress, data: Uint8Array, o: { dontFragment?: boolean } = {}): void {
    this.transport.send(buildSendIndication(peer, data, o));
  }

  /** RFC 8656 §12: a ChannelData message, padded over TCP/TLS (and over UDP when `pad`). */
  sendChannelData(channel: number, data: Uint8Array, pad = false): void {
    this.transport.send(encodeChannelData(channel, data, pad || this.transport.kind !== 'udp'));
  }

  // -----------------------------------------------------------------------------------------------
  // Receiving

  /** Calls `listener` for every ChannelData message and Data indication; returns an unsubscribe. */
  onData(listener: (e: DataEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Routes one message from the server: an answer to a pending request, or data. False when it was
   * neither. An answer that does not decode, or is of another method, ends its transaction with
   * EPROTO: a server sending that is broken, and waiting would only hide it.
   */
  receive(msg: Buffer): boolean {
    if (msg.length === 0) return false;
    if (isChannelDataByte(msg[0]!)) {
      const cd = decodeChannelData(msg);
      if (cd === undefined) return false;
      this.emit({ kind: 'channel', channel: cd.channel, data: Buffer.from(cd.data) });
      return true;
    }
    if (msg[0]! >= 4 || msg.length < 20) return false;
    const tid = msg.toString('hex', 8, 20);
    const method = this.transactions.methodOf(tid);
    const d = decodeStun(msg);
    if (method !== undefined) {
      if (!d.ok || d.view.method !== method || (d.view.cls !== Class.Success && d.view.cls !== Class.Error)) {
        this.transactions.reject(tid, 'EPROTO', 'the answer is not a STUN response to the request');
        return true;
      }
      this.transactions.answer(tid, toResponse(msg, d.view, this.auth?.verify(d.view)));
      return true;
    }
    if (!d.ok || d.view.cls !== Class.Indication || d.view.method !== Method.Data) return false;
    const peer = readAddress(d.view, AttrType.XorPeerAddress);
    const data = readBytes(d.view, AttrType.Data);
    if (peer === undefined || data === undefined) return false;
    this.emit({ kind: 'indication', peer, data: Buffer.from(data) });
    return true;
  }

  private emit(e: DataEvent): void {
    for (const l of this.listeners) l(e);
  }

  private fail(code: string, message: string): void {
    if (this.closed || this.failure !== undefined) return;
    this.failure = { code, message };
    this.transactions.failAll(code, message);
  }

  /** Ends pending transactions (ECLOSED) and closes the transport. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failure = { code: 'ECLOSED', message: 'client closed' };
    this.transactions.failAll('ECLOSED', 'client closed');
    await this.transport.close();
  }
}
