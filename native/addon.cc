/*
 * turnpike native data plane: the N-API binding (node-addon-api). One `DataPlane` object per
 * server: it starts the worker threads, opens the listening sockets (one SO_REUSEPORT socket per
 * thread), binds relay sockets, builds allocations and queues their control operations to the
 * owning thread, and hands datagrams the workers do not handle to a JS callback in batches.
 * Every call here runs on the JS thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <napi.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <random>
#include <unordered_map>

#include "dataplane.h"
#include "bindgen.h"
#include "loadgen.h"
#include "steer.h"

namespace turnpike {

/* Longest the JS thread waits for a thread to close an uninstalled allocation's relay sockets. */
static const int UNINSTALL_WAIT_MS = 100;

/* Frees the port of relay socket `fd` at once without closing the descriptor, which a thread may be
 * reading this very moment (closing it could hand the number to the next socket JS opens): dup3
 * atomically puts an unbound socket in its place. The old socket goes when the last system call
 * using it returns, and with it the port and its epoll registration; a read of the stand-in finds
 * nothing, and the thread closes it when it applies the uninstall. (A stand-in shared by every
 * release, one AF_UNIX socket, saved a socket call per release, but fresh-clone CI then failed the
 * NAT lab's 8-media scenario in the native pass; with this per-release socket it passed.) */
static bool release_port(int fd) {
  int stand_in = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (stand_in < 0) return false;
  int r = dup3(stand_in, fd, O_CLOEXEC);
  close(stand_in);
  return r == fd;
}

static bool parse_ip(const std::string &text, tp_addr *out) {
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, text.c_str(), out->ip) == 1) {
    out->family = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out->ip) == 1) {
    out->family = 6;
    return true;
  }
  return false;
}

static socklen_t make_sockaddr(const tp_addr &a, uint16_t port, sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (a.family == 4) {
    auto *s = reinterpret_cast<sockaddr_in *>(out);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    memcpy(&s->sin_addr, a.ip, 4);
    return sizeof *s;
  }
  auto *s = reinterpret_cast<sockaddr_in6 *>(out);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  memcpy(&s->sin6_addr, a.ip, 16);
  return sizeof *s;
}

static const char *errno_code(int e) {
  switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    default: return "EIO";
  }
}

/* The text and port of an IPv4 or IPv6 socket address; false for another family. */
static bool format_address(const sockaddr_storage *sa, char (&text)[INET6_ADDRSTRLEN], uint16_t *port) {
  if (sa->ss_family == AF_INET) {
    auto *s = reinterpret_cast<const sockaddr_in *>(sa);
    inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
    *port = ntohs(s->sin_port);
    return true;
  }
  if (sa->ss_family == AF_INET6) {
    auto *s = reinterpret_cast<const sockaddr_in6 *>(sa);
    inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
    *port = ntohs(s->sin6_port);
    return true;
  }
  return false;
}

static void set_buffers(int fd, int bytes) {
  if (bytes <= 0) return;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

/* A UDP socket bound to addr:port; returns the fd or -errno. */
static int bind_udp(const tp_addr &addr, uint16_t port, bool reuseport, int sockbuf) {
  int fd = socket(addr.family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (addr.family == 6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  set_buffers(fd, sockbuf);
  sockaddr_storage sa;
  socklen_t sl = make_sockaddr(addr, port, &sa);
  if (bind(fd, reinterpret_cast<sockaddr *>(&sa), sl) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static uint16_t bound_port(int fd) {
  sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&sa), &sl) != 0) return 0;
  if (sa.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&sa)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6 *>(&sa)->sin6_port);
}

class DataPlane;

/* The control socket of a listening address (steer.h), polled on the JS thread's loop. */
struct ControlSocket {
  uv_poll_t poll;
  DataPlane *plane;
  int listener;
  int fd;
};

struct Listener {
  tp_addr address;
  uint16_t port;
  std::vector<int> fds;            /* one per thread */
  ControlSocket *control = nullptr; /* read on the JS thread (nullptr: none, or closed after an error) */
  bool steered = false;             /* the steering program is attached to the group */
};

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

/* What the kernel dropped at socket `fd` so far (receive buffer full): SO_MEMINFO's SK_MEMINFO_DROPS,
 * a 32-bit count kept by the socket itself. 0 where the kernel does not say (before Linux 4.6). */
static uint32_t socket_drops(int fd) {
  uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof mem;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 ||
      len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t))
    return 0;
  return mem[SK_MEMINFO_DROPS];
}

/* The control sockets' receive batch (JS thread only). */
static constexpr int CONTROL_BATCH = 16;
static constexpr size_t CONTROL_BUF = 65536 + 4;
static constexpr int CONTROL_ROUNDS = 4;

class DataPlane : public Napi::ObjectWrap<DataPlane> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(
        env, "DataPlane",
        {
            InstanceMethod("openListener", &DataPlane::OpenListener),
            InstanceMethod("send", &DataPlane::Send),
            InstanceMethod("bindRelay", &DataPlane::BindRelay),
            InstanceMethod("relaySend", &DataPlane::RelaySend),
            InstanceMethod("closeFd", &DataPlane::CloseFd),
            InstanceMethod("install", &DataPlane::Install),
            InstanceMethod("uninstall", &DataPlane::Uninstall),
            InstanceMethod("move", &DataPlane::Move),
            InstanceMethod("permission", &DataPlane::SetPermission),
            InstanceMethod("channel", &DataPlane::SetChannel),
            InstanceMethod("counters", &DataPlane::ReadCounters),
            InstanceMethod("threadStats", &DataPlane::ThreadStats),
            InstanceMethod("setSoftware", &DataPlane::SetSoftware),
            InstanceMethod("setLimits", &DataPlane::SetLimits),
            InstanceMethod("flush", &DataPlane::Flush),
            InstanceMethod("controlStats", &DataPlane::ControlStats),
            InstanceMethod("socketDrops", &DataPlane::SocketDrops),
            InstanceMethod("close", &DataPlane::Close),
        });
    exports.Set("DataPlane", ctor);
    exports.Set("STATS", Napi::Number::New(env, ST_COUNT));
    return exports;
  }

  /* new DataPlane(threads, addressMap: [local, advertised][], upcall(listener, thread, buf, address, port)) */
  DataPlane(const Napi::CallbackInfo &info) : Napi::ObjectWrap<DataPlane>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsArray() || !info[2].IsFunction()) {
      Napi::TypeError::New(env, "DataPlane(threads, addressMap, upcall)").ThrowAsJavaScriptException();
      return;
    }
    int threads = info[0].As<Napi::Number>().Int32Value();
    if (threads < 1 || threads > 256) {
      Napi::RangeError::New(env, "threads: 1-256").ThrowAsJavaScriptException();
      return;
    }
    shared_ = std::make_unique<Shared>();
    if (getrandom(&salt_, sizeof salt_, 0) != (ssize_t)sizeof salt_) salt_ = (uint32_t)std::random_device{}();
    Napi::Array map = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < map.Length(); i++) {
      Napi::Value row = map.Get(i);
      if (!row.IsArray()) continue;
      Napi::Array pair = row.As<Napi::Array>();
      AddressPair p{};
      if (!parse_ip(pair.Get(0u).ToString().Utf8Value(), &p.local) ||
          !parse_ip(pair.Get(1u).ToString().Utf8Value(), &p.advertised) || p.local.family != p.advertised.family) {
        Napi::TypeError::New(env, "addressMap: [local, advertised] IP pairs of one family").ThrowAsJavaScriptException();
        return;
      }
      shared_->address_map.push_back(p);
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "turnpike-data-plane", 0, 1);
    upcall_ = Napi::Persistent(info[2].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "turnpike-control");
    /* Referenced, like a listening dgram socket: the process stays up while the plane runs. */
    tsfn_live_ = true;
    for (int t = 0; t < threads; t++) {
      workers_.emplace_back(new Worker(t, shared_.get(), [this](int index) { Wake(index); }));
      waiting_.push_back(false);
      std::string error;
      if (!workers_.back()->start(&error)) {
        Shutdown();
        Napi::Error::New(env, "data plane thread: " + error).ThrowAsJavaScriptException();
        return;
      }
    }
    for (auto &w : workers_) shared_->workers.push_back(w.get());
    Value().Set("threads", Napi::Number::New(env, threads));
  }

  ~DataPlane() override { Shutdown(); }

 private:
  void Wake(int index) {
    /* Called on a worker thread; the value is the worker index (no allocation). */
    tsfn_.NonBlockingCall(reinterpret_cast<int *>(static_cast<intptr_t>(index) + 1),
                          [this](Napi::Env env, Napi::Function fn, int *tag) { Deliver(env, fn, tag); });
  }

  void Deliver(Napi::Env env, Napi::Function fn, int *tag) {
    if (closed_) return;
    int index = static_cast<int>(reinterpret_cast<intptr_t>(tag) - 1);
    if (index < 0 || (size_t)index >= workers_.size()) return;
    std::vector<Upcall> batch;
    workers_[index]->take_upcalls(&batch);
    Napi::HandleScope scope(env);
    char text[INET6_ADDRSTRLEN];
    for (size_t i = 0; i < batch.size(); i++) {
      Upcall &u = batch[i];
      uint16_t port = 0;
      format_address(&u.from, text, &port);
      uint8_t *data = u.data;
      u.data = nullptr;
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(
          env, data, u.len, [](Napi::Env, uint8_t *p) { std::free(p); });
      if (closed_) continue; /* a previous callback closed the plane: free the rest */
      /* On a steered listening address JS installs a client's allocation on the thread the program
       * names, whichever thread read this datagram (steer.h). */
      int thread = u.thread;
      if (u.listener >= 0 && (size_t)u.listener < listeners_.size() && listeners_[u.listener].steered)
        thread = steer_thread(&u.from, (int)workers_.size(), salt_);
      fn.Call({Napi::Number::New(env, u.listener), Napi::Number::New(env, thread), buf,
               Napi::String::New(env, text), Napi::Number::New(env, port)});
      if (env.IsExceptionPending()) {
        /* The callback threw: report it like an uncaught exception, keep the rest of the batch. */
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
      }
    }
    for (auto &u : batch) std::free(u.data);
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    for (auto &l : listeners_)
      if (l.control != nullptr) {
        CloseControl(l.control);
        l.control = nullptr;
      }
    for (auto &w : workers_) w->stop_and_join();
    /* Operations still queued, moves handing allocations from thread to thread included: apply
     * them until none is left. This ends: JS queues nothing more, and each round applies at least
     * one of the moves JS queued (an attach it creates is applied in this round or the next). No
     * worker may be destroyed before then (a move posts to another worker). */
    for (;;) {
      bool any = false;
      for (auto &w : workers_) any = w->drain_ops() || any;
      if (!any) break;
    }
    /* JS references to allocations still installed. */
    for (auto &kv : ids_) {
      Alloc *a = kv.second;
      if (a->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete a;
    }
    ids_.clear();
    users_.clear();
    workers_.clear(); /* closes listener sockets and what the tables held */
    for (auto &kv : relay_fds_)
      if (!kv.second.installed) close(kv.first); /* held reservations, allocations still binding */
    relay_fds_.clear();
    listeners_.clear();
    if (tsfn_live_) {
      tsfn_live_ = false;
      tsfn_.Release();
    }
  }

  /* flush(): wakes the threads that have table operations waiting (install, permission and channel
   * post without a wake-up; see NativeDataPlane.wake). */
  Napi::Value Flush(const Napi::CallbackInfo &info) {
    if (!closed_)
      for (size_t t = 0; t < workers_.size(); t++)
        if (waiting_[t]) {
          waiting_[t] = false;
          workers_[t]->signal();
        }
    return info.Env().Undefined();
  }

  /* Queues a table operation on thread t without waking it (see Flush). */
  void Queue(size_t t, const Op &op) {
    workers_[t]->post(op, false);
    waiting_[t] = true;
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Shutdown();
    return info.Env().Undefined();
  }

  bool Alive(Napi::Env env) {
    if (!closed_) return true;
    Napi::Error::New(env, "data plane closed").ThrowAsJavaScriptException();
    return false;
  }

  static Napi::Value Fail(Napi::Env env, const std::string &message, int err) {
    Napi::Error e = Napi::Error::New(env, message + ": " + strerror(err));
    e.Set("code", Napi::String::New(env, errno_code(err)));
    e.Set("errno", Napi::Number::New(env, -err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }

  /* openListener(address, port, sockBuf, steer) → [index, port, notSteered]: notSteered is "" when the
   * control plane's requests are steered to the JS thread (steer.h), else the reason they are not. */
  Napi::Value OpenListener(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    std::string text = info[0].ToString().Utf8Value();
    tp_addr addr;
    if (!parse_ip(text, &addr)) return Fail(env, "not an IP address: " + text, EINVAL);
    int port = info[1].ToNumber().Int32Value();
    int sockbuf = info[2].ToNumber().Int32Value();
    /* Listening sockets take every client's burst: ask for 4 MiB unless told (capped by rmem_max). */
    if (sockbuf <= 0) sockbuf = 4 << 20;
    if (port < 0 || port > 65535) return Fail(env, "port", EINVAL);
    if (port != 0) {
      /* SO_REUSEPORT would let a second instance of the daemon (same user) share the port: make
       * sure nobody holds it first, as an exclusive bind would. */
      int probe = bind_udp(addr, (uint16_t)port, false, 0);
      if (probe < 0) return Fail(env, "bind " + text + ":" + std::to_string(port), -probe);
      close(probe);
    }
    Listener l{addr, (uint16_t)port, {}};
    for (size_t t = 0; t < workers_.size(); t++) {
      int fd = bind_udp(addr, l.port, true, sockbuf);
      if (fd < 0) {
        for (int f : l.fds) close(f);
        return Fail(env, "bind " + text + ":" + std::to_string(l.port), -fd);
      }
      if (l.port == 0) l.port = bound_port(fd);
      l.fds.push_back(fd);
    }
    int index = (int)listeners_.size();
    std::string why = "no-relay-steering is set";
    bool steer = info.Length() < 4 || info[3].ToBoolean().Value();
    if (steer) {
      why.clear();
      l.control = OpenControl(addr, l.port, sockbuf, index, &why);
      l.steered = l.control != nullptr;
    }
    for (size_t t = 0; t < workers_.size(); t++) {
      Op op{};
      op.type = OP_ADD_LISTENER;
      op.listener = index;
      op.fd = l.fds[t];
      op.family = addr.family;
      workers_[t]->post(op);
    }
    uint16_t bound = l.port;
    listeners_.push_back(std::move(l));
    Napi::Array out = Napi::Array::New(env, 3);
    out.Set(0u, Napi::Number::New(env, index));
    out.Set(1u, Napi::Number::New(env, bound));
    out.Set(2u, Napi::String::New(env, why)); /* "": steered (steer.h), else why not */
    return out;
  }

  /* The control socket of a listening address whose threads' sockets are bound (steer.h): joins
   * their group last, attaches the steering program and is polled on this thread's loop. nullptr
   * where that cannot be done (the threads then read everything). */
  ControlSocket *OpenControl(const tp_addr &addr, uint16_t port, int sockbuf, int index, std::string *why) {
    uv_loop_t *loop = nullptr;
    if (napi_get_uv_event_loop(Env(), &loop) != napi_ok || loop == nullptr) {
      *why = "no event loop";
      return nullptr;
    }
    int fd = bind_udp(addr, port, true, sockbuf);
    if (fd < 0) {
      *why = std::string("bind: ") + strerror(-fd);
      return nullptr;
    }
    auto *c = new ControlSocket{};
    c->plane = this;
    c->listener = index;
    c->fd = fd;
    c->poll.data = c;
    if (uv_poll_init(loop, &c->poll, fd) != 0) {
      *why = "uv_poll_init failed";
      close(fd);
      delete c;
      return nullptr;
    }
    int err = attach_steering(fd, addr.family, (int)workers_.size(), salt_);
    if (err != 0) {
      *why = std::string("SO_ATTACH_REUSEPORT_CBPF: ") + strerror(err);
      CloseControl(c);
      return nullptr;
    }
    uv_poll_start(&c->poll, UV_READABLE, [](uv_poll_t *h, int status, int) {
      auto *cs = static_cast<ControlSocket *>(h->data);
      if (status == 0)
        cs->plane->ReadControl(cs);
      else
        cs->plane->ControlFailed(cs);
    });
    if (control_buf_.empty()) control_buf_.resize(CONTROL_BATCH * CONTROL_BUF);
    return c;
  }

  /* The control socket failed (libuv stopped polling it): close it. The program stays attached, its
   * control index is then out of range and the kernel hashes TURN requests over the threads'
   * sockets, which hand them up; clients' other datagrams stay steered. Counted in
   * controlDatagrams()'s second figure. */
  void ControlFailed(ControlSocket *c) {
    control_failures_++;
    closed_control_drops_ += socket_drops(c->fd); /* its count ends with it */
    if (c->listener >= 0 && (size_t)c->listener < listeners_.size() && listeners_[c->listener].control == c)
      listeners_[c->listener].control = nullptr;
    CloseControl(c);
  }

  /* Leaves the group at once (libuv allows closing the descriptor right after uv_poll_stop); the
   * handle is freed when libuv has let go of it. */
  static void CloseControl(ControlSocket *c) {
    uv_poll_stop(&c->poll);
    close(c->fd);
    c->fd = -1;
    uv_close(reinterpret_cast<uv_handle_t *>(&c->poll),
             [](uv_handle_t *h) { delete static_cast<ControlSocket *>(h->data); });
  }

  /* A control socket is readable: its datagrams go to the upcall callback, as the threads' do, with
   * the thread that owns the client's 5-tuple. One callback scope for the batch (microtasks and
   * ticks run once at its end). */
  void ReadControl(ControlSocket *c) {
    if (closed_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::CallbackScope callback(env, *async_);
    Napi::Function fn = upcall_.Value();
    mmsghdr msgs[CONTROL_BATCH];
    iovec iov[CONTROL_BATCH];
    sockaddr_storage from[CONTROL_BATCH];
    char text[INET6_ADDRSTRLEN];
    for (int round = 0; round < CONTROL_ROUNDS && !closed_; round++) {
      for (int i = 0; i < CONTROL_BATCH; i++) {
        iov[i].iov_base = control_buf_.data() + (size_t)i * CONTROL_BUF;
        iov[i].iov_len = CONTROL_BUF;
        msgs[i].msg_hdr = msghdr{};
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(c->fd, msgs, CONTROL_BATCH, MSG_DONTWAIT, nullptr);
      if (n <= 0) break;
      for (int i = 0; i < n && !closed_; i++) {
        size_t len = msgs[i].msg_len;
        if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > 65535) continue;
        uint16_t port = 0;
        if (!format_address(&from[i], text, &port)) continue;
        control_datagrams_++;
        Napi::Buffer<uint8_t> buf =
            Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t *>(iov[i].iov_base), len);
        fn.Call({Napi::Number::New(env, c->listener),
                 Napi::Number::New(env, steer_thread(&from[i], (int)workers_.size(), salt_)), buf,
                 Napi::String::New(env, text), Napi::Number::New(env, port)});
        if (env.IsExceptionPending()) {
          Napi::Error e = env.GetAndClearPendingException();
          napi_fatal_exception(env, e.Value());
        }
      }
      if (n < CONTROL_BATCH) break;
    }
  }

  /* controlStats() → [datagrams read from the control sockets, control sockets closed after an error] */
  Napi::Value ControlStats(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, 2);
    out.Set(0u, Napi::Number::New(env, (double)control_datagrams_));
    out.Set(1u, Napi::Number::New(env, (double)control_failures_));
    return out;
  }

  /*
   * socketDrops() → [datagrams the kernel dropped at the threads' listening sockets, at the control
   * sockets] (receive buffers full). Read from the sockets at each call (a getsockopt per socket:
   * threads × listening addresses), so a scrape sees them without a cost on the hot path. Each
   * socket's own count is 32 bits; the sums are exact until one socket passes 2^32 drops.
   */
  Napi::Value SocketDrops(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    double listener = 0, control = (double)closed_control_drops_;
    for (const Listener &l : listeners_) {
      for (int fd : l.fds) listener += socket_drops(fd);
      if (l.control != nullptr) control += socket_drops(l.control->fd);
    }
    Napi::Array out = Napi::Array::New(env, 2);
    out.Set(0u, Napi::Number::New(env, listener));
    out.Set(1u, Napi::Number::New(env, control));
    return out;
  }

  /* Gathers a Buffer or an array of Buffers into iovecs; false when something else was passed. */
  static bool Gather(Napi::Value v, std::vector<iovec> *iov) {
    if (v.IsBuffer()) {
      auto b = v.As<Napi::Buffer<uint8_t>>();
      iov->push_back(iovec{b.Data(), b.Length()});
      return true;
    }
    if (!v.IsArray()) return false;
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value e = a.Get(i);
      if (!e.IsBuffer()) return false;
      auto b = e.As<Napi::Buffer<uint8_t>>();
      iov->push_back(iovec{b.Data(), b.Length()});
    }
    return iov->size() <= 64;
  }

  static bool SendTo(int fd, const std::vector<iovec> &iov, const std::string &address, int port) {
    tp_addr to;
    if (!parse_ip(address, &to) || port <= 0 || port > 65535) return false;
    sockaddr_storage sa;
    socklen_t sl = make_sockaddr(to, (uint16_t)port, &sa);
    msghdr m{};
    m.msg_name = &sa;
    m.msg_namelen = sl;
    m.msg_iov = const_cast<iovec *>(iov.data());
    m.msg_iovlen = iov.size();
    return sendmsg(fd, &m, MSG_DONTWAIT) >= 0;
  }

  /* send(listener, thread, buf | buf[], address, port) → boolean */
  Napi::Value Send(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (closed_) return Napi::Boolean::New(env, false);
    int li = info[0].ToNumber().Int32Value();
    int t = info[1].ToNumber().Int32Value();
    if (li < 0 || (size_t)li >= listeners_.size() || t < 0 || (size_t)t >= workers_.size())
      return Napi::Boolean::New(env, false);
    std::vector<iovec> iov;
    if (!Gather(info[2], &iov)) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(
        env, SendTo(listeners_[li].fds[t], iov, info[3].ToString().Utf8Value(), info[4].ToNumber().Int32Value()));
  }

  /* bindRelay(address, port, sockBuf) → fd, or -errno */
  Napi::Value BindRelay(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    tp_addr addr;
    if (!parse_ip(info[0].ToString().Utf8Value(), &addr)) return Napi::Number::New(env, -EINVAL);
    int port = info[1].ToNumber().Int32Value();
    if (port < 1 || port > 65535) return Napi::Number::New(env, -EINVAL);
    int fd = bind_udp(addr, (uint16_t)port, false, info[2].ToNumber().Int32Value());
    if (fd >= 0) relay_fds_[fd] = RelayFd{addr.family, false};
    return Napi::Number::New(env, fd);
  }

  /* relaySend(fd, buf, address, port) → boolean; fd is a relay socket JS still owns or that is installed. */
  Napi::Value RelaySend(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    int fd = info[0].ToNumber().Int32Value();
    if (closed_ || relay_fds_.find(fd) == relay_fds_.end()) return Napi::Boolean::New(env, false);
    std::vector<iovec> iov;
    if (!Gather(info[1], &iov)) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, SendTo(fd, iov, info[2].ToString().Utf8Value(), info[3].ToNumber().Int32Value()));
  }

  /* closeFd(fd): a relay socket that was never installed (or a held reservation). */
  Napi::Value CloseFd(const Napi::CallbackInfo &info) {
    int fd = info[0].ToNumber().Int32Value();
    auto it = relay_fds_.find(fd);
    if (it != relay_fds_.end() && !it->second.installed) {
      relay_fds_.erase(it);
      close(fd);
    }
    return info.Env().Undefined();
  }

  /* install(thread, listener, clientAddress, clientPort, relayFds[], userId) → id */
  Napi::Value Install(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    int t = info[0].ToNumber().Int32Value();
    int li = info[1].ToNumber().Int32Value();
    if (t < 0 || (size_t)t >= workers_.size() || li < 0 || (size_t)li >= listeners_.size() || !info[4].IsArray()) {
      Napi::TypeError::New(env, "install: thread, listener, address, port, fds").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto a = std::make_unique<Alloc>();
    if (!parse_ip(info[2].ToString().Utf8Value(), &a->client)) {
      Napi::TypeError::New(env, "install: client address").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    a->client.port = (uint16_t)info[3].ToNumber().Int32Value();
    a->client_sa_len = make_sockaddr(a->client, a->client.port, &a->client_sa);
    a->listener = li;
    Napi::Array fds = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < fds.Length() && i < 2; i++) {
      int fd = fds.Get(i).ToNumber().Int32Value();
      auto it = relay_fds_.find(fd);
      if (it == relay_fds_.end() || it->second.installed) {
        Napi::TypeError::New(env, "install: not a free relay socket of this data plane").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      a->relays[a->nrelays++] = Source{SRC_RELAY, fd, it->second.family, li, nullptr};
    }
    for (int i = 0; i < a->nrelays; i++) {
      a->relays[i].alloc = a.get();
      relay_fds_[a->relays[i].fd].installed = true; /* the worker owns them now; JS may still send */
    }
    /* The user's bandwidth bucket, shared by the user's allocations on every thread. */
    a->user_id = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : std::string();
    UserEntry &u = users_[a->user_id];
    if (!u.bucket) u.bucket = std::make_shared<UserBucket>();
    u.allocations++;
    a->user = u.bucket;
    uint32_t id = ++next_id_;
    a->id = id;
    a->owner.store(t, std::memory_order_relaxed); /* published to the worker by post() */
    Alloc *raw = a.release();
    ids_[id] = raw;
    owner_[id] = t;
    Op op{};
    op.type = OP_INSTALL;
    op.alloc = raw;
    Queue(t, op);
    workers_[t]->watch_relays(raw); /* after the op is queued: see watch_relays */
    return Napi::Number::New(env, id);
  }

  Alloc *Find(uint32_t id) {
    auto it = ids_.find(id);
    return it == ids_.end() ? nullptr : it->second;
  }

  /* uninstall(id): the worker unlinks it and closes its relay sockets. */
  Napi::Value Uninstall(const Napi::CallbackInfo &info) {
    uint32_t id = info[0].ToNumber().Uint32Value();
    Alloc *a = Find(id);
    if (a == nullptr || closed_) return info.Env().Undefined();
    int t = owner_[id];
    ids_.erase(id);
    owner_.erase(id);
    /* From here JS never sends on them. Their ports are freed now, so that Refresh 0 answers with
     * them free for the next Allocate, as in the JS plane; the thread closes the descriptors when it
     * applies the uninstall. */
    bool freed = true;
    for (int i = 0; i < a->nrelays; i++) {
      int fd = a->relays[i].fd;
      relay_fds_.erase(fd);
      if (fd < 0) continue;
      /* Out of the owner's poll set while the descriptor is still the socket: a child process
       * between fork and exec keeps the socket open past the dup3, and its registration with it. */
      workers_[t]->unwatch_relay(fd);
      if (!release_port(fd)) freed = false;
    }
    /* The table forgets the user with its last allocation (the Allocs still referencing the bucket keep it). */
    auto u = users_.find(a->user_id);
    if (u != users_.end() && --u->second.allocations <= 0) users_.erase(u);
    Op op{};
    op.type = OP_UNINSTALL;
    op.alloc = a;
    /* The ports are free already (release_port): the thread closes the stand-ins at its next wake
     * or flush. With no descriptor to spare for release_port (EMFILE), it is woken and waited for. */
    if (freed) {
      Queue(t, op);
    } else {
      uint64_t seq = workers_[t]->post(op);
      workers_[t]->wait_applied(seq, UNINSTALL_WAIT_MS);
    }
    if (a->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete a;
    return info.Env().Undefined();
  }

  /* move(id, thread, listener, clientAddress, clientPort) → boolean: RFC 8016, the allocation's
   * client is now address:port, reached through `listener` on `thread` (dataplane.h: the move
   * protocol). Later operations on it go to `thread`. */
  Napi::Value Move(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (closed_ || info.Length() < 5) return Napi::Boolean::New(env, false);
    uint32_t id = info[0].ToNumber().Uint32Value();
    Alloc *a = Find(id);
    int t = info[1].ToNumber().Int32Value();
    int li = info[2].ToNumber().Int32Value();
    int port = info[4].ToNumber().Int32Value();
    if (a == nullptr || t < 0 || (size_t)t >= workers_.size() || li < 0 || (size_t)li >= listeners_.size() ||
        port < 1 || port > 65535)
      return Napi::Boolean::New(env, false);
    Op op{};
    op.type = OP_MOVE;
    if (!parse_ip(info[3].ToString().Utf8Value(), &op.client)) return Napi::Boolean::New(env, false);
    /* The listener's family is the client's (a listener socket serves one family). */
    if (op.client.family != listeners_[li].address.family) return Napi::Boolean::New(env, false);
    op.client.port = (uint16_t)port;
    op.thread = t;
    op.listener = li;
    op.alloc = a; /* alive: the worker's reference is released only by an uninstall, queued after this */
    workers_[owner_[id]]->post(op);
    owner_[id] = t;
    return Napi::Boolean::New(env, true);
  }

  void Post(uint32_t id, Op &op) {
    Alloc *a = Find(id);
    if (a == nullptr || closed_) return;
    a->refs.fetch_add(1, std::memory_order_relaxed); /* released by the worker after applying */
    op.alloc = a;
    Queue(owner_[id], op);
  }

  /* permission(id, peerAddress, expiresAtSec, lo, hi, deniedPorts[]) */
  Napi::Value SetPermission(const Napi::CallbackInfo &info) {
    Op op{};
    op.type = OP_PERMISSION;
    if (!parse_ip(info[1].ToString().Utf8Value(), &op.permission.ip)) return info.Env().Undefined();
    op.permission.expires_sec = (int64_t)info[2].ToNumber().DoubleValue();
    int lo = info[3].ToNumber().Int32Value();
    int hi = info[4].ToNumber().Int32Value();
    if (lo < 0 || hi > 65535) {
      lo = 1;
      hi = 0; /* nonsense from JS: allow nothing */
    }
    op.permission.lo = (uint16_t)lo;
    op.permission.hi = (uint16_t)(hi < 0 ? 0 : hi);
    if (hi < lo) {
      op.permission.lo = 1;
      op.permission.hi = 0;
    }
    if (info[5].IsArray()) {
      Napi::Array d = info[5].As<Napi::Array>();
      if (d.Length() > sizeof op.permission.denied / sizeof op.permission.denied[0]) {
        op.permission.upcall = true;
      } else {
        for (uint32_t i = 0; i < d.Length(); i++) {
          int port = d.Get(i).ToNumber().Int32Value();
          if (port >= 0 && port <= 65535) op.permission.denied[op.permission.ndenied++] = (uint16_t)port;
        }
      }
    }
    Post(info[0].ToNumber().Uint32Value(), op);
    return info.Env().Undefined();
  }

  /* channel(id, number, peerAddress, peerPort, expiresAtSec) */
  Napi::Value SetChannel(const Napi::CallbackInfo &info) {
    Op op{};
    op.type = OP_CHANNEL;
    int number = info[1].ToNumber().Int32Value();
    int port = info[3].ToNumber().Int32Value();
    if (number < 0x4000 || number > 0x7FFF || port < 0 || port > 65535) return info.Env().Undefined();
    if (!parse_ip(info[2].ToString().Utf8Value(), &op.channel.peer)) return info.Env().Undefined();
    op.channel.number = (uint16_t)number;
    op.channel.peer.port = (uint16_t)port;
    op.channel.expires_sec = (int64_t)info[4].ToNumber().DoubleValue();
    Post(info[0].ToNumber().Uint32Value(), op);
    return info.Env().Undefined();
  }

  /* counters(id, Float64Array(6)) → boolean: packets and bytes to the peer, then to the client;
   * packets refused by the payload policy, packets dropped over a bandwidth limit. */
  Napi::Value ReadCounters(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Alloc *a = Find(info[0].ToNumber().Uint32Value());
    if (a == nullptr || !info[1].IsTypedArray()) return Napi::Boolean::New(env, false);
    Napi::Float64Array out = info[1].As<Napi::Float64Array>();
    if (out.ElementLength() < 6) return Napi::Boolean::New(env, false);
    out[0] = (double)a->counters.to_peer_packets.load(std::memory_order_relaxed);
    out[1] = (double)a->counters.to_peer_bytes.load(std::memory_order_relaxed);
    out[2] = (double)a->counters.to_client_packets.load(std::memory_order_relaxed);
    out[3] = (double)a->counters.to_client_bytes.load(std::memory_order_relaxed);
    out[4] = (double)a->counters.payload_refused.load(std::memory_order_relaxed);
    out[5] = (double)a->counters.bandwidth_dropped.load(std::memory_order_relaxed);
    return Napi::Boolean::New(env, true);
  }

  /* threadStats(thread, Float64Array(STATS)) → boolean */
  Napi::Value ThreadStats(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    int t = info[0].ToNumber().Int32Value();
    if (closed_ || t < 0 || (size_t)t >= workers_.size() || !info[1].IsTypedArray())
      return Napi::Boolean::New(env, false);
    Napi::Float64Array out = info[1].As<Napi::Float64Array>();
    if (out.ElementLength() < ST_COUNT) return Napi::Boolean::New(env, false);
    workers_[t]->read_stats(out.Data());
    return Napi::Boolean::New(env, true);
  }

  /* setSoftware(text | undefined): the SOFTWARE attribute of natively answered Binding requests. */
  Napi::Value SetSoftware(const Napi::CallbackInfo &info) {
    std::string s = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
    if (s.size() > 128) s.resize(128);
    {
      std::lock_guard<std::mutex> g(shared_->software_mutex);
      shared_->software = s;
    }
    shared_->software_version.fetch_add(1, std::memory_order_release);
    return info.Env().Undefined();
  }

  /* setLimits(webrtcOnly, maxBps, userMaxBps, bpsCapacity): the relay limits (bytes/s, 0 = none),
   * seen by every thread from its next batch. */
  Napi::Value SetLimits(const Napi::CallbackInfo &info) {
    auto rate = [&info](size_t i) -> int64_t {
      if (info.Length() <= i || !info[i].IsNumber()) return 0;
      double v = info[i].As<Napi::Number>().DoubleValue();
      if (!(v > 0)) return 0; /* NaN, negative: unlimited */
      return v > 2147483647.0 ? 2147483647 : (int64_t)v;
    };
    shared_->max_bps.store(rate(1), std::memory_order_relaxed);
    shared_->user_max_bps.store(rate(2), std::memory_order_relaxed);
    shared_->bps_capacity.store(rate(3), std::memory_order_relaxed);
    shared_->webrtc_only.store(info.Length() > 0 && info[0].ToBoolean().Value(), std::memory_order_relaxed);
    return info.Env().Undefined();
  }

  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<bool> waiting_; /* per thread: operations queued since the last Flush */
  std::vector<Listener> listeners_;
  struct RelayFd {
    uint8_t family;
    bool installed; /* owned by a worker thread (JS may send on it until uninstall) */
  };
  std::unordered_map<int, RelayFd> relay_fds_; /* relay sockets of live allocations and pending ones */
  std::unordered_map<uint32_t, Alloc *> ids_;
  std::unordered_map<uint32_t, int> owner_;
  struct UserEntry {
    std::shared_ptr<UserBucket> bucket;
    int allocations = 0; /* installed allocations of the user */
  };
  std::unordered_map<std::string, UserEntry> users_;
  uint32_t next_id_ = 0;
  Napi::ThreadSafeFunction tsfn_;
  Napi::FunctionReference upcall_;               /* the same callback, for the control sockets */
  std::unique_ptr<Napi::AsyncContext> async_;
  std::vector<uint8_t> control_buf_;
  uint64_t control_datagrams_ = 0;
  uint64_t control_failures_ = 0;
  uint64_t closed_control_drops_ = 0; /* drops of control sockets closed after an error */
  uint32_t salt_ = 0; /* steer.h: random per plane */
  bool tsfn_live_ = false;
  bool closed_ = false;
};

}  // namespace turnpike

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  turnpike::InitLoadGen(env, exports); /* turnpike-bench's traffic engine */
  turnpike::InitBindGen(env, exports); /* bench/binding's load generator */
  return turnpike::DataPlane::Init(env, exports);
}

NODE_API_MODULE(turnpike_dataplane, InitAll)
