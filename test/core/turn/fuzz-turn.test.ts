/**
 * Property test of the TURN core: 20 000 random steps, mostly valid authenticated TURN requests
 * with random attributes (so they reach the handlers), byte-mutated requests, Send indications,
 * ChannelData frames, peer packets, time passing, connections closing and relay binds completing
 * late or failing. After every step:
 *  - nothing threw out of StunCore.handle, relayChannelData, onPeerPacket or sweep;
 *  - the table holds at most one allocation per client 5-tuple;
 *  - every open relay belongs to a live allocation in the table, and every relay of a live
 *    allocation is open (no leak, no use after close);
 *  - live permissions and channels per allocation stay within their caps;
 *  - everything sent to a client is a well-formed STUN message or ChannelData frame.
 * Port 0 peers are left out: channel-bind and relay have their own port-0 tests.
 */
import t from 'tap';
import { encodeChannelData } from '../../../src/core/channel-data.js';
import { AttrType, Class, HEADER_LENGTH, Method, Transport } from '../../../src/core/constants.js';
import { formatIPv4, formatIPv6 } from '../../../src/core/ip.js';
import { decodeStun } from '../../../src/core/stun/decode.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import { Rng } from '../../fixtures/helpers/random.js';
import {
  ALICE,
  BOB,
  type Credentials,
  FakeEndpoint,
  freshTid,
  Harness,
  MALLORY,
  MAX_PORT,
  MIN_PORT,
  RELAY_V4,
  RELAY_V6,
  restUser,
  SECRETS,
  SERVICE,
  type TurnClient,
} from '../../fixtures/helpers/turn-core-harness.js';

const SEED = 0x7e57_2024;
const STEPS = 20_000;
const MAX_PERMISSIONS = 6;
const MAX_CHANNELS = 6;

const TURN_METHODS = [Method.Allocate, Method.Refresh, Method.CreatePermission, Method.ChannelBind];
const FIXED_PEERS = [
  '198.51.100.7',
  '198.51.100.8',
  '2001:db8::7',
  '2001:db8::8',
  '10.0.0.1',
  '127.0.0.1',
  '::ffff:127.0.0.1',
  '::1',
  '0.0.0.0',
  '169.254.169.254',
  RELAY_V4.local,
  RELAY_V4.advertised,
  RELAY_V6.local,
  SERVICE.address,
];

function randomAddress(rng: Rng): string {
  switch (rng.int(4)) {
    case 0:
      return formatIPv4(rng.bytes(4), 0);
    case 1:
      return formatIPv6(rng.bytes(16), 0);
    default:
      return rng.pick(FIXED_PEERS);
  }
}

function randomPort(rng: Rng): number {
  switch (rng.int(5)) {
    case 0:
      return MIN_PORT + rng.int(MAX_PORT - MIN_PORT + 1);
    case 1:
      return rng.pick([1, 22, SERVICE.port, 7000, 65535, MIN_PORT - 1, MAX_PORT + 1]);
    default:
      return 1 + rng.int(0xffff);
  }
}

function randomChannel(rng: Rng): number {
  return rng.int(4) === 0 ? rng.next() & 0xffff : 0x4000 + rng.int(12);
}

/** Appends one random attribute, valid or not. */
function randomAttribute(rng: Rng, w: StunWriter, tokens: readonly Buffer[]): void {
  switch (rng.int(14)) {
    case 0:
      w.addLeadingByte(AttrType.RequestedTransport, rng.pick([Transport.UDP, Transport.TCP, rng.int(256)]));
      break;
    case 1:
      w.addUint32(AttrType.Lifetime, rng.pick([0, 1, 600, 1800, 3600, 0xffffffff, rng.next()]));
      break;
    case 2:
    case 3:
      w.addAddress(AttrType.XorPeerAddress, randomAddress(rng), randomPort(rng), true);
      break;
    case 4:
      w.addBytes(AttrType.XorPeerAddress, rng.bytes(rng.int(24)));
      break;
    case 5:
      if (rng.int(4) === 0) w.addBytes(AttrType.ChannelNumber, rng.bytes(rng.int(6)));
      else w.addChannelNumber(randomChannel(rng));
      break;
    case 6:
      w.addBytes(AttrType.EvenPort, rng.bytes(rng.int(3)));
      break;
    case 7:
      w.addBytes(
        AttrType.ReservationToken,
        tokens.length > 0 && rng.int(2) === 0 ? rng.pick(tokens) : rng.bytes(rng.pick([0, 4, 8])),
      );
      break;
    case 8:
      w.addBytes(
        AttrType.RequestedAddressFamily,
        Buffer.from([rng.pick([1, 2, 3, 0]), 0, 0, 0].slice(0, rng.pick([4, 4, 4, 1]))),
      );
      break;
    case 9:
      w.addBytes(
        AttrType.AdditionalAddressFamily,
        Buffer.from([rng.pick([1, 2, 3, 0]), 0, 0, 0].slice(0, rng.pick([4, 4, 4, 2]))),
      );
      break;
    case 10:
      w.addFlag(AttrType.DontFragment);
      break;
    case 11:
      w.addBytes(AttrType.Data, rng.bytes(rng.int(64)));
      break;
    case 12: {
      let type = rng.next() & 0xffff;
      if (
        type === AttrType.MessageIntegrity ||
        type === AttrType.MessageIntegritySha256 ||
        type === AttrType.Fingerprint
      )
        type = AttrType.Software;
      w.addBytes(type, rng.bytes(rng.int(16)));
      break;
    }
    default:
      w.addString(AttrType.Software, 'fuzz');
  }
}

/** A random authenticated TURN request from `c` (sometimes signed wrongly or with another user). */
function randomRequest(rng: Rng, c: TurnClient, tokens: readonly Buffer[]): Buffer {
  const method = rng.pick(TURN_METHODS);
  const creds: Credentials = rng.int(20) === 0 ? MALLORY : c.creds;
  return c.build(
    method,
    (w) => {
      if (method === Method.Allocate && rng.int(3) > 0)
        w.addLeadingByte(AttrType.RequestedTransport, Transport.UDP);
      if (method === Method.ChannelBind && rng.int(3) > 0) {
        w.addChannelNumber(randomChannel(rng));
        w.addAddress(AttrType.XorPeerAddress, randomAddress(rng), randomPort(rng), true);
      }
      const n = rng.int(5);
      for (let i = 0; i < n; i++) randomAttribute(rng, w, tokens);
    },
    { creds, fingerprint: rng.int(4) === 0, auth: rng.int(30) > 0 },
  );
}

/** Random byte-level damage that often keeps the message decodable. */
function mutate(rng: Rng, buf: Buffer): Buffer {
  let out = Buffer.from(buf);
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) {
    switch (rng.int(4)) {
      case 0:
        if (out.length > 0) out[rng.int(out.length)]! ^= 1 << rng.int(8);
        break;
      case 1:
        if (out.length > 0) out[rng.int(out.length)] = rng.int(256);
        break;
      case 2:
        out = out.subarray(0, rng.int(out.length + 1));
        break;
      default:
        out = Buffer.concat([out, rng.bytes(rng.int(9))]);
    }
  }
  // Often fix the length field so that the damage reaches the attribute parsers.
  if (out.length >= HEADER_LENGTH && rng.int(2) === 0)
    out.writeUInt16BE((out.length - HEADER_LENGTH) & 0xfffc, 2);
  return out;
}

/** Checks a message the core sent to a client; returns a description of what is wrong, or undefined. */
function malformed(buf: Buffer, stream: boolean): string | undefined {
  if (buf.length === 0) return 'empty';
  const first = buf[0]!;
  if (first < 4) {
    const r = decodeStun(buf);
    return r.ok ? undefined : `undecodable STUN (${r.reason})`;
  }
  if (first >= 0x40 && first < 0x80 && buf.length >= 4) {
    const len = buf.readUInt16BE(2);
    const want = 4 + len + (stream ? (4 - (len & 3)) & 3 : 0);
    return buf.length === want ? undefined : `ChannelData of ${buf.length} bytes for length ${len}`;
  }
  return `unexpected first byte ${first}`;
}

t.test(`${STEPS} random steps through the TURN core never throw and keep its invariants`, async (t) => {
  const rng = new Rng(SEED);
  t.comment(`seed 0x${SEED.toString(16)}`);
  const h = new Harness({
    allocator: { v6: RELAY_V6 },
    turn: { maxPermissions: MAX_PERMISSIONS, maxChannels: MAX_CHANNELS },
    auth: { staleNonceSec: 300 },
  });
  const tcp = new FakeEndpoint('tcp');
  const carol = restUser(SECRETS[1]!, h.nowSec + 10 * 86400, 'carol');
  const clients = [
    h.client(ALICE, '192.0.2.1', 40000),
    h.client(BOB, '192.0.2.1', 40001),
    h.client(carol, '192.0.2.2', 40000),
    h.client(MALLORY, '::ffff:192.0.2.3', 40000),
    h.client(ALICE, '192.0.2.1', 40000, tcp),
    h.client(BOB, '2001:db8:c::1', 40000, tcp),
  ];
  const fiveTuples = clients.length;
  const tokens: Buffer[] = [];
  const counts = new Map<string, number>();
  const count = (op: string): void => {
    counts.set(op, (counts.get(op) ?? 0) + 1);
  };
  let failure: string | undefined;

  for (let step = 0; step < STEPS && failure === undefined; step++) {
    const c = rng.pick(clients);
    let op = '';
    try {
      const roll = rng.int(100);
      if (roll < 45) {
        op = 'request';
        if (c.nonce === undefined || rng.int(50) === 0) c.login();
        const reply = c.exchange(randomRequest(rng, c, tokens));
        const token = reply?.view.find(AttrType.ReservationToken) ?? -1;
        if (reply !== null && token >= 0) tokens.push(Buffer.from(reply.view.value(token)));
        if (reply !== null && reply.view.cls === Class.Error) {
          const nonce = reply.view.find(AttrType.Nonce);
          if (nonce >= 0) c.nonce = Buffer.from(reply.view.value(nonce));
        }
      } else if (roll < 55) {
        op = 'mutated request';
        if (c.nonce === undefined) c.login();
        h.handle(mutate(rng, randomRequest(rng, c, tokens)), c.address, c.port, c.endpoint);
      } else if (roll < 65) {
        op = 'send indication';
        const w = new StunWriter(1024).start(Method.Send, Class.Indication, freshTid());
        const permitted = [...h.fwd(c.allocation()).permissions.keys()];
        const peer = permitted.length > 0 && rng.int(2) === 0 ? rng.pick(permitted) : randomAddress(rng);
        if (rng.int(5) > 0) w.addAddress(AttrType.XorPeerAddress, peer, randomPort(rng), true);
        if (rng.int(5) === 0) randomAttribute(rng, w, tokens);
        if (rng.int(5) > 0) w.addBytes(AttrType.Data, rng.bytes(rng.int(100)));
        const bytes = rng.int(8) === 0 ? mutate(rng, w.finish()) : w.finish();
        h.handle(bytes, c.address, c.port, c.endpoint);
      } else if (roll < 80) {
        op = 'channel data';
        const data = rng.bytes(rng.int(80));
        const bound = [...h.fwd(c.allocation()).channelsByNumber.keys()];
        const channel = bound.length > 0 && rng.int(3) > 0 ? rng.pick(bound) : randomChannel(rng);
        let frame = encodeChannelData(channel, data, rng.int(2) === 0);
        if (rng.int(6) === 0) frame = mutate(rng, frame);
        if (frame.length > 0) h.channelData(frame, c.address, c.port, c.endpoint);
      } else if (roll < 92) {
        op = 'peer packet';
        const open = h.allocator.open();
        const relay =
          open.length > 0 && rng.int(4) > 0 ? rng.pick(open) : rng.pick([...h.allocator.relays, undefined]);
        if (relay !== undefined) {
          const channels = [...h.fwd(relay.owner).channelsByNumber.values()];
          const permitted = [...h.fwd(relay.owner).permissions.keys()];
          const roll = rng.int(4);
          if (roll === 0 && channels.length > 0) {
            const ch = rng.pick(channels);
            h.fromPeer(relay, rng.bytes(rng.int(120)), ch.peerAddress, ch.peerPort);
          } else {
            const from =
              roll === 1 && permitted.length > 0
                ? rng.pick(permitted)
                : rng.int(3) === 0
                  ? rng.pick(FIXED_PEERS)
                  : randomAddress(rng);
            h.fromPeer(relay, rng.bytes(rng.int(120)), from, randomPort(rng));
          }
        }
      } else if (roll < 96) {
        op = 'time';
        h.advance(1 + rng.int(rng.int(4) === 0 ? 400 : 20));
      } else if (roll < 97) {
        op = 'connection closed';
        h.service.endpointClosed(tcp);
      } else if (roll < 98) {
        op = 'allocator mode';
        h.allocator.mode = h.allocator.mode === 'sync' ? 'async' : 'sync';
        h.allocator.failing = rng.int(5) === 0;
        h.allocator.failing6 = rng.int(3) === 0;
      } else {
        op = 'binds complete';
        h.allocator.complete();
      }
      count(op);
    } catch (err) {
      failure = `step ${step} (${op}): threw ${(err as Error).stack ?? String(err)}`;
      break;
    }

    // Invariants.
    const table = h.service.table;
    if (table.size > fiveTuples)
      failure = `step ${step} (${op}): ${table.size} allocations for ${fiveTuples} 5-tuples`;
    const live = [...table.all()];
    for (const a of live) {
      if (a.deleted) failure ??= `step ${step} (${op}): a deleted allocation is still in the table`;
      for (const r of a.relays)
        if (h.allocator.relays.find((x) => x === r)?.closed)
          failure ??= `step ${step} (${op}): live allocation, closed relay`;
      if (h.plane.livePermissions(a, h.nowSec) > MAX_PERMISSIONS)
        failure ??= `step ${step} (${op}): ${h.plane.livePermissions(a, h.nowSec)} live permissions`;
      if (h.plane.liveChannels(a, h.nowSec) > MAX_CHANNELS)
        failure ??= `step ${step} (${op}): ${h.plane.liveChannels(a, h.nowSec)} live channels`;
    }
    for (const r of h.allocator.open()) {
      if (!live.includes(r.owner) || !r.owner.relays.includes(r))
        failure ??= `step ${step} (${op}): relay ${r.family}/${r.port} open without a live allocation`;
    }
    for (const e of [h.udp, tcp]) {
      for (const s of e.sent) {
        const bad = malformed(s.buf, e.transport !== 'udp');
        if (bad !== undefined) failure ??= `step ${step} (${op}): sent a bad message: ${bad}`;
      }
      e.sent.length = 0;
      e.sentParts.length = 0;
    }
  }
  t.equal(failure, undefined, 'no exception, no broken invariant');
  t.comment(
    `steps: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}; allocations created ` +
      `${h.stats.allocationsCreated}, relayed to peers ${h.stats.relayedToPeerPackets}, to clients ` +
      `${h.stats.relayedToClientPackets}`,
  );
  // The run must reach the interesting code, or it proves little.
  t.ok(h.stats.allocationsCreated > 20, 'allocations were created');
  t.ok(h.stats.relayedToPeerPackets > 20, 'data reached peers');
  t.ok(h.stats.relayedToClientPackets > 20, 'data reached clients');
  for (const code of [400, 401, 403, 437, 441, 508])
    t.ok((h.stats.errorResponses.get(code) ?? 0) > 0, `some ${code} answers`);
});
