/**
 * `TurnService.peerPortRule`: the peer policy for every port of one IP at once, as a data plane
 * that checks Send indications itself (the native one) needs it. For each kind of address (allowed,
 * denied, the server's own listener, its relay addresses local and advertised, IPv6, a disguised
 * IPv4, an allowed IP after a reload that denies it) the rule must agree with `peerAllowed` on all
 * 65 536 ports.
 */
import t from 'tap';
import type { PeerPortRule } from '../../../src/core/turn/service.js';
import { Harness, RELAY_V4, RELAY_V6, SERVICE } from '../../fixtures/helpers/turn-core-harness.js';

function allows(rule: PeerPortRule, port: number): boolean {
  return port !== 0 && port >= rule.lo && port <= rule.hi && !rule.denied.includes(port);
}

const ADDRESSES = [
  '198.51.100.7', // allowed list
  SERVICE.address, // allowed, with the server's listener on port 3478
  RELAY_V4.advertised, // own relay, advertised (1:1 NAT), with a service port
  RELAY_V4.local, // own relay, local
  RELAY_V6.local, // own IPv6 relay
  '2001:db8::7', // allowed IPv6
  '::ffff:198.51.100.1', // the listener's address, disguised as IPv4-mapped IPv6
  '192.0.2.99', // not allowed (documentation range, not in the allowed list)
  '127.0.0.1', // always denied (loopback, not allowed here)
  '10.1.2.3', // private, default-denied, not ours
];

t.test('peerPortRule agrees with peerAllowed on every port', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  for (const address of ADDRESSES) {
    const rule = h.service.peerPortRule(address);
    let disagree = -1;
    for (let port = 0; port <= 0xffff && disagree < 0; port++)
      if (allows(rule, port) !== h.service.peerAllowed(address, port)) disagree = port;
    t.equal(disagree, -1, `${address}: ${JSON.stringify(rule)}`);
  }
  t.same(h.service.peerPortRule(SERVICE.address).denied, [SERVICE.port], 'the listener port is excluded');
  t.ok(h.service.peerPortRule(RELAY_V4.local).hi < 0xffff, 'an own relay address: relay ports only');
  const none = h.service.peerPortRule('192.0.2.99');
  t.ok(none.lo > none.hi, 'a refused IP: no port at all');
});
