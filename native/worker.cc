/*
 * turnpike native data plane: one worker thread. See dataplane.h for ownership rules.
 *
 * Loop: epoll_wait; then, per ready socket, recvmmsg batches of up to BATCH datagrams (a few
 * batches per wake-up so that one busy socket cannot starve the others; epoll is level-triggered
 * and comes back to it). Control operations queued by JS are applied before each batch is
 * processed, so a packet that a client sent after its request was answered sees the state that
 * request installed. Sends produced by a batch are queued and flushed with sendmmsg, one call per
 * run of consecutive datagrams on the same socket; payloads are not copied (iovecs point into the
 * receive buffers, which stay untouched until the flush).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "dataplane.h"

namespace turnpike {

static constexpr int BATCH = 64;
static constexpr size_t RECV_BUF = 65536 + 4; /* the largest UDP payload, and a little to spot truncation */
static constexpr int BATCHES_PER_WAKE = 4;
static constexpr size_t ARENA_SLOT = 256;
/* A receive call gets at least this many free slots (else the pending sends are flushed first). */
static constexpr int MIN_FREE_SLOTS = 16;
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
static const uint8_t ZERO_PAD[4] = {0, 0, 0, 0};

struct Batch {
  mmsghdr rmsg[BATCH];
  iovec riov[BATCH];
  sockaddr_storage rfrom[BATCH];
  uint8_t *rbuf; /* BATCH × RECV_BUF */
  /* Receive slots holding datagrams that queued sends still point into; freed by a flush. */
  int rused = 0;

  int nsend = 0;
  iovec gso_iov[BATCH * 3];
  mmsghdr smsg[BATCH];
  iovec siov[BATCH][3];
  sockaddr_storage sto[BATCH];
  int sfd[BATCH];
  uint8_t arena[BATCH][ARENA_SLOT];
};

/* ---------------------------------------------------------------------------------------------
 * Client 5-tuple table: open addressing with linear probing and backward-shift deletion, keyed on
 * the packed binary (listener, family, IP, port) of an allocation's client. */

static bool same_addr(const tp_addr &a, const tp_addr &b) {
  return a.family == b.family && a.port == b.port && memcmp(a.ip, b.ip, a.family == 4 ? 4 : 16) == 0;
}

static bool same_ip(const tp_addr &a, const tp_addr &b) {
  return a.family == b.family && memcmp(a.ip, b.ip, a.family == 4 ? 4 : 16) == 0;
}

static uint64_t hash_key(int listener, const tp_addr &k) {
  uint64_t w[3];
  memcpy(&w[0], k.ip, 8);
  memcpy(&w[1], k.ip + 8, 8);
  w[2] = ((uint64_t)(uint32_t)listener << 32) | ((uint64_t)k.family << 16) | k.port;
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (uint64_t x : w) {
    h ^= x;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return h;
}

class ClientTable {
 public:
  ClientTable() : slots_(64, nullptr) {}

  Alloc *find(int listener, const tp_addr &k) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash_key(listener, k) & mask;; i = (i + 1) & mask) {
      Alloc *a = slots_[i];
      if (a == nullptr) return nullptr;
      if (a->listener == listener && same_addr(a->client, k)) return a;
    }
  }

  /* Inserts a; an allocation already on the same 5-tuple is replaced (and returned). */
  Alloc *insert(Alloc *a) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t mask = slots_.size() - 1;
    for (size_t i = hash_key(a->listener, a->client) & mask;; i = (i + 1) & mask) {
      Alloc *b = slots_[i];
      if (b == nullptr) {
        slots_[i] = a;
        size_++;
        return nullptr;
      }
      if (b->listener == a->listener && same_addr(b->client, a->client)) {
        slots_[i] = a;
        return b;
      }
    }
  }

  template <typename F>
  void for_each(F f) const {
    for (Alloc *a : slots_)
      if (a != nullptr) f(a);
  }

  void remove(Alloc *a) {
    size_t mask = slots_.size() - 1;
    size_t i = hash_key(a->listener, a->client) & mask;
    for (;; i = (i + 1) & mask) {
      if (slots_[i] == nullptr) return;
      if (slots_[i] == a) break;
    }
    slots_[i] = nullptr;
    size_--;
    /* Backward shift: move later entries of the run into the hole when their home allows. */
    for (size_t j = (i + 1) & mask; slots_[j] != nullptr; j = (j + 1) & mask) {
      size_t home = hash_key(slots_[j]->listener, slots_[j]->client) & mask;
      bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
      if (movable) {
        slots_[i] = slots_[j];
        slots_[j] = nullptr;
        i = j;
      }
    }
  }

 private:
  void grow() {
    std::vector<Alloc *> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, nullptr);
    size_ = 0;
    for (Alloc *a : old)
      if (a != nullptr) insert(a);
  }
  std::vector<Alloc *> slots_;
  size_t size_ = 0;
};

/* --------------------------------------------------------------------------------------------- */

static void to_tp_addr(const sockaddr_storage *sa, tp_addr *out) {
  memset(out, 0, sizeof *out);
  if (sa->ss_family == AF_INET) {
    const sockaddr_in *s = (const sockaddr_in *)sa;
    out->family = 4;
    memcpy(out->ip, &s->sin_addr, 4);
    out->port = ntohs(s->sin_port);
  } else if (sa->ss_family == AF_INET6) {
    const sockaddr_in6 *s = (const sockaddr_in6 *)sa;
    out->family = 6;
    memcpy(out->ip, &s->sin6_addr, 16);
    out->port = ntohs(s->sin6_port);
  }
}

static socklen_t to_sockaddr(const tp_addr &a, sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (a.family == 4) {
    sockaddr_in *s = (sockaddr_in *)out;
    s->sin_family = AF_INET;
    s->sin_port = htons(a.port);
    memcpy(&s->sin_addr, a.ip, 4);
    return sizeof *s;
  }
  sockaddr_in6 *s = (sockaddr_in6 *)out;
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(a.port);
  memcpy(&s->sin6_addr, a.ip, 16);
  return sizeof *s;
}

/* Removes the elements matching `drop`, moving the last one into each hole (order does not matter). */
template <typename T, typename F>
static void erase_unordered(std::vector<T> &v, F drop) {
  for (size_t i = 0; i < v.size();)
    if (drop(v[i])) {
      v[i] = v.back();
      v.pop_back();
    } else {
      i++;
    }
}

/* Moves the operations on `a` out of `from` into `out`, keeping the order of both. */
static void erase_ordered_into(std::vector<Op> &from, std::vector<Op> &out, const Alloc *a) {
  size_t keep = 0;
  for (size_t i = 0; i < from.size(); i++) {
    if (from[i].alloc == a)
      out.push_back(from[i]);
    else
      from[keep++] = from[i];
  }
  from.resize(keep);
}

static void release(Alloc *a) {
  if (a->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete a;
}

/* --------------------------------------------------------------------------------------------- */

Worker::Worker(int index, Shared *shared, std::function<void(int)> wake_js)
    : index_(index), shared_(shared), wake_js_(std::move(wake_js)), clients_(new ClientTable()), batch_(new Batch()) {
  for (auto &s : stats_) s.store(0, std::memory_order_relaxed);
  batch_->rbuf = static_cast<uint8_t *>(std::malloc((size_t)BATCH * RECV_BUF));
}

Worker::~Worker() {
  /* Threads have stopped: free what the tables still hold (allocations JS never uninstalled). */
  for (auto &op : ops_)
    if (op.type != OP_STOP) apply(op);
  ops_.clear();
  /* Never expected after DataPlane::Shutdown drained every thread: let go of what they hold. */
  for (auto &op : deferred_) {
    if (op.type == OP_PERMISSION || op.type == OP_CHANNEL) release(op.alloc);
    else if (op.type == OP_UNINSTALL) unlink(op.alloc);
  }
  deferred_.clear();
  std::vector<Alloc *> linked;
  clients_->for_each([&](Alloc *a) { linked.push_back(a); });
  for (Alloc *a : linked) unlink(a);
  for (Alloc *a : graveyard_) release(a);
  for (auto &u : upcalls_) std::free(u.data);
  for (Source *s : listeners_)
    if (s != nullptr) {
      close(s->fd);
      delete s;
    }
  if (epfd_ >= 0) close(epfd_);
  if (evfd_ >= 0) close(evfd_);
  std::free(batch_->rbuf);
  delete batch_;
  delete clients_;
}

bool Worker::start(std::string *error) {
  if (batch_->rbuf == nullptr) {
    *error = "out of memory";
    return false;
  }
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || evfd_ < 0) {
    *error = std::string("epoll/eventfd: ") + strerror(errno);
    return false;
  }
  control_.kind = SRC_CONTROL;
  control_.fd = evfd_;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &control_;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) != 0) {
    *error = std::string("epoll_ctl: ") + strerror(errno);
    return false;
  }
  /* UDP GSO where the kernel has it (Linux 4.18+): probed once on a scratch socket. */
  int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    int seg = 1200;
    gso_ = setsockopt(probe, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg) == 0;
    close(probe);
  }
  thread_ = std::thread([this] { run(); });
  return true;
}

void Worker::stop_and_join() {
  if (!thread_.joinable()) return;
  Op op{};
  op.type = OP_STOP;
  post(op);
  thread_.join();
}

uint64_t Worker::post(const Op &op, bool wake) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> g(ops_mutex_);
    ops_.push_back(op);
    seq = ++posted_seq_;
  }
  ops_pending_.store(true, std::memory_order_release);
  if (wake) signal();
  return seq;
}

bool Worker::wait_applied(uint64_t seq, int timeout_ms) {
  std::unique_lock<std::mutex> g(applied_mutex_);
  return applied_cv_.wait_for(g, std::chrono::milliseconds(timeout_ms), [&] { return applied_seq_ >= seq; });
}

void Worker::watch_relays(Alloc *a) {
  for (int i = 0; i < a->nrelays; i++) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &a->relays[i];
    epoll_ctl(epfd_, EPOLL_CTL_ADD, a->relays[i].fd, &ev);
  }
}

void Worker::unwatch_relay(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void Worker::signal() {
  /* Nothing left to wake for: a receive since the ops were posted applied them already. */
  if (!ops_pending_.load(std::memory_order_acquire)) return;
  uint64_t one = 1;
  ssize_t r = write(evfd_, &one, sizeof one);
  (void)r; /* EAGAIN: the counter is already non-zero, the worker wakes anyway */
}

void Worker::take_upcalls(std::vector<Upcall> *out) {
  std::lock_guard<std::mutex> g(upcall_mutex_);
  out->swap(upcalls_);
  upcall_bytes_ = 0;
  upcall_signalled_ = false;
}

bool Worker::drain_ops() {
  {
    std::lock_guard<std::mutex> g(ops_mutex_);
    ops_work_.swap(ops_);
  }
  bool any = !ops_work_.empty();
  for (Op &op : ops_work_)
    if (op.type != OP_STOP) apply(op);
  ops_work_.clear();
  return any;
}

void Worker::read_stats(double *out) const {
  for (int i = 0; i < ST_COUNT; i++) out[i] = (double)stats_[i].load(std::memory_order_relaxed);
}

const std::string &Worker::software() {
  uint32_t v = shared_->software_version.load(std::memory_order_acquire);
  if (v != software_seen_) {
    std::lock_guard<std::mutex> g(shared_->software_mutex);
    software_copy_ = shared_->software;
    software_seen_ = v;
  }
  return software_copy_;
}

void Worker::apply_ops() {
  if (!ops_pending_.exchange(false, std::memory_order_acq_rel)) return;
  /* Queued sends may use relay sockets an uninstall is about to close. */
  flush_sends();
  uint64_t upto;
  {
    std::lock_guard<std::mutex> g(ops_mutex_);
    ops_work_.swap(ops_);
    upto = posted_seq_;
  }
  for (Op &op : ops_work_) apply(op);
  ops_work_.clear();
  {
    std::lock_guard<std::mutex> g(applied_mutex_);
    applied_seq_ = upto;
  }
  applied_cv_.notify_all();
}

void Worker::apply(Op &op) {
  /* An operation on an allocation this thread does not own (yet): it is on its way here. */
  if ((op.type == OP_UNINSTALL || op.type == OP_PERMISSION || op.type == OP_CHANNEL || op.type == OP_MOVE) &&
      !owns(op.alloc)) {
    deferred_.push_back(op);
    return;
  }
  switch (op.type) {
    case OP_STOP:
      stop_ = true; /* seen by the loop after the current event, wherever the op was applied */
      break;
    case OP_ADD_LISTENER: {
      Source *s = new Source{SRC_LISTENER, op.fd, op.family, op.listener, nullptr};
      if ((size_t)op.listener >= listeners_.size()) listeners_.resize(op.listener + 1, nullptr);
      listeners_[op.listener] = s;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = s;
      epoll_ctl(epfd_, EPOLL_CTL_ADD, op.fd, &ev);
      break;
    }
    case OP_INSTALL: {
      /* The relay sockets are in the poll set already (watch_relays, by JS). */
      Alloc *a = op.alloc;
      Alloc *old = clients_->insert(a);
      if (old != nullptr) unlink(old); /* JS uninstalls before reinstalling; never expected */
      a->linked = true;
      break;
    }
    case OP_UNINSTALL:
      unlink(op.alloc);
      break;
    case OP_MOVE:
      move_out(op);
      break;
    case OP_ATTACH:
      attach(op.alloc);
      break;
    case OP_PERMISSION: {
      Alloc *a = op.alloc;
      auto &ps = a->permissions;
      for (auto &p : ps)
        if (same_ip(p.ip, op.permission.ip)) {
          p = op.permission;
          release(a);
          return;
        }
      /* Forget expired ones before growing (the control plane caps the live ones). */
      const int64_t now = now_sec_;
      erase_unordered(ps, [now](const Permission &p) { return p.expires_sec <= now; });
      ps.push_back(op.permission);
      break;
    }
    case OP_CHANNEL: {
      Alloc *a = op.alloc;
      auto &cs = a->channels;
      /* The control plane checked the rules (RFC 8656 §11.2): a binding of the same number or of
       * the same peer is a refresh or an expired one being replaced. */
      const Channel &ch = op.channel;
      const int64_t now = now_sec_;
      erase_unordered(cs, [&ch, now](const Channel &c) {
        return c.number == ch.number || same_addr(c.peer, ch.peer) || c.expires_sec <= now;
      });
      cs.push_back(op.channel);
      break;
    }
  }
  /* Operations on an allocation hold a reference taken when they were posted. */
  if (op.type == OP_PERMISSION || op.type == OP_CHANNEL) release(op.alloc);
}

/* RFC 8016: the allocation's client moved to op.client (reaching listener op.listener on thread
 * op.thread). On this thread: a new key in the client table. Else: this thread lets go of it and
 * queues it to the new owner (see the move protocol in dataplane.h). */
void Worker::move_out(Op &op) {
  Alloc *a = op.alloc;
  if (a->linked) {
    clients_->remove(a);
    a->linked = false;
  }
  a->client = op.client;
  a->client_sa_len = to_sockaddr(a->client, &a->client_sa);
  a->listener = op.listener;
  const int to = op.thread;
  if (to == index_ || to < 0 || (size_t)to >= shared_->workers.size()) {
    /* The same thread (an out-of-range one is never queued by JS: stay here rather than drop it). */
    Alloc *old = clients_->insert(a);
    if (old != nullptr) unlink(old);
    a->linked = true;
    return;
  }
  for (int i = 0; i < a->nrelays; i++)
    if (a->relays[i].fd >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, a->relays[i].fd, nullptr);
  /* Events of this round may still point at its relay sources: keep it alive until the round ends. */
  a->refs.fetch_add(1, std::memory_order_relaxed);
  graveyard_.push_back(a);
  a->owner.store(-1, std::memory_order_release);
  Op attach{};
  attach.type = OP_ATTACH;
  attach.alloc = a;
  shared_->workers[to]->post(attach);
}

/* The allocation arrives from another thread: link it, then apply what waited for it, in order. */
void Worker::attach(Alloc *a) {
  a->owner.store(index_, std::memory_order_release);
  Alloc *old = clients_->insert(a);
  if (old != nullptr) unlink(old);
  a->linked = true;
  for (int i = 0; i < a->nrelays; i++) {
    if (a->relays[i].fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &a->relays[i];
    epoll_ctl(epfd_, EPOLL_CTL_ADD, a->relays[i].fd, &ev);
  }
  if (deferred_.empty()) return;
  std::vector<Op> waiting;
  erase_ordered_into(deferred_, waiting, a);
  for (Op &op : waiting) apply(op);
}

void Worker::unlink(Alloc *a) {
  if (a->linked) {
    clients_->remove(a);
    a->linked = false;
  }
  /* EPOLL_CTL_DEL before close: closing ends a registration only with the socket's last reference,
   * and a forked child between fork and exec holds one too. After an uninstall the descriptor is
   * release_port's stand-in, which JS took out of the owner's poll set first; a move applied after
   * the release attaches the stand-in elsewhere, and this takes it out again. */
  for (int i = 0; i < a->nrelays; i++) {
    if (a->relays[i].fd < 0) continue;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, a->relays[i].fd, nullptr);
    close(a->relays[i].fd);
    a->relays[i].fd = -1;
  }
  /* Freed at the end of the event round: events already returned may still point at it. */
  graveyard_.push_back(a);
}

void Worker::run() {
  /* `top -H`, `perf`, /proc/PID/task/TID/comm: tp-relay-0, tp-relay-1, … (15 bytes at most). */
  char name[16];
  snprintf(name, sizeof name, "tp-relay-%d", index_ % 10000);
  pthread_setname_np(pthread_self(), name);
  epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epfd_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    now_sec_ = ts.tv_sec;
    for (int i = 0; i < n; i++) {
      Source *s = static_cast<Source *>(events[i].data.ptr);
      if (s->kind == SRC_CONTROL) {
        uint64_t v;
        ssize_t r = read(evfd_, &v, sizeof v);
        (void)r;
        apply_ops();
        if (stop_) return;
        continue;
      }
      if (s->kind == SRC_LISTENER)
        on_listener(s);
      else
        on_relay(s); /* an unlinked relay has fd -1 and is skipped */
      if (stop_) return;
    }
    /* One flush per round: datagrams from many relay sockets to one listener leave in one call. */
    flush_sends();
    batch_->rused = 0;
    for (Alloc *a : graveyard_) release(a);
    graveyard_.clear();
  }
}

/* Reads up to the free receive slots from fd; the datagrams are in slots [*first, *first + n). */
int Worker::receive(int fd, int *first) {
  Batch &b = *batch_;
  if (BATCH - b.rused < MIN_FREE_SLOTS) {
    flush_sends();
    b.rused = 0;
  }
  int count = BATCH - b.rused;
  for (int i = b.rused; i < BATCH; i++) {
    b.riov[i].iov_base = b.rbuf + (size_t)i * RECV_BUF;
    b.riov[i].iov_len = RECV_BUF;
    b.rmsg[i].msg_hdr = msghdr{};
    b.rmsg[i].msg_hdr.msg_name = &b.rfrom[i];
    b.rmsg[i].msg_hdr.msg_namelen = sizeof b.rfrom[i];
    b.rmsg[i].msg_hdr.msg_iov = &b.riov[i];
    b.rmsg[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd, &b.rmsg[b.rused], (unsigned)count, MSG_DONTWAIT, nullptr);
  if (n <= 0) return 0;
  *first = b.rused;
  b.rused += n;
  load_limits();
  bump(ST_RECV_BATCHES);
  bump(ST_PACKETS_IN, (uint64_t)n);
  return n;
}

void Worker::on_listener(Source *s) {
  Batch &b = *batch_;
  for (int round = 0; round < BATCHES_PER_WAKE; round++) {
    int first = 0;
    int n = receive(s->fd, &first);
    if (n <= 0) return;
    /* Requests answered just before these datagrams were sent installed state: apply it first. */
    apply_ops();
    for (int i = first; i < first + n; i++) {
      size_t len = b.rmsg[i].msg_len;
      if ((b.rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > 65535) {
        bump(ST_TRUNCATED);
        continue;
      }
      client_packet(s->listener, s->fd, b.rbuf + (size_t)i * RECV_BUF, len, &b.rfrom[i],
                    b.rmsg[i].msg_hdr.msg_namelen);
    }
    if (n < MIN_FREE_SLOTS) return; /* drained (a short read): epoll says when there is more */
  }
}

void Worker::on_relay(Source *s) {
  Batch &b = *batch_;
  Alloc *a = s->alloc;
  /* A relay of an allocation whose install is still queued (JS watched its sockets first). */
  if (!a->linked && owns(a)) apply_ops();
  for (int round = 0; round < BATCHES_PER_WAKE; round++) {
    /* Not ours (moved to another thread since epoll reported it): its new owner reads it. */
    if (!owns(a) || s->fd < 0 || !a->linked) return;
    int first = 0;
    int n = receive(s->fd, &first);
    if (n <= 0) return;
    apply_ops();
    /* Uninstalled or moved away by the operations just applied: the datagrams read are dropped
     * (a move loses only what was in flight at that instant). */
    if (!owns(a) || !a->linked) return;
    for (int i = first; i < first + n; i++) {
      size_t len = b.rmsg[i].msg_len;
      if ((b.rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > 65535) {
        bump(ST_TRUNCATED);
        continue;
      }
      peer_packet(a, s, b.rbuf + (size_t)i * RECV_BUF, len, &b.rfrom[i]);
    }
    if (n < MIN_FREE_SLOTS) return;
  }
}

/* Relay to relay behind 1:1 NAT: a peer address that is one of our advertised relay addresses is
 * sent to the local address instead (no hairpin through the NAT). */
static const tp_addr *local_for_advertised(const Shared *sh, const tp_addr &ip) {
  for (const AddressPair &p : sh->address_map)
    if (same_ip(p.advertised, ip)) return &p.local;
  return nullptr;
}

static const tp_addr *advertised_for_local(const Shared *sh, const tp_addr &ip) {
  for (const AddressPair &p : sh->address_map)
    if (same_ip(p.local, ip)) return &p.advertised;
  return nullptr;
}

static Permission *find_permission(Alloc *a, const tp_addr &ip, int64_t now) {
  for (Permission &p : a->permissions)
    if (same_ip(p.ip, ip)) return p.expires_sec > now ? &p : nullptr;
  return nullptr;
}

static Source *relay_for(Alloc *a, uint8_t family) {
  for (int i = 0; i < a->nrelays; i++)
    if (a->relays[i].family == family && a->relays[i].fd >= 0) return &a->relays[i];
  return nullptr;
}

/* --------------------------------------------------------------------------------------------
 * Relay limits (see dataplane.h): the payload policy and the bandwidth buckets. */

/* Refills a bucket this thread owns for the time since its last refill; true when a packet may pass. */
static bool local_ready(LocalBucket &b, int64_t rate, int64_t now) {
  const int64_t cap = rate * BURST_NS;
  if (b.last_ns == 0) {
    b.balance = cap;
  } else if (now > b.last_ns) {
    int64_t dt = now - b.last_ns;
    if (dt > NS_PER_SEC) dt = NS_PER_SEC;
    b.balance += dt * rate;
    if (b.balance > cap) b.balance = cap;
  }
  if (now > b.last_ns) b.last_ns = now;
  return b.balance > 0;
}

/* Refills a shared bucket: the thread that moves its timestamp forward adds the elapsed time's
 * tokens (others see the new timestamp and add nothing), then the balance is capped. */
static void shared_refill(SharedBucket &b, int64_t rate, int64_t now) {
  int64_t last = b.last_ns.load(std::memory_order_relaxed);
  if (now <= last || !b.last_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  const int64_t cap = rate * BURST_NS;
  int64_t dt = now - last;
  const int64_t add = last == 0 ? cap : (dt > NS_PER_SEC ? NS_PER_SEC : dt) * rate;
  int64_t v = b.balance.fetch_add(add, std::memory_order_relaxed) + add;
  while (v > cap && !b.balance.compare_exchange_weak(v, cap, std::memory_order_relaxed)) {
  }
}

/* True when a lease (credit a thread took from a shared bucket) may pay for a packet; a spent
 * lease takes its debt plus a chunk (1/64 s of the rate, 1 byte to 16 KiB) while the shared
 * balance is positive. */
static bool lease_ready(int64_t &lease, SharedBucket &b, int64_t rate, int64_t now) {
  if (lease > 0) return true;
  shared_refill(b, rate, now);
  if (b.balance.load(std::memory_order_relaxed) <= 0) return false;
  int64_t chunk = rate / 64;
  if (chunk < 1) chunk = 1;
  if (chunk > 16384) chunk = 16384;
  chunk *= NS_PER_SEC;
  b.balance.fetch_sub(chunk - lease, std::memory_order_relaxed);
  lease = chunk;
  return true;
}

/* The limits in force for the coming batch, and the monotonic clock when a bucket needs it. */
void Worker::load_limits() {
  webrtc_only_ = shared_->webrtc_only.load(std::memory_order_relaxed);
  max_bps_ = shared_->max_bps.load(std::memory_order_relaxed);
  user_max_bps_ = shared_->user_max_bps.load(std::memory_order_relaxed);
  bps_capacity_ = shared_->bps_capacity.load(std::memory_order_relaxed);
  limited_ = max_bps_ > 0 || user_max_bps_ > 0 || bps_capacity_ > 0;
  if (limited_) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mono_ns_ = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
  }
}

/* After the permission and channel checks: whether `len` payload bytes of `a` may be relayed
 * (either direction). A refused packet is counted per thread by reason and per allocation. */
bool Worker::admit(Alloc *a, const uint8_t *payload, size_t len) {
  if (webrtc_only_ && !tp_is_webrtc_payload(payload, len)) {
    a->counters.payload_refused.fetch_add(1, std::memory_order_relaxed);
    bump(ST_DROP_PAYLOAD_POLICY);
    return false;
  }
  if (!limited_) return true;
  StatIndex hit = ST_COUNT;
  if (max_bps_ > 0 && !local_ready(a->bucket, max_bps_, mono_ns_))
    hit = ST_DROP_MAX_BPS;
  else if (user_max_bps_ > 0 && a->user && !lease_ready(a->user_lease, a->user->bucket, user_max_bps_, mono_ns_))
    hit = ST_DROP_USER_MAX_BPS;
  else if (bps_capacity_ > 0 && !lease_ready(capacity_lease_, shared_->capacity, bps_capacity_, mono_ns_))
    hit = ST_DROP_BPS_CAPACITY;
  if (hit != ST_COUNT) {
    a->counters.bandwidth_dropped.fetch_add(1, std::memory_order_relaxed);
    bump(hit);
    return false;
  }
  const int64_t cost = (int64_t)len * NS_PER_SEC;
  if (max_bps_ > 0) a->bucket.balance -= cost;
  if (user_max_bps_ > 0 && a->user) a->user_lease -= cost;
  if (bps_capacity_ > 0) capacity_lease_ -= cost;
  return true;
}

void Worker::client_packet(int listener, int fd, uint8_t *buf, size_t len, const sockaddr_storage *from,
                           socklen_t from_len) {
  uint16_t channel = 0, data_len = 0;
  int kind = tp_classify(buf, len, &channel, &data_len);
  if (kind == TP_KIND_CHANNEL_DATA) {
    tp_addr src;
    to_tp_addr(from, &src);
    Alloc *a = clients_->find(listener, src);
    if (a == nullptr) return upcall(listener, buf, len, from);
    Channel *ch = nullptr;
    for (Channel &c : a->channels)
      if (c.number == channel) {
        ch = &c;
        break;
      }
    if (ch == nullptr || ch->expires_sec <= now_sec_) return upcall(listener, buf, len, from);
    Source *relay = relay_for(a, ch->peer.family);
    if (relay == nullptr) return upcall(listener, buf, len, from);
    if (!admit(a, buf + TP_CHANNEL_HEADER, data_len)) return;
    const tp_addr *local = local_for_advertised(shared_, ch->peer);
    tp_addr to = ch->peer;
    if (local != nullptr) memcpy(to.ip, local->ip, 16);
    sockaddr_storage sa;
    socklen_t sl = to_sockaddr(to, &sa);
    queue_send(relay->fd, (sockaddr *)&sa, sl, buf + TP_CHANNEL_HEADER, data_len, nullptr, 0, 0);
    a->counters.to_peer_packets.fetch_add(1, std::memory_order_relaxed);
    a->counters.to_peer_bytes.fetch_add(data_len, std::memory_order_relaxed);
    bump(ST_TO_PEER_PACKETS);
    bump(ST_TO_PEER_BYTES, data_len);
    return;
  }
  if (kind != TP_KIND_STUN) return upcall(listener, buf, len, from);
  uint16_t type = (uint16_t)((buf[0] << 8) | buf[1]);
  if (type == 0x0001) {
    int fp = 0;
    if (tp_parse_binding_request(buf, len, &fp) != TP_OK) return upcall(listener, buf, len, from);
    Batch &b = *batch_;
    if (b.nsend >= BATCH) flush_sends();
    tp_addr src;
    to_tp_addr(from, &src);
    const std::string &sw = software();
    uint8_t *out = b.arena[b.nsend];
    size_t n = tp_build_binding_response(buf, &src, sw.data(), sw.size(), fp, out, ARENA_SLOT);
    if (n == 0) return upcall(listener, buf, len, from);
    queue_send(fd, (const sockaddr *)from, from_len, out, n, nullptr, 0, 0);
    bump(ST_BINDINGS);
    return;
  }
  if (type == 0x0016) {
    tp_addr src;
    to_tp_addr(from, &src);
    Alloc *a = clients_->find(listener, src);
    if (a == nullptr) return upcall(listener, buf, len, from);
    tp_addr peer;
    const uint8_t *data = nullptr;
    uint16_t dl = 0;
    if (tp_parse_send_indication(buf, len, &peer, &data, &dl) != TP_OK) return upcall(listener, buf, len, from);
    Source *relay = relay_for(a, peer.family);
    Permission *p = find_permission(a, peer, now_sec_);
    if (relay == nullptr || p == nullptr) {
      bump(ST_DROP_NO_PERMISSION);
      return;
    }
    if (p->upcall) return upcall(listener, buf, len, from);
    /* The ports the peer policy allows for this IP (never port 0, never our own sockets). */
    bool allowed = peer.port != 0 && peer.port >= p->lo && peer.port <= p->hi;
    for (int k = 0; allowed && k < p->ndenied; k++)
      if (p->denied[k] == peer.port) allowed = false;
    if (!allowed) {
      bump(ST_DROP_PEER_POLICY);
      return;
    }
    if (!admit(a, data, dl)) return;
    const tp_addr *local = local_for_advertised(shared_, peer);
    if (local != nullptr) memcpy(peer.ip, local->ip, 16);
    sockaddr_storage sa;
    socklen_t sl = to_sockaddr(peer, &sa);
    queue_send(relay->fd, (sockaddr *)&sa, sl, data, dl, nullptr, 0, 0);
    a->counters.to_peer_packets.fetch_add(1, std::memory_order_relaxed);
    a->counters.to_peer_bytes.fetch_add(dl, std::memory_order_relaxed);
    bump(ST_TO_PEER_PACKETS);
    bump(ST_TO_PEER_BYTES, dl);
    return;
  }
  upcall(listener, buf, len, from);
}

void Worker::peer_packet(Alloc *a, Source *relay, uint8_t *buf, size_t len, const sockaddr_storage *from) {
  tp_addr peer;
  to_tp_addr(from, &peer);
  /* A datagram from one of our own relay sockets carries its local address; peers know it by the
   * advertised one. */
  const tp_addr *adv = advertised_for_local(shared_, peer);
  if (adv != nullptr) memcpy(peer.ip, adv->ip, 16);
  if (find_permission(a, peer, now_sec_) == nullptr) {
    bump(ST_DROP_NO_PERMISSION);
    return;
  }
  if (a->listener < 0 || (size_t)a->listener >= listeners_.size() || listeners_[a->listener] == nullptr) return;
  if (!admit(a, buf, len)) return;
  int fd = listeners_[a->listener]->fd;
  Batch &b = *batch_;
  if (b.nsend >= BATCH) flush_sends();
  uint8_t *head = b.arena[b.nsend];
  Channel *ch = nullptr;
  for (Channel &c : a->channels)
    if (c.number != 0 && same_addr(c.peer, peer)) {
      ch = &c;
      break;
    }
  if (ch != nullptr && ch->expires_sec > now_sec_) {
    head[0] = (uint8_t)(ch->number >> 8);
    head[1] = (uint8_t)ch->number;
    head[2] = (uint8_t)(len >> 8);
    head[3] = (uint8_t)len;
    /* Over UDP ChannelData is not padded (RFC 8656 §12.5). */
    queue_send(fd, (const sockaddr *)&a->client_sa, a->client_sa_len, head, TP_CHANNEL_HEADER, buf, len, 0);
  } else {
    if (tid_at_ + 12 > sizeof tid_pool_) {
      ssize_t r = getrandom(tid_pool_, sizeof tid_pool_, 0);
      if (r != (ssize_t)sizeof tid_pool_) return; /* never expected; drop rather than reuse IDs */
      tid_at_ = 0;
    }
    size_t hl = tp_build_data_indication_head(&peer, (uint16_t)len, tid_pool_ + tid_at_, head, ARENA_SLOT);
    tid_at_ += 12;
    if (hl == 0 || len > 0xFFFF) {
      bump(ST_DROP_OVERSIZE);
      return;
    }
    queue_send(fd, (const sockaddr *)&a->client_sa, a->client_sa_len, head, hl, buf, len, (4 - (len & 3)) & 3);
  }
  (void)relay;
  a->counters.to_client_packets.fetch_add(1, std::memory_order_relaxed);
  a->counters.to_client_bytes.fetch_add(len, std::memory_order_relaxed);
  bump(ST_TO_CLIENT_PACKETS);
  bump(ST_TO_CLIENT_BYTES, len);
}

void Worker::upcall(int listener, const uint8_t *buf, size_t len, const sockaddr_storage *from) {
  uint8_t *copy = static_cast<uint8_t *>(std::malloc(len > 0 ? len : 1));
  if (copy == nullptr) {
    bump(ST_UPCALL_DROPS);
    return;
  }
  memcpy(copy, buf, len);
  bool signal = false;
  {
    std::lock_guard<std::mutex> g(upcall_mutex_);
    if (upcalls_.size() >= shared_->upcall_limit || upcall_bytes_ + len > shared_->upcall_byte_limit) {
      std::free(copy);
      bump(ST_UPCALL_DROPS);
      return;
    }
    upcalls_.push_back(Upcall{listener, index_, *from, copy, (uint32_t)len});
    upcall_bytes_ += len;
    if (!upcall_signalled_) {
      upcall_signalled_ = true;
      signal = true;
    }
  }
  bump(ST_UPCALLS);
  /* One wake-up of the JS thread per batch of upcalls: it takes everything queued so far. */
  if (signal) wake_js_(index_);
}

void Worker::queue_send(int fd, const sockaddr *to, socklen_t to_len, const void *head, size_t head_len,
                        const void *body, size_t body_len, size_t pad) {
  Batch &b = *batch_;
  if (b.nsend >= BATCH) flush_sends();
  int k = b.nsend++;
  memcpy(&b.sto[k], to, to_len);
  int iovs = 0;
  b.siov[k][iovs++] = iovec{const_cast<void *>(head), head_len};
  if (body_len > 0) b.siov[k][iovs++] = iovec{const_cast<void *>(body), body_len};
  if (pad > 0) b.siov[k][iovs++] = iovec{const_cast<uint8_t *>(ZERO_PAD), pad};
  b.smsg[k].msg_hdr = msghdr{};
  b.smsg[k].msg_hdr.msg_name = &b.sto[k];
  b.smsg[k].msg_hdr.msg_namelen = to_len;
  b.smsg[k].msg_hdr.msg_iov = b.siov[k];
  b.smsg[k].msg_hdr.msg_iovlen = iovs;
  b.sfd[k] = fd;
}

static bool same_dest(const mmsghdr &x, const mmsghdr &y) {
  return x.msg_hdr.msg_namelen == y.msg_hdr.msg_namelen &&
         memcmp(x.msg_hdr.msg_name, y.msg_hdr.msg_name, x.msg_hdr.msg_namelen) == 0;
}

static size_t msg_bytes(const mmsghdr &m) {
  size_t n = 0;
  for (size_t k = 0; k < m.msg_hdr.msg_iovlen; k++) n += m.msg_hdr.msg_iov[k].iov_len;
  return n;
}

/*
 * UDP GSO (UDP_SEGMENT): consecutive datagrams of one size to one destination on one socket leave
 * as one send that the kernel (or the NIC) splits. Returns how many of msgs[0..count) it sent, or 0
 * to let the caller send them one by one. A kernel that refuses GSO turns it off for the thread.
 */
int Worker::send_gso(int fd, mmsghdr *msgs, int count) {
  if (!gso_ || count < 2) return 0;
  size_t seg = msg_bytes(msgs[0]);
  int run = 1;
  size_t total = seg;
  while (run < count && same_dest(msgs[0], msgs[run]) && msg_bytes(msgs[run]) == seg && total + seg <= 65000) {
    total += seg;
    run++;
  }
  if (run < 2) return 0;
  Batch &b = *batch_;
  size_t iovs = 0;
  for (int k = 0; k < run; k++)
    for (size_t v = 0; v < msgs[k].msg_hdr.msg_iovlen; v++) b.gso_iov[iovs++] = msgs[k].msg_hdr.msg_iov[v];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))];
  memset(control, 0, sizeof control);
  msghdr m{};
  m.msg_name = msgs[0].msg_hdr.msg_name;
  m.msg_namelen = msgs[0].msg_hdr.msg_namelen;
  m.msg_iov = b.gso_iov;
  m.msg_iovlen = iovs;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t gso_size = (uint16_t)seg;
  memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
  if (sendmsg(fd, &m, MSG_DONTWAIT) >= 0) {
    bump(ST_GSO_SENDS);
    return run;
  }
  if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == EMSGSIZE) {
    gso_ = false; /* the kernel or device cannot segment: send datagram by datagram from now on */
    return 0;
  }
  return 0; /* EAGAIN, unreachable…: the one-by-one path counts the error */
}

void Worker::flush_sends() {
  Batch &b = *batch_;
  int i = 0;
  while (i < b.nsend) {
    int j = i + 1;
    while (j < b.nsend && b.sfd[j] == b.sfd[i]) j++;
    int at = i;
    while (at < j) {
      int g = send_gso(b.sfd[i], &b.smsg[at], j - at);
      if (g > 0) {
        at += g;
        continue;
      }
      int r = sendmmsg(b.sfd[i], &b.smsg[at], (unsigned)(j - at), MSG_DONTWAIT);
      if (r > 0) {
        at += r;
        continue;
      }
      /* The datagram at `at` was refused (buffer full, ICMP error reported): skip it. */
      if (r < 0 && errno == EINTR) continue;
      bump(ST_SEND_ERRORS);
      at++;
    }
    i = j;
  }
  b.nsend = 0;
}

}  // namespace turnpike
