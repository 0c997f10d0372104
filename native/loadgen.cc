/*
 * turnpike-bench's native traffic engine: the client→peer (c2p), peer→client (p2c) and echo windows
 * of the load tool, paced and counted exactly as the JS engine (src/load-tool/engine.ts) does,
 * without a JS call, a Buffer or a libuv round per packet. (Below, c2p; for p2c the peer sockets
 * send the bare payload to each allocation's relay address, and the client sockets, which JS stops
 * reading for the window, are read and unframed: ChannelData, or a Data indication's DATA attribute.
 * echo sends as c2p does; the peer sockets send every datagram straight back to where it came from
 * (the relay address) as soon as it arrives, and the client sockets are read as for p2c, so the
 * latency is the round trip.)
 *
 * What JS hands over (after it has set the allocations up over TURN in JS):
 *  - per allocation, the descriptor of its connected client socket (a Node dgram socket; Node keeps
 *    owning it: the engine never closes it) and its packet template: ChannelData header or Send
 *    indication head, then the application payload (payload.ts: a 24-byte header, then filler),
 *    then the zero padding of a Send indication;
 *  - nothing per peer: the engine opens the peer sockets itself (`openPeer`, bound to the IP asked
 *    for and port 0) and JS learns their ports for CreatePermission and ChannelBind.
 *
 * A window (`start`) runs on a thread of its own, joined by `result` (or `close`):
 *
 *   loop until the end of the window or stop():
 *     every TICK_NS: due = ⌊rate × elapsed⌋ − sent − skipped; beyond MAX_BACKLOG_MS worth it is
 *       skipped (offered, never sent: the tool fell behind); at most TICK_BUDGET_MS worth is sent,
 *       spread round-robin over the allocations, one sendmmsg per client socket (≤ SEND_BATCH
 *       datagrams a call, each an iovec of [template head | 24-byte payload header | filler], so
 *       nothing is copied but the header);
 *     then sleep to the next tick and read every ready peer socket (epoll_wait without waiting),
 *       recvmmsg batches of RECV_BATCH with MSG_TRUNC into RECV_SNAP bytes each (the payload header
 *       is all the accounting reads) and each datagram's kernel receive time (SO_TIMESTAMPNS);
 *       echo instead waits in epoll until the next tick, so a peer socket's datagrams go back when
 *       they arrive (one wake-up, one recvmmsg, one sendmmsg), not at the tick;
 *   then drain: receive until nothing arrived for QUIET_NS, at most DRAIN_MAX_NS.
 *
 * A received datagram is: stray (shorter than the payload header, no magic, or an allocation this
 * engine did not send), late (an earlier window's trial) or received (latency into the same
 * log-linear histogram as hdr.ts, RFC 3550 jitter per allocation). Clocks: CLOCK_MONOTONIC, the
 * clock process.hrtime.bigint() reads, once per send batch; a datagram's arrival is its kernel
 * receive timestamp (CLOCK_REALTIME, moved to CLOCK_MONOTONIC with an offset read every tick).
 *
 * Bounds: every length is checked at the N-API edge; loops run to the end of the window (or the
 * stop flag) plus at most DRAIN_MAX_NS, and each inner loop has a fixed cap. The JS thread and the
 * window's thread share only the stop flag, the done flag and the progress counters (atomics);
 * everything else is read by JS after the join.
 */
#include "loadgen.h"

#include "benchutil.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace turnpike {
namespace {

using benchutil::get32;
using benchutil::now_ns;
using benchutil::put32;
using benchutil::thread_cpu_sec;

/* payload.ts */
constexpr uint32_t PAYLOAD_MAGIC = 0x54504231; /* "TPB1" */
constexpr size_t PAYLOAD_HEADER_BYTES = 24;
/* hdr.ts: 128 exact buckets, then 128 per power of two up to 2^40 ns. */
constexpr int SUB_BITS = 7;
constexpr int SUB_COUNT = 1 << SUB_BITS;
constexpr int MAX_EXP = 40;
constexpr int BUCKET_COUNT = SUB_COUNT + (MAX_EXP - SUB_BITS) * SUB_COUNT;
constexpr uint64_t MAX_VALUE = (uint64_t(1) << MAX_EXP) - 1;
/* engine.ts */
constexpr int64_t TICK_NS = 1000000;
constexpr double TICK_BUDGET_MS = 4;
constexpr double MAX_BACKLOG_MS = 100;
constexpr int64_t QUIET_NS = 200000000;
constexpr int64_t DRAIN_MAX_NS = 1000000000;

constexpr int SEND_BATCH = 64;
/* UDP GSO: segments per message (the kernel's UDP_MAX_SEGMENTS is at least 64) and payload bytes. */
constexpr size_t GSO_MAX_SEGMENTS = 64;
constexpr size_t GSO_MAX_BYTES = 60000;
constexpr int RECV_BATCH = 64;
/* Bytes of each received datagram copied out: the payload header (MSG_TRUNC gives the length). */
constexpr size_t RECV_SNAP = 128; /* p2c: a Data indication's XOR-PEER-ADDRESS and DATA header first */
/* echo: whole datagrams at the peer sockets (longer ones are stray: the tool sends at most 1500 B). */
constexpr size_t ECHO_BUF = 2048;
static_assert(RECV_BATCH <= SEND_BATCH, "an echo batch is sent back through smsg_");
/* recvmmsg calls per ready socket per tick (what is left waits for the next tick), so one busy
 * socket cannot starve the sender. */
constexpr int RECV_ROUNDS = 32;
constexpr int MAX_EVENTS = 64;
/* epoll data of a client socket read by the engine (p2c); a peer socket's is its bare descriptor. */
constexpr uint64_t CLIENT_SOURCE = uint64_t(1) << 32;
/* TURN framing the client sockets receive (p2c). */
constexpr uint16_t DATA_INDICATION = 0x0017; /* method Data (0x007), class indication */
constexpr uint16_t ATTR_DATA = 0x0013;
constexpr size_t MAX_PEERS = 4096;
constexpr size_t MAX_FLOWS = 1 << 20;
constexpr size_t MAX_TEMPLATE_BYTES = 65535;
constexpr size_t MAX_TEMPLATE_TOTAL = size_t(256) << 20;
/* Longest window accepted (the tool's own --duration cap is 24 h). */
constexpr double MAX_DURATION_MS = 24.0 * 3600 * 1000 + 1;

/* Result slots, in the order of NATIVE_COUNTERS in src/load-tool/native-engine.ts. */
enum Counter {
  C_OFFERED = 0,
  C_SENT,
  C_SKIPPED,
  C_SEND_ERRORS,
  C_RECEIVED,
  C_STRAY,
  C_LATE,
  C_CPU_SEC, /* -1: not measurable */
  C_SEND_MS,
  C_DRAIN_MS,
  C_HIST_TOTAL,
  C_HIST_MIN,
  C_HIST_MAX,
  C_HIST_SUM,
  C_JITTER_SUM,
  C_JITTER_FLOWS,
  C_JITTER_MAX,
  C_FORWARDED, /* echo: this window's payloads the peer sockets sent back */
  C_COUNT
};

inline int bucket_index(uint64_t v) {
  if (v < uint64_t(SUB_COUNT)) return int(v);
  int k = 63 - __builtin_clzll(v);
  uint64_t sub = (v >> (k - SUB_BITS)) - SUB_COUNT;
  return SUB_COUNT + (k - SUB_BITS) * SUB_COUNT + int(sub);
}

struct Flow {
  uint32_t index = 0;  /* global allocation index (the payload carries it) */
  int fd = -1;         /* Node's connected client socket: never closed here */
  std::vector<uint8_t> tmpl;
  uint32_t off = 0;    /* payload header offset in the template */
  /* p2c: the peer socket (index in peers_) that sends to the relay address; −1 for c2p. */
  int peer = -1;
  sockaddr_storage relay{};
  socklen_t relay_len = 0;
  uint32_t seq = 0;
  double last_transit = 0;
  bool has_last = false;
  double jitter = 0;
};

/* The counters of one window; written by its thread only, read by JS after the join. */
struct Window {
  uint64_t offered = 0, sent = 0, skipped = 0, send_errors = 0, received = 0, stray = 0, late = 0;
  uint64_t forwarded = 0;
  double cpu_sec = -1, send_ms = 0, drain_ms = 0;
  std::vector<uint64_t> hist = std::vector<uint64_t>(BUCKET_COUNT, 0);
  uint64_t hist_total = 0, hist_min = UINT64_MAX, hist_max = 0;
  double hist_sum = 0;
};

class LoadGen : public Napi::ObjectWrap<LoadGen> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LoadGen",
                       {
                           InstanceMethod("openPeer", &LoadGen::OpenPeer),
                           InstanceMethod("addFlow", &LoadGen::AddFlow),
                           InstanceMethod("start", &LoadGen::Start),
                           InstanceMethod("done", &LoadGen::Done),
                           InstanceMethod("progress", &LoadGen::Progress),
                           InstanceMethod("result", &LoadGen::Result),
                           InstanceMethod("stop", &LoadGen::Stop),
                           InstanceMethod("close", &LoadGen::Close),
                           InstanceMethod("gso", &LoadGen::Gso),
                       });
  }

  /* new LoadGen(firstFlow, flowSlots[, echo]): allocations firstFlow … firstFlow + flowSlots − 1. */
  explicit LoadGen(const Napi::CallbackInfo &info) : Napi::ObjectWrap<LoadGen>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber() ||
        (info.Length() >= 3 && !info[2].IsBoolean())) {
      Napi::TypeError::New(env, "LoadGen(firstFlow, flowSlots[, echo])").ThrowAsJavaScriptException();
      return;
    }
    echo_ = info.Length() >= 3 && info[2].As<Napi::Boolean>().Value();
    double first = info[0].As<Napi::Number>().DoubleValue();
    double slots = info[1].As<Napi::Number>().DoubleValue();
    if (!(first >= 0 && first <= double(UINT32_MAX) && first == std::floor(first)) ||
        !(slots >= 1 && slots <= double(MAX_FLOWS) && slots == std::floor(slots))) {
      Napi::RangeError::New(env, "LoadGen: bad firstFlow or flowSlots").ThrowAsJavaScriptException();
      return;
    }
    first_flow_ = uint32_t(first);
    slot_.assign(size_t(slots), -1);
    int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      int seg = 1200;
      gso_ = setsockopt(probe, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg) == 0;
      close(probe);
    }
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      Napi::Error::New(env, std::string("LoadGen: epoll_create1: ") + strerror(errno))
          .ThrowAsJavaScriptException();
    }
  }

  ~LoadGen() override { Shutdown(); }

 private:
  /* openPeer(address, sockBuf): the bound port, or −errno. */
  Napi::Value OpenPeer(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "openPeer(address, sockBuf)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!Idle(env)) return env.Undefined();
    if (peers_.size() >= MAX_PEERS) return Napi::Number::New(env, -EMFILE);
    std::string text = info[0].As<Napi::String>().Utf8Value();
    int sock_buf = info[1].As<Napi::Number>().Int32Value();
    sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    int family;
    auto *s4 = reinterpret_cast<sockaddr_in *>(&ss);
    auto *s6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    if (inet_pton(AF_INET, text.c_str(), &s4->sin_addr) == 1) {
      s4->sin_family = family = AF_INET;
      len = sizeof *s4;
    } else if (inet_pton(AF_INET6, text.c_str(), &s6->sin6_addr) == 1) {
      s6->sin6_family = family = AF_INET6;
      len = sizeof *s6;
    } else {
      return Napi::Number::New(env, -EINVAL);
    }
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Napi::Number::New(env, -errno);
    int on = 1;
    /* Receive timestamps (Receive): without them the latency is taken at the read. */
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    if (sock_buf > 0) {
      /* Capped by rmem_max/wmem_max; a refusal only leaves the default. */
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sock_buf, sizeof sock_buf);
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sock_buf, sizeof sock_buf);
    }
    if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0) {
      int e = errno;
      close(fd);
      return Napi::Number::New(env, -e);
    }
    epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = uint32_t(fd);
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      int e = errno;
      close(fd);
      return Napi::Number::New(env, -e);
    }
    peers_.push_back(fd);
    uint16_t port = family == AF_INET ? ntohs(s4->sin_port) : ntohs(s6->sin6_port);
    return Napi::Number::New(env, port);
  }

  /*
   * addFlow(index, fd, template, payloadOffset[, peer, relayAddress, relayPort]): throws when the
   * arguments do not fit. With the last three the allocation runs p2c: peer socket `peer` sends the
   * template to the relay address, and the client socket `fd` is read (JS must have stopped reading it).
   */
  Napi::Value AddFlow(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBuffer() ||
        !info[3].IsNumber()) {
      Napi::TypeError::New(env, "addFlow(index, fd, template, payloadOffset)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!Idle(env)) return env.Undefined();
    double index = info[0].As<Napi::Number>().DoubleValue();
    int fd = info[1].As<Napi::Number>().Int32Value();
    auto tmpl = info[2].As<Napi::Buffer<uint8_t>>();
    double off = info[3].As<Napi::Number>().DoubleValue();
    double local = index - double(first_flow_);
    if (!(local >= 0 && local < double(slot_.size()) && local == std::floor(local)) ||
        slot_[size_t(local)] >= 0) {
      Napi::RangeError::New(env, "addFlow: index outside this engine's slice or added twice")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t n = tmpl.Length();
    if (n > MAX_TEMPLATE_BYTES || !(off >= 0 && off == std::floor(off)) ||
        off + double(PAYLOAD_HEADER_BYTES) > double(n) || template_bytes_ + n > MAX_TEMPLATE_TOTAL) {
      Napi::RangeError::New(env, "addFlow: bad template or payload offset").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int type = 0;
    socklen_t tl = sizeof type;
    sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM ||
        getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &pl) != 0) {
      Napi::Error::New(env, "addFlow: not a connected UDP socket").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Flow f;
    if (info.Length() >= 7) {
      if (!info[4].IsNumber() || !info[5].IsString() || !info[6].IsNumber()) {
        Napi::TypeError::New(env, "addFlow: peer, relayAddress, relayPort").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      double peer_index = info[4].As<Napi::Number>().DoubleValue();
      double relay_port = info[6].As<Napi::Number>().DoubleValue();
      std::string relay = info[5].As<Napi::String>().Utf8Value();
      auto *r4 = reinterpret_cast<sockaddr_in *>(&f.relay);
      auto *r6 = reinterpret_cast<sockaddr_in6 *>(&f.relay);
      bool ok = peer_index >= 0 && peer_index < double(peers_.size()) && peer_index == std::floor(peer_index) &&
                relay_port >= 1 && relay_port <= 65535 && relay_port == std::floor(relay_port);
      if (ok && inet_pton(AF_INET, relay.c_str(), &r4->sin_addr) == 1) {
        r4->sin_family = AF_INET;
        r4->sin_port = htons(uint16_t(relay_port));
        f.relay_len = sizeof *r4;
      } else if (ok && inet_pton(AF_INET6, relay.c_str(), &r6->sin6_addr) == 1) {
        r6->sin6_family = AF_INET6;
        r6->sin6_port = htons(uint16_t(relay_port));
        f.relay_len = sizeof *r6;
      } else {
        Napi::RangeError::New(env, "addFlow: bad peer index or relay address").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      if (echo_) {
        Napi::TypeError::New(env, "addFlow: an echo engine's flows send from the client socket")
            .ThrowAsJavaScriptException();
        return env.Undefined();
      }
      if (!WatchClient(env, fd)) return env.Undefined();
      f.peer = int(peer_index);
    } else if (echo_ && !WatchClient(env, fd)) {
      return env.Undefined();
    }
    f.index = uint32_t(index);
    f.fd = fd;
    f.tmpl.assign(tmpl.Data(), tmpl.Data() + n);
    f.off = uint32_t(off);
    slot_[size_t(local)] = int32_t(flows_.size());
    flows_.push_back(std::move(f));
    template_bytes_ += n;
    return env.Undefined();
  }

  /* Reads client socket `fd` in the windows (p2c, echo): false with a JS exception when epoll refuses. */
  bool WatchClient(Napi::Env env, int fd) {
    epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = CLIENT_SOURCE | uint32_t(fd);
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST) {
      Napi::Error::New(env, std::string("addFlow: epoll_ctl: ") + strerror(errno)).ThrowAsJavaScriptException();
      return false;
    }
    /* Arrival times from the kernel, as on the peer sockets (Node's reads ignore the cmsg). */
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    return true;
  }

  /* start(trial, ratePps, durationMs): runs the window on a new thread. */
  Napi::Value Start(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "start(trial, ratePps, durationMs)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!Idle(env)) return env.Undefined();
    double trial = info[0].As<Napi::Number>().DoubleValue();
    double rate = info[1].As<Napi::Number>().DoubleValue();
    double duration = info[2].As<Napi::Number>().DoubleValue();
    if (!(trial >= 0 && trial <= double(UINT32_MAX)) || !(rate >= 0 && rate <= 1e9) ||
        !(duration >= 0 && duration <= MAX_DURATION_MS)) {
      Napi::RangeError::New(env, "start: bad trial, rate or duration").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (epfd_ < 0) {
      Napi::Error::New(env, "start: closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    trial_ = uint32_t(trial);
    rate_ = rate;
    duration_ns_ = int64_t(std::llround(duration * 1e6));
    window_ = Window();
    for (auto &f : flows_) {
      f.seq = 0;
      f.has_last = false;
      f.jitter = 0;
      f.last_transit = 0;
    }
    sent_now_.store(0, std::memory_order_relaxed);
    received_now_.store(0, std::memory_order_relaxed);
    done_.store(false, std::memory_order_release);
    thread_ = std::thread([this] { Run(); });
    return env.Undefined();
  }

  Napi::Value Done(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), !thread_.joinable() || done_.load(std::memory_order_acquire));
  }

  /* progress(): [sent, received] of the window so far. */
  Napi::Value Progress(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(uint32_t(0), Napi::Number::New(env, double(sent_now_.load(std::memory_order_relaxed))));
    a.Set(uint32_t(1), Napi::Number::New(env, double(received_now_.load(std::memory_order_relaxed))));
    return a;
  }

  /* result(counters: Float64Array(C_COUNT), buckets: Float64Array(BUCKET_COUNT)): joins the window. */
  Napi::Value Result(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsTypedArray()) {
      Napi::TypeError::New(env, "result(counters, buckets)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto counters = info[0].As<Napi::TypedArray>();
    auto buckets = info[1].As<Napi::TypedArray>();
    if (counters.TypedArrayType() != napi_float64_array || counters.ElementLength() != C_COUNT ||
        buckets.TypedArrayType() != napi_float64_array || buckets.ElementLength() != BUCKET_COUNT) {
      Napi::RangeError::New(env, "result: Float64Array(LOADGEN_COUNTERS), Float64Array(LOADGEN_BUCKETS)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (thread_.joinable()) {
      if (!done_.load(std::memory_order_acquire)) {
        Napi::Error::New(env, "result: the window is still running").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      thread_.join();
    }
    double *c = counters.As<Napi::Float64Array>().Data();
    double *b = buckets.As<Napi::Float64Array>().Data();
    const Window &w = window_;
    c[C_OFFERED] = double(w.offered);
    c[C_SENT] = double(w.sent);
    c[C_SKIPPED] = double(w.skipped);
    c[C_SEND_ERRORS] = double(w.send_errors);
    c[C_RECEIVED] = double(w.received);
    c[C_STRAY] = double(w.stray);
    c[C_LATE] = double(w.late);
    c[C_CPU_SEC] = w.cpu_sec;
    c[C_SEND_MS] = w.send_ms;
    c[C_DRAIN_MS] = w.drain_ms;
    c[C_HIST_TOTAL] = double(w.hist_total);
    c[C_HIST_MIN] = w.hist_total == 0 ? INFINITY : double(w.hist_min);
    c[C_HIST_MAX] = double(w.hist_max);
    c[C_HIST_SUM] = w.hist_sum;
    double jsum = 0, jmax = 0, jflows = 0;
    for (const auto &f : flows_) {
      if (!f.has_last) continue;
      jsum += f.jitter;
      jflows++;
      if (f.jitter > jmax) jmax = f.jitter;
    }
    c[C_JITTER_SUM] = jsum;
    c[C_JITTER_FLOWS] = jflows;
    c[C_JITTER_MAX] = jmax;
    c[C_FORWARDED] = double(w.forwarded);
    for (int i = 0; i < BUCKET_COUNT; i++) b[i] = double(w.hist[size_t(i)]);
    return env.Undefined();
  }

  /* gso(off?): false turns UDP GSO off for good; returns whether the engine sends with it. */
  Napi::Value Gso(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() >= 1 && info[0].IsBoolean() && !info[0].As<Napi::Boolean>().Value()) {
      if (!Idle(env)) return env.Undefined();
      gso_ = false;
    }
    return Napi::Boolean::New(env, gso_);
  }

  /* stop(): ends the current window (and any later one) at its next tick, and its drain. */
  Napi::Value Stop(const Napi::CallbackInfo &info) {
    stop_.store(true, std::memory_order_relaxed);
    return info.Env().Undefined();
  }

  /* close(): stops and joins the window, closes the peer sockets (never the client sockets). */
  Napi::Value Close(const Napi::CallbackInfo &info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
    for (int fd : peers_) close(fd);
    peers_.clear();
    flows_.clear();
    if (epfd_ >= 0) close(epfd_);
    epfd_ = -1;
  }

  /* False (with a JS exception) while a window's thread has not been joined. */
  bool Idle(Napi::Env env) {
    if (!thread_.joinable()) return true;
    Napi::Error::New(env, "LoadGen: a window is running").ThrowAsJavaScriptException();
    return false;
  }

  // ---- the window's thread ---------------------------------------------------------------------

  void Run() {
    Window &w = window_;
    const int64_t start = now_ns();
    const int64_t end = start + duration_ns_;
    const double cpu0 = thread_cpu_sec();
    const double per_ns = rate_ / 1e9;
    const uint64_t n = flows_.size();
    const uint64_t tick_budget = uint64_t(std::max(1.0, std::ceil(rate_ * TICK_BUDGET_MS / 1000)));
    const uint64_t max_backlog =
        std::max(tick_budget, uint64_t(std::ceil(rate_ * MAX_BACKLOG_MS / 1000)));
    last_arrival_ = start;
    uint64_t cursor = 0;
    int64_t next_tick = start;
    for (;;) {
      int64_t t = now_ns();
      if (t >= next_tick) {
        int64_t clamped = t < end ? t : end;
        uint64_t target = n == 0 ? 0 : uint64_t(std::floor(double(clamped - start) * per_ns));
        uint64_t handled = w.sent + w.skipped;
        uint64_t due = target > handled ? target - handled : 0;
        w.offered = target;
        if (due > max_backlog) {
          w.skipped += due - max_backlog;
          due = max_backlog;
        }
        uint64_t burst = std::min(due, tick_budget);
        if (burst > 0) {
          uint64_t base = burst / n;
          uint64_t extra = burst % n;
          uint64_t visit = base > 0 ? n : extra;
          for (uint64_t i = 0; i < visit; i++) {
            uint64_t k = base + (i < extra ? 1 : 0);
            uint64_t at = cursor + i;
            if (at >= n) at -= n;
            SendFlow(flows_[at], k);
          }
          cursor += extra;
          if (cursor >= n) cursor -= n;
          w.sent += burst;
          sent_now_.store(w.sent, std::memory_order_relaxed);
        }
        if (t >= end || stop_.load(std::memory_order_relaxed)) {
          w.skipped += due - burst;
          double cpu1 = thread_cpu_sec();
          w.cpu_sec = cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0;
          w.send_ms = double(t - start) / 1e6;
          break;
        }
        next_tick = std::min(t + TICK_NS, end);
      }
      Receive(next_tick);
    }
    const int64_t drain_start = now_ns();
    for (;;) {
      int64_t t = now_ns();
      if (t - last_arrival_ >= QUIET_NS || t - drain_start >= DRAIN_MAX_NS ||
          stop_.load(std::memory_order_relaxed))
        break;
      Receive(std::min(t + TICK_NS, drain_start + DRAIN_MAX_NS));
    }
    w.drain_ms = double(now_ns() - drain_start) / 1e6;
    done_.store(true, std::memory_order_release);
  }

  /* `k` datagrams of `f`, SEND_BATCH at a time: as UDP GSO messages while the kernel takes them,
   * else one sendmmsg entry each. */
  void SendFlow(Flow &f, uint64_t k) {
    uint8_t *base = f.tmpl.data();
    const size_t len = f.tmpl.size();
    const size_t head = f.off;
    const size_t tail_at = head + PAYLOAD_HEADER_BYTES;
    const size_t tail = len - tail_at;
    /* iovecs per datagram: [template head] payload header [template tail], contiguous in iov_. */
    const int per = (head > 0 ? 1 : 0) + 1 + (tail > 0 ? 1 : 0);
    while (k > 0) {
      const int count = k > uint64_t(SEND_BATCH) ? SEND_BATCH : int(k);
      const uint64_t stamp = uint64_t(now_ns());
      for (int j = 0; j < count; j++) {
        uint8_t *h = hdr_[j];
        put32(h, PAYLOAD_MAGIC);
        put32(h + 4, trial_);
        put32(h + 8, f.index);
        put32(h + 12, f.seq++);
        put32(h + 16, uint32_t(stamp >> 32));
        put32(h + 20, uint32_t(stamp));
        iovec *v = &iov_[per * j];
        int i = 0;
        if (head > 0) v[i++] = {base, head};
        v[i++] = {h, PAYLOAD_HEADER_BYTES};
        if (tail > 0) v[i++] = {base + tail_at, tail};
      }
      /* c2p: the connected client socket; p2c: the peer socket, to the relay address. */
      const int fd = f.peer < 0 ? f.fd : peers_[size_t(f.peer)];
      sockaddr *name = f.peer < 0 ? nullptr : reinterpret_cast<sockaddr *>(&f.relay);
      const socklen_t namelen = f.peer < 0 ? 0 : f.relay_len;
      int handled = gso_ && count > 1 ? SendGso(fd, name, namelen, count, per, len) : 0;
      if (handled < count) SendPlain(fd, name, namelen, handled, count, per);
      k -= uint64_t(count);
    }
  }

  /* Datagrams [from, count) of the batch in iov_, one sendmmsg entry each. */
  void SendPlain(int fd, sockaddr *name, socklen_t namelen, int from, int count, int per) {
    for (int j = from; j < count; j++) {
      memset(&smsg_[j], 0, sizeof smsg_[j]);
      smsg_[j].msg_hdr.msg_name = name;
      smsg_[j].msg_hdr.msg_namelen = namelen;
      smsg_[j].msg_hdr.msg_iov = &iov_[per * j];
      smsg_[j].msg_hdr.msg_iovlen = size_t(per);
    }
    SendEntries(fd, from, count);
  }

  /* Sends smsg_[from, count) on `fd`; what is not sent is counted as send errors. */
  void SendEntries(int fd, int from, int count) {
    Window &w = window_;
    int at = from;
    /* Each call either sends some datagrams or ends the batch: at most `count` calls. */
    for (int calls = 0; at < count && calls < count; calls++) {
      int r = sendmmsg(fd, &smsg_[at], unsigned(count - at), MSG_DONTWAIT);
      if (r > 0) {
        at += r;
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
        break; /* the send buffer is full: the rest of the batch is given up (counted below) */
      } else {
        /* ECONNREFUSED (ICMP from a stopped server)…: counted like the JS engine's send errors;
         * the datagram at `at` is given up and the next one tried. */
        w.send_errors++;
        at++;
      }
    }
    if (at < count) w.send_errors += uint64_t(count - at);
  }

  /*
   * The batch in iov_ as UDP GSO messages (UDP_SEGMENT = the datagram length; every datagram of a
   * flow has the same length): one pass through the IP layer and the loopback device per message
   * instead of per datagram. The server's socket still gets separate datagrams (the kernel segments
   * them on delivery unless the socket asked for UDP_GRO). Returns how many datagrams were handled
   * (sent, or counted as send errors); fewer than `count` when the kernel refused GSO, which then
   * stays off (the caller sends the rest one by one).
   */
  int SendGso(int fd, sockaddr *name, socklen_t namelen, int count, int per, size_t len) {
    Window &w = window_;
    const int seg_max = int(std::min<size_t>(GSO_MAX_SEGMENTS, GSO_MAX_BYTES / len));
    if (seg_max < 2) return 0;
    int nmsg = 0;
    for (int j = 0; j < count && nmsg < SEND_BATCH; nmsg++) {
      const int seg = std::min(seg_max, count - j);
      mmsghdr &m = smsg_[nmsg];
      memset(&m, 0, sizeof m);
      m.msg_hdr.msg_name = name;
      m.msg_hdr.msg_namelen = namelen;
      m.msg_hdr.msg_iov = &iov_[per * j];
      m.msg_hdr.msg_iovlen = size_t(per * seg);
      if (seg > 1) {
        memset(cbuf_[nmsg], 0, sizeof cbuf_[nmsg]);
        m.msg_hdr.msg_control = cbuf_[nmsg];
        m.msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        cmsghdr *c = CMSG_FIRSTHDR(&m.msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        const uint16_t size = uint16_t(len);
        memcpy(CMSG_DATA(c), &size, sizeof size);
      }
      segs_[nmsg] = seg;
      j += seg;
    }
    int done = 0;
    int at = 0;
    for (int calls = 0; at < nmsg && calls < nmsg; calls++) {
      int r = sendmmsg(fd, &smsg_[at], unsigned(nmsg - at), MSG_DONTWAIT);
      if (r > 0) {
        for (int i = 0; i < r; i++) done += segs_[at + i];
        at += r;
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else if (r < 0 && segs_[at] > 1 && (errno == EIO || errno == EINVAL || errno == EMSGSIZE)) {
        gso_ = false; /* the kernel or the route does not do GSO: the rest one by one */
        return done;
      } else if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
        break;
      } else {
        w.send_errors += uint64_t(segs_[at]);
        done += segs_[at];
        at++;
      }
    }
    if (done < count) w.send_errors += uint64_t(count - done);
    return count;
  }

  /*
   * Sleeps until `until` (CLOCK_MONOTONIC ns), then reads what the peer sockets hold. The thread does
   * not wake per datagram (a relay that sends one datagram per sendmsg would cost it a context switch
   * each): it reads once per tick, whole recvmmsg batches, and takes each datagram's arrival time
   * from the kernel's receive timestamp (SO_TIMESTAMPNS), so the latency is not the tick's.
   */
  void Receive(int64_t until) {
    if (echo_) {
      ReceiveEcho(until);
      return;
    }
    if (until > now_ns()) {
      timespec ts{time_t(until / 1000000000), long(until % 1000000000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
    }
    ReadOffset();
    epoll_event events[MAX_EVENTS];
    int n = epoll_wait(epfd_, events, MAX_EVENTS, 0);
    for (int i = 0; i < n; i++)
      ReadPeer(int(uint32_t(events[i].data.u64)), (events[i].data.u64 & CLIENT_SOURCE) != 0);
  }

  /* CLOCK_REALTIME (the receive timestamps' clock) minus CLOCK_MONOTONIC, read back to back. */
  void ReadOffset() {
    timespec rt, mt;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    realtime_offset_ = (int64_t(rt.tv_sec) - int64_t(mt.tv_sec)) * 1000000000 + (rt.tv_nsec - mt.tv_nsec);
  }

  /*
   * echo: waits in epoll until `until`, handling sockets as they become ready: a peer socket's
   * datagrams go straight back (the peer's turnaround is one wake-up, not a tick), a client socket's
   * are counted. The wait has nanosecond resolution (epoll_pwait2) where the kernel has it, else
   * epoll_wait's milliseconds, rounded up (a late tick only delays sending, never a timestamp).
   */
  void ReceiveEcho(int64_t until) {
    ReadOffset();
    epoll_event events[MAX_EVENTS];
    /* Each pass either handles events or waits out the rest of the tick (a pass per event burst). */
    for (int pass = 0; pass < 1024; pass++) {
      const int64_t left = until - now_ns();
      int n;
      if (left <= 0) {
        n = epoll_wait(epfd_, events, MAX_EVENTS, 0);
      } else {
        n = WaitNs(events, left);
      }
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (left <= 0 || n < 0) return;
        continue;
      }
      for (int i = 0; i < n; i++) {
        const int fd = int(uint32_t(events[i].data.u64));
        if ((events[i].data.u64 & CLIENT_SOURCE) != 0) ReadPeer(fd, true);
        else EchoPeer(fd);
      }
      if (left <= 0) return;
    }
  }

  /* epoll wait of at most `ns` nanoseconds. */
  int WaitNs(epoll_event *events, int64_t ns) {
#ifdef SYS_epoll_pwait2
    if (pwait2_) {
      timespec ts{time_t(ns / 1000000000), long(ns % 1000000000)};
      long r = syscall(SYS_epoll_pwait2, epfd_, events, MAX_EVENTS, &ts, nullptr, 0);
      if (r >= 0 || errno == EINTR) return int(r);
      pwait2_ = false; /* ENOSYS, or EPERM from a seccomp filter: epoll_wait from now on */
    }
#endif
    return epoll_wait(epfd_, events, MAX_EVENTS, int((ns + 999999) / 1000000));
  }

  /* echo: every datagram at peer socket `fd` back to its source, a recvmmsg/sendmmsg pair a batch. */
  void EchoPeer(int fd) {
    Window &w = window_;
    for (int round = 0; round < RECV_ROUNDS; round++) {
      for (int j = 0; j < RECV_BATCH; j++) {
        eiov_[j] = {ebuf_[j], ECHO_BUF};
        memset(&rmsg_[j], 0, sizeof rmsg_[j]);
        rmsg_[j].msg_hdr.msg_name = &efrom_[j];
        rmsg_[j].msg_hdr.msg_namelen = sizeof efrom_[j];
        rmsg_[j].msg_hdr.msg_iov = &eiov_[j];
        rmsg_[j].msg_hdr.msg_iovlen = 1;
      }
      int r = recvmmsg(fd, rmsg_, RECV_BATCH, MSG_DONTWAIT, nullptr);
      if (r <= 0) return;
      int out = 0;
      for (int j = 0; j < r; j++) {
        const unsigned len = rmsg_[j].msg_len;
        if ((rmsg_[j].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > ECHO_BUF) {
          w.stray++;
          continue;
        }
        if (len >= PAYLOAD_HEADER_BYTES && get32(ebuf_[j]) == PAYLOAD_MAGIC && get32(ebuf_[j] + 4) == trial_)
          w.forwarded++;
        iovec &v = eiov_[j];
        v.iov_len = len;
        mmsghdr &m = smsg_[out++];
        memset(&m, 0, sizeof m);
        m.msg_hdr.msg_name = &efrom_[j];
        m.msg_hdr.msg_namelen = rmsg_[j].msg_hdr.msg_namelen;
        m.msg_hdr.msg_iov = &v;
        m.msg_hdr.msg_iovlen = 1;
      }
      SendEntries(fd, 0, out);
      if (r < RECV_BATCH) return;
    }
  }

  /* Reads a peer socket (c2p: bare payloads) or a client socket (p2c: ChannelData, Data indications). */
  void ReadPeer(int fd, bool client) {
    Window &w = window_;
    for (int round = 0; round < RECV_ROUNDS; round++) {
      for (int j = 0; j < RECV_BATCH; j++) {
        riov_[j] = {rbuf_[j], RECV_SNAP};
        memset(&rmsg_[j], 0, sizeof rmsg_[j]);
        rmsg_[j].msg_hdr.msg_iov = &riov_[j];
        rmsg_[j].msg_hdr.msg_iovlen = 1;
        rmsg_[j].msg_hdr.msg_control = rctl_[j];
        rmsg_[j].msg_hdr.msg_controllen = sizeof rctl_[j];
      }
      int r = recvmmsg(fd, rmsg_, RECV_BATCH, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (r <= 0) return;
      const int64_t t = now_ns();
      for (int j = 0; j < r; j++) {
        const unsigned len = rmsg_[j].msg_len;
        const int64_t rx = KernelTime(rmsg_[j].msg_hdr, t);
        if (client) Unframe(rbuf_[j], len, t, rx);
        else Arrive(rbuf_[j], len, len < RECV_SNAP ? len : unsigned(RECV_SNAP), t, rx);
      }
      received_now_.store(w.received, std::memory_order_relaxed);
      if (r < RECV_BATCH) return;
    }
  }

  /* The datagram's receive timestamp on CLOCK_MONOTONIC, or `fallback` (the read time) without one. */
  int64_t KernelTime(msghdr &m, int64_t fallback) const {
    for (cmsghdr *c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS ||
          c->cmsg_len < CMSG_LEN(sizeof(timespec)))
        continue;
      timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      int64_t k = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec - realtime_offset_;
      /* A timestamp after the read, or more than a second before it, is not believed. */
      return k <= fallback && fallback - k < 1000000000 ? k : fallback;
    }
    return fallback;
  }

  /* A datagram at a client socket (its first min(len, RECV_SNAP) bytes at `p`): the payload of a
   * ChannelData message or of a Data indication's DATA attribute, else stray (a STUN response
   * while the engine reads the socket is lost to its transaction: keep windows short of the
   * 240 s refreshes). */
  void Unframe(const uint8_t *p, unsigned len, int64_t t, int64_t rx) {
    const unsigned avail = len < RECV_SNAP ? len : unsigned(RECV_SNAP);
    if (avail >= 4 && (p[0] & 0xc0) == 0x40) {
      const unsigned data = (unsigned(p[2]) << 8) | p[3];
      if (4 + data <= len) {
        Arrive(p + 4, data, avail - 4, t, rx);
        return;
      }
    } else if (avail >= 20 && ((unsigned(p[0]) << 8) | p[1]) == DATA_INDICATION) {
      unsigned off = 20;
      while (off + 4 <= avail) {
        const unsigned type = (unsigned(p[off]) << 8) | p[off + 1];
        const unsigned alen = (unsigned(p[off + 2]) << 8) | p[off + 3];
        if (type == ATTR_DATA) {
          if (off + 4 + alen <= len) {
            Arrive(p + off + 4, alen, avail - off - 4, t, rx);
            return;
          }
          break;
        }
        off += 4 + ((alen + 3) & ~3u);
      }
    }
    window_.stray++;
  }

  /* One payload: `len` bytes at `p` of which `avail` were read, read at `t`, received by the kernel
   * at `rx` (both CLOCK_MONOTONIC ns). */
  void Arrive(const uint8_t *p, unsigned len, unsigned avail, int64_t t, int64_t rx) {
    Window &w = window_;
    if (len < PAYLOAD_HEADER_BYTES || avail < PAYLOAD_HEADER_BYTES || get32(p) != PAYLOAD_MAGIC) {
      w.stray++;
      return;
    }
    uint32_t local = get32(p + 8) - first_flow_;
    if (local >= slot_.size() || slot_[local] < 0) {
      w.stray++;
      return;
    }
    if (get32(p + 4) != trial_) {
      w.late++;
      return;
    }
    Flow &f = flows_[size_t(slot_[local])];
    uint64_t sent = (uint64_t(get32(p + 16)) << 32) | get32(p + 20);
    double transit = double(rx) - double(sent);
    last_arrival_ = t;
    w.received++;
    uint64_t v = transit > 0 ? uint64_t(transit) : 0;
    if (v > MAX_VALUE) v = MAX_VALUE;
    w.hist[size_t(bucket_index(v))]++;
    w.hist_total++;
    w.hist_sum += double(v);
    if (v < w.hist_min) w.hist_min = v;
    if (v > w.hist_max) w.hist_max = v;
    /* RFC 3550 §6.4.1, as hdr.ts JitterEstimator. */
    if (f.has_last) f.jitter += (std::fabs(transit - f.last_transit) - f.jitter) / 16;
    f.last_transit = transit;
    f.has_last = true;
  }

  uint32_t first_flow_ = 0;
  std::vector<int32_t> slot_; /* local allocation index → flows_ index, or −1 */
  std::vector<Flow> flows_;
  size_t template_bytes_ = 0;
  std::vector<int> peers_;
  int epfd_ = -1;
  /* UDP GSO: the kernel takes UDP_SEGMENT (probed at construction) and gso(false) was not called. */
  bool gso_ = false;

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{true};
  std::atomic<uint64_t> sent_now_{0};
  std::atomic<uint64_t> received_now_{0};
  uint32_t trial_ = 0;
  double rate_ = 0;
  int64_t duration_ns_ = 0;
  int64_t last_arrival_ = 0;
  Window window_;

  /* Scratch of the window's thread. */
  uint8_t hdr_[SEND_BATCH][PAYLOAD_HEADER_BYTES];
  iovec iov_[3 * SEND_BATCH];
  mmsghdr smsg_[SEND_BATCH];
  int segs_[SEND_BATCH];
  alignas(cmsghdr) uint8_t cbuf_[SEND_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  uint8_t rbuf_[RECV_BATCH][RECV_SNAP];
  alignas(cmsghdr) uint8_t rctl_[RECV_BATCH][CMSG_SPACE(sizeof(timespec))];
  int64_t realtime_offset_ = 0;
  iovec riov_[RECV_BATCH];
  mmsghdr rmsg_[RECV_BATCH];
  /* echo: the engine's mode (constructor), epoll_pwait2 not refused yet, the peer sockets' batch. */
  bool echo_ = false;
  bool pwait2_ = true;
  uint8_t ebuf_[RECV_BATCH][ECHO_BUF];
  sockaddr_storage efrom_[RECV_BATCH];
  iovec eiov_[RECV_BATCH];
};

}  // namespace

Napi::Object InitLoadGen(Napi::Env env, Napi::Object exports) {
  exports.Set("LoadGen", LoadGen::Define(env));
  exports.Set("LOADGEN_COUNTERS", Napi::Number::New(env, C_COUNT));
  exports.Set("LOADGEN_BUCKETS", Napi::Number::New(env, BUCKET_COUNT));
  return exports;
}

}  // namespace turnpike
