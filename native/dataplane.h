/*
 * turnpike native data plane: the interface between the JavaScript control plane and the C++
 * worker threads. JavaScript (addon.cc) builds allocations and queues control operations; each
 * worker thread (worker.cc) owns an epoll set, one SO_REUSEPORT socket per UDP listening address,
 * the relay sockets of the allocations of the client 5-tuples it owns (steer.h), and its tables.
 * The hot path takes no lock.
 *
 * Ownership and lifetime:
 *  - An Alloc is created by the JS thread with two references (JS and worker). The worker links it
 *    into its tables when it applies the INSTALL operation and unlinks it (closing its relay
 *    sockets) when it applies UNINSTALL; the JS thread drops its reference at uninstall. Whoever
 *    drops the last reference frees it, so a packet never sees a freed or half-built allocation.
 *  - Permissions and channels are written only by the owning worker (from operations); JS keeps
 *    its own copy for the control plane's queries. Counters are relaxed atomics, written by the
 *    worker and read by JS.
 *  - RFC 8016 mobility moves an allocation to a new client 5-tuple, which may belong to another
 *    thread. JS queues OP_MOVE to the thread that owns the allocation (and sends every later
 *    operation on it to the new thread). The old thread unlinks it from its client table and epoll
 *    set (the relay sockets stay open, their unread datagrams wait in the kernel), rewrites its
 *    client address, marks it owned by nobody (`owner` -1) and queues OP_ATTACH to the new thread,
 *    which links it and takes ownership. A thread applies an operation on an allocation only while
 *    it owns it; one that arrives before the allocation does (JS queued it after the move, the old
 *    thread has not let go yet) waits in the thread's `deferred_` list and is applied, in order,
 *    right after the OP_ATTACH. The old thread keeps a reference until the end of its event round
 *    (events it already read may point at the allocation's relay sources) and skips them: it no
 *    longer owns the allocation.
 *  - Listener sockets belong to the threads; the JS thread may send on them (sendto is safe from
 *    any thread). They are closed after the threads have stopped. Each listening address also has
 *    a control socket in its SO_REUSEPORT group, owned and read by the JS thread (steer.h): TURN
 *    requests reach JS with no thread between, and a client's other datagrams reach the thread
 *    steer_thread() names, which is where JS installs its allocation.
 */
#ifndef TURNPIKE_DATAPLANE_H
#define TURNPIKE_DATAPLANE_H

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "packet.h"

namespace turnpike {

/* Per-thread counters, summed by JS on demand (index order is the JS side's THREAD_STATS). */
enum StatIndex {
  ST_PACKETS_IN = 0,      /* datagrams read (listeners and relays) */
  ST_BINDINGS,            /* Binding requests answered natively */
  ST_TO_PEER_PACKETS,     /* relayed client → peer */
  ST_TO_PEER_BYTES,
  ST_TO_CLIENT_PACKETS,   /* relayed peer → client */
  ST_TO_CLIENT_BYTES,
  ST_DROP_NO_PERMISSION,  /* peer datagram or Send indication without a live permission */
  ST_DROP_PEER_POLICY,    /* Send indication to port 0 */
  ST_DROP_OVERSIZE,       /* peer datagram too large for ChannelData or a Data indication */
  ST_UPCALLS,             /* datagrams handed to JS */
  ST_UPCALL_DROPS,        /* datagrams dropped because the queue to JS was full */
  ST_SEND_ERRORS,         /* sends the kernel refused (buffer full, unreachable) */
  ST_RECV_BATCHES,        /* recvmmsg calls that returned datagrams */
  ST_TRUNCATED,           /* datagrams larger than the receive buffer */
  ST_GSO_SENDS,           /* sends that carried several datagrams (UDP GSO) */
  ST_DROP_PAYLOAD_POLICY, /* refused by relay-payload-policy webrtc (both directions) */
  ST_DROP_MAX_BPS,        /* over the allocation's bandwidth (max-bps) */
  ST_DROP_USER_MAX_BPS,   /* over the user's bandwidth (user-max-bps) */
  ST_DROP_BPS_CAPACITY,   /* over the server's bandwidth (bps-capacity) */
  ST_COUNT
};

struct Counters {
  std::atomic<uint64_t> to_peer_packets{0};
  std::atomic<uint64_t> to_peer_bytes{0};
  std::atomic<uint64_t> to_client_packets{0};
  std::atomic<uint64_t> to_client_bytes{0};
  std::atomic<uint64_t> payload_refused{0};   /* packets, both directions */
  std::atomic<uint64_t> bandwidth_dropped{0}; /* packets, both directions */
};

/*
 * Bandwidth limits (max-bps, user-max-bps, bps-capacity): token buckets of payload bytes, both
 * directions of an allocation drawing from the same buckets, refilled from CLOCK_MONOTONIC read
 * once per receive batch. Balances are kept in nano-bytes (bytes × 1e9) so that a refill is
 * elapsed_ns × rate with no division and no rounding loss, however short the interval: with rates
 * up to 2^31 bytes/s and at most one second of refill, every value fits in an int64. A packet
 * passes while the balance is positive and then costs its size (one packet of debt at most), so a
 * bucket holds at most BURST_NS of its rate and the rate holds exactly over time.
 *
 *  - Per allocation: a plain bucket in the Alloc, used only by the owning thread.
 *  - Per user and for the server: a SharedBucket that every thread may draw from. A thread does
 *    not touch it per packet: it takes credit in chunks (`lease_chunk`: 1/64 s of the rate, at
 *    most 16 KiB) into a lease it owns — the server's lease is per thread, a user's is per
 *    allocation (a user's allocations may live on different threads) — and spends the lease
 *    packet by packet. Refilling the shared balance is one compare-and-swap on its timestamp;
 *    taking a chunk is one fetch_sub. Credit sitting in leases is bounded by chunk × leases.
 */
static constexpr int64_t NS_PER_SEC = 1000000000;
static constexpr int64_t BURST_NS = NS_PER_SEC / 8; /* a bucket holds 1/8 s of its rate */

struct LocalBucket {
  int64_t balance = 0; /* nano-bytes */
  int64_t last_ns = 0; /* 0: never refilled (starts full) */
};

struct SharedBucket {
  std::atomic<int64_t> balance{0};
  std::atomic<int64_t> last_ns{0};
};

/* A user's bucket: created by JS at the first install of the user's allocation, referenced by
 * each of its Allocs (shared_ptr: released by whichever thread frees the last one). */
struct UserBucket {
  SharedBucket bucket;
};

struct Permission {
  tp_addr ip; /* port unused */
  int64_t expires_sec;
  /* The peer policy for this IP, by port (computed by JS from the policy in force): Send
   * indications may go to ports lo..hi except the server's own sockets on the IP (`denied`). More
   * own sockets than fit: Send indications go up to JS, which knows the policy. */
  uint16_t lo, hi;
  uint16_t denied[4];
  uint8_t ndenied;
  bool upcall;
};

struct Channel {
  uint16_t number;
  tp_addr peer;
  int64_t expires_sec;
};

struct Alloc;

/* What an epoll event points at. */
enum SourceKind { SRC_LISTENER = 1, SRC_RELAY = 2, SRC_CONTROL = 3 };

struct Source {
  SourceKind kind;
  int fd;
  uint8_t family;
  int listener; /* SRC_LISTENER: listener index */
  Alloc *alloc; /* SRC_RELAY: owner */
};

struct Alloc {
  std::atomic<int> refs{2};
  /* The worker thread that owns it (links it, reads its relays, writes its tables); -1 while a
   * move hands it from one thread to another. */
  std::atomic<int> owner{-1};
  uint32_t id = 0;
  int listener = 0;
  tp_addr client{};           /* key of the client table */
  sockaddr_storage client_sa{}; /* where peer data goes */
  socklen_t client_sa_len = 0;
  Source relays[2]{};
  int nrelays = 0;
  bool linked = false;
  std::vector<Permission> permissions;
  std::vector<Channel> channels;
  Counters counters;
  /* Bandwidth: the allocation's own bucket, its user's shared bucket and its lease of it (owner thread only). */
  LocalBucket bucket;
  std::string user_id; /* JS thread only (the addon's table of user buckets) */
  std::shared_ptr<UserBucket> user;
  int64_t user_lease = 0;
};

enum OpType { OP_ADD_LISTENER, OP_INSTALL, OP_UNINSTALL, OP_PERMISSION, OP_CHANNEL, OP_STOP, OP_MOVE, OP_ATTACH };

struct Op {
  OpType type;
  Alloc *alloc;
  int listener;
  int fd;
  uint8_t family;
  Permission permission;
  Channel channel;
  int thread;     /* OP_MOVE: the thread that takes the allocation */
  tp_addr client; /* OP_MOVE: the new client address (with its port) */
};

/* A datagram handed up to JS. */
struct Upcall {
  int listener;
  int thread;
  sockaddr_storage from;
  uint8_t *data; /* malloc'd */
  uint32_t len;
};

/* Shared configuration, written by JS before threads read it or through atomics. */
struct AddressPair {
  tp_addr local;
  tp_addr advertised;
};

class Worker;

struct Shared {
  std::vector<AddressPair> address_map; /* fixed at creation */
  std::mutex software_mutex;
  std::string software; /* SOFTWARE attribute of native Binding responses ("" = none) */
  std::atomic<uint32_t> software_version{0};
  /* Datagrams (and their bytes) waiting for JS, per thread: past either, new ones are dropped and
   * counted, so a stalled event loop cannot make a thread queue without bound. */
  size_t upcall_limit = 8192;
  size_t upcall_byte_limit = 16u << 20;
  /* Relay limits, set by JS at start and on reload; read by each thread once per batch. */
  std::atomic<bool> webrtc_only{false};      /* relay-payload-policy webrtc */
  std::atomic<int64_t> max_bps{0};           /* bytes/s; 0 = unlimited */
  std::atomic<int64_t> user_max_bps{0};
  std::atomic<int64_t> bps_capacity{0};
  SharedBucket capacity;                     /* bps-capacity, shared by every thread */
  /* Every worker, by index (filled once all have started; read by a thread handing an allocation over). */
  std::vector<Worker *> workers;
};

class Worker {
 public:
  Worker(int index, Shared *shared, std::function<void(int)> wake_js);
  ~Worker();
  bool start(std::string *error);
  void stop_and_join();

  /* From the JS thread. `signal` false: the op waits for the next signal() or for the worker's next
   * receive (ops are applied after every recvmmsg, before the datagrams are handled), so that the
   * ops of one JS turn cost the worker one wake-up instead of one each. */
  uint64_t post(const Op &op, bool signal = true); /* → the op's sequence number on this thread */
  /* From the JS thread: waits until the worker has applied the ops up to `seq` (true), or for
   * timeout_ms at most (false). The worker never waits for JS, so this cannot deadlock. */
  bool wait_applied(uint64_t seq, int timeout_ms);
  void signal(); /* wakes the worker for the ops posted so far, unless it applied them already */
  /* From the JS thread, right after posting an allocation's OP_INSTALL: puts its relay sockets in
   * this thread's poll set (epoll_ctl is safe from any thread), so that a peer's datagram wakes the
   * thread without the install having to (the thread applies queued ops before it reads a relay
   * whose allocation is not linked yet). */
  void watch_relays(Alloc *a);
  /* JS thread: takes relay socket `fd` out of this thread's poll set (before release_port). */
  void unwatch_relay(int fd);
  void take_upcalls(std::vector<Upcall> *out); /* from the JS thread */
  /* After every thread has stopped: applies the queued operations; true when there were any. */
  bool drain_ops();
  void read_stats(double *out) const;
  int index() const { return index_; }

 private:
  void run();
  void apply_ops();
  void apply(Op &op);
  void unlink(Alloc *a);
  bool owns(const Alloc *a) const { return a->owner.load(std::memory_order_acquire) == index_; }
  void move_out(Op &op);
  void attach(Alloc *a);
  int receive(int fd, int *first);
  int send_gso(int fd, struct mmsghdr *msgs, int count);
  void on_listener(Source *s);
  void on_relay(Source *s);
  void client_packet(int listener, int fd, uint8_t *buf, size_t len, const sockaddr_storage *from,
                     socklen_t from_len);
  void peer_packet(Alloc *a, Source *relay, uint8_t *buf, size_t len, const sockaddr_storage *from);
  void upcall(int listener, const uint8_t *buf, size_t len, const sockaddr_storage *from);
  bool admit(Alloc *a, const uint8_t *payload, size_t len);
  void load_limits();
  void queue_send(int fd, const sockaddr *to, socklen_t to_len, const void *head, size_t head_len,
                  const void *body, size_t body_len, size_t pad);
  void flush_sends();
  void bump(StatIndex i, uint64_t n = 1) {
    stats_[i].store(stats_[i].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  const std::string &software();

  int index_;
  Shared *shared_;
  std::function<void(int)> wake_js_;
  int epfd_ = -1;
  int evfd_ = -1;
  Source control_{};
  std::thread thread_;
  std::atomic<bool> ops_pending_{false};
  std::mutex ops_mutex_;
  uint64_t posted_seq_ = 0; /* under ops_mutex_: ops ever posted */
  std::mutex applied_mutex_;
  std::condition_variable applied_cv_;
  uint64_t applied_seq_ = 0; /* under applied_mutex_: ops the worker has applied (or deferred) */
  std::vector<Op> ops_;
  std::vector<Op> ops_work_;
  std::mutex upcall_mutex_;
  std::vector<Upcall> upcalls_;
  bool upcall_signalled_ = false;
  size_t upcall_bytes_ = 0;
  bool stop_ = false;
  std::atomic<uint64_t> stats_[ST_COUNT];
  std::vector<Alloc *> graveyard_;
  /* Operations on allocations on their way to this thread (see the move protocol above). */
  std::vector<Op> deferred_;
  std::vector<Source *> listeners_; /* by listener index (nullptr: not on this thread yet) */
  class ClientTable *clients_;
  int64_t now_sec_ = 0;
  uint32_t software_seen_ = UINT32_MAX;
  std::string software_copy_;
  struct Batch *batch_;
  uint8_t tid_pool_[12 * 256];
  size_t tid_at_ = sizeof(tid_pool_);
  bool gso_ = false;
  /* Relay limits as of this batch (from Shared), the monotonic clock, and this thread's lease of
   * the server's bucket. */
  bool webrtc_only_ = false;
  bool limited_ = false;
  int64_t max_bps_ = 0, user_max_bps_ = 0, bps_capacity_ = 0;
  int64_t mono_ns_ = 0;
  int64_t capacity_lease_ = 0;
};

}  // namespace turnpike
#endif
