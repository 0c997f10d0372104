/*
 * turnpike native data plane: the packet formats it reads and writes (RFC 8489 STUN, RFC 8656
 * ChannelData, Send and Data indications). Pure functions over byte buffers: no I/O, no
 * allocation, no global state, so they can be fuzzed on their own (native/fuzz/).
 *
 * Every function takes the buffer's length and checks each read against it before the read.
 * Anything not fully understood is reported as such (TP_UPCALL) so that the caller hands the
 * datagram to the JavaScript control plane instead of guessing.
 */
#ifndef TURNPIKE_PACKET_H
#define TURNPIKE_PACKET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_STUN_HEADER 20
#define TP_MAGIC_COOKIE 0x2112A442u
#define TP_CHANNEL_HEADER 4

/* An IP address in network byte order: 4 bytes (family 4) or 16 bytes (family 6). */
typedef struct tp_addr {
  uint8_t family; /* 4 or 6; 0 = none */
  uint8_t ip[16];
  uint16_t port; /* host byte order */
} tp_addr;

/* What a datagram from a client is, by its first bytes (RFC 7983 demultiplexing). */
enum tp_kind {
  TP_KIND_OTHER = 0,        /* not for the fast path: hand it up */
  TP_KIND_CHANNEL_DATA = 1, /* a ChannelData message with a consistent length */
  TP_KIND_STUN = 2,         /* a STUN message header with a consistent length */
};

/* Classifies a client datagram. For ChannelData, sets *channel and *data_len (the data follows
 * the 4-byte header; trailing padding is allowed). Never reads past len. */
int tp_classify(const uint8_t *buf, size_t len, uint16_t *channel, uint16_t *data_len);

/* Results of the STUN fast-path parsers. */
enum tp_verdict {
  TP_UPCALL = 0, /* not understood fully, or not for the fast path: hand it up unchanged */
  TP_OK = 1,
};

/* A plain Binding request (RFC 8489 §7.3.1): the magic cookie, no comprehension-required
 * attribute, and a FINGERPRINT (if any) that is last and correct. *has_fingerprint says whether
 * the answer must carry one. */
int tp_parse_binding_request(const uint8_t *buf, size_t len, int *has_fingerprint);

/* Writes the Binding success response to `req` (already checked by tp_parse_binding_request)
 * for the request's source `src`: XOR-MAPPED-ADDRESS, then SOFTWARE when software_len > 0, then
 * FINGERPRINT when asked. Returns the response length, or 0 when it does not fit in cap. */
size_t tp_build_binding_response(const uint8_t *req, const tp_addr *src, const char *software,
                                 size_t software_len, int fingerprint, uint8_t *out, size_t cap);

/* A Send indication (RFC 8656 §10.2) the fast path can relay: exactly one XOR-PEER-ADDRESS and
 * one DATA attribute, no other comprehension-required attribute (DONT-FRAGMENT included: the
 * control plane counts those), a correct FINGERPRINT if any. Sets the peer and the data view. */
int tp_parse_send_indication(const uint8_t *buf, size_t len, tp_addr *peer, const uint8_t **data,
                             uint16_t *data_len);

/* The head of a Data indication (RFC 8656 §10.3) carrying data_len bytes from `peer`: STUN
 * header with the 12-byte transaction ID `tid`, XOR-PEER-ADDRESS and the DATA attribute header.
 * The data and (4 - data_len % 4) % 4 zero bytes of padding follow it on the wire. Returns the
 * head's length (32 or 44), or 0 when the message would exceed 64 KiB or cap is too small. */
size_t tp_build_data_indication_head(const tp_addr *peer, uint16_t data_len, const uint8_t tid[12],
                                     uint8_t *out, size_t cap);

/* relay-payload-policy webrtc: whether a relayed payload's first byte is in a range RFC 7983 §7
 * gives a protocol a WebRTC session sends: STUN [0..3], DTLS [20..63], RTP/RTCP [128..191]. An
 * empty payload has no first byte and is refused. Reads buf[0] only when len > 0. */
static inline int tp_is_webrtc_payload(const uint8_t *buf, size_t len) {
  if (len == 0) return 0;
  uint8_t b = buf[0];
  return b <= 3 || (b >= 20 && b <= 63) || (b >= 128 && b <= 191);
}

/* The FINGERPRINT value (RFC 8489 §14.7) of buf[0..len). */
uint32_t tp_fingerprint(const uint8_t *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
