/* turnpike native data plane: steering of a listening address's datagrams (see steer.h). */
#include "steer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <cstdint>

namespace turnpike {

/* Multiplicative hash (2^32 / golden ratio); the high half of the product spreads neighbouring
 * ports and addresses. */
static const uint32_t MIX = 0x9E3779B1u;

static uint32_t word(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int steer_thread(const sockaddr_storage *from, int threads, uint32_t salt) {
  if (threads <= 1) return 0;
  uint32_t x;
  if (from->ss_family == AF_INET) {
    auto *s = reinterpret_cast<const sockaddr_in *>(from);
    x = word(reinterpret_cast<const uint8_t *>(&s->sin_addr)) ^ ntohs(s->sin_port);
  } else if (from->ss_family == AF_INET6) {
    auto *s = reinterpret_cast<const sockaddr_in6 *>(from);
    const uint8_t *a = s->sin6_addr.s6_addr;
    x = word(a) ^ word(a + 4) ^ word(a + 8) ^ word(a + 12) ^ ntohs(s->sin6_port);
  } else {
    return 0;
  }
  return (int)((((x ^ salt) * MIX) >> 16) % (uint32_t)threads);
}

/* Offsets into the IP header (negative: classic BPF's network-header base). */
static uint32_t net(int offset) { return (uint32_t)(SKF_NET_OFF + offset); }

std::vector<sock_filter> steering_program(int family, int threads, uint32_t salt) {
  const uint32_t control = (uint32_t)threads;
  std::vector<sock_filter> p;
  /* The packet starts at the UDP payload. Shorter than a STUN header: a worker's. */
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 20, 0, 6));
  /* Not a STUN message (ChannelData 01, anything else): a worker's. */
  p.push_back(BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0xC0, 4, 0));
  /* Binding request, Send indication: the worker answers or relays them. */
  p.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0001, 2, 0));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0016, 1, 0));
  /* Any other STUN message: a request of the control plane. */
  p.push_back(BPF_STMT(BPF_RET | BPF_K, control));
  /* The worker of the source address and port (steer_thread). */
  if (family == 4) {
    p.push_back(BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, net(0)));       /* X = IP header length */
    p.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_IND, net(0)));        /* UDP source port */
    p.push_back(BPF_STMT(BPF_MISC | BPF_TAX, 0));
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net(12)));       /* source address */
    p.push_back(BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
  } else {
    p.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_ABS, net(40)));       /* UDP source port */
    for (int off = 8; off < 24; off += 4) {                          /* source address, 4 words */
      p.push_back(BPF_STMT(BPF_MISC | BPF_TAX, 0));
      p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net(off)));
      p.push_back(BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
    }
  }
  p.push_back(BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, salt));
  p.push_back(BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, MIX));
  p.push_back(BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16));
  p.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)(threads < 1 ? 1 : threads)));
  p.push_back(BPF_STMT(BPF_RET | BPF_A, 0));
  return p;
}

int attach_steering(int fd, int family, int threads, uint32_t salt) {
  std::vector<sock_filter> p = steering_program(family, threads, salt);
  sock_fprog prog{};
  prog.len = (unsigned short)p.size();
  prog.filter = p.data();
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) return errno;
  return 0;
}

}  // namespace turnpike
