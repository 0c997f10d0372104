/* turnpike native data plane: packet formats. See packet.h. */
#include "packet.h"

#include <string.h>

#define ATTR_XOR_MAPPED_ADDRESS 0x0020u
#define ATTR_XOR_PEER_ADDRESS 0x0012u
#define ATTR_DATA 0x0013u
#define ATTR_SOFTWARE 0x8022u
#define ATTR_FINGERPRINT 0x8028u
#define FINGERPRINT_XOR 0x5354554Eu

#define TYPE_BINDING_REQUEST 0x0001u
#define TYPE_BINDING_SUCCESS 0x0101u
#define TYPE_SEND_INDICATION 0x0016u
#define TYPE_DATA_INDICATION 0x0017u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* CRC-32 (ISO-HDLC polynomial, reflected 0xEDB88320), table built on first use. */
static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
  __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

uint32_t tp_fingerprint(const uint8_t *buf, size_t len) {
  /* Racing first calls compute the same table; the flag only saves the work afterwards. */
  if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE)) crc_init();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) c = crc_table[(c ^ buf[i]) & 0xFF] ^ (c >> 8);
  return (c ^ 0xFFFFFFFFu) ^ FINGERPRINT_XOR;
}

int tp_classify(const uint8_t *buf, size_t len, uint16_t *channel, uint16_t *data_len) {
  if (len < 4) return TP_KIND_OTHER;
  uint8_t b0 = buf[0];
  if (b0 >= 0x40 && b0 <= 0x7F) {
    uint16_t ch = rd16(buf);
    uint16_t dl = rd16(buf + 2);
    if ((size_t)TP_CHANNEL_HEADER + dl > len) return TP_KIND_OTHER;
    *channel = ch;
    *data_len = dl;
    return TP_KIND_CHANNEL_DATA;
  }
  if (b0 <= 3) {
    if (len < TP_STUN_HEADER) return TP_KIND_OTHER;
    uint16_t mlen = rd16(buf + 2);
    if ((mlen & 3) != 0 || (size_t)TP_STUN_HEADER + mlen != len) return TP_KIND_OTHER;
    if (rd32(buf + 4) != TP_MAGIC_COOKIE) return TP_KIND_OTHER;
    return TP_KIND_STUN;
  }
  return TP_KIND_OTHER;
}

/*
 * Walks the attributes of a STUN message whose header tp_classify accepted (len = 20 + length,
 * a multiple of 4). Calls back for each attribute with its type, value and value length; the
 * callback returns 0 to stop with TP_UPCALL. A FINGERPRINT must be the last attribute and
 * correct; *has_fingerprint reports it.
 */
typedef int (*attr_fn)(void *ctx, uint16_t type, const uint8_t *value, uint16_t vlen);

static int walk_attributes(const uint8_t *buf, size_t len, attr_fn fn, void *ctx, int *has_fingerprint) {
  size_t at = TP_STUN_HEADER;
  *has_fingerprint = 0;
  while (at < len) {
    if (len - at < 4) return TP_UPCALL;
    uint16_t type = rd16(buf + at);
    uint16_t vlen = rd16(buf + at + 2);
    size_t padded = ((size_t)vlen + 3) & ~(size_t)3;
    if (len - at - 4 < padded) return TP_UPCALL;
    const uint8_t *value = buf + at + 4;
    if (type == ATTR_FINGERPRINT) {
      if (vlen != 4 || at + 8 != len) return TP_UPCALL;
      if (rd32(value) != tp_fingerprint(buf, at)) return TP_UPCALL;
      *has_fingerprint = 1;
      return TP_OK;
    }
    if (!fn(ctx, type, value, vlen)) return TP_UPCALL;
    at += 4 + padded;
  }
  return TP_OK;
}

/* Binding: comprehension-optional attributes (0x8000-0xFFFF) are ignored, as the control plane
 * does; any comprehension-required one (USERNAME, MESSAGE-INTEGRITY, an unknown one that needs a
 * 420) goes up. */
static int binding_attr(void *ctx, uint16_t type, const uint8_t *value, uint16_t vlen) {
  (void)ctx;
  (void)value;
  (void)vlen;
  return type >= 0x8000u;
}

int tp_parse_binding_request(const uint8_t *buf, size_t len, int *has_fingerprint) {
  if (len < TP_STUN_HEADER || len > 0xFFFF + TP_STUN_HEADER) return TP_UPCALL;
  if (rd16(buf) != TYPE_BINDING_REQUEST || rd32(buf + 4) != TP_MAGIC_COOKIE) return TP_UPCALL;
  if ((size_t)TP_STUN_HEADER + rd16(buf + 2) != len) return TP_UPCALL;
  return walk_attributes(buf, len, binding_attr, NULL, has_fingerprint);
}

/* Writes an XOR-address attribute value (RFC 8489 §14.2): 8 or 20 bytes. `header` is the
 * message's first 20 bytes (cookie and transaction ID). */
static size_t write_xor_address(uint8_t *out, const tp_addr *a, const uint8_t *header) {
  out[0] = 0;
  out[1] = a->family == 4 ? 0x01 : 0x02;
  wr16(out + 2, (uint16_t)(a->port ^ (TP_MAGIC_COOKIE >> 16)));
  size_t n = a->family == 4 ? 4 : 16;
  for (size_t k = 0; k < n; k++) out[4 + k] = a->ip[k] ^ header[4 + k];
  return 4 + n;
}

size_t tp_build_binding_response(const uint8_t *req, const tp_addr *src, const char *software,
                                 size_t software_len, int fingerprint, uint8_t *out, size_t cap) {
  if (src->family != 4 && src->family != 6) return 0;
  size_t addr_len = src->family == 4 ? 8 : 20;
  size_t sw_padded = (software_len + 3) & ~(size_t)3;
  if (software_len > 763) return 0; /* RFC 8489 §14.14: fewer than 128 characters (763 bytes) */
  size_t total = TP_STUN_HEADER + 4 + addr_len + (software_len > 0 ? 4 + sw_padded : 0) + (fingerprint ? 8 : 0);
  if (total > cap) return 0;
  wr16(out, TYPE_BINDING_SUCCESS);
  wr16(out + 2, (uint16_t)(total - TP_STUN_HEADER));
  memcpy(out + 4, req + 4, 16); /* cookie and transaction ID */
  size_t at = TP_STUN_HEADER;
  wr16(out + at, ATTR_XOR_MAPPED_ADDRESS);
  wr16(out + at + 2, (uint16_t)addr_len);
  at += 4 + write_xor_address(out + at + 4, src, out);
  if (software_len > 0) {
    wr16(out + at, ATTR_SOFTWARE);
    wr16(out + at + 2, (uint16_t)software_len);
    memcpy(out + at + 4, software, software_len);
    memset(out + at + 4 + software_len, 0, sw_padded - software_len);
    at += 4 + sw_padded;
  }
  if (fingerprint) {
    wr16(out + at, ATTR_FINGERPRINT);
    wr16(out + at + 2, 4);
    wr32(out + at + 4, tp_fingerprint(out, at));
    at += 8;
  }
  return at;
}

struct send_ctx {
  const uint8_t *header;
  tp_addr *peer;
  const uint8_t *data;
  uint16_t data_len;
  int peers;
  int datas;
};

static int send_attr(void *vctx, uint16_t type, const uint8_t *value, uint16_t vlen) {
  struct send_ctx *c = (struct send_ctx *)vctx;
  if (type == ATTR_XOR_PEER_ADDRESS) {
    if (++c->peers > 1 || vlen < 4) return 0;
    uint8_t fam = value[1];
    size_t n = fam == 0x01 ? 4 : fam == 0x02 ? 16 : 0;
    if (n == 0 || n > sizeof c->peer->ip || vlen != 4 + n) return 0;
    uint8_t ip[16] = {0};
    memcpy(ip, value + 4, n);
    for (size_t k = 0; k < sizeof ip; k++) ip[k] ^= k < n ? c->header[4 + k] : 0;
    c->peer->family = fam == 0x01 ? 4 : 6;
    c->peer->port = (uint16_t)(rd16(value + 2) ^ (TP_MAGIC_COOKIE >> 16));
    memcpy(c->peer->ip, ip, sizeof ip);
    return 1;
  }
  if (type == ATTR_DATA) {
    if (++c->datas > 1) return 0;
    c->data = value;
    c->data_len = vlen;
    return 1;
  }
  return type >= 0x8000u;
}

int tp_parse_send_indication(const uint8_t *buf, size_t len, tp_addr *peer, const uint8_t **data,
                             uint16_t *data_len) {
  if (len < TP_STUN_HEADER || len > 0xFFFF + TP_STUN_HEADER) return TP_UPCALL;
  if (rd16(buf) != TYPE_SEND_INDICATION || rd32(buf + 4) != TP_MAGIC_COOKIE) return TP_UPCALL;
  if ((size_t)TP_STUN_HEADER + rd16(buf + 2) != len) return TP_UPCALL;
  struct send_ctx c = {buf, peer, NULL, 0, 0, 0};
  int fp = 0;
  if (walk_attributes(buf, len, send_attr, &c, &fp) != TP_OK) return TP_UPCALL;
  if (c.peers != 1 || c.datas != 1) return TP_UPCALL;
  *data = c.data;
  *data_len = c.data_len;
  return TP_OK;
}

size_t tp_build_data_indication_head(const tp_addr *peer, uint16_t data_len, const uint8_t tid[12],
                                     uint8_t *out, size_t cap) {
  if (peer->family != 4 && peer->family != 6) return 0;
  size_t addr_len = peer->family == 4 ? 8 : 20;
  size_t head = TP_STUN_HEADER + 4 + addr_len + 4;
  size_t body = head - TP_STUN_HEADER + data_len + ((4 - (data_len & 3)) & 3);
  if (body > 0xFFFF || head > cap) return 0;
  wr16(out, TYPE_DATA_INDICATION);
  wr16(out + 2, (uint16_t)body);
  wr32(out + 4, TP_MAGIC_COOKIE);
  memcpy(out + 8, tid, 12);
  wr16(out + 20, ATTR_XOR_PEER_ADDRESS);
  wr16(out + 22, (uint16_t)addr_len);
  size_t at = 24 + write_xor_address(out + 24, peer, out);
  wr16(out + at, ATTR_DATA);
  wr16(out + at + 2, data_len);
  return at + 4;
}
