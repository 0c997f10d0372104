/*
 * bench/binding's native load generator: the same window of STUN Binding requests as the JS client
 * (bench/binding/client.ts), kept in flight by one thread with batched socket calls, so the client
 * is no longer what limits the Binding rate the benchmark reports.
 *
 *   new BindGen(host, port, window, sockets, warmupMs, durationMs, timeoutMs, fingerprint, expectType)
 *     opens `sockets` UDP sockets bound to 127.0.0.1:0 and connected to host:port (throws on error);
 *   start() runs the warm-up and then the measurement window on a thread of its own;
 *   phase() is 0 (warm-up), 1 (measuring) or 2 (done); result() joins and returns the counts of the
 *   measurement window; stop() ends the run early; close() joins and closes the sockets.
 *
 * Semantics (as client.ts): window slot i belongs to socket i % sockets for the whole run; each request
 * is a 20-byte Binding request (28 with FINGERPRINT) with a fresh random 96-bit transaction ID; a
 * datagram counts only if its transaction ID matches an outstanding request on the socket it arrived
 * on (then: answered if its type is expectType, else an error response); a request older than timeoutMs
 * counts as lost. Every answer and every timeout refills its slot at once.
 *
 * The thread's loop, until the end of the window or the stop flag:
 *   epoll_wait (≤ 1 ms) over the sockets; each ready socket is read with recvmmsg (RECV_BATCH at a
 *   time, at most MAX_READS calls per wake-up), every datagram's length checked before a byte is read;
 *   the answered slots get new requests, sent with one sendmmsg per socket; every timeoutMs/4 the
 *   window is swept for timeouts. Requests the kernel refused to take (EAGAIN, ENOBUFS) stay
 *   outstanding and are counted lost at their timeout, as a dropped datagram would be.
 * The JS thread and the run's thread share only the stop flag and the phase (atomics); the counts
 * are read after the join.
 */
#include "bindgen.h"

#include "benchutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace turnpike {
namespace {

using benchutil::get32;
using benchutil::now_ns;
using benchutil::put32;
using benchutil::thread_cpu_sec;
using benchutil::get16;
using benchutil::put16;

constexpr uint32_t MAGIC_COOKIE = 0x2112a442;
constexpr uint16_t BINDING_REQUEST = 0x0001;
constexpr size_t HEADER_BYTES = 20;
constexpr size_t FINGERPRINT_BYTES = 8;
constexpr uint32_t FINGERPRINT_XOR = 0x5354554e;
constexpr int RECV_BATCH = 64;
constexpr int SEND_BATCH = 64;
constexpr int MAX_READS = 16;      /* recvmmsg calls per socket per wake-up */
constexpr size_t RECV_SNAP = 256;  /* bytes kept of a datagram; MSG_TRUNC gives the real length */
constexpr int MAX_SOCKETS = 64;
constexpr int MAX_WINDOW = 65536;

/* CRC-32 (IEEE, reflected), for FINGERPRINT (RFC 8489 §14.7). */
uint32_t crc32(const uint8_t *p, size_t n) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

struct Counts {
  double answered = 0, lost = 0, errors = 0, unmatched = 0, socket_errors = 0, sent = 0;
};

class BindGen : public Napi::ObjectWrap<BindGen> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BindGen",
                       {InstanceMethod("start", &BindGen::Start), InstanceMethod("phase", &BindGen::Phase),
                        InstanceMethod("result", &BindGen::Result), InstanceMethod("stop", &BindGen::Stop),
                        InstanceMethod("close", &BindGen::Close)});
  }

  explicit BindGen(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BindGen>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 9 || !info[0].IsString()) {
      Napi::TypeError::New(env,
                           "BindGen(host, port, window, sockets, warmupMs, durationMs, timeoutMs, "
                           "fingerprint, expectType)")
          .ThrowAsJavaScriptException();
      return;
    }
    for (int i = 1; i <= 6; i++) {
      if (!info[i].IsNumber()) {
        Napi::TypeError::New(env, "BindGen: numbers expected").ThrowAsJavaScriptException();
        return;
      }
    }
    std::string host = info[0].As<Napi::String>().Utf8Value();
    double port = info[1].As<Napi::Number>().DoubleValue();
    double window = info[2].As<Napi::Number>().DoubleValue();
    double sockets = info[3].As<Napi::Number>().DoubleValue();
    double warmup = info[4].As<Napi::Number>().DoubleValue();
    double duration = info[5].As<Napi::Number>().DoubleValue();
    double timeout = info[6].As<Napi::Number>().DoubleValue();
    fingerprint_ = info[7].ToBoolean().Value();
    double expect = info[8].IsNumber() ? info[8].As<Napi::Number>().DoubleValue() : -1;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    if (!(port >= 1 && port <= 65535) || !(sockets >= 1 && sockets <= MAX_SOCKETS) ||
        !(window >= sockets && window <= MAX_WINDOW) || !(warmup >= 0 && warmup <= 3.6e6) ||
        !(duration > 0 && duration <= 3.6e6) || !(timeout >= 1 && timeout <= 3.6e6) ||
        !(expect >= 0 && expect <= 0xffff) || inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
      Napi::RangeError::New(env, "BindGen: bad host, port, window, sockets, times or expectType")
          .ThrowAsJavaScriptException();
      return;
    }
    sa.sin_port = htons(uint16_t(port));
    window_ = int(window);
    warmup_ns_ = int64_t(warmup * 1e6);
    duration_ns_ = int64_t(duration * 1e6);
    timeout_ns_ = int64_t(timeout * 1e6);
    expect_ = uint16_t(expect);
    request_bytes_ = fingerprint_ ? HEADER_BYTES + FINGERPRINT_BYTES : HEADER_BYTES;
    crc32(nullptr, 0); /* fills the CRC table here, on the JS thread, before any run's thread reads it */
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      Napi::Error::New(env, std::string("BindGen: epoll_create1: ") + strerror(errno)).ThrowAsJavaScriptException();
      return;
    }
    for (int i = 0; i < int(sockets); i++) {
      int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        Fail(env, "socket");
        return;
      }
      fds_.push_back(fd);
      int buf = 4 << 20;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(fd, reinterpret_cast<sockaddr *>(&local), sizeof local) != 0) {
        Fail(env, "bind");
        return;
      }
      if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
        Fail(env, "connect");
        return;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = uint32_t(i);
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        Fail(env, "epoll_ctl");
        return;
      }
    }
    int n = int(fds_.size());
    slot_socket_.resize(window_);
    slot_tx_.resize(size_t(window_) * 3);
    slot_sent_.assign(window_, 0);
    slot_in_flight_.assign(window_, 0);
    slot_req_.assign(size_t(window_) * request_bytes_, 0);
    pending_.resize(n);
    refill_.resize(n);
    for (int s = 0; s < n; s++) pending_[s].reserve(size_t(window_ / n + 1) * 2);
    for (int slot = 0; slot < window_; slot++) slot_socket_[slot] = uint16_t(slot % n);
  }

  ~BindGen() override { Shutdown(); }

 private:
  void Fail(Napi::Env env, const char *what) {
    Napi::Error::New(env, std::string("BindGen: ") + what + ": " + strerror(errno)).ThrowAsJavaScriptException();
    Shutdown();
  }

  void Shutdown() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
    for (int fd : fds_) close(fd);
    fds_.clear();
    if (epfd_ >= 0) close(epfd_);
    epfd_ = -1;
  }

  Napi::Value Start(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (started_ || fds_.empty()) {
      Napi::Error::New(env, "BindGen: already started or closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    started_ = true;
    thread_ = std::thread([this] { Run(); });
    return env.Undefined();
  }

  Napi::Value Phase(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), phase_.load(std::memory_order_acquire));
  }

  Napi::Value Result(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!started_) {
      Napi::Error::New(env, "BindGen: not started").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (thread_.joinable()) thread_.join();
    Napi::Object o = Napi::Object::New(env);
    o.Set("answered", counts_.answered);
    o.Set("lost", counts_.lost);
    o.Set("errors", counts_.errors);
    o.Set("unmatched", counts_.unmatched);
    o.Set("socketErrors", counts_.socket_errors);
    o.Set("sent", counts_.sent);
    o.Set("elapsedMs", elapsed_ms_);
    o.Set("cpuMs", cpu_ms_);
    o.Set("error", run_error_);
    return o;
  }

  Napi::Value Stop(const Napi::CallbackInfo &info) {
    stop_.store(true, std::memory_order_relaxed);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Shutdown();
    return info.Env().Undefined();
  }

  /* Draws a transaction ID for `slot` whose first word no outstanding request of its socket has. */
  void Arm(int slot, int64_t now) {
    auto &pending = pending_[slot_socket_[slot]];
    uint32_t w0;
    do {
      if (pool_off_ + 12 > sizeof pool_) {
        size_t got = 0;
        while (got < sizeof pool_) {
          ssize_t r = getrandom(pool_ + got, sizeof pool_ - got, 0);
          if (r > 0) got += size_t(r);
          else if (errno != EINTR) break; /* not expected on Linux ≥ 3.17; the pool keeps old bytes */
        }
        pool_off_ = 0;
      }
      w0 = get32(pool_ + pool_off_);
      uint32_t *tx = &slot_tx_[size_t(slot) * 3];
      tx[0] = w0;
      tx[1] = get32(pool_ + pool_off_ + 4);
      tx[2] = get32(pool_ + pool_off_ + 8);
      pool_off_ += 12;
    } while (pending.count(w0) != 0);
    pending.emplace(w0, slot);
    const uint32_t *tx = &slot_tx_[size_t(slot) * 3];
    uint8_t *req = &slot_req_[size_t(slot) * request_bytes_];
    put16(req, BINDING_REQUEST);
    put16(req + 2, fingerprint_ ? uint16_t(FINGERPRINT_BYTES) : 0);
    put32(req + 4, MAGIC_COOKIE);
    put32(req + 8, tx[0]);
    put32(req + 12, tx[1]);
    put32(req + 16, tx[2]);
    if (fingerprint_) {
      put16(req + 20, 0x8028);
      put16(req + 22, 4);
      put32(req + 24, crc32(req, HEADER_BYTES) ^ FINGERPRINT_XOR);
    }
    slot_sent_[slot] = now;
    slot_in_flight_[slot] = 1;
    refill_[slot_socket_[slot]].push_back(slot);
  }

  /* Sends the socket's queued requests, SEND_BATCH per sendmmsg. */
  void Flush(int s) {
    auto &queue = refill_[s];
    size_t done = 0;
    while (done < queue.size()) {
      int n = int(std::min(queue.size() - done, size_t(SEND_BATCH)));
      for (int i = 0; i < n; i++) {
        int slot = queue[done + i];
        siov_[i].iov_base = &slot_req_[size_t(slot) * request_bytes_];
        siov_[i].iov_len = request_bytes_;
        smsg_[i].msg_hdr = msghdr{};
        smsg_[i].msg_hdr.msg_iov = &siov_[i];
        smsg_[i].msg_hdr.msg_iovlen = 1;
      }
      int r = sendmmsg(fds_[s], smsg_, unsigned(n), MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        counts_.socket_errors++; /* the batch stays outstanding and times out */
        break;
      }
      counts_.sent += r;
      if (r == 0) break;
      done += size_t(r);
      if (r < n) {
        /* The kernel took part of the batch; the rest times out like a lost datagram. */
        counts_.socket_errors++;
        break;
      }
    }
    queue.clear();
  }

  /* Reads a ready socket; answered slots are re-armed (queued for Flush). */
  void Drain(int s, int64_t now) {
    auto &pending = pending_[s];
    for (int call = 0; call < MAX_READS; call++) {
      for (int i = 0; i < RECV_BATCH; i++) {
        riov_[i].iov_base = rbuf_[i];
        riov_[i].iov_len = RECV_SNAP;
        rmsg_[i].msg_hdr = msghdr{};
        rmsg_[i].msg_hdr.msg_iov = &riov_[i];
        rmsg_[i].msg_hdr.msg_iovlen = 1;
        rmsg_[i].msg_len = 0;
      }
      int r = recvmmsg(fds_[s], rmsg_, RECV_BATCH, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) counts_.socket_errors++; /* ECONNREFUSED, … */
        return;
      }
      for (int i = 0; i < r; i++) {
        size_t len = rmsg_[i].msg_len;
        bool truncated = (rmsg_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > RECV_SNAP;
        const uint8_t *m = rbuf_[i];
        /* STUN header: 20 bytes, magic cookie, declared length within what arrived. */
        if (truncated || len < HEADER_BYTES || get32(m + 4) != MAGIC_COOKIE ||
            HEADER_BYTES + get16(m + 2) > len) {
          counts_.unmatched++;
          continue;
        }
        auto it = pending.find(get32(m + 8));
        if (it == pending.end()) {
          counts_.unmatched++;
          continue;
        }
        int slot = it->second;
        const uint32_t *tx = &slot_tx_[size_t(slot) * 3];
        if (get32(m + 12) != tx[1] || get32(m + 16) != tx[2]) {
          counts_.unmatched++;
          continue;
        }
        pending.erase(it);
        if (get16(m) == expect_) counts_.answered++;
        else counts_.errors++;
        slot_in_flight_[slot] = 0;
        if (!stop_.load(std::memory_order_relaxed)) Arm(slot, now);
      }
      if (r < RECV_BATCH) return;
    }
  }

  void Sweep(int64_t now) {
    for (int slot = 0; slot < window_; slot++) {
      if (slot_in_flight_[slot] && now - slot_sent_[slot] > timeout_ns_) {
        pending_[slot_socket_[slot]].erase(slot_tx_[size_t(slot) * 3]);
        counts_.lost++;
        Arm(slot, now);
      }
    }
  }

  void Run() {
    const int n = int(fds_.size());
    int64_t start = now_ns();
    const int64_t measure_at = start + warmup_ns_;
    const int64_t end_at = measure_at + duration_ns_;
    const int64_t sweep_every = std::max<int64_t>(timeout_ns_ / 4, 1000000);
    int64_t next_sweep = start + sweep_every;
    bool measuring = false;
    double cpu_start = 0;
    int64_t t0 = 0;
    for (int slot = 0; slot < window_; slot++) Arm(slot, start);
    for (int s = 0; s < n; s++) Flush(s);
    epoll_event events[MAX_SOCKETS];
    while (!stop_.load(std::memory_order_relaxed)) {
      int64_t now = now_ns();
      if (!measuring && now >= measure_at) {
        counts_ = Counts{};
        measuring = true;
        cpu_start = thread_cpu_sec();
        t0 = now;
        phase_.store(1, std::memory_order_release);
      }
      if (now >= end_at) {
        elapsed_ms_ = double(now - t0) / 1e6;
        cpu_ms_ = (thread_cpu_sec() - cpu_start) * 1e3;
        break;
      }
      int ready = epoll_wait(epfd_, events, n, 1);
      if (ready < 0) {
        if (errno == EINTR) continue;
        run_error_ = std::string("epoll_wait: ") + strerror(errno);
        break;
      }
      now = now_ns();
      for (int e = 0; e < ready; e++) {
        uint32_t s = events[e].data.u32;
        if (s < uint32_t(n)) Drain(int(s), now);
      }
      if (now >= next_sweep) {
        Sweep(now);
        next_sweep = now + sweep_every;
      }
      for (int s = 0; s < n; s++) {
        if (!refill_[s].empty()) Flush(s);
      }
    }
    if (measuring && elapsed_ms_ == 0) {
      int64_t now = now_ns();
      elapsed_ms_ = double(now - t0) / 1e6;
      cpu_ms_ = (thread_cpu_sec() - cpu_start) * 1e3;
    }
    phase_.store(2, std::memory_order_release);
  }

  /* Set up by the constructor, read-only while the thread runs. */
  int window_ = 0;
  int64_t warmup_ns_ = 0, duration_ns_ = 0, timeout_ns_ = 0;
  bool fingerprint_ = false;
  uint16_t expect_ = 0;
  size_t request_bytes_ = HEADER_BYTES;
  int epfd_ = -1;
  std::vector<int> fds_;
  bool started_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> phase_{0};
  /* The thread's own state; JS reads it after the join. */
  std::vector<uint16_t> slot_socket_;
  std::vector<uint32_t> slot_tx_;
  std::vector<int64_t> slot_sent_;
  std::vector<uint8_t> slot_in_flight_;
  std::vector<uint8_t> slot_req_;
  std::vector<std::unordered_map<uint32_t, int>> pending_; /* per socket: first tx word → slot */
  std::vector<std::vector<int>> refill_;                   /* per socket: slots to send */
  Counts counts_;
  double elapsed_ms_ = 0, cpu_ms_ = 0;
  std::string run_error_;
  uint8_t pool_[12 * 341];
  size_t pool_off_ = sizeof pool_;
  iovec siov_[SEND_BATCH];
  mmsghdr smsg_[SEND_BATCH];
  uint8_t rbuf_[RECV_BATCH][RECV_SNAP];
  iovec riov_[RECV_BATCH];
  mmsghdr rmsg_[RECV_BATCH];
};

}  // namespace

Napi::Object InitBindGen(Napi::Env env, Napi::Object exports) {
  exports.Set("BindGen", BindGen::Define(env));
  return exports;
}

}  // namespace turnpike
