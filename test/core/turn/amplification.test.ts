/**
 * Byte amplification of answers to unauthenticated requests: what a spoofed request can make the
 * server send to a victim. Each case prints request bytes, response bytes and their ratio, and
 * pins the measured sizes so that a regression (a bigger challenge, an echoed attribute) shows.
 * Configuration as shipped: no SOFTWARE, no reason phrases, SHA-256 offered, realm "example.org".
 */
import t from 'tap';
import { AttrType, Class, Method, Transport } from '../../../src/core/constants.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import { decode, errorOf, freshTid, Harness, T0_MS } from '../../fixtures/helpers/turn-core-harness.js';

const VICTIM = '203.0.113.99';
const VICTIM6 = '2001:db8:dead::99';

/** Chrome's first Allocate: REQUESTED-TRANSPORT only. */
function chromeAllocate(): Buffer {
  return new StunWriter()
    .start(Method.Allocate, Class.Request, freshTid())
    .addLeadingByte(AttrType.RequestedTransport, Transport.UDP)
    .finish();
}

/** coturn's turnutils_uclient: SOFTWARE and FINGERPRINT as well. */
function uclientAllocate(): Buffer {
  return new StunWriter()
    .start(Method.Allocate, Class.Request, freshTid())
    .addLeadingByte(AttrType.RequestedTransport, Transport.UDP)
    .addString(AttrType.Software, "Coturn-4.6.2 'Gorst'")
    .addFingerprint()
    .finish();
}

interface Case {
  readonly name: string;
  readonly request: () => Buffer;
  readonly from: string;
  /** Expected answer: error code, or 'success'. */
  readonly answer: number | 'success';
  readonly requestBytes: number;
  readonly responseBytes: number;
}

const CASES: readonly Case[] = [
  {
    name: '401 to Allocate (Chrome: REQUESTED-TRANSPORT)',
    request: chromeAllocate,
    from: VICTIM,
    answer: 401,
    requestBytes: 28,
    responseBytes: 92,
  },
  {
    name: '401 to Allocate (uclient: +SOFTWARE +FINGERPRINT)',
    request: uclientAllocate,
    from: VICTIM,
    answer: 401,
    requestBytes: 60,
    responseBytes: 100,
  },
  {
    name: '420 to Binding with a 4-byte unknown attribute',
    request: () =>
      new StunWriter()
        .start(Method.Binding, Class.Request, freshTid())
        .addBytes(0x0003, Buffer.alloc(4))
        .finish(),
    from: VICTIM,
    answer: 420,
    requestBytes: 28,
    responseBytes: 36,
  },
  {
    name: '420 to Binding with an empty unknown attribute',
    request: () =>
      new StunWriter()
        .start(Method.Binding, Class.Request, freshTid())
        .addBytes(0x0003, Buffer.alloc(0))
        .finish(),
    from: VICTIM,
    answer: 420,
    requestBytes: 24,
    responseBytes: 36,
  },
  {
    name: '400 to an unknown method',
    request: () => new StunWriter().start(0x0ff, Class.Request, freshTid()).finish(),
    from: VICTIM,
    answer: 400,
    requestBytes: 20,
    responseBytes: 28,
  },
  {
    name: 'Binding success to an IPv4 source',
    request: () => new StunWriter().start(Method.Binding, Class.Request, freshTid()).finish(),
    from: VICTIM,
    answer: 'success',
    requestBytes: 20,
    responseBytes: 32,
  },
  {
    name: 'Binding success to an IPv6 source',
    request: () => new StunWriter().start(Method.Binding, Class.Request, freshTid()).finish(),
    from: VICTIM6,
    answer: 'success',
    requestBytes: 20,
    responseBytes: 44,
  },
];

const ratio = (response: number, request: number): string => (response / request).toFixed(2);

t.test('amplification of single answers to unauthenticated requests', async (t) => {
  t.comment('request bytes → response bytes (ratio)');
  for (const c of CASES) {
    const h = new Harness({ rateLimit: 10 });
    const request = c.request();
    const out = h.handle(request, c.from, 40000);
    t.ok(out, `${c.name}: answered`);
    if (out === null) continue;
    const reply = decode(out);
    if (c.answer === 'success') t.equal(reply.view.cls, Class.Success, c.name);
    else t.equal(errorOf(reply), c.answer, c.name);
    t.comment(`${c.name}: ${request.length} → ${out.length} (${ratio(out.length, request.length)}×)`);
    t.equal(request.length, c.requestBytes, `${c.name}: request bytes`);
    t.equal(out.length, c.responseBytes, `${c.name}: response bytes`);
  }
});

t.test(
  'aggregate factor of a flood of 10 000 unauthenticated Allocates from one source in 1 s',
  async (t) => {
    const h = new Harness({ rateLimit: 10 }); // the default unauthorized-ratelimit-rps
    let requestBytes = 0;
    let responseBytes = 0;
    let answers = 0;
    const n = 10_000;
    for (let i = 0; i < n; i++) {
      h.clock.set(T0_MS + Math.floor((i * 1000) / n)); // evenly over one simulated second
      const request = chromeAllocate();
      requestBytes += request.length;
      const out = h.handle(request, VICTIM, 40000 + (i % 1000));
      if (out !== null) {
        answers++;
        responseBytes += out.length;
      }
    }
    const factor = responseBytes / requestBytes;
    t.comment(
      `flood: ${n} requests, ${requestBytes} B in → ${answers} answers, ${responseBytes} B out: ` +
        `factor ${factor.toFixed(4)}`,
    );
    t.equal(answers, 29, 'a burst of 20, then 10/s');
    t.equal(responseBytes, 29 * 92);
    t.equal(requestBytes, n * 28);
    t.ok(factor < 0.01, 'the server sends less than 1% of what the flood carries');
    t.equal(h.stats.droppedRateLimited, n - answers);
  },
);
