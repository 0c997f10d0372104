/*
 * Fuzzing the native packet parsers (native/packet.c).
 *
 *  - As a libFuzzer target: clang -fsanitize=fuzzer,address,undefined packet-fuzz.c ../packet.c
 *  - Standalone (what CI runs, with gcc and AddressSanitizer/UBSan): a mutation fuzzer seeded with
 *    valid messages of every kind the parsers accept, mutated by bit flips, byte writes, length
 *    field edits, truncation, extension and attribute splicing:
 *      gcc -DTP_FUZZ_MAIN -fsanitize=address,undefined packet-fuzz.c ../packet.c && ./a.out N SEED
 *
 * Besides "no crash, no out-of-bounds access", each input checks the parsers' promises: a view
 * they return lies inside the input, what the builders write parses back, a Binding response is a
 * well-formed STUN message of the length returned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../packet.h"

static void fail(const char *what) {
  fprintf(stderr, "packet-fuzz: invariant broken: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A heap copy of exactly `size` bytes, so that AddressSanitizer sees any read past the end. */
  uint8_t *buf = (uint8_t *)malloc(size > 0 ? size : 1);
  if (buf == NULL) return 0;
  if (size > 0) memcpy(buf, data, size);
  else buf[0] = 0;

  uint16_t channel = 0, data_len = 0;
  int kind = tp_classify(buf, size, &channel, &data_len);
  if (kind == TP_KIND_CHANNEL_DATA && (size_t)TP_CHANNEL_HEADER + data_len > size) fail("channel data length");
  if (kind == TP_KIND_STUN && (size < TP_STUN_HEADER || (size & 3) != 0)) fail("stun length");

  int fp = 0;
  if (tp_parse_binding_request(buf, size, &fp) == TP_OK) {
    if (kind != TP_KIND_STUN) fail("binding accepted but not classified as STUN");
    static const char sw[] = "turnpike";
    tp_addr src;
    memset(&src, 0, sizeof src);
    src.family = (size & 1) ? 6 : 4;
    for (int i = 0; i < 16; i++) src.ip[i] = (uint8_t)(size + i);
    src.port = (uint16_t)(size * 7);
    uint8_t out[512];
    size_t n = tp_build_binding_response(buf, &src, sw, (size & 2) ? sizeof sw - 1 : 0, fp, out, sizeof out);
    if (n == 0) fail("binding response not built");
    uint16_t c2, d2;
    if (tp_classify(out, n, &c2, &d2) != TP_KIND_STUN) fail("binding response is not STUN");
    if (memcmp(out + 8, buf + 8, 12) != 0) fail("binding response transaction ID");
    if (fp) {
      uint32_t want = tp_fingerprint(out, n - 8);
      uint32_t got = ((uint32_t)out[n - 4] << 24) | ((uint32_t)out[n - 3] << 16) | ((uint32_t)out[n - 2] << 8) | out[n - 1];
      if (want != got) fail("binding response fingerprint");
    }
    /* Too small a buffer is refused, never overrun. */
    uint8_t *tight = (uint8_t *)malloc(n - 1);
    if (tight != NULL) {
      if (tp_build_binding_response(buf, &src, sw, (size & 2) ? sizeof sw - 1 : 0, fp, tight, n - 1) != 0)
        fail("binding response overran its buffer");
      free(tight);
    }
  }

  tp_addr peer;
  const uint8_t *payload = NULL;
  uint16_t plen = 0;
  if (tp_parse_send_indication(buf, size, &peer, &payload, &plen) == TP_OK) {
    if (payload < buf || payload + plen > buf + size) fail("send indication data outside the input");
    if (peer.family != 4 && peer.family != 6) fail("send indication peer family");
    uint8_t tid[12];
    memcpy(tid, buf + 8, 12);
    uint8_t head[64];
    size_t hl = tp_build_data_indication_head(&peer, plen, tid, head, sizeof head);
    if (hl != 0) {
      /* Head + data + padding is a Send-indication-shaped message: parse the Data indication back by
       * turning it into a Send indication (same attributes). */
      size_t pad = (4 - (plen & 3)) & 3;
      size_t total = hl + plen + pad;
      uint8_t *msg = (uint8_t *)malloc(total);
      if (msg == NULL) fail("malloc");
      memcpy(msg, head, hl);
      memcpy(msg + hl, payload, plen);
      memset(msg + hl + plen, 0, pad);
      msg[1] = 0x16;
      tp_addr back;
      const uint8_t *bd = NULL;
      uint16_t bl = 0;
      if (tp_parse_send_indication(msg, total, &back, &bd, &bl) != TP_OK) fail("data indication does not parse back");
      if (bl != plen || memcmp(bd, payload, plen) != 0) fail("data indication payload");
      if (back.port != peer.port || back.family != peer.family ||
          memcmp(back.ip, peer.ip, peer.family == 4 ? 4 : 16) != 0)
        fail("data indication peer");
      free(msg);
    }
  }
  free(buf);
  return 0;
}

#ifdef TP_FUZZ_MAIN
/* ---- the standalone mutation fuzzer ---- */

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

/* A STUN message of `type` with the attributes in attrs (already encoded), optionally FINGERPRINT. */
static size_t stun(uint8_t *out, uint16_t type, const uint8_t *attrs, size_t alen, int fingerprint) {
  put16(out, type);
  put16(out + 2, (uint16_t)(alen + (fingerprint ? 8 : 0)));
  put32(out + 4, TP_MAGIC_COOKIE);
  for (int i = 0; i < 12; i++) out[8 + i] = (uint8_t)rnd();
  memcpy(out + 20, attrs, alen);
  size_t n = 20 + alen;
  if (fingerprint) {
    put16(out + n, 0x8028);
    put16(out + n + 2, 4);
    put32(out + n + 4, tp_fingerprint(out, n));
    n += 8;
  }
  return n;
}

static size_t seed(uint8_t *out, int which) {
  uint8_t attrs[256];
  size_t a = 0;
  switch (which % 6) {
    case 0: /* plain Binding request */
      return stun(out, 0x0001, attrs, 0, which & 8);
    case 1: /* Binding with SOFTWARE */
      put16(attrs, 0x8022);
      put16(attrs + 2, 5);
      memcpy(attrs + 4, "hello\0\0\0", 8);
      return stun(out, 0x0001, attrs, 12, which & 8);
    case 2: /* Send indication, IPv4 peer */
    case 3: { /* Send indication, IPv6 peer */
      int v6 = which % 6 == 3;
      put16(attrs, 0x0012);
      put16(attrs + 2, v6 ? 20 : 8);
      attrs[4] = 0;
      attrs[5] = v6 ? 2 : 1;
      put16(attrs + 6, (uint16_t)rnd());
      for (int i = 0; i < (v6 ? 16 : 4); i++) attrs[8 + i] = (uint8_t)rnd();
      a = v6 ? 24 : 12;
      size_t dl = rnd() % 40;
      put16(attrs + a, 0x0013);
      put16(attrs + a + 2, (uint16_t)dl);
      for (size_t i = 0; i < ((dl + 3) & ~(size_t)3); i++) attrs[a + 4 + i] = i < dl ? (uint8_t)rnd() : 0;
      a += 4 + ((dl + 3) & ~(size_t)3);
      return stun(out, 0x0016, attrs, a, which & 8);
    }
    case 4: { /* ChannelData */
      size_t dl = rnd() % 64;
      put16(out, (uint16_t)(0x4000 + rnd() % 0x1000));
      put16(out + 2, (uint16_t)dl);
      for (size_t i = 0; i < dl; i++) out[4 + i] = (uint8_t)rnd();
      return 4 + dl;
    }
    default: /* random bytes */ {
      size_t n = rnd() % 96;
      for (size_t i = 0; i < n; i++) out[i] = (uint8_t)rnd();
      return n;
    }
  }
}

static size_t mutate(uint8_t *b, size_t n, size_t cap) {
  int rounds = 1 + (int)(rnd() % 4);
  for (int r = 0; r < rounds; r++) {
    switch (rnd() % 8) {
      case 0: if (n) b[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;
      case 1: if (n) b[rnd() % n] = (uint8_t)rnd(); break;
      case 2: if (n >= 4) put16(b + 2, (uint16_t)(rnd() % 2 ? rnd() : (uint16_t)((b[2] << 8 | b[3]) + (rnd() % 9) - 4))); break;
      case 3: if (n) n = rnd() % n; break; /* truncate */
      case 4: { size_t k = rnd() % 16; while (k-- && n < cap) b[n++] = (uint8_t)rnd(); break; }
      case 5: if (n > 24) { size_t at = 20 + (rnd() % (n - 20)) / 4 * 4; if (at + 4 <= n) put16(b + at + 2, (uint16_t)rnd()); } break; /* an attribute length */
      case 6: if (n > 24) { size_t at = 20 + (rnd() % (n - 20)) / 4 * 4; if (at + 2 <= n) put16(b + at, (uint16_t)(rnd() % 2 ? 0x8028 : rnd())); } break; /* an attribute type */
      default: if (n >= 20) put16(b + 2, (uint16_t)(n - 20)); break; /* make the length consistent */
    }
  }
  return n;
}

int main(int argc, char **argv) {
  long iterations = argc > 1 ? atol(argv[1]) : 1000000;
  rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 0x9E3779B97F4A7C15ull;
  if (rng_state == 0) rng_state = 1;
  static uint8_t b[70000];
  long accepted[3] = {0, 0, 0};
  for (long i = 0; i < iterations; i++) {
    size_t n = seed(b, (int)(rnd() % 16));
    if (rnd() % 8 != 0) n = mutate(b, n, sizeof b);
    LLVMFuzzerTestOneInput(b, n);
    int fp;
    tp_addr peer;
    const uint8_t *d;
    uint16_t dl, c;
    if (tp_parse_binding_request(b, n, &fp) == TP_OK) accepted[0]++;
    if (tp_parse_send_indication(b, n, &peer, &d, &dl) == TP_OK) accepted[1]++;
    if (tp_classify(b, n, &c, &dl) == TP_KIND_CHANNEL_DATA) accepted[2]++;
  }
  /* The corpus must reach the accepting paths, or the run proved little. */
  printf("{\"iterations\":%ld,\"binding\":%ld,\"send\":%ld,\"channelData\":%ld}\n", iterations, accepted[0],
         accepted[1], accepted[2]);
  return accepted[0] > 0 && accepted[1] > 0 && accepted[2] > 0 ? 0 : 2;
}
#endif
