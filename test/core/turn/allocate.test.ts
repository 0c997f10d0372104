/**
 * Allocate (RFC 8656 §7.2, RFC 6156 address families): the success response, LIFETIME rules, each
 * refusal, retransmissions, EVEN-PORT/RESERVATION-TOKEN, quotas and relay exhaustion.
 */
import t from 'tap';
import { AttrType, Family, Method, Transport } from '../../../src/core/constants.js';
import {
  readAddress,
  readAddressErrorCode,
  readAddresses,
  readBytes,
  readUint32,
  readUnknownAttributes,
} from '../../../src/core/stun/attrs.js';
import {
  ALICE,
  BOB,
  type Build,
  decode,
  failure,
  freshTid,
  Harness,
  MAX_PORT,
  MIN_PORT,
  RELAY_V4,
  RELAY_V6,
  type Reply,
  requestedTransport,
  restUser,
  SECRETS,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.10';

function relayed(reply: Reply | null) {
  return reply === null ? undefined : readAddresses(reply.view, AttrType.XorRelayedAddress);
}

t.test(
  'success: XOR-RELAYED-ADDRESS (advertised behind 1:1 NAT), LIFETIME, XOR-MAPPED-ADDRESS',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40000);
    const reply = c.allocate();
    t.same(summarize(reply, ALICE), success(Method.Allocate));
    t.same(relayed(reply), [{ family: Family.IPv4, address: RELAY_V4.advertised, port: MIN_PORT }]);
    t.equal(c.relay().localAddress, RELAY_V4.local, 'the socket is bound to the private address');
    t.equal(readUint32(reply!.view, AttrType.Lifetime), 600, 'the default lifetime');
    t.same(readAddress(reply!.view, AttrType.XorMappedAddress), {
      family: Family.IPv4,
      address: CLIENT,
      port: 40000,
    });
    t.equal(readBytes(reply!.view, AttrType.ReservationToken), undefined);
    t.same(h.allocator.calls[0]?.requests, [
      { family: 4, evenPort: false, reserveNext: false, reservationToken: undefined },
    ]);
    const a = c.allocation()!;
    t.equal(a.expiresAtSec, h.nowSec + 600);
    t.equal(a.pending, false);
    t.same(
      h.events.map((e) => [e.kind, e.allocation]),
      [['created', a]],
    );
    t.equal(h.stats.allocationsCreated, 1);
  },
);

t.test(
  'without NAT the local relay address is advertised; a v4-mapped client is an IPv4 client',
  async (t) => {
    const h = new Harness({ allocator: { v4: { local: '198.51.100.2', advertised: '198.51.100.2' } } });
    const c = h.client(ALICE, '::ffff:192.0.2.44', 40001);
    const reply = c.allocate();
    t.same(relayed(reply), [{ family: Family.IPv4, address: '198.51.100.2', port: MIN_PORT }]);
    t.same(readAddress(reply!.view, AttrType.XorMappedAddress), {
      family: Family.IPv4,
      address: '192.0.2.44',
      port: 40001,
    });
  },
);

t.test('LIFETIME: raised to the default, capped at the maximum, else granted', async (t) => {
  const h = new Harness();
  const cases: [requested: number | undefined, granted: number][] = [
    [undefined, 600],
    [0, 600],
    [60, 600],
    [600, 600],
    [1000, 1000],
    [3600, 3600],
    [7200, 3600],
    [0xffffffff, 3600],
  ];
  for (const [i, [requested, granted]] of cases.entries()) {
    const c = h.client(ALICE, CLIENT, 42000 + i);
    const reply = c.allocate(
      requestedTransport((w) => {
        if (requested !== undefined) w.addUint32(AttrType.Lifetime, requested);
      }),
    );
    t.equal(readUint32(reply!.view, AttrType.Lifetime), granted, `requested ${requested}`);
    t.equal(c.allocation()?.expiresAtSec, h.nowSec + granted);
    c.refresh(0);
  }
});

t.test('400 without (or with a malformed) REQUESTED-TRANSPORT; 442 for TCP', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40002);
  t.same(
    summarize(
      c.allocate(() => {}),
      ALICE,
    ),
    failure(Method.Allocate, 400),
    'absent',
  );
  t.same(
    summarize(
      c.allocate((w) =>
        w.addBytes(AttrType.RequestedTransport, Buffer.from([Transport.UDP, 0, 0, 0, 0, 0, 0, 0])),
      ),
      ALICE,
    ),
    failure(Method.Allocate, 400),
    'an 8-byte value',
  );
  t.same(
    summarize(
      c.allocate((w) => w.addLeadingByte(AttrType.RequestedTransport, Transport.TCP)),
      ALICE,
    ),
    failure(Method.Allocate, 442),
    'TCP (6)',
  );
  t.equal(h.service.table.size, 0);
  t.equal(h.allocator.calls.length, 0);
});

t.test('420 with UNKNOWN-ATTRIBUTES [DONT-FRAGMENT] when DONT-FRAGMENT is present', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40003);
  const reply = c.allocate(requestedTransport((w) => w.addFlag(AttrType.DontFragment)));
  t.same(summarize(reply, ALICE), failure(Method.Allocate, 420));
  t.same(readUnknownAttributes(reply!.view), [AttrType.DontFragment]);
  t.equal(h.service.table.size, 0);
});

t.test('437 for a second Allocate with another transaction ID on the same 5-tuple', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40004);
  t.same(summarize(c.allocate(), ALICE), success(Method.Allocate));
  const a = c.allocation();
  t.same(summarize(c.allocate(), ALICE), failure(Method.Allocate, 437));
  t.equal(c.allocation(), a, 'the first allocation is untouched');
  t.equal(h.allocator.calls.length, 1);
  t.equal(h.allocator.open().length, 1);
});

t.test('a retransmitted Allocate (same transaction ID) gets the byte-identical success', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40005);
  c.login();
  const request = c.build(Method.Allocate, requestedTransport());
  const first = c.exchange(request)!;
  t.same(summarize(first, ALICE), success(Method.Allocate));
  h.advance(5);
  const again = c.exchange(request)!;
  t.ok(again.buf.equals(first.buf), 'byte-identical');
  t.equal(h.allocator.calls.length, 1, 'no second relay');
  t.equal(h.stats.retransmissions, 1);
});

t.test(
  'while the relay is being bound, a retransmission is not answered and binds nothing more',
  async (t) => {
    const h = new Harness();
    h.allocator.mode = 'async';
    const c = h.client(ALICE, CLIENT, 40006);
    c.login();
    const request = c.build(Method.Allocate, requestedTransport());
    t.equal(c.exchange(request), null, 'answered later');
    t.equal(c.allocation()?.pending, true);
    t.equal(c.exchange(request), null, 'the retransmission is dropped while pending');
    t.same(summarize(c.refresh(), ALICE), failure(Method.Refresh, 437), 'a Refresh meanwhile is 437');
    t.same(summarize(c.allocate(), ALICE), failure(Method.Allocate, 437), 'another transaction is 437');
    t.equal(h.allocator.complete(), 1);
    const answer = c.received().at(-1)!;
    t.same(summarize(decode(answer.buf), ALICE), success(Method.Allocate), 'sent through the endpoint');
    t.ok(c.exchange(request)?.buf.equals(answer.buf), 'and is replayed to a later retransmission');
    t.equal(h.allocator.calls.length, 1);
  },
);

t.test(
  '440 for REQUESTED-ADDRESS-FAMILY IPv6 without an IPv6 relay, and for an unknown family',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40007);
    for (const family of [Family.IPv6, 0x03, 0x00]) {
      const reply = c.allocate(
        requestedTransport((w) => w.addLeadingByte(AttrType.RequestedAddressFamily, family)),
      );
      t.same(summarize(reply, ALICE), failure(Method.Allocate, 440), `family ${family}`);
    }
    t.equal(h.allocator.calls.length, 0);
  },
);

t.test('RFC 6156: REQUESTED-ADDRESS-FAMILY IPv6 allocates an IPv6 relay when there is one', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40008);
  const reply = c.allocate(
    requestedTransport((w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv6)),
  );
  t.same(summarize(reply, ALICE), success(Method.Allocate));
  t.same(relayed(reply), [{ family: Family.IPv6, address: RELAY_V6.advertised, port: MIN_PORT }]);
  t.equal(c.relay(6).family, 6);
  t.same(
    h.allocator.calls[0]?.requests.map((r) => r.family),
    [6],
  );
  const v4 = h
    .client(ALICE, CLIENT, 40009)
    .allocate(requestedTransport((w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv4)));
  t.same(relayed(v4), [{ family: Family.IPv4, address: RELAY_V4.advertised, port: MIN_PORT }], 'IPv4 asked');
});

t.test('ADDITIONAL-ADDRESS-FAMILY IPv6: a dual allocation with two XOR-RELAYED-ADDRESS', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40010);
  const reply = c.allocate(
    requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)),
  );
  t.same(summarize(reply, ALICE), success(Method.Allocate));
  t.same(relayed(reply), [
    { family: Family.IPv4, address: RELAY_V4.advertised, port: MIN_PORT },
    { family: Family.IPv6, address: RELAY_V6.advertised, port: MIN_PORT },
  ]);
  t.equal(readAddressErrorCode(reply!.view), undefined);
  t.equal(c.allocation()?.relays.length, 2);
});

t.test(
  'ADDITIONAL-ADDRESS-FAMILY without IPv6: IPv4 only, with ADDRESS-ERROR-CODE 440 for IPv6',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40011);
    const reply = c.allocate(
      requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)),
    );
    t.same(summarize(reply, ALICE), success(Method.Allocate));
    t.same(relayed(reply), [{ family: Family.IPv4, address: RELAY_V4.advertised, port: MIN_PORT }]);
    t.same(readAddressErrorCode(reply!.view), { family: Family.IPv6, code: 440, reason: '' });
    t.same(
      h.allocator.calls[0]?.requests.map((r) => r.family),
      [4],
      'no IPv6 relay asked for',
    );
  },
);

t.test(
  'ADDITIONAL-ADDRESS-FAMILY when only the IPv6 bind fails: IPv4 with an ADDRESS-ERROR-CODE',
  async (t) => {
    const h = new Harness({ allocator: { v6: RELAY_V6 } });
    h.allocator.failing6 = true;
    const c = h.client(ALICE, CLIENT, 40012);
    const reply = c.allocate(
      requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)),
    );
    t.same(summarize(reply, ALICE), success(Method.Allocate));
    t.equal(relayed(reply)?.length, 1);
    const aec = readAddressErrorCode(reply!.view);
    t.equal(aec?.family, Family.IPv6);
    t.equal(aec?.code, 508, 'capacity, not a missing family: 508 (RFC 8656 §7.2)');
  },
);

t.test('400: REQUESTED- with ADDITIONAL-ADDRESS-FAMILY; ADDITIONAL-ADDRESS-FAMILY IPv4', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40013);
  const both = c.allocate(
    requestedTransport((w) => {
      w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv4);
      w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6);
    }),
  );
  t.same(summarize(both, ALICE), failure(Method.Allocate, 400), 'both attributes');
  const v4 = c.allocate(
    requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv4)),
  );
  t.same(summarize(v4, ALICE), failure(Method.Allocate, 400), 'ADDITIONAL-ADDRESS-FAMILY IPv4');
  t.equal(h.allocator.calls.length, 0);
});

t.test(
  'EVEN-PORT with the R bit: an even port and a RESERVATION-TOKEN that later claims port + 1',
  async (t) => {
    const h = new Harness();
    // Take the first port so the allocator has to skip an odd one.
    h.client(BOB, CLIENT, 39999).allocate();
    const c = h.client(ALICE, CLIENT, 40014);
    const reply = c.allocate(requestedTransport((w) => w.addEvenPort(true)));
    t.same(summarize(reply, ALICE), success(Method.Allocate));
    const port = relayed(reply)?.[0]?.port;
    t.equal(port, MIN_PORT + 2, 'the next even port with a free successor');
    const token = readBytes(reply!.view, AttrType.ReservationToken);
    t.equal(token?.length, 8);
    t.same(h.allocator.calls[1]?.requests, [
      { family: 4, evenPort: true, reserveNext: true, reservationToken: undefined },
    ]);
    // Another client (another 5-tuple) uses the token.
    const other = h.client(BOB, '192.0.2.11', 40015);
    const claimed = other.allocate(requestedTransport((w) => w.addBytes(AttrType.ReservationToken, token!)));
    t.same(summarize(claimed, BOB), success(Method.Allocate));
    t.equal(relayed(claimed)?.[0]?.port, MIN_PORT + 3, 'the reserved port');
    t.ok(h.allocator.calls[2]?.requests[0]?.reservationToken?.equals(token!), 'the allocator got the token');
    const again = h.client(BOB, '192.0.2.12', 40016);
    t.same(
      summarize(
        again.allocate(requestedTransport((w) => w.addBytes(AttrType.ReservationToken, token!))),
        BOB,
      ),
      failure(Method.Allocate, 508),
      'a used token: 508',
    );
    const even = h.client(BOB, '192.0.2.13', 40017).allocate(requestedTransport((w) => w.addEvenPort(false)));
    t.equal((relayed(even)?.[0]?.port ?? 1) % 2, 0, 'EVEN-PORT without R: even');
    t.equal(readBytes(even!.view, AttrType.ReservationToken), undefined, 'and no token');
  },
);

t.test('400: RESERVATION-TOKEN with EVEN-PORT or an address family; EVEN-PORT without a value', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40018);
  const token = Buffer.alloc(8, 1);
  const cases: [string, Build][] = [
    ['with EVEN-PORT', (w) => w.addBytes(AttrType.ReservationToken, token).addEvenPort(false)],
    [
      'with REQUESTED-ADDRESS-FAMILY',
      (w) => w.addBytes(AttrType.ReservationToken, token).addLeadingByte(AttrType.RequestedAddressFamily, 1),
    ],
    [
      'with ADDITIONAL-ADDRESS-FAMILY',
      (w) => w.addBytes(AttrType.ReservationToken, token).addLeadingByte(AttrType.AdditionalAddressFamily, 2),
    ],
    ['a 4-byte token', (w) => w.addBytes(AttrType.ReservationToken, Buffer.alloc(4))],
    ['an empty EVEN-PORT', (w) => w.addBytes(AttrType.EvenPort, Buffer.alloc(0))],
  ];
  for (const [name, extra] of cases) {
    t.same(summarize(c.allocate(requestedTransport(extra)), ALICE), failure(Method.Allocate, 400), name);
  }
  t.equal(h.allocator.calls.length, 0);
});

t.test('EVEN-PORT with the R bit together with ADDITIONAL-ADDRESS-FAMILY → 400', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40019);
  const reply = c.allocate(
    requestedTransport((w) => {
      w.addEvenPort(true);
      w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6);
    }),
  );
  t.same(summarize(reply, ALICE), failure(Method.Allocate, 400), '400');
  t.equal(h.allocator.calls.length, 0, 'no relay bound');
});

t.test('486: the user quota counts allocations per REST userid, whatever the expiry', async (t) => {
  const h = new Harness({ turn: { userQuota: 2 } });
  const base = h.nowSec + 3600;
  const carol = (k: number) => h.client(restUser(SECRETS[k % 2]!, base + k, 'carol'), CLIENT, 43000 + k);
  const c0 = carol(0);
  t.same(summarize(c0.allocate(), c0.creds), success(Method.Allocate));
  const c1 = carol(1);
  t.same(summarize(c1.allocate(), c1.creds), success(Method.Allocate), 'another username, same userid');
  const c2 = carol(2);
  t.same(summarize(c2.allocate(), c2.creds), failure(Method.Allocate, 486), 'third for carol');
  const dave = h.client(restUser(SECRETS[0]!, base, 'dave'), CLIENT, 43010);
  t.same(summarize(dave.allocate(), dave.creds), success(Method.Allocate), 'dave has his own quota');
  t.same(summarize(c0.refresh(0), c0.creds), success(Method.Refresh));
  t.same(summarize(c2.allocate(), c2.creds), success(Method.Allocate), 'room again after a delete');
});

t.test('508 when the total quota is reached', async (t) => {
  const h = new Harness({ turn: { totalQuota: 2 } });
  t.same(summarize(h.client(ALICE, CLIENT, 40020).allocate(), ALICE), success(Method.Allocate));
  t.same(summarize(h.client(BOB, CLIENT, 40021).allocate(), BOB), success(Method.Allocate));
  t.same(summarize(h.client(ALICE, CLIENT, 40022).allocate(), ALICE), failure(Method.Allocate, 508));
  t.equal(h.service.table.size, 2);
});

t.test('508 when the allocator fails; the 5-tuple is free again afterwards', async (t) => {
  const h = new Harness({ turn: { userQuota: 1 } });
  const c = h.client(ALICE, CLIENT, 40023);
  h.allocator.failing = true;
  t.same(summarize(c.allocate(), ALICE), failure(Method.Allocate, 508));
  t.equal(h.service.table.size, 0, 'nothing left in the table');
  t.equal(h.stats.allocateFailures, 1);
  t.equal(h.events.length, 0, 'no lifecycle event for a failed Allocate');
  h.allocator.failing = false;
  t.same(summarize(c.allocate(), ALICE), success(Method.Allocate), 'same 5-tuple, same user quota of 1');
});

t.test('port exhaustion: a full range answers 508 until a relay is released', async (t) => {
  const h = new Harness();
  const ports = MAX_PORT - MIN_PORT + 1;
  const clients = Array.from({ length: ports + 1 }, (_, i) => h.client(ALICE, CLIENT, 44000 + i));
  for (const c of clients.slice(0, ports)) t.same(summarize(c.allocate(), ALICE), success(Method.Allocate));
  const last = clients[ports]!;
  t.same(summarize(last.allocate(), ALICE), failure(Method.Allocate, 508), 'no port left');
  t.equal(h.service.table.size, ports);
  clients[3]!.refresh(0);
  const reply = last.allocate();
  t.same(summarize(reply, ALICE), success(Method.Allocate), 'the freed port is reused');
  t.equal(relayed(reply)?.[0]?.port, MIN_PORT + 3);
});

t.test('a dual allocation whose IPv4 bind fails is refused and its IPv6 relay closed', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6, minPort: MIN_PORT, maxPort: MIN_PORT } });
  const first = h.client(ALICE, CLIENT, 40024);
  t.same(summarize(first.allocate(), ALICE), success(Method.Allocate), 'takes the only IPv4 port');
  const c = h.client(BOB, CLIENT, 40025);
  const reply = c.allocate(
    requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)),
  );
  t.same(summarize(reply, BOB), failure(Method.Allocate, 508));
  const v6 = h.allocator.relays.filter((r) => r.family === 6);
  t.equal(v6.length, 1, 'the IPv6 relay was bound');
  t.equal(v6[0]?.closeCount, 1, 'and closed again');
  t.equal(h.service.table.size, 1);
});

t.test('a request with FINGERPRINT gets one in the answer', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40026);
  c.login();
  const reply = c.exchange(
    c.build(Method.Allocate, requestedTransport(), { fingerprint: true, tid: freshTid() }),
  );
  t.same(summarize(reply, ALICE), success(Method.Allocate));
  t.ok(reply!.view.fingerprintAt > 0);
});

t.test('while draining: 508, or 300 Try Alternate with ALTERNATE-SERVER in turn', async (t) => {
  const plain = new Harness();
  plain.service.setDraining(true);
  t.same(summarize(plain.client(ALICE, CLIENT, 40027).allocate(), ALICE), failure(Method.Allocate, 508));
  const alternates = [
    { address: '198.51.100.50', port: 3478 },
    { address: '2001:db8::50', port: 3479 },
  ];
  const h = new Harness({ turn: { alternateServers: alternates } });
  const c = h.client(ALICE, CLIENT, 40028);
  t.same(summarize(c.allocate(), ALICE), success(Method.Allocate), 'before draining');
  h.service.setDraining(true);
  for (const expected of [...alternates, alternates[0]!]) {
    const reply = h.client(BOB, CLIENT, 40029).allocate();
    t.same(summarize(reply, BOB), failure(Method.Allocate, 300));
    t.same(readAddress(reply!.view, AttrType.AlternateServer), {
      family: expected.address.includes(':') ? Family.IPv6 : Family.IPv4,
      ...expected,
    });
  }
  t.same(summarize(c.refresh(), ALICE), success(Method.Refresh), 'existing allocations are served');
  h.service.setDraining(false);
  t.same(summarize(h.client(BOB, CLIENT, 40030).allocate(), BOB), success(Method.Allocate), 'drain over');
});

t.test(
  'allocation-default-address-family: ipv4, ipv6 and keep for Allocates that name no family',
  async (t) => {
    const families = (policy: 'ipv4' | 'ipv6' | 'keep', v6: boolean, client: string): number[] => {
      const h = new Harness({ turn: { defaultFamily: policy }, allocator: v6 ? { v6: RELAY_V6 } : {} });
      const c = h.client(ALICE, client, 40100);
      c.allocate();
      return c.allocation()!.relays.map((r) => r.family);
    };
    t.same(families('ipv4', true, '2001:db8::5'), [4], 'ipv4: the RFC default, whatever the client');
    t.same(families('ipv6', true, '192.0.2.5'), [6], 'ipv6');
    t.same(families('ipv6', false, '192.0.2.5'), [4], 'ipv6 without an IPv6 relay address: IPv4');
    t.same(families('keep', true, '2001:db8::5'), [6], 'keep: an IPv6 client gets an IPv6 relay');
    t.same(families('keep', true, '192.0.2.5'), [4], 'keep: an IPv4 client an IPv4 one');
    t.same(families('keep', true, '::ffff:192.0.2.5'), [4], 'keep: IPv4 on a dual-stack socket is IPv4');
    t.same(families('keep', false, '2001:db8::5'), [4], 'keep without an IPv6 relay address: IPv4');
    // An explicit REQUESTED-ADDRESS-FAMILY still decides.
    const h = new Harness({ turn: { defaultFamily: 'ipv6' }, allocator: { v6: RELAY_V6 } });
    const c = h.client(ALICE, '192.0.2.6', 40101);
    c.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv4)));
    t.same(
      c.allocation()!.relays.map((r) => r.family),
      [4],
      'REQUESTED-ADDRESS-FAMILY IPv4 wins over the default',
    );
  },
);
